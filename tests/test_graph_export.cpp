// Drawing the tape: tape_nodes, to_dot and to_mermaid (autograd/graph_export.h).
#include <algorithm>
#include <cmath>
#include <sstream>

#include "support.h"

using namespace ag;
using test::leaf;

namespace {

int64_t count(const std::string& text, const std::string& part) {
  int64_t n = 0;
  for (size_t pos = text.find(part); pos != std::string::npos; pos = text.find(part, pos + 1)) ++n;
  return n;
}

std::vector<std::string> lines_with(const std::string& text, const std::string& part) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.find(part) != std::string::npos) out.push_back(line);
  return out;
}

// y = sum(sigmoid(x @ w + b)) with x [2, 3], w [3, 1], b [1]: 4 ops, 3 leaves, 6 edges.
struct Small {
  Tensor x = leaf({2, 3}, -1, 1, 1);
  Tensor w = leaf({3, 1}, -1, 1, 2);
  Tensor b = leaf({1}, -1, 1, 3);
  Tensor z = add(matmul(x, w), b);
  Tensor y = sum(sigmoid(z));
};

}  // namespace

TEST_CASE("tape_nodes lists every node once, in recording order, leaves first") {
  Small s;
  auto nodes = tape_nodes(s.y);
  REQUIRE(nodes.size() == 7);
  std::vector<std::string> names;
  for (const Node* n : nodes) names.push_back(n->name());
  CHECK(std::count(names.begin(), names.end(), "AccumulateGrad") == 3);
  CHECK(std::vector<std::string>(names.begin() + 3, names.end()) ==
        std::vector<std::string>{"matmul", "add", "sigmoid", "sum"});
  for (size_t i = 1; i < nodes.size(); ++i)
    CHECK(nodes[i - 1]->sequence_nr() <= nodes[i]->sequence_nr());
  CHECK(nodes.back() == s.y.grad_fn().get());
}

TEST_CASE("a node used twice is listed once and both of its edges are drawn") {
  Tensor x = leaf({3});
  Tensor y = sum(mul(x, x));
  CHECK(tape_nodes(y).size() == 3);  // AccumulateGrad, mul, sum
  std::string dot = to_dot(y);
  CHECK(count(dot, " -> ") == 3);  // x -> mul twice, mul -> sum
}

TEST_CASE("to_dot draws one box per node and one arrow per edge, with op names and shapes") {
  Small s;
  std::string dot = to_dot(s.y);
  CHECK(dot.rfind("digraph tape {", 0) == 0);
  CHECK(dot.back() == '\n');
  CHECK(count(dot, " -> ") == 6);
  CHECK(lines_with(dot, "label=").size() == 7 + 6);  // 7 boxes, 6 labelled arrows
  for (const char* op : {"matmul", "add", "sigmoid", "sum"}) CHECK(count(dot, op) == 1);
  CHECK(lines_with(dot, "matmul")[0].find("[2, 1]") != std::string::npos);
  CHECK(lines_with(dot, "sum")[0].find("[]") != std::string::npos);
  CHECK(count(dot, "leaf\\n[2, 3]") == 1);
  CHECK(count(dot, "leaf\\n[3, 1]") == 1);
  CHECK(count(dot, "leaf\\n[1]") == 1);
  CHECK(count(dot, "peripheries=2") == 1);  // the root
  CHECK(lines_with(dot, "peripheries=2")[0].find("sum") != std::string::npos);
  CHECK(count(dot, "|grad|") == 0);  // no traced backward yet
}

TEST_CASE("arrows follow recording order and sequence numbers are shown") {
  Small s;
  std::string dot = to_dot(s.y);
  auto nodes = tape_nodes(s.y);
  std::vector<size_t> at;
  for (const Node* n : nodes)
    if (n->sequence_nr() > 0) {
      size_t pos = dot.find(fmt::format("#{}  ", n->sequence_nr()));
      REQUIRE(pos != std::string::npos);
      at.push_back(pos);
    }
  CHECK(std::is_sorted(at.begin(), at.end()));
  // The arrow into matmul (recorded first) comes before the one into sum (recorded last).
  auto arrows = lines_with(dot, " -> ");
  REQUIRE(arrows.size() == 6);
  CHECK(arrows.front().find("[2, 3]") != std::string::npos);  // x -> matmul
  CHECK(arrows.back().find("[2, 1]") != std::string::npos);   // sigmoid -> sum
}

TEST_CASE("named leaves and named intermediate tensors label their boxes") {
  Small s;
  TensorNames names{{"x", s.x}, {"w", s.w}, {"b", s.b}};
  names.add("z", s.z).add("loss", s.y);
  std::string dot = to_dot(s.y, names);
  CHECK(count(dot, "x\\n[2, 3]") == 1);
  CHECK(count(dot, "w\\n[3, 1]") == 1);
  CHECK(count(dot, "b\\n[1]") == 1);
  CHECK(count(dot, "z = add") == 1);
  CHECK(count(dot, "loss = sum") == 1);
  CHECK(count(dot, "leaf\\n") == 0);
  // named_parameters() has the same type as the names, so a model names its own parameters.
  std::vector<std::pair<std::string, Tensor>> params{{"0.weight", s.w}};
  CHECK(count(to_mermaid(s.y, params), "0.weight") == 1);
}

TEST_CASE("inputs that need no gradient are drawn as constants, or left out") {
  Tensor x = Tensor({{1.0, 2.0}, {3.0, 4.0}});  // data: not on the tape
  Tensor w = leaf({2, 1});
  Tensor y = sum(matmul(x, w));
  std::string dot = to_dot(y);
  CHECK(count(dot, "const\\n[2, 2]") == 1);
  CHECK(count(dot, " -> ") == 3);  // const -> matmul, w -> matmul, matmul -> sum
  GraphExportOptions o;
  o.show_constants = false;
  std::string bare = to_dot(y, o);
  CHECK(count(bare, "const") == 0);
  CHECK(count(bare, " -> ") == 2);
}

TEST_CASE("to_mermaid starts with graph, has one line per node and per edge") {
  Small s;
  GraphExportOptions o;
  o.title = "one small step";
  std::string m = to_mermaid(s.y, o);
  CHECK(m.rfind("graph LR\n", 0) == 0);
  CHECK(count(m, "%% one small step") == 1);
  CHECK(count(m, " -->|") == 6);
  CHECK(count(m, "n6[[") == 1);  // the root, double-bordered
  CHECK(count(m, "([\"leaf<br/>") == 3);
  for (const char* op : {"matmul", "add", "sigmoid", "sum"}) CHECK(count(m, op) == 1);
  CHECK(count(m, "#35;") == 4);  // '#' of the sequence numbers, escaped for mermaid
  CHECK(count(m, "classDef op") == 1);
  CHECK(count(m, "class n3,n4,n5,n6 op") == 1);
}

TEST_CASE("after a traced backward each node shows the norm of its output gradient") {
  Small s;
  set_grad_norm_tracing(true);
  s.y.backward();
  set_grad_norm_tracing(false);
  std::string dot = to_dot(s.y);
  CHECK(count(dot, "|grad| = ") == 7);
  // The root's gradient is the seed 1; the leaf w received exactly w.grad.
  CHECK(lines_with(dot, "sum")[0].find("|grad| = 1\"") != std::string::npos);
  double wn = std::sqrt(sum(mul(s.w.grad(), s.w.grad())).item());
  CHECK(count(dot, fmt::format("[3, 1]\\n|grad| = {:.4g}", wn)) == 1);
  std::string m = to_mermaid(s.y);
  CHECK(count(m, "|grad| = ") == 7);
  GraphExportOptions o;
  o.show_grad_norms = false;
  CHECK(count(to_dot(s.y, o), "|grad|") == 0);
}

TEST_CASE("norms of a traced backward: sigmoid's input gradient is s (1 - s) times g") {
  Tensor x = Tensor({0.5}).to(float64).requires_grad_();
  Tensor y = sum(sigmoid(x));
  set_grad_norm_tracing(true);
  y.backward();
  set_grad_norm_tracing(false);
  double s = 1.0 / (1.0 + std::exp(-0.5));
  auto nodes = tape_nodes(y);
  REQUIRE(nodes.size() == 3);
  CHECK(nodes[0]->diagnostics.last_grad_norm == doctest::Approx(s * (1 - s)));  // the leaf
  CHECK(nodes[1]->diagnostics.last_grad_norm == doctest::Approx(1.0));          // sigmoid's output
  CHECK(count(to_mermaid(y), fmt::format("|grad| = {:.4g}", s * (1 - s))) == 1);
}

namespace {
// A node with two outputs (first two and last three elements of a [5] input), wired by hand.
struct SplitTwo final : Node {
  SplitTwo() { num_outputs_ = 2; }
  std::string name() const override { return "split_two"; }
  TensorList apply(TensorList&& g) override { return {cat({g[0], g[1]})}; }
};
}  // namespace

TEST_CASE("a multi-output node lists every output shape; a name can be on any output") {
  Tensor x = leaf({5});
  auto node = std::make_shared<SplitTwo>();
  node->tape.next_edges.push_back(gradient_edge(x));
  node->tape.input_meta.push_back(InputMeta{x.shape(), x.dtype()});
  Tensor parts[2] = {x.detach().slice(0, 0, 2).clone(), x.detach().slice(0, 2, 5).clone()};
  for (uint32_t k = 0; k < 2; ++k) {
    node->tape.output_meta.push_back(InputMeta{parts[k].shape(), parts[k].dtype()});
    parts[k].impl()->grad_fn = node;
    parts[k].impl()->output_nr = k;
    parts[k].impl()->requires_grad = true;
  }
  Tensor y = add(sum(parts[0]), sum(parts[1]));
  std::string dot = to_dot(y, TensorNames{{"tail", parts[1]}});
  auto lines = lines_with(dot, "split_two");
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].find("[2], [3]") != std::string::npos);
  CHECK(lines[0].find("tail = split_two") != std::string::npos);
  CHECK(count(dot, " -> ") == 5);  // x -> split_two, split_two -> sum twice, sums -> add
  y.backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>(5, 1.0));
}

TEST_CASE("a long chain is walked without recursion") {
  Tensor x = leaf({1});
  Tensor y = x;
  for (int i = 0; i < 20000; ++i) y = mul(y, 1.0);
  auto nodes = tape_nodes(y);
  CHECK(nodes.size() == 20001);
  std::string m = to_mermaid(y);
  CHECK(count(m, " -->|") == 20000);
}

TEST_CASE("a lone leaf is one box; a tensor without a tape is an error naming the shape") {
  Tensor w = leaf({4, 2});
  CHECK(tape_nodes(w).empty());
  std::string dot = to_dot(w, TensorNames{{"w", w}});
  CHECK(count(dot, "w\\n[4, 2]") == 1);
  CHECK(count(dot, " -> ") == 0);
  Tensor c = ones({3, 5});
  CHECK_THROWS_WITH_PARTS(to_dot(c), AutogradError, "to_dot", "[3, 5]", "does not require grad");
  CHECK_THROWS_WITH_PARTS(to_mermaid(c), AutogradError, "to_mermaid", "[3, 5]");
  CHECK_THROWS_WITH_PARTS(tape_nodes(Tensor()), AutogradError, "tape_nodes", "undefined");
}

TEST_CASE("exporting reads the graph only: backward still works afterwards") {
  Small s;
  std::string before = to_dot(s.y);
  s.y.backward();
  CHECK(s.w.grad().defined());
  CHECK(to_dot(s.y) == before);  // released nodes are still drawn (no norms without tracing)
}

TEST_CASE("labels with quotes are escaped in both syntaxes") {
  Tensor w = leaf({2});
  Tensor y = sum(w);
  TensorNames names{{"say \"hi\"", w}};
  CHECK(count(to_dot(y, names), "say \\\"hi\\\"") == 1);
  CHECK(count(to_mermaid(y, names), "say #quot;hi#quot;") == 1);
}
