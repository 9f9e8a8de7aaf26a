#include "autograd/checkpoint.h"

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <utility>

#include "autograd/dtype.h"
#include "autograd/engine_internal.h"
#include "autograd/error.h"
#include "autograd/forward.h"
#include "autograd/grad_mode.h"
#include "autograd/node.h"

namespace ag {
namespace {

// The states of some generators, and where they belong.
class RngStates {
 public:
  RngStates() = default;
  // The current states of the default generator and of `gens` (nulls and repeats skipped).
  static RngStates take(const std::vector<Generator*>& gens) {
    RngStates s;
    s.add(&default_generator());
    for (Generator* g : gens)
      if (g) s.add(g);
    return s;
  }
  // Puts every generator back into its saved state.
  void restore() const {
    for (const auto& [gen, state] : saved_) {
      std::lock_guard<std::mutex> lock(gen->mutex());
      *gen = *state;
    }
  }
  // The generators, for taking their states again.
  std::vector<Generator*> generators() const {
    std::vector<Generator*> g;
    for (const auto& entry : saved_) g.push_back(entry.first);
    return g;
  }

 private:
  void add(Generator* g) {
    for (const auto& entry : saved_)
      if (entry.first == g) return;
    std::lock_guard<std::mutex> lock(g->mutex());
    saved_.emplace_back(g, std::make_unique<Generator>(*g));
  }
  std::vector<std::pair<Generator*, std::unique_ptr<Generator>>> saved_;
};

// The edges leaving the graph recorded for `outputs` since the node numbered `start` (the graph
// of one run of fn): edges to nodes recorded earlier, and to leaves. With the shape and dtype of
// the tensor each carries. Each edge once, in the order found.
struct Boundary {
  std::vector<Edge> edges;
  std::vector<InputMeta> meta;
  std::set<std::pair<const Node*, uint32_t>> seen;

  void add(const Edge& e, const InputMeta& m) {
    if (!seen.insert({e.fn.get(), e.input_nr}).second) return;
    edges.push_back(e);
    meta.push_back(m);
  }
  bool contains(const Edge& e) const { return seen.count({e.fn.get(), e.input_nr}) > 0; }
};

Boundary boundary_of(const TensorList& outputs, uint64_t start) {
  Boundary b;
  std::set<const Node*> visited;
  std::vector<Node*> stack;
  for (const Tensor& out : outputs) {
    if (!out.requires_grad()) continue;
    Edge e = gradient_edge(out);
    if (e.fn->sequence_nr() < start)
      b.add(e, InputMeta{out.shape(), out.dtype()});  // fn returned such a tensor as it is
    else if (visited.insert(e.fn.get()).second)
      stack.push_back(e.fn.get());
  }
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (size_t i = 0; i < n->tape.next_edges.size(); ++i) {
      const Edge& e = n->tape.next_edges[i];
      if (!e.fn) continue;
      if (e.fn->sequence_nr() < start)
        b.add(e, n->tape.input_meta[i]);
      else if (visited.insert(e.fn.get()).second)
        stack.push_back(e.fn.get());
    }
  }
  return b;
}

// fn(inputs), checked: at least one output, every one defined.
TensorList run_fn(const CheckpointFn& fn, const TensorList& inputs) {
  TensorList out = fn(inputs);
  if (out.empty())
    fail<AutogradError>("checkpoint: fn returned no tensors (it must return at least one)");
  for (size_t k = 0; k < out.size(); ++k)
    if (!out[k].defined())
      fail<AutogradError>("checkpoint: fn returned an undefined tensor as output {}", k);
  return out;
}

// The node that stands for one checkpointed run of fn.
class CheckpointNode final : public Node {
 public:
  std::string name() const override { return "checkpoint"; }
  TensorList apply(TensorList&& grads) override;
  void release() override {
    inputs_.clear();
    fn_ = nullptr;
    released_ = true;
  }
  // Takes fn, the inputs, the generator states and the edges found, and becomes the grad_fn of
  // the outputs that require grad (each replaced by a fresh handle without fn's graph).
  void adopt(const CheckpointFn& fn, const TensorList& inputs, std::optional<RngStates> rng,
             Boundary&& b, TensorList& outputs);

 private:
  // fn run again on the saved inputs, with recording on and the forward's random states.
  TensorList recompute();
  // The recomputation's outputs requiring grad, with their gradients; errors if it differs from
  // the forward.
  void roots(TensorList& out, TensorList& grads) const;

  CheckpointFn fn_;
  std::vector<SavedTensor> inputs_;
  std::optional<RngStates> rng_;
  Dtype autocast_ = Dtype::float32;   // the forward's autocast state, for the recomputation
  std::vector<bool> differentiable_;  // per output: it required grad in the forward
};

void CheckpointNode::adopt(const CheckpointFn& fn, const TensorList& inputs,
                           std::optional<RngStates> rng, Boundary&& b, TensorList& outputs) {
  fn_ = fn;
  autocast_ = autocast_dtype();
  for (const Tensor& x : inputs) inputs_.emplace_back(x, /*is_output=*/false);
  rng_ = std::move(rng);
  for (size_t i = 0; i < b.edges.size(); ++i) {
    tape.next_edges.push_back(std::move(b.edges[i]));
    tape.input_meta.push_back(b.meta[i]);
  }
  num_outputs_ = static_cast<uint32_t>(outputs.size());
  std::shared_ptr<Node> self = shared_from_this();
  for (size_t k = 0; k < outputs.size(); ++k) {
    Tensor& out = outputs[k];
    tape.output_meta.push_back(InputMeta{out.shape(), out.dtype()});
    differentiable_.push_back(out.requires_grad());
    if (!out.requires_grad()) continue;
    out = out.detach();  // fn's graph goes with the old handle
    TensorImpl* o = out.impl();
    o->grad_fn = self;
    o->output_nr = static_cast<uint32_t>(k);
    o->requires_grad = true;
  }
  check_anomalies(outputs.data(), outputs.size());
}

TensorList CheckpointNode::recompute() {
  if (!fn_) fail_released();
  TensorList x;
  for (const SavedTensor& s : inputs_) x.push_back(s.unpack(*this));
  std::optional<RngStates> now;
  if (rng_) {
    now.emplace(RngStates::take(rng_->generators()));
    rng_->restore();
  }
  struct PutBack {
    const std::optional<RngStates>& now;
    ~PutBack() {
      if (now) now->restore();
    }
  } put_back{now};
  EnableGradGuard recording;
  AutocastGuard autocast(autocast_);
  return run_fn(fn_, x);
}

void CheckpointNode::roots(TensorList& out, TensorList& grads) const {
  if (out.size() != num_outputs())
    fail<AutogradError>(
        "checkpoint: fn returned {} outputs when recomputed in backward, {} in the forward (fn "
        "must compute the same thing when run again)",
        out.size(), num_outputs());
  TensorList r, g;
  for (size_t k = 0; k < out.size(); ++k) {
    const InputMeta& m = tape.output_meta[k];
    if (!(out[k].shape() == m.shape) || out[k].dtype() != m.dtype)
      fail<ShapeError>(
          "checkpoint: output {} was {} {} in the forward but {} {} when recomputed in backward", k,
          dtype_name(m.dtype), m.shape, dtype_name(out[k].dtype()), out[k].shape());
    if (!differentiable_[k]) continue;
    if (!out[k].requires_grad())
      fail<AutogradError>(
          "checkpoint: output {} required grad in the forward but not when recomputed in "
          "backward (fn must compute the same thing when run again)",
          k);
    r.push_back(out[k]);
    g.push_back(grads[k]);
  }
  out = std::move(r);
  grads = std::move(g);
}

TensorList CheckpointNode::apply(TensorList&& grads) {
  bool create_graph = is_grad_enabled();  // the engine records the backward only then
  TensorList out = recompute();
  roots(out, grads);
  Boundary b = boundary_of(out, sequence_nr());
  std::set<std::pair<const Node*, uint32_t>> known;
  for (const Edge& e : tape.next_edges) known.insert({e.fn.get(), e.input_nr});
  for (const Edge& e : b.edges)
    if (!known.count({e.fn.get(), e.input_nr}))
      fail<AutogradError>(
          "checkpoint: when recomputed in backward, fn reached a tensor requiring grad (through "
          "{}) that its forward did not use; fn must use the same tensors when run again",
          e.fn->name());
  std::vector<Edge> sinks(tape.next_edges.begin(), tape.next_edges.end());
  return detail::grad_at_edges(out, grads, sinks, create_graph);
}

void check_arguments(const CheckpointFn& fn, const TensorList& inputs) {
  if (!fn) fail<ValueError>("checkpoint: fn is empty");
  for (size_t i = 0; i < inputs.size(); ++i)
    if (!inputs[i].defined())
      fail<ValueError>("checkpoint: input {} of {} is undefined", i, inputs.size());
}

}  // namespace

TensorList checkpoint(const CheckpointFn& fn, const TensorList& inputs,
                      const CheckpointOptions& options) {
  check_arguments(fn, inputs);
  if (!is_grad_enabled()) return run_fn(fn, inputs);
  // Made first: its sequence number is below every node fn records, so the edges leaving fn's
  // graph are those to nodes numbered below it.
  auto node = std::make_shared<CheckpointNode>();
  std::optional<RngStates> rng;
  if (options.preserve_rng_state) rng.emplace(RngStates::take(options.generators));
  TensorList out = run_fn(fn, inputs);
  if (fwd::detail::propagating())
    for (size_t k = 0; k < out.size(); ++k)
      if (fwd::detail::is_dual(out[k]))
        fail<AutogradError>(
            "checkpoint: output {} of shape {} carries a forward-mode tangent; forward mode is "
            "not supported through a checkpoint",
            k, out[k].shape());
  Boundary b = boundary_of(out, node->sequence_nr());
  if (b.edges.empty()) return out;  // nothing requires grad: nothing to record
  node->adopt(fn, inputs, std::move(rng), std::move(b), out);
  return out;
}

Tensor checkpoint(const std::function<Tensor(const Tensor&)>& fn, const Tensor& input,
                  const CheckpointOptions& options) {
  if (!fn) fail<ValueError>("checkpoint: fn is empty");
  CheckpointFn list_fn = [fn](const TensorList& x) { return TensorList{fn(x[0])}; };
  return checkpoint(list_fn, TensorList{input}, options)[0];
}

}  // namespace ag
