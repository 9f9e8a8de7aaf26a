// Backward: replays the tape in reverse recording order and accumulates gradients.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "autograd/tensor.h"

namespace ag {

// Back-propagates from `outputs` (seeded with `grad_outputs`, default 1 for one-element outputs)
// and accumulates gradients into the .grad of every leaf that requires grad (and of non-leaves that
// called retain_grad). With retain_graph = false the saved tensors are released as each node runs;
// a second backward through such a node raises AutogradError naming it. With create_graph = true
// the gradient computation is itself recorded, so gradients can be differentiated again (and the
// graph is retained, as the new graph refers into it). As in PyTorch, a leaf's .grad made that way
// refers to a graph that saved the leaf: a reference cycle that keeps both alive until the grad is
// reset (x.zero_grad() or set_grad(Tensor())). grad(..., create_graph = true) forms no cycle.
void backward(const TensorList& outputs, const TensorList& grad_outputs = {},
              bool retain_graph = false, bool create_graph = false);

// Gradients of `outputs` with respect to `inputs` (leaves or not), returned rather than
// accumulated: no .grad is touched. An input the outputs do not depend on raises AutogradError
// unless allow_unused, in which case its gradient is undefined.
TensorList grad(const TensorList& outputs, const TensorList& inputs,
                const TensorList& grad_outputs = {}, bool retain_graph = false,
                bool create_graph = false, bool allow_unused = false);

// ---- anomaly mode ----
// While on (per thread), every op recorded on the tape checks its outputs, and backward checks the
// gradient each node returns for each input, for NaN and infinity. The first one found raises
// AnomalyError naming the op, its input shapes, the pass (forward or backward), the element, and
// where the op was recorded: the first frame of the call stack outside libautograd, as file:line
// when the calling binary has debug information (-g), else as function and object. To find that
// place, each recorded op also captures its call stack (glibc's backtrace(), about a microsecond);
// it is turned into text (by running binutils' addr2line) only when an error is raised.
// Forward checks cover ops that record (grad mode on and an input requiring grad); ops computed
// without recording are not checked. Off, it costs one predictable branch per recorded op and per
// backward: no capture, no check, no allocation.
bool is_anomaly_enabled();
// Turns anomaly mode on or off for the calling thread (DetectAnomalyGuard does it for a scope).
void set_anomaly_enabled(bool on);
// RAII: anomaly mode on in this scope (on this thread).
class DetectAnomalyGuard {
 public:
  DetectAnomalyGuard() : prev_(is_anomaly_enabled()) { set_anomaly_enabled(true); }
  ~DetectAnomalyGuard() { set_anomaly_enabled(prev_); }
  DetectAnomalyGuard(const DetectAnomalyGuard&) = delete;
  DetectAnomalyGuard& operator=(const DetectAnomalyGuard&) = delete;

 private:
  bool prev_;
};

// While on (per thread), backward stores the norm of each node's output gradient in
// Node::last_grad_norm (for diagnostics and tape drawings).
void set_grad_norm_tracing(bool on);
// Whether set_grad_norm_tracing is on in this thread.
bool is_grad_norm_tracing();

// ---- gradient-ready hooks ----
//
// A callback on a leaf tensor that backward() runs as soon as the leaf's .grad is final for that
// backward: every node that sends the leaf a gradient has run and its .grad holds their sum (plus
// what it held before). Without hooks all leaves are written at the end of the replay; a hooked
// leaf is written right after its last consumer ran, so the hook can fire while the rest of the
// graph is still being replayed. Data-parallel training (nn/distributed) uses this to start sending
// a layer's gradients to the other processes while backward works on the layers below. (PyTorch's
// counterpart is Tensor.register_post_accumulate_grad_hook.)
//
// - Called once per backward() that delivers a gradient to the leaf, on the thread that runs
//   backward, with the leaf as argument; not called when no gradient reaches the leaf, and never by
//   grad() (which writes no .grad). Several hooks on one leaf run in registration order.
// - An exception thrown by a hook propagates out of backward().
// - The hook may read the leaf's .grad (and modify it in place); it must not start another
//   backward.
// - Cost: none while no hook is registered anywhere; otherwise one walk over the graph per
//   backward() to find each hooked leaf's last consumer.
//
// The hook stays registered until the returned handle is destroyed or its remove() is called (or
// the leaf is destroyed). AutogradError if `leaf` is undefined, not a leaf or does not require
// grad.
using GradReadyHook = std::function<void(const Tensor& leaf)>;

// Owns one registered gradient-ready hook; destroying it (or remove()) unregisters the hook.
class GradReadyHandle {
 public:
  GradReadyHandle() = default;
  // Takes ownership of the hook registered under `id` (register_grad_ready_hook makes these).
  explicit GradReadyHandle(uint64_t id) : id_(id) {}
  // Moves the registration; `other` is left empty.
  GradReadyHandle(GradReadyHandle&& other) noexcept : id_(other.id_) { other.id_ = 0; }
  // Removes this handle's hook, then takes over `other`'s registration.
  GradReadyHandle& operator=(GradReadyHandle&& other) noexcept;
  GradReadyHandle(const GradReadyHandle&) = delete;
  GradReadyHandle& operator=(const GradReadyHandle&) = delete;
  ~GradReadyHandle() { remove(); }
  // Unregisters the hook (no-op if already removed).
  void remove();
  // Whether the handle still owns a registered hook.
  bool active() const { return id_ != 0; }

 private:
  uint64_t id_ = 0;
};

// Registers `hook` on `leaf` (see above); the hook lives as long as the returned handle.
[[nodiscard]] GradReadyHandle register_grad_ready_hook(const Tensor& leaf, GradReadyHook hook);

}  // namespace ag
