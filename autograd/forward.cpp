#include "autograd/forward.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <vector>

#include "autograd/op.h"
#include "autograd/ops/shape.h"

namespace ag::fwd {
namespace detail {

// Read by every op (needs_derivatives in node.cpp) with a plain load.
thread_local bool t_propagating [[gnu::tls_model("initial-exec")]] = false;

namespace {
thread_local uint64_t t_level = 0;  // the open level's id, 0 if none
std::atomic<uint64_t> g_next_level{1};

// Every TensorImpl given a tangent at the open level (weakly). A tangent can reach, through the
// graph recorded while computing it, the very tensor that holds it: exp's tangent t * out records
// a mul that saves out, so out -> tangent -> mul node -> out. Such cycles cannot be freed by
// reference counting; the level breaks them when it ends by dropping every tangent it handed out,
// which is also what makes the tangents "ignored once the level has ended". Expired entries are
// pruned whenever the list has doubled since the last pruning, so a long level keeps it
// proportional to the live duals.
struct Holders {
  std::vector<std::weak_ptr<TensorImpl>> list;
  size_t prune_at = 64;
};
thread_local Holders t_holders;

void drop_level_tangents(uint64_t level) {
  std::vector<std::weak_ptr<TensorImpl>> list = std::move(t_holders.list);
  t_holders = Holders{};
  // Moved out first and released after the loop: releasing a tangent can free other holders.
  std::vector<std::shared_ptr<TensorImpl>> dropped;
  for (const auto& w : list) {
    std::shared_ptr<TensorImpl> impl = w.lock();
    if (!impl || impl->tangent_level != level) continue;
    dropped.push_back(std::move(impl->tangent));  // leaves impl->tangent null
    impl->tangent_level = 0;
  }
}
}  // namespace

void hold_tangent(const std::shared_ptr<TensorImpl>& impl) {
  if (!impl->tangent || t_level == 0 || impl->tangent_level != t_level) return;
  Holders& h = t_holders;
  if (h.list.size() >= h.prune_at) {
    std::erase_if(h.list, [](const std::weak_ptr<TensorImpl>& w) { return w.expired(); });
    h.prune_at = std::max<size_t>(64, 2 * h.list.size());
  }
  h.list.push_back(impl);
}

bool propagating() { return t_propagating; }

bool is_dual(const Tensor& t) {
  const TensorImpl& impl = *t.impl();
  return impl.tangent && t_level != 0 && impl.tangent_level == t_level;
}

Tensor tangent_of(const Tensor& t) {
  if (!t.defined() || !is_dual(t)) return Tensor();
  return Tensor(t.impl()->tangent);
}

void set_tangent(const Tensor& t, const Tensor& tangent) {
  TensorImpl* impl = t.impl();
  impl->tangent = tangent.defined() ? tangent.impl_ptr() : nullptr;
  impl->tangent_level = tangent.defined() ? t_level : 0;
  hold_tangent(t.impl_ptr());
}

Suspend::Suspend() : prev_(t_propagating) { t_propagating = false; }
Suspend::~Suspend() { t_propagating = prev_; }

Tensor fit_tangent(const Tensor& out, Tensor t, const char* op) {
  if (t.dtype() != out.dtype()) t = t.to(out.dtype());
  if (!(t.shape() == out.shape())) {
    Shape b = broadcast_shapes(t.shape(), out.shape(), op);
    if (!(b == out.shape()))
      fail<ShapeError>("{}: its JVP rule gave a tangent of shape {} for an output of shape {}", op,
                       t.shape(), out.shape());
    t = expand(t, out.shape());
  }
  return t;
}

void fail_no_jvp(const std::string& op) {
  fail<AutogradError>(
      "{}: forward-mode AD reached an op without a JVP rule (it cannot compute the tangent of its "
      "output); give the op a jvp rule, or compute this part outside the DualLevel",
      op);
}

}  // namespace detail

DualLevel::DualLevel() {
  if (detail::t_level != 0)
    fail<AutogradError>(
        "DualLevel: forward-AD level {} is already open on this thread; levels do not nest (close "
        "it before opening another)",
        detail::t_level);
  id_ = detail::g_next_level.fetch_add(1, std::memory_order_relaxed);
  detail::t_level = id_;
  detail::t_propagating = true;
}

DualLevel::~DualLevel() {
  detail::drop_level_tangents(id_);
  detail::t_level = 0;
  detail::t_propagating = false;
}

bool is_level_open() { return detail::t_level != 0; }

namespace {

// A new handle on x's data (a view), recorded as the identity op `name` when x requires grad; no
// tangent is propagated to it.
Tensor alias(const char* name, const Tensor& x) {
  detail::Suspend no_tangents;
  Tensor out = x.detach();
  // A tracked view (unlike detach's): an in-place op recorded on x makes it stale.
  const TensorImpl& s = *x.impl();
  out.impl()->view_history = s.is_view ? s.view_history : s.storage->history;
  if (needs_derivatives({&x})) {
    struct None {};
    record(op(name, alias, name, x), out, None{},
           rules::linear([](const None&, const Tensor& g) -> TensorList { return {g}; }));
  }
  return out;
}

}  // namespace

Tensor make_dual(const Tensor& primal, const Tensor& tangent) {
  if (detail::t_level == 0)
    fail<AutogradError>(
        "make_dual: no forward-AD level is open; create an ag::fwd::DualLevel first");
  if (!primal.defined() || !tangent.defined())
    fail<AutogradError>("make_dual: the {} is undefined", primal.defined() ? "tangent" : "primal");
  if (!is_floating(primal.dtype()) || tangent.dtype() != primal.dtype())
    fail<DtypeError>(
        "make_dual: primal of dtype {} and tangent of dtype {}: both must be the same float dtype",
        dtype_name(primal.dtype()), dtype_name(tangent.dtype()));
  if (!(tangent.shape() == primal.shape()))
    fail<ShapeError>("make_dual: tangent of shape {} for a primal of shape {}: shapes must match",
                     tangent.shape(), primal.shape());
  if (detail::is_dual(tangent))
    fail<AutogradError>(
        "make_dual: the tangent of shape {} is itself a dual at this level; tangents of tangents "
        "need nested levels, which are not supported",
        tangent.shape());
  Tensor out = alias("make_dual", primal);
  detail::set_tangent(out, tangent);
  return out;
}

UnpackedDual unpack_dual(const Tensor& t) {
  if (!t.defined()) fail<AutogradError>("unpack_dual: the tensor is undefined");
  Tensor tangent = detail::tangent_of(t);
  if (!tangent.defined()) return {t, Tensor()};
  return {alias("unpack_dual", t), tangent};
}

}  // namespace ag::fwd
