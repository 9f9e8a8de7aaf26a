// Module: registration and hierarchical names, modes, dtype conversion, parameter counts, freezing,
// state_dict / load_state_dict (strict and not), and the containers Sequential and ModuleList.
#include <algorithm>
#include <set>

#include "nn/nn.h"
#include "support.h"

using namespace ag;

namespace {

// A residual-free block: LayerNorm(ReLU(Linear(x))), with a float buffer and an int64 buffer.
struct Block : nn::Module {
  explicit Block(int64_t d) {
    fc = register_module("fc", std::make_shared<nn::Linear>(d, d));
    norm = register_module("norm", std::make_shared<nn::LayerNorm>(d));
    register_buffer("running", zeros({d}));
    register_buffer("count", zeros({1}, int64));
  }
  Tensor forward(const Tensor& x) override { return norm->forward(relu(fc->forward(x))); }
  std::string type_name() const override { return "Block"; }
  std::shared_ptr<nn::Linear> fc;
  std::shared_ptr<nn::LayerNorm> norm;
};

// scale [1], blocks.{0,1} (Block(4)), head = Linear(4, 2) without bias.
struct Net : nn::Module {
  Net() {
    scale = register_parameter("scale", ones({1}));
    blocks = register_module("blocks", std::make_shared<nn::ModuleList>());
    blocks->push_back(std::make_shared<Block>(4));
    blocks->push_back(std::make_shared<Block>(4));
    head = register_module("head", std::make_shared<nn::Linear>(4, 2, false));
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = x * scale;
    for (size_t i = 0; i < blocks->size(); ++i) h = (*blocks)[i]->forward(h);
    return head->forward(h);
  }
  std::string type_name() const override { return "Net"; }
  Tensor scale;
  std::shared_ptr<nn::ModuleList> blocks;
  std::shared_ptr<nn::Linear> head;
};

const int64_t kNetParams = 1 + 2 * (16 + 4 + 4 + 4) + 8;  // 65

std::vector<std::string> names_of(const std::vector<std::pair<std::string, Tensor>>& named) {
  std::vector<std::string> r;
  for (auto& [n, _] : named) r.push_back(n);
  return r;
}

Tensor input() { return test::leaf({3, 4}, -1.0, 1.0, 5).detach().to(float32); }

}  // namespace

TEST_CASE("named_parameters: hierarchical dotted names in registration order") {
  Net net;
  std::vector<std::string> expected = {"scale",
                                       "blocks.0.fc.weight",
                                       "blocks.0.fc.bias",
                                       "blocks.0.norm.weight",
                                       "blocks.0.norm.bias",
                                       "blocks.1.fc.weight",
                                       "blocks.1.fc.bias",
                                       "blocks.1.norm.weight",
                                       "blocks.1.norm.bias",
                                       "head.weight"};
  CHECK(names_of(net.named_parameters()) == expected);
  CHECK(net.parameters().size() == expected.size());
  // Not recursing: only the module's own parameters.
  CHECK(names_of(net.named_parameters(false)) == std::vector<std::string>{"scale"});
  // The handles are the module's tensors: same identity as the members.
  CHECK(net.named_parameters()[9].second.same(net.head->weight));
  for (auto& p : net.parameters()) CHECK(p.requires_grad());
  CHECK(names_of(net.named_buffers()) ==
        std::vector<std::string>{"blocks.0.running", "blocks.0.count", "blocks.1.running",
                                 "blocks.1.count"});
  for (auto& [_, b] : net.named_buffers()) CHECK_FALSE(b.requires_grad());
}

TEST_CASE("children and named_modules walk the tree, parents before children") {
  Net net;
  auto kids = net.children();
  REQUIRE(kids.size() == 2);
  CHECK(kids[0]->type_name() == "ModuleList");
  CHECK(kids[1]->type_name() == "Linear");
  auto mods = net.named_modules();
  std::vector<std::string> names;
  for (auto& [n, _] : mods) names.push_back(n);
  std::set<std::string> got(names.begin(), names.end()), expected = {"",
                                                                     "blocks",
                                                                     "head",
                                                                     "blocks.0",
                                                                     "blocks.1",
                                                                     "blocks.0.fc",
                                                                     "blocks.0.norm",
                                                                     "blocks.1.fc",
                                                                     "blocks.1.norm"};
  CHECK(got == expected);
  CHECK(names.size() == expected.size());
  CHECK(mods[0].second == &net);
  auto pos = [&](const std::string& n) { return std::find(names.begin(), names.end(), n); };
  CHECK(pos("blocks") < pos("blocks.0"));
  CHECK(pos("blocks.0") < pos("blocks.0.fc"));
}

TEST_CASE("train() and eval() switch the whole tree") {
  Net net;
  CHECK(net.is_training());
  net.eval();
  for (auto& [_, m] : net.named_modules()) CHECK_FALSE(m->is_training());
  net.train();
  for (auto& [_, m] : net.named_modules()) CHECK(m->is_training());
  net.blocks->eval();
  CHECK(net.is_training());
  CHECK_FALSE((*net.blocks)[1]->is_training());
}

TEST_CASE("num_parameters counts elements; freeze and unfreeze by glob pattern") {
  Net net;
  CHECK(net.num_parameters() == kNetParams);
  CHECK(net.num_parameters(true) == kNetParams);
  CHECK(net.freeze("blocks.0.*") == 4);
  CHECK(net.freeze("blocks.0.*") == 0);  // already frozen
  CHECK(net.num_parameters() == kNetParams);
  CHECK(net.num_parameters(true) == kNetParams - 28);
  CHECK_FALSE(net.blocks->named_parameters()[0].second.requires_grad());

  // A frozen parameter gets no gradient; the others do.
  net(input()).sum().backward();
  CHECK_FALSE((*net.blocks)[0]->parameters()[0].grad().defined());
  CHECK((*net.blocks)[1]->parameters()[0].grad().defined());
  CHECK(net.scale.grad().defined());

  CHECK(net.freeze("*.bias") == 2);  // blocks.1.fc.bias and blocks.1.norm.bias
  CHECK(net.unfreeze("*.norm.*") == 3);
  CHECK(net.unfreeze() == 3);
  CHECK(net.num_parameters(true) == kNetParams);
  CHECK(net.freeze() == 10);
  CHECK(net.num_parameters(true) == 0);
  CHECK(net.unfreeze("no.such.*") == 0);
}

TEST_CASE("name_matches: '*' any run, '?' one character, everything else literal") {
  CHECK(nn::name_matches("blocks.0.attn.qkv.weight", "blocks.*.attn.*"));
  CHECK(nn::name_matches("blocks.0.attn.qkv.weight", "*"));
  CHECK(nn::name_matches("blocks.0.fc.weight", "blocks.?.fc.weight"));
  CHECK(nn::name_matches("head.weight", "head.weight"));
  CHECK(nn::name_matches("a.b.c", "*.c"));
  CHECK(nn::name_matches("", "*"));
  CHECK_FALSE(nn::name_matches("blocks.10.fc.weight", "blocks.?.fc.weight"));
  CHECK_FALSE(nn::name_matches("head.weight", "head.bias"));
  CHECK_FALSE(nn::name_matches("head.weight", "head"));
  CHECK_FALSE(nn::name_matches("xhead.weight", "head*"));
}

TEST_CASE("zero_grad drops or zeroes the gradients of every parameter") {
  Net net;
  net(input()).sum().backward();
  for (auto& p : net.parameters()) CHECK(p.grad().defined());
  net.zero_grad(/*set_to_none=*/false);
  for (auto& p : net.parameters()) {
    auto g = p.grad().to_vector<float>();
    CHECK(std::all_of(g.begin(), g.end(), [](float v) { return v == 0; }));
  }
  net.zero_grad();
  for (auto& p : net.parameters()) CHECK_FALSE(p.grad().defined());
}

TEST_CASE("to(float64) converts parameters and float buffers in place; handles follow") {
  Net net;
  Tensor x = input();
  Tensor before = net(x).detach();
  Tensor held = net.head->weight;  // a handle taken before the conversion
  net.to(float64);
  for (auto& p : net.parameters()) {
    CHECK(p.dtype() == float64);
    CHECK(p.requires_grad());
    CHECK(p.is_leaf());
  }
  CHECK(held.dtype() == float64);
  CHECK(net.head->weight.dtype() == float64);
  for (auto& [n, b] : net.named_buffers())
    CHECK(b.dtype() == (n.ends_with("count") ? int64 : float64));
  Tensor after = net(x.to(float64));
  CHECK(after.dtype() == float64);
  CHECK(test::allclose(after, before.to(float64), 1e-5, 1e-4));
  net.to(float32);
  CHECK(held.dtype() == float32);
}

TEST_CASE("state_dict holds parameters then buffers by dotted name") {
  Net net;
  nn::StateDict s = net.state_dict();
  std::vector<std::string> names;
  for (auto& [n, _] : s) names.push_back(n);
  CHECK(names.size() == 10 + 4);
  CHECK(names.front() == "scale");
  CHECK(names[9] == "head.weight");
  CHECK(names[10] == "blocks.0.running");
  CHECK(names.back() == "blocks.1.count");
}

TEST_CASE("load_state_dict copies values: a second model then computes the same outputs") {
  Net a, b;
  Tensor x = input();
  CHECK_FALSE(test::allclose(a(x), b(x)));
  nn::StateDict s = a.state_dict();
  nn::LoadResult r = b.load_state_dict(s);
  CHECK(r.ok());
  CHECK(test::allclose(a(x), b(x), 0, 0));
  // Copies, not aliases: changing the source afterwards does not reach b.
  {
    NoGradGuard ng;
    a.head->weight.fill_(0.0);
  }
  CHECK_FALSE(test::allclose(a(x), b(x)));
  // Values of another dtype are converted to the model's.
  Net c;
  nn::StateDict s64;
  for (auto& [n, t] : b.state_dict()) s64.emplace_back(n, t.to(float64));
  c.load_state_dict(s64);
  CHECK(c.head->weight.dtype() == float32);
  CHECK(test::allclose(c(x), b(x), 0, 0));
}

TEST_CASE("strict load_state_dict lists missing, unexpected and mis-shaped entries; no change") {
  Net a, b;
  Tensor x = input();
  Tensor before = b(x).detach();
  nn::StateDict s = a.state_dict();
  s.erase(std::remove_if(s.begin(), s.end(), [](auto& e) { return e.first == "head.weight"; }),
          s.end());
  s.emplace_back("head.bias", zeros({2}));
  for (auto& [n, t] : s)
    if (n == "blocks.1.fc.bias") t = zeros({5});
  CHECK_THROWS_WITH_PARTS(b.load_state_dict(s), ValueError, "load_state_dict", "missing (1)",
                          "head.weight", "unexpected (1)", "head.bias", "mismatched shapes (1)",
                          "blocks.1.fc.bias", "[5]", "[4]");
  CHECK(test::allclose(b(x), before, 0, 0));  // nothing was loaded

  // Only a missing entry: still an error when strict.
  nn::StateDict full_state = a.state_dict();
  nn::StateDict partial(full_state.begin() + 1, full_state.end());
  CHECK_THROWS_WITH_PARTS(b.load_state_dict(partial), ValueError, "missing (1)", "scale");
  CHECK(test::allclose(b(x), before, 0, 0));
}

TEST_CASE("non-strict load_state_dict loads what fits and reports the rest") {
  Net a, b;
  Tensor x = input();
  nn::StateDict s = a.state_dict();
  s.erase(s.begin());  // drop "scale"
  s.emplace_back("extra.weight", zeros({3}));
  nn::LoadResult r = b.load_state_dict(s, /*strict=*/false);
  CHECK(r.missing == std::vector<std::string>{"scale"});
  CHECK(r.unexpected == std::vector<std::string>{"extra.weight"});
  CHECK(r.mismatched.empty());
  CHECK_FALSE(r.ok());
  CHECK(test::allclose(b.head->weight, a.head->weight, 0, 0));
  CHECK(test::allclose(a(x), b(x), 0, 0));  // scale is 1 in both
  // A shape mismatch is never tolerated: it would leave a broken model.
  for (auto& [n, t] : s)
    if (n == "head.weight") t = zeros({2, 5});
  CHECK_THROWS_WITH_PARTS(b.load_state_dict(s, false), ValueError, "mismatched shapes",
                          "head.weight", "[2, 5]", "[2, 4]");
}

TEST_CASE("a parameter shared by two modules (tied weights) is listed and counted once") {
  struct Tied : nn::Module {
    Tied() {
      enc = register_module("enc", std::make_shared<nn::Linear>(3, 3, false));
      dec = register_module("dec", std::make_shared<nn::Linear>(3, 3, false));
      dec->weight.set_data(enc->weight.detach());  // same values, different tensors
    }
    std::shared_ptr<nn::Linear> enc, dec;
  };
  struct Shared : nn::Module {
    Shared() {
      a = register_module("a", std::make_shared<nn::Linear>(3, 3, false));
      w = register_parameter("w", a->weight);  // the very same tensor under a second name
    }
    std::shared_ptr<nn::Linear> a;
    Tensor w;
  };
  Shared s;
  CHECK(s.parameters().size() == 1);
  CHECK(s.num_parameters() == 9);
  CHECK(s.named_parameters()[0].first == "w");
  Tied t;
  CHECK(t.parameters().size() == 2);
}

TEST_CASE("registration errors name the module and the name") {
  struct Bad : nn::Module {
    std::string type_name() const override { return "Bad"; }
    void add(const std::string& n) { register_parameter(n, zeros({1})); }
  };
  Bad m;
  m.add("w");
  CHECK_THROWS_WITH_PARTS(m.add("w"), ValueError, "Bad", "'w'", "already registered");
  CHECK_THROWS_WITH_PARTS(m.add("a.b"), ValueError, "Bad", "'a.b'", "invalid name");
  CHECK_THROWS_WITH_PARTS(m.add(""), ValueError, "Bad", "invalid name");
  CHECK_THROWS_WITH_PARTS(m.forward(zeros({1})), ValueError, "Bad", "no one-tensor forward");
}

TEST_CASE("register_parameter makes a leaf that requires grad") {
  struct M : nn::Module {
    M() {
      Tensor src = ones({2}).requires_grad_();
      w = register_parameter("w", src * 2.0);  // a non-leaf is detached
      frozen = register_parameter("frozen", ones({2}), /*requires_grad=*/false);
    }
    Tensor w, frozen;
  };
  M m;
  CHECK(m.w.is_leaf());
  CHECK(m.w.requires_grad());
  CHECK(m.w.to_vector<float>() == std::vector<float>{2, 2});
  CHECK_FALSE(m.frozen.requires_grad());
  CHECK(m.num_parameters(true) == 2);
}

TEST_CASE("Sequential: layers named 0, 1, ...; applied in order") {
  auto lin = std::make_shared<nn::Linear>(2, 3);
  nn::Sequential seq{lin, std::make_shared<nn::Tanh>()};
  seq.push_back(std::make_shared<nn::Linear>(3, 1));
  CHECK(seq.size() == 3);
  CHECK(seq[0] == lin);
  CHECK(seq[1]->type_name() == "Tanh");
  CHECK(names_of(seq.named_parameters()) ==
        std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"});
  Tensor x = Tensor({{0.5, -1.0}});
  Tensor by_hand = seq[2]->forward(tanh(lin->forward(x)));
  CHECK(test::allclose(seq(x), by_hand, 0, 0));
  CHECK_THROWS_WITH_PARTS(seq.push_back(nullptr), ValueError, "Sequential", "null");
  CHECK_THROWS_AS(seq[3], std::out_of_range);
}

TEST_CASE("ModuleList holds submodules without a forward") {
  nn::ModuleList list;
  list.push_back(std::make_shared<nn::Linear>(2, 2)).push_back(std::make_shared<nn::ReLU>());
  CHECK(list.size() == 2);
  CHECK(names_of(list.named_parameters()) == std::vector<std::string>{"0.weight", "0.bias"});
  CHECK_THROWS_WITH_PARTS(list.forward(zeros({2})), ValueError, "ModuleList");
}

TEST_CASE("summary lists every module with parameter counts") {
  Net net;
  net.freeze("head.*");
  std::string s = net.summary();
  INFO(s);
  CHECK(s.find("Net (65)") != std::string::npos);
  CHECK(s.find("blocks: ModuleList (56)") != std::string::npos);
  CHECK(s.find("fc: Linear (20)") != std::string::npos);
  CHECK(s.find("head: Linear (8)") != std::string::npos);
  CHECK(s.find("parameters: 65 total, 57 trainable") != std::string::npos);
}
