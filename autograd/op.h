// How a built-in op is defined: in one place, its forward kernel, the values its rules need (by
// name), its backward rule and its forward-mode (JVP) rule. Everything else (edges, broadcast
// reduction, saving and version checks, check_tape's replay, anomaly checks, tangent propagation)
// is done here and in the engine, once for all ops.
//
//   // e^x.   d = out
//   Tensor exp(const Tensor& x) {
//     Tensor out = simd_unary_kernel("exp", x, [](auto v) { return xsimd::exp(v); });
//     if (needs_derivatives({&x})) {
//       struct Saved { Tensor out; };                   // what the rules read, by name
//       record(op("exp", exp, x), out, Saved{out},      // name, the op itself, its arguments
//              rules::elementwise([](const Saved& s) { return s.out; }));   // d exp(x)/dx = out
//     }
//     return out;
//   }
//
// op(name, fn, args...) states the op's name once and how it was called: `fn` is the op function
// itself (or an internal helper with the same arguments) and `args` its arguments. The Tensor
// arguments (and the elements of TensorList arguments), in order, are the op's inputs; wrap a
// tensor that is not one (an index, a mask) in Const{t}. From the call, check_tape's replay is
// derived (fn called again on new inputs, the other arguments copied), and so is the JVP of linear
// ops (fn called on the tangents).
//
// Saved is an aggregate whose members are Tensors (up to 5; none: `struct None {}`). The rules
// get it back with the same member names: in backward, unpacked from the tape (with version checks;
// a saved output is stored without its grad_fn, so no cycle is formed, and re-linked on unpack);
// in the JVP, the live tensors.
//
// The rules, by kind (pick the first that fits):
//   rules::elementwise(d0, d1, ...)
//                              an elementwise op with partial derivatives d_i(saved) (one per
//                              input, broadcastable to the output): backward g * d_i, JVP
//                              sum_i t_i * d_i. Stated once, both rules follow.
//   rules::linear(backward)    an op linear in all its inputs together (sum, reshape, slice, cat,
//                              where, index ops...): the JVP is the op applied to the tangents
//                              (zeros for inputs without one).
//   rules::multilinear(backward)
//                              an op linear in each input separately (matmul, conv): the JVP is
//                              sum_i op(inputs with input i replaced by its tangent).
//   Rules{.backward = b, .jvp = j}                 both written out;
//   Rules{.backward = b, .jvp = j, .fused_backward = f}
//                              plus a fused backward kernel (not differentiable) that the engine
//                              uses instead of b when the backward is not recorded (no
//                              create_graph) and no forward-AD level is open.
// Rule signatures: backward(const Saved& s, const Tensor& g[, const Node& n]) -> TensorList, one
// gradient per input (undefined: none; n.needs_input_grad(i) tells which are wanted), or with
// `const TensorList& grads` for several outputs; jvp(const Saved& s, const TensorList& t) ->
// Tensor (or TensorList for several outputs), t[i] the tangent of input i (undefined when it has
// none, meaning zero). Both are written with differentiable ag ops: backward then records under
// create_graph (double backward), and the JVP records when its inputs require grad (reverse over
// forward). A rule's result may have any shape that broadcasts to its target: the engine sums
// gradients back to each input's shape, and tangents are expanded to the output's shape.
#pragma once

#include <array>
#include <cstddef>
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include "autograd/forward.h"
#include "autograd/node.h"
#include "autograd/object_pool.h"

namespace ag {

Tensor add(const Tensor& a, const Tensor& b, double alpha);
Tensor mul(const Tensor& a, const Tensor& b);

// A tensor argument of an op that is not one of its inputs (an index, a mask, a constant factor):
// it gets no edge and no tangent; replays and linear JVPs get it as it is. Holds its own handle (a
// shared pointer, no copy of the data), so Const{x.detach()} stays valid.
struct Const {
  Tensor t;
};

namespace op_detail {

template <class A>
constexpr bool is_tensor = std::is_same_v<std::remove_cvref_t<A>, Tensor>;
template <class A>
constexpr bool is_list = std::is_same_v<std::remove_cvref_t<A>, TensorList>;
template <class A>
constexpr bool is_const = std::is_same_v<std::remove_cvref_t<A>, Const>;

// What a replay keeps of an argument: nothing for an input (its value is a replay input), the
// length of a list of inputs, the tensor of a Const, a copy of anything else.
template <class A>
using Stored = std::conditional_t<
    is_tensor<A>, std::monostate,
    std::conditional_t<is_list<A>, size_t,
                       std::conditional_t<is_const<A>, Tensor, std::decay_t<A>>>>;

template <class A>
Stored<A> store(const A& a) {
  if constexpr (is_tensor<A>) {
    return {};
  } else if constexpr (is_list<A>) {
    return a.size();
  } else if constexpr (is_const<A>) {
    return a.t;
  } else {
    return a;
  }
}

// Argument A for a call in which input k becomes map(input, k).
template <class A, class Map>
decltype(auto) mapped(const A& a, Map& map, size_t& k) {
  if constexpr (is_tensor<A>) {
    return Tensor(map(a, k++));
  } else if constexpr (is_list<A>) {
    TensorList r;
    r.reserve(a.size());
    for (const Tensor& t : a) r.push_back(map(t, k++));
    return r;
  } else if constexpr (is_const<A>) {
    return static_cast<const Tensor&>(a.t);
  } else {
    return static_cast<const A&>(a);
  }
}

// Argument A for a replay on inputs x, from what store() kept.
template <class A>
decltype(auto) restored(const Stored<A>& s, const TensorList& x, size_t& k) {
  if constexpr (is_tensor<A>) {
    return Tensor(x.at(k++));
  } else if constexpr (is_list<A>) {
    TensorList r(x.begin() + static_cast<std::ptrdiff_t>(k),
                 x.begin() + static_cast<std::ptrdiff_t>(k + s));
    k += s;
    return r;
  } else {
    return static_cast<const Stored<A>&>(s);
  }
}

// An op's result as a list of outputs: a Tensor, a TensorList, or a pair (values, indices).
template <class R>
TensorList as_outputs(R&& r) {
  if constexpr (is_tensor<R>) {
    return TensorList{std::forward<R>(r)};
  } else if constexpr (is_list<R>) {
    return TensorList(std::forward<R>(r));
  } else {
    return TensorList{r.first, r.second};
  }
}

// Calls fn with the values of a tuple, evaluated in order.
template <class Fn, class Tuple>
TensorList invoke_tuple(const Fn& fn, Tuple& values) {
  return as_outputs(std::apply([&](auto&... v) { return std::invoke(fn, v...); }, values));
}

// ---- saved values: an aggregate of Tensors, seen as an array ----
template <class S, class... T>
concept brace_init = requires {
  S{std::declval<T>()...};
};

template <class S>
constexpr size_t field_count() {
  using T = Tensor;
  if constexpr (brace_init<S, T, T, T, T, T, T>) {
    static_assert(sizeof(S) == 0, "record: at most 5 saved values");
    return 0;
  } else if constexpr (brace_init<S, T, T, T, T, T>) {
    return 5;
  } else if constexpr (brace_init<S, T, T, T, T>) {
    return 4;
  } else if constexpr (brace_init<S, T, T, T>) {
    return 3;
  } else if constexpr (brace_init<S, T, T>) {
    return 2;
  } else if constexpr (brace_init<S, T>) {
    return 1;
  } else {
    return 0;
  }
}

template <class S>
std::array<const Tensor*, field_count<S>()> fields(const S& s) {
  constexpr size_t n = field_count<S>();
  if constexpr (n == 0) {
    return {};
  } else if constexpr (n == 1) {
    const auto& [a] = s;
    return {&a};
  } else if constexpr (n == 2) {
    const auto& [a, b] = s;
    return {&a, &b};
  } else if constexpr (n == 3) {
    const auto& [a, b, c] = s;
    return {&a, &b, &c};
  } else if constexpr (n == 4) {
    const auto& [a, b, c, d] = s;
    return {&a, &b, &c, &d};
  } else {
    const auto& [a, b, c, d, e] = s;
    return {&a, &b, &c, &d, &e};
  }
}

// ---- rule kinds ----
template <class B>
struct LinearRule {
  B backward;
};
template <class B>
struct MultilinearRule {
  B backward;
};
template <class... D>
struct ElementwiseRule {
  std::tuple<D...> d;
};

template <class B, class S>
TensorList call_backward(const B& b, const S& s, TensorList& grads, const Node& n) {
  if constexpr (std::is_invocable_v<const B&, const S&, const Tensor&, const Node&>) {
    return b(s, grads[0], n);
  } else if constexpr (std::is_invocable_v<const B&, const S&, const Tensor&>) {
    return b(s, grads[0]);
  } else {
    static_assert(std::is_invocable_v<const B&, const S&, const TensorList&, const Node&>,
                  "backward(const Saved&, const Tensor& g[, const Node&]) or "
                  "backward(const Saved&, const TensorList& grads, const Node&)");
    return b(s, grads, n);
  }
}

// What an op on these inputs needs: a node on the tape (grad mode on and an input requires grad,
// or is a stale view, so that recording raises the error), and tangents (forward mode
// propagating and an input is a dual).
struct Needs {
  bool record = false, tangents = false;
};
Needs what_is_needed(const Tensor* const* ts, size_t n);
// Sets each floating output's tangent from the rule's result (fitted to its shape and dtype).
void set_tangents(const char* op, const TensorList& tangents, Tensor* outs, size_t m);
// The sum of two tangents, either possibly undefined.
Tensor add_tangents(const Tensor& a, const Tensor& b);
SavedTensor save_value(const Tensor& t, const Tensor* outs, size_t m);
void keep_replay_inputs(Node& node, const Tensor* const* inputs, size_t n);

}  // namespace op_detail

// A TensorList of `ts`, moved in, for a backward's result. A braced list (`return {gx, gw};`)
// copies each tensor out of its initializer_list: a reference count raised and lowered per
// tensor, on cache lines that a large kernel just before has made cold.
template <class... Ts>
TensorList moved_list(Ts&&... ts) {
  TensorList list;
  list.reserve(sizeof...(Ts));
  (list.push_back(std::forward<Ts>(ts)), ...);
  return list;
}

// Both rules written out, and optionally a fused backward kernel (see the top of this file).
template <class B, class J, class F = std::nullptr_t>
struct Rules {
  B backward;
  J jvp;
  F fused_backward = nullptr;
};

// The derived rule kinds (see the top of this file).
namespace rules {
template <class B>
op_detail::LinearRule<B> linear(B backward) {
  return {std::move(backward)};
}
template <class B>
op_detail::MultilinearRule<B> multilinear(B backward) {
  return {std::move(backward)};
}
template <class... D>
op_detail::ElementwiseRule<D...> elementwise(D... partials) {
  return {std::tuple<D...>(std::move(partials)...)};
}
}  // namespace rules

// An op call: its name, the function and its arguments. An argument given as an lvalue is kept by
// reference (valid as long as that variable), one given as a temporary (Const{m}, 2.0,
// x.detach()) by value, so the call stays valid after the statement that made it.
template <class Fn, class... Args>
struct OpCall {
  const char* name;
  Fn fn;
  std::tuple<Args...> args;  // Args: T& for an lvalue argument, T for a temporary

  // Pointers to the input tensors, in argument order.
  void inputs(SmallVector<const Tensor*, 4>& out) const {
    std::apply(
        [&](const auto&... a) {
          auto add = [&](const auto& x) {
            if constexpr (op_detail::is_tensor<decltype(x)>) {
              out.push_back(&x);
            } else if constexpr (op_detail::is_list<decltype(x)>) {
              for (const Tensor& t : x) out.push_back(&t);
            }
          };
          (add(a), ...);
        },
        args);
  }

  // fn called again with input k replaced by map(input, k).
  template <class Map>
  TensorList call(Map map) const {
    size_t k = 0;
    return std::apply(
        [&](const auto&... a) {
          // Braced initialisation evaluates left to right: inputs are numbered in order.
          std::tuple<decltype(op_detail::mapped(a, map, k))...> v{op_detail::mapped(a, map, k)...};
          return op_detail::invoke_tuple(fn, v);
        },
        args);
  }

  // check_tape's replay: fn on new inputs, the other arguments as they were.
  std::function<TensorList(const TensorList&)> replay() const {
    std::tuple<op_detail::Stored<Args>...> stored =
        std::apply([](const auto&... a) { return std::tuple{op_detail::store(a)...}; }, args);
    return [fn = fn, stored = std::move(stored)](const TensorList& x) -> TensorList {
      size_t k = 0;
      return std::apply(
          [&](const auto&... s) {
            std::tuple<decltype(op_detail::restored<Args>(s, x, k))...> v{
                op_detail::restored<Args>(s, x, k)...};
            return op_detail::invoke_tuple(fn, v);
          },
          stored);
    };
  }
};

// op("exp", exp, x): see the top of this file. For an overloaded function, pick the overload with
// a cast.
template <class Fn, class... Args>
OpCall<Fn, Args...> op(const char* name, Fn fn, Args&&... args) {
  return {name, fn, std::tuple<Args...>(std::forward<Args>(args)...)};
}

namespace op_detail {

template <class T>
struct Kind {
  static constexpr bool elementwise = false, linear = false, fused = false;
};
template <class... D>
struct Kind<ElementwiseRule<D...>> : Kind<void> {
  static constexpr bool elementwise = true;
};
template <class B>
struct Kind<LinearRule<B>> : Kind<void> {
  static constexpr bool linear = true;
};
template <class B, class J, class F>
struct Kind<Rules<B, J, F>> : Kind<void> {
  static constexpr bool fused = !std::is_same_v<F, std::nullptr_t>;
};

// The node of a built-in op: its rules and its saved values.
template <class S, class R>
class OpNode final : public Node {
 public:
  static constexpr size_t kSaved = field_count<S>();

  OpNode(const char* name, R&& rules) : name_(name), rules_(std::move(rules)) {}
  std::string name() const override { return name_; }
  const R& rules() const { return rules_; }

  TensorList apply(TensorList&& grads) override {
    if (released_) fail_released();
    // Nothing of this backward is recorded (no graph, no tangents): saved outputs need no history.
    const bool plain = !is_grad_enabled() && !fwd::is_level_open();
    const S s = unpack(/*relink=*/!plain, std::make_index_sequence<kSaved>());
    if constexpr (Kind<R>::fused) {
      if (plain) return call_backward(rules_.fused_backward, s, grads, *this);
    }
    if constexpr (Kind<R>::elementwise) {
      TensorList r(num_inputs());
      elementwise_backward(s, grads[0], r,
                           std::make_index_sequence<std::tuple_size_v<decltype(R::d)>>());
      return r;
    } else {
      return call_backward(rules_.backward, s, grads, *this);
    }
  }

  void release() override {
    if constexpr (kSaved > 0) {
      saved_ = {};
      released_ = true;
    }
  }

  void save(const S& s, const Tensor* outs, size_t m) {
    auto f = fields(s);
    for (size_t i = 0; i < kSaved; ++i) saved_[i] = save_value(*f[i], outs, m);
  }

 private:
  template <size_t... I>
  S unpack([[maybe_unused]] bool relink, std::index_sequence<I...>) const {
    return S{saved_[I].unpack(*this, relink)...};
  }
  template <size_t... I>
  void elementwise_backward(const S& s, const Tensor& g, TensorList& r,
                            std::index_sequence<I...>) const {
    ((r[I] = needs_input_grad(I) ? mul(g, std::get<I>(rules_.d)(s)) : Tensor()), ...);
  }

  const char* name_;
  R rules_;
  std::array<SavedTensor, kSaved> saved_;
};

// The tangents of the outputs, by the rule's kind. `t`: tangent of each input (undefined: none).
template <class R, class Call, class S>
TensorList run_jvp(const R& rules, const Call& call, const S& s, const TensorList& t,
                   const SmallVector<const Tensor*, 4>& in) {
  if constexpr (requires { rules.jvp; }) {
    return as_outputs(rules.jvp(s, t));
  } else if constexpr (Kind<R>::elementwise) {
    Tensor sum;
    std::apply(
        [&](const auto&... d) {
          size_t i = 0;
          ((sum = t[i].defined() ? add_tangents(sum, mul(t[i], d(s))) : sum, ++i), ...);
        },
        rules.d);
    return {sum};
  } else if constexpr (Kind<R>::linear) {
    return call.call([&](const Tensor& x, size_t k) {
      return t[k].defined() || !x.defined() ? t[k] : zeros_like(x);
    });
  } else {
    TensorList total;
    for (size_t i = 0; i < in.size(); ++i) {
      if (!t[i].defined()) continue;
      TensorList part =
          call.call([&](const Tensor& x, size_t k) { return k == i ? t[i] : Tensor(x); });
      total.resize(part.size());
      for (size_t k = 0; k < part.size(); ++k) total[k] = add_tangents(total[k], part[k]);
    }
    return total;
  }
}

// record_outputs for the inputs `in` of `call` and what they need, already found.
template <class Fn, class... Args, class S, class R>
void record_outputs(const OpCall<Fn, Args...>& call, const SmallVector<const Tensor*, 4>& in,
                    Needs needs, Tensor* outs, size_t m, const S& saved, R&& rules) {
  const bool rec = needs.record, dual = needs.tangents;
  std::shared_ptr<OpNode<S, R>> node;
  if (rec) {
    node = detail::make_pooled<OpNode<S, R>>(call.name, std::move(rules));
    Node::wire(node, in.data(), in.size(), outs, m);
  }
  if (dual) {
    TensorList t(in.size());
    for (size_t k = 0; k < in.size(); ++k) t[k] = fwd::detail::tangent_of(*in[k]);
    fwd::detail::Suspend rule_time;
    set_tangents(call.name, run_jvp(node ? node->rules() : rules, call, saved, t, in), outs, m);
  }
  if (rec) {
    node->save(saved, outs, m);  // after the tangents: a saved output keeps its tangent
    if (is_tape_checking()) [[unlikely]] {
      node->tape_check.replay_fn = call.replay();
      keep_replay_inputs(*node, in.data(), in.size());
    }
  }
}

template <class Fn, class... Args, class S, class R>
void record_outputs(const OpCall<Fn, Args...>& call, Tensor* outs, size_t m, const S& saved,
                    R&& rules) {
  SmallVector<const Tensor*, 4> in;
  call.inputs(in);
  record_outputs(call, in, what_is_needed(in.data(), in.size()), outs, m, saved,
                 std::forward<R>(rules));
}

}  // namespace op_detail

// Records one op (see the top of this file): a node on the tape when an input requires grad, the
// output's tangent when an input is a dual. Call it behind `if (needs_derivatives({...}))`.
template <class Fn, class... Args, class S, class R>
void record(const OpCall<Fn, Args...>& call, Tensor& out, const S& saved, R rules) {
  op_detail::record_outputs(call, &out, 1, saved, std::move(rules));
}
// The same for an op with several outputs (split).
template <class Fn, class... Args, class S, class R>
void record(const OpCall<Fn, Args...>& call, TensorList& outs, const S& saved, R rules) {
  op_detail::record_outputs(call, outs.data(), outs.size(), saved, std::move(rules));
}

// record for an op whose output is allocated before its kernel runs: kernel() computes out, and
// the op is recorded. When only a node is needed (a node needs out's buffer, not its values), the
// node is made first, while the inputs' metadata is still in cache, rather than after a large
// kernel has evicted it (about 1.5 us per op after a GEMM, docs/performance.md); when a tangent
// must be computed from the values, after. Call it behind `if (needs_derivatives({...}))`, with
// the checks that can fail done before. Should kernel() throw, out and the node it holds are
// dropped together: nothing else refers to the node yet.
template <class Fn, class... Args, class S, class R, class Kernel>
void record_around(const OpCall<Fn, Args...>& call, Tensor& out, const S& saved, R rules,
                   Kernel&& kernel) {
  SmallVector<const Tensor*, 4> in;
  call.inputs(in);
  const op_detail::Needs needs = op_detail::what_is_needed(in.data(), in.size());
  if (needs.tangents) {
    kernel();
    return op_detail::record_outputs(call, in, needs, &out, 1, saved, std::move(rules));
  }
  op_detail::record_outputs(call, in, needs, &out, 1, saved, std::move(rules));
  kernel();
}

}  // namespace ag
