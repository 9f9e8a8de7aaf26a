// Activation checkpointing: trade compute for memory by not keeping a function's intermediate
// values for backward, and recomputing them when backward needs them (the counterpart of PyTorch's
// torch.utils.checkpoint.checkpoint).
//
//   // One transformer block: its activations are not kept, only its input x.
//   Tensor y = ag::checkpoint([&](const Tensor& x) { return block->forward(x); }, x);
//   // Several inputs and outputs:
//   TensorList ys = ag::checkpoint([&](const TensorList& in) -> TensorList {
//     return {f(in[0], in[1]), g(in[0])};
//   }, {a, b});
//
// What is kept, what is recomputed, what it costs:
// - Forward: fn runs once, recorded as usual; then its recorded graph is dropped and ONE node takes
//   its place on the tape. That node keeps the inputs (aliases, no copy), fn itself, the
//   random generator states (below), and an edge to every tensor requiring grad that fn's graph
//   reached from outside it: the inputs, and the tensors fn captured rather than received, such
//   as a module's parameters. The intermediate values live only while fn runs: the peak of a
//   checkpointed forward is what is kept plus one fn's activations.
// - Backward: when the node's turn comes, fn runs again on the same inputs with recording on (one
//   more forward of fn: about a third more compute for a model whose every block is
//   checkpointed), a backward runs through that recomputed graph from the node's output
//   gradients, stopping at the edges found in the forward, and the gradients reaching those edges
//   go on into the rest of the backward. So the inputs and the captured parameters receive exactly
//   the gradients they would receive without checkpointing (bit-identical, as the recomputation
//   does the same arithmetic in the same order): .grad accumulation, gradient-ready hooks
//   (engine.h), grad() and retain_graph behave as without checkpointing. The recomputed graph is
//   freed as that backward runs.
// - Random numbers (dropout): the states of the default generator and of `options.generators`
//   (e.g. the generators of the Dropout modules fn runs) are saved before fn's forward run, set
//   back for the recomputation, and after it put back where they stood, so the recomputation
//   draws the same masks and the caller's stream of random numbers is not disturbed. A generator
//   fn uses that is not listed (and not the default one) draws differently in the recomputation:
//   list every generator fn draws from. Listed generators must outlive the backward.
// - Autocast (grad_mode.h): the recomputation runs under the autocast state of the forward run,
//   wherever the backward is called, so it computes in the same dtypes.
// - Higher-order gradients: supported. With create_graph = true the recomputation and its
//   backward are themselves recorded, so the gradients are differentiable functions of the inputs
//   and parameters (double backward, gradgradcheck), as without checkpointing, equal to them up to
//   rounding (the double backward may sum some contributions in another order); the memory saving
//   then applies to the first forward only.
// - Forward mode (jvp, dual tensors): not supported through a checkpoint; an output carrying a
//   tangent raises AutogradError.
// - With grad mode off (NoGradGuard, evaluation), checkpoint just returns fn(inputs): nothing is
//   recorded either way. If nothing fn computes requires grad, no node is recorded and the outputs
//   do not require grad, as without checkpointing.
//
// Requirements on fn: it runs again during backward, after checkpoint has returned, so what it
// captures must still be alive then (capture tensors by value, not references to locals). It must
// compute the same thing (same ops on the same tensors) when run again: the same tensors requiring
// grad must be reached (AutogradError naming the checkpoint otherwise), outputs of the same shapes
// (ShapeError). It must not modify its inputs in place, and the inputs must not be modified in
// place before the backward (AutogradError, as for any saved tensor). Gradients of tensors made
// inside fn (retain_grad) are not kept.
#pragma once

#include <functional>
#include <vector>

#include "autograd/ops/random.h"
#include "autograd/tensor.h"

namespace ag {

// What checkpoint saves of the random state.
struct CheckpointOptions {
  // Save the generators' states at the forward and set them back for the recomputation (the same
  // dropout masks). false: the recomputation draws new numbers (only for a fn that draws none).
  bool preserve_rng_state = true;
  // Generators fn draws from besides the default generator (each saved and restored too; null
  // entries are skipped; one listed twice is handled once).
  std::vector<Generator*> generators = {};
};

// A function of a list of tensors returning a list of tensors.
using CheckpointFn = std::function<TensorList(const TensorList&)>;

// fn(inputs), with fn's intermediate values recomputed during backward instead of kept (see the
// top of this file). Returns fn's outputs (at least one, every one defined): floating outputs
// that depend on a tensor requiring grad require grad, with the checkpoint node as their grad_fn.
// Errors: ValueError for an empty fn or an undefined input; AutogradError if fn returns no tensor
// or an undefined one, or if an output carries a forward-mode tangent; and, during backward, the
// errors above when the recomputation differs from the forward.
TensorList checkpoint(const CheckpointFn& fn, const TensorList& inputs,
                      const CheckpointOptions& options = {});

// One tensor in, one out: checkpoint(fn, {input}, options)[0].
Tensor checkpoint(const std::function<Tensor(const Tensor&)>& fn, const Tensor& input,
                  const CheckpointOptions& options = {});

}  // namespace ag
