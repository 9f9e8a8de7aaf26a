#include "autograd/ops/update.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "autograd/grad_mode.h"
#include "autograd/kernels/dispatch.h"
#include "autograd/kernels/loops.h"
#include "autograd/kernels/simd.h"
#include "autograd/small_vector.h"

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

// f(values) over n contiguous elements of N operands, values being a std::array of N xsimd
// batches (f is a generic lambda, also called with scalars by strided_elements); operands marked
// in `write` are stored back. The tail goes through one more register, padded with each operand's
// last value, so every element gets the same arithmetic wherever a range starts or ends.
//
// Pointers, flags and f are taken by value: the SIMD stores may alias any memory (the vector
// types are may_alias), so a loop reading them through references reloads every pointer and flag
// on each iteration (the SGD step ran at half the speed of a plain loop so).
template <class T, size_t N, class F>
void dense_elements(const std::array<T*, N> ptr, int64_t n, const std::array<bool, N> write,
                    const F f) {
  using B = xsimd::batch<T>;
  constexpr int64_t W = B::size;
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    std::array<B, N> v;
    for (size_t k = 0; k < N; ++k) v[k] = B::load_unaligned(ptr[k] + i);
    f(v);
    for (size_t k = 0; k < N; ++k)
      if (write[k]) v[k].store_unaligned(ptr[k] + i);
  }
  if (i == n) return;
  const int64_t r = n - i;
  alignas(64) T lanes[N][W];
  std::array<B, N> v;
  for (size_t k = 0; k < N; ++k) {
    std::copy_n(ptr[k] + i, r, lanes[k]);
    std::fill(lanes[k] + r, lanes[k] + W, lanes[k][r - 1]);
    v[k] = B::load_aligned(lanes[k]);
  }
  f(v);
  for (size_t k = 0; k < N; ++k)
    if (write[k]) {
      v[k].store_aligned(lanes[k]);
      std::copy_n(lanes[k], r, ptr[k] + i);
    }
}

// The same over N tensors of one shape and dtype T in any layout (rows with other strides are
// walked an element at a time).
template <class T, size_t N, class F>
void strided_elements(const std::array<const Tensor*, N>& ops, const std::array<bool, N>& write,
                      const F& f) {
  std::array<const TensorImpl*, N> impls;
  for (size_t k = 0; k < N; ++k) impls[k] = ops[k]->impl();
  auto L = kernels::make_loop<int(N)>(ops[0]->shape(), impls);
  kernels::for_each_row(L, [&](char** ptr, const int64_t* st, int64_t n) {
    bool dense = true;
    std::array<T*, N> p;
    for (size_t k = 0; k < N; ++k) {
      dense = dense && st[k] == static_cast<int64_t>(sizeof(T));
      p[k] = reinterpret_cast<T*>(ptr[k]);
    }
    if (dense) return dense_elements<T, N>(p, n, write, f);
    for (int64_t i = 0; i < n; ++i) {
      std::array<T, N> v;
      for (size_t k = 0; k < N; ++k) v[k] = *reinterpret_cast<T*>(ptr[k] + i * st[k]);
      f(v);
      for (size_t k = 0; k < N; ++k)
        if (write[k]) *reinterpret_cast<T*>(ptr[k] + i * st[k]) = v[k];
    }
  });
}

// Updates many parameters: items[i] are the N operands of parameter i (dtype T, one shape each),
// make_f(i) the element function for it. Contiguous parameters share one parallel region: thread
// t of nt updates the t-th of nt equal pieces of each (split on 64-byte boundaries), the same rows
// its GEMMs produced the gradient of, so the data is still in that core's cache. The others are
// walked one at a time. Every written operand's version is bumped.
template <class T, size_t N, class Items, class MakeF>
void update_many(const Items& items, const std::array<bool, N>& write, const MakeF& make_f) {
  struct Dense {
    std::array<T*, N> ptr;
    int64_t n;
    size_t item;
  };
  SmallVector<Dense, 16> dense;
  int64_t total = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    bool contiguous = true;
    for (const Tensor* t : items[i]) contiguous = contiguous && t->is_contiguous();
    if (!contiguous) {
      strided_elements<T, N>(items[i], write, make_f(i));
      continue;
    }
    Dense d{{}, items[i][0]->numel(), i};
    for (size_t k = 0; k < N; ++k) d.ptr[k] = const_cast<T*>(items[i][k]->template data<T>());
    dense.push_back(d);
    total += d.n;
  }
  // Piece t of nt of every parameter.
  auto run = [&](int64_t t, int64_t nt) {
    constexpr int64_t kLine = 64 / sizeof(T);
    for (const Dense& d : dense) {
      auto at = [&](int64_t j) { return j == nt ? d.n : d.n * j / nt / kLine * kLine; };
      const int64_t b = at(t), e = at(t + 1);
      if (b >= e) continue;
      std::array<T*, N> p = d.ptr;
      for (T*& q : p) q += b;
      dense_elements<T, N>(p, e - b, write, make_f(d.item));
    }
  };
  const int threads = total >= 2 * kernels::kParallelGrain && !omp_in_parallel()
                          ? static_cast<int>(std::min<int64_t>(omp_get_max_threads(),
                                                               total / kernels::kParallelGrain))
                          : 1;
  if (threads <= 1) {
    run(0, 1);
  } else {
#pragma omp parallel num_threads(threads)
    run(omp_get_thread_num(), omp_get_num_threads());
  }
  for (const auto& ops : items)
    for (size_t k = 0; k < N; ++k)
      if (write[k]) ++ops[k]->impl()->storage->version;
}

// Calls run.template operator()<T>(indices) for each group of items sharing a dtype and a key
// (whether an optional operand is present), so each group is one update_many.
template <class Item, class Key, class Run>
void by_dtype_and_key(std::span<const Item> items, Key key, Run run) {
  SmallVector<size_t, 16> idx;
  for (Dtype d : {float32, float64})
    for (bool k : {false, true}) {
      idx.clear();
      for (size_t i = 0; i < items.size(); ++i)
        if (items[i].param->dtype() == d && key(items[i]) == k) idx.push_back(i);
      if (!idx.empty())
        kernels::dispatch_floating(d, "update",
                                   [&]<class T>() { run.template operator()<T>(idx, k); });
    }
}

bool present(const Tensor* t) { return t != nullptr && t->defined(); }

template <class V>
V square_root(V x) {
  if constexpr (std::is_floating_point_v<V>)
    return std::sqrt(x);
  else
    return xsimd::sqrt(x);
}

// Each item's gradient, checked against its parameter (check_update), after which
// check_state(op, item) checks the item's optimizer state.
template <class Item, class CheckState>
std::vector<Tensor> checked_grads(const char* op, std::span<const Item> items,
                                  CheckState check_state) {
  std::vector<Tensor> grads(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    grads[i] = check_update(op, *items[i].param, *items[i].grad);
    check_state(op, items[i]);
  }
  return grads;
}

template <class V>
V max_keeping_nan(V a, V b) {  // as ag::maximum: NaN if either is NaN
  if constexpr (std::is_floating_point_v<V>)
    return std::isnan(b) ? b : std::max(a, b);
  else
    return xsimd::select(xsimd::isnan(b), b, xsimd::max(a, b));
}

}  // namespace

void adam_step_(std::span<const AdamItem> items) {
  const std::vector<Tensor> grads =
      checked_grads("adam_step_", items, [](const char* op, const AdamItem& it) {
        check_state(op, *it.param, *it.exp_avg, "exp_avg");
        check_state(op, *it.param, *it.exp_avg_sq, "exp_avg_sq");
        if (present(it.max_exp_avg_sq))
          check_state(op, *it.param, *it.max_exp_avg_sq, "max_exp_avg_sq");
      });
  auto ams_of = [](const AdamItem& it) { return present(it.max_exp_avg_sq); };
  by_dtype_and_key(items, ams_of, [&]<class T>(const SmallVector<size_t, 16>& idx, bool ams) {
    // Operands: p, g, m, v, vmax (v again, not written, without amsgrad).
    SmallVector<std::array<const Tensor*, 5>, 16> ops;
    for (size_t i : idx) {
      const AdamItem& it = items[i];
      ops.push_back({it.param, &grads[i], it.exp_avg, it.exp_avg_sq,
                     ams ? it.max_exp_avg_sq : it.exp_avg_sq});
    }
    update_many<T, 5>(ops, {true, false, true, true, ams}, [&](size_t j) {
      const AdamStep& s = items[idx[j]].step;
      const bool l2 = !s.decoupled && s.weight_decay != 0, dec = s.decoupled && s.weight_decay != 0;
      const T wd = static_cast<T>(s.weight_decay),
              decay = static_cast<T>(1 - s.lr * s.weight_decay);
      const T b1 = static_cast<T>(1 - s.beta1), b2 = static_cast<T>(s.beta2);
      const T nb2 = static_cast<T>(1 - s.beta2), eps = static_cast<T>(s.eps);
      const T rbc2 = static_cast<T>(1 / std::sqrt(s.bias_correction2));
      const T step = static_cast<T>(-s.lr / s.bias_correction1);
      return [=](auto& x) {
        using V = std::decay_t<decltype(x[0])>;
        V gv = l2 ? x[1] + V(wd) * x[0] : x[1];
        if (dec) x[0] = x[0] * V(decay);
        x[2] = x[2] + V(b1) * (gv - x[2]);
        x[3] = V(b2) * x[3] + V(nb2) * gv * gv;
        if (ams) x[4] = max_keeping_nan(x[4], x[3]);
        V root = square_root(ams ? x[4] : x[3]);
        x[0] = x[0] + V(step) * x[2] / (root * V(rbc2) + V(eps));
      };
    });
  });
}

void adam_step_(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, Tensor& vmax, const AdamStep& s) {
  const AdamItem item{&p, &g, &m, &v, &vmax, s};
  adam_step_(std::span<const AdamItem>(&item, 1));
}

void sgd_step_(std::span<const SgdItem> items) {
  const std::vector<Tensor> grads =
      checked_grads("sgd_step_", items, [](const char* op, const SgdItem& it) {
        if (it.step.momentum == 0) return;
        if (it.momentum_buffer == nullptr) fail<ValueError>("{}: momentum_buffer is undefined", op);
        check_state(op, *it.param, *it.momentum_buffer, "momentum_buffer");
      });
  auto mom_of = [](const SgdItem& it) { return it.step.momentum != 0; };
  by_dtype_and_key(items, mom_of, [&]<class T>(const SmallVector<size_t, 16>& idx, bool mom) {
    // Operands: p, g, momentum buffer (g again, not written, without momentum).
    SmallVector<std::array<const Tensor*, 3>, 16> ops;
    for (size_t i : idx)
      ops.push_back({items[i].param, &grads[i], mom ? items[i].momentum_buffer : &grads[i]});
    update_many<T, 3>(ops, {true, false, mom}, [&](size_t j) {
      const SgdStep& s = items[idx[j]].step;
      const T lr = static_cast<T>(s.lr), wd = static_cast<T>(s.weight_decay);
      const T mu = static_cast<T>(s.momentum), keep = static_cast<T>(1 - s.dampening);
      const bool l2 = s.weight_decay != 0, first = s.first_step, nesterov = s.nesterov;
      return [=](auto& x) {
        using V = std::decay_t<decltype(x[0])>;
        V d = l2 ? x[1] + V(wd) * x[0] : x[1];
        if (mom) {
          x[2] = first ? d : V(mu) * x[2] + V(keep) * d;
          d = nesterov ? d + V(mu) * x[2] : x[2];
        }
        x[0] = x[0] - V(lr) * d;
      };
    });
  });
}

void sgd_step_(Tensor& p, const Tensor& g, Tensor& buf, const SgdStep& s) {
  const SgdItem item{&p, &g, &buf, s};
  sgd_step_(std::span<const SgdItem>(&item, 1));
}

}  // namespace ag
