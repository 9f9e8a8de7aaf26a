// LoRA beyond Linear layers (nn/lora.h): adapters on an Embedding and on a GPT's tied token
// embedding and head, their gradients, merging, loading saved adapters onto a fresh base model,
// and what frozen weights cost (no gradient buffer, no optimizer state).
#include <string>
#include <vector>

#include "gpt_fixture.h"
#include "nn/nn.h"
#include "support.h"

using namespace ag;

namespace {

nn::GPTConfig small_gpt(uint64_t seed = 5) {
  return test::gpt_config({.layers = 2, .context = 6, .seed = seed, .vocab = 40});
}

Tensor tokens(int64_t B, int64_t T, uint64_t seed, int64_t vocab) {
  Generator g(seed);
  return randint(0, vocab, {B, T}, &g);
}

Tensor logits_of(nn::GPT& m, const Tensor& x) {
  NoGradGuard ng;
  return m.forward(x);
}

// A few AdamW steps on the trainable parameters.
void train(nn::GPT& model, const Tensor& x, const Tensor& y, int steps) {
  std::vector<Tensor> trainable;
  for (auto& p : model.parameters())
    if (p.requires_grad()) trainable.push_back(p);
  nn::AdamW opt(trainable, {.lr = 2e-2, .weight_decay = 0.0});
  for (int i = 0; i < steps; ++i) {
    opt.zero_grad();
    model.loss(x, y).backward();
    opt.step();
  }
}

int64_t bytes_of(const std::vector<Tensor>& ts) {
  int64_t n = 0;
  for (const Tensor& t : ts) n += t.numel() * static_cast<int64_t>(itemsize(t.dtype()));
  return n;
}

}  // namespace

TEST_CASE("an Embedding's adapter: lookup and tied projection use E + (alpha / r) B A") {
  Generator g(3);
  nn::Embedding emb(7, 5, &g);
  emb.to(float64);
  emb.add_adapter(2, 3.0, &g);
  REQUIRE(emb.has_adapter());
  CHECK(emb.adapter->A.shape() == Shape{2, 5});
  CHECK(emb.adapter->B.shape() == Shape{7, 2});
  {
    NoGradGuard ng;
    emb.adapter->B.copy_(uniform({7, 2}, -1, 1, float64, &g));  // a nonzero update
  }
  Tensor idx = Tensor::from_vector(std::vector<int64_t>{4, 0, 6, 4}, {2, 2});
  Tensor table = add(emb.weight, emb.adapter->delta_weight());
  Tensor x = uniform({3, 5}, -1, 1, float64, &g);
  NoGradGuard ng;
  CHECK(test::allclose(emb.forward(idx), embedding(table, idx), 1e-12, 1e-12));
  CHECK(test::allclose(emb.project(x), matmul(x, transpose(table, 0, 1)), 1e-12, 1e-12));
  CHECK(test::allclose(emb.adapter->delta_weight(),
                       mul(matmul(emb.adapter->B, emb.adapter->A), 3.0 / 2.0), 1e-12, 1e-12));
}

TEST_CASE("an Embedding's adapter: float64 gradcheck of lookup and projection in A and B") {
  Tensor E = test::leaf({6, 4}, -1, 1, 1).detach();
  Tensor idx = Tensor::from_vector(std::vector<int64_t>{5, 1, 1, 3}, {4});
  Tensor x = test::leaf({2, 4}, -1, 1, 2).detach();
  test::check_gradients(
      [&](const TensorList& in) {
        const Tensor &A = in[0], &B = in[1];
        nn::LoRAAdapter probe(4, 6, 2, 2.0);
        probe.A = A;
        probe.B = B;
        Tensor rows = add(embedding(E, idx), probe.rows(idx));
        Tensor proj = add(linear(x, E), probe.forward(x));
        return add(sum(mul(rows, rows)), sum(sin(proj)));
      },
      {test::leaf({2, 4}, -1, 1, 3), test::leaf({6, 2}, -1, 1, 4)});
}

TEST_CASE("LoRA on a GPT's token embedding adapts its tied head too, and merges exactly") {
  nn::GPT model(small_gpt());
  model.to(float64);
  Tensor x = tokens(3, 6, 11, 40), y = tokens(3, 6, 12, 40);
  Tensor before = logits_of(model, x);
  nn::LoRAConfig lc;
  lc.rank = 2;
  lc.alpha = 4.0;
  lc.targets = {"wte"};
  CHECK(nn::apply_lora(model, lc) == 1);
  CHECK(model.num_parameters(true) == 2 * (8 + 40));  // A [2, 8], B [40, 2]
  CHECK(logits_of(model, x).to_vector<double>() == before.to_vector<double>());

  // Gradients reach B through both uses of the table; the base table stays frozen.
  model.loss(x, y).backward();
  Tensor gB = model.wte->adapter->B.grad();
  REQUIRE(gB.defined());
  CHECK(sum(abs(gB)).item() > 0);
  CHECK_FALSE(model.wte->weight.grad().defined());

  Tensor wte_before = model.wte->weight.clone();
  train(model, x, y, 8);
  CHECK(model.wte->weight.to_vector<double>() == wte_before.to_vector<double>());
  Tensor adapted = logits_of(model, x);
  CHECK_FALSE(test::allclose(adapted, before, 1e-6, 0));
  nn::merge_lora(model);
  CHECK_FALSE(model.wte->has_adapter());
  CHECK(test::allclose(logits_of(model, x), adapted, 1e-10, 1e-10));
  CHECK(model.num_parameters(true) == model.num_parameters());
}

TEST_CASE("load_lora puts saved adapters onto a fresh base model: the same logits") {
  nn::GPT tuned(small_gpt(7));
  Tensor x = tokens(2, 6, 21, 40), y = tokens(2, 6, 22, 40);
  nn::LoRAConfig lc;
  lc.rank = 3;
  lc.alpha = 6.0;
  lc.targets = {"wte", "*.attn.qkv", "*.mlp.proj"};
  CHECK(nn::apply_lora(tuned, lc) == 5);
  train(tuned, x, y, 4);
  Tensor want = logits_of(tuned, x);
  nn::StateDict adapters = nn::lora_state_dict(tuned);
  CHECK(adapters.size() == 10);

  nn::GPT base(small_gpt(7));  // the same base weights, no adapters
  CHECK_FALSE(logits_of(base, x).to_vector<double>() == want.to_vector<double>());
  CHECK(nn::load_lora(base, adapters, 6.0) == 5);
  CHECK(logits_of(base, x).to_vector<double>() == want.to_vector<double>());
  CHECK(base.num_parameters(true) == tuned.num_parameters(true));
  CHECK_FALSE(base.wte->weight.requires_grad());

  // Another alpha scales the update: other logits.
  nn::GPT other(small_gpt(7));
  nn::load_lora(other, adapters, 3.0);
  CHECK_FALSE(logits_of(other, x).to_vector<double>() == want.to_vector<double>());
}

TEST_CASE("load_lora errors name the tensor and change nothing") {
  nn::GPT tuned(small_gpt());
  nn::LoRAConfig lc;
  lc.rank = 2;
  CHECK(nn::apply_lora(tuned, lc) == 8);
  nn::StateDict good = nn::lora_state_dict(tuned);

  nn::GPT base(small_gpt());
  auto unchanged = [&] {
    CHECK(base.num_parameters(true) == base.num_parameters());
    CHECK(nn::lora_state_dict(base).empty());
  };
  nn::StateDict missing_b(good.begin(), good.end() - 1);  // the last entry is a B
  CHECK_THROWS_WITH_PARTS(nn::load_lora(base, missing_b, 4.0), ValueError, "load_lora",
                          "lora.B' is missing");
  unchanged();
  nn::StateDict stranger = good;
  stranger.emplace_back("blocks.0.ln1.lora.A", zeros({2, 8}));
  stranger.emplace_back("blocks.0.ln1.lora.B", zeros({8, 2}));
  CHECK_THROWS_WITH_PARTS(nn::load_lora(base, stranger, 4.0), ValueError, "blocks.0.ln1.lora.A",
                          "no Linear or Embedding");
  unchanged();
  nn::StateDict not_lora = good;
  not_lora.emplace_back("wte.weight", zeros({40, 8}));
  CHECK_THROWS_WITH_PARTS(nn::load_lora(base, not_lora, 4.0), ValueError, "'wte.weight'",
                          "not a LoRA tensor");
  unchanged();
  nn::StateDict wrong = good;
  wrong[0].second = zeros({2, 9});
  CHECK_THROWS_WITH_PARTS(nn::load_lora(base, wrong, 4.0), ValueError, "load_lora", "[2, 9]",
                          "do not fit");
  unchanged();
  CHECK(nn::load_lora(base, good, 4.0) == 8);
  CHECK_THROWS_WITH_PARTS(nn::load_lora(base, good, 4.0), ValueError, "already has an adapter");
}

TEST_CASE("frozen weights cost no gradient buffer and no optimizer state") {
  // The bytes of live buffers after a LoRA step, less those before it: exactly the adapters'
  // gradients and AdamW's two moments for them (plus one float64 step counter per adapter
  // tensor); nothing for the frozen base weights, which get no gradient.
  nn::GPT model(small_gpt());
  Tensor x = tokens(2, 6, 31, 40), y = tokens(2, 6, 32, 40);
  nn::LoRAConfig lc;
  lc.rank = 2;
  lc.targets = {"wte", "*.attn.qkv", "*.attn.proj", "*.mlp.fc", "*.mlp.proj"};
  nn::apply_lora(model, lc);
  std::vector<Tensor> trainable;
  for (auto& p : model.parameters())
    if (p.requires_grad()) trainable.push_back(p);
  REQUIRE(trainable.size() == 18);
  nn::AdamW opt(trainable, {.lr = 1e-3});
  const int64_t before = memory_stats().live_storage_bytes;
  model.loss(x, y).backward();
  opt.step();
  const int64_t after = memory_stats().live_storage_bytes;
  const int64_t adapters = bytes_of(trainable);
  CHECK(after - before == 3 * adapters + 8 * static_cast<int64_t>(trainable.size()));
  for (auto& [name, p] : model.named_parameters()) {
    INFO(name);
    CHECK(p.grad().defined() == p.requires_grad());
  }
  // Full fine-tuning of the same model pays for every weight, for comparison.
  nn::merge_lora(model);
  nn::AdamW full(model.parameters(), {.lr = 1e-3});
  const int64_t full_before = memory_stats().live_storage_bytes;
  model.loss(x, y).backward();
  full.step();
  const int64_t everything = bytes_of(model.parameters());
  CHECK(memory_stats().live_storage_bytes - full_before ==
        3 * everything + 8 * static_cast<int64_t>(model.parameters().size()));
}
