#include "autograd/ops/update.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "autograd/grad_mode.h"
#include "autograd/kernels/dispatch.h"
#include "autograd/kernels/loops.h"
#include "autograd/kernels/simd.h"

namespace ag {

namespace {

void check_state(const char* op, const Tensor& p, const Tensor& t, const char* name) {
  if (!t.defined()) fail<ValueError>("{}: {} is undefined", op, name);
  if (!(t.shape() == p.shape()))
    fail<ShapeError>("{}: {} has shape {}, the parameter {}", op, name, t.shape(), p.shape());
  if (t.dtype() != p.dtype())
    fail<DtypeError>("{}: {} is {}, the parameter {}", op, name, dtype_name(t.dtype()),
                     dtype_name(p.dtype()));
}

// The checks every update shares; returns the gradient in the parameter's dtype.
Tensor check_update(const char* op, const Tensor& p, const Tensor& g) {
  if (!p.defined() || !is_floating(p.dtype()))
    fail<DtypeError>("{}: the parameter must be a float tensor", op);
  if (!g.defined() || !is_floating(g.dtype()) || !(g.shape() == p.shape()))
    fail<ShapeError>("{}: gradient {} for a parameter of shape {}", op,
                     g.defined() ? g.shape() : Shape{}, p.shape());
  if (is_grad_enabled() && (p.requires_grad() || g.requires_grad()))
    fail<AutogradError>("{}: not recorded; call it under NoGradGuard (parameter of shape {})", op,
                        p.shape());
  return g.to(p.dtype());
}

// Calls f(values) for every element of N tensors of one shape and dtype T, values being a
// std::array of N xsimd batches (dense rows, a register at a time) or N scalars (tails and strided
// rows); operands marked in `write` are stored back. f is a generic lambda, written once for both.
template <class T, size_t N, class F>
void update_elements(const std::array<const Tensor*, N>& ops, const std::array<bool, N>& write,
                     F f) {
  std::array<const TensorImpl*, N> impls;
  for (size_t k = 0; k < N; ++k) impls[k] = ops[k]->impl();
  auto L = kernels::make_loop<int(N)>(ops[0]->shape(), impls);
  kernels::for_each_row(L, [&](char** ptr, const int64_t* st, int64_t n) {
    bool dense = true;
    for (size_t k = 0; k < N; ++k) dense = dense && st[k] == static_cast<int64_t>(sizeof(T));
    int64_t i = 0;
    if (dense) {
      using B = xsimd::batch<T>;
      for (; i + int64_t(B::size) <= n; i += B::size) {
        std::array<B, N> v;
        for (size_t k = 0; k < N; ++k) v[k] = B::load_unaligned(reinterpret_cast<T*>(ptr[k]) + i);
        f(v);
        for (size_t k = 0; k < N; ++k)
          if (write[k]) v[k].store_unaligned(reinterpret_cast<T*>(ptr[k]) + i);
      }
    }
    for (; i < n; ++i) {
      std::array<T, N> v;
      for (size_t k = 0; k < N; ++k) v[k] = *reinterpret_cast<T*>(ptr[k] + i * st[k]);
      f(v);
      for (size_t k = 0; k < N; ++k)
        if (write[k]) *reinterpret_cast<T*>(ptr[k] + i * st[k]) = v[k];
    }
  });
  for (size_t k = 0; k < N; ++k)
    if (write[k]) ++ops[k]->impl()->storage->version;
}

template <class V>
V square_root(V x) {
  if constexpr (std::is_floating_point_v<V>)
    return std::sqrt(x);
  else
    return xsimd::sqrt(x);
}

template <class V>
V max_keeping_nan(V a, V b) {  // as ag::maximum: NaN if either is NaN
  if constexpr (std::is_floating_point_v<V>)
    return std::isnan(b) ? b : std::max(a, b);
  else
    return xsimd::select(xsimd::isnan(b), b, xsimd::max(a, b));
}

}  // namespace

void adam_step_(Tensor& p, const Tensor& g_in, Tensor& m, Tensor& v, Tensor& vmax,
                const AdamStep& s) {
  const char* op = "adam_step_";
  Tensor g = check_update(op, p, g_in);
  check_state(op, p, m, "exp_avg");
  check_state(op, p, v, "exp_avg_sq");
  const bool ams = vmax.defined();
  if (ams) check_state(op, p, vmax, "max_exp_avg_sq");
  const bool l2 = !s.decoupled && s.weight_decay != 0, dec = s.decoupled && s.weight_decay != 0;
  kernels::dispatch_floating(p.dtype(), op, [&]<class T>() {
    const T wd = static_cast<T>(s.weight_decay), decay = static_cast<T>(1 - s.lr * s.weight_decay);
    const T b1 = static_cast<T>(1 - s.beta1), b2 = static_cast<T>(s.beta2);
    const T nb2 = static_cast<T>(1 - s.beta2), eps = static_cast<T>(s.eps);
    const T rbc2 = static_cast<T>(1 / std::sqrt(s.bias_correction2));
    const T step = static_cast<T>(-s.lr / s.bias_correction1);
    // Operands: p, g, m, v, vmax (v again, not written, without amsgrad).
    update_elements<T, 5>({&p, &g, &m, &v, ams ? &vmax : &v}, {true, false, true, true, ams},
                          [&](auto& x) {
                            using V = std::decay_t<decltype(x[0])>;
                            V gv = l2 ? x[1] + V(wd) * x[0] : x[1];
                            if (dec) x[0] = x[0] * V(decay);
                            x[2] = x[2] + V(b1) * (gv - x[2]);
                            x[3] = V(b2) * x[3] + V(nb2) * gv * gv;
                            if (ams) x[4] = max_keeping_nan(x[4], x[3]);
                            V root = square_root(ams ? x[4] : x[3]);
                            x[0] = x[0] + V(step) * x[2] / (root * V(rbc2) + V(eps));
                          });
  });
}

void sgd_step_(Tensor& p, const Tensor& g_in, Tensor& buf, const SgdStep& s) {
  const char* op = "sgd_step_";
  Tensor g = check_update(op, p, g_in);
  const bool mom = s.momentum != 0;
  if (mom) check_state(op, p, buf, "momentum_buffer");
  kernels::dispatch_floating(p.dtype(), op, [&]<class T>() {
    const T lr = static_cast<T>(s.lr), wd = static_cast<T>(s.weight_decay);
    const T mu = static_cast<T>(s.momentum), keep = static_cast<T>(1 - s.dampening);
    const bool l2 = s.weight_decay != 0, first = s.first_step, nesterov = s.nesterov;
    // Operands: p, g, momentum buffer (g again, not written, without momentum).
    update_elements<T, 3>({&p, &g, mom ? &buf : &g}, {true, false, mom}, [&](auto& x) {
      using V = std::decay_t<decltype(x[0])>;
      V d = l2 ? x[1] + V(wd) * x[0] : x[1];
      if (mom) {
        x[2] = first ? d : V(mu) * x[2] + V(keep) * d;
        d = nesterov ? d + V(mu) * x[2] : x[2];
      }
      x[0] = x[0] - V(lr) * d;
    });
  });
}

}  // namespace ag
