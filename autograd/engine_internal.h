// Internal to the library (not installed): the engine entry point behind activation checkpointing
// (checkpoint.cpp).
#pragma once

#include <vector>

#include "autograd/node.h"

namespace ag::detail {

// Back-propagates `grad_outputs` from `outputs` (each requiring grad; one gradient each, of its
// shape) through the graph that produced them and returns, for each of `sinks`, the gradient that
// reaches that edge (undefined if none does). A sink's node is never run: gradients stop there, so
// the graph beyond the sinks is neither run nor released. No .grad is written, no gradient-ready
// hook runs, retain_grad is not honoured. `create_graph`: the gradient computation is recorded (and
// the graph between outputs and sinks kept), as in backward(). Nodes that are not sinks run as in
// backward(): the caller passes every edge leaving the part of the graph it wants run (checkpoint:
// each edge from a recomputed node to a node recorded before the recomputation). A gradient sent
// to a sink's node along an edge that is not a sink raises AutogradError naming the node.
TensorList grad_at_edges(const TensorList& outputs, const TensorList& grad_outputs,
                         const std::vector<Edge>& sinks, bool create_graph);

}  // namespace ag::detail
