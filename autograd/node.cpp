#include "autograd/node.h"

#include <atomic>

namespace ag {
namespace {

std::atomic<uint64_t> g_next_seq{1};  // 0 is reserved for AccumulateGrad (runs last)
thread_local bool t_grad_enabled = true;
thread_local bool t_tape_checking = false;

// Graph pieces waiting to be destroyed. Destroying one may enqueue more; only the outermost call
// drains, so the C++ stack never grows with the depth of the graph.
struct DeleteQueue {
  std::vector<std::shared_ptr<Node>> items;
  bool draining = false;
  bool alive = true;
  ~DeleteQueue() { alive = false; }
};
DeleteQueue& delete_queue() {
  thread_local DeleteQueue q;
  return q;
}

}  // namespace

bool is_grad_enabled() { return t_grad_enabled; }
void set_grad_enabled(bool enabled) { t_grad_enabled = enabled; }
bool is_tape_checking() { return t_tape_checking; }
void set_tape_checking(bool on) { t_tape_checking = on; }

void release_node(std::shared_ptr<Node>&& node) {
  if (!node) return;
  DeleteQueue& q = delete_queue();
  if (!q.alive) {
    node.reset();
    return;
  }
  q.items.push_back(std::move(node));
  if (q.draining) return;
  q.draining = true;
  while (!q.items.empty()) {
    std::shared_ptr<Node> n = std::move(q.items.back());
    q.items.pop_back();
    n.reset();  // may push this node's inputs onto the queue
  }
  q.draining = false;
}

TensorImpl::~TensorImpl() {
  if (grad_fn) release_node(std::move(grad_fn));
}

Node::Node() : seq_(g_next_seq.fetch_add(1, std::memory_order_relaxed)) {}

Node::~Node() {
  for (auto& e : next_edges) release_node(std::move(e.fn));
  // Saved tensors and replay inputs hold TensorImpls whose destructors enqueue their grad_fn.
}

Tensor Node::saved(size_t i) const {
  if (released_)
    fail<AutogradError>(
        "{}: trying to backward through the graph a second time, but its saved tensors were "
        "already "
        "freed; call backward(retain_graph=true) the first time if you need to",
        name());
  if (i >= saved_tensors.size())
    fail<AutogradError>("{}: saved tensor {} requested, only {} saved", name(), i,
                        saved_tensors.size());
  return saved_tensors[i].unpack(*this);
}

void Node::release() {
  if (had_saved_) {
    saved_tensors.clear();
    released_ = true;
  }
}

SavedTensor::SavedTensor(const Tensor& t, bool is_output) : is_output_(is_output) {
  if (!t.defined()) return;
  version_ = t.version();
  if (is_output) {
    // Alias without grad_fn: the owning node is the grad_fn, and holding it here would be a cycle.
    auto alias = std::make_shared<TensorImpl>();
    const TensorImpl& src = *t.impl();
    alias->storage = src.storage;
    alias->shape = src.shape;
    alias->strides = src.strides;
    alias->offset = src.offset;
    alias->dtype = src.dtype;
    alias->output_nr = src.output_nr;
    impl_ = std::move(alias);
  } else {
    impl_ = t.impl_ptr();
  }
}

Tensor SavedTensor::unpack(const Node& owner) const {
  if (!impl_) return Tensor();
  if (impl_->storage->version != version_)
    fail<AutogradError>(
        "{}: a tensor of shape {} saved for its backward was modified by an in-place operation "
        "(saved at version {}, now version {}); clone it before modifying it",
        owner.name(), impl_->shape, version_, impl_->storage->version);
  if (!is_output_) return Tensor(impl_);
  auto t = std::make_shared<TensorImpl>(*impl_);
  t->grad_fn = const_cast<Node&>(owner).shared_from_this();
  t->requires_grad = true;
  return Tensor(std::move(t));
}

AccumulateGrad::AccumulateGrad(std::shared_ptr<TensorImpl> leaf) : leaf_(std::move(leaf)) {
  seq_ = 0;
}

TensorList AccumulateGrad::apply(TensorList&&) { return {}; }  // the engine accumulates

Edge gradient_edge(const Tensor& t) {
  TensorImpl* impl = t.impl();
  if (impl->grad_fn) return Edge{impl->grad_fn, impl->output_nr};
  if (!impl->requires_grad) return Edge{};
  std::shared_ptr<Node> acc = impl->grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(t.impl_ptr());
    impl->grad_accumulator = acc;
  }
  return Edge{std::move(acc), 0};
}

bool any_requires_grad(std::initializer_list<const Tensor*> ts) {
  if (!t_grad_enabled) return false;
  for (const Tensor* t : ts)
    if (t->defined() && t->requires_grad()) return true;
  return false;
}

void attach(const std::shared_ptr<Node>& node, std::initializer_list<const Tensor*> inputs,
            Tensor& out, std::initializer_list<Save> saved) {
  node->next_edges.reserve(inputs.size());
  node->input_meta.reserve(inputs.size());
  for (const Tensor* t : inputs) {
    if (t->defined()) {
      node->next_edges.push_back(gradient_edge(*t));
      node->input_meta.push_back(InputMeta{t->shape(), t->dtype()});
    } else {
      node->next_edges.push_back(Edge{});
      node->input_meta.push_back(InputMeta{});
    }
  }
  node->output_meta.push_back(InputMeta{out.shape(), out.dtype()});
  if (saved.size()) {
    node->saved_tensors.reserve(saved.size());
    for (const Save& s : saved) node->saved_tensors.emplace_back(s.t, s.is_output);
    node->had_saved_ = true;
  }
  TensorImpl* o = out.impl();
  o->grad_fn = node;
  o->output_nr = 0;
  o->requires_grad = true;
}

}  // namespace ag
