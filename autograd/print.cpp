#include "autograd/print.h"

#include <cmath>
#include <ostream>

#include "autograd/kernels/dispatch.h"
#include "autograd/node.h"

namespace ag {

namespace {

struct Printer {
  const PrintOptions& opt;
  const Tensor& t;  // contiguous
  bool summarise;
  int width = 0;  // common width of every printed value
  std::string out;

  std::string value(int64_t i) const {
    return kernels::dispatch_all(t.dtype(), "print", [&]<class T>() -> std::string {
      T v = t.data<T>()[i];
      if constexpr (std::is_same_v<T, bool>)
        return v ? "true" : "false";
      else if constexpr (std::is_integral_v<T>)
        return fmt::format("{}", v);
      else {
        if (std::isnan(v)) return "nan";
        if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
        double a = std::fabs(static_cast<double>(v));
        if (a != 0 && (a >= 1e8 || a < 1e-4)) return fmt::format("{:.{}e}", v, opt.precision);
        return fmt::format("{:.{}f}", v, opt.precision);
      }
    });
  }

  // Calls f(index) on the entries of axis d that are shown; -1 stands for the "..." gap.
  template <class F>
  void shown(int64_t n, F&& f) const {
    if (!summarise || n <= 2 * opt.edge) {
      for (int64_t i = 0; i < n; ++i) f(i);
      return;
    }
    for (int64_t i = 0; i < opt.edge; ++i) f(i);
    f(-1);
    for (int64_t i = n - opt.edge; i < n; ++i) f(i);
  }

  void measure(int64_t d, int64_t base) {
    const Shape& s = t.shape();
    if (d == s.size()) {
      width = std::max<int>(width, static_cast<int>(value(base).size()));
      return;
    }
    int64_t stride = contiguous_strides(s)[d];
    shown(s[d], [&](int64_t i) {
      if (i >= 0) measure(d + 1, base + i * stride);
    });
  }

  // Prints axis d starting at flat offset `base`; `indent` columns precede nested rows.
  void print(int64_t d, int64_t base, int indent) {
    const Shape& s = t.shape();
    if (d == s.size()) {
      out += fmt::format("{:>{}}", value(base), width);
      return;
    }
    int64_t stride = contiguous_strides(s)[d];
    bool innermost = d + 1 == s.size();
    out += '[';
    bool first = true;
    shown(s[d], [&](int64_t i) {
      if (!first) {
        out += ',';
        if (innermost) {
          out += ' ';
        } else {
          out.append(static_cast<size_t>(s.size() - d - 1), '\n');
          out.append(static_cast<size_t>(indent + 1), ' ');
        }
      }
      first = false;
      if (i < 0)
        out += "...";
      else
        print(d + 1, base + i * stride, indent + 1);
    });
    out += ']';
  }
};

}  // namespace

std::string to_string(const Tensor& t, const PrintOptions& options) {
  if (!t.defined()) return "tensor(undefined)";
  Tensor c = t.detach().contiguous();
  Printer p{options, c, c.numel() > options.threshold, 0, {}};
  constexpr int kPrefix = 7;  // "tensor("
  std::string body;
  if (c.numel() == 0) {
    body = "[]";
  } else {
    p.measure(0, 0);
    p.print(0, 0, kPrefix);
    body = std::move(p.out);
  }
  std::string s =
      fmt::format("tensor({}, shape={}, dtype={}", body, t.shape(), dtype_name(t.dtype()));
  if (t.grad_fn())
    s += fmt::format(", grad_fn={}", t.grad_fn()->name());
  else if (t.requires_grad())
    s += ", requires_grad=true";
  return s + ")";
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << to_string(t); }

}  // namespace ag
