// How close to the GEMM floor can a whole `mlp784` training step get on this machine, whatever
// does the bookkeeping? The step (784-256-256-10, ReLU, batch 64, cross-entropy on class indices,
// plain SGD) written by hand with no engine: the same dnnl_sgemm calls, cut over the OpenMP threads
// as the engine cuts them (a block of output columns or rows per thread; a layer's input and
// weight gradients side by side, one per thread), the bias written into each GEMM block, the
// ReLU in place, its backward fused with the bias gradient, the loss and the update as plain
// loops, nothing allocated per step, buffers on 64-byte boundaries.
//
// Variants, run in turn in one process (10 steps each per round), so that the machine's drift
// moves them all alike:
//   floor      the step's eight GEMMs, each threaded by oneDNN (gemm_probe's floor), and the
//              optimizer's pass over the weights, which no step can skip;
//   engine     bench mlp784's step through the library (zero_grad, forward, backward, SGD step);
//   by hand    the ReLUs and bias gradients inside the GEMMs' parallel regions, each thread on its
//              own block, or between the regions on the calling thread (as the engine runs them);
//              the update as its own pass after the backward (as in every zero_grad / backward /
//              step loop and in the workload's definition), or fused into the backward: each
//              weight updated by the thread that computed that block of its gradient, right after.
//
//   step_floor [rounds [variant]]   rounds (default 30); prints each variant's median step, its
//                                   ratio to the floor's median and the median of the per-round
//                                   ratios. With a variant number (0-5), runs that one alone
//                                   (for bench/regions.sh-style tracing).
#include <dnnl.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <new>
#include <random>
#include <utility>
#include <vector>

#include "autograd/autograd.h"
#include "nn/nn.h"

namespace {

constexpr int kBatch = 64, kIn = 784, kHidden = 256, kOut = 10;
constexpr float kLr = 0.01f;

void sgemm(bool ta, bool tb, int m, int n, int k, const float* a, int lda, const float* b, int ldb,
           float beta, float* c, int ldc) {
  dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
}

// The calling thread's block [lo, hi) of `n` columns or rows, edges on multiples of 16: all of
// them outside a parallel region.
std::pair<int, int> own_block(int n) {
  const int units = (n + 15) / 16, t = omp_get_thread_num(), nt = omp_get_num_threads();
  return {std::min(n, units * t / nt * 16), std::min(n, units * (t + 1) / nt * 16)};
}

// Buffers on 64-byte boundaries, as the engine's storage is (oneDNN's kernels run measurably
// slower on operands that are not).
template <class T>
struct Aligned {
  using value_type = T;
  Aligned() = default;
  template <class U>
  Aligned(const Aligned<U>&) {}
  T* allocate(size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64)));
  }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t(64)); }
  bool operator==(const Aligned&) const { return true; }
};
using Buffer = std::vector<float, Aligned<float>>;

struct Layer {
  int in, out;
  Buffer w, b, dw, db;
  Layer(int in_, int out_, std::mt19937& rng)
      : in(in_), out(out_), w(size_t(in) * out), b(out), dw(w.size()), db(out) {
    std::uniform_real_distribution<float> u(-1.0f / std::sqrt(float(in)),
                                            1.0f / std::sqrt(float(in)));
    for (float& x : w) x = u(rng);
    for (float& x : b) x = u(rng);
  }
};

struct Net {
  Layer l1, l2, l3;
  Buffer x, z1, z2, logits, dlogits, dz1, dz2;
  std::vector<int> y;
  explicit Net(std::mt19937& rng)
      : l1(kIn, kHidden, rng),
        l2(kHidden, kHidden, rng),
        l3(kHidden, kOut, rng),
        x(size_t(kBatch) * kIn),
        z1(size_t(kBatch) * kHidden),
        z2(z1.size()),
        logits(size_t(kBatch) * kOut),
        dlogits(logits.size()),
        dz1(z1.size()),
        dz2(z1.size()),
        y(kBatch) {
    std::normal_distribution<float> nd;
    for (float& v : x) v = nd(rng);
    for (int& c : y) c = int(rng() % kOut);
  }
};

// ReLU in place on the calling thread's block of a hidden layer's columns.
void relu_block(float* out) {
  const auto [lo, hi] = own_block(kHidden);
  for (int r = 0; r < kBatch; ++r) {
    float* __restrict row = out + size_t(r) * kHidden;
    for (int c = lo; c < hi; ++c) row[c] = std::max(row[c], 0.0f);
  }
}

// out[:, lo:hi) = relu(a @ w[lo:hi, :]^T + b[lo:hi]) for this thread's columns.
void forward_block(const float* a, const Layer& l, float* out, bool relu) {
  const auto [lo, hi] = own_block(l.out);
  if (hi <= lo) return;
  for (int r = 0; r < kBatch; ++r)
    std::copy(l.b.data() + lo, l.b.data() + hi, out + size_t(r) * l.out + lo);
  sgemm(false, true, kBatch, hi - lo, l.in, a, l.in, l.w.data() + size_t(lo) * l.in, l.in, 1.0f,
        out + lo, l.out);
  if (relu) relu_block(out);
}

// ReLU's backward on the calling thread's block of a hidden layer's columns (g in place, from the
// ReLU's output a) and the bias gradient db = column sums of the result.
void relu_backward_block(float* g, const float* a, float* db) {
  const auto [lo, hi] = own_block(kHidden);
  std::fill(db + lo, db + hi, 0.0f);
  for (int r = 0; r < kBatch; ++r) {
    float* __restrict gr = g + size_t(r) * kHidden;
    const float* __restrict ar = a + size_t(r) * kHidden;
    float* __restrict d = db;
    for (int c = lo; c < hi; ++c) {
      gr[c] = ar[c] > 0 ? gr[c] : 0.0f;
      d[c] += gr[c];
    }
  }
}

void sgd(Buffer& p, const Buffer& g, size_t lo, size_t hi) {
  float* __restrict pp = p.data();
  const float* __restrict gp = g.data();
  for (size_t i = lo; i < hi; ++i) pp[i] -= kLr * gp[i];
}

// One training step; returns the loss. `serial`: the ReLUs and bias gradients run on the calling
// thread between the parallel regions, as the engine runs them, instead of inside the regions,
// each thread on its own block.
float step(Net& n, bool fused, bool serial) {
  const int nt = omp_get_max_threads();
  // Forward: two hidden layers split by output columns, the small output layer on one thread.
#pragma omp parallel num_threads(nt)
  forward_block(n.x.data(), n.l1, n.z1.data(), !serial);
  if (serial) relu_block(n.z1.data());
#pragma omp parallel num_threads(nt)
  forward_block(n.z1.data(), n.l2, n.z2.data(), !serial);
  if (serial) relu_block(n.z2.data());
  for (int r = 0; r < kBatch; ++r)
    std::copy(n.l3.b.begin(), n.l3.b.end(), n.logits.begin() + r * kOut);
  sgemm(false, true, kBatch, kOut, kHidden, n.z2.data(), kHidden, n.l3.w.data(), kHidden, 1.0f,
        n.logits.data(), kOut);
  // Cross-entropy (mean over the batch) and its gradient with respect to the logits.
  double loss = 0;
  for (int r = 0; r < kBatch; ++r) {
    const float* z = &n.logits[r * kOut];
    float* d = &n.dlogits[r * kOut];
    const float m = *std::max_element(z, z + kOut);
    float s = 0;
    for (int c = 0; c < kOut; ++c) s += (d[c] = std::exp(z[c] - m));
    loss += std::log(s) + m - z[n.y[r]];
    for (int c = 0; c < kOut; ++c) d[c] = d[c] / s / kBatch;
    d[n.y[r]] -= 1.0f / kBatch;
  }
  // Output layer's gradients, and the gradient reaching the second layer's ReLU.
  sgemm(true, false, kOut, kHidden, kBatch, n.dlogits.data(), kOut, n.z2.data(), kHidden, 0.0f,
        n.l3.dw.data(), kHidden);
  std::fill(n.l3.db.begin(), n.l3.db.end(), 0.0f);
  for (int r = 0; r < kBatch; ++r)
    for (int c = 0; c < kOut; ++c) n.l3.db[c] += n.dlogits[r * kOut + c];
  sgemm(false, false, kBatch, kHidden, kOut, n.dlogits.data(), kOut, n.l3.w.data(), kHidden, 0.0f,
        n.dz2.data(), kHidden);
  // Second layer: ReLU's backward and the bias gradient (split by columns unless serial), then
  // its input gradient (thread 0) and weight gradient (thread 1) side by side.
  if (serial) relu_backward_block(n.dz2.data(), n.z2.data(), n.l2.db.data());
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num(), tn = omp_get_num_threads();
    if (!serial) {
      relu_backward_block(n.dz2.data(), n.z2.data(), n.l2.db.data());
#pragma omp barrier
    }
    if (t == 0 || tn == 1)
      sgemm(false, false, kBatch, kHidden, kHidden, n.dz2.data(), kHidden, n.l2.w.data(), kHidden,
            0.0f, n.dz1.data(), kHidden);
    if (t == 1 || tn == 1) {
      sgemm(true, false, kHidden, kHidden, kBatch, n.dz2.data(), kHidden, n.z1.data(), kHidden,
            0.0f, n.l2.dw.data(), kHidden);
      if (fused) sgd(n.l2.w, n.l2.dw, 0, n.l2.w.size());
    }
  }
  // First layer: ReLU's backward and bias gradient (unless serial), weight gradient, all split by
  // the same rows.
  if (serial) relu_backward_block(n.dz1.data(), n.z1.data(), n.l1.db.data());
#pragma omp parallel num_threads(nt)
  {
    if (!serial) relu_backward_block(n.dz1.data(), n.z1.data(), n.l1.db.data());
    const auto [lo, hi] = own_block(kHidden);
    if (hi > lo) {
      sgemm(true, false, hi - lo, kIn, kBatch, n.dz1.data() + lo, kHidden, n.x.data(), kIn, 0.0f,
            n.l1.dw.data() + size_t(lo) * kIn, kIn);
      if (fused) {
        sgd(n.l1.w, n.l1.dw, size_t(lo) * kIn, size_t(hi) * kIn);
        sgd(n.l1.b, n.l1.db, lo, hi);
      }
    }
  }
  if (fused) {
    sgd(n.l2.b, n.l2.db, 0, kHidden);
    sgd(n.l3.w, n.l3.dw, 0, n.l3.w.size());
    sgd(n.l3.b, n.l3.db, 0, kOut);
  } else {
    // The update: every parameter cut in nt equal pieces, piece t on thread t.
#pragma omp parallel num_threads(nt)
    {
      const int t = omp_get_thread_num(), tn = omp_get_num_threads();
      for (Layer* l : {&n.l1, &n.l2, &n.l3}) {
        sgd(l->w, l->dw, l->w.size() * t / tn, l->w.size() * (t + 1) / tn);
        sgd(l->b, l->db, l->b.size() * t / tn, l->b.size() * (t + 1) / tn);
      }
    }
  }
  return float(loss / kBatch);
}

// The floor in this process: the step's eight GEMMs, each threaded by oneDNN (gemm_probe's
// floor), and the optimizer's pass over the weights (w -= lr * dw, every weight read and written
// once, cut over the threads as the unfused steps cut it), which every step must also make.
struct GemmFloor {
  Buffer w[3], dw[3], a[4], da[4];
  const int size[4] = {kIn, kHidden, kHidden, kOut};
  GemmFloor() {
    for (int l = 0; l < 3; ++l) {
      w[l].assign(size_t(size[l]) * size[l + 1], 0.01f);
      dw[l].assign(w[l].size(), 0.0f);
    }
    for (int l = 0; l < 4; ++l) {
      a[l].assign(size_t(kBatch) * size[l], 0.5f);
      da[l].assign(a[l].size(), 0.1f);
    }
  }
  void step() {
    for (int l = 0; l < 3; ++l)
      sgemm(false, true, kBatch, size[l + 1], size[l], a[l].data(), size[l], w[l].data(), size[l],
            0.0f, a[l + 1].data(), size[l + 1]);
    for (int l = 2; l >= 0; --l) {
      sgemm(true, false, size[l + 1], size[l], kBatch, da[l + 1].data(), size[l + 1], a[l].data(),
            size[l], 0.0f, dw[l].data(), size[l]);
      if (l > 0)
        sgemm(false, false, kBatch, size[l], size[l + 1], da[l + 1].data(), size[l + 1],
              w[l].data(), size[l], 0.0f, da[l].data(), size[l]);
    }
#pragma omp parallel
    {
      const int t = omp_get_thread_num(), tn = omp_get_num_threads();
      for (int l = 0; l < 3; ++l) sgd(w[l], dw[l], w[l].size() * t / tn, w[l].size() * (t + 1) / tn);
    }
  }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 30;
  const int only = argc > 2 ? std::atoi(argv[2]) : -1;  // run one variant alone (for tracing)
  constexpr int kSteps = 10;                            // timed steps per variant per round
  std::mt19937 rng(7);
  Net hand(rng), hand_serial(rng), hand_fused(rng), hand_fused_serial(rng);
  GemmFloor floor;
  ag::manual_seed(0);
  auto model = ag::nn::make_mlp({kIn, kHidden, kHidden, kOut}, "relu");
  ag::nn::SGD opt(model->parameters(), {.lr = kLr});
  const ag::Tensor x = ag::randn({kBatch, kIn}), y = ag::randint(0, kOut, {kBatch});
  struct Variant {
    const char* name;
    std::function<void()> step;
    std::vector<double> us, round_medians;
  };
  std::vector<Variant> v = {
      {"floor (8 GEMMs and the update)", [&] { floor.step(); }, {}, {}},
      {"engine (bench mlp784's step)",
       [&] {
         opt.zero_grad();
         ag::nn::cross_entropy(model->forward(x), y).backward();
         opt.step();
       },
       {},
       {}},
      {"by hand, elementwise in the regions", [&] { step(hand, false, false); }, {}, {}},
      {"by hand, elementwise between them", [&] { step(hand_serial, false, true); }, {}, {}},
      {"by hand, update fused, in the regions", [&] { step(hand_fused, true, false); }, {}, {}},
      {"by hand, update fused, between them", [&] { step(hand_fused_serial, true, true); }, {}, {}},
  };
  const float first = step(hand, false, false);
  for (Variant& e : v)
    for (int i = 0; i < 5; ++i) e.step();
  if (only >= 0 && only < int(v.size())) {
    for (int i = 0; i < rounds * kSteps; ++i) v[size_t(only)].step();
    return 0;
  }
  for (int r = 0; r < rounds; ++r)
    for (Variant& e : v) {
      std::vector<double> round;
      for (int i = 0; i < kSteps; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        e.step();
        round.push_back(
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                .count());
      }
      e.us.insert(e.us.end(), round.begin(), round.end());
      e.round_medians.push_back(median(round));
    }
  const float last = step(hand, false, false);
  std::printf(
      "%d rounds of %d steps per variant, interleaved; the hand-written step's loss %.4f -> %.4f\n",
      rounds, kSteps, first, last);
  std::printf("%-40s %10s %8s %14s\n", "variant", "median us", "/ floor", "per-round med");
  for (const Variant& e : v) {
    std::vector<double> ratio;
    for (int r = 0; r < rounds; ++r) ratio.push_back(e.round_medians[r] / v[0].round_medians[r]);
    std::printf("%-40s %10.1f %8.3f %14.3f\n", e.name, median(e.us), median(e.us) / median(v[0].us),
                median(ratio));
  }
  // The engine against the hand-written step that runs as it does (elementwise work between the
  // GEMMs' regions, the update its own pass): the engine's own cost.
  std::vector<double> ratio;
  for (int r = 0; r < rounds; ++r) ratio.push_back(v[1].round_medians[r] / v[3].round_medians[r]);
  std::printf("engine / by hand (elementwise between them): %.3f, per-round median %.3f\n",
              median(v[1].us) / median(v[3].us), median(ratio));
  return last < first ? 0 : 1;
}
