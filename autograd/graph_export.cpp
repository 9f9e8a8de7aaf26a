#include "autograd/graph_export.h"

#include <fmt/format.h>

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

namespace ag {

TensorNames& TensorNames::add(std::string name, const Tensor& t) {
  named_.emplace_back(std::move(name), t);
  return *this;
}

std::string TensorNames::find(const TensorImpl* t) const {
  for (auto it = named_.rbegin(); it != named_.rend(); ++it)
    if (it->second.defined() && it->second.impl() == t) return it->first;
  return "";
}

std::string TensorNames::find_output(const Node* node, uint32_t output_nr) const {
  for (auto it = named_.rbegin(); it != named_.rend(); ++it) {
    const Tensor& t = it->second;
    if (t.defined() && t.grad_fn().get() == node && t.impl()->output_nr == output_nr)
      return it->first;
  }
  return "";
}

std::vector<const Node*> tape_nodes(const Tensor& root) {
  if (!root.defined()) fail<AutogradError>("tape_nodes: the root tensor is undefined");
  std::vector<const Node*> found;
  if (!root.grad_fn()) {
    if (auto acc = root.impl()->grad_accumulator.lock()) found.push_back(acc.get());
    return found;
  }
  // Depth-first with an explicit stack; `found` keeps the order in which nodes are first reached.
  std::unordered_set<const Node*> seen{root.grad_fn().get()};
  std::vector<const Node*> stack{root.grad_fn().get()};
  while (!stack.empty()) {
    const Node* n = stack.back();
    stack.pop_back();
    found.push_back(n);
    for (const Edge& e : n->tape.next_edges)
      if (e.fn && seen.insert(e.fn.get()).second) stack.push_back(e.fn.get());
  }
  // Ops in recording order; leaves (all sequence number 0) in the order their consumers use them:
  // the first argument of the first op comes first.
  std::vector<const Node*> ops, leaves;
  for (const Node* n : found) (n->sequence_nr() == 0 ? leaves : ops).push_back(n);
  std::sort(ops.begin(), ops.end(),
            [](const Node* a, const Node* b) { return a->sequence_nr() < b->sequence_nr(); });
  std::vector<const Node*> ordered;
  std::unordered_set<const Node*> placed;
  for (const Node* n : ops)
    for (const Edge& e : n->tape.next_edges)
      if (e.fn && e.fn->sequence_nr() == 0 && placed.insert(e.fn.get()).second)
        ordered.push_back(e.fn.get());
  for (const Node* n : leaves)  // not consumed by any op (cannot happen on a real tape)
    if (placed.insert(n).second) ordered.push_back(n);
  ordered.insert(ordered.end(), ops.begin(), ops.end());
  return ordered;
  return found;
}

namespace {

// The drawing, independent of the output syntax.
struct Box {
  enum Kind { op, leaf, constant };
  std::string id;
  Kind kind = op;
  bool root = false;
  std::vector<std::string> lines;
};
struct Arrow {
  std::string from, to, label;
};
struct Drawing {
  std::vector<Box> boxes;
  std::vector<Arrow> arrows;
};

std::string shapes_of(const Node& n) {
  std::string s;
  for (size_t i = 0; i < n.tape.output_meta.size(); ++i)
    s += (i ? ", " : "") + to_string(n.tape.output_meta[i].shape);
  return s;
}

// The recorded shape of input i of n as text ("" when not recorded).
std::string input_shape(const Node& n, size_t i) {
  return i < n.tape.input_meta.size() ? to_string(n.tape.input_meta[i].shape) : "";
}

void add_grad_norm(Box& box, double norm, const GraphExportOptions& o) {
  if (o.show_grad_norms && norm >= 0) box.lines.push_back(fmt::format("|grad| = {:.4g}", norm));
}

Drawing build(const Tensor& root, const GraphExportOptions& o, const char* what) {
  if (!root.defined()) fail<AutogradError>("{}: the root tensor is undefined", what);
  if (!root.requires_grad())
    fail<AutogradError>(
        "{}: the tensor of shape {} does not require grad, so no tape was recorded for it", what,
        root.shape());
  Drawing d;
  if (!root.grad_fn()) {  // a lone leaf
    Box b{"n0", Box::leaf, true, {}};
    std::string name = o.names.find(root.impl());
    b.lines = {name.empty() ? "leaf" : name, to_string(root.shape())};
    if (auto acc = root.impl()->grad_accumulator.lock())
      add_grad_norm(b, acc->diagnostics.last_grad_norm, o);
    d.boxes.push_back(std::move(b));
    return d;
  }
  std::vector<const Node*> nodes = tape_nodes(root);
  std::unordered_map<const Node*, std::string> id;
  for (const Node* n : nodes) id[n] = fmt::format("n{}", id.size());
  const Node* root_node = root.grad_fn().get();
  int constants = 0;
  for (const Node* n : nodes) {
    if (auto* acc = dynamic_cast<const AccumulateGrad*>(n)) {
      Box b{id[n], Box::leaf, false, {}};
      const TensorImpl* leaf = acc->leaf().get();
      std::string name = o.names.find(leaf);
      b.lines = {name.empty() ? "leaf" : name, to_string(leaf->shape)};
      add_grad_norm(b, n->diagnostics.last_grad_norm, o);
      d.boxes.push_back(std::move(b));
      continue;
    }
    // Inputs needing no gradient get a box of their own, listed just before their consumer.
    std::vector<std::string> from(n->tape.next_edges.size());
    for (size_t i = 0; i < n->tape.next_edges.size(); ++i) {
      if (n->tape.next_edges[i].fn) {
        from[i] = id[n->tape.next_edges[i].fn.get()];
      } else if (o.show_constants) {
        from[i] = fmt::format("c{}", constants++);
        std::string shape = input_shape(*n, i);
        d.boxes.push_back(Box{from[i], Box::constant, false, {"const", shape}});
      }
    }
    Box b{id[n], Box::op, n == root_node, {}};
    std::string name;
    for (uint32_t k = 0; k < n->num_outputs() && name.empty(); ++k)
      name = o.names.find_output(n, k);
    b.lines.push_back(name.empty() ? n->name() : name + " = " + n->name());
    b.lines.push_back(fmt::format("#{}  {}", n->sequence_nr(), shapes_of(*n)));
    add_grad_norm(b, n->diagnostics.last_grad_norm, o);
    d.boxes.push_back(std::move(b));
    // One arrow per input, in argument order; consumers come in recording order.
    for (size_t i = 0; i < from.size(); ++i) {
      if (from[i].empty()) continue;
      std::string shape = input_shape(*n, i);
      d.arrows.push_back(Arrow{from[i], id[n], shape});
    }
  }
  return d;
}

std::string dot_escape(const std::string& s) {
  std::string r;
  for (char c : s) {
    if (c == '"' || c == '\\') r += '\\';
    r += c;
  }
  return r;
}

// Mermaid labels are quoted; quotes and '#' become entity codes ('#' starts one).
std::string mermaid_escape(const std::string& s) {
  std::string r;
  for (char c : s) {
    if (c == '"') {
      r += "#quot;";
    } else if (c == '#') {
      r += "#35;";
    } else if (c == '<') {
      r += "#lt;";
    } else if (c == '>') {
      r += "#gt;";
    } else {
      r += c;
    }
  }
  return r;
}

std::string join(const std::vector<std::string>& lines, const std::string& sep,
                 std::string (*escape)(const std::string&)) {
  std::string r;
  for (size_t i = 0; i < lines.size(); ++i) r += (i ? sep : "") + escape(lines[i]);
  return r;
}

}  // namespace

std::string to_dot(const Tensor& root, const GraphExportOptions& o) {
  Drawing d = build(root, o, "to_dot");
  std::string s = "digraph tape {\n  rankdir=LR;\n";
  if (!o.title.empty()) s += fmt::format("  labelloc=t;\n  label=\"{}\";\n", dot_escape(o.title));
  s += "  node [shape=box, fontname=\"Helvetica\", fontsize=11];\n";
  s += "  edge [fontname=\"Helvetica\", fontsize=9, color=\"#555555\"];\n";
  for (const Box& b : d.boxes) {
    std::string style;
    switch (b.kind) {
      case Box::leaf:
        style = "style=\"rounded,filled\", fillcolor=\"#dbeafe\"";
        break;
      case Box::op:
        style = "style=filled, fillcolor=\"#fef3c7\"";
        break;
      case Box::constant:
        style = "style=dashed, color=\"#9ca3af\", fontcolor=\"#6b7280\"";
        break;
    }
    if (b.root) style += ", peripheries=2";
    s += fmt::format("  {} [{}, label=\"{}\"];\n", b.id, style, join(b.lines, "\\n", dot_escape));
  }
  for (const Arrow& a : d.arrows)
    s += fmt::format("  {} -> {} [label=\"{}\"];\n", a.from, a.to, dot_escape(a.label));
  s += "}\n";
  return s;
}

std::string to_dot(const Tensor& root, const TensorNames& names) {
  GraphExportOptions o;
  o.names = names;
  return to_dot(root, o);
}

std::string to_mermaid(const Tensor& root, const GraphExportOptions& o) {
  Drawing d = build(root, o, "to_mermaid");
  std::string s = "graph LR\n";
  if (!o.title.empty()) s += fmt::format("  %% {}\n", o.title);
  std::vector<std::string> classes[3];
  for (const Box& b : d.boxes) {
    std::string label = fmt::format("\"{}\"", join(b.lines, "<br/>", mermaid_escape));
    if (b.root) {
      s += fmt::format("  {}[[{}]]\n", b.id, label);
    } else if (b.kind == Box::leaf) {
      s += fmt::format("  {}([{}])\n", b.id, label);
    } else {
      s += fmt::format("  {}[{}]\n", b.id, label);
    }
    classes[b.kind].push_back(b.id);
  }
  for (const Arrow& a : d.arrows)
    s += fmt::format("  {} -->|\"{}\"| {}\n", a.from, mermaid_escape(a.label), a.to);
  s += "  classDef op fill:#fef3c7,stroke:#d97706,color:#111111\n";
  s += "  classDef leaf fill:#dbeafe,stroke:#2563eb,color:#111111\n";
  s += "  classDef const fill:#f3f4f6,stroke:#9ca3af,color:#6b7280,stroke-dasharray:4 3\n";
  const char* class_names[3] = {"op", "leaf", "const"};
  for (int k = 0; k < 3; ++k) {
    if (classes[k].empty()) continue;
    std::string ids;
    for (size_t i = 0; i < classes[k].size(); ++i) ids += (i ? "," : "") + classes[k][i];
    s += fmt::format("  class {} {}\n", ids, class_names[k]);
  }
  return s;
}

std::string to_mermaid(const Tensor& root, const TensorNames& names) {
  GraphExportOptions o;
  o.names = names;
  return to_mermaid(root, o);
}

}  // namespace ag
