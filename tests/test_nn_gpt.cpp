// The byte-level GPT of nn/models/gpt.h: gradients of the whole model, its loss at initialisation
// and after overfitting, the causal mask, LoRA, checkpoints and sampling.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <string>

#include "gpt_fixture.h"
#include "nn/nn.h"
#include "support.h"

using namespace ag;

namespace {

// 1 layer, d_model 8, 2 heads, context 4, byte vocabulary: the configuration of the gradcheck.
nn::GPTConfig tiny_config(uint64_t seed = 3) { return test::gpt_config({.seed = seed}); }

// Random int64 tokens [B, T] in [0, vocab).
Tensor random_tokens(int64_t B, int64_t T, uint64_t seed, int64_t vocab = 256) {
  Generator g(seed);
  return randint(0, vocab, {B, T}, &g);
}

// Every member handle through which the model's forward reads a parameter, in a fixed order. The
// gradcheck assigns its own leaves to these handles, so finite differences perturb exactly the
// tensors the forward uses (the tied output projection reads wte's handle too).
std::vector<Tensor*> parameter_handles(nn::GPT& m) {
  std::vector<Tensor*> h = {&m.wte->weight, &m.wpe->weight};
  for (auto& b : m.blocks) {
    for (auto* l :
         {b->attn->qkv.get(), b->attn->proj.get(), b->mlp->fc.get(), b->mlp->proj.get()}) {
      h.push_back(&l->weight);
      h.push_back(&l->bias);
    }
    for (auto* ln : {b->ln1.get(), b->ln2.get()}) {
      h.push_back(&ln->weight);
      h.push_back(&ln->bias);
    }
  }
  h.push_back(&m.ln_f->weight);
  h.push_back(&m.ln_f->bias);
  return h;
}

std::filesystem::path temp_file(const std::string& name) {
  return std::filesystem::temp_directory_path() /
         ("tapegrad_test_nn_gpt_" + std::to_string(::getpid()) + "_" + name);
}

struct TempFile {
  explicit TempFile(const std::string& name) : path(temp_file(name)) {}
  ~TempFile() { std::filesystem::remove(path); }
  std::filesystem::path path;
};

Tensor logits_of(nn::GPT& m, const Tensor& tokens) {
  NoGradGuard ng;
  return m.forward(tokens);
}

}  // namespace

TEST_CASE("gradcheck of the whole tiny GPT in float64, with respect to every parameter") {
  // Full Jacobian of the loss (a scalar) against all 2968 parameters: one backward, then two
  // forward passes per parameter element, well under a second at this size. That covers every op of
  // the model (embeddings, LayerNorm, fused qkv, masked softmax, GELU, the tied output projection
  // and the cross-entropy) together. The second derivatives are checked in fast mode (random
  // projections) on two weights, since the full gradgradcheck would need a backward per parameter.
  nn::GPT model(tiny_config());
  model.to(float64);
  std::vector<Tensor*> handles = parameter_handles(model);
  int64_t covered = 0;
  TensorList inputs;
  for (Tensor* h : handles) {
    covered += h->numel();
    inputs.push_back(h->detach().clone().requires_grad_());
  }
  REQUIRE(covered == model.num_parameters());  // nothing left out
  CHECK(covered == 2968);
  std::vector<Tensor> saved;
  for (Tensor* h : handles) saved.push_back(*h);

  Tensor tokens = random_tokens(2, 4, 11), targets = random_tokens(2, 4, 12);
  auto loss_fn = [&](const TensorList& xs) {
    for (size_t k = 0; k < handles.size(); ++k) *handles[k] = xs[k];
    return model.loss(tokens, targets);
  };
  auto r = gradcheck(std::function<Tensor(const TensorList&)>(loss_fn), inputs);
  INFO(r.to_string());
  CHECK(r.ok);
  CHECK(r.checked == covered);

  // Second order: d/d(qkv weight, fc weight) of the gradient, in fast mode.
  size_t qkv = 2, fc = 6;
  REQUIRE(handles[qkv] == &model.blocks[0]->attn->qkv->weight);
  REQUIRE(handles[fc] == &model.blocks[0]->mlp->fc->weight);
  TensorList two = {inputs[qkv], inputs[fc]};
  auto two_fn = [&](const TensorList& xs) {
    for (size_t k = 0; k < handles.size(); ++k) *handles[k] = inputs[k].detach();
    *handles[qkv] = xs[0];
    *handles[fc] = xs[1];
    return model.loss(tokens, targets);
  };
  GradcheckOptions fast;
  fast.fast_mode = true;
  fast.projections = 3;
  auto r2 = gradgradcheck(std::function<Tensor(const TensorList&)>(two_fn), two, fast);
  INFO(r2.to_string());
  CHECK(r2.ok);
  for (size_t k = 0; k < handles.size(); ++k) *handles[k] = saved[k];
}

TEST_CASE("the untrained gpt-mini predicts bytes almost uniformly: loss close to ln 256") {
  nn::GPT model;  // gpt-mini: 4 layers, 4 heads, d_model 128, context 64
  CHECK(model.config().d_model == 128);
  CHECK(model.config().n_layer == 4);
  CHECK(model.config().context == 64);
  NoGradGuard ng;
  double loss = model.loss(random_tokens(4, 64, 1), random_tokens(4, 64, 2)).item();
  CHECK(std::abs(loss - std::log(256.0)) < 0.05);
}

TEST_CASE("a small GPT overfits one batch to near zero loss") {
  nn::GPTConfig c = tiny_config(5);
  c.n_layer = 2;
  c.d_model = 32;
  c.n_head = 4;
  c.context = 16;
  nn::GPT model(c);
  Tensor x = random_tokens(4, 16, 21), y = random_tokens(4, 16, 22);
  nn::AdamW opt(model.parameters(), {.lr = 1e-2, .weight_decay = 0.0});
  double first = 0, last = 0;
  for (int step = 0; step < 150; ++step) {
    opt.zero_grad();
    Tensor loss = model.loss(x, y);
    loss.backward();
    opt.step();
    if (step == 0) first = loss.item();
    last = loss.item();
  }
  CHECK(first > 5.0);
  CHECK(last < 0.05);
}

TEST_CASE("attention: masked (future) positions get exactly zero probability and zero gradient") {
  nn::GPTConfig c = tiny_config();
  Generator init(4);
  nn::CausalSelfAttention attn({.d_model = c.d_model, .n_head = c.n_head}, &init);
  attn.to(float64);
  attn.keep_attention = true;
  const int64_t B = 2, T = 4, H = 2;
  Tensor x = test::leaf({B, T, 8}, -1.0, 1.0, 9);
  Tensor y = attn.forward(x);
  Tensor p = attn.last_attention;
  REQUIRE(p.shape() == Shape{B, H, T, T});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < T; ++i) {
        double row = 0;
        for (int64_t j = 0; j < T; ++j) {
          double v = p.at({b, h, i, j});
          if (j > i) {
            CHECK(v == 0.0);  // exactly
          } else {
            CHECK(v > 0.0);
          }
          row += v;
        }
        CHECK(row == doctest::Approx(1.0).epsilon(1e-12));
      }
  // The output at position t must not depend on inputs after t: their gradient is exactly zero,
  // and the inputs up to t do get gradient.
  for (int64_t t = 0; t < T; ++t) {
    x.zero_grad();
    Tensor out = attn.forward(x);
    select(out, 1, t).sum().backward();
    Tensor g = x.grad();
    for (int64_t s = 0; s < T; ++s) {
      double size = abs(select(g, 1, s)).sum().item();
      if (s > t) {
        CHECK(size == 0.0);  // exactly
      } else {
        CHECK(size > 0.0);
      }
    }
  }
}

TEST_CASE("GPT is causal: changing later tokens leaves earlier logits unchanged") {
  nn::GPT model(tiny_config());
  Tensor a = random_tokens(1, 4, 31);
  auto v = a.to_vector<int64_t>();
  v[3] = (v[3] + 17) % 256;
  v[2] = (v[2] + 5) % 256;
  Tensor b = Tensor::from_vector(v, {1, 4});
  Tensor la = logits_of(model, a), lb = logits_of(model, b);
  CHECK(test::allclose(slice(la, 1, 0, 2), slice(lb, 1, 0, 2), 1e-6, 0));
  CHECK_FALSE(test::allclose(slice(la, 1, 2, 4), slice(lb, 1, 2, 4), 1e-4, 0));
}

TEST_CASE(
    "gradient accumulation: two half-batch losses scaled by 1/2 give the full batch's gradient") {
  nn::GPT model(tiny_config());
  model.to(float64);
  Tensor x = random_tokens(4, 4, 41), y = random_tokens(4, 4, 42);
  model.loss(x, y).backward();
  std::vector<Tensor> full;
  for (auto& p : model.parameters()) full.push_back(p.grad().clone());
  model.zero_grad();
  for (int64_t k = 0; k < 2; ++k)
    mul(model.loss(slice(x, 0, 2 * k, 2 * k + 2), slice(y, 0, 2 * k, 2 * k + 2)), 0.5).backward();
  auto params = model.parameters();
  for (size_t i = 0; i < params.size(); ++i)
    CHECK(test::allclose(params[i].grad(), full[i], 1e-12, 1e-9));
}

TEST_CASE("LoRA: starts identical to the base, trains only the adapters, merges exactly") {
  nn::GPT model(tiny_config());
  model.to(float64);
  Tensor x = random_tokens(2, 4, 51), y = random_tokens(2, 4, 52);
  Tensor before = logits_of(model, x);
  int64_t base_params = model.num_parameters();

  nn::LoRAConfig lc;
  lc.rank = 2;
  lc.alpha = 4.0;
  CHECK(nn::apply_lora(model, lc) == 4);  // qkv, attn proj, fc, mlp proj
  // B = 0: the adapted model computes exactly what the base did.
  CHECK(logits_of(model, x).to_vector<double>() == before.to_vector<double>());

  // Only the adapters are trainable: r (in + out) per adapted layer.
  const int64_t C = 8, r = 2;
  int64_t adapters = r * (C + 3 * C) + r * (C + C) + r * (C + 4 * C) + r * (4 * C + C);
  CHECK(model.num_parameters(true) == adapters);
  CHECK(model.num_parameters() == base_params + adapters);
  for (auto& [name, p] : model.named_parameters()) {
    bool is_adapter = nn::name_matches(name, "*.lora.A") || nn::name_matches(name, "*.lora.B");
    INFO(name);
    CHECK(p.requires_grad() == is_adapter);
  }
  CHECK(nn::lora_state_dict(model).size() == 8);

  // Train the adapters a little; base weights get no gradient and do not move.
  Tensor qkv_before = model.blocks[0]->attn->qkv->weight.clone();
  std::vector<Tensor> trainable;
  for (auto& p : model.parameters())
    if (p.requires_grad()) trainable.push_back(p);
  nn::AdamW opt(trainable, {.lr = 1e-2});
  for (int step = 0; step < 5; ++step) {
    opt.zero_grad();
    model.loss(x, y).backward();
    opt.step();
  }
  CHECK_FALSE(model.blocks[0]->attn->qkv->weight.grad().defined());
  CHECK(model.blocks[0]->attn->qkv->weight.to_vector<double>() == qkv_before.to_vector<double>());
  Tensor adapted = logits_of(model, x);
  CHECK_FALSE(test::allclose(adapted, before, 1e-6, 0));

  // Merging folds B A into W: the same outputs, no adapters left, everything trainable again.
  nn::merge_lora(model);
  CHECK(test::allclose(logits_of(model, x), adapted, 1e-10, 1e-10));
  CHECK(model.num_parameters() == base_params);
  CHECK(model.num_parameters(true) == base_params);
  CHECK(nn::lora_state_dict(model).empty());
  CHECK_FALSE(test::allclose(model.blocks[0]->attn->qkv->weight, qkv_before, 1e-9, 0));
}

TEST_CASE("LoRA rank 8 on gpt-mini trains under 10% of the parameters") {
  nn::GPT model;
  int64_t base = model.num_parameters();
  nn::apply_lora(model, nn::LoRAConfig{});  // rank 8, attention and MLP projections
  int64_t trainable = model.num_parameters(true), total = model.num_parameters();
  // per layer: qkv 8 (128 + 384), proj 8 (128 + 128), fc 8 (128 + 512), proj 8 (512 + 128)
  CHECK(trainable == 4 * 8 * (512 + 256 + 640 + 640));
  CHECK(total == base + trainable);
  MESSAGE("LoRA rank 8: ", trainable, " of ", total, " parameters trainable");
  CHECK(static_cast<double>(trainable) < 0.10 * static_cast<double>(total));
}

TEST_CASE("LoRA errors: no matching layer, bad rank") {
  nn::GPT model(tiny_config());
  nn::LoRAConfig none;
  none.targets = {"*.nothing"};
  CHECK_THROWS_WITH_PARTS(nn::apply_lora(model, none), ValueError, "apply_lora", "no Linear");
  nn::GPT other(tiny_config());
  nn::LoRAConfig big;
  big.rank = 9;  // larger than d_model 8
  CHECK_THROWS_WITH_PARTS(nn::apply_lora(other, big), ValueError, "rank 9", "[1, 8]");
}

TEST_CASE("save and load round trip through safetensors, with the config in the metadata") {
  TempFile f("roundtrip.safetensors");
  nn::GPT model(tiny_config(1));
  std::map<std::string, std::string> meta = {{"gpt.d_model", "8"}, {"note", "round trip"}};
  nn::save_safetensors(f.path.string(), model.state_dict(), meta);

  nn::GPT other(tiny_config(2));  // other initial weights
  Tensor x = random_tokens(2, 4, 61);
  CHECK_FALSE(test::allclose(logits_of(other, x), logits_of(model, x), 1e-6, 0));
  std::map<std::string, std::string> read;
  other.load_state_dict(nn::load_safetensors(f.path.string(), &read));
  CHECK(logits_of(other, x).to_vector<float>() == logits_of(model, x).to_vector<float>());
  CHECK(read.at("gpt.d_model") == "8");
  CHECK(read.at("note") == "round trip");
}

TEST_CASE("save_gpt / load_gpt: the model is rebuilt from the metadata of its checkpoint") {
  TempFile f("gpt.safetensors");
  nn::GPTConfig c = tiny_config(1);
  c.n_layer = 2;
  c.gelu = "none";
  nn::GPT model(c);
  nn::save_gpt(f.path.string(), model, {{"note", "kept"}});
  nn::Metadata meta;
  auto back = nn::load_gpt(f.path.string(), &meta);
  CHECK(back->config().n_layer == 2);
  CHECK(back->config().d_model == 8);
  CHECK(back->config().gelu == "none");
  CHECK(meta.at("note") == "kept");
  Tensor x = random_tokens(2, 4, 62);
  CHECK(logits_of(*back, x).to_vector<float>() == logits_of(model, x).to_vector<float>());

  // The parameter count the metadata implies is what the model has.
  for (int64_t layers : {1, 3})
    for (int64_t dim : {8, 12}) {
      nn::GPTConfig k = tiny_config();
      k.n_layer = layers;
      k.d_model = dim;
      k.context = 5;
      k.vocab_size = 7;
      CHECK(nn::gpt_num_parameters(k) == nn::GPT(k).num_parameters());
    }
}

TEST_CASE("load_gpt refuses metadata that does not describe the file, before building a model") {
  TempFile f("bad.safetensors");
  std::string path = f.path.string();
  nn::GPT model(tiny_config());
  auto save_with = [&](const std::string& key, const std::string& value) {
    nn::Metadata m = nn::gpt_config_metadata(model.config());
    if (value.empty())
      m.erase(key);
    else
      m[key] = value;
    nn::save_safetensors(path, model.state_dict(), m);
  };
  // A model of 2^40 layers (or of more parameters than 63 bits count) is refused, not allocated.
  save_with("gpt.n_layer", "1099511627776");
  CHECK_THROWS_WITH_PARTS(nn::load_gpt(path), ValueError, path.c_str(), "describes a GPT of",
                          "holds");
  save_with("gpt.d_model", "4000000000");
  CHECK_THROWS_WITH_PARTS(nn::load_gpt(path), ValueError, "2^63");
  save_with("gpt.n_layer", "2");  // the right kind of file, the wrong count
  CHECK_THROWS_WITH_PARTS(nn::load_gpt(path), ValueError, "describes a GPT of");
  save_with("gpt.d_model", " 8");
  CHECK_THROWS_WITH_PARTS(nn::load_gpt(path), ValueError, "gpt.d_model", "not an integer");
  save_with("gpt.context", "0x4");
  CHECK_THROWS_WITH_PARTS(nn::load_gpt(path), ValueError, "gpt.context", "not an integer");
  save_with("gpt.n_head", "3");
  CHECK_THROWS_WITH_PARTS(nn::load_gpt(path), ValueError, path.c_str(), "n_head 3");
  save_with("gpt.vocab_size", "");
  CHECK_THROWS_WITH_PARTS(nn::load_gpt(path), ValueError, "not a gpt checkpoint", "gpt.vocab_size");
  // Same parameter count, other shapes (vocab and context swapped): load_state_dict names them.
  nn::GPTConfig c = tiny_config();
  c.vocab_size = 4;
  c.context = 256;
  nn::Metadata m = nn::gpt_config_metadata(c);
  nn::save_safetensors(path, model.state_dict(), m);
  CHECK_THROWS_WITH_PARTS(nn::load_gpt(path), ValueError, path.c_str(), "wte.weight");
}

TEST_CASE("the same seed samples the same text") {
  nn::GPT model(tiny_config());
  Tensor prompt = nn::encode_tensor(nn::ByteTokenizer(), "ab");
  Generator g1(7), g2(7), g3(8);
  Tensor a = model.generate(prompt, 20, 1.0, 0, &g1);
  Tensor b = model.generate(prompt, 20, 1.0, 0, &g2);
  Tensor c = model.generate(prompt, 20, 1.0, 0, &g3);
  CHECK(a.numel() == 22);
  CHECK(nn::decode_tensor(nn::ByteTokenizer(), slice(a, 0, 0, 2)) == "ab");
  CHECK(a.to_vector<int64_t>() == b.to_vector<int64_t>());
  CHECK(a.to_vector<int64_t>() != c.to_vector<int64_t>());  // (an untrained model: near uniform)
  // top-k 1 is greedy decoding: the seed no longer matters.
  Generator g4(1), g5(2);
  CHECK(model.generate(prompt, 10, 1.0, 1, &g4).to_vector<int64_t>() ==
        model.generate(prompt, 10, 1.0, 1, &g5).to_vector<int64_t>());
  CHECK(model.is_training());  // generate restores the mode
}

TEST_CASE("loading a checkpoint of another configuration names the mismatched tensors") {
  TempFile f("other_config.safetensors");
  nn::GPT small(tiny_config());
  nn::save_safetensors(f.path.string(), small.state_dict());
  nn::GPTConfig wide = tiny_config();
  wide.d_model = 16;
  nn::GPT model(wide);
  CHECK_THROWS_WITH_PARTS(model.load_state_dict(nn::load_safetensors(f.path.string())), ValueError,
                          "wte.weight", "[256, 8]", "[256, 16]", "blocks.0.attn.qkv.weight");
  nn::GPTConfig deep = tiny_config();
  deep.n_layer = 2;
  nn::GPT two(deep);
  CHECK_THROWS_WITH_PARTS(two.load_state_dict(nn::load_safetensors(f.path.string())), ValueError,
                          "missing", "blocks.1.attn.qkv.weight");
}

TEST_CASE("GPT errors name the problem and the shapes") {
  nn::GPTConfig bad = tiny_config();
  bad.n_head = 3;
  CHECK_THROWS_WITH_PARTS(nn::GPT{bad}, ValueError, "d_model 8", "n_head 3");
  nn::GPT model(tiny_config());
  CHECK_THROWS_WITH_PARTS(model.forward(random_tokens(1, 5, 1)), ShapeError, "GPT", "5",
                          "context 4");
  CHECK_THROWS_WITH_PARTS(model.forward(zeros({2, 3})), ShapeError, "GPT", "float32", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(model.loss(random_tokens(2, 3, 1), random_tokens(2, 4, 1)), ShapeError,
                          "GPT::loss", "[2, 3]", "[2, 4]");
  CHECK_THROWS_WITH_PARTS(model.generate(nn::encode_tensor(nn::ByteTokenizer(), "a"), 3, -1.0),
                          ValueError, "temperature");
}

namespace {

// 2 layers, d_model 16, 2 heads, context 8, dropout 0.1: for the activation checkpointing tests.
nn::GPTConfig ckpt_config(int64_t layers = 2) {
  return test::gpt_config(
      {.layers = layers, .d_model = 16, .context = 8, .seed = 9, .dropout = 0.1});
}

// The loss of one training-mode forward and the gradients of every trainable parameter, by name.
struct StepResult {
  float loss;
  std::map<std::string, std::vector<float>> grads;
  int64_t nodes_held;  // tape nodes alive between the forward and the backward
};
StepResult train_step(nn::GPT& m, const Tensor& x, const Tensor& y) {
  m.zero_grad();
  int64_t before = memory_stats().live_nodes;
  Tensor loss = m.loss(x, y);
  StepResult r{loss.item<float>(), {}, memory_stats().live_nodes - before};
  loss.backward();
  for (auto& [name, p] : m.named_parameters())
    if (p.requires_grad()) {
      INFO(name);
      REQUIRE(p.grad().defined());
      r.grads[name] = p.grad().to_vector<float>();
    }
  return r;
}

}  // namespace

TEST_CASE("activation checkpointing: bit-identical gradients with dropout in training mode") {
  nn::GPT plain(ckpt_config()), ckpt(ckpt_config());
  ckpt.set_checkpoint_activations(true);
  plain.train();
  ckpt.train();
  Tensor x = random_tokens(3, 8, 61), y = random_tokens(3, 8, 62);
  // Two steps: the second one's masks come after the first one's recomputation.
  for (int step = 0; step < 2; ++step) {
    StepResult a = train_step(plain, x, y), b = train_step(ckpt, x, y);
    CHECK(a.loss == b.loss);
    CHECK(a.grads.size() == b.grads.size());
    for (auto& [name, g] : a.grads) {
      INFO(name);
      CHECK(g == b.grads[name]);
    }
    // The blocks' graphs were not kept.
    CHECK(b.nodes_held < a.nodes_held / 2);
  }
  // Dropout is active: another mask gives another loss.
  nn::GPT third(ckpt_config());
  third.train();
  third.blocks[0]->generators()[0]->seed(12345);
  CHECK(train_step(third, x, y).loss != train_step(plain, x, y).loss);
}

TEST_CASE("activation checkpointing with LoRA adapters on frozen weights: the same gradients") {
  nn::GPT plain(ckpt_config()), ckpt(ckpt_config());
  ckpt.set_checkpoint_activations(true);
  nn::LoRAConfig lc;
  lc.rank = 2;
  for (nn::GPT* m : {&plain, &ckpt}) {
    nn::apply_lora(*m, lc);
    m->train();
    // B starts at zero (so A would get no gradient): give it values.
    Generator g(5);
    NoGradGuard ng;
    for (auto& [name, p] : m->named_parameters())
      if (nn::name_matches(name, "*.lora.B")) p.copy_(normal(p.shape(), 0, 0.1, float32, &g));
  }
  Tensor x = random_tokens(2, 8, 63), y = random_tokens(2, 8, 64);
  StepResult a = train_step(plain, x, y), b = train_step(ckpt, x, y);
  CHECK(a.grads.size() == 4 * 2 * 2);  // A and B of 4 layers in 2 blocks
  CHECK(a.loss == b.loss);
  for (auto& [name, g] : a.grads) {
    INFO(name);
    CHECK(g == b.grads[name]);
  }
  CHECK_FALSE(ckpt.blocks[1]->mlp->fc->weight.grad().defined());
}

TEST_CASE("activation checkpointing of a 4-block GPT keeps far fewer bytes for backward") {
  nn::GPTConfig c = ckpt_config(4);
  c.d_model = 32;
  c.context = 16;
  auto held = [&](bool on) {
    nn::GPT m(c);
    m.set_checkpoint_activations(on);
    m.train();
    Tensor x = random_tokens(4, 16, 65), y = random_tokens(4, 16, 66);
    int64_t before = memory_stats().live_storage_bytes;
    Tensor loss = m.loss(x, y);
    int64_t bytes = memory_stats().live_storage_bytes - before;
    loss.backward();
    return bytes;
  };
  int64_t plain = held(false), ckpt = held(true);
  MESSAGE("bytes saved for backward by a 4-block GPT: " << plain << " without checkpointing, "
                                                        << ckpt << " with");
  // With checkpointing a block keeps only its input, [B, T, C], instead of its activations.
  CHECK(ckpt * 3 < plain);
}

TEST_CASE("activation checkpointing: no effect on evaluation, generation or the file") {
  nn::GPT m(ckpt_config());
  m.eval();
  Tensor x = random_tokens(1, 8, 67);
  Tensor before = logits_of(m, x);
  m.set_checkpoint_activations(true);
  CHECK(logits_of(m, x).to_vector<float>() == before.to_vector<float>());
  Tensor recorded = m.forward(x);  // recording on, eval mode: checkpointed, same values
  CHECK(recorded.to_vector<float>() == before.to_vector<float>());
  CHECK(m.generate(random_tokens(1, 1, 68).reshape({1}), 4, 0.0).numel() == 5);
  TempFile f("ckpt_flag.safetensors");
  nn::save_gpt(f.path.string(), m);
  CHECK_FALSE(nn::load_gpt(f.path.string())->config().checkpoint_activations);
}
