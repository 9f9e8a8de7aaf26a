// Linear algebra. float32 GEMMs go to oneDNN (kernels chosen by the CPU's instruction set at run
// time, on the engine's OpenMP threads), float64 GEMMs to OpenBLAS, and GEMMs of at most 4096
// multiply-adds to a loop of the engine's own. Transposed operands are passed with a transpose flag
// on the original buffer; no transpose is materialised, forward or backward.
#pragma once

#include "autograd/tensor.h"

namespace ag {

// Matrix product with NumPy's matmul rules:
//   [n] @ [n] -> []            (dot product)
//   [m, k] @ [k, n] -> [m, n]
//   [k] @ [k, n] -> [n], [m, k] @ [k] -> [m]
//   [..., m, k] @ [..., k, n] -> [broadcast(...), m, n]   (batch axes broadcast)
// d/dA = g @ B^T, d/dB = A^T @ g (summed over broadcast batch axes).
// ShapeError: "matmul: [64, 784] @ [256, 10]: inner sizes 784 and 256 differ".
Tensor matmul(const Tensor& a, const Tensor& b);
// Outer product of two vectors: [m] x [n] -> [m, n].   d/da = g @ b, d/db = g^T @ a
Tensor outer(const Tensor& a, const Tensor& b);
// Fully connected layer, fused: x [..., in] @ W[out, in]^T + b[out] -> [..., out].
//   d/dx = g @ W, d/dW = g^T @ x (over all leading axes), d/db = sum of g over leading axes.
// The bias is written into the output and the GEMM accumulates onto it. When both d/dx and d/dW
// are needed without create_graph they are computed together, the threads shared between the two
// GEMMs; otherwise as matmuls. Large float32 GEMMs (here and in matmul) run as one single-threaded
// oneDNN call per block of rows or columns, one block per OpenMP thread.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());
// relu(linear(x, weight, bias)) as one op: the output is clamped in place as the GEMM finishes (a
// large one by each thread on the block it computed, a small one by the calling thread), and no
// separate ReLU output is written.
//   out = max(x @ W^T + b, 0);  with m = [out > 0]:  d/dx = (g * m) @ W, d/dW = (g * m)^T @ x,
//   d/db = sum of g * m over leading axes.
// Shapes and errors as linear's (named "linear_relu"). bfloat16 operands (or autocast) take
// relu(linear(...)).
Tensor linear_relu(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// Number of threads OpenBLAS uses for float64 GEMMs; 0 = its default. float32 GEMMs use the OpenMP
// threads (omp_set_num_threads / OMP_NUM_THREADS).
void set_blas_threads(int n);

}  // namespace ag
