// Gradient checking as a library feature: compare the gradients autograd computes with central
// finite differences, for built-in ops, your own ops (function.h) and whole models.
//
//   auto report = ag::gradcheck([](const ag::TensorList& x) { return my_op(x[0], x[1]); },
//                               {a.to(ag::float64).requires_grad_(), b.to(ag::float64)...});
//   if (!report) fmt::print("{}\n", report);   // names the worst entry: input, output, index,
//   values
//
// Checks run in float64 (float32 inputs are rejected: their rounding swamps any tolerance). An
// entry passes when |analytic - numeric| <= atol + rtol * |numeric|.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "autograd/tensor.h"

namespace ag {

// Settings of gradcheck, gradgradcheck and check_tape.
struct GradcheckOptions {
  double eps = 1e-6;  // finite-difference step
  // Absolute tolerance.
  double atol = 1e-5;
  // Relative tolerance (times |numeric|).
  double rtol = 1e-3;
  // Fast mode: instead of the full Jacobian J, compare v^T J u for random u, v (one backward and
  // two forward evaluations per check); `projections` such checks.
  bool fast_mode = false;
  // Number of random projections compared in fast mode.
  int projections = 2;
  // Seed of the random projections and cotangents.
  uint64_t seed = 0;
  // gradcheck also checks forward mode (gradcheck_forward below), like PyTorch's check_forward_ad.
  bool check_forward_ad = false;
};

// What a gradient check found; converts to true when every entry passed. Printing it
// (fmt or to_string) names the worst entry.
struct GradcheckReport {
  // Whether every compared entry was within the tolerance.
  bool ok = true;
  int64_t checked = 0;  // Jacobian entries (or projections) compared
  // The worst entry (largest excess over the tolerance):
  // Which input and which output (their positions in the lists).
  int64_t input = -1, output = -1;
  std::vector<int64_t> input_index, output_index;  // element positions (empty in fast mode)
  // The gradient autograd computed and the finite-difference estimate.
  double analytic = 0, numeric = 0;
  std::string note;  // what was checked ("gradcheck", "gradgradcheck", "fast mode")
  // Same as ok.
  explicit operator bool() const { return ok; }
  // One line: what was checked, passed or FAILED, how many entries, and the worst entry.
  std::string to_string() const;
};

// A function of several tensors with several outputs, as the checks take it.
using TensorFn = std::function<TensorList(const TensorList&)>;

// Checks d fn / d inputs (only the inputs that require grad) against central differences.
GradcheckReport gradcheck(const TensorFn& fn, const TensorList& inputs,
                          const GradcheckOptions& options = {});
// The same for a function with one output.
GradcheckReport gradcheck(const std::function<Tensor(const TensorList&)>& fn,
                          const TensorList& inputs, const GradcheckOptions& options = {});
// Checks forward mode (forward.h): the JVPs fn's ops compute, with the inputs that require grad
// made duals, (1) against central differences: every Jacobian column J e_k (fast mode:
// `projections` random directions v, compared as <w, J v> for a random w), and (2) against reverse
// mode: <u, J v> = <J^T u, v> for random u and v. An output left without tangent counts as zero.
// The report's worst entry is a Jacobian entry for (1), a projection (input -1) for (2).
GradcheckReport gradcheck_forward(const TensorFn& fn, const TensorList& inputs,
                                  const GradcheckOptions& options = {});
// The same for a function with one output.
GradcheckReport gradcheck_forward(const std::function<Tensor(const TensorList&)>& fn,
                                  const TensorList& inputs, const GradcheckOptions& options = {});
// Checks second derivatives: the gradient of fn (computed with create_graph) is itself gradchecked,
// as a function of the inputs and of random output cotangents.
GradcheckReport gradgradcheck(const TensorFn& fn, const TensorList& inputs,
                              const GradcheckOptions& options = {});
// The same for a function with one output.
GradcheckReport gradgradcheck(const std::function<Tensor(const TensorList&)>& fn,
                              const TensorList& inputs, const GradcheckOptions& options = {});

// ---- check_tape: per-node checking of a recorded graph ----
// check_tape's finding for one node of the tape.
struct TapeNodeReport {
  // The op's name.
  std::string op;
  // Position of the node in recording order.
  uint64_t sequence_nr = 0;
  // Shapes of the node's inputs.
  std::vector<Shape> input_shapes;
  // Where the node was recorded (file:line), when known (custom ops, anomaly mode); else empty.
  std::string recorded_at;
  // The gradient check of this node's backward alone.
  GradcheckReport report;
};
// What check_tape found over a whole tape; converts to true when every checked node passed.
struct TapeReport {
  // Whether every checked node passed.
  bool ok = true;
  // Number of nodes whose backward was checked.
  int64_t nodes_checked = 0;
  int64_t nodes_skipped = 0;          // nodes that cannot replay (recorded without TapeCheckGuard)
  std::vector<TapeNodeReport> nodes;  // every checked node, in recording order
  // First node (in recording order) whose backward disagrees with finite differences, or null.
  const TapeNodeReport* first_failure() const;
  // Same as ok.
  explicit operator bool() const { return ok; }
  // A table of the checked nodes (sequence number, op, input shapes, where recorded, result),
  // then the first failing node with its worst entry.
  std::string to_string() const;
};

// Walks the tape behind `loss` and checks each node's backward against finite differences of that
// node alone, on the input values it saw (in float64). Nodes must have been recorded under a
// TapeCheckGuard (custom ops from function.h always can be checked). The report names the first
// node whose backward is wrong: its op, input shapes and where it was recorded.
TapeReport check_tape(const Tensor& loss, const GradcheckOptions& options = {});
// Records fn(inputs) under a TapeCheckGuard and checks the resulting tape.
TapeReport check_tape(const std::function<Tensor(const TensorList&)>& fn, const TensorList& inputs,
                      const GradcheckOptions& options = {});

}  // namespace ag

template <>
struct fmt::formatter<ag::GradcheckReport> : fmt::formatter<std::string> {
  auto format(const ag::GradcheckReport& r, format_context& ctx) const {
    return fmt::formatter<std::string>::format(r.to_string(), ctx);
  }
};
template <>
struct fmt::formatter<ag::TapeReport> : fmt::formatter<std::string> {
  auto format(const ag::TapeReport& r, format_context& ctx) const {
    return fmt::formatter<std::string>::format(r.to_string(), ctx);
  }
};
