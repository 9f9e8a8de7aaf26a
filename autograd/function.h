// Your own differentiable ops: the C++ counterpart of torch.autograd.Function.
//
//   struct Softsign : ag::Function<Softsign> {
//     static constexpr const char* name = "softsign";     // optional: the op's name in messages
//     // y = x / (1 + |x|)
//     static ag::Tensor forward(ag::FunctionContext& ctx, const ag::Tensor& x) {
//       ctx.save_for_backward({x});
//       return x / (ag::abs(x) + 1.0);
//     }
//     // dy/dx = 1 / (1 + |x|)^2
//     static ag::TensorList backward(ag::FunctionContext& ctx, const ag::TensorList& grads) {
//       ag::Tensor x = ctx.saved_tensors()[0];
//       return {grads[0] / ag::square(ag::abs(x) + 1.0)};
//     }
//   };
//   ag::Tensor y = Softsign::apply(x);
//
// Forward mode (forward.h): a custom op may also define its JVP,
//     // d y = t / (1 + |x|)^2
//     static ag::TensorList jvp(ag::FunctionContext& ctx, const ag::TensorList& tangents) {
//       ag::Tensor x = ctx.saved_tensors()[0];
//       return {tangents[0] / ag::square(ag::abs(x) + 1.0)};
//     }
// It gets one tangent per tensor input (undefined: the input has none, i.e. zero) and returns one
// tangent per output (a Tensor or a TensorList, like forward), written with ag ops. It runs after
// forward, with the context forward filled (saved tensors, values). Without a jvp, a dual input
// reaching the op raises AutogradError naming it: forward mode never silently treats a custom op as
// constant. forward itself runs without tangent propagation, like it runs without recording.
//
// forward(ctx, args...) takes any mix of tensors (Tensor, or TensorList for a variable number) and
// other values (double, int64_t, Shape, ...), and returns a Tensor or a TensorList (several
// outputs). It runs with grad mode off: whatever it computes is not recorded. `apply` takes the
// same arguments and, when grad mode is on and a tensor argument requires grad, records ONE node
// whose backward is Derived::backward, with an edge to each tensor argument that requires grad.
//
// backward(ctx, grad_outputs) gets one gradient per output of forward, in order (outputs that
// received no gradient arrive as zeros of their shape), and returns one gradient per tensor input,
// in argument order (a TensorList argument contributes one per element). An undefined gradient
// means "none". A gradient may have the broadcast shape of the op's output: the engine sums it back
// to the input's shape, and raises AutogradError naming the op if the shapes cannot be matched.
// Write backward with ag ops and it is itself differentiable: double backward (create_graph) then
// works through your op.
//
// Tensor indices (needs_input_grad, the gradients returned by backward) count tensor arguments
// only: in forward(ctx, const Tensor& x, double alpha, const Tensor& w), x is input 0 and w is
// input 1.
//
// Requirements: forward and backward are static, non-template, non-overloaded functions. forward
// must not modify its inputs in place. For check_tape (gradcheck.h) forward must be a deterministic
// function of its arguments and work in float64 (check_tape replays it on float64 copies).
//
// check_tape support: every custom node can replay its forward. Outside a TapeCheckGuard the node
// keeps aliases of its tensor inputs (no copy, their storage stays alive as long as the node); if
// one of them is later modified in place, the node reports that it cannot replay. Under a
// TapeCheckGuard it keeps copies, like built-in ops do.
#pragma once

#include <any>
#include <map>
#include <optional>
#include <source_location>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <variant>
#include <vector>

#include "autograd/forward.h"
#include "autograd/node.h"
#include "autograd/op.h"

namespace ag {

class FunctionContext;
namespace detail {
class CustomFunctionNode;
template <class Derived, class R, class... Ps>
R run(const std::source_location& loc, Ps&&... args);
}  // namespace detail

// What forward leaves for backward: saved tensors, which inputs need a gradient, and small
// non-tensor values. One context per recorded call.
class FunctionContext {
 public:
  // Tensors backward needs: inputs and/or outputs of forward (or other tensors forward made). Each
  // call appends. Outputs are saved without creating a reference cycle. Call in forward only.
  void save_for_backward(const TensorList& tensors);
  // The saved tensors, in the order they were saved. Raises AutogradError naming the op if one was
  // modified in place after forward, or if the graph was already freed by a backward without
  // retain_graph.
  TensorList saved_tensors() const;

  // These outputs of forward get no gradient: they do not require grad and backward receives zeros
  // for them. Integer and bool outputs are never differentiable, marked or not.
  void mark_non_differentiable(const TensorList& outputs);

  // Whether tensor input i (counting tensor arguments only) requires grad in this call: backward
  // may skip computing gradients nobody needs (it can return an undefined tensor for them).
  bool needs_input_grad(size_t i) const;
  // Number of tensor inputs of this call.
  size_t num_inputs() const { return needs_input_grad_.size(); }

  // Non-tensor values for backward: ctx.set("alpha", alpha) in forward,
  // ctx.get<double>("alpha") in backward. get raises ValueError naming the op and key if it is
  // missing or holds another type.
  template <class T>
  void set(const std::string& key, T value) {
    values_[key] = std::move(value);
  }
  // The value stored under `key` by set (T must be the stored type).
  template <class T>
  const T& get(const std::string& key) const {
    auto it = values_.find(key);
    const T* v = it == values_.end() ? nullptr : std::any_cast<T>(&it->second);
    if (!v) bad_value(key, typeid(T));
    return *v;
  }
  // Whether a value was stored under `key`.
  bool has(const std::string& key) const { return values_.count(key) > 0; }

  // The op's name (as used in error messages).
  const std::string& op_name() const { return op_name_; }

 private:
  friend class detail::CustomFunctionNode;
  template <class Derived, class R, class... Ps>
  friend R detail::run(const std::source_location& loc, Ps&&... args);

  [[noreturn]] void bad_value(const std::string& key, const std::type_info& requested) const;

  std::string op_name_;
  // Set once recorded: saved tensors then live in the node.
  const detail::CustomFunctionNode* node_ = nullptr;
  TensorList to_save_;  // during forward
  std::vector<const TensorImpl*> non_differentiable_;
  std::vector<bool> needs_input_grad_;
  std::map<std::string, std::any> values_;
};

namespace detail {

std::string demangle(const char* mangled);  // without namespace qualifiers when not a template

// The node apply() records. Non-template: wiring and checks live in function.cpp.
class CustomFunctionNode : public Node {
 public:
  FunctionContext ctx;
  // What save_for_backward kept, checked for in-place changes when unpacked.
  SmallVector<SavedTensor, 3> saved_tensors;

  // Connects the node to `inputs`, makes it grad_fn of the differentiable `outputs` (replacing an
  // output that aliases an input's handle by a fresh view, so the input is left untouched), packs
  // the saved tensors and keeps the replay inputs.
  void connect(const TensorList& inputs, TensorList& outputs, const std::source_location& loc);
  // Unpacks saved tensor i (checking its version).
  Tensor saved(size_t i) const;
  // Drops the saved tensors (after a backward without retain_graph).
  void release() override;
  // A custom node replays while its (aliased) inputs are unmodified. Outputs that are not
  // differentiable come back undefined: they are not part of what a replay checks.
  bool can_replay() const override;
  TensorList replay(const TensorList& inputs) const override;

 protected:
  // Validates what backward returned: one gradient per tensor input, floating, in the input's
  // dtype.
  TensorList check_backward(TensorList grads) const;

 private:
  // connect's steps. Marks which outputs are differentiable and gives a fresh handle to an output
  // that is an input (or already on a tape, or returned twice); returns the outputs as forward
  // returned them.
  std::vector<const TensorImpl*> sort_outputs(const TensorList& inputs, TensorList& outputs);
  // Moves the context's saved tensors into the node (outputs saved without a cycle).
  void take_saved(const TensorList& outputs, const std::vector<const TensorImpl*>& original);
  // Keeps the replay inputs: copies under a TapeCheckGuard, else aliases with their versions.
  void keep_replay_inputs(const TensorList& inputs);

  std::vector<uint32_t> replay_versions_;  // versions of aliased replay inputs (empty for copies)
  std::vector<bool> differentiable_;       // per output
  bool had_saved_ = false;
};

// Forward mode through a custom op: sets the tangents Derived::jvp gives on the differentiable
// outputs (replacing an output that is one of the inputs by a fresh view first), or raises the
// error for an op without a jvp.
void set_custom_tangents(const std::string& op, const TensorList& inputs, TensorList& outputs,
                         const TensorList& tangents, bool has_jvp);

// Replays keep the non-tensor arguments as built-in ops do (op.h): nothing for a tensor (its value
// is a replay input), the length of a TensorList, a copy of anything else.
using op_detail::is_list;
using op_detail::is_tensor;
template <class P>
using StoredArg = op_detail::Stored<P>;

template <class P>
void append_tensors(TensorList& out, const P& arg) {
  if constexpr (is_tensor<P>) {
    out.push_back(arg);
  } else if constexpr (is_list<P>) {
    out.insert(out.end(), arg.begin(), arg.end());
  }
}

template <class Derived>
const std::string& function_name() {
  static const std::string name = [] {
    if constexpr (requires { std::string_view(Derived::name); }) {
      return std::string(Derived::name);
    } else {
      return demangle(typeid(Derived).name());
    }
  }();
  return name;
}

template <class R>
TensorList as_list(R&& r) {
  return op_detail::as_outputs(std::forward<R>(r));
}

template <class Derived>
class CustomNode final : public CustomFunctionNode {
 public:
  std::string name() const override { return function_name<Derived>(); }
  TensorList apply(TensorList&& grad_outputs) override {
    using Result = decltype(Derived::backward(ctx, grad_outputs));
    static_assert(std::is_same_v<std::remove_cvref_t<Result>, TensorList> ||
                      std::is_same_v<std::remove_cvref_t<Result>, Tensor>,
                  "backward(FunctionContext&, const TensorList&) must return TensorList or Tensor");
    return check_backward(as_list(Derived::backward(ctx, grad_outputs)));
  }
};

// The outputs as forward's return type R (Tensor or TensorList).
template <class R>
R as_result(TensorList& outputs) {
  if constexpr (std::is_same_v<R, Tensor>) {
    return outputs[0];
  } else {
    return outputs;
  }
}

// Forward mode through the op: Derived::jvp's tangents set on the outputs (or the error for an op
// without a jvp). `c`: the context forward filled.
template <class Derived>
void propagate_tangents(FunctionContext& c, const TensorList& inputs, TensorList& outputs) {
  TensorList tangents;
  constexpr bool has_jvp = requires { &Derived::jvp; };
  if constexpr (has_jvp) {
    TensorList t;
    for (const Tensor& x : inputs) t.push_back(fwd::detail::tangent_of(x));
    fwd::detail::Suspend rule_time;
    tangents = as_list(Derived::jvp(c, t));
  }
  set_custom_tangents(c.op_name(), inputs, outputs, tangents, has_jvp);
}

// The node's replay: the op applied again (and recorded, grad mode permitting, so a replay has the
// same backward) to new tensors, with the other arguments as `stored` kept them.
template <class Derived, class R, class... Ps, class Stored>
std::function<TensorList(const TensorList&)> make_replay(const std::source_location& loc,
                                                         Stored stored) {
  return [loc, stored = std::move(stored)](const TensorList& x) -> TensorList {
    return std::apply(
        [&](const auto&... s) {
          size_t cursor = 0;
          // Braced initialisation evaluates left to right, so tensors are taken in order.
          std::tuple<std::decay_t<Ps>...> args{op_detail::restored<Ps>(s, x, cursor)...};
          return as_list(std::apply(
              [&](auto&... a) { return run<Derived, R, Ps...>(loc, std::forward<Ps>(a)...); },
              args));
        },
        stored);
  };
}

// Runs Derived::forward and records its node (the body of Function<Derived>::apply).
template <class Derived, class R, class... Ps>
R run(const std::source_location& loc, Ps&&... args) {
  static_assert(std::is_same_v<R, Tensor> || std::is_same_v<R, TensorList>,
                "forward must return Tensor or TensorList");
  TensorList inputs;
  (append_tensors(inputs, args), ...);
  bool record = false, dual = false;
  for (const Tensor& t : inputs) record = record || any_requires_grad({&t});
  if (fwd::detail::propagating())
    for (const Tensor& t : inputs) dual = dual || (t.defined() && fwd::detail::is_dual(t));

  FunctionContext ctx;
  ctx.op_name_ = function_name<Derived>();
  ctx.needs_input_grad_.reserve(inputs.size());
  for (const Tensor& t : inputs) ctx.needs_input_grad_.push_back(record && any_requires_grad({&t}));

  // What a replay needs besides the tensors (only if every other argument can be copied).
  constexpr bool replayable = (std::is_copy_constructible_v<StoredArg<Ps>> && ...);
  std::conditional_t<replayable, std::optional<std::tuple<StoredArg<Ps>...>>, std::monostate>
      stored;
  if constexpr (replayable) {
    if (record) stored.emplace(op_detail::store(args)...);
  }

  R result = [&] {
    NoGradGuard no_grad;
    fwd::detail::Suspend no_tangents;
    return Derived::forward(ctx, std::forward<Ps>(args)...);
  }();
  if (!record && !dual) return result;

  TensorList outputs = as_list(std::move(result));
  std::shared_ptr<CustomNode<Derived>> node;
  if (record) {
    node = std::make_shared<CustomNode<Derived>>();
    node->ctx = std::move(ctx);
    node->connect(inputs, outputs, loc);
  }
  if (dual) {
    propagate_tangents<Derived>(node ? node->ctx : ctx, inputs, outputs);
    if (!node) return as_result<R>(outputs);
  }
  if constexpr (replayable)
    node->tape_check.replay_fn = make_replay<Derived, R, Ps...>(loc, std::move(*stored));
  return as_result<R>(outputs);
}

template <class Derived, class Forward>
struct Applier {
  static_assert(sizeof(Forward) == 0,
                "Function<Derived>: Derived::forward must be one static function "
                "R forward(FunctionContext&, args...) with R = Tensor or TensorList");
};

// apply(args..., where): same parameters as forward, plus the caller's location (filled in by the
// compiler) for Node::recorded_at.
template <class Derived, class R, class... Ps>
struct Applier<Derived, R (*)(FunctionContext&, Ps...)> {
  R operator()(Ps... args, std::source_location where = std::source_location::current()) const {
    return run<Derived, R, Ps...>(where, std::forward<Ps>(args)...);
  }
};
template <class Derived, class R, class... Ps>
struct Applier<Derived, R (*)(FunctionContext&, Ps...) noexcept>
    : Applier<Derived, R (*)(FunctionContext&, Ps...)> {};

template <class Derived>
struct ApplyFor : Applier<Derived, decltype(&Derived::forward)> {};
template <class T>
inline constexpr T instance{};  // the one (empty) callable object behind Function<D>::apply

}  // namespace detail

// CRTP base of a custom op; see the top of this file. `Derived::apply(args...)` runs forward and
// records the op.
template <class Derived>
struct Function {
  // A reference, so that the callable's type (which reads Derived::forward) is only completed when
  // apply is used, once Derived is complete.
  static constexpr const detail::ApplyFor<Derived>& apply =
      detail::instance<detail::ApplyFor<Derived>>;
};

}  // namespace ag
