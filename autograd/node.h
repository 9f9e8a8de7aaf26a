// The tape: every differentiable op that runs while grad mode is on records a Node. A Node knows
// the edges to the nodes that produced its inputs, the tensors its backward needs (SavedTensor),
// and how to turn the gradient of its output into gradients of its inputs.
//
// Nodes carry a sequence number taken from one counter at recording time, so recording order is a
// topological order: backward (engine.h) replays the reachable nodes in decreasing sequence number,
// with no graph search and no recursion.
//
// Built-in ops define their rules with `record` (autograd/op.h) right next to their forward; custom
// ops written by users go through autograd/function.h instead.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/grad_mode.h"
#include "autograd/small_vector.h"
#include "autograd/tensor.h"

namespace ag {

// Where a gradient goes: input `input_nr` of node `fn`. For a leaf, fn is its AccumulateGrad node.
struct Edge {
  std::shared_ptr<Node> fn;
  uint32_t input_nr = 0;
};

// Shape and dtype an input had when recorded: gradients are summed back to this shape centrally.
struct InputMeta {
  Shape shape;
  Dtype dtype = float32;
};

// A tensor kept for backward. Records the storage version at save time; unpacking after an in-place
// write raises AutogradError naming the op. Outputs of the owning node are saved without their
// grad_fn (no reference cycle) and re-linked to the node when unpacked.
class SavedTensor {
 public:
  SavedTensor() = default;
  // `is_output`: t is an output of the owning node (saved without its grad_fn).
  SavedTensor(const Tensor& t, bool is_output);
  // `relink`: an output comes back with its grad_fn (the owner) and requiring grad, as a backward
  // that is itself recorded needs it; without, it comes back as saved (its values and tangent, no
  // history), which a backward that records nothing may use and which costs no new TensorImpl.
  Tensor unpack(const Node& owner, bool relink = true) const;
  bool defined() const { return impl_ != nullptr; }

 private:
  std::shared_ptr<TensorImpl> impl_;
  uint32_t version_ = 0;
  bool is_output_ = false;
};

// What the tape keeps of one recorded op: where gradients go and the metadata the engine needs.
struct TapeRecord {
  SmallVector<Edge, 3> next_edges;        // one per input (an empty edge: no gradient wanted)
  SmallVector<InputMeta, 3> input_meta;   // each input's shape and dtype when recorded
  SmallVector<InputMeta, 1> output_meta;  // each output's shape and dtype
  // Non-leaf outputs that asked for retain_grad(): (output_nr, tensor).
  std::vector<std::pair<uint32_t, std::weak_ptr<TensorImpl>>> retained;
};

// check_tape support (gradcheck.h): input values at record time and a function recomputing the
// outputs from them. Filled only under a TapeCheckGuard (custom ops: always).
struct ReplayData {
  TensorList replay_inputs;
  std::function<TensorList(const TensorList&)> replay_fn;
};

// Diagnostics: where the node was recorded and the gradient norm it last received.
struct Diagnostics {
  std::string recorded_at;  // where it was recorded, when known (custom ops, anomaly mode)
  // Anomaly mode: the raw call stack captured when the node was recorded (empty otherwise); turned
  // into recorded_at text only when an anomaly is reported.
  std::vector<void*> recorded_stack;
  double last_grad_norm = -1;  // filled when grad-norm tracing is on (diagnostics, tape drawings)
};

// The engine's scratch during one backward: pending gradients of each output, and whether the node
// is in the queue. Private to the engine (detail::GraphTask).
struct EngineScratch {
  SmallVector<Tensor, 1> pending;
  bool queued = false;
};

namespace detail {
class GraphTask;
}

// One recorded op. Its state is held by concern, as named members: `tape` (where gradients go and
// the metadata the engine needs), `tape_check` (check_tape's replay), `diagnostics` (where it was
// recorded, the last gradient norm) and, private to the engine, the scratch of the backward running
// through it. Saved tensors belong to the concrete node types (OpNode in op.h, custom nodes in
// function.h).
class Node : public std::enable_shared_from_this<Node> {
 public:
  Node();
  virtual ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Op name as users know it ("matmul", "mul", a custom op's name).
  virtual std::string name() const = 0;
  // Gradients of the outputs (one per output; undefined means zero) -> gradients of the inputs (one
  // per input; undefined means none). May return gradients of a broadcast shape: the engine sums
  // them back to the recorded input shape.
  virtual TensorList apply(TensorList&& grad_outputs) = 0;
  // Recomputes the outputs from inputs (for check_tape); only nodes recorded under a
  // TapeCheckGuard, and custom ops, can. Returns false if this node cannot.
  virtual bool can_replay() const { return static_cast<bool>(tape_check.replay_fn); }
  virtual TensorList replay(const TensorList& inputs) const { return tape_check.replay_fn(inputs); }

  uint64_t sequence_nr() const { return seq_; }
  size_t num_inputs() const { return tape.next_edges.size(); }
  uint32_t num_outputs() const { return num_outputs_; }
  bool needs_input_grad(size_t i) const {
    return i < tape.next_edges.size() && tape.next_edges[i].fn;
  }
  // Drops saved tensors (after a backward without retain_graph).
  virtual void release() {}
  bool released() const { return released_; }
  // The error for a backward through a node whose saved tensors were released.
  [[noreturn]] void fail_released() const;

  // Connects `node` to its inputs (edges, input metadata), makes it grad_fn of the floating
  // outputs and, when there are outputs, runs anomaly mode's forward check on them. Used by record
  // (op.h) for every built-in op, cat and split included, and by custom ops for their inputs.
  static void wire(const std::shared_ptr<Node>& node, const Tensor* const* inputs,
                   size_t num_inputs, const Tensor* outputs, size_t num_outputs);
  // Anomaly mode's forward check of the outputs (a no-op unless anomaly mode is on).
  void check_anomalies(const Tensor* outputs, size_t num_outputs);

  // Edges to the inputs' producers and the shapes the engine fits gradients to.
  TapeRecord tape;
  // check_tape's replay (filled under a TapeCheckGuard; custom ops: always).
  ReplayData tape_check;
  // Where the node was recorded and the gradient norm it last received.
  Diagnostics diagnostics;

 protected:
  uint32_t num_outputs_ = 1;
  bool released_ = false;
  uint64_t seq_;

 private:
  friend class detail::GraphTask;
  EngineScratch scratch_;
};

// The node that adds incoming gradients into a leaf's .grad.
class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(std::shared_ptr<TensorImpl> leaf);
  std::string name() const override { return "AccumulateGrad"; }
  TensorList apply(TensorList&& grads) override;
  const std::shared_ptr<TensorImpl>& leaf() const { return leaf_; }

 private:
  std::shared_ptr<TensorImpl> leaf_;
};

// The edge a gradient of `t` flows along (its grad_fn, or its leaf accumulator). Null if t does not
// require grad. Raises AutogradError if t is a view whose history is stale (TensorImpl::stale_view:
// taken before a recorded in-place op on its base); `consumer`, if given, names the op in the
// error.
Edge gradient_edge(const Tensor& t, const Node* consumer = nullptr);
// The AutogradError gradient_edge raises for a stale view.
[[noreturn]] void fail_stale_view(const TensorImpl& view, const Node* consumer);
// Whether any of the n tensors (undefined ones skipped) requires grad or is a view with stale
// history (so that recording an op on it raises the error naming it). Grad mode is not looked at.
// The one test of "an op on these needs a node" behind any_requires_grad, needs_derivatives,
// record (op.h) and custom functions.
inline bool any_needs_grad(const Tensor* const* ts, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (!ts[i]->defined()) continue;
    const TensorImpl& impl = *ts[i]->impl_ptr();
    if (impl.requires_grad || impl.stale_view()) return true;
  }
  return false;
}
// Whether recording is on and any of the tensors requires grad (or is a view with stale history,
// so that recording the op raises the error naming it).
bool any_requires_grad(std::initializer_list<const Tensor*> ts);
// Whether an op on these tensors needs its derivative rules: any_requires_grad, or forward mode is
// propagating and one of them is a dual (forward.h). The guard in front of every `record`.
bool needs_derivatives(std::initializer_list<const Tensor*> ts);
// Whether nothing but this handle refers to t's TensorImpl and buffer. The engine then adds into a
// gradient in place; a fused backward may write into the gradient the engine hands it
// (linear_relu).
inline bool exclusively_owned(const Tensor& t) {
  return t.impl_ptr().use_count() == 1 && t.impl()->storage.use_count() == 1;
}
// Tape checking (see gradcheck.h): while on, nodes also keep their input values and a replay
// function.
bool is_tape_checking();
void set_tape_checking(bool on);
class TapeCheckGuard {
 public:
  TapeCheckGuard() : prev_(is_tape_checking()) { set_tape_checking(true); }
  ~TapeCheckGuard() { set_tape_checking(prev_); }

 private:
  bool prev_;
};

// Anomaly mode hooks (see engine.h). The forward one is called, when is_anomaly_enabled(), by
// every place that records a node, after its outputs are wired: it captures the call stack and
// checks the outputs. The backward one checks the gradient a node returned for input `input`.
// Each raises AnomalyError at the first NaN or infinity.
void anomaly_check_forward(Node& node, const Tensor* outputs, size_t count);
void anomaly_check_backward(Node& node, size_t input, const Tensor& grad);
// Where `node` was recorded: diagnostics.recorded_at if set, else its captured stack resolved to
// the first frame outside the library; "an unknown place" if neither is known.
std::string describe_recorded_at(Node& node);

// Deferred destruction of graph pieces: never recursive, so a chain of a million nodes is freed in
// a loop. Used by Node and TensorImpl destructors.
void release_node(std::shared_ptr<Node>&& node);

}  // namespace ag
