#include "autograd/node.h"

#include "autograd/engine.h"
#include "autograd/forward.h"
#include "autograd/live_counters.h"
#include "autograd/object_pool.h"

#include <atomic>

namespace ag {
namespace fwd::detail {
// forward.cpp: whether tangents propagate on this thread (a level open, no rule being evaluated).
extern thread_local bool t_propagating [[gnu::tls_model("initial-exec")]];
}  // namespace fwd::detail
namespace {

std::atomic<uint64_t> g_next_seq{1};  // 0 is reserved for AccumulateGrad (runs last)
// initial-exec: read by every op (any_requires_grad, attach) with a plain %fs-relative load, no
// __tls_get_addr call.
thread_local bool t_grad_enabled [[gnu::tls_model("initial-exec")]] = true;
thread_local bool t_tape_checking [[gnu::tls_model("initial-exec")]] = false;
thread_local bool t_anomaly [[gnu::tls_model("initial-exec")]] = false;

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

namespace {
thread_local Dtype t_autocast = Dtype::float32;
}
Dtype autocast_dtype() { return t_autocast; }
void set_autocast_dtype(Dtype dtype) {
  if (dtype != Dtype::float32 && dtype != Dtype::bfloat16)
    fail<ValueError>("autocast: dtype must be float32 (off) or bfloat16, got {}",
                     dtype_name(dtype));
  t_autocast = dtype;
}
bool is_tape_checking() { return t_tape_checking; }
bool is_anomaly_enabled() { return t_anomaly; }
void set_anomaly_enabled(bool on) { t_anomaly = on; }
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

// The live-object counters (live_counters.h), here so that they are inlined into the constructors
// and destructors below.
void detail::count_tensors(int64_t d) {
  if (ThreadCounters* c = live_counters()) [[likely]]
    bump(c->tensors, d);
  else
    count_after_exit(d, 0, 0, 0);
}
void detail::count_nodes(int64_t d) {
  if (ThreadCounters* c = live_counters()) [[likely]]
    bump(c->nodes, d);
  else
    count_after_exit(0, d, 0, 0);
}

TensorImpl::TensorImpl() { detail::count_tensors(1); }

// Every field, by the defaulted assignment (so a field added later is copied too).
TensorImpl::TensorImpl(const TensorImpl& o) : TensorImpl() { *this = o; }

TensorImpl::~TensorImpl() {
  detail::count_tensors(-1);
  if (grad_fn) release_node(std::move(grad_fn));
}

Node::Node() : seq_(g_next_seq.fetch_add(1, std::memory_order_relaxed)) { detail::count_nodes(1); }

Node::~Node() {
  detail::count_nodes(-1);
  for (auto& e : tape.next_edges) release_node(std::move(e.fn));
  // Saved tensors and replay inputs hold TensorImpls whose destructors enqueue their grad_fn.
}

void Node::fail_released() const {
  fail<AutogradError>(
      "{}: trying to backward through the graph a second time, but its saved tensors were already "
      "freed; call backward(retain_graph=true) the first time if you need to",
      name());
}

SavedTensor::SavedTensor(const Tensor& t, bool is_output) : is_output_(is_output) {
  if (!t.defined()) return;
  version_ = t.version();
  if (is_output) {
    // Alias without grad_fn: the owning node is the grad_fn, and holding it here would be a cycle.
    auto alias = detail::make_pooled<TensorImpl>();
    const TensorImpl& src = *t.impl();
    alias->share_data(src);
    alias->output_nr = src.output_nr;
    alias->tangent = src.tangent;  // forward over reverse: the backward sees the output's tangent
    alias->tangent_level = src.tangent_level;
    if (alias->tangent) fwd::detail::hold_tangent(alias);
    impl_ = std::move(alias);
  } else {
    impl_ = t.impl_ptr();
  }
}

Tensor SavedTensor::unpack(const Node& owner, bool relink) const {
  if (!impl_) return Tensor();
  if (impl_->storage->version != version_)
    fail<AutogradError>(
        "{}: a tensor of shape {} saved for its backward was modified by an in-place operation "
        "(saved at version {}, now version {}); clone it before modifying it",
        owner.name(), impl_->shape, version_, impl_->storage->version);
  if (!is_output_ || !relink) return Tensor(impl_);
  auto t = detail::make_pooled<TensorImpl>(*impl_);
  t->grad_fn = const_cast<Node&>(owner).shared_from_this();
  t->requires_grad = true;
  if (t->tangent) fwd::detail::hold_tangent(t);
  return Tensor(std::move(t));
}

AccumulateGrad::AccumulateGrad(std::shared_ptr<TensorImpl> leaf) : leaf_(std::move(leaf)) {
  seq_ = 0;
}

TensorList AccumulateGrad::apply(TensorList&&) { return {}; }  // the engine accumulates

void fail_stale_view(const TensorImpl& v, const Node* consumer) {
  fail<AutogradError>(
      "{}: a view of shape {} (strides {}, offset {}) was taken from its base before an in-place "
      "operation on the base recorded new history, so the view's own history is out of date and "
      "gradients through it would be wrong; take the view again after the in-place operation, or "
      "clone() the base before modifying it",
      consumer ? consumer->name() : std::string("backward"), v.shape, v.strides, v.offset);
}

Edge gradient_edge(const Tensor& t, const Node* consumer) {
  TensorImpl* impl = t.impl();
  if (impl->is_view && impl->stale_view()) [[unlikely]]
    fail_stale_view(*impl, consumer);
  if (impl->grad_fn) return Edge{impl->grad_fn, impl->output_nr};
  if (!impl->requires_grad) return Edge{};
  std::shared_ptr<Node> acc = impl->grad_accumulator.lock();
  if (!acc) {
    acc = detail::make_pooled<AccumulateGrad>(t.impl_ptr());
    impl->grad_accumulator = acc;
  }
  return Edge{std::move(acc), 0};
}

bool any_requires_grad(std::initializer_list<const Tensor*> ts) {
  return t_grad_enabled && any_needs_grad(ts.begin(), ts.size());
}

bool needs_derivatives(std::initializer_list<const Tensor*> ts) {
  if (t_grad_enabled && any_needs_grad(ts.begin(), ts.size())) return true;
  if (!fwd::detail::t_propagating) [[likely]]
    return false;
  for (const Tensor* t : ts)
    if (t->defined() && fwd::detail::is_dual(*t)) return true;
  return false;
}

void Node::wire(const std::shared_ptr<Node>& node, const Tensor* const* inputs, size_t n,
                const Tensor* outputs, size_t m) {
  Node& self = *node;
  for (size_t i = 0; i < n; ++i) {
    const Tensor* t = inputs[i];
    if (t->defined()) {
      self.tape.next_edges.push_back(gradient_edge(*t, &self));
      self.tape.input_meta.push_back(InputMeta{t->shape(), t->dtype()});
    } else {
      self.tape.next_edges.push_back(Edge{});
      self.tape.input_meta.push_back(InputMeta{});
    }
  }
  if (m == 0) return;
  self.num_outputs_ = static_cast<uint32_t>(m);
  for (size_t k = 0; k < m; ++k) {
    TensorImpl* o = outputs[k].impl();
    self.tape.output_meta.push_back(InputMeta{o->shape, o->dtype});
    if (!is_floating(o->dtype)) continue;  // integer outputs (indices) are not differentiable
    o->grad_fn = node;
    o->output_nr = static_cast<uint32_t>(k);
    o->requires_grad = true;
  }
  if (t_anomaly) [[unlikely]]
    anomaly_check_forward(self, outputs, m);
}

void Node::check_anomalies(const Tensor* outputs, size_t m) {
  if (t_anomaly) [[unlikely]]
    anomaly_check_forward(*this, outputs, m);
}

}  // namespace ag
