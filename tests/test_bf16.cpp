// bfloat16 as a storage dtype: rounding (nearest, ties to even, special values) against a reference
// computed in double; every op family on bfloat16 operands equals the float32 op on the same
// values, rounded once; matrix products (oneDNN's bfloat16 kernel and the float32 fallback)
// against float64; mixed dtypes and promotion; gradients flowing through bfloat16 (dtypes,
// values against float64); in-place ops; the errors.
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "autograd/kernels/gemm.h"
#include "gpt_fixture.h"
#include "nn/nn.h"
#include "support.h"

using namespace ag;

namespace {

// The bfloat16 values nearest to x in double arithmetic: the candidates are the truncation of x's
// float and the next value away from zero.
float reference_round(float x) {
  if (std::isnan(x)) return x;
  uint32_t u;
  std::memcpy(&u, &x, 4);
  uint32_t lo_bits = u & 0xffff0000u, hi_bits = lo_bits + 0x10000u;
  float lo, hi;
  std::memcpy(&lo, &lo_bits, 4);
  std::memcpy(&hi, &hi_bits, 4);
  // Past the largest finite value, infinity stands where 2^128 would be (IEEE overflow).
  double dhi = std::isinf(hi) ? std::copysign(std::ldexp(1.0, 128), hi) : double(hi);
  double dl = std::fabs(double(x) - double(lo)), dh = std::fabs(dhi - double(x));
  if (dl < dh) return lo;
  if (dh < dl) return hi;
  return ((lo_bits >> 16) & 1u) ? hi : lo;  // a tie: the even one
}

// Random float32 values in [lo, hi), exactly representable in bfloat16 (so the float32 op on them
// and the bfloat16 op read the same numbers).
Tensor bf16_values(const Shape& s, double lo = -2, double hi = 2, uint64_t seed = 3) {
  Generator g(seed);
  return uniform(s, lo, hi, float32, &g).to(bfloat16);
}

// Whether a and b (any dtypes) hold the same values bit for bit after conversion to float64.
bool same_values(const Tensor& a, const Tensor& b) {
  if (!(a.shape() == b.shape())) return false;
  auto x = a.detach().to(float64).to_vector<double>(),
       y = b.detach().to(float64).to_vector<double>();
  for (size_t i = 0; i < x.size(); ++i)
    if (!(x[i] == y[i] || (std::isnan(x[i]) && std::isnan(y[i])))) return false;
  return true;
}

double max_rel_err(const Tensor& got, const Tensor& want) {
  auto x = got.detach().to(float64).to_vector<double>(),
       y = want.detach().to(float64).to_vector<double>();
  double scale = 0, err = 0;
  for (double v : y) scale = std::max(scale, std::fabs(v));
  for (size_t i = 0; i < x.size(); ++i) err = std::max(err, std::fabs(x[i] - y[i]));
  return err / std::max(scale, 1e-30);
}

}  // namespace

TEST_CASE("bf16: rounding to nearest, ties to even, against a double reference") {
  Generator g(11);
  Tensor x = normal({20000}, 0.0, 1000.0, float32, &g);
  auto xs = x.to_vector<float>();
  // Hand-picked ties and edges.
  for (float v : {1.0f + 1.0f / 256, 1.0f + 3.0f / 256, -1.0f - 1.0f / 256, 3.3895314e38f,
                  std::numeric_limits<float>::max(), 1e-40f, -0.0f, 0.0f})
    xs.push_back(v);
  Tensor t = Tensor::from_vector(xs).to(bfloat16);
  CHECK(t.dtype() == bfloat16);
  auto back = t.to(float32).to_vector<float>();
  int bad = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    float want = reference_round(xs[i]);
    if (std::memcmp(&want, &back[i], 4) != 0) ++bad;
  }
  CHECK(bad == 0);
  CHECK(float(bf16(1.0f + 1.0f / 256)) == 1.0f);                      // tie: down to even
  CHECK(float(bf16(1.0f + 3.0f / 256)) == 1.0f + 4.0f / 256);         // tie: up to even
  CHECK(std::isinf(float(bf16(std::numeric_limits<float>::max()))));  // overflow
  CHECK(std::isnan(float(bf16(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(std::isnan(float(bf16(-std::numeric_limits<float>::infinity() * 0.0f))));
  CHECK(std::signbit(float(bf16(-0.0f))));
  CHECK(itemsize(bfloat16) == 2);
  CHECK(dtype_name(bfloat16) == "bfloat16");
}

TEST_CASE("bf16: conversions both ways, views, printing, item") {
  Tensor x = Tensor({{1.5, -2.25, 3.0}, {0.1, 1e30, -7.0}});
  Tensor b = x.to(bfloat16);
  CHECK(b.to(float64).at({0, 1}) == -2.25);
  CHECK(b.to(float64).at({1, 0}) == doctest::Approx(0.1).epsilon(1.0 / 256));
  CHECK(select(select(b, 0, 0), 0, 0).item() == 1.5);
  CHECK(b.at({1, 2}) == -7.0);
  Tensor bt = transpose(b, 0, 1);  // a strided view, copied to float64
  CHECK(same_values(bt.to(float64), transpose(b.to(float64), 0, 1)));
  CHECK(same_values(b.contiguous(), b));
  CHECK(b.to(int64).at({0, 0}) == 1);
  CHECK(b.to(boolean).at({0, 0}) == 1);
  CHECK(full({3}, 2.5, bfloat16).to(float64).at({2}) == 2.5);
  CHECK(zeros({2}, bfloat16).to(float32).at({1}) == 0.0);
  CHECK(linspace(0, 1, 5, bfloat16).to(float64).at({1}) == 0.25);
  CHECK(eye(3, bfloat16).to(float64).at({1, 1}) == 1.0);
  CHECK(arange(4, bfloat16).to(float64).at({3}) == 3.0);
  CHECK(to_string(b).find("-2.25") != std::string::npos);
}

TEST_CASE("bf16: elementwise, unary, activation, reduction ops equal float32 on the same values") {
  Tensor a = bf16_values({37, 65}, -2, 2, 1), b = bf16_values({37, 65}, 0.5, 2, 2);
  Tensor af = a.to(float32), bf = b.to(float32);
  int line = 0;
  auto same = [&](const Tensor& got, const Tensor& f32) {
    const std::string which = std::to_string(++line);
    INFO("check number " << which);
    CHECK(got.dtype() == bfloat16);
    CHECK(same_values(got, f32.to(bfloat16)));
  };
  same(add(a, b), add(af, bf));
  same(sub(a, b, 0.5), sub(af, bf, 0.5));
  same(mul(a, b), mul(af, bf));
  same(div(a, b), div(af, bf));
  same(pow(b, a), pow(bf, af));
  same(maximum(a, b), maximum(af, bf));
  same(add(a, 1.25), add(af, 1.25));
  same(mul(a, 3.0), mul(af, 3.0));
  same(neg(a), neg(af));
  same(exp(a), exp(af));
  same(log(b), log(bf));
  same(tanh(a), tanh(af));
  same(sqrt(b), sqrt(bf));
  same(relu(a), relu(af));
  same(gelu(a), gelu(af));
  same(gelu(a, "tanh"), gelu(af, "tanh"));
  same(sigmoid(a), sigmoid(af));
  same(softmax(a, -1), softmax(af, -1));
  same(log_softmax(a, 0), log_softmax(af, 0));
  same(sum(a, {1}), sum(af, {1}));
  same(sum(a), sum(af));
  same(mean(a, {0}), mean(af, {0}));
  same(amax(a, {1}), amax(af, {1}));
  same(max(a, 1).first, max(af, 1).first);
  same(where(gt(a, b), a, b), where(gt(af, bf), af, bf));
  same(transpose(a, 0, 1).contiguous(), transpose(af, 0, 1).contiguous());
  same(index_select(a, 0, Tensor::from_vector(std::vector<int64_t>{3, 0, 3})),
       index_select(af, 0, Tensor::from_vector(std::vector<int64_t>{3, 0, 3})));
  CHECK(same_values(gt(a, b), gt(af, bf)));
  CHECK(same_values(argmax(a, 1), argmax(af, 1)));
  // layer_norm over the last axis with float32 weights: a bfloat16 result of the float32 kernel.
  Tensor w = uniform({65}, 0.5, 1.5, float32), bias = uniform({65}, -0.5, 0.5, float32);
  same(layer_norm(a, {65}, w, bias, 1e-5), layer_norm(af, {65}, w, bias, 1e-5));
  // cross_entropy: float32 loss from bfloat16 logits.
  Tensor target = Tensor::from_vector(std::vector<int64_t>(37, 4));
  Tensor l = cross_entropy(a, target);
  CHECK(l.dtype() == float32);
  CHECK(l.item() == cross_entropy(af, target).item());
  // Its gradient: the float32 one rounded once (fused backward), with smoothing and an ignored row.
  std::vector<int64_t> tv(37);
  for (int64_t i = 0; i < 37; ++i) tv[size_t(i)] = (i * 7) % 65;
  tv[3] = -100;
  Tensor t2 = Tensor::from_vector(tv);
  Tensor lb = a.detach().requires_grad_(), lf = af.detach().requires_grad_();
  Tensor l_b = cross_entropy(lb, t2, "mean", -100, 0.1),
         l_f = cross_entropy(lf, t2, "mean", -100, 0.1);
  CHECK(l_b.item() == l_f.item());
  l_b.backward();
  l_f.backward();
  CHECK(lb.grad().dtype() == bfloat16);
  CHECK(same_values(lb.grad(), lf.grad().to(bfloat16)));
}

TEST_CASE("bf16: mixed dtypes promote; bfloat16 < float32 < float64") {
  Tensor a = bf16_values({4}), f = uniform({4}, 0, 1), d = uniform({4}, 0, 1, float64);
  CHECK(add(a, a).dtype() == bfloat16);
  CHECK(add(a, f).dtype() == float32);
  CHECK(mul(f, a).dtype() == float32);
  CHECK(add(a, d).dtype() == float64);
  CHECK(add(a, Tensor::from_vector(std::vector<int64_t>{1, 2, 3, 4})).dtype() == bfloat16);
  CHECK(matmul(reshape(a, {2, 2}), reshape(f, {2, 2})).dtype() == float32);
  CHECK(same_values(add(a, f), add(a.to(float32), f)));
}

TEST_CASE("bf16: matrix products against float64, oneDNN's kernel and the float32 fallback") {
  INFO("bf16 GEMM path on this CPU: " << kernels::bf16_gemm_path());
  for (bool fallback : {false, true}) {
    kernels::force_bf16_fallback(fallback);
    for (auto [m, k, n] : {std::tuple{64, 128, 96}, {3, 700, 5}, {1, 2048, 300}, {130, 33, 1}}) {
      Tensor a = bf16_values({m, k}, -1, 1, 5), b = bf16_values({k, n}, -1, 1, 6);
      Tensor want = matmul(a.to(float64), b.to(float64));
      Tensor got = matmul(a, b);
      CHECK(got.dtype() == bfloat16);
      // One rounding to bfloat16 (2^-9 relative) on top of float32 accumulation.
      CHECK(max_rel_err(got, want) < 8e-3);
      // Transposed operands read in place, and a batch.
      Tensor at = transpose(a.contiguous(), 0, 1).contiguous();
      CHECK(same_values(matmul(transpose(at, 0, 1), b), got));
      Tensor batch = matmul(stack({a, a}), stack({b, b}));
      CHECK(same_values(select(batch, 0, 1), got));
    }
    // linear: x @ w^T + b, with and without a bias.
    Tensor x = bf16_values({2, 7, 48}, -1, 1, 7), w = bf16_values({20, 48}, -1, 1, 8),
           bias = bf16_values({20}, -1, 1, 9);
    Tensor want = linear(x.to(float64), w.to(float64), bias.to(float64));
    Tensor got = linear(x, w, bias);
    CHECK(got.dtype() == bfloat16);
    CHECK(max_rel_err(got, want) < 8e-3);
    CHECK(max_rel_err(linear(x, w), linear(x.to(float64), w.to(float64))) < 8e-3);
  }
  kernels::force_bf16_fallback(false);
}

TEST_CASE("bf16: gradients flow through bfloat16 and come back in each leaf's dtype") {
  // A two-layer MLP with bfloat16 weights and activations against the same in float64.
  Tensor x = bf16_values({16, 32}, -1, 1, 21);
  Tensor w1 = bf16_values({64, 32}, -0.3, 0.3, 22).requires_grad_();
  Tensor w2 = bf16_values({10, 64}, -0.3, 0.3, 23).requires_grad_();
  Tensor master = uniform({10}, -0.1, 0.1, float32).requires_grad_();  // a float32 leaf
  Tensor target =
      Tensor::from_vector(std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6});
  auto loss_of = [&](const Tensor& a, const Tensor& b, const Tensor& c, Dtype d) {
    Tensor h = gelu(linear(x.to(d), a.to(d)));
    return cross_entropy(add(linear(h, b.to(d)), c.to(d)), target);
  };
  Tensor l = loss_of(w1, w2, master, bfloat16);
  l.backward();
  CHECK(w1.grad().dtype() == bfloat16);
  CHECK(w2.grad().dtype() == bfloat16);
  CHECK(master.grad().dtype() == float32);
  Tensor v1 = w1.detach().to(float64).requires_grad_(),
         v2 = w2.detach().to(float64).requires_grad_(),
         vm = master.detach().to(float64).requires_grad_();
  Tensor l64 = loss_of(v1, v2, vm, float64);
  l64.backward();
  CHECK(l.item() == doctest::Approx(l64.item()).epsilon(1e-2));
  CHECK(max_rel_err(w1.grad(), v1.grad()) < 3e-2);
  CHECK(max_rel_err(w2.grad(), v2.grad()) < 3e-2);
  CHECK(max_rel_err(master.grad(), vm.grad()) < 3e-2);
}

TEST_CASE("bf16: in-place ops give what their out-of-place ops give") {
  Tensor a = bf16_values({100}, -2, 2, 31), b = bf16_values({100}, 0.5, 2, 32);
  Tensor af = a.to(float32), bf = b.to(float32);
  Tensor x = a.clone();
  x.add_(b, 0.5);
  CHECK(same_values(x, add(af, bf, 0.5).to(bfloat16)));
  x = a.clone();
  x.mul_(b).div_(3.0);
  CHECK(same_values(x, mul(mul(af, bf).to(bfloat16).to(float32), 1.0 / 3.0).to(bfloat16)));
  x = a.clone();
  x.addcmul_(a, b, 0.25);  // as the out-of-place ops it stands for, each rounding
  CHECK(same_values(x, add(a, mul(mul(a, b), 0.25))));
  x.fill_(1.5);
  CHECK(x.to(float64).at({7}) == 1.5);
  x.copy_(af);
  CHECK(same_values(x, a));
  x.zero_();
  CHECK(sum(x).item() == 0.0);
}

TEST_CASE("bf16: safetensors BF16 written and read natively, bit for bit") {
  test::TempDir dir;
  Tensor a = bf16_values({3, 5}, -100, 100, 41);
  Tensor strided = transpose(a, 0, 1);  // written row-major
  nn::save_safetensors(dir.file("w.safetensors"), {{"a", a}, {"t", strided}});
  std::string bytes = test::read_bytes(dir.file("w.safetensors"));
  CHECK(bytes.find(R"("dtype":"BF16")") != std::string::npos);
  CHECK(bytes.find("F32") == std::string::npos);
  nn::StateDict back = nn::load_safetensors(dir.file("w.safetensors"));
  REQUIRE(back.size() == 2);
  CHECK(back[0].second.dtype() == bfloat16);
  CHECK(same_values(back[0].second, a));
  CHECK(same_values(back[1].second, strided));
  // 2 bytes an element: 30 elements of data after the header.
  uint64_t header = 0;
  std::memcpy(&header, bytes.data(), 8);
  CHECK(bytes.size() == 8 + header + 2 * 15 * 2);
}

TEST_CASE("bf16: errors name the op") {
  Tensor a = bf16_values({4});
  test::TempDir dir;
  CHECK_THROWS_WITH_AS(nn::save_npy(dir.file("bf16.npy"), a), doctest::Contains("bfloat16"),
                       DtypeError);
  CHECK_THROWS_WITH_AS(set_autocast_dtype(float64), doctest::Contains("autocast"), ValueError);
  CHECK(autocast_dtype() == float32);  // unchanged by the refused call
}

namespace {

// A small byte-level GPT trained for `steps` AdamW steps on random words; returns the mean
// validation loss (float32 evaluation of the trained weights) and the first step's loss.
struct Run {
  double first = 0, val = 0;
};
Run train_tiny_gpt(bool bf16, bool bf16_state, int steps = 600) {
  nn::GPTConfig c = test::gpt_config({.layers = 2, .d_model = 64, .context = 32, .seed = 17});
  nn::GPT model(c);
  // Words drawn at random from a small vocabulary: the loss falls towards the words' entropy
  // rather than to zero, so the runs are compared while the model is still learning.
  const char* words[] = {"the", "quick", "brown", "fox", "jumps", "over", "a",    "lazy",
                         "dog", "and",   "runs",  "far", "away",  "from", "home", "again"};
  Generator text_gen(99);
  Tensor picks = randint(0, 16, {3000}, &text_gen);
  std::string text;
  for (int64_t w : picks.to_vector<int64_t>()) text += std::string(words[w]) + " ";
  std::vector<int64_t> bytes(text.begin(), text.end());
  auto [train, val] = nn::TextDataset::split(Tensor::from_vector(bytes), c.context, 0.1);
  nn::AdamW opt(model.parameters(), {.lr = 3e-3, .weight_decay = 0.0});
  if (bf16_state) opt.set_state_dtype(bfloat16);
  // Cosine decay to zero: the runs are compared where each has settled (the step at which a run
  // leaves its early plateau varies with any perturbation, float32 runs of other seeds included).
  nn::CosineWarmupLR schedule(opt, 20, steps, 0.0);
  Generator gen(5);
  Run r;
  for (int step = 0; step < steps; ++step) {
    auto [x, y] = train.sample(8, gen);
    opt.zero_grad();
    Tensor loss;
    {
      AutocastGuard autocast(bf16 ? bfloat16 : float32);
      loss = model.loss(x, y);
    }
    if (bf16) CHECK(loss.dtype() == float32);
    if (step == 0) r.first = loss.item();
    loss.backward();
    opt.step();
    schedule.step();
  }
  for (const Tensor& p : model.parameters()) CHECK(p.dtype() == float32);  // master weights
  NoGradGuard ng;
  model.eval();
  double total = 0;
  int n = 0;
  for (auto& [x, y] : val.windows(8, 16)) {
    total += model.loss(x, y).item();
    ++n;
  }
  r.val = total / n;
  return r;
}

}  // namespace

TEST_CASE("bf16: mixed-precision GPT training reaches within 2% of the float32 loss") {
  // One thread: at these sizes a second one only waits (3.6 s against 6 s here), and alongside
  // other test programs (or under the sanitizers) two spinning OpenMP threads per process made this
  // case 20x slower.
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  struct Restore {
    int n;
    ~Restore() { omp_set_num_threads(n); }
  } restore{threads};
  Run f32 = train_tiny_gpt(false, false);
  Run mixed = train_tiny_gpt(true, false);
  Run mixed_state = train_tiny_gpt(true, true);
  INFO("float32: " << f32.first << " -> " << f32.val << "; bf16: " << mixed.first << " -> "
                   << mixed.val << "; bf16 + bf16 optimizer state: " << mixed_state.val);
  CHECK(f32.val < 0.5 * f32.first);  // it learned
  CHECK(std::fabs(mixed.val - f32.val) / f32.val < 0.02);
  // The optimizer state in bfloat16: its effect on the loss, measured against float32 state.
  CHECK(std::fabs(mixed_state.val - mixed.val) / mixed.val < 0.02);
  MESSAGE("val loss after 600 steps: float32 " << f32.val << ", bf16 autocast " << mixed.val
                                               << ", bf16 autocast + bf16 AdamW state "
                                               << mixed_state.val);
}

TEST_CASE("bf16: AdamW with bfloat16 state keeps bfloat16 moments and float32 weights") {
  Tensor p = uniform({1000}, -1, 1, float32).requires_grad_();
  Tensor q = p.detach().clone().requires_grad_();
  nn::AdamW a({p}, {.lr = 1e-2}), b({q}, {.lr = 1e-2});
  b.set_state_dtype(bfloat16);
  CHECK_THROWS_AS(b.set_state_dtype(float64), ValueError);
  for (int i = 0; i < 5; ++i) {
    for (Tensor* t : {&p, &q}) {
      t->zero_grad();
      sum(mul(*t, *t)).backward();
    }
    a.step();
    b.step();
  }
  auto state = b.state_dict();
  int half = 0;
  for (auto& [k, t] : state.tensors)
    if (k.find("exp_avg") != std::string::npos) half += t.dtype() == bfloat16;
  CHECK(half == 2);
  CHECK(q.dtype() == float32);
  // The moments are rounded to 8 significant bits each step; the weights stay close.
  CHECK(max_rel_err(q, p) < 1e-2);
  CHECK(!same_values(q, p));
}

TEST_CASE("bf16: Module::frozen_to converts only the frozen float32 parameters") {
  nn::GPTConfig c = test::gpt_config({.d_model = 32, .context = 16});
  nn::GPT model(c);
  model.freeze();
  model.unfreeze("blocks.0.mlp.*");
  int64_t n = model.frozen_to(bfloat16);
  CHECK(n > 0);
  for (auto& [name, p] : model.named_parameters()) {
    INFO(name);
    CHECK(p.dtype() == (p.requires_grad() ? float32 : bfloat16));
  }
  // The model still runs, under autocast and without.
  Tensor x = Tensor::from_vector(std::vector<int64_t>{1, 2, 3, 4}, {1, 4});
  Tensor l1 = model.loss(x, x);
  AutocastGuard autocast(bfloat16);
  Tensor l2 = model.loss(x, x);
  CHECK(std::isfinite(l1.item()));
  CHECK(l2.item() == doctest::Approx(l1.item()).epsilon(0.02));
}
