// Property-based test of the engine: seeded random programs over the op set.
//
// A program is a list of steps on a pool of live float64 tensors. Each step picks an op, inputs
// from the pool (or fresh leaves of a shape that fits) and arguments whose rules the generator
// knows, so the step is valid; the generator runs each step as it builds the program and keeps it
// only if its values stay finite, moderate and away from the op's kinks (relu at 0, clamp's bounds,
// ties of max, log near 0...), where finite differences say nothing. Shapes are small and include
// size-0 and size-1 axes; strided inputs come from transposes, permutes, stepped slices and expands
// of leaves.
//
// Properties:
// - valid programs: the loss sum_k sum(sink_k * w_k) (sinks: pool tensors no step consumed, w_k
// fixed
//   random weights) passes gradcheck, and gradgradcheck on every PROPERTY_GRADGRAD_EVERY-th
//   program, in float64; every step keeps float64; no step raises. Forward mode: the same loss
//   passes gradcheck_forward in fast mode (random directions: JVPs against central differences
//   and <u, J v> against <J^T u, v> from reverse mode) on every PROPERTY_FORWARD_EVERY-th program.
// - invalid programs: a valid prefix, then one step with a deliberate mistake (shapes that do not
//   fit, an axis or an index out of range, a wrong dtype, a bad argument). It must raise an
//   ag::Error of the documented subclass whose message names the op; never a bare std:: exception,
//   never a crash. After the error the prefix still differentiates.
//
// A failure prints the seed and the program listing. Environment:
//   PROPERTY_SEED=S      first seed (default 1); given alone, runs that one program of each kind
//   PROPERTY_PROGRAMS=N  number of valid programs and of invalid programs (default 5000 each)
//   PROPERTY_GRADGRAD_EVERY=K  gradgradcheck every K-th valid program (default 1: all of them)
//   PROPERTY_FORWARD_EVERY=K   gradcheck_forward every K-th valid program (default 2)
//   PROPERTY_VERBOSE=1   print every program before it runs
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <fmt/ranges.h>

#include "support.h"

namespace {

using ag::Shape;
using ag::Tensor;
using ag::TensorList;

constexpr double kInf = std::numeric_limits<double>::infinity();
// How far from a kink (relu at 0, a tie of max, a clamp bound) every value must stay: far beyond
// the finite-difference step of 1e-6.
constexpr double kMargin = 1e-3;
// Largest |value| a step may produce.
constexpr double kMaxValue = 30.0;
constexpr int64_t kMaxNumel = 48;

// ---------------------------------------------------------------------------------------------
// settings and crash reporting

struct Settings {
  uint64_t first_seed = 1;
  int programs = 5000;
  int gradgrad_every = 1;
  int forward_every = 2;
  bool verbose = false;
};

bool env_set(const char* name) {
  const char* v = std::getenv(name);
  return v && *v;
}

uint64_t env_u64(const char* name, uint64_t fallback) {
  return env_set(name) ? std::strtoull(std::getenv(name), nullptr, 10) : fallback;
}

Settings settings() {
  Settings s;
  s.first_seed = env_u64("PROPERTY_SEED", s.first_seed);
  if (env_set("PROPERTY_SEED")) s.programs = 1;
  s.programs = static_cast<int>(env_u64("PROPERTY_PROGRAMS", s.programs));
  s.gradgrad_every = std::max(1, static_cast<int>(env_u64("PROPERTY_GRADGRAD_EVERY", 1)));
  s.forward_every = std::max(1, static_cast<int>(env_u64("PROPERTY_FORWARD_EVERY", 2)));
  s.verbose = env_u64("PROPERTY_VERBOSE", 0) != 0;
  return s;
}

// What the test was doing, for a crash: written by a signal handler, so a fixed buffer.
char g_crash_note[256] = "";

extern "C" void on_fatal_signal(int sig) {
  ssize_t ignored = ::write(2, g_crash_note, std::strlen(g_crash_note));
  (void)ignored;
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void note_program(const char* kind, uint64_t seed) {
  std::snprintf(g_crash_note, sizeof g_crash_note,
                "\ntest_property: fatal signal in the %s program of seed %llu; replay with "
                "PROPERTY_SEED=%llu\n",
                kind, static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
}

void install_crash_note() {
  for (int sig : {SIGSEGV, SIGABRT, SIGFPE, SIGBUS, SIGILL}) std::signal(sig, on_fatal_signal);
}

// A property that does not hold (not an engine error: those are what is being tested).
struct Finding : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---------------------------------------------------------------------------------------------
// values and shapes

std::vector<double> vals(const Tensor& t) { return test::values(t); }

double min_abs(const Tensor& t) {
  double m = kInf;
  for (double v : vals(t)) m = std::min(m, std::abs(v));
  return m;
}
double min_value(const Tensor& t) {
  double m = kInf;
  for (double v : vals(t)) m = std::min(m, v);
  return m;
}
double max_value(const Tensor& t) {
  double m = -kInf;
  for (double v : vals(t)) m = std::max(m, v);
  return m;
}
// Every value at least `margin` away from `point`.
bool away_from(const Tensor& t, double point, double margin = kMargin) {
  for (double v : vals(t))
    if (!(std::abs(v - point) > margin)) return false;
  return true;
}
bool finite_and_moderate(const Tensor& t) {
  for (double v : vals(t))
    if (!std::isfinite(v) || std::abs(v) > kMaxValue) return false;
  return true;
}

int64_t norm_axis(int64_t axis, int64_t rank) { return axis < 0 ? axis + rank : axis; }

// NumPy broadcast of two shapes; false when they do not fit.
bool broadcast(const Shape& a, const Shape& b, Shape& out) {
  int64_t n = std::max(a.size(), b.size());
  out = Shape{};
  out.resize(n, 1);
  for (int64_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1) return false;
    out[i] = da == 1 ? db : da;
  }
  return true;
}

// The reduced axes of x grouped by lane: each lane lists the values reduced together.
std::vector<std::vector<double>> lanes(const Tensor& x, std::vector<int64_t> axes) {
  int64_t r = x.dim();
  if (axes.empty())
    for (int64_t i = 0; i < r; ++i) axes.push_back(i);
  std::vector<bool> reduced(r, false);
  for (int64_t a : axes) reduced[norm_axis(a, r)] = true;
  std::vector<int64_t> order;
  int64_t lane = 1;
  for (int64_t i = 0; i < r; ++i)
    if (!reduced[i]) order.push_back(i);
  for (int64_t i = 0; i < r; ++i)
    if (reduced[i]) {
      order.push_back(i);
      lane *= x.shape()[i];
    }
  std::vector<double> v = vals(r ? ag::permute(x.detach(), order).contiguous() : x);
  int64_t count = lane ? static_cast<int64_t>(v.size()) / lane : 1;
  if (lane == 0) {
    count = 1;
    for (int64_t i = 0; i < r; ++i)
      if (!reduced[i]) count *= x.shape()[i];
  }
  std::vector<std::vector<double>> out(count);
  for (int64_t l = 0; l < count; ++l)
    out[l].assign(v.begin() + l * lane, v.begin() + (l + 1) * lane);
  return out;
}

// Every reduced axis is non-empty (extremum reductions have no identity).
bool reduces_nonempty(const Tensor& x, const std::vector<int64_t>& axes) {
  if (axes.empty()) return x.numel() > 0;
  for (int64_t a : axes)
    if (x.shape()[norm_axis(a, x.dim())] == 0) return false;
  return true;
}

// Each lane non-empty with a single largest (sign = 1) or smallest (-1) value, clear of the next.
bool clear_extreme(const std::vector<std::vector<double>>& ls, double sign, bool absolute = false) {
  for (auto l : ls) {
    if (l.empty()) return false;
    for (double& v : l) v = sign * (absolute ? std::abs(v) : v);
    std::sort(l.begin(), l.end());
    if (l.size() > 1 && !(l[l.size() - 1] - l[l.size() - 2] > kMargin)) return false;
  }
  return true;
}

double lane_variance(const std::vector<double>& l) {
  double m = 0, s = 0;
  for (double v : l) m += v;
  m /= static_cast<double>(l.size());
  for (double v : l) s += (v - m) * (v - m);
  return s / static_cast<double>(l.size());
}

std::string axes_text(const std::vector<int64_t>& a) { return fmt::format("{}", Shape(a)); }
std::string num(double v) { return fmt::format("{:g}", v); }

// ---------------------------------------------------------------------------------------------
// programs

using Fn = std::function<TensorList(const TensorList&)>;

struct Step {
  int leaf = -1;        // >= 0: the step introduces leaf number `leaf`
  std::vector<int> in;  // pool ids read
  Fn run;
  std::string text;
};

struct Program {
  uint64_t seed = 0;
  TensorList leaves;  // float64, contiguous, require grad
  std::vector<Step> steps;
  std::vector<int> sinks;  // pool ids summed into the loss
  TensorList weights;      // one per sink

  TensorList pool(const TensorList& lv) const {
    TensorList p;
    for (const Step& s : steps) {
      if (s.leaf >= 0) {
        p.push_back(lv[s.leaf]);
        continue;
      }
      TensorList in;
      for (int i : s.in) in.push_back(p[i]);
      for (Tensor& t : s.run(in)) p.push_back(t);
    }
    return p;
  }
  Tensor loss(const TensorList& lv) const {
    TensorList p = pool(lv);
    Tensor total;
    for (size_t k = 0; k < sinks.size(); ++k) {
      Tensor term = ag::sum(ag::mul(p[sinks[k]], weights[k]));
      total = total.defined() ? ag::add(total, term) : term;
    }
    return total;
  }
  std::string listing(const char* kind) const {
    std::string s = fmt::format("{} program, seed {} ({} leaves, {} steps):\n", kind, seed,
                                leaves.size(), steps.size());
    for (const Step& st : steps) s += "  " + st.text + "\n";
    if (!sinks.empty()) {
      s += "  loss =";
      for (size_t k = 0; k < sinks.size(); ++k)
        s += fmt::format("{} sum(t{} * w{})", k ? " +" : "", sinks[k], k);
      s += "   (w: fixed random weights)\n";
    }
    s += fmt::format("  replay: PROPERTY_SEED={} build/tests/test_property\n", seed);
    return s;
  }
};

class Builder {
 public:
  explicit Builder(uint64_t seed) : rng_(seed), gen_(seed * 0x9e3779b97f4a7c15ULL + 7) {
    p.seed = seed;
  }

  Program p;
  TensorList pool;
  std::vector<int> uses;  // per pool id: how many steps read it

  int64_t integer(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(rng_() % static_cast<uint64_t>(hi - lo + 1));
  }
  double real(double lo, double hi) {
    return lo + (hi - lo) * static_cast<double>(rng_() >> 11) * 0x1.0p-53;
  }
  bool coin(double prob) { return real(0, 1) < prob; }
  template <class T>
  const T& choose(const std::vector<T>& v) {
    return v[integer(0, static_cast<int64_t>(v.size()) - 1)];
  }

  // A random size: mostly 1..4, sometimes 0.
  int64_t size() {
    double u = real(0, 1);
    return u < 0.05 ? 0 : u < 0.3 ? 1 : integer(2, 4);
  }
  Shape shape(int64_t rank, int64_t max_numel = 24) {
    for (;;) {
      Shape s;
      for (int64_t i = 0; i < rank; ++i) s.push_back(size());
      if (s.numel() <= max_numel) return s;
    }
  }
  // A shape that broadcasts with s: trailing axes of s, some of them 1; or s with its size-1 axes
  // grown and leading axes added (the result then is larger than s).
  Shape partner_shape(const Shape& s) {
    for (int tries = 0; tries < 20; ++tries) {
      Shape r;
      int mode = static_cast<int>(integer(0, 2));
      if (mode == 0) return s;
      if (mode == 1) {
        int64_t drop = integer(0, s.size());
        for (int64_t i = drop; i < s.size(); ++i) r.push_back(coin(0.3) ? 1 : s[i]);
      } else {
        int64_t lead = integer(0, std::min<int64_t>(2, ag::kMaxDims - s.size()));
        for (int64_t i = 0; i < lead; ++i) r.push_back(integer(1, 3));
        for (int64_t d : s) r.push_back(d == 1 && coin(0.6) ? size() : d);
      }
      Shape out;
      if (broadcast(s, r, out) && out.numel() <= kMaxNumel) return r;
    }
    return s;
  }
  // Same, but also broadcasts *into* s (the result of broadcasting is s itself).
  Shape into_shape(const Shape& s) {
    Shape r;
    int64_t drop = integer(0, s.size());
    for (int64_t i = drop; i < s.size(); ++i) r.push_back(coin(0.3) ? 1 : s[i]);
    return r;
  }

  // A new leaf in the pool.
  int leaf(const Shape& s, double lo = -1.0, double hi = 1.0) {
    Tensor t = ag::uniform(s, lo, hi, ag::float64, &gen_).requires_grad_();
    int k = static_cast<int>(p.leaves.size());
    p.leaves.push_back(t);
    Step st;
    st.leaf = k;
    st.text = fmt::format("t{} = leaf {} in [{}, {})", pool.size(), s, num(lo), num(hi));
    p.steps.push_back(st);
    pool.push_back(t);
    uses.push_back(0);
    return static_cast<int>(pool.size()) - 1;
  }
  // A pool tensor of exactly shape s satisfying ok (half the time, when one exists) or a new leaf.
  int tensor_of_shape(const Shape& s, double lo = -1.0, double hi = 1.0,
                      const std::function<bool(const Tensor&)>& ok = nullptr) {
    if (coin(0.5)) {
      std::vector<int> c;
      for (size_t i = 0; i < pool.size(); ++i)
        if (pool[i].shape() == s && (!ok || ok(pool[i]))) c.push_back(static_cast<int>(i));
      if (!c.empty()) return choose(c);
    }
    return leaf(s, lo, hi);
  }
  // Constants captured by a step (not inputs of the program).
  Tensor constant(const Shape& s, double lo, double hi) {
    return ag::uniform(s, lo, hi, ag::float64, &gen_);
  }
  Tensor mask(const Shape& s) { return ag::lt(constant(s, 0, 1), ag::scalar_tensor(0.5)); }
  Tensor indices(const Shape& s, int64_t hi) {
    if (s.numel() == 0 || hi <= 0) return ag::zeros(s, ag::int64);
    return ag::randint(0, hi, s, &gen_);
  }
  uint64_t subseed() { return rng_(); }

  // A pool id satisfying ok, biased to recent tensors; -1 if none.
  int pick(const std::function<bool(const Tensor&)>& ok = nullptr) {
    std::vector<int> c;
    for (size_t i = 0; i < pool.size(); ++i)
      if (!ok || ok(pool[i])) c.push_back(static_cast<int>(i));
    if (c.empty()) return -1;
    return coin(0.5) ? c.back() : choose(c);
  }

  std::string name(int id) const { return fmt::format("t{}", id); }

  struct Mark {
    size_t steps, pool, leaves;
  };
  Mark mark() const { return {p.steps.size(), pool.size(), p.leaves.size()}; }
  void rollback(const Mark& m) {
    p.steps.resize(m.steps);
    pool.resize(m.pool);
    uses.resize(m.pool);
    p.leaves.resize(m.leaves);
  }

  // Runs `call` on pool tensors `in` and, if every output is finite and moderate (plus `keep`),
  // appends it as a step. An ag::Error here is a finding: the generator only makes valid steps.
  bool apply(const std::string& call, const std::vector<int>& in, Fn fn,
             const std::function<bool(const TensorList&)>& keep = nullptr) {
    TensorList args;
    for (int i : in) args.push_back(pool[i]);
    TensorList outs;
    try {
      outs = fn(args);
    } catch (const std::exception& e) {
      throw Finding(fmt::format("valid step `{}` on {} raised: {}", call, shapes(in), e.what()));
    }
    for (const Tensor& t : outs) {
      if (!t.defined() || t.dtype() != ag::float64)
        throw Finding(
            fmt::format("valid step `{}` on {} did not return a float64 tensor", call, shapes(in)));
      if (!finite_and_moderate(t)) return false;
    }
    if (keep && !keep(outs)) return false;
    Step st;
    st.in = in;
    st.run = std::move(fn);
    std::string lhs, out_shapes;
    for (size_t k = 0; k < outs.size(); ++k) {
      lhs += fmt::format("{}t{}", k ? ", " : "", pool.size() + k);
      out_shapes += fmt::format("{}{}", k ? " " : "", outs[k].shape());
    }
    if (outs.empty()) lhs = "(nothing)";
    st.text = fmt::format("{} = {}    # {} -> {}", lhs, call, shapes(in), out_shapes);
    p.steps.push_back(std::move(st));
    for (int i : in) ++uses[i];
    for (const Tensor& t : outs) {
      pool.push_back(t);
      uses.push_back(0);
    }
    return true;
  }
  // The inputs' shapes, "strided" after a non-contiguous one.
  std::string shapes(const std::vector<int>& in) const {
    std::string s;
    for (size_t k = 0; k < in.size(); ++k) {
      const Tensor& t = pool[in[k]];
      s += fmt::format("{}{}{}", k ? " " : "", t.shape(), t.is_contiguous() ? "" : " strided");
    }
    return s.empty() ? "()" : s;
  }

 private:
  std::mt19937_64 rng_;
  ag::Generator gen_;
};

using Pred = std::function<bool(const Tensor&)>;
Pred rank_at_least(int64_t r) {
  return [r](const Tensor& t) { return t.dim() >= r; };
}
Pred rank_between(int64_t lo, int64_t hi) {
  return [lo, hi](const Tensor& t) { return t.dim() >= lo && t.dim() <= hi; };
}

// Random distinct axes of a rank-r tensor (some written negative); may be empty.
std::vector<int64_t> random_axes(Builder& b, int64_t r, bool allow_empty = true) {
  std::vector<int64_t> a;
  for (int64_t i = 0; i < r; ++i)
    if (b.coin(0.5)) a.push_back(b.coin(0.3) ? i - r : i);
  if (a.empty() && !allow_empty && r > 0) a.push_back(b.integer(0, r - 1));
  for (size_t i = a.size(); i > 1; --i) std::swap(a[i - 1], a[b.integer(0, i - 1)]);
  return a;
}
int64_t random_axis(Builder& b, int64_t r) {  // r >= 1
  int64_t a = b.integer(0, r - 1);
  return b.coin(0.3) ? a - r : a;
}

// A random shape with n elements and the given rank (rank 0 only for n == 1).
Shape factor_shape(Builder& b, int64_t n, int64_t rank) {
  Shape s;
  s.resize(rank, 1);
  if (n == 0) {
    for (int64_t i = 0; i < rank; ++i) s[i] = b.integer(1, 3);
    s[b.integer(0, rank - 1)] = 0;
    return s;
  }
  int64_t m = n;
  for (int64_t f = 2; m > 1;) {
    if (m % f == 0) {
      s[b.integer(0, rank - 1)] *= f;
      m /= f;
    } else {
      ++f;
    }
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// valid steps, one generator per op family; each returns false when it cannot make a step

bool step_unary(Builder& b) {
  enum Domain { kAny, kPositive, kAboveMinus07, kKinkAt0, kExp };
  struct U {
    const char* name;
    Tensor (*f)(const Tensor&);
    Domain domain;
  };
  static const std::vector<U> ops = {
      {"neg", [](const Tensor& x) { return ag::neg(x); }, kAny},
      {"-", [](const Tensor& x) { return -x; }, kAny},
      {"exp", [](const Tensor& x) { return ag::exp(x); }, kExp},
      {"log", [](const Tensor& x) { return ag::log(x); }, kPositive},
      {"log1p", [](const Tensor& x) { return ag::log1p(x); }, kAboveMinus07},
      {"sqrt", [](const Tensor& x) { return ag::sqrt(x); }, kPositive},
      {"rsqrt", [](const Tensor& x) { return ag::rsqrt(x); }, kPositive},
      {"abs", [](const Tensor& x) { return ag::abs(x); }, kKinkAt0},
      {"sign", [](const Tensor& x) { return ag::sign(x); }, kKinkAt0},
      {"square", [](const Tensor& x) { return ag::square(x); }, kAny},
      {"sin", [](const Tensor& x) { return ag::sin(x); }, kAny},
      {"cos", [](const Tensor& x) { return ag::cos(x); }, kAny},
      {"erf", [](const Tensor& x) { return ag::erf(x); }, kAny},
      {"tanh", [](const Tensor& x) { return ag::tanh(x); }, kAny},
      {"sigmoid", [](const Tensor& x) { return ag::sigmoid(x); }, kAny},
      {"relu", [](const Tensor& x) { return ag::relu(x); }, kKinkAt0},
      {"silu", [](const Tensor& x) { return ag::silu(x); }, kAny},
      {"clone", [](const Tensor& x) { return x.clone(); }, kAny},
      {"contiguous", [](const Tensor& x) { return x.contiguous(); }, kAny},
  };
  const U& u = b.choose(ops);
  int x = b.pick([&](const Tensor& t) {
    switch (u.domain) {
      case kPositive:
        return min_value(t) > 0.2;
      case kAboveMinus07:
        return min_value(t) > -0.7;
      case kKinkAt0:
        return away_from(t, 0.0);
      case kExp:
        return max_value(t) < 3.0;
      default:
        return true;
    }
  });
  if (x < 0) return false;
  return b.apply(fmt::format("{}({})", u.name, b.name(x)), {x},
                 [f = u.f](const TensorList& a) { return TensorList{f(a[0])}; });
}

// Unary ops with arguments: activations' parameters, clamp, scalar arithmetic, pow, dropout.
bool step_unary_args(Builder& b) {
  int x = b.pick();
  Tensor t = b.pool[x];
  std::string X = b.name(x);
  switch (b.integer(0, 13)) {
    case 0: {
      if (!away_from(t, 0.0)) return false;
      double s = b.choose(std::vector<double>{0.01, 0.2, -0.5});
      return b.apply(fmt::format("leaky_relu({}, {})", X, num(s)), {x},
                     [s](const TensorList& a) { return TensorList{ag::leaky_relu(a[0], s)}; });
    }
    case 1: {
      if (!away_from(t, 0.0)) return false;
      double al = b.choose(std::vector<double>{1.0, 0.5, 2.0});
      return b.apply(fmt::format("elu({}, {})", X, num(al)), {x},
                     [al](const TensorList& a) { return TensorList{ag::elu(a[0], al)}; });
    }
    case 2: {
      std::string form = b.coin(0.5) ? "none" : "tanh";
      return b.apply(fmt::format("gelu({}, \"{}\")", X, form), {x},
                     [form](const TensorList& a) { return TensorList{ag::gelu(a[0], form)}; });
    }
    case 3: {
      double beta = b.choose(std::vector<double>{1.0, 0.5, 2.0});
      double thr = b.choose(std::vector<double>{20.0, 1.0, 0.5});
      if (!away_from(ag::mul(t.detach(), beta), thr)) return false;
      return b.apply(
          fmt::format("softplus({}, {}, {})", X, num(beta), num(thr)), {x},
          [beta, thr](const TensorList& a) { return TensorList{ag::softplus(a[0], beta, thr)}; });
    }
    case 4: {
      double lo = b.coin(0.2) ? -kInf : b.real(-1.2, 0.8);
      double hi = b.coin(0.2) ? kInf : std::max(lo, -1.0) + b.real(0.05, 1.5);
      if (!away_from(t, lo) || !away_from(t, hi)) return false;
      return b.apply(fmt::format("clamp({}, {}, {})", X, num(lo), num(hi)), {x},
                     [lo, hi](const TensorList& a) { return TensorList{ag::clamp(a[0], lo, hi)}; });
    }
    case 5: {
      double s = b.real(-2, 2);
      if (b.coin(0.5))
        return b.apply(fmt::format("{} + {}", X, num(s)), {x},
                       [s](const TensorList& a) { return TensorList{a[0] + s}; });
      return b.apply(fmt::format("add({}, {})", X, num(s)), {x},
                     [s](const TensorList& a) { return TensorList{ag::add(a[0], s)}; });
    }
    case 6: {
      double s = b.real(-2, 2);
      if (b.coin(0.5))
        return b.apply(fmt::format("{} * {}", num(s), X), {x},
                       [s](const TensorList& a) { return TensorList{s * a[0]}; });
      return b.apply(fmt::format("{} / {}", X, num(s + 3)), {x},
                     [s](const TensorList& a) { return TensorList{a[0] / (s + 3)}; });
    }
    case 7: {
      double s = b.real(-2, 2);
      return b.apply(fmt::format("rsub({}, {})", X, num(s)), {x},
                     [s](const TensorList& a) { return TensorList{ag::rsub(a[0], s)}; });
    }
    case 8: {
      if (!(min_abs(t) > 0.3)) return false;
      double s = b.real(-2, 2);
      return b.apply(fmt::format("rdiv({}, {})", X, num(s)), {x},
                     [s](const TensorList& a) { return TensorList{ag::rdiv(a[0], s)}; });
    }
    case 9: {  // integer powers anywhere (negative ones away from 0), fractional ones on x > 0
      double p = b.choose(std::vector<double>{0, 1, 2, 3, -1, -2, 0.5, 1.5, -0.5, 2.5});
      bool whole = p == std::floor(p);
      if (!whole && !(min_value(t) > 0.2)) return false;
      if (p < 0 && !(min_abs(t) > 0.3)) return false;
      return b.apply(fmt::format("pow({}, {})", X, num(p)), {x},
                     [p](const TensorList& a) { return TensorList{ag::pow(a[0], p)}; });
    }
    case 10: {
      double s = b.real(0.3, 2.5);
      return b.apply(fmt::format("pow({}, {})", num(s), X), {x},
                     [s](const TensorList& a) { return TensorList{ag::pow(s, a[0])}; });
    }
    case 11: {
      double p = b.choose(std::vector<double>{0.0, 0.25, 0.5, 1.0});
      bool training = b.coin(0.8);
      uint64_t seed = b.subseed();
      return b.apply(
          fmt::format("dropout({}, {}, {}, generator seed {})", X, num(p), training, seed), {x},
          [p, training, seed](const TensorList& a) {
            ag::Generator g(seed);
            return TensorList{ag::dropout(a[0], p, training, &g)};
          });
    }
    case 12: {  // a conversion that keeps the dtype
      return b.apply(fmt::format("{}.to(float64)", X), {x},
                     [](const TensorList& a) { return TensorList{a[0].to(ag::float64)}; });
    }
    default: {  // a float32 round trip loses precision: scale the result down so it cannot matter
      return b.apply(fmt::format("{}.to(float32).to(float64) * 0", X), {x},
                     [](const TensorList& a) {
                       return TensorList{a[0].to(ag::float32).to(ag::float64) * 0.0};
                     });
    }
  }
}

// Binary elementwise ops with broadcasting, where and masked_fill.
bool step_binary(Builder& b) {
  int x = b.pick();
  Shape xs = b.pool[x].shape();
  int op = static_cast<int>(b.integer(0, 10));
  bool positive_partner = op == 3;  // div: the divisor away from 0
  Shape ps = b.partner_shape(xs);
  int y = positive_partner ? b.tensor_of_shape(ps, 0.4, 1.3) : b.tensor_of_shape(ps);
  if (b.coin(0.4)) std::swap(x, y);
  Tensor X = b.pool[x];
  Tensor Y = b.pool[y];
  std::string a = b.name(x), c = b.name(y);
  auto binary = [&](const std::string& call, Tensor (*f)(const Tensor&, const Tensor&)) {
    return b.apply(call, {x, y}, [f](const TensorList& v) { return TensorList{f(v[0], v[1])}; });
  };
  switch (op) {
    case 0: {
      double alpha = b.choose(std::vector<double>{1.0, 0.5, -2.0});
      if (alpha == 1.0 && b.coin(0.5))
        return binary(fmt::format("{} + {}", a, c),
                      [](const Tensor& p, const Tensor& q) { return p + q; });
      return b.apply(
          fmt::format("add({}, {}, {})", a, c, num(alpha)), {x, y},
          [alpha](const TensorList& v) { return TensorList{ag::add(v[0], v[1], alpha)}; });
    }
    case 1: {
      double alpha = b.choose(std::vector<double>{1.0, 3.0});
      if (alpha == 1.0 && b.coin(0.5))
        return binary(fmt::format("{} - {}", a, c),
                      [](const Tensor& p, const Tensor& q) { return p - q; });
      return b.apply(
          fmt::format("sub({}, {}, {})", a, c, num(alpha)), {x, y},
          [alpha](const TensorList& v) { return TensorList{ag::sub(v[0], v[1], alpha)}; });
    }
    case 2:
      if (b.coin(0.5))
        return binary(fmt::format("{} * {}", a, c),
                      [](const Tensor& p, const Tensor& q) { return p * q; });
      return binary(fmt::format("mul({}, {})", a, c),
                    [](const Tensor& p, const Tensor& q) { return ag::mul(p, q); });
    case 3:
      if (!(min_abs(Y) > 0.3)) return false;
      if (b.coin(0.5))
        return binary(fmt::format("{} / {}", a, c),
                      [](const Tensor& p, const Tensor& q) { return p / q; });
      return binary(fmt::format("div({}, {})", a, c),
                    [](const Tensor& p, const Tensor& q) { return ag::div(p, q); });
    case 4:
      if (!(min_value(X) > 0.2)) return false;
      return binary(fmt::format("pow({}, {})", a, c),
                    [](const Tensor& p, const Tensor& q) { return ag::pow(p, q); });
    case 5:
    case 6: {
      if (!away_from(ag::sub(X.detach(), Y.detach()), 0.0)) return false;
      if (op == 5)
        return binary(fmt::format("minimum({}, {})", a, c),
                      [](const Tensor& p, const Tensor& q) { return ag::minimum(p, q); });
      return binary(fmt::format("maximum({}, {})", a, c),
                    [](const Tensor& p, const Tensor& q) { return ag::maximum(p, q); });
    }
    case 7:
    case 8: {
      Shape out;
      broadcast(X.shape(), Y.shape(), out);
      Tensor m = b.mask(b.partner_shape(out));
      Shape all;
      if (!broadcast(out, m.shape(), all) || all.numel() > kMaxNumel) return false;
      return b.apply(fmt::format("where(mask {}, {}, {})", m.shape(), a, c), {x, y},
                     [m](const TensorList& v) { return TensorList{ag::where(m, v[0], v[1])}; });
    }
    default: {
      Tensor m = b.mask(b.into_shape(X.shape()));
      double value = b.real(-2, 2);
      return b.apply(
          fmt::format("masked_fill({}, mask {}, {})", a, m.shape(), num(value)), {x},
          [m, value](const TensorList& v) { return TensorList{ag::masked_fill(v[0], m, value)}; });
    }
  }
}

bool step_reduce(Builder& b) {
  int x = b.pick();
  Tensor t = b.pool[x];
  std::string X = b.name(x);
  int64_t r = t.dim();
  std::vector<int64_t> axes = random_axes(b, r);
  bool keep = b.coin(0.5);
  std::string ax = axes_text(axes);
  auto ls = [&] { return lanes(t, axes); };
  switch (b.integer(0, 11)) {
    case 0:
      if (b.coin(0.2) && axes.empty())
        return b.apply(fmt::format("{}.sum()", X), {x},
                       [](const TensorList& a) { return TensorList{a[0].sum()}; });
      return b.apply(
          fmt::format("sum({}, {}, keepdim={})", X, ax, keep), {x},
          [axes, keep](const TensorList& a) { return TensorList{ag::sum(a[0], axes, keep)}; });
    case 1:
      return b.apply(
          fmt::format("mean({}, {}, keepdim={})", X, ax, keep), {x},
          [axes, keep](const TensorList& a) { return TensorList{ag::mean(a[0], axes, keep)}; });
    case 2:
    case 3: {
      int64_t corr = b.integer(0, 1);
      bool is_std = b.coin(0.5);
      for (auto& l : ls()) {
        if (static_cast<int64_t>(l.size()) <= corr) return false;
        if (is_std && !(lane_variance(l) > 1e-2)) return false;
      }
      if (is_std)
        return b.apply(fmt::format("std({}, {}, {}, keepdim={})", X, ax, corr, keep), {x},
                       [axes, corr, keep](const TensorList& a) {
                         return TensorList{ag::std(a[0], axes, corr, keep)};
                       });
      return b.apply(fmt::format("var({}, {}, {}, keepdim={})", X, ax, corr, keep), {x},
                     [axes, corr, keep](const TensorList& a) {
                       return TensorList{ag::var(a[0], axes, corr, keep)};
                     });
    }
    case 4: {
      bool big = b.coin(0.5);
      if (!reduces_nonempty(t, axes) || !clear_extreme(ls(), big ? 1.0 : -1.0)) return false;
      if (axes.empty() && b.coin(0.3))
        return b.apply(
            fmt::format("{}({})", big ? "max" : "min", X), {x},
            [big](const TensorList& a) { return TensorList{big ? ag::max(a[0]) : ag::min(a[0])}; });
      return b.apply(
          fmt::format("{}({}, {}, keepdim={})", big ? "amax" : "amin", X, ax, keep), {x},
          [big, axes, keep](const TensorList& a) {
            return TensorList{big ? ag::amax(a[0], axes, keep) : ag::amin(a[0], axes, keep)};
          });
    }
    case 5: {
      if (r == 0) return false;
      int64_t axis = random_axis(b, r);
      bool big = b.coin(0.5);
      if (!reduces_nonempty(t, {axis}) || !clear_extreme(lanes(t, {axis}), big ? 1.0 : -1.0))
        return false;
      return b.apply(
          fmt::format("{}({}, {}, keepdim={}).values", big ? "max" : "min", X, axis, keep), {x},
          [big, axis, keep](const TensorList& a) {
            return TensorList{big ? ag::max(a[0], axis, keep).first
                                  : ag::min(a[0], axis, keep).first};
          });
    }
    case 6:
      return b.apply(fmt::format("logsumexp({}, {}, keepdim={})", X, ax, keep), {x},
                     [axes, keep](const TensorList& a) {
                       return TensorList{ag::logsumexp(a[0], axes, keep)};
                     });
    case 7: {
      double p = b.choose(std::vector<double>{1.0, 2.0, 3.0, kInf, 0.5});
      if (p == kInf && (!reduces_nonempty(t, axes) || !clear_extreme(ls(), 1.0, true)))
        return false;
      if ((p == 1.0 || p == 0.5) && !(min_abs(t) > (p == 1.0 ? kMargin : 0.1))) return false;
      for (auto& l : ls()) {
        double s = 0;
        for (double v : l) s += v * v;
        if (!(s > 1e-2)) return false;
      }
      return b.apply(fmt::format("norm({}, {}, {}, keepdim={})", X, num(p), ax, keep), {x},
                     [p, axes, keep](const TensorList& a) {
                       return TensorList{ag::norm(a[0], p, axes, keep)};
                     });
    }
    case 8:
    case 9: {
      if (r == 0) return false;
      int64_t axis = random_axis(b, r);
      if (b.coin(0.5))
        return b.apply(fmt::format("softmax({}, {})", X, axis), {x},
                       [axis](const TensorList& a) { return TensorList{ag::softmax(a[0], axis)}; });
      return b.apply(fmt::format("log_softmax({}, {})", X, axis), {x}, [axis](const TensorList& a) {
        return TensorList{ag::log_softmax(a[0], axis)};
      });
    }
    default:
      return b.apply(
          fmt::format("{}.mean({}, keepdim={})", X, ax, keep), {x},
          [axes, keep](const TensorList& a) { return TensorList{a[0].mean(axes, keep)}; });
  }
}

bool step_shape(Builder& b) {
  int x = b.pick();
  Tensor t = b.pool[x];
  std::string X = b.name(x);
  int64_t r = t.dim();
  auto one = [&](const std::string& call, std::function<Tensor(const Tensor&)> f) {
    return b.apply(call, {x}, [f](const TensorList& a) { return TensorList{f(a[0])}; });
  };
  switch (b.integer(0, 15)) {
    case 0:
    case 1: {  // reshape / view
      int64_t n = t.numel();
      int64_t rank = n == 1 ? b.integer(0, 3) : b.integer(1, 4);
      Shape s = factor_shape(b, n, rank);
      Shape req = s;
      if (n > 0 && rank > 0 && b.coin(0.3)) req[b.integer(0, rank - 1)] = -1;
      if (t.is_contiguous() && b.coin(0.5))
        return one(fmt::format("view({}, {})", X, req),
                   [req](const Tensor& v) { return ag::view(v, req); });
      return one(fmt::format("{}.reshape({})", X, req),
                 [req](const Tensor& v) { return v.reshape(req); });
    }
    case 2: {
      if (r == 0)
        return one(fmt::format("flatten({})", X), [](const Tensor& v) { return ag::flatten(v); });
      int64_t s = b.integer(0, r - 1), e = b.integer(s, r - 1);
      int64_t s2 = b.coin(0.3) ? s - r : s, e2 = b.coin(0.3) ? e - r : e;
      return one(fmt::format("flatten({}, {}, {})", X, s2, e2),
                 [s2, e2](const Tensor& v) { return ag::flatten(v, s2, e2); });
    }
    case 3: {
      if (r == 0) return false;
      int64_t p = random_axis(b, r), q = random_axis(b, r);
      return one(fmt::format("transpose({}, {}, {})", X, p, q),
                 [p, q](const Tensor& v) { return ag::transpose(v, p, q); });
    }
    case 4: {
      std::vector<int64_t> order(r);
      std::iota(order.begin(), order.end(), 0);
      for (int64_t i = r; i > 1; --i) std::swap(order[i - 1], order[b.integer(0, i - 1)]);
      for (int64_t& o : order)
        if (b.coin(0.2)) o -= r;
      if (r >= 2 && b.coin(0.3))
        return one(fmt::format("{}.t()", X), [](const Tensor& v) { return v.t(); });
      return one(fmt::format("permute({}, {})", X, axes_text(order)),
                 [order](const Tensor& v) { return ag::permute(v, order); });
    }
    case 5: {
      if (r == 0 || b.coin(0.3))
        return one(fmt::format("squeeze({})", X), [](const Tensor& v) { return ag::squeeze(v); });
      int64_t a = random_axis(b, r);
      return one(fmt::format("squeeze({}, {})", X, a),
                 [a](const Tensor& v) { return ag::squeeze(v, a); });
    }
    case 6: {
      if (r >= ag::kMaxDims) return false;
      int64_t a = b.integer(-(r + 1), r);
      return one(fmt::format("unsqueeze({}, {})", X, a),
                 [a](const Tensor& v) { return ag::unsqueeze(v, a); });
    }
    case 7: {
      Shape s;
      int64_t lead = b.integer(0, std::min<int64_t>(2, ag::kMaxDims - r));
      for (int64_t i = 0; i < lead; ++i) s.push_back(b.integer(1, 3));
      for (int64_t d : t.shape()) s.push_back(d == 1 ? b.integer(0, 3) : (b.coin(0.3) ? -1 : d));
      Shape size = s;
      for (int64_t i = 0; i < r; ++i)
        if (size[lead + i] == -1) size[lead + i] = t.shape()[i];
      if (size.numel() > kMaxNumel) return false;
      if (b.coin(0.3))
        return one(fmt::format("broadcast_to({}, {})", X, s),
                   [s](const Tensor& v) { return ag::broadcast_to(v, s); });
      return one(fmt::format("expand({}, {})", X, s),
                 [s](const Tensor& v) { return ag::expand(v, s); });
    }
    case 8:
    case 9: {
      if (r == 0) return false;
      int64_t a = random_axis(b, r);
      int64_t n = t.shape()[norm_axis(a, r)];
      int64_t start = b.integer(-n - 2, n + 2), stop = b.integer(-n - 2, n + 2),
              step = b.integer(1, 3);
      return one(
          fmt::format("slice({}, {}, {}, {}, {})", X, a, start, stop, step),
          [a, start, stop, step](const Tensor& v) { return ag::slice(v, a, start, stop, step); });
    }
    case 10: {
      if (r == 0) return false;
      int64_t a = random_axis(b, r);
      int64_t n = t.shape()[norm_axis(a, r)];
      if (n == 0) return false;
      int64_t i = b.integer(-n, n - 1);
      if (a == 0 && i >= 0 && b.coin(0.3))
        return one(fmt::format("{}[{}]", X, i), [i](const Tensor& v) { return v[i]; });
      return one(fmt::format("select({}, {}, {})", X, a, i),
                 [a, i](const Tensor& v) { return ag::select(v, a, i); });
    }
    case 11:
    case 12: {  // cat / stack with other pool tensors or new leaves
      if (r == 0 && b.coin(0.7)) return false;
      bool is_cat = r > 0 && b.coin(0.5);
      int64_t a = is_cat ? random_axis(b, r) : b.integer(-(r + 1), r);
      int parts = static_cast<int>(b.integer(1, 3));
      std::vector<int> ids;
      for (int k = 0; k < parts; ++k) {
        Shape s = t.shape();
        if (is_cat) s[norm_axis(a, r)] = b.integer(0, 3);
        ids.push_back(k == 0 ? x : b.tensor_of_shape(s));
      }
      for (size_t i = ids.size(); i > 1; --i) std::swap(ids[i - 1], ids[b.integer(0, i - 1)]);
      std::string names;
      int64_t total = 0;
      for (int id : ids) {
        names += (names.empty() ? "" : ", ") + b.name(id);
        total += b.pool[id].numel();
      }
      if (total > kMaxNumel) return false;
      return b.apply(fmt::format("{}({{{}}}, {})", is_cat ? "cat" : "stack", names, a), ids,
                     [is_cat, a](const TensorList& v) {
                       return TensorList{is_cat ? ag::cat(v, a) : ag::stack(v, a)};
                     });
    }
    case 13: {
      if (r == 0) return false;
      int64_t a = random_axis(b, r);
      int64_t k = b.integer(1, 4);
      if (b.coin(0.5))
        return b.apply(fmt::format("split({}, {}, {})", X, k, a), {x},
                       [k, a](const TensorList& v) { return ag::split(v[0], k, a); });
      return b.apply(fmt::format("chunk({}, {}, {})", X, k, a), {x},
                     [k, a](const TensorList& v) { return ag::chunk(v[0], k, a); });
    }
    case 14: {
      if (r < 2) return false;
      int64_t k = b.integer(-2, 2);
      if (b.coin(0.5))
        return one(fmt::format("tril({}, {})", X, k),
                   [k](const Tensor& v) { return ag::tril(v, k); });
      return one(fmt::format("triu({}, {})", X, k),
                 [k](const Tensor& v) { return ag::triu(v, k); });
    }
    default: {  // slice_backward: x placed into zeros of a larger shape
      if (r == 0) return false;
      int64_t a = random_axis(b, r);
      int64_t ax = norm_axis(a, r);
      int64_t len = t.shape()[ax], step = b.integer(1, 3), start = b.integer(0, 2);
      Shape s = t.shape();
      s[ax] =
          len == 0 ? b.integer(0, start) : start + (len - 1) * step + 1 + b.integer(0, step - 1);
      if (s.numel() > kMaxNumel) return false;
      return one(fmt::format("slice_backward({}, {}, {}, {}, {})", X, s, a, start, step),
                 [s, a, start, step](const Tensor& v) {
                   return ag::slice_backward(v, s, a, start, step);
                 });
    }
  }
}

bool step_index(Builder& b) {
  switch (b.integer(0, 4)) {
    case 0: {  // index_select, 1-D or 0-d index
      int x = b.pick(rank_at_least(1));
      if (x < 0) return false;
      Tensor t = b.pool[x];
      int64_t a = random_axis(b, t.dim());
      int64_t n = t.shape()[norm_axis(a, t.dim())];
      Shape is = b.coin(0.15) ? Shape{} : Shape{n == 0 ? 0 : b.integer(0, 4)};
      if (n == 0 && is.numel() > 0) return false;
      Tensor idx = b.indices(is, n);
      return b.apply(
          fmt::format("index_select({}, {}, {} {})", b.name(x), a, is, vals(idx)), {x},
          [a, idx](const TensorList& v) { return TensorList{ag::index_select(v[0], a, idx)}; });
    }
    case 1: {  // index_add
      int x = b.pick(rank_at_least(1));
      if (x < 0) return false;
      Shape xs = b.pool[x].shape();
      int64_t a = random_axis(b, xs.size());
      int64_t n = xs[norm_axis(a, xs.size())];
      int64_t k = n == 0 ? 0 : b.integer(0, 4);
      Tensor idx = b.indices({k}, n);
      Shape ss = xs;
      ss[norm_axis(a, xs.size())] = k;
      int src = b.tensor_of_shape(ss);
      return b.apply(fmt::format("index_add({}, {}, {} {}, {})", b.name(x), a, idx.shape(),
                                 vals(idx), b.name(src)),
                     {x, src}, [a, idx](const TensorList& v) {
                       return TensorList{ag::index_add(v[0], a, idx, v[1])};
                     });
    }
    case 2:
    case 3: {  // gather / scatter_add: index of x's rank, no larger than x off the axis
      int x = b.pick(rank_at_least(1));
      if (x < 0) return false;
      Shape xs = b.pool[x].shape();
      int64_t r = xs.size();
      int64_t a = random_axis(b, r);
      int64_t ax = norm_axis(a, r);
      Shape is;
      for (int64_t d = 0; d < r; ++d)
        is.push_back(d == ax ? b.integer(0, 3) : b.integer(xs[d] > 0 ? 1 : 0, xs[d]));
      if (xs[ax] == 0 && is.numel() > 0) return false;
      Tensor idx = b.indices(is, xs[ax]);
      if (b.integer(0, 1) == 0)
        return b.apply(
            fmt::format("gather({}, {}, {} {})", b.name(x), a, is, vals(idx)), {x},
            [a, idx](const TensorList& v) { return TensorList{ag::gather(v[0], a, idx)}; });
      int src = b.tensor_of_shape(is);
      return b.apply(
          fmt::format("scatter_add({}, {}, {} {}, {})", b.name(x), a, is, vals(idx), b.name(src)),
          {x, src}, [a, idx](const TensorList& v) {
            return TensorList{ag::scatter_add(v[0], a, idx, v[1])};
          });
    }
    default: {  // embedding
      int w = b.pick([](const Tensor& t) { return t.dim() == 2 && t.shape()[0] > 0; });
      if (w < 0 || b.coin(0.3)) w = b.leaf({b.integer(1, 4), b.integer(0, 3)});
      int64_t num_rows = b.pool[w].shape()[0];
      Shape is = b.shape(b.integer(0, 2), 6);
      Tensor ids = b.indices(is, num_rows);
      return b.apply(fmt::format("embedding({}, {} {})", b.name(w), is, vals(ids)), {w},
                     [ids](const TensorList& v) { return TensorList{ag::embedding(v[0], ids)}; });
    }
  }
}

// matmul with every rank combination and broadcast batch axes, outer, linear.
bool step_linalg(Builder& b) {
  int x = b.pick(rank_between(1, 4));
  if (x < 0) return false;
  Shape xs = b.pool[x].shape();
  int64_t r = xs.size();
  switch (b.integer(0, 3)) {
    case 0:
    case 1: {
      bool x_left = b.coin(0.6);
      // The shared size and the partner's shape.
      int64_t k = x_left ? xs[r - 1] : (r == 1 ? xs[0] : xs[r - 2]);
      Shape ps;
      int form = static_cast<int>(b.integer(0, 2));
      if (form == 0) {
        ps = Shape{k};
      } else {
        Shape batch;
        if (form == 2) {
          Shape xb(xs.begin(), xs.end() - std::min<int64_t>(r, 2));
          batch = r > 2 ? b.partner_shape(xb) : b.shape(b.integer(1, 2), 4);
        }
        ps = batch;
        int64_t other = b.size();
        if (x_left) {
          ps.push_back(k);
          ps.push_back(other);
        } else {
          ps.push_back(other);
          ps.push_back(k);
        }
      }
      int y = b.tensor_of_shape(ps);
      int left = x_left ? x : y, right = x_left ? y : x;
      std::string call = fmt::format("matmul({}, {})", b.name(left), b.name(right));
      if (b.coin(0.3))
        return b.apply(
            fmt::format("{}.matmul({})", b.name(left), b.name(right)), {left, right},
            [](const TensorList& v) { return TensorList{v[0].matmul(v[1])}; },
            [](const TensorList& o) { return o[0].numel() <= kMaxNumel; });
      return b.apply(
          call, {left, right},
          [](const TensorList& v) { return TensorList{ag::matmul(v[0], v[1])}; },
          [](const TensorList& o) { return o[0].numel() <= kMaxNumel; });
    }
    case 2: {
      if (r != 1) return false;
      int y = b.tensor_of_shape({b.size()});
      return b.apply(fmt::format("outer({}, {})", b.name(x), b.name(y)), {x, y},
                     [](const TensorList& v) { return TensorList{ag::outer(v[0], v[1])}; });
    }
    default: {
      int64_t in = xs[r - 1], out = b.size();
      int w = b.tensor_of_shape({out, in});
      if (b.coin(0.3))
        return b.apply(fmt::format("linear({}, {})", b.name(x), b.name(w)), {x, w},
                       [](const TensorList& v) { return TensorList{ag::linear(v[0], v[1])}; });
      int bias = b.tensor_of_shape({out});
      return b.apply(fmt::format("linear({}, {}, {})", b.name(x), b.name(w), b.name(bias)),
                     {x, w, bias},
                     [](const TensorList& v) { return TensorList{ag::linear(v[0], v[1], v[2])}; });
    }
  }
}

bool step_norm_loss(Builder& b) {
  switch (b.integer(0, 2)) {
    case 0: {  // layer_norm over 1 or 2 trailing axes, with or without weight and bias
      int x = b.pick(rank_at_least(1));
      if (x < 0) return false;
      Tensor t = b.pool[x];
      int64_t r = t.dim();
      int64_t k = b.integer(1, std::min<int64_t>(r, 2));
      Shape ns(t.shape().end() - k, t.shape().end());
      double eps = b.choose(std::vector<double>{1e-5, 1e-3, 0.1});
      std::vector<int64_t> axes;
      for (int64_t i = r - k; i < r; ++i) axes.push_back(i);
      for (auto& l : lanes(t, axes))
        if (l.size() > 1 && !(lane_variance(l) + eps > 1e-2)) return false;
      std::vector<int> in{x};
      bool has_w = b.coin(0.6), has_b = b.coin(0.6);
      if (has_w) in.push_back(b.tensor_of_shape(ns));
      if (has_b) in.push_back(b.tensor_of_shape(ns));
      std::string extra;
      for (size_t i = 1; i < in.size(); ++i) extra += ", " + b.name(in[i]);
      return b.apply(fmt::format("layer_norm({}, {}{}{}, eps={})", b.name(x), ns, extra,
                                 has_w ? "" : " (no weight)", num(eps)),
                     in, [ns, has_w, has_b, eps](const TensorList& v) {
                       Tensor w = has_w ? v[1] : Tensor();
                       Tensor bias = has_b ? v[has_w ? 2 : 1] : Tensor();
                       return TensorList{ag::layer_norm(v[0], ns, w, bias, eps)};
                     });
    }
    case 1: {  // cross_entropy with class targets
      int x = b.pick(
          [](const Tensor& t) { return (t.dim() == 1 || t.dim() == 2) && t.shape().back() > 0; });
      if (x < 0) return false;
      Tensor t = b.pool[x];
      int64_t c = t.shape().back();
      Shape ts = t.dim() == 2 ? Shape{t.shape()[0]} : Shape{};
      Tensor target = b.indices(ts, c);
      int64_t ignore = b.coin(0.7) ? -100 : b.integer(0, c - 1);
      std::string red = b.choose(std::vector<std::string>{"mean", "sum", "none"});
      // The mean over an empty batch is refused (ValueError, tests/test_reliability.cpp).
      if (red == "mean" && t.numel() == 0) red = "sum";
      double smooth = b.coin(0.5) ? 0.0 : b.real(0, 1);
      return b.apply(fmt::format("cross_entropy({}, target {} {}, \"{}\", ignore_index={}, "
                                 "label_smoothing={})",
                                 b.name(x), ts, vals(target), red, ignore, num(smooth)),
                     {x}, [target, red, ignore, smooth](const TensorList& v) {
                       return TensorList{ag::cross_entropy(v[0], target, red, ignore, smooth)};
                     });
    }
    default: {  // cross_entropy_soft, targets differentiable too
      int x = b.pick(
          [](const Tensor& t) { return (t.dim() == 1 || t.dim() == 2) && t.shape().back() > 0; });
      if (x < 0) return false;
      int q = b.tensor_of_shape(b.pool[x].shape(), 0.05, 1.0,
                                [](const Tensor& t) { return min_value(t) >= 0; });
      std::string red = b.choose(std::vector<std::string>{"mean", "sum", "none"});
      // The mean over an empty batch is refused (ValueError, tests/test_reliability.cpp).
      if (red == "mean" && b.pool[x].numel() == 0) red = "sum";
      double smooth = b.coin(0.5) ? 0.0 : b.real(0, 1);
      return b.apply(fmt::format("cross_entropy_soft({}, {}, \"{}\", {})", b.name(x), b.name(q),
                                 red, num(smooth)),
                     {x, q}, [red, smooth](const TensorList& v) {
                       return TensorList{ag::cross_entropy_soft(v[0], v[1], red, smooth)};
                     });
    }
  }
}

// Mixed dtypes (an int64, bool or float32 constant operand promotes to float64), masks computed
// from the program's values by comparisons, and the ops that are other ops' backwards.
bool step_mixed(Builder& b) {
  int x = b.pick();
  Tensor t = b.pool[x];
  std::string X = b.name(x);
  switch (b.integer(0, 5)) {
    case 0: {
      Shape cs = b.partner_shape(t.shape());
      ag::Dtype dt = b.choose(std::vector<ag::Dtype>{ag::int64, ag::boolean, ag::float32});
      Tensor c = dt == ag::boolean ? b.mask(cs)
                 : dt == ag::int64 ? ag::sub(b.indices(cs, 5), ag::scalar_tensor(2, ag::int64))
                                   : b.constant(cs, -1, 1).to(ag::float32);
      bool add = b.coin(0.5), left = b.coin(0.5);
      std::string c_text = fmt::format("{} {} {}", ag::dtype_name(dt), cs, vals(c));
      return b.apply(
          fmt::format("{}({}, {})", add ? "add" : "mul", left ? X : c_text, left ? c_text : X), {x},
          [c, add, left](const TensorList& a) {
            Tensor p = left ? a[0] : c, q = left ? c : a[0];
            return TensorList{add ? ag::add(p, q) : ag::mul(p, q)};
          });
    }
    case 1: {  // where(x > threshold (or a logical mix), x, y): masks that follow the values
      double thr = b.real(-1, 1);
      if (!away_from(t, thr)) return false;
      int y = b.tensor_of_shape(t.shape());
      int how = static_cast<int>(b.integer(0, 3));
      std::string cond = how == 0   ? fmt::format("{} > {}", X, num(thr))
                         : how == 1 ? fmt::format("{} <= {}", X, num(thr))
                         : how == 2 ? fmt::format("logical_not({} >= {})", X, num(thr))
                                    : fmt::format("logical_or({0} < {1}, {0} > 1e9)", X, num(thr));
      return b.apply(fmt::format("where({}, {}, {})", cond, X, b.name(y)), {x, y},
                     [thr, how](const TensorList& a) {
                       Tensor m = how == 0   ? a[0] > thr
                                  : how == 1 ? a[0] <= thr
                                  : how == 2 ? ag::logical_not(a[0] >= thr)
                                             : ag::logical_or(a[0]<thr, a[0]> 1e9);
                       return TensorList{ag::where(m, a[0], a[1])};
                     });
    }
    case 2: {  // gelu_backward(g, x): differentiable in both
      int g = b.tensor_of_shape(t.shape());
      std::string form = b.coin(0.5) ? "none" : "tanh";
      return b.apply(
          fmt::format("gelu_backward({}, {}, \"{}\")", b.name(g), X, form), {g, x},
          [form](const TensorList& a) { return TensorList{ag::gelu_backward(a[0], a[1], form)}; });
    }
    case 3: {  // relu_backward(g, out): differentiable in g
      if (!away_from(t, 0.0)) return false;
      int g = b.tensor_of_shape(t.shape());
      return b.apply(fmt::format("relu_backward({}, {})", b.name(g), X), {g, x},
                     [](const TensorList& a) { return TensorList{ag::relu_backward(a[0], a[1])}; });
    }
    case 4: {  // max along an axis: the indices pick the values
      if (t.dim() == 0) return false;
      int64_t axis = random_axis(b, t.dim());
      if (!reduces_nonempty(t, {axis}) || !clear_extreme(lanes(t, {axis}), 1.0)) return false;
      return b.apply(fmt::format("gather({0}, {1}, max({0}, {1}, keepdim=true).indices)", X, axis),
                     {x}, [axis](const TensorList& a) {
                       auto [v, i] = ag::max(a[0], axis, true);
                       Tensor picked = ag::gather(a[0], axis, i);
                       if (!(test::values(picked) == test::values(v)))
                         throw Finding("max: the indices do not pick the values");
                       return TensorList{picked};
                     });
    }
    default: {  // times a float32 constant (promotes to float64)
      Tensor c = b.constant(t.shape(), -1, 1).to(ag::float32);
      return b.apply(fmt::format("{} * float32 {}", X, t.shape()), {x},
                     [c](const TensorList& a) { return TensorList{ag::mul(a[0], c)}; });
    }
  }
}

// Recorded in-place ops on a fresh non-leaf: y = clone(x); y.op_(...).
bool step_inplace(Builder& b) {
  int x = b.pick();
  Tensor t = b.pool[x];
  Shape zs = b.into_shape(t.shape());
  int op = static_cast<int>(b.integer(0, 11));
  int z = op == 3 || op == 9 ? b.tensor_of_shape(zs, 0.4, 1.3) : b.tensor_of_shape(zs);
  int w = b.tensor_of_shape(b.into_shape(t.shape()), 0.4, 1.3);
  Tensor Z = b.pool[z];
  std::string X = b.name(x), N = b.name(z);
  auto with = [&](const std::string& what, std::vector<int> in,
                  std::function<void(Tensor&, const TensorList&)> f) {
    return b.apply(fmt::format("clone({}).{}", X, what), in, [f](const TensorList& v) {
      Tensor y = v[0].clone();
      f(y, v);
      return TensorList{y};
    });
  };
  switch (op) {
    case 0:
      return with(fmt::format("add_({}, 0.5)", N), {x, z},
                  [](Tensor& y, const TensorList& v) { y.add_(v[1], 0.5); });
    case 1:
      return with(fmt::format("sub_({})", N), {x, z},
                  [](Tensor& y, const TensorList& v) { y.sub_(v[1]); });
    case 2:
      return with(fmt::format("mul_({})", N), {x, z},
                  [](Tensor& y, const TensorList& v) { y.mul_(v[1]); });
    case 3:
      if (!(min_abs(Z) > 0.3)) return false;
      return with(fmt::format("div_({})", N), {x, z},
                  [](Tensor& y, const TensorList& v) { y.div_(v[1]); });
    case 4:
      return with("add_(1.5)", {x}, [](Tensor& y, const TensorList&) { y.add_(1.5); });
    case 5:
      return with("mul_(-2).div_(4)", {x},
                  [](Tensor& y, const TensorList&) { y.mul_(-2.0).div_(4.0); });
    case 6: {
      double lo = b.real(-1, 0.2), hi = lo + b.real(0.1, 1);
      if (!away_from(t, lo) || !away_from(t, hi)) return false;
      return with(fmt::format("clamp_({}, {})", num(lo), num(hi)), {x},
                  [lo, hi](Tensor& y, const TensorList&) { y.clamp_(lo, hi); });
    }
    case 7:
      if (!(min_value(t) > 0.2)) return false;
      return with("sqrt_()", {x}, [](Tensor& y, const TensorList&) { y.sqrt_(); });
    case 8:
      return with(fmt::format("addcmul_({}, {}, 0.5)", N, b.name(w)), {x, z, w},
                  [](Tensor& y, const TensorList& v) { y.addcmul_(v[1], v[2], 0.5); });
    case 9:
      return with(fmt::format("addcdiv_({}, {}, -0.5)", N, b.name(w)), {x, z, w},
                  [](Tensor& y, const TensorList& v) { y.addcdiv_(v[1], v[2], -0.5); });
    case 10:
      return with(fmt::format("lerp_({}, 0.3)", N), {x, z},
                  [](Tensor& y, const TensorList& v) { y.lerp_(v[1], 0.3); });
    default:
      return with(fmt::format("copy_({})", N), {x, z},
                  [](Tensor& y, const TensorList& v) { y.copy_(v[1]); });
  }
}

// Leaves, some read through a strided view first.
void start_program(Builder& b) {
  int n = static_cast<int>(b.integer(1, 2));
  for (int i = 0; i < n; ++i) {
    int x = b.leaf(b.shape(b.integer(0, 3)), -1, 1);
    Tensor t = b.pool[x];
    int64_t r = t.dim();
    if (r == 0 || !b.coin(0.5)) continue;
    std::string X = b.name(x);
    switch (b.integer(0, 2)) {
      case 0: {
        int64_t p = b.integer(0, r - 1), q = b.integer(0, r - 1);
        b.apply(fmt::format("transpose({}, {}, {})", X, p, q), {x},
                [p, q](const TensorList& a) { return TensorList{ag::transpose(a[0], p, q)}; });
        break;
      }
      case 1: {
        int64_t a = b.integer(0, r - 1), step = b.integer(2, 3);
        b.apply(fmt::format("slice({}, {}, 0, {}, {})", X, a, t.shape()[a], step), {x},
                [a, step](const TensorList& v) {
                  return TensorList{ag::slice(v[0], a, 0, v[0].shape()[a], step)};
                });
        break;
      }
      default: {
        Shape s = t.shape();
        s.insert(0, 2);
        b.apply(fmt::format("expand({}, {})", X, s), {x},
                [s](const TensorList& v) { return TensorList{ag::expand(v[0], s)}; });
      }
    }
  }
}

using StepFn = bool (*)(Builder&);
struct Family {
  const char* name;
  StepFn fn;
  int weight;
};
const std::vector<Family>& families() {
  static const std::vector<Family> f = {
      {"unary", step_unary, 4},   {"unary_args", step_unary_args, 4}, {"binary", step_binary, 5},
      {"reduce", step_reduce, 4}, {"shape", step_shape, 6},           {"index", step_index, 3},
      {"linalg", step_linalg, 3}, {"norm_loss", step_norm_loss, 2},   {"inplace", step_inplace, 2},
      {"mixed", step_mixed, 2},
  };
  return f;
}

void grow(Builder& b, int steps) {
  int total = 0;
  for (const Family& f : families()) total += f.weight;
  int done = 0;
  for (int attempt = 0; done < steps && attempt < 40; ++attempt) {
    int64_t roll = b.integer(0, total - 1);
    const Family* f = nullptr;
    for (const Family& c : families()) {
      if (roll < c.weight) {
        f = &c;
        break;
      }
      roll -= c.weight;
    }
    Builder::Mark m = b.mark();
    if (f->fn(b))
      ++done;
    else
      b.rollback(m);
  }
}

Program valid_program(uint64_t seed) {
  Builder b(seed);
  try {
    start_program(b);
    grow(b, static_cast<int>(b.integer(2, 6)));
  } catch (const Finding& f) {
    throw Finding(fmt::format("{}\n{}", f.what(), b.p.listing("valid (partial)")));
  }
  for (size_t i = 0; i < b.pool.size(); ++i)
    if (b.uses[i] == 0) {
      b.p.sinks.push_back(static_cast<int>(i));
      b.p.weights.push_back(b.constant(b.pool[i].shape(), -1, 1));
    }
  if (b.p.sinks.empty()) {  // every tensor was consumed by a step that returned nothing
    b.p.sinks.push_back(0);
    b.p.weights.push_back(b.constant(b.pool[0].shape(), -1, 1));
  }
  return std::move(b.p);
}

// ---------------------------------------------------------------------------------------------
// invalid steps

// kAxis: an axis out of range, IndexError; or, for a 0-d tensor that has no axis, ShapeError.
enum class Expect { kShape, kDtype, kIndex, kValue, kAutograd, kAxis };

const char* expect_name(Expect e) {
  switch (e) {
    case Expect::kShape:
      return "ShapeError";
    case Expect::kDtype:
      return "DtypeError";
    case Expect::kIndex:
      return "IndexError";
    case Expect::kValue:
      return "ValueError";
    case Expect::kAxis:
      return "IndexError (ShapeError for a 0-d input)";
    default:
      return "AutogradError";
  }
}

bool is_expected(const ag::Error& e, Expect x) {
  switch (x) {
    case Expect::kShape:
      return dynamic_cast<const ag::ShapeError*>(&e) != nullptr;
    case Expect::kDtype:
      return dynamic_cast<const ag::DtypeError*>(&e) != nullptr;
    case Expect::kIndex:
      return dynamic_cast<const ag::IndexError*>(&e) != nullptr;
    case Expect::kValue:
      return dynamic_cast<const ag::ValueError*>(&e) != nullptr;
    case Expect::kAxis:
      return dynamic_cast<const ag::IndexError*>(&e) != nullptr ||
             dynamic_cast<const ag::ShapeError*>(&e) != nullptr;
    default:
      return dynamic_cast<const ag::AutogradError*>(&e) != nullptr;
  }
}

struct Invalid {
  std::string text;  // the call
  std::string op;    // the name the message must contain
  Expect expect;
  std::function<void()> run;
};

// A size that does not broadcast with d.
int64_t clash(int64_t d) { return d == 2 ? 3 : 2; }

// One deliberately wrong step on the pool tensor x (or on tensors made for the purpose).
Invalid invalid_step(Builder& b, int xid) {
  Tensor x = b.pool[xid];
  std::string X = fmt::format("t{} {}", xid, x.shape());
  Shape xs = x.shape();
  int64_t r = xs.size();
  // A tensor whose shape does not broadcast with x's: one axis (not of size 1) gets another size.
  Shape bad = xs;
  {
    std::vector<int64_t> ok;
    for (int64_t i = 0; i < r; ++i)
      if (xs[i] != 1) ok.push_back(i);
    if (!ok.empty()) {
      int64_t i = b.choose(ok);
      bad[i] = clash(xs[i]);
    }
  }
  bool can_clash = !(bad == xs) && r > 0 && [&] {
    Shape o;
    return !broadcast(xs, bad, o);
  }();
  Tensor y = b.constant(bad, -1, 1);
  int64_t out_axis = b.coin(0.5) ? std::max<int64_t>(r, 1) : -std::max<int64_t>(r, 1) - 1;
  using E = Expect;
  std::vector<std::function<Invalid()>> cases;
  auto add = [&](std::function<Invalid()> c) { cases.push_back(std::move(c)); };
  if (can_clash) {
    using BF = Tensor (*)(const Tensor&, const Tensor&);
    static const std::vector<std::pair<const char*, BF>> bins = {
        {"add", [](const Tensor& p, const Tensor& q) { return ag::add(p, q); }},
        {"sub", [](const Tensor& p, const Tensor& q) { return ag::sub(p, q); }},
        {"mul", [](const Tensor& p, const Tensor& q) { return p * q; }},
        {"div", [](const Tensor& p, const Tensor& q) { return ag::div(p, q); }},
        {"pow", [](const Tensor& p, const Tensor& q) { return ag::pow(p, q); }},
        {"minimum", [](const Tensor& p, const Tensor& q) { return ag::minimum(p, q); }},
        {"maximum", [](const Tensor& p, const Tensor& q) { return ag::maximum(p, q); }},
        {"lt", [](const Tensor& p, const Tensor& q) { return ag::lt(p, q); }},
    };
    add([=, &b] {
      auto& f = b.choose(bins);
      BF fn = f.second;
      bool swap = b.coin(0.5);
      return Invalid{fmt::format("{}({}, {})", f.first, swap ? fmt::format("{}", bad) : X,
                                 swap ? X : fmt::format("{}", bad)),
                     f.first, E::kShape, [=] { swap ? fn(y, x) : fn(x, y); }};
    });
    add([=, &b] {
      Tensor m = ag::zeros(bad, ag::boolean);
      return Invalid{fmt::format("where(mask {}, {}, {})", bad, X, X), "where", E::kShape,
                     [=] { ag::where(m, x, x); }};
    });
    add([=, &b] {
      Tensor m = ag::zeros(bad, ag::boolean);
      return Invalid{fmt::format("masked_fill({}, mask {}, 0)", X, bad), "masked_fill", E::kShape,
                     [=] { ag::masked_fill(x, m, 0.0); }};
    });
    add([=, &b] {
      return Invalid{fmt::format("clone({}).add_({})", X, bad), "add_", E::kShape, [=] {
                       Tensor c = x.clone();
                       c.add_(y);
                     }};
    });
  }
  add([=, &b] {
    Tensor m = ag::zeros(xs, ag::float64);
    return Invalid{fmt::format("where(float64 condition {}, {}, {})", xs, X, X), "where", E::kDtype,
                   [=] { ag::where(m, x, x); }};
  });
  // reductions and axis ops with an axis out of range
  {
    using RF = std::function<void(const Tensor&, int64_t)>;
    static const std::vector<std::pair<const char*, RF>> red = {
        {"sum", [](const Tensor& t, int64_t a) { ag::sum(t, {a}); }},
        {"mean", [](const Tensor& t, int64_t a) { ag::mean(t, {a}, true); }},
        {"var", [](const Tensor& t, int64_t a) { ag::var(t, {a}); }},
        {"std", [](const Tensor& t, int64_t a) { ag::std(t, {a}); }},
        {"amax", [](const Tensor& t, int64_t a) { ag::amax(t, {a}); }},
        {"amin", [](const Tensor& t, int64_t a) { ag::amin(t, {a}); }},
        {"logsumexp", [](const Tensor& t, int64_t a) { ag::logsumexp(t, {a}); }},
        {"norm", [](const Tensor& t, int64_t a) { ag::norm(t, 2.0, {a}); }},
        {"softmax", [](const Tensor& t, int64_t a) { ag::softmax(t, a); }},
        {"log_softmax", [](const Tensor& t, int64_t a) { ag::log_softmax(t, a); }},
        {"max", [](const Tensor& t, int64_t a) { ag::max(t, a); }},
        {"min", [](const Tensor& t, int64_t a) { ag::min(t, a); }},
        {"argmax", [](const Tensor& t, int64_t a) { ag::argmax(t, a); }},
        {"argmin", [](const Tensor& t, int64_t a) { ag::argmin(t, a); }},
        {"transpose", [](const Tensor& t, int64_t a) { ag::transpose(t, 0, a); }},
        {"squeeze", [](const Tensor& t, int64_t a) { ag::squeeze(t, a); }},
        {"select", [](const Tensor& t, int64_t a) { ag::select(t, a, 0); }},
        {"slice", [](const Tensor& t, int64_t a) { ag::slice(t, a, 0, 1); }},
        {"split", [](const Tensor& t, int64_t a) { ag::split(t, 1, a); }},
        {"chunk", [](const Tensor& t, int64_t a) { ag::chunk(t, 2, a); }},
        {"cat",
         [](const Tensor& t, int64_t a) {
           ag::cat({t, t}, a);
         }},
        {"flatten", [](const Tensor& t, int64_t a) { ag::flatten(t, a, -1); }},
        {"index_select",
         [](const Tensor& t, int64_t a) { ag::index_select(t, a, ag::zeros({0}, ag::int64)); }},
        {"gather",
         [](const Tensor& t, int64_t a) { ag::gather(t, a, ag::zeros(t.shape(), ag::int64)); }},
    };
    add([=, &b] {
      auto& f = b.choose(red);
      // 0-d tensors accept axes 0 and -1, like PyTorch; transpose uses axis 0 as well.
      int64_t a = r == 0 ? (b.coin(0.5) ? 1 : -2) : out_axis;
      RF fn = f.second;
      return Invalid{fmt::format("{}({}, axis {})", f.first, X, a), f.first,
                     r == 0 ? E::kAxis : E::kIndex, [=] { fn(x, a); }};
    });
    add([=, &b] {
      int64_t a = r + 2 + b.integer(0, 2);
      if (b.coin(0.5)) a = -a - 1;
      return Invalid{fmt::format("unsqueeze({}, {})", X, a), "unsqueeze", E::kIndex,
                     [=] { ag::unsqueeze(x, a); }};
    });
  }
  if (r >= 1) {
    add([=, &b] {
      std::vector<int64_t> axes{0, -r};
      return Invalid{fmt::format("sum({}, axes {{0, {}}})", X, -r), "sum", E::kIndex,
                     [=] { ag::sum(x, axes); }};
    });
    add([=, &b] {
      bool wrong_len = r == 1 || b.coin(0.5);
      std::vector<int64_t> order(wrong_len ? r + 1 : r);
      std::iota(order.begin(), order.end(), 0);
      if (!wrong_len) order[1] = order[0];
      return Invalid{fmt::format("permute({}, {})", X, axes_text(order)), "permute",
                     wrong_len ? E::kShape : E::kIndex, [=] { ag::permute(x, order); }};
    });
    add([=, &b] {
      int64_t a = b.integer(0, r - 1);
      int64_t i = b.coin(0.5) ? xs[a] + b.integer(0, 2) : -xs[a] - 1 - b.integer(0, 2);
      return Invalid{fmt::format("select({}, {}, {})", X, a, i), "select", E::kIndex,
                     [=] { ag::select(x, a, i); }};
    });
    add([=, &b] {
      int64_t step = -b.integer(0, 2);
      return Invalid{fmt::format("slice({}, 0, 0, 1, step {})", X, step), "slice", E::kValue,
                     [=] { ag::slice(x, 0, 0, 1, step); }};
    });
    add([=, &b] {
      int64_t k = -b.integer(0, 1);
      bool sp = b.coin(0.5);
      return Invalid{fmt::format("{}({}, {}, 0)", sp ? "split" : "chunk", X, k),
                     sp ? "split" : "chunk", E::kValue,
                     [=] { sp ? ag::split(x, k, 0) : ag::chunk(x, k, 0); }};
    });
    add([=, &b] {
      int64_t a = b.integer(0, r - 1);
      Shape s = xs;
      s[a] = s[a] + 1;
      Tensor big = b.constant(s, -1, 1);
      // cat along another axis, where the sizes must agree
      int64_t along = r == 1 ? 0 : (a + 1) % r;
      bool ok_anyway = along == a;
      if (ok_anyway) {
        Tensor w = b.constant(xs, -1, 1).to(ag::float32);
        return Invalid{fmt::format("cat({{{}, float32 {}}}, 0)", X, xs), "cat", E::kDtype, [=] {
                         ag::cat({x, w}, 0);
                       }};
      }
      return Invalid{fmt::format("cat({{{}, {}}}, {})", X, s, along), "cat", E::kShape, [=] {
                       ag::cat({x, big}, along);
                     }};
    });
  }
  add([=, &b] {
    Shape s = xs;
    s.push_back(2);
    Tensor other = b.constant(s, -1, 1);
    return Invalid{fmt::format("stack({{{}, {}}})", X, s), "stack", E::kShape, [=] {
                     ag::stack({x, other});
                   }};
  });
  add([=, &b] {
    bool is_cat = b.coin(0.5);
    return Invalid{is_cat ? "cat({})" : "stack({})", is_cat ? "cat" : "stack", E::kValue,
                   [=] { is_cat ? ag::cat({}) : ag::stack({}); }};
  });
  add([=, &b] {
    Shape s{x.numel() + 1 + b.integer(0, 3)};
    return Invalid{fmt::format("reshape({}, {})", X, s), "reshape", E::kShape,
                   [=] { ag::reshape(x, s); }};
  });
  add([=, &b] {
    Shape s{-1, -1};
    return Invalid{fmt::format("view({}, [-1, -1])", X), "view", E::kShape,
                   [=] { ag::view(x, s); }};
  });
  if (r >= 2 && xs[0] > 1 && xs[1] > 1 && x.numel() > 0) {
    add([=, &b] {
      Tensor tt = x.contiguous().transpose(0, 1);
      Shape s{x.numel()};
      return Invalid{fmt::format("view(transpose({}, 0, 1), {})", X, s), "view", E::kShape,
                     [=] { ag::view(tt, s); }};
    });
  }
  if (can_clash) {
    add([=, &b] {
      return Invalid{fmt::format("expand({}, {})", X, bad), "expand", E::kShape,
                     [=] { ag::expand(x, bad); }};
    });
  }
  {
    using RF = std::function<void(const Tensor&, int64_t)>;
    static const std::vector<std::pair<const char*, RF>> extremum = {
        {"amax", [](const Tensor& t, int64_t a) { ag::amax(t, {a}); }},
        {"amin", [](const Tensor& t, int64_t a) { ag::amin(t, {a}, true); }},
        {"max", [](const Tensor& t, int64_t a) { ag::max(t, a); }},
        {"min", [](const Tensor& t, int64_t a) { ag::min(t, a, true); }},
        {"argmax", [](const Tensor& t, int64_t a) { ag::argmax(t, a); }},
        {"norm", [](const Tensor& t, int64_t a) { ag::norm(t, kInf, {a}); }},
    };
    add([=, &b] {
      auto& f = b.choose(extremum);
      Shape s = xs;
      if (s.empty()) s.push_back(0);
      int64_t a = b.integer(0, s.size() - 1);
      s[a] = 0;
      Tensor e = ag::zeros(s, ag::float64);
      RF fn = f.second;
      return Invalid{fmt::format("{}({}, axis {})", f.first, s, a), f.first, E::kIndex,
                     [=] { fn(e, a); }};
    });
  }
  if (r >= 1) {
    add([=, &b] {
      int64_t a = b.coin(0.5) ? r : -r - 1;
      Shape s = xs;
      s[0] += 1;
      return Invalid{fmt::format("slice_backward({}, {}, axis {}, 0, 1)", X, s, a),
                     "slice_backward", E::kIndex, [=] { ag::slice_backward(x, s, a, 0, 1); }};
    });
    add([=, &b] {
      Shape s = xs;
      s.push_back(2);
      return Invalid{fmt::format("slice_backward({}, {}, 0, 0, 1)", X, s), "slice_backward",
                     E::kShape, [=] { ag::slice_backward(x, s, 0, 0, 1); }};
    });
  }
  // matmul: inner sizes, 0-d operands, batch axes, dtypes
  add([=, &b] {
    int64_t k = r ? xs[r - 1] : 1;
    Shape s{k + 1, 2};
    Tensor w = b.constant(s, -1, 1);
    Tensor xx = r ? x : b.constant({3}, -1, 1);
    return Invalid{fmt::format("matmul({}, {})", r ? X : "[3]", s), "matmul", E::kShape,
                   [=] { ag::matmul(xx, w); }};
  });
  add([=, &b] {
    Tensor s0 = ag::scalar_tensor(2.0, ag::float64);
    return Invalid{fmt::format("matmul({}, [])", X), "matmul", E::kShape,
                   [=] { ag::matmul(x, s0); }};
  });
  add([=, &b] {
    Tensor a = b.constant({2, 3, 4}, -1, 1), c = b.constant({3, 4, 2}, -1, 1);
    return Invalid{"matmul([2, 3, 4], [3, 4, 2])", "matmul", E::kShape, [=] { ag::matmul(a, c); }};
  });
  add([=, &b] {
    Tensor a = ag::zeros({2, 3}, ag::int64), c = b.constant({3, 2}, -1, 1);
    return Invalid{"matmul(int64 [2, 3], float64 [3, 2])", "matmul", E::kDtype,
                   [=] { ag::matmul(a, c); }};
  });
  add([=, &b] {
    Tensor w = b.constant({3, (r ? xs[r - 1] : 2) + 1}, -1, 1);
    Tensor xx = r ? x : b.constant({2}, -1, 1);
    return Invalid{fmt::format("linear({}, {})", r ? X : "[2]", w.shape()), "linear", E::kShape,
                   [=] { ag::linear(xx, w); }};
  });
  add([=, &b] {
    Tensor a = b.constant({3}, -1, 1), c = b.constant({2, 2}, -1, 1);
    return Invalid{"outer([3], [2, 2])", "outer", E::kShape, [=] { ag::outer(a, c); }};
  });
  // dtypes
  {
    using UF = std::function<void(const Tensor&)>;
    static const std::vector<std::pair<const char*, UF>> need_float = {
        {"mean", [](const Tensor& t) { ag::mean(t); }},
        {"var", [](const Tensor& t) { ag::var(t); }},
        {"logsumexp", [](const Tensor& t) { ag::logsumexp(t, {}); }},
        {"softmax", [](const Tensor& t) { ag::softmax(t, -1); }},
        {"log_softmax", [](const Tensor& t) { ag::log_softmax(t, -1); }},
        {"norm", [](const Tensor& t) { ag::norm(t); }},
        {"relu", [](const Tensor& t) { ag::relu(t); }},
        {"gelu", [](const Tensor& t) { ag::gelu(t); }},
        {"silu", [](const Tensor& t) { ag::silu(t); }},
        {"elu", [](const Tensor& t) { ag::elu(t); }},
        {"softplus", [](const Tensor& t) { ag::softplus(t); }},
        {"leaky_relu", [](const Tensor& t) { ag::leaky_relu(t); }},
    };
    add([=, &b] {
      auto& f = b.choose(need_float);
      UF fn = f.second;
      Tensor i = ag::zeros(r ? xs : Shape{2}, ag::int64);
      return Invalid{fmt::format("{}(int64 {})", f.first, i.shape()), f.first, E::kDtype,
                     [=] { fn(i); }};
    });
  }
  // index ops
  if (r >= 1 && x.numel() > 0) {
    int64_t a = b.integer(0, r - 1);
    int64_t n = xs[a];
    int64_t badi = b.coin(0.5) ? n + b.integer(0, 2) : -1 - b.integer(0, 2);
    add([=, &b] {
      Tensor idx = Tensor::from_vector(std::vector<int64_t>{badi});
      return Invalid{fmt::format("index_select({}, {}, [{}])", X, a, badi), "index_select",
                     E::kIndex, [=] { ag::index_select(x, a, idx); }};
    });
    add([=, &b] {
      Tensor idx = Tensor::from_vector(std::vector<int64_t>{badi});
      Shape s = xs;
      s[a] = 1;
      Tensor src = b.constant(s, -1, 1);
      return Invalid{fmt::format("index_add({}, {}, [{}], {})", X, a, badi, s), "index_add",
                     E::kIndex, [=] { ag::index_add(x, a, idx, src); }};
    });
    add([=, &b] {
      Shape s;
      s.resize(r, 1);
      Tensor idx = ag::full(s, static_cast<double>(badi), ag::int64);
      return Invalid{fmt::format("gather({}, {}, {} of {})", X, a, s, badi), "gather", E::kIndex,
                     [=] { ag::gather(x, a, idx); }};
    });
    add([=, &b] {
      Shape s;
      s.resize(r, 1);
      Tensor idx = ag::full(s, static_cast<double>(badi), ag::int64);
      Tensor src = b.constant(s, -1, 1);
      return Invalid{fmt::format("scatter_add({}, {}, {} of {}, {})", X, a, s, badi, s),
                     "scatter_add", E::kIndex, [=] { ag::scatter_add(x, a, idx, src); }};
    });
    add([=, &b] {
      Tensor idx = ag::zeros({1}, ag::float64);
      return Invalid{fmt::format("index_select({}, {}, float64 [1])", X, a), "index_select",
                     E::kDtype, [=] { ag::index_select(x, a, idx); }};
    });
    add([=, &b] {
      Shape s = xs;
      s.push_back(1);
      Tensor idx = ag::zeros(s, ag::int64);
      return Invalid{fmt::format("gather({}, {}, index {})", X, a, s), "gather", E::kShape,
                     [=] { ag::gather(x, a, idx); }};
    });
    add([=, &b] {
      Shape s;
      s.resize(r, 1);
      Tensor idx = ag::zeros(s, ag::int64);
      Shape ss = s;
      ss[0] = 2;
      Tensor src = b.constant(ss, -1, 1);
      return Invalid{fmt::format("scatter_add({}, {}, index {}, src {})", X, a, s, ss),
                     "scatter_add", E::kShape, [=] { ag::scatter_add(x, a, idx, src); }};
    });
  }
  if (r == 2) {
    add([=, &b] {
      int64_t bi = b.coin(0.5) ? xs[0] + b.integer(0, 2) : -1;
      Tensor ids = Tensor::from_vector(std::vector<int64_t>{0, bi});
      return Invalid{fmt::format("embedding({}, [0, {}])", X, bi), "embedding", E::kIndex,
                     [=] { ag::embedding(x, ids); }};
    });
  } else {
    add([=, &b] {
      Tensor ids = ag::zeros({1}, ag::int64);
      return Invalid{fmt::format("embedding({}, [0])", X), "embedding", E::kShape,
                     [=] { ag::embedding(x, ids); }};
    });
  }
  // cross_entropy
  add([=, &b] {
    int64_t n = b.integer(1, 3), c = b.integer(1, 4);
    Tensor logits = b.constant({n, c}, -1, 1);
    std::vector<int64_t> t(n, 0);
    t[b.integer(0, n - 1)] = b.coin(0.5) ? c + b.integer(0, 2) : -1 - b.integer(0, 2);
    Tensor target = Tensor::from_vector(t);
    return Invalid{fmt::format("cross_entropy([{}, {}], target {})", n, c, t), "cross_entropy",
                   E::kIndex, [=] { ag::cross_entropy(logits, target); }};
  });
  add([=, &b] {
    Tensor target = ag::zeros({r ? xs[0] : 1}, ag::float64);
    Tensor logits = r == 2 && xs[1] > 0 ? x : b.constant({target.numel(), 3}, -1, 1);
    return Invalid{fmt::format("cross_entropy({}, float64 target)", logits.shape()),
                   "cross_entropy", E::kDtype, [=] { ag::cross_entropy(logits, target); }};
  });
  add([=, &b] {
    Tensor logits = b.constant({2, 3, 2}, -1, 1);
    Tensor target = ag::zeros({2}, ag::int64);
    return Invalid{"cross_entropy([2, 3, 2], [2])", "cross_entropy", E::kShape,
                   [=] { ag::cross_entropy(logits, target); }};
  });
  add([=, &b] {
    Tensor logits = b.constant({2, 3}, -1, 1);
    Tensor target = ag::zeros({3}, ag::int64);
    return Invalid{"cross_entropy([2, 3], target [3])", "cross_entropy", E::kShape,
                   [=] { ag::cross_entropy(logits, target); }};
  });
  add([=, &b] {
    Tensor logits = b.constant({2, 3}, -1, 1);
    Tensor target = ag::zeros({2}, ag::int64);
    bool reduction = b.coin(0.5);
    return Invalid{reduction ? "cross_entropy([2, 3], [2], \"avg\")"
                             : "cross_entropy([2, 3], [2], label_smoothing=1.5)",
                   "cross_entropy", E::kValue, [=] {
                     if (reduction)
                       ag::cross_entropy(logits, target, "avg");
                     else
                       ag::cross_entropy(logits, target, "mean", -100, 1.5);
                   }};
  });
  add([=, &b] {
    Tensor logits = b.constant({2, 3}, -1, 1), q = b.constant({2, 4}, 0, 1);
    return Invalid{"cross_entropy_soft([2, 3], [2, 4])", "cross_entropy_soft", E::kShape,
                   [=] { ag::cross_entropy_soft(logits, q); }};
  });
  // layer_norm
  add([=, &b] {
    Shape ns{(r ? xs[r - 1] : 1) + 1};
    return Invalid{fmt::format("layer_norm({}, {})", X, ns), "layer_norm", E::kShape,
                   [=] { ag::layer_norm(x, ns); }};
  });
  if (r >= 1) {
    add([=, &b] {
      Shape ns{xs[r - 1]};
      Tensor w = b.constant({xs[r - 1] + 1}, -1, 1);
      return Invalid{fmt::format("layer_norm({}, {}, weight {})", X, ns, w.shape()), "layer_norm",
                     E::kShape, [=] { ag::layer_norm(x, ns, w); }};
    });
  }
  // bad arguments
  add([=, &b] {
    double p = -b.integer(0, 2);
    return Invalid{fmt::format("norm({}, p={})", X, num(p)), "norm", E::kValue,
                   [=] { ag::norm(x, p); }};
  });
  add([=, &b] {
    return Invalid{fmt::format("gelu({}, \"fast\")", X), "gelu", E::kValue,
                   [=] { ag::gelu(x, "fast"); }};
  });
  add([=, &b] {
    return Invalid{fmt::format("softplus({}, beta=0)", X), "softplus", E::kValue,
                   [=] { ag::softplus(x, 0.0); }};
  });
  add([=, &b] {
    double p = b.coin(0.5) ? 1.5 : -0.1;
    return Invalid{fmt::format("dropout({}, {})", X, num(p)), "dropout", E::kValue,
                   [=] { ag::dropout(x, p); }};
  });
  if (r < 2) {
    add([=, &b] {
      return Invalid{fmt::format("tril({})", X), "tril", E::kShape, [=] { ag::tril(x); }};
    });
  }
  add([=, &b] {
    Tensor labels = Tensor::from_vector(std::vector<int64_t>{0, 5});
    return Invalid{"one_hot([0, 5], 5)", "one_hot", E::kIndex, [=] { ag::one_hot(labels, 5); }};
  });
  // more shapes, dtypes and arguments
  add([=, &b] {
    Shape s{-1};
    s.push_back(-1);
    for (int64_t d : xs) s.push_back(d);
    return Invalid{fmt::format("expand({}, {})", X, s), "expand", E::kShape,
                   [=] { ag::expand(x, s); }};
  });
  add([=, &b] {
    Shape s{-2, 1};
    return Invalid{fmt::format("reshape({}, [-2, 1])", X), "reshape", E::kShape,
                   [=] { ag::reshape(x, s); }};
  });
  add([=, &b] {
    Tensor idx = ag::zeros({1, 1}, ag::int64);
    Tensor xx = r ? x : b.constant({2}, -1, 1);
    return Invalid{fmt::format("index_select({}, 0, index [1, 1])", r ? X : "[2]"), "index_select",
                   E::kShape, [=] { ag::index_select(xx, 0, idx); }};
  });
  add([=, &b] {
    Tensor w = b.constant({3, 2}, -1, 1);
    Tensor ids = ag::zeros({2}, ag::float64);
    return Invalid{"embedding([3, 2], float64 ids)", "embedding", E::kDtype,
                   [=] { ag::embedding(w, ids); }};
  });
  add([=, &b] {
    Shape ns = xs;
    ns.insert(0, 2);
    return Invalid{fmt::format("layer_norm({}, {})", X, ns), "layer_norm", E::kShape,
                   [=] { ag::layer_norm(x, ns); }};
  });
  add([=, &b] {
    Tensor q = ag::zeros({2, 3}, ag::int64), logits = b.constant({2, 3}, -1, 1);
    return Invalid{"cross_entropy_soft([2, 3], int64 [2, 3])", "cross_entropy_soft", E::kDtype,
                   [=] { ag::cross_entropy_soft(logits, q); }};
  });
  add([=, &b] {
    int64_t in = r ? xs[r - 1] : 2;
    Tensor xx = r ? x : b.constant({2}, -1, 1);
    Tensor w = b.constant({3, in}, -1, 1), bias = b.constant({4}, -1, 1);
    return Invalid{fmt::format("linear({}, [3, {}], bias [4])", r ? X : "[2]", in), "linear",
                   E::kShape, [=] { ag::linear(xx, w, bias); }};
  });
  add([=, &b] {
    Tensor a = b.constant({3}, -1, 1), c = b.constant({4}, -1, 1);
    return Invalid{"matmul([3], [4])", "matmul", E::kShape, [=] { ag::matmul(a, c); }};
  });
  add([=, &b] {
    Tensor a = ag::scalar_tensor(1.0, ag::float64), c = b.constant({4}, -1, 1);
    return Invalid{"outer([], [4])", "outer", E::kShape, [=] { ag::outer(a, c); }};
  });
  add([=, &b] {
    Tensor s0 = ag::scalar_tensor(1.0, ag::float64);
    bool tr = b.coin(0.5);
    return Invalid{tr ? "triu([])" : "select([], 0, 0)", tr ? "triu" : "select", E::kShape,
                   [=] { tr ? ag::triu(s0) : ag::select(s0, 0, 0); }};
  });
  add([=, &b] {
    Tensor s0 = ag::scalar_tensor(1.0, ag::float64);
    bool sp = b.coin(0.5);
    return Invalid{sp ? "split([], 1)" : "cat({[], []})", sp ? "split" : "cat", E::kShape, [=] {
                     if (sp)
                       ag::split(s0, 1);
                     else
                       ag::cat({s0, s0});
                   }};
  });
  add([=, &b] {
    Tensor f32 = b.constant(xs, -1, 1).to(ag::float32);
    return Invalid{fmt::format("stack({{{}, float32 {}}})", X, xs), "stack", E::kDtype, [=] {
                     ag::stack({x, f32});
                   }};
  });
  add([=, &b] {
    Tensor labels = ag::zeros({2}, ag::int64);
    int64_t c = -b.integer(1, 3);
    return Invalid{fmt::format("one_hot([2], {})", c), "one_hot", E::kValue,
                   [=] { ag::one_hot(labels, c); }};
  });
  add([=, &b] {
    int64_t corr = -b.integer(1, 3);
    return Invalid{fmt::format("std({}, all, correction {})", X, corr), "std", E::kValue,
                   [=] { ag::std(x, {}, corr); }};
  });
  add([=, &b] {
    Tensor i = ag::zeros(r ? xs : Shape{2}, ag::int64);
    bool drop = b.coin(0.5);
    return Invalid{fmt::format("{}(int64 {})", drop ? "dropout" : "layer_norm", i.shape()),
                   drop ? "dropout" : "layer_norm", E::kDtype, [=] {
                     if (drop)
                       ag::dropout(i, 0.5);
                     else
                       ag::layer_norm(i, Shape{i.shape().back()});
                   }};
  });
  add([=, &b] {
    Tensor i = ag::zeros(xs, ag::int64);
    return Invalid{fmt::format("int64 {}.mul_({})", xs, X), "mul_", E::kDtype, [=] {
                     Tensor c = i;
                     c.mul_(x.detach());
                   }};
  });
  if (can_clash) {
    add([=, &b] {
      return Invalid{fmt::format("clone({}).copy_({})", X, bad), "copy_", E::kShape, [=] {
                       Tensor c = x.detach().clone();
                       c.copy_(y);
                     }};
    });
  }
  add([=, &b] {
    Tensor m = ag::zeros(xs, ag::int64);
    return Invalid{fmt::format("masked_fill({}, int64 mask {}, 0)", X, xs), "masked_fill",
                   E::kDtype, [=] { ag::masked_fill(x, m, 0.0); }};
  });
  // factories and samplers with bad arguments
  {
    static const std::vector<std::pair<const char*, std::function<void()>>> factories = {
        {"randint", [] { ag::randint(3, 3, {2}); }},
        {"uniform", [] { ag::uniform({2}, 1.0, 0.0); }},
        {"normal", [] { ag::normal({2}, 0.0, -1.0); }},
        {"bernoulli", [] { ag::bernoulli(ag::full({2}, 1.5)); }},
        {"randperm", [] { ag::randperm(-1); }},
        {"arange", [] { ag::arange(0.0, 1.0, 0.0); }},
        {"linspace", [] { ag::linspace(0.0, 1.0, -1); }},
        {"eye", [] { ag::eye(-1); }},
        {"multinomial", [] { ag::multinomial(ag::full({2}, -1.0), 1); }},
        {"dropout", [] { ag::dropout(ag::ones({2}), std::nan("")); }},
    };
    add([=, &b] {
      auto& f = b.choose(factories);
      return Invalid{fmt::format("{}(bad argument)", f.first), f.first, E::kValue, f.second};
    });
  }
  if (r >= 1) {
    add([=, &b] {
      Shape s = xs;
      s.push_back(2);
      Tensor g = b.constant(s, -1, 1);
      bool gelu = b.coin(0.5);
      return Invalid{fmt::format("{}(g {}, {})", gelu ? "gelu_backward" : "relu_backward", s, X),
                     gelu ? "gelu_backward" : "relu_backward", E::kShape, [=] {
                       if (gelu)
                         ag::gelu_backward(g, x);
                       else
                         ag::relu_backward(g, x);
                     }};
    });
  }
  // misuse of backward
  add([=, &b] {
    Tensor leaf = b.constant(xs, -1, 1).requires_grad_();
    Tensor g = b.constant(bad == xs ? Shape{x.numel() + 1} : bad, -1, 1);
    return Invalid{fmt::format("(leaf {} * 2).backward(gradient {})", xs, g.shape()), "backward",
                   E::kShape, [=] { (leaf * 2.0).backward(g); }};
  });
  if (x.numel() != 1) {
    add([=, &b] {
      Tensor leaf = b.constant(xs, -1, 1).requires_grad_();
      return Invalid{fmt::format("(leaf {} * 2).backward()", xs), "backward", E::kAutograd,
                     [=] { (leaf * 2.0).backward(); }};
    });
  }
  add([=, &b] {
    Tensor leaf = b.constant(xs, -1, 1).requires_grad_();
    return Invalid{fmt::format("l = exp(leaf {}).sum(); l.backward(); l.backward()", xs),
                   "backward", E::kAutograd, [=] {
                     Tensor l = ag::exp(leaf).sum();
                     l.backward();
                     l.backward();
                   }};
  });
  add([=, &b] {
    Tensor c = b.constant(xs, -1, 1);
    return Invalid{fmt::format("constant {}.sum().backward()", xs), "backward", E::kAutograd,
                   [=] { c.sum().backward(); }};
  });
  add([=, &b] {
    Tensor i = ag::zeros(xs, ag::int64);
    return Invalid{fmt::format("int64 {}.requires_grad_()", xs), "requires_grad_", E::kDtype,
                   [=] { Tensor(i).requires_grad_(); }};
  });
  // in place on a leaf that requires grad
  add([=, &b] {
    Tensor leaf = b.constant(xs, -1, 1).requires_grad_();
    return Invalid{fmt::format("leaf {}.mul_(2)", xs), "mul_", E::kAutograd,
                   [=] { Tensor(leaf).mul_(2.0); }};
  });
  return b.choose(cases)();
}

// ---------------------------------------------------------------------------------------------
// running programs

struct Outcome {
  bool ok = true;
  std::string message;
};

Outcome check_valid(const Program& p, bool second_order, bool forward = true) {
  std::function<Tensor(const TensorList&)> fn = [&p](const TensorList& x) { return p.loss(x); };
  try {
    // loss.backward() fills each leaf's .grad with what ag::grad returns, in the leaf's shape and
    // dtype (the two entry points share the engine but not the accumulation into .grad).
    TensorList leaves;
    for (const Tensor& l : p.leaves) leaves.push_back(l.detach().clone().requires_grad_());
    Tensor loss = p.loss(leaves);
    TensorList g;
    if (loss.requires_grad()) {
      g = ag::grad({loss}, leaves, {}, true, false, true);
      loss.backward();
    }
    for (size_t i = 0; i < g.size(); ++i) {
      Tensor acc = leaves[i].grad();
      if (!g[i].defined() && !acc.defined()) continue;
      if (!g[i].defined() || !acc.defined() || !(acc.shape() == leaves[i].shape()) ||
          acc.dtype() != ag::float64 || !test::allclose(acc, g[i], 1e-12, 1e-12))
        return {false, fmt::format("leaf {}: .grad after backward() differs from ag::grad", i)};
    }
    ag::GradcheckReport r1 = ag::gradcheck(fn, p.leaves);
    if (!r1.ok) return {false, r1.to_string()};
    if (second_order) {
      ag::GradcheckReport r2 = ag::gradgradcheck(fn, p.leaves);
      if (!r2.ok) return {false, r2.to_string()};
    }
    if (forward) {
      ag::GradcheckOptions fast;
      fast.fast_mode = true;
      ag::GradcheckReport r3 = ag::gradcheck_forward(fn, p.leaves, fast);
      if (!r3.ok) return {false, r3.to_string()};
    }
  } catch (const std::exception& e) {
    return {false, fmt::format("raised while differentiating: {}", e.what())};
  }
  return {};
}

Outcome check_invalid(Builder& b, const Program& prefix, const Invalid& bad) {
  try {
    bad.run();
  } catch (const ag::Error& e) {
    std::string what = e.what();
    if (what.find(bad.op) == std::string::npos)
      return {false,
              fmt::format("`{}` raised \"{}\", which does not name `{}`", bad.text, what, bad.op)};
    if (!is_expected(e, bad.expect))
      return {false, fmt::format("`{}` raised \"{}\", expected a {}", bad.text, what,
                                 expect_name(bad.expect))};
    // The engine is still usable: the prefix differentiates.
    try {
      Tensor l = prefix.loss(prefix.leaves);
      if (l.defined() && l.requires_grad()) l.backward();
    } catch (const std::exception& e2) {
      return {false, fmt::format("after the error, the prefix failed: {}", e2.what())};
    }
    return {};
  } catch (const std::exception& e) {
    return {false, fmt::format("`{}` raised a bare std:: exception: {}", bad.text, e.what())};
  }
  (void)b;
  return {false, fmt::format("`{}` raised nothing (expected a {} naming `{}`)", bad.text,
                             expect_name(bad.expect), bad.op)};
}

}  // namespace

namespace {

// sin with a backward that is wrong by a factor 1.01: the kind of slip the checks must catch.
struct SlightlyWrongSin : ag::Function<SlightlyWrongSin> {
  static constexpr const char* name = "slightly_wrong_sin";
  static Tensor forward(ag::FunctionContext& ctx, const Tensor& x) {
    ctx.save_for_backward({x});
    return ag::sin(x);
  }
  static TensorList backward(ag::FunctionContext& ctx, const TensorList& g) {
    return {g[0] * ag::cos(ctx.saved_tensors()[0]) * 1.01};
  }
};

}  // namespace

TEST_CASE("the checks fail a program with a wrong gradient and a step that raises nothing") {
  // A generated program with one step appended that differentiates wrongly.
  Builder b(42);
  start_program(b);
  grow(b, 3);
  int x = b.pick();
  REQUIRE(b.apply("slightly_wrong_sin(x)", {x},
                  [](const TensorList& a) { return TensorList{SlightlyWrongSin::apply(a[0])}; }));
  int y = static_cast<int>(b.pool.size()) - 1;
  b.p.sinks = {y};
  b.p.weights = {b.constant(b.pool[y].shape(), 0.5, 1)};
  if (b.pool[y].numel() == 0) return;  // nothing to compare (the seed is fixed: it does not happen)
  Outcome o = check_valid(b.p, true);
  CHECK_FALSE(o.ok);
  CHECK(o.message.find("FAILED") != std::string::npos);
  // The same program with the correct op passes.
  b.p.steps.back().run = [](const TensorList& a) { return TensorList{ag::sin(a[0])}; };
  CHECK(check_valid(b.p, true).ok);
  // An invalid step that raises nothing, one that raises a bare std:: exception, one whose error
  // does not name the op.
  Invalid quiet{"quiet()", "quiet", Expect::kShape, [] {}};
  CHECK(check_invalid(b, b.p, quiet).message.find("raised nothing") != std::string::npos);
  Invalid bare{"bare()", "bare", Expect::kShape, [] { throw std::out_of_range("bare"); }};
  CHECK(check_invalid(b, b.p, bare).message.find("bare std::") != std::string::npos);
  Invalid anonymous{"named()", "named", Expect::kShape, [] { ag::fail<ag::ShapeError>("oops"); }};
  CHECK(check_invalid(b, b.p, anonymous).message.find("does not name") != std::string::npos);
  Invalid wrong_class{"cls()", "cls", Expect::kIndex, [] { ag::fail<ag::ShapeError>("cls"); }};
  CHECK(check_invalid(b, b.p, wrong_class).message.find("expected a IndexError") !=
        std::string::npos);
}

TEST_CASE("random valid programs pass gradcheck, gradgradcheck and gradcheck_forward") {
  Settings s = settings();
  install_crash_note();
  auto t0 = std::chrono::steady_clock::now();
  int failures = 0, second = 0, forward = 0, ran = 0;
  int64_t steps = 0;
  for (int i = 0; i < s.programs && failures < 5; ++i, ++ran) {
    uint64_t seed = s.first_seed + static_cast<uint64_t>(i);
    note_program("valid", seed);
    Program p;
    Outcome o;
    try {
      p = valid_program(seed);
    } catch (const Finding& f) {
      o = {false, f.what()};
    }
    if (o.ok) {
      if (s.verbose) fmt::print("{}", p.listing("valid"));
      bool gg = i % s.gradgrad_every == 0;
      bool fw = i % s.forward_every == 0;
      second += gg;
      forward += fw;
      steps += static_cast<int64_t>(p.steps.size());
      o = check_valid(p, gg, fw);
    }
    if (!o.ok) ++failures;
    CHECK_MESSAGE(o.ok, fmt::format("{}\n{}", o.message, p.listing("valid")));
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  fmt::print(
      "property: {} valid programs from seed {} ({} steps incl. leaves, gradgradcheck on {}, "
      "gradcheck_forward on {}) in {:.1f} s\n",
      ran, s.first_seed, steps, second, forward, secs);
}

TEST_CASE("random invalid programs raise the op's ag::Error") {
  Settings s = settings();
  install_crash_note();
  auto t0 = std::chrono::steady_clock::now();
  int failures = 0, ran = 0;
  for (int i = 0; i < s.programs && failures < 5; ++i, ++ran) {
    uint64_t seed = s.first_seed + static_cast<uint64_t>(i);
    note_program("invalid", seed);
    Outcome o;
    std::string listing;
    try {
      Builder b(seed ^ 0x1badbadULL);
      b.p.seed = seed;
      start_program(b);
      grow(b, static_cast<int>(b.integer(0, 3)));
      int x = b.pick();
      Invalid bad = invalid_step(b, x);
      for (size_t k = 0; k < b.pool.size(); ++k)
        if (b.uses[k] == 0) {
          b.p.sinks.push_back(static_cast<int>(k));
          b.p.weights.push_back(b.constant(b.pool[k].shape(), -1, 1));
        }
      listing = b.p.listing("invalid");
      listing += fmt::format("  then: {}   (expects a {} naming `{}`)\n", bad.text,
                             expect_name(bad.expect), bad.op);
      if (s.verbose) fmt::print("{}", listing);
      o = check_invalid(b, b.p, bad);
    } catch (const Finding& f) {
      o = {false, f.what()};
    }
    if (!o.ok) ++failures;
    CHECK_MESSAGE(o.ok, fmt::format("{}\n{}", o.message, listing));
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  fmt::print("property: {} invalid programs from seed {} in {:.1f} s\n", ran, s.first_seed, secs);
}
