// Generation with the GPT of nn/models/gpt.h: the key/value cache (same logits and tokens as
// recomputing the prefix), the sampling distribution (greedy, temperature, top-k, top-p), the stop
// token, option errors, and the training mode restored even when generation throws.
#include <cmath>
#include <numeric>
#include <vector>

#include "gpt_fixture.h"
#include "nn/nn.h"
#include "support.h"

using namespace ag;

namespace {

// 2 layers, d_model 16, 2 heads, context 12, byte vocabulary; random weights.
nn::GPTConfig small_config(uint64_t seed = 7) {
  return test::gpt_config({.layers = 2, .d_model = 16, .context = 12, .seed = seed});
}

Tensor random_tokens(int64_t B, int64_t T, uint64_t seed, int64_t vocab = 256) {
  Generator g(seed);
  return randint(0, vocab, {B, T}, &g);
}

Tensor prompt_of(std::vector<int64_t> ids) { return Tensor::from_vector(ids); }

std::vector<int64_t> generated(nn::GPT& m, const Tensor& prompt, nn::GenerateOptions o) {
  return m.generate(prompt, o).to_vector<int64_t>();
}

// Logits [V] of the last position of a full forward of `ids`.
std::vector<double> full_last_logits(nn::GPT& m, const std::vector<int64_t>& ids) {
  NoGradGuard ng;
  Tensor in = Tensor::from_vector(ids, {1, static_cast<int64_t>(ids.size())});
  return select(select(m.forward(in), 0, 0), 0, -1).to(float64).to_vector<double>();
}

}  // namespace

TEST_CASE("a cached step gives the logits of the full forward's last positions") {
  nn::GPT model(small_config());
  model.eval();
  NoGradGuard ng;
  Tensor tokens = random_tokens(2, 9, 3);
  Tensor full = model.forward(tokens);  // [2, 9, V]
  nn::KVCache cache;
  Tensor first = model.forward(slice(tokens, 1, 0, 5), &cache);  // positions 0..4 at once
  CHECK(cache.length() == 5);
  REQUIRE(cache.layers.size() == 2);
  CHECK(cache.layers[0].keys.shape() == Shape{2, 2, 5, 8});  // [B, H, T_cached, D]
  CHECK(test::allclose(first, slice(full, 1, 0, 5), 1e-5, 0));
  CHECK(cache.layers[0].key_buffer.size(2) == 5);
  for (int64_t t = 5; t < 9; ++t) {  // then one position at a time
    Tensor buffer = cache.layers[1].value_buffer;
    Tensor step = model.forward(slice(tokens, 1, t, t + 1), &cache);
    CHECK(step.shape() == Shape{2, 1, 256});
    CHECK(test::allclose(step, slice(full, 1, t, t + 1), 1e-5, 0));
    CHECK(cache.length() == t + 1);
    // The buffers double when full (5 -> 10) and are written in place until then.
    CHECK(cache.layers[1].value_buffer.size(2) == 10);
    CHECK(cache.layers[1].value_buffer.shares_storage(buffer) == (t > 5));
    CHECK(cache.layers[1].values.shares_storage(cache.layers[1].value_buffer));
  }
  // The cache cannot grow past the context (12): 9 cached + 4 new.
  CHECK_THROWS_WITH_PARTS(model.forward(random_tokens(2, 4, 4), &cache), ShapeError, "13",
                          "context 12");
  CHECK_THROWS_WITH_PARTS(model.forward(random_tokens(3, 1, 4), &cache), ShapeError, "cached keys");
}

TEST_CASE("the key/value cache is for inference only") {
  nn::GPT model(small_config());
  nn::KVCache cache;
  model.eval();
  CHECK_THROWS_WITH_PARTS(model.forward(random_tokens(1, 3, 1), &cache), ValueError, "inference");
  model.train();
  NoGradGuard ng;
  CHECK_THROWS_WITH_PARTS(model.forward(random_tokens(1, 3, 1), &cache), ValueError, "eval mode");
}

TEST_CASE("cached and uncached generation give the same tokens, also past the context") {
  nn::GPT model(small_config());
  Tensor prompt = prompt_of({72, 105, 33});
  nn::GenerateOptions cached, uncached;
  cached.max_new_tokens = uncached.max_new_tokens = 25;  // 28 tokens: past the context of 12
  uncached.use_cache = false;
  SUBCASE("greedy") {
    cached.temperature = uncached.temperature = 0;
    auto a = generated(model, prompt, cached), b = generated(model, prompt, uncached);
    CHECK(a.size() == 28);
    CHECK(a == b);
    // Greedy: each token is the argmax of a full forward of (up to context) previous tokens.
    for (size_t n = 3; n < a.size(); ++n) {
      size_t start = n > 12 ? n - 12 : 0;
      auto l = full_last_logits(model, std::vector<int64_t>(a.begin() + start, a.begin() + n));
      CHECK(a[n] == std::max_element(l.begin(), l.end()) - l.begin());
    }
  }
  SUBCASE("sampling with a fixed seed, temperature, top-k and top-p") {
    for (auto* o : {&cached, &uncached}) {
      o->temperature = 0.9;
      o->top_k = 40;
      o->top_p = 0.95;
      o->seed = 11;
    }
    auto a = generated(model, prompt, cached), b = generated(model, prompt, uncached);
    CHECK(a.size() == 28);
    CHECK(a == b);
    cached.seed = 12;
    CHECK(generated(model, prompt, cached) != a);  // (the seed matters)
  }
}

TEST_CASE("generation with the cache runs one position per new token") {
  nn::GPT model(small_config());
  auto& attn = *model.blocks[0]->attn;
  attn.keep_attention = true;
  nn::GenerateOptions o;
  o.max_new_tokens = 5;
  o.temperature = 0;
  model.generate(prompt_of({1, 2, 3}), o);
  // The last forward was token 7 of 8 (the 8th is drawn, not run): 1 query, 7 keys.
  CHECK(attn.last_attention.shape() == Shape{1, 2, 1, 7});
  o.use_cache = false;
  model.generate(prompt_of({1, 2, 3}), o);
  CHECK(attn.last_attention.shape() == Shape{1, 2, 7, 7});
}

TEST_CASE("sampling_distribution: greedy, temperature, top-k and top-p as documented") {
  std::vector<double> p_true = {0.5, 0.2, 0.2, 0.1};
  std::vector<double> logits;
  for (double p : p_true) logits.push_back(std::log(p) + 3.0);  // a shift changes nothing
  nn::GenerateOptions o;
  auto close = [](const std::vector<double>& a, const std::vector<double>& b) {
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i) CHECK(a[i] == doctest::Approx(b[i]).epsilon(1e-12));
  };
  close(nn::sampling_distribution(logits, o), p_true);
  o.temperature = 0.5;  // p^2, renormalised
  close(nn::sampling_distribution(logits, o), {0.25 / 0.34, 0.04 / 0.34, 0.04 / 0.34, 0.01 / 0.34});
  o.temperature = 1;
  o.top_k = 2;  // the 2nd largest is tied with the 3rd: both kept
  close(nn::sampling_distribution(logits, o), {0.5 / 0.9, 0.2 / 0.9, 0.2 / 0.9, 0});
  o.top_k = 1;
  close(nn::sampling_distribution(logits, o), {1, 0, 0, 0});
  o.top_k = 0;
  o.top_p = 0.45;  // the first token alone reaches 0.45
  close(nn::sampling_distribution(logits, o), {1, 0, 0, 0});
  o.top_p = 0.65;  // 0.5 + 0.2 (of the tied pair, the lower id first)
  close(nn::sampling_distribution(logits, o), {0.5 / 0.7, 0.2 / 0.7, 0, 0});
  o.top_p = 0.75;  // 0.5 + 0.2 + 0.2
  close(nn::sampling_distribution(logits, o), {0.5 / 0.9, 0.2 / 0.9, 0.2 / 0.9, 0});
  o.top_k = 1;  // top-k first, then top-p
  close(nn::sampling_distribution(logits, o), {1, 0, 0, 0});
  o.temperature = 0;  // greedy: one-hot, the lowest id among equal maxima
  close(nn::sampling_distribution(std::vector<double>{1, 4, 4, 2}, o), {0, 1, 0, 0});
  o.temperature = 1e-3;  // -> greedy in the limit
  o.top_k = 0;
  o.top_p = 1;
  close(nn::sampling_distribution(std::vector<double>{1, 4, 3, 2}, o), {0, 1, 0, 0});
}

TEST_CASE("generated tokens respect top-k and top-p; top-k 1 and a tiny top-p are greedy") {
  nn::GPT model(small_config());
  Tensor prompt = prompt_of({10, 20});
  nn::GenerateOptions o;
  o.max_new_tokens = 8;
  o.temperature = 0;
  auto greedy = generated(model, prompt, o);
  o.temperature = 1.5;
  o.seed = 3;
  o.top_k = 1;
  CHECK(generated(model, prompt, o) == greedy);
  o.top_k = 0;
  o.top_p = 1e-9;
  CHECK(generated(model, prompt, o) == greedy);
  // top-k 3: every token is among the 3 most likely after what precedes it.
  o.top_p = 1;
  o.top_k = 3;
  o.max_new_tokens = 10;  // 12 tokens: within the context
  auto seq = generated(model, prompt, o);
  REQUIRE(seq.size() == 12);
  CHECK(seq != greedy);
  for (size_t n = 2; n < seq.size(); ++n) {
    auto l = full_last_logits(model, std::vector<int64_t>(seq.begin(), seq.begin() + n));
    int64_t above = std::count_if(l.begin(), l.end(), [&](double v) { return v > l[seq[n]]; });
    CHECK(above < 3);
  }
}

TEST_CASE("generation stops at the stop token, which is not appended") {
  nn::GPT model(small_config());
  Tensor prompt = prompt_of({5, 6, 7});
  nn::GenerateOptions o;
  o.max_new_tokens = 10;
  o.temperature = 0;
  auto full = generated(model, prompt, o);
  REQUIRE(full.size() == 13);
  // The first generated token that did not occur before it among the generated ones.
  size_t at = 4;
  while (at < full.size() &&
         std::find(full.begin() + 3, full.begin() + at, full[at]) != full.begin() + at)
    ++at;
  REQUIRE(at < full.size());
  o.stop_at = full[at];
  auto stopped = generated(model, prompt, o);
  CHECK(stopped == std::vector<int64_t>(full.begin(), full.begin() + at));
}

TEST_CASE("invalid generation options are ValueErrors naming the option") {
  nn::GPT model(small_config());
  Tensor prompt = prompt_of({1});
  auto with = [&](auto change) {
    nn::GenerateOptions o;
    change(o);
    return [=, &model] { return model.generate(prompt, o); };
  };
  CHECK_THROWS_WITH_PARTS(with([](auto& o) { o.max_new_tokens = -1; })(), ValueError,
                          "max_new_tokens", "-1");
  CHECK_THROWS_WITH_PARTS(with([](auto& o) { o.temperature = -0.5; })(), ValueError, "temperature",
                          "-0.5");
  CHECK_THROWS_WITH_PARTS(with([](auto& o) { o.temperature = NAN; })(), ValueError, "temperature");
  CHECK_THROWS_WITH_PARTS(with([](auto& o) { o.top_k = -2; })(), ValueError, "top_k", "-2");
  CHECK_THROWS_WITH_PARTS(with([](auto& o) { o.top_p = 0; })(), ValueError, "top_p", "0");
  CHECK_THROWS_WITH_PARTS(with([](auto& o) { o.top_p = 1.5; })(), ValueError, "top_p", "1.5");
  CHECK_THROWS_WITH_PARTS(with([](auto& o) { o.stop_at = 256; })(), ValueError, "stop_at", "256");
  Generator g(1);
  CHECK_THROWS_WITH_PARTS(with([&](auto& o) {
                            o.seed = 1;
                            o.generator = &g;
                          })(),
                          ValueError, "seed", "generator");
  CHECK_THROWS_WITH_PARTS(model.generate(prompt, -3, 1.0), ValueError, "max_new_tokens");
  CHECK_THROWS_WITH_PARTS(nn::sampling_distribution(std::vector<double>{}, {}), ValueError,
                          "empty");
}

TEST_CASE("generate restores the training mode and gradient recording, also when it throws") {
  nn::GPT model(small_config());
  model.train();
  // Id 300 is outside the byte vocabulary: the embedding throws in the middle of generation.
  CHECK_THROWS_AS(model.generate(prompt_of({1, 300}), 3, 1.0), IndexError);
  CHECK(model.is_training());
  CHECK(model.blocks[0]->attn->is_training());
  CHECK(is_grad_enabled());
  model.eval();
  CHECK_THROWS_AS(model.generate(prompt_of({300}), 3, 1.0), IndexError);
  CHECK_FALSE(model.is_training());
  model.train();
  model.generate(prompt_of({1}), 3, 0.0);  // temperature 0 is greedy in this signature too
  CHECK(model.is_training());
}
