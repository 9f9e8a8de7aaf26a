#include "autograd/engine.h"
#include "autograd/engine_internal.h"
#include "autograd/node.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <span>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "autograd/ops/elementwise.h"
#include "autograd/ops/reduce.h"

namespace ag {
namespace detail {
// grad(): an input whose gradient is captured: its position and the output of its node it is.
struct Target {
  size_t index;
  uint32_t output_nr;
};
}  // namespace detail

namespace {
using detail::Target;

thread_local bool t_trace_norms = false;

// ---- gradient-ready hooks: a registry keyed by the leaf's TensorImpl ----
struct HookEntry {
  uint64_t id;
  std::weak_ptr<TensorImpl> leaf;  // detects a freed leaf whose address was reused
  GradReadyHook fn;
};
struct HookRegistry {
  std::mutex mutex;
  std::unordered_map<const TensorImpl*, std::vector<HookEntry>> by_leaf;
  std::atomic<size_t> count{0};  // read without the lock: zero means backward skips all hook work
  uint64_t next_id = 1;
};
HookRegistry& hooks() {
  static HookRegistry r;
  return r;
}

// The live hooks of a leaf (copied, so they run without the lock held).
std::vector<GradReadyHook> hooks_of(const TensorImpl* leaf) {
  HookRegistry& r = hooks();
  std::lock_guard lock(r.mutex);
  std::vector<GradReadyHook> fns;
  auto it = r.by_leaf.find(leaf);
  if (it == r.by_leaf.end()) return fns;
  for (const HookEntry& e : it->second)
    if (e.leaf.lock().get() == leaf) fns.push_back(e.fn);
  return fns;
}

void run_grad_ready_hooks(AccumulateGrad& acc) {
  std::vector<GradReadyHook> fns = hooks_of(acc.leaf().get());
  if (fns.empty()) return;
  Tensor leaf(acc.leaf());
  for (const GradReadyHook& fn : fns) fn(leaf);
}

// For every hooked leaf reachable from the roots, the consumer with the lowest sequence number:
// the replay runs nodes in decreasing sequence order, so once that node has run the leaf's
// gradient is complete. Returns consumer -> the leaves to finish after it.
std::unordered_map<Node*, std::vector<AccumulateGrad*>> hooked_leaves_by_last_consumer(
    std::span<Node* const> roots) {
  std::unordered_map<AccumulateGrad*, Node*> last;
  std::unordered_set<Node*> seen(roots.begin(), roots.end());
  std::vector<Node*> stack(roots.begin(), roots.end());
  {
    HookRegistry& r = hooks();
    std::lock_guard lock(r.mutex);
    while (!stack.empty()) {
      Node* n = stack.back();
      stack.pop_back();
      for (const Edge& e : n->tape.next_edges) {
        if (!e.fn) continue;
        if (auto* acc = dynamic_cast<AccumulateGrad*>(e.fn.get())) {
          if (!r.by_leaf.count(acc->leaf().get())) continue;
          Node*& l = last[acc];
          if (!l || n->sequence_nr() < l->sequence_nr()) l = n;
        } else if (seen.insert(e.fn.get()).second) {
          stack.push_back(e.fn.get());
        }
      }
    }
  }
  std::unordered_map<Node*, std::vector<AccumulateGrad*>> after;
  for (auto& [acc, consumer] : last) after[consumer].push_back(acc);
  return after;
}

// Sums a gradient of a broadcast shape back to the shape its input had (NumPy broadcasting in
// reverse), and gives it the input's dtype (a bfloat16 input of an op that promoted it to float32
// gets a bfloat16 gradient). The single place where broadcasting and promotion are undone.
Tensor reduce_to_input_shape(const Tensor& g, const InputMeta& meta, const Node& node,
                             size_t input);
Tensor reduce_to_input(const Tensor& g, const InputMeta& meta, const Node& node, size_t input) {
  Tensor r = reduce_to_input_shape(g, meta, node, input);
  if (r.dtype() != meta.dtype && is_floating(meta.dtype) && is_floating(r.dtype()))
    r = r.to(meta.dtype);
  return r;
}

Tensor reduce_to_input_shape(const Tensor& g, const InputMeta& meta, const Node& node,
                             size_t input) {
  if (g.shape() == meta.shape) return g;
  const Shape& gs = g.shape();
  const Shape& s = meta.shape;
  int64_t lead = gs.size() - s.size();
  bool ok = lead >= 0;
  std::vector<int64_t> axes;
  for (int64_t i = 0; ok && i < gs.size(); ++i) {
    if (i < lead) {
      axes.push_back(i);
    } else if (s[i - lead] == 1 && gs[i] != 1) {
      axes.push_back(i);
    } else if (s[i - lead] != gs[i]) {
      ok = false;
    }
  }
  if (!ok)
    fail<AutogradError>("{}: backward returned a gradient of shape {} for input {} of shape {}",
                        node.name(), gs, input, s);
  Tensor r = sum(g, axes, /*keepdim=*/true);
  return r.reshape(s);
}

// pending += g
void accumulate(Tensor& pending, Tensor g, bool create_graph) {
  if (!pending.defined()) {
    pending = std::move(g);
  } else if (!create_graph && exclusively_owned(pending) && pending.shape() == g.shape() &&
             pending.is_contiguous()) {
    NoGradGuard ng;
    pending.add_(g);
  } else if (!create_graph && exclusively_owned(g) && pending.shape() == g.shape() &&
             g.is_contiguous()) {
    NoGradGuard ng;
    g.add_(pending);
    pending = std::move(g);
  } else {
    pending = add(pending, g);
  }
}

void accumulate_into_leaf(TensorImpl& leaf, Tensor g, bool create_graph) {
  if (g.dtype() != leaf.dtype) g = g.to(leaf.dtype);
  if (!leaf.grad) {
    if (create_graph) {
      leaf.grad = g.impl_ptr();
    } else if (exclusively_owned(g) && g.is_contiguous() && !g.requires_grad()) {
      // Nothing else refers to this gradient's tensor or buffer: adopt it, no copy.
      leaf.grad = g.impl_ptr();
    } else {
      // It may alias another tensor (a view, an input passed straight through): copy.
      NoGradGuard ng;
      leaf.grad = g.detach().clone().impl_ptr();
    }
    return;
  }
  Tensor cur(leaf.grad);
  if (create_graph || cur.requires_grad()) {
    leaf.grad = add(cur, g).impl_ptr();
  } else {
    NoGradGuard ng;
    cur.add_(g);
  }
}

struct SeqLess {
  bool operator()(const Node* a, const Node* b) const {
    return a->sequence_nr() < b->sequence_nr();
  }
};

// grad(): the nodes from which some target can be reached. Children have lower sequence numbers
// than their consumers, so one pass in increasing sequence order settles each node after its
// children.
std::unordered_set<Node*> nodes_leading_to(const TensorList& outputs,
                                           const std::unordered_multimap<Node*, Target>& targets) {
  std::vector<Node*> order, stack;
  std::unordered_set<Node*> seen;
  for (const Tensor& t : outputs)
    if (t.defined() && t.grad_fn() && seen.insert(t.grad_fn().get()).second)
      stack.push_back(t.grad_fn().get());
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    order.push_back(n);
    for (const Edge& e : n->tape.next_edges)
      if (e.fn && seen.insert(e.fn.get()).second) stack.push_back(e.fn.get());
  }
  std::sort(order.begin(), order.end(), SeqLess{});
  std::unordered_set<Node*> needed;
  for (Node* n : order) {
    bool need = targets.count(n) > 0;
    for (const Edge& e : n->tape.next_edges) need = need || (e.fn && needed.count(e.fn.get()));
    if (need) needed.insert(n);
  }
  return needed;
}

}  // namespace

namespace detail {

// One backward pass (backward(), grad() or grad_at_edges()): the queue of nodes to run, in
// decreasing sequence number, and what to do with the gradients. With `targets` null, gradients go
// into .grad; otherwise they are captured for the target nodes only and no .grad is touched. With
// `sinks` (grad_at_edges), the targets are edges: a gradient sent along one is captured there and
// its node is never queued.
class GraphTask {
 public:
  GraphTask(bool retain_graph, bool create_graph,
            const std::unordered_multimap<Node*, Target>* targets, TensorList* captured,
            bool sinks = false)
      // As in PyTorch, a differentiable backward keeps the graph it differentiates through.
      : retain_graph_(retain_graph || create_graph),
        create_graph_(create_graph),
        sinks_(sinks),
        targets_(targets),
        captured_(captured) {}

  // Nodes left with state if an exception escapes.
  ~GraphTask() {
    for (Node* n : heap_) {
      n->scratch_.queued = false;
      n->scratch_.pending.clear();
    }
  }

  // Queues the roots with their output gradients (ones for one-element outputs when not given).
  void seed(const TensorList& outputs, const TensorList& grad_outputs);
  // Runs the queue to the end.
  void execute();

 private:
  // pending[input_nr] of `next` += g, and `next` queued: the one place gradients flow into a node.
  void send(Node* next, uint32_t input_nr, Tensor g);
  // grad_at_edges: captures g if (next, input_nr) is a sink; false if next is no sink's node.
  bool sink(Node* next, uint32_t input_nr, Tensor& g);
  void trace_norm(Node& node, const TensorList& grads) const;
  void capture(Node& node, const TensorList& grads) const;
  void retain(Node& node, const TensorList& grads) const;
  // Runs one node's backward and sends each input gradient on, summed back to the input's shape.
  void run_node(Node& node, TensorList&& grads);
  // The hooked leaves whose last consumer was `node`: their .grad is written and hooks run now.
  void finish_hooked_leaves(Node& node);
  // A leaf's complete gradient added into its .grad, then its grad-ready hooks; nothing when g is
  // undefined (already written after the leaf's last consumer).
  void write_leaf(AccumulateGrad& acc, Tensor g);

  const bool retain_graph_, create_graph_, sinks_;
  const std::unordered_multimap<Node*, Target>* targets_;
  TensorList* captured_;
  const bool anomaly_ = is_anomaly_enabled();
  // The queue, and the roots' nodes, kept alive during the replay: inline up to a size that
  // covers most graphs' widest point (no allocation per backward).
  SmallVector<Node*, 32> heap_;
  SmallVector<std::shared_ptr<Node>, 4> keep_;
  std::unordered_set<Node*> needed_;  // grad(): the nodes leading to a target
  std::unordered_map<Node*, std::vector<AccumulateGrad*>> finish_after_;
  bool hooks_on_ = false;
};

bool GraphTask::sink(Node* next, uint32_t input_nr, Tensor& g) {
  auto range = targets_->equal_range(next);
  if (range.first == range.second) return false;
  for (auto it = range.first; it != range.second; ++it)
    if (it->second.output_nr == input_nr) {
      accumulate((*captured_)[it->second.index], std::move(g), create_graph_);
      return true;
    }
  fail<AutogradError>(
      "{}: a gradient reached its output {}, which is not among the edges backward stops at",
      next->name(), input_nr);
}

void GraphTask::send(Node* next, uint32_t input_nr, Tensor g) {
  if (sinks_ && sink(next, input_nr, g)) return;
  if (next->scratch_.pending.size() < next->num_outputs())
    next->scratch_.pending.resize(next->num_outputs());
  accumulate(next->scratch_.pending[input_nr], std::move(g), create_graph_);
  if (!next->scratch_.queued) {
    next->scratch_.queued = true;
    heap_.push_back(next);
    std::push_heap(heap_.begin(), heap_.end(), SeqLess{});
  }
}

void GraphTask::seed(const TensorList& outputs, const TensorList& grad_outputs) {
  if (targets_ && !sinks_) needed_ = nodes_leading_to(outputs, *targets_);
  if (!grad_outputs.empty() && grad_outputs.size() != outputs.size())
    fail<AutogradError>("backward: {} outputs but {} output gradients", outputs.size(),
                        grad_outputs.size());
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& out = outputs[i];
    if (!out.defined()) fail<AutogradError>("backward: output {} is undefined", i);
    if (!out.requires_grad())
      fail<AutogradError>(
          "backward: output {} of shape {} does not require grad and has no grad_fn", i,
          out.shape());
    Tensor g = grad_outputs.empty() ? Tensor() : grad_outputs[i];
    if (!g.defined()) {
      if (out.numel() != 1)
        fail<AutogradError>(
            "backward: a gradient can be created implicitly only for one-element outputs; output "
            "{} "
            "has shape {}: pass grad",
            i, out.shape());
      g = ones(out.shape(), out.dtype());
    } else if (!(g.shape() == out.shape())) {
      fail<ShapeError>("backward: gradient of shape {} given for output {} of shape {}", g.shape(),
                       i, out.shape());
    }
    Edge e = gradient_edge(out);
    send(e.fn.get(), e.input_nr, g);
    keep_.push_back(std::move(e.fn));
  }
  // Hooked leaves are written (and their hooks run) right after their last consumer.
  hooks_on_ = !targets_ && hooks().count.load(std::memory_order_acquire) > 0;
  if (hooks_on_) finish_after_ = hooked_leaves_by_last_consumer({heap_.data(), heap_.size()});
}

void GraphTask::trace_norm(Node& node, const TensorList& grads) const {
  double s = 0;
  for (auto& g : grads)
    if (g.defined()) {
      NoGradGuard ng;
      Tensor d = g.to(float64);
      s += sum(mul(d, d)).item();
    }
  node.diagnostics.last_grad_norm = std::sqrt(s);
}

void GraphTask::capture(Node& node, const TensorList& grads) const {
  auto range = targets_->equal_range(&node);
  for (auto it = range.first; it != range.second; ++it) {
    const Tensor& g = grads[it->second.output_nr];
    Tensor& slot = (*captured_)[it->second.index];
    if (g.defined()) slot = slot.defined() ? add(slot, g) : g;
  }
}

void GraphTask::retain(Node& node, const TensorList& grads) const {
  for (auto& [k, weak] : node.tape.retained) {
    auto impl = weak.lock();
    if (impl && k < grads.size() && grads[k].defined())
      accumulate_into_leaf(*impl, grads[k], create_graph_);
  }
}

void GraphTask::run_node(Node& node, TensorList&& grads) {
  if (node.released() && node.num_inputs() > 0) node.fail_released();
  // Materialise zero gradients for outputs that received none (multi-output nodes).
  for (size_t k = 0; k < grads.size(); ++k)
    if (!grads[k].defined() && k < node.tape.output_meta.size())
      grads[k] = zeros(node.tape.output_meta[k].shape, node.tape.output_meta[k].dtype);
  TensorList in_grads = node.apply(std::move(grads));
  if (in_grads.size() > node.num_inputs())
    fail<AutogradError>("{}: backward returned {} gradients for {} inputs", node.name(),
                        in_grads.size(), node.num_inputs());
  for (size_t i = 0; i < in_grads.size(); ++i) {
    const Edge& e = node.tape.next_edges[i];
    if (!e.fn || !in_grads[i].defined()) continue;
    if (anomaly_) [[unlikely]]
      anomaly_check_backward(node, i, in_grads[i]);
    send(e.fn.get(), e.input_nr, reduce_to_input(in_grads[i], node.tape.input_meta[i], node, i));
  }
  if (!retain_graph_) node.release();
}

void GraphTask::finish_hooked_leaves(Node& node) {
  auto it = finish_after_.find(&node);
  if (it == finish_after_.end()) return;
  for (AccumulateGrad* acc : it->second) {
    if (acc->scratch_.pending.empty()) continue;
    // Left queued with an undefined gradient: when popped it does nothing.
    write_leaf(*acc, std::exchange(acc->scratch_.pending[0], Tensor()));
  }
}

void GraphTask::write_leaf(AccumulateGrad& acc, Tensor g) {
  if (!g.defined()) return;
  accumulate_into_leaf(*acc.leaf(), std::move(g), create_graph_);
  if (hooks_on_) run_grad_ready_hooks(acc);
}

void GraphTask::execute() {
  bool prev_mode = is_grad_enabled();
  set_grad_enabled(create_graph_);
  struct Restore {
    bool mode;
    ~Restore() { set_grad_enabled(mode); }
  } restore{prev_mode};

  while (!heap_.empty()) {
    std::pop_heap(heap_.begin(), heap_.end(), SeqLess{});
    Node* node = heap_.back();
    heap_.pop_back();
    node->scratch_.queued = false;
    if (auto* acc = dynamic_cast<AccumulateGrad*>(node)) {
      // A leaf: its one gradient goes to .grad (backward) or is captured (grad()); a list of it is
      // made only for the norm tracing and capture that read one.
      Tensor g = acc->scratch_.pending.empty() ? Tensor() : std::move(acc->scratch_.pending[0]);
      acc->scratch_.pending.clear();
      if (t_trace_norms || (targets_ && !sinks_)) {
        const TensorList grads{g};
        if (t_trace_norms) trace_norm(*node, grads);
        if (targets_ && !sinks_) capture(*node, grads);
      }
      if (!targets_) write_leaf(*acc, std::move(g));
      continue;
    }
    TensorList grads(std::make_move_iterator(node->scratch_.pending.begin()),
                     std::make_move_iterator(node->scratch_.pending.end()));
    node->scratch_.pending.clear();

    if (t_trace_norms) trace_norm(*node, grads);
    if (targets_ && !sinks_) capture(*node, grads);
    // grad(): leads to no requested input
    if (targets_ && !sinks_ && !needed_.count(node)) continue;
    if (!targets_) retain(*node, grads);
    run_node(*node, std::move(grads));
    if (!finish_after_.empty()) finish_hooked_leaves(*node);
  }
}

}  // namespace detail

namespace {

// The replay shared by backward() and grad().
void run(const TensorList& outputs, const TensorList& grad_outputs, bool retain_graph,
         bool create_graph, const std::unordered_multimap<Node*, Target>* targets,
         TensorList* captured) {
  detail::GraphTask task(retain_graph, create_graph, targets, captured);
  task.seed(outputs, grad_outputs);
  task.execute();
}

}  // namespace

void set_grad_norm_tracing(bool on) { t_trace_norms = on; }

GradReadyHandle register_grad_ready_hook(const Tensor& leaf, GradReadyHook hook) {
  if (!leaf.defined()) fail<AutogradError>("register_grad_ready_hook: undefined tensor");
  if (!leaf.is_leaf())
    fail<AutogradError>(
        "register_grad_ready_hook: the tensor of shape {} is not a leaf (it has grad_fn {})",
        leaf.shape(), leaf.grad_fn()->name());
  if (!leaf.requires_grad())
    fail<AutogradError>(
        "register_grad_ready_hook: the leaf of shape {} does not require grad, so no backward "
        "will ever reach it",
        leaf.shape());
  if (!hook) fail<AutogradError>("register_grad_ready_hook: empty hook");
  HookRegistry& r = hooks();
  std::lock_guard lock(r.mutex);
  uint64_t id = r.next_id++;
  auto& list = r.by_leaf[leaf.impl()];
  // Entries of a freed tensor that lived at the same address go now.
  std::erase_if(list, [&](const HookEntry& e) {
    bool stale = e.leaf.lock().get() != leaf.impl();
    if (stale) r.count.fetch_sub(1, std::memory_order_release);
    return stale;
  });
  list.push_back(HookEntry{id, leaf.impl_ptr(), std::move(hook)});
  r.count.fetch_add(1, std::memory_order_release);
  return GradReadyHandle(id);
}

void GradReadyHandle::remove() {
  if (id_ == 0) return;
  HookRegistry& r = hooks();
  std::lock_guard lock(r.mutex);
  for (auto it = r.by_leaf.begin(); it != r.by_leaf.end(); ++it) {
    auto& list = it->second;
    auto e =
        std::find_if(list.begin(), list.end(), [&](const HookEntry& h) { return h.id == id_; });
    if (e == list.end()) continue;
    list.erase(e);
    r.count.fetch_sub(1, std::memory_order_release);
    if (list.empty()) r.by_leaf.erase(it);
    break;
  }
  id_ = 0;
}

GradReadyHandle& GradReadyHandle::operator=(GradReadyHandle&& other) noexcept {
  if (this != &other) {
    remove();
    id_ = other.id_;
    other.id_ = 0;
  }
  return *this;
}
bool is_grad_norm_tracing() { return t_trace_norms; }

void backward(const TensorList& outputs, const TensorList& grad_outputs, bool retain_graph,
              bool create_graph) {
  run(outputs, grad_outputs, retain_graph, create_graph, nullptr, nullptr);
}

namespace detail {

TensorList grad_at_edges(const TensorList& outputs, const TensorList& grad_outputs,
                         const std::vector<Edge>& sinks, bool create_graph) {
  std::unordered_multimap<Node*, Target> targets;
  for (size_t i = 0; i < sinks.size(); ++i)
    if (sinks[i].fn) targets.emplace(sinks[i].fn.get(), Target{i, sinks[i].input_nr});
  TensorList captured(sinks.size());
  GraphTask task(/*retain_graph=*/false, create_graph, &targets, &captured, /*sinks=*/true);
  task.seed(outputs, grad_outputs);
  task.execute();
  return captured;
}

}  // namespace detail

TensorList grad(const TensorList& outputs, const TensorList& inputs, const TensorList& grad_outputs,
                bool retain_graph, bool create_graph, bool allow_unused) {
  std::unordered_multimap<Node*, Target> targets;
  std::vector<std::shared_ptr<Node>> keep;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (!x.defined() || !x.requires_grad())
      fail<AutogradError>("grad: input {} does not require grad", i);
    Edge e = gradient_edge(x);
    targets.emplace(e.fn.get(), Target{i, e.input_nr});
    keep.push_back(std::move(e.fn));
  }
  TensorList captured(inputs.size());
  run(outputs, grad_outputs, retain_graph, create_graph, &targets, &captured);
  for (size_t i = 0; i < inputs.size(); ++i)
    if (!captured[i].defined() && !allow_unused)
      fail<AutogradError>(
          "grad: input {} of shape {} was not used to compute the outputs (pass allow_unused=true "
          "to get an undefined gradient instead)",
          i, inputs[i].shape());
  return captured;
}

}  // namespace ag
