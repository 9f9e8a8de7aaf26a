// The tape: every differentiable op that runs while grad mode is on records a Node. A Node knows
// the edges to the nodes that produced its inputs, the tensors its backward needs (SavedTensor),
// and how to turn the gradient of its output into gradients of its inputs.
//
// Nodes carry a sequence number taken from one counter at recording time, so recording order is a
// topological order: backward (engine.h) replays the reachable nodes in decreasing sequence number,
// with no graph search and no recursion.
//
// Ops define their backward with `record` (below) right next to their forward; custom ops written
// by users go through autograd/function.h instead.
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

using TensorList = std::vector<Tensor>;
struct Save;

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
  SavedTensor(const Tensor& t, bool is_output);
  Tensor unpack(const Node& owner) const;
  bool defined() const { return impl_ != nullptr; }

 private:
  std::shared_ptr<TensorImpl> impl_;
  uint32_t version_ = 0;
  bool is_output_ = false;
};

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
  virtual bool can_replay() const { return static_cast<bool>(replay_fn); }
  virtual TensorList replay(const TensorList& inputs) const { return replay_fn(inputs); }

  uint64_t sequence_nr() const { return seq_; }
  size_t num_inputs() const { return next_edges.size(); }
  uint32_t num_outputs() const { return num_outputs_; }
  bool needs_input_grad(size_t i) const { return i < next_edges.size() && next_edges[i].fn; }
  // Unpacks saved tensor i (checking its version).
  Tensor saved(size_t i) const;
  // Drops saved tensors (after a backward without retain_graph).
  virtual void release();
  bool released() const { return released_; }

  SmallVector<Edge, 3> next_edges;
  SmallVector<InputMeta, 3> input_meta;
  SmallVector<InputMeta, 1> output_meta;
  SmallVector<SavedTensor, 3> saved_tensors;
  // check_tape support: input values at record time and a function recomputing the outputs.
  TensorList replay_inputs;
  std::function<TensorList(const TensorList&)> replay_fn;
  std::string recorded_at;  // where it was recorded, when known (custom ops, anomaly mode)
  // Anomaly mode: the raw call stack captured when the node was recorded (empty otherwise); turned
  // into recorded_at text only when an anomaly is reported.
  std::vector<void*> recorded_stack;
  // Engine state during one backward: pending gradients of each output.
  SmallVector<Tensor, 1> pending;
  bool queued = false;
  // Non-leaf outputs that asked for retain_grad(): (output_nr, tensor).
  std::vector<std::pair<uint32_t, std::weak_ptr<TensorImpl>>> retained;
  double last_grad_norm = -1;  // filled when grad-norm tracing is on (diagnostics, tape drawings)

 protected:
  friend void attach(const std::shared_ptr<Node>&, std::initializer_list<const Tensor*>, Tensor&,
                     std::initializer_list<Save>);
  uint32_t num_outputs_ = 1;
  bool released_ = false;
  bool had_saved_ = false;
  uint64_t seq_;
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

// A node whose backward is a callable; what `record` creates for built-in ops.
template <class F>
class FunctionNode final : public Node {
 public:
  FunctionNode(const char* name, F backward) : name_(name), backward_(std::move(backward)) {}
  std::string name() const override { return name_; }
  TensorList apply(TensorList&& grads) override { return backward_(*this, grads[0]); }

 private:
  const char* name_;
  F backward_;
};

// The edge a gradient of `t` flows along (its grad_fn, or its leaf accumulator). Null if t does not
// require grad. Raises AutogradError if t is a view whose history is stale (TensorImpl::stale_view:
// taken before a recorded in-place op on its base); `consumer`, if given, names the op in the
// error.
Edge gradient_edge(const Tensor& t, const Node* consumer = nullptr);
// The AutogradError gradient_edge raises for a stale view.
[[noreturn]] void fail_stale_view(const TensorImpl& view, const Node* consumer);
// Whether recording is on and any of the tensors requires grad (or is a view with stale history,
// so that recording the op raises the error naming it).
bool any_requires_grad(std::initializer_list<const Tensor*> ts);
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

// What to save for backward: an input (Save{x}) or this op's output (Save{out, true}).
struct Save {
  const Tensor& t;
  bool is_output = false;
};

// Wires `node` into the tape: takes a sequence number, connects edges to the inputs, saves tensors
// and makes it grad_fn of `out` (which becomes a non-leaf requiring grad).
void attach(const std::shared_ptr<Node>& node, std::initializer_list<const Tensor*> inputs,
            Tensor& out, std::initializer_list<Save> saved);

// Records a single-output op. `backward(node, grad_out)` returns one gradient per input, written
// with differentiable ops so that double backward works; `node.saved(i)` gives saved tensor i.
// `replay` recomputes the output from the inputs (used only by check_tape).
template <class Backward, class Replay>
void record(const char* name, std::initializer_list<const Tensor*> inputs, Tensor& out,
            std::initializer_list<Save> saved, Backward&& backward, Replay&& replay) {
  auto node = std::make_shared<FunctionNode<std::decay_t<Backward>>>(
      name, std::forward<Backward>(backward));
  attach(node, inputs, out, saved);
  if (is_tape_checking()) {
    node->replay_fn = [r = std::forward<Replay>(replay)](const TensorList& x) -> TensorList {
      return {r(x)};
    };
    for (const Tensor* t : inputs)
      node->replay_inputs.push_back(t->defined() ? t->detach().clone() : Tensor());
  }
}

// Anomaly mode hooks (see engine.h). The forward one is called, when is_anomaly_enabled(), by
// every place that records a node, after its outputs are wired: it captures the call stack and
// checks the outputs. The backward one checks the gradient a node returned for input `input`.
// Each raises AnomalyError at the first NaN or infinity.
void anomaly_check_forward(Node& node, const Tensor* outputs, size_t count);
void anomaly_check_backward(Node& node, size_t input, const Tensor& grad);
// Where `node` was recorded: recorded_at if set, else its captured stack resolved to the first
// frame outside the library; "an unknown place" if neither is known.
std::string describe_recorded_at(Node& node);

// Deferred destruction of graph pieces: never recursive, so a chain of a million nodes is freed in
// a loop. Used by Node and TensorImpl destructors.
void release_node(std::shared_ptr<Node>&& node);

}  // namespace ag
