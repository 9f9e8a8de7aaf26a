// The tape drawn: exports the graph recorded behind a tensor as Graphviz DOT or as Mermaid.
//
//   Tensor loss = nn::cross_entropy(model(x), y);
//   set_grad_norm_tracing(true);          // optional: also show the gradient reaching each node
//   loss.backward();
//   std::string dot = to_dot(loss, model.named_parameters());   // `dot -Tsvg` turns it into a
//   picture std::string mmd = to_mermaid(loss);                          // renders in GitHub
//   markdown
//
// What is drawn, in the direction the forward pass ran (inputs on the left, the root on the right):
//   - one box per recorded op (a Node): "#<sequence number> <op name>" and the shape of each output
//     (Node::output_meta); the root is drawn with a double border;
//   - one rounded box per leaf that requires grad (its AccumulateGrad node): its name if one was
//   given,
//     else "leaf", and its shape;
//   - optionally one grey box per input that needs no gradient (data, targets, constants): "const"
//     and its recorded shape. Such inputs are not on the tape; they are drawn from the op's record;
//   - one arrow per edge of the tape, from the node that produced a value to the op that consumed
//   it,
//     labelled with the value's shape. Ops and arrows are listed in recording order (increasing
//     sequence number); leaves, which all have sequence number 0, come first, in the order ops use
//     them.
//   - after a backward run with set_grad_norm_tracing(true) (engine.h), the Euclidean norm of the
//     gradient of each node's output (Node::last_grad_norm) as a third line "|grad| = ...". For a
//     leaf it is the norm of the gradient that backward added into its .grad.
//
// Tensors are named by handing (name, tensor) pairs: a leaf's name labels its box, the name of a
// non-leaf (say "z1" for a pre-activation) is prefixed to the op that produced it ("z1 = linear").
// nn::Module::named_parameters() has exactly that type, so a model's parameters name themselves.
//
// The walk is iterative (a chain of a million nodes is fine). The graph is only read: exporting
// does not change it and works before or after backward (also after a backward that released it).
#pragma once

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.h"

namespace ag {

// Names for tensors in a drawing. Holds the tensors (so the names stay valid while it lives).
class TensorNames {
 public:
  TensorNames() = default;
  TensorNames(std::vector<std::pair<std::string, Tensor>> named)  // NOLINT: implicit on purpose
      : named_(std::move(named)) {}
  TensorNames(std::initializer_list<std::pair<std::string, Tensor>> named) : named_(named) {}
  // Adds one name (a later name for the same tensor wins). Returns *this.
  TensorNames& add(std::string name, const Tensor& t);
  // The name given to `t`, or "" if none. A tensor is matched by identity (same TensorImpl).
  std::string find(const TensorImpl* t) const;
  // The name of output `output_nr` of `node` (a non-leaf tensor it produced), or "".
  std::string find_output(const Node* node, uint32_t output_nr) const;
  const std::vector<std::pair<std::string, Tensor>>& entries() const { return named_; }

 private:
  std::vector<std::pair<std::string, Tensor>> named_;
};

struct GraphExportOptions {
  TensorNames names;
  bool show_constants = true;   // draw inputs that need no gradient as grey boxes
  bool show_grad_norms = true;  // add "|grad| = ..." where a traced backward left a norm
  std::string title;            // drawn above the graph when not empty
};

// The nodes of the tape reachable from `root`: first the leaves (AccumulateGrad, sequence number 0)
// in the order the ops use them, then the ops in recording order. Iterative. For a leaf root: its
// AccumulateGrad node if one exists, else nothing. AutogradError if root is undefined.
std::vector<const Node*> tape_nodes(const Tensor& root);

// Graphviz DOT text ("digraph tape { ... }"). AutogradError if root does not require grad (nothing
// was recorded for it).
std::string to_dot(const Tensor& root, const GraphExportOptions& options = {});
std::string to_dot(const Tensor& root, const TensorNames& names);

// Mermaid flowchart text ("graph LR ..."), the format GitHub renders inside ```mermaid blocks.
// AutogradError as for to_dot.
std::string to_mermaid(const Tensor& root, const GraphExportOptions& options = {});
std::string to_mermaid(const Tensor& root, const TensorNames& names);

}  // namespace ag
