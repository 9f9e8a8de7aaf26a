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

#include "autograd/node.h"

namespace ag {

struct GradcheckOptions {
  double eps = 1e-6;  // finite-difference step
  double atol = 1e-5;
  double rtol = 1e-3;
  // Fast mode: instead of the full Jacobian J, compare v^T J u for random u, v (one backward and
  // two forward evaluations per check); `projections` such checks.
  bool fast_mode = false;
  int projections = 2;
  uint64_t seed = 0;
};

struct GradcheckReport {
  bool ok = true;
  int64_t checked = 0;  // Jacobian entries (or projections) compared
  // The worst entry (largest excess over the tolerance):
  int64_t input = -1, output = -1;
  std::vector<int64_t> input_index, output_index;  // element positions (empty in fast mode)
  double analytic = 0, numeric = 0;
  std::string note;  // what was checked ("gradcheck", "gradgradcheck", "fast mode")
  explicit operator bool() const { return ok; }
  std::string to_string() const;
};

using TensorFn = std::function<TensorList(const TensorList&)>;

// Checks d fn / d inputs (only the inputs that require grad) against central differences.
GradcheckReport gradcheck(const TensorFn& fn, const TensorList& inputs,
                          const GradcheckOptions& options = {});
GradcheckReport gradcheck(const std::function<Tensor(const TensorList&)>& fn,
                          const TensorList& inputs, const GradcheckOptions& options = {});
// Checks second derivatives: the gradient of fn (computed with create_graph) is itself gradchecked,
// as a function of the inputs and of random output cotangents.
GradcheckReport gradgradcheck(const TensorFn& fn, const TensorList& inputs,
                              const GradcheckOptions& options = {});
GradcheckReport gradgradcheck(const std::function<Tensor(const TensorList&)>& fn,
                              const TensorList& inputs, const GradcheckOptions& options = {});

// ---- check_tape: per-node checking of a recorded graph ----
struct TapeNodeReport {
  std::string op;
  uint64_t sequence_nr = 0;
  std::vector<Shape> input_shapes;
  std::string recorded_at;
  GradcheckReport report;
};
struct TapeReport {
  bool ok = true;
  int64_t nodes_checked = 0;
  int64_t nodes_skipped = 0;          // nodes that cannot replay (recorded without TapeCheckGuard)
  std::vector<TapeNodeReport> nodes;  // every checked node, in recording order
  // First node (in recording order) whose backward disagrees with finite differences, or null.
  const TapeNodeReport* first_failure() const;
  explicit operator bool() const { return ok; }
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
