#include "autograd/ops/update.h"

#include <algorithm>
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

}  // namespace

void adam_step_(Tensor& p, const Tensor& g_in, Tensor& m, Tensor& v, Tensor& vmax,
                const AdamStep& s) {
  const char* op = "adam_step_";
  if (!p.defined() || !is_floating(p.dtype()))
    fail<DtypeError>("{}: the parameter must be a float tensor", op);
  if (!g_in.defined() || !is_floating(g_in.dtype()) || !(g_in.shape() == p.shape()))
    fail<ShapeError>("{}: gradient {} for a parameter of shape {}", op,
                     g_in.defined() ? g_in.shape() : Shape{}, p.shape());
  check_state(op, p, m, "exp_avg");
  check_state(op, p, v, "exp_avg_sq");
  const bool ams = vmax.defined();
  if (ams) check_state(op, p, vmax, "max_exp_avg_sq");
  if (is_grad_enabled() && (p.requires_grad() || g_in.requires_grad()))
    fail<AutogradError>("{}: not recorded; call it under NoGradGuard (parameter of shape {})", op,
                        p.shape());
  Tensor g = g_in.to(p.dtype());
  kernels::dispatch_floating(p.dtype(), op, [&]<class T>() {
    const T wd = static_cast<T>(s.weight_decay);
    const T decay = static_cast<T>(1 - s.lr * s.weight_decay), b1 = static_cast<T>(1 - s.beta1);
    const T b2 = static_cast<T>(s.beta2), nb2 = static_cast<T>(1 - s.beta2);
    const T eps = static_cast<T>(s.eps), rbc2 = static_cast<T>(1 / std::sqrt(s.bias_correction2));
    const T step = static_cast<T>(-s.lr / s.bias_correction1);
    const bool l2 = !s.decoupled && s.weight_decay != 0, dec = s.decoupled && s.weight_decay != 0;
    // One element or one SIMD register of each operand (V = T or xsimd::batch<T>).
    auto update = [&]<class V>(V& pv, V gv, V& mv, V& vv, V& xv) {
      if (l2) gv = gv + V(wd) * pv;
      if (dec) pv = pv * V(decay);
      mv = mv + V(b1) * (gv - mv);
      vv = V(b2) * vv + V(nb2) * gv * gv;
      V use = vv;
      if (ams) {
        if constexpr (std::is_same_v<V, T>)
          xv = std::isnan(vv) ? vv : std::max(xv, vv);
        else
          xv = xsimd::select(xsimd::isnan(vv), vv, xsimd::max(xv, vv));
        use = xv;
      }
      V root;
      if constexpr (std::is_same_v<V, T>)
        root = std::sqrt(use);
      else
        root = xsimd::sqrt(use);
      pv = pv + V(step) * mv / (root * V(rbc2) + V(eps));
    };
    Tensor& x = ams ? vmax : v;  // vmax's slot: v itself (written back unchanged) without amsgrad
    auto L = kernels::make_loop<5>(p.shape(), {p.impl(), g.impl(), m.impl(), v.impl(), x.impl()});
    kernels::for_each_row(L, [&](char** ptr, const int64_t* st, int64_t n) {
      bool dense = true;
      for (int k = 0; k < 5; ++k) dense = dense && st[k] == static_cast<int64_t>(sizeof(T));
      T* pp = reinterpret_cast<T*>(ptr[0]);
      const T* gp = reinterpret_cast<const T*>(ptr[1]);
      T* mp = reinterpret_cast<T*>(ptr[2]);
      T* vp = reinterpret_cast<T*>(ptr[3]);
      T* xp = reinterpret_cast<T*>(ptr[4]);
      int64_t i = 0;
      if (dense) {
        using B = xsimd::batch<T>;
        constexpr int64_t W = B::size;
        for (; i + W <= n; i += W) {
          B pv = B::load_unaligned(pp + i), mv = B::load_unaligned(mp + i);
          B vv = B::load_unaligned(vp + i), xv = ams ? B::load_unaligned(xp + i) : vv;
          update(pv, B::load_unaligned(gp + i), mv, vv, xv);
          pv.store_unaligned(pp + i);
          mv.store_unaligned(mp + i);
          vv.store_unaligned(vp + i);
          if (ams) xv.store_unaligned(xp + i);
        }
      }
      for (; i < n; ++i) {
        auto at = [&](int k) { return reinterpret_cast<T*>(ptr[k] + i * st[k]); };
        T pv = *at(0), mv = *at(2), vv = *at(3), xv = ams ? *at(4) : vv;
        update(pv, *at(1), mv, vv, xv);
        *at(0) = pv;
        *at(2) = mv;
        *at(3) = vv;
        if (ams) *at(4) = xv;
      }
    });
  });
  for (Tensor* t : {&p, &m, &v, &vmax})
    if (t->defined()) ++t->impl()->storage->version;
}

}  // namespace ag
