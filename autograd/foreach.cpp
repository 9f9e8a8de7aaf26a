#include "autograd/foreach.h"
#include "autograd/node.h"

#include <omp.h>

#include "autograd/grad_mode.h"
#include "autograd/kernels/loops.h"

namespace ag::foreach_detail {

void check_items(const char* op, std::span<const Tensor* const> operands, size_t n) {
  for (size_t j = 0; j < operands.size(); ++j) {
    const Tensor& t = *operands[j];
    const size_t item = j / n, k = j % n;
    if (!t.defined()) fail<ValueError>("{}: item {}: operand {} is undefined", op, item, k);
    const Tensor& first = *operands[j - k];
    // float32 and bfloat16 mix (both computed in float32); float64 stands alone.
    auto single = [](Dtype d) { return d == Dtype::bfloat16 ? Dtype::float32 : d; };
    if (!is_floating(t.dtype()) || single(t.dtype()) != single(first.dtype()))
      fail<DtypeError>(
          "{}: item {}: operand {} is {}, operand 0 is {} (one float dtype per item; float32 and "
          "bfloat16 may mix)",
          op, item, k, dtype_name(t.dtype()), dtype_name(first.dtype()));
    if (!(t.shape() == first.shape()))
      fail<ShapeError>("{}: item {}: operand {} has shape {}, operand 0 {}", op, item, k, t.shape(),
                       first.shape());
    if (is_grad_enabled() && t.requires_grad())
      fail<AutogradError>(
          "{}: not recorded; call it under NoGradGuard (item {}, operand {} of shape {} requires "
          "grad)",
          op, item, k, t.shape());
  }
}

void run_pieces(int64_t total, PieceRef piece) {
  const int64_t grain = kernels::kParallelGrain;
  const int threads =
      total >= 2 * grain && !omp_in_parallel()
          ? static_cast<int>(std::min<int64_t>(omp_get_max_threads(), total / grain))
          : 1;
  if (threads <= 1) {
    piece(0, 1);
    return;
  }
#pragma omp parallel num_threads(threads)
  piece(omp_get_thread_num(), omp_get_num_threads());
}

void bump_version(const Tensor& t) { ++t.impl()->storage->version; }

}  // namespace ag::foreach_detail
