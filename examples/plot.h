// A tiny SVG line-plot writer for the examples (header-only, no dependencies beyond fmt).
//
//   plot::Figure fig{"loss vs epoch", "epoch", "loss"};
//   fig.log_y = true;
//   auto& s = fig.add("mini-batch 32");
//   s.x = {...}; s.y = {...};
//   fig.save("loss.svg");
//
// Axes get "nice" ticks (1, 2, 5 x 10^k on a linear axis, powers of ten on a log axis), each series
// a colour (its own, or the next from a fixed palette) and an entry in the legend, which is drawn
// to the right of the plot area (the image is wider by its width); short series also get point
// markers. Non-finite points (and non-positive ones on a log axis) are skipped. The output is
// deterministic, so files regenerated from the same numbers do not change.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <filesystem>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace plot {

struct Series {
  std::string name;
  std::vector<double> x, y;
  bool dashed = false;
  std::string color;  // CSS colour; empty: the palette's colour for the series' position
};

struct Figure {
  explicit Figure(std::string title = "", std::string xlabel = "", std::string ylabel = "")
      : title(std::move(title)), xlabel(std::move(xlabel)), ylabel(std::move(ylabel)) {}
  std::string title, xlabel, ylabel;
  bool log_x = false, log_y = false;
  int width = 720, height = 420;
  std::deque<Series> series;  // a deque: references from add() stay valid

  Series& add(std::string name, bool dashed = false, std::string color = "") {
    series.push_back(Series{std::move(name), {}, {}, dashed, std::move(color)});
    return series.back();
  }
  std::string svg() const;
  void save(const std::string& path) const;
};

namespace detail {

inline const char* color(size_t i) {
  static const char* palette[] = {"#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed",
                                  "#0891b2", "#db2777", "#4b5563", "#65a30d", "#9333ea"};
  return palette[i % (sizeof(palette) / sizeof(palette[0]))];
}

inline std::string escape(const std::string& s) {
  std::string r;
  for (char c : s) {
    if (c == '<') {
      r += "&lt;";
    } else if (c == '>') {
      r += "&gt;";
    } else if (c == '&') {
      r += "&amp;";
    } else if (c == '"') {
      r += "&quot;";
    } else {
      r += c;
    }
  }
  return r;
}

// One axis: maps data values (through log10 if log) to pixels, and chooses ticks.
struct Axis {
  bool log = false;
  double lo = 0, hi = 1;  // in transformed units (log10 for a log axis)
  double p0 = 0, p1 = 1;  // pixel positions of lo and hi
  double t(double v) const { return log ? std::log10(v) : v; }
  bool usable(double v) const { return std::isfinite(v) && (!log || v > 0); }
  double px(double v) const { return p0 + (t(v) - lo) / (hi - lo) * (p1 - p0); }

  // Ticks as data values; widens [lo, hi] to whole tick steps.
  std::vector<double> ticks() {
    std::vector<double> r;
    if (log) {
      lo = std::floor(lo), hi = std::ceil(hi);
      if (hi <= lo) hi = lo + 1;
      int step = std::max(1, static_cast<int>(std::ceil((hi - lo) / 8)));
      for (double e = lo; e <= hi + 1e-9; e += step) {
        r.push_back(std::pow(10.0, e));
        if (hi - lo <= 3 && e < hi - 1e-9)  // few decades: also 2 and 5 times each power
          for (double f : {2.0, 5.0}) r.push_back(f * std::pow(10.0, e));
      }
      return r;
    }
    double span = hi - lo;
    double raw = span / 5, mag = std::pow(10.0, std::floor(std::log10(raw)));
    double step = mag * (raw / mag < 1.5 ? 1 : raw / mag < 3.5 ? 2 : raw / mag < 7.5 ? 5 : 10);
    lo = std::floor(lo / step + 1e-9) * step, hi = std::ceil(hi / step - 1e-9) * step;
    for (double v = lo; v <= hi + step * 1e-6; v += step)
      r.push_back(std::abs(v) < step * 1e-9 ? 0 : v);
    return r;
  }
};

inline std::string tick_label(double v, bool log) {
  if (log) {
    int e = static_cast<int>(std::lround(std::log10(v)));
    bool power = std::abs(std::log10(v) - e) < 1e-9;
    if (!power || (e >= -3 && e <= 3)) return fmt::format("{:g}", v);
    return fmt::format("1e{}", e);
  }
  return fmt::format("{:.6g}", v);
}

}  // namespace detail

inline std::string Figure::svg() const {
  using detail::Axis;
  const double left = 70, right = 20, top = title.empty() ? 20 : 40, bottom = 50;
  // The legend sits to the right of the plot area, so it never hides a curve.
  size_t longest = 0;
  for (const Series& s : series) longest = std::max(longest, s.name.size());
  const double legend_w = series.empty() ? 0 : 44 + 6.6 * static_cast<double>(longest);
  const double total_w = width + legend_w;
  auto colour = [&](size_t k) {
    return series[k].color.empty() ? std::string(detail::color(k)) : series[k].color;
  };
  Axis ax{log_x}, ay{log_y};
  // Data ranges (transformed) over usable points.
  double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin, ymin = xmin, ymax = -xmin;
  for (const Series& s : series)
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i)
      if (ax.usable(s.x[i]) && ay.usable(s.y[i])) {
        xmin = std::min(xmin, ax.t(s.x[i])), xmax = std::max(xmax, ax.t(s.x[i]));
        ymin = std::min(ymin, ay.t(s.y[i])), ymax = std::max(ymax, ay.t(s.y[i]));
      }
  if (!(xmin <= xmax)) xmin = 0, xmax = 1, ymin = 0, ymax = 1;  // nothing to draw
  if (xmax - xmin < 1e-12) xmin -= 0.5, xmax += 0.5;
  if (ymax - ymin < 1e-12) {
    double pad = log_y ? 0.5 : std::max(1e-12, std::abs(ymax) * 0.1);
    ymin -= pad, ymax += pad;
  }
  ax.lo = xmin, ax.hi = xmax, ay.lo = ymin, ay.hi = ymax;
  std::vector<double> xt = ax.ticks(), yt = ay.ticks();
  ax.p0 = left, ax.p1 = width - right;
  ay.p0 = height - bottom, ay.p1 = top;

  std::string o = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0:.0f}\" height=\"{1}\" "
      "viewBox=\"0 0 {0:.0f} {1}\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n"
      "<rect width=\"{0:.0f}\" height=\"{1}\" fill=\"white\"/>\n",
      total_w, height);
  if (!title.empty())
    o += fmt::format(
        "<text x=\"{:.1f}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        (left + width - right) / 2, detail::escape(title));
  // Grid and tick labels.
  for (double v : xt) {
    double x = ax.px(v);
    o += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"#e5e7eb\"/>\n"
        "<text x=\"{0:.1f}\" y=\"{3:.1f}\" text-anchor=\"middle\" fill=\"#374151\">{4}</text>\n",
        x, ay.p0, ay.p1, ay.p0 + 16, detail::tick_label(v, log_x));
  }
  for (double v : yt) {
    double y = ay.px(v);
    o += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{2:.1f}\" y2=\"{1:.1f}\" stroke=\"#e5e7eb\"/>\n"
        "<text x=\"{3:.1f}\" y=\"{4:.1f}\" text-anchor=\"end\" fill=\"#374151\">{5}</text>\n",
        ax.p0, y, ax.p1, ax.p0 - 6, y + 4, detail::tick_label(v, log_y));
  }
  o += fmt::format(
      "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"none\" "
      "stroke=\"#6b7280\"/>\n",
      ax.p0, ay.p1, ax.p1 - ax.p0, ay.p0 - ay.p1);
  o += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n",
                   (ax.p0 + ax.p1) / 2, static_cast<double>(height) - 12, detail::escape(xlabel));
  o += fmt::format(
      "<text transform=\"translate(16 {:.1f}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
      (ay.p0 + ay.p1) / 2, detail::escape(ylabel));
  // Series.
  for (size_t k = 0; k < series.size(); ++k) {
    const Series& s = series[k];
    std::string pts;
    size_t n = 0, count = std::min(s.x.size(), s.y.size());
    for (size_t i = 0; i < count; ++i)
      if (ax.usable(s.x[i]) && ay.usable(s.y[i])) {
        pts += fmt::format("{}{:.1f},{:.1f}", n++ ? " " : "", ax.px(s.x[i]), ay.px(s.y[i]));
      }
    if (n == 0) continue;
    o += fmt::format(
        "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.8\"{} stroke-linejoin=\"round\" "
        "points=\"{}\"/>\n",
        colour(k), s.dashed ? " stroke-dasharray=\"6 4\"" : "", pts);
    if (count <= 40)
      for (size_t i = 0; i < count; ++i)
        if (ax.usable(s.x[i]) && ay.usable(s.y[i]))
          o += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.8\" fill=\"{}\"/>\n",
                           ax.px(s.x[i]), ay.px(s.y[i]), colour(k));
  }
  // Legend, right of the plot area.
  for (size_t k = 0; k < series.size(); ++k) {
    double x0 = ax.p1 + 14, y = ay.p1 + 10 + 18.0 * static_cast<double>(k);
    o += fmt::format(
        "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" "
        "stroke-width=\"2.5\"{}/>\n<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n",
        x0, y - 4, x0 + 22, y - 4, colour(k), series[k].dashed ? " stroke-dasharray=\"6 4\"" : "",
        x0 + 28, y, detail::escape(series[k].name));
  }
  o += "</svg>\n";
  return o;
}

inline void write_text(const std::string& path, const std::string& text) {
  std::filesystem::path p(path);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
  std::ofstream f(path, std::ios::binary);
  f << text;
  if (!f) throw std::runtime_error("cannot write " + path);
}

inline void Figure::save(const std::string& path) const { write_text(path, svg()); }

// Minimal CSV writer: a header and rows of cells (numbers formatted with up to 10 significant
// digits).
class Csv {
 public:
  explicit Csv(std::vector<std::string> header) { row_strings(header); }
  template <class... Cells>
  void row(const Cells&... cells) {
    std::vector<std::string> r{cell(cells)...};
    row_strings(r);
  }
  void save(const std::string& path) const { write_text(path, text_); }
  const std::string& text() const { return text_; }

 private:
  static std::string cell(const std::string& s) { return s; }
  static std::string cell(const char* s) { return s; }
  template <class T>
  static std::string cell(const T& v) {
    if constexpr (std::is_floating_point_v<T>) {
      return fmt::format("{:.10g}", v);
    } else {
      return fmt::format("{}", v);
    }
  }
  void row_strings(const std::vector<std::string>& r) {
    for (size_t i = 0; i < r.size(); ++i) text_ += (i ? "," : "") + r[i];
    text_ += '\n';
  }
  std::string text_;
};

}  // namespace plot
