#include "autograd/gradcheck.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "autograd/engine.h"
#include "autograd/forward.h"
#include "autograd/ops/elementwise.h"
#include "autograd/ops/random.h"
#include "autograd/ops/reduce.h"

namespace ag {

namespace {

std::vector<int64_t> unravel(int64_t flat, const Shape& s) {
  std::vector<int64_t> idx(s.size());
  for (int64_t d = s.size() - 1; d >= 0; --d) {
    idx[d] = s[d] ? flat % s[d] : 0;
    if (s[d]) flat /= s[d];
  }
  return idx;
}

void check_float64(const TensorList& inputs, const char* op) {
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].defined() && is_floating(inputs[i].dtype()) && inputs[i].dtype() != float64)
      fail<DtypeError>(
          "{}: input {} is {}; finite differences need float64 (convert with .to(float64))", op, i,
          dtype_name(inputs[i].dtype()));
}

// Fresh leaves holding copies of the inputs (same requires_grad), so fn can be evaluated on
// perturbed values without touching the caller's tensors.
TensorList copies(const TensorList& inputs) {
  TensorList r;
  for (const Tensor& t : inputs) {
    if (!t.defined()) {
      r.push_back(t);
      continue;
    }
    Tensor c = t.detach().clone();
    if (t.requires_grad()) c.requires_grad_();
    r.push_back(c);
  }
  return r;
}

// fn evaluated with grad mode on (fn may itself differentiate), outputs detached to float64.
TensorList evaluate(const TensorFn& fn, const TensorList& x) {
  EnableGradGuard eg;
  TensorList out = fn(x);
  for (Tensor& t : out)
    if (t.defined()) t = t.detach().to(float64).contiguous();
  return out;
}

void consider(GradcheckReport& r, const GradcheckOptions& o, double a, double n, int64_t input,
              int64_t output, std::vector<int64_t> ii, std::vector<int64_t> oi, double& worst) {
  ++r.checked;
  // Entries are ranked by error / tolerance, so a passing report shows the closest call rather than
  // some entry where both sides are 0. A NaN never agrees, not even with a NaN.
  double err = std::abs(a - n), tol = o.atol + o.rtol * std::abs(n);
  bool bad = !(err <= tol) || std::isnan(a) || std::isnan(n);
  double ratio = tol > 0 ? err / tol : (err > 0 ? INFINITY : 0);
  if (bad && !(ratio > 1)) ratio = INFINITY;  // NaN
  if (r.checked == 1 || ratio > worst) {
    worst = ratio;
    r.input = input;
    r.output = output;
    r.input_index = std::move(ii);
    r.output_index = std::move(oi);
    r.analytic = a;
    r.numeric = n;
  }
  if (bad) r.ok = false;
}

// The analytic Jacobian of each output by reverse mode, one output element at a time:
// J[output][out elem][diff_x elems, concatenated] (empty rows for an output that does not require
// grad: no path, the gradient is zero).
std::vector<std::vector<std::vector<double>>> analytic_jacobian(const TensorList& outs,
                                                                const TensorList& diff_x) {
  std::vector<std::vector<std::vector<double>>> analytic(outs.size());
  for (size_t j = 0; j < outs.size(); ++j) {
    const Tensor& y = outs[j];
    if (!y.defined() || !is_floating(y.dtype())) continue;
    analytic[j].resize(y.numel());
    for (int64_t r = 0; r < y.numel(); ++r) {
      std::vector<double>& row = analytic[j][r];
      if (!y.requires_grad()) continue;  // no path: analytic gradient is zero
      Tensor v = zeros(y.shape(), y.dtype());
      v.data<double>()[r] = 1.0;
      TensorList g = grad({y}, diff_x, {v}, /*retain_graph=*/true, false, /*allow_unused=*/true);
      for (size_t k = 0; k < g.size(); ++k) {
        int64_t n = diff_x[k].numel();
        if (!g[k].defined()) {
          row.insert(row.end(), n, 0.0);
        } else {
          auto vals = g[k].detach().to_vector<double>();
          row.insert(row.end(), vals.begin(), vals.end());
        }
      }
    }
  }
  return analytic;
}

GradcheckReport full_check(const TensorFn& fn, const TensorList& inputs,
                           const GradcheckOptions& o) {
  GradcheckReport rep;
  rep.note = "gradcheck";
  double worst = -INFINITY;
  TensorList x = copies(inputs);
  TensorList outs;
  {
    EnableGradGuard eg;
    outs = fn(x);
  }
  std::vector<size_t> diff_inputs;
  for (size_t i = 0; i < x.size(); ++i)
    if (x[i].defined() && x[i].requires_grad()) diff_inputs.push_back(i);
  if (diff_inputs.empty()) fail<ValueError>("gradcheck: no input requires grad");
  TensorList diff_x;
  for (size_t i : diff_inputs) diff_x.push_back(x[i]);

  auto analytic = analytic_jacobian(outs, diff_x);
  // Numeric Jacobian by central differences, one input element at a time.
  int64_t col0 = 0;
  for (size_t k = 0; k < diff_inputs.size(); ++k) {
    size_t i = diff_inputs[k];
    int64_t n = inputs[i].numel();
    for (int64_t e = 0; e < n; ++e) {
      TensorList xp = copies(inputs), xm = copies(inputs);
      xp[i].data<double>()[e] += o.eps;
      xm[i].data<double>()[e] -= o.eps;
      TensorList fp = evaluate(fn, xp), fm = evaluate(fn, xm);
      for (size_t j = 0; j < outs.size(); ++j) {
        if (!outs[j].defined() || !is_floating(outs[j].dtype())) continue;
        const double* a = fp[j].data<double>();
        const double* b = fm[j].data<double>();
        for (int64_t r = 0; r < outs[j].numel(); ++r) {
          double num = (a[r] - b[r]) / (2 * o.eps);
          double an = analytic[j][r].empty() ? 0.0 : analytic[j][r][col0 + e];
          consider(rep, o, an, num, static_cast<int64_t>(i), static_cast<int64_t>(j),
                   unravel(e, inputs[i].shape()), unravel(r, outs[j].shape()), worst);
        }
      }
    }
    col0 += n;
  }
  return rep;
}

GradcheckReport fast_check(const TensorFn& fn, const TensorList& inputs,
                           const GradcheckOptions& o) {
  GradcheckReport rep;
  rep.note = "gradcheck (fast mode)";
  double worst = -INFINITY;
  Generator gen(o.seed);
  for (int p = 0; p < o.projections; ++p) {
    TensorList x = copies(inputs);
    TensorList outs;
    {
      EnableGradGuard eg;
      outs = fn(x);
    }
    TensorList diff_x, u;
    std::vector<size_t> idx;
    for (size_t i = 0; i < x.size(); ++i)
      if (x[i].defined() && x[i].requires_grad()) {
        diff_x.push_back(x[i]);
        u.push_back(randn(x[i].shape(), float64, &gen));
        idx.push_back(i);
      }
    if (diff_x.empty()) fail<ValueError>("gradcheck: no input requires grad");
    TensorList v, ys;
    for (const Tensor& y : outs)
      if (y.defined() && is_floating(y.dtype())) {
        ys.push_back(y);
        v.push_back(randn(y.shape(), float64, &gen));
      }
    // analytic: v^T J u
    double analytic = 0;
    TensorList ys_rg, v_rg;
    for (size_t j = 0; j < ys.size(); ++j)
      if (ys[j].requires_grad()) {
        ys_rg.push_back(ys[j]);
        v_rg.push_back(v[j]);
      }
    if (!ys_rg.empty()) {
      TensorList g = grad(ys_rg, diff_x, v_rg, false, false, true);
      for (size_t k = 0; k < g.size(); ++k)
        if (g[k].defined()) analytic += sum(mul(g[k].detach().to(float64), u[k])).item();
    }
    // numeric: v . (f(x + eps u) - f(x - eps u)) / 2 eps
    TensorList xp = copies(inputs), xm = copies(inputs);
    for (size_t k = 0; k < idx.size(); ++k) {
      NoGradGuard ng;
      xp[idx[k]].add_(u[k], o.eps);
      xm[idx[k]].add_(u[k], -o.eps);
    }
    TensorList fp = evaluate(fn, xp), fm = evaluate(fn, xm);
    double numeric = 0;
    size_t j = 0;
    for (size_t q = 0; q < outs.size(); ++q) {
      if (!outs[q].defined() || !is_floating(outs[q].dtype())) continue;
      numeric += sum(mul(sub(fp[q], fm[q]), v[j])).item() / (2 * o.eps);
      ++j;
    }
    consider(rep, o, analytic, numeric, -1, -1, {}, {}, worst);
  }
  return rep;
}

// fn on `inputs` with input idx[k] made a dual of tangent v[k]; returns the outputs' tangents as
// float64 (zeros for a floating output without tangent) and, in `outs`, the outputs.
TensorList tangents_of(const TensorFn& fn, const TensorList& inputs, const std::vector<size_t>& idx,
                       const TensorList& v, TensorList* outs) {
  fwd::DualLevel level;
  TensorList x = copies(inputs);
  for (size_t k = 0; k < idx.size(); ++k) x[idx[k]] = fwd::make_dual(x[idx[k]], v[k]);
  TensorList y;
  {
    EnableGradGuard eg;
    y = fn(x);
  }
  TensorList t;
  for (const Tensor& o : y) {
    if (!o.defined() || !is_floating(o.dtype())) {
      t.push_back(Tensor());
      continue;
    }
    Tensor tan = fwd::unpack_dual(o).tangent;
    t.push_back(tan.defined() ? tan.detach().to(float64).contiguous() : zeros(o.shape(), float64));
  }
  if (outs) *outs = std::move(y);
  return t;
}

// <a, b> over the floating entries of two lists.
double dot(const TensorList& a, const TensorList& b) {
  double s = 0;
  for (size_t j = 0; j < a.size() && j < b.size(); ++j)
    if (a[j].defined() && b[j].defined())
      s += sum(mul(a[j].detach().to(float64), b[j].detach().to(float64))).item();
  return s;
}

// (f(x + eps v) - f(x - eps v)) / 2 eps, input idx[k] moved along v[k] (undefined for a
// non-floating output).
TensorList central_difference(const TensorFn& fn, const TensorList& inputs,
                              const std::vector<size_t>& idx, const TensorList& v, double eps) {
  TensorList xp = copies(inputs), xm = copies(inputs);
  for (size_t k = 0; k < idx.size(); ++k) {
    NoGradGuard ng;
    xp[idx[k]].add_(v[k], eps);
    xm[idx[k]].add_(v[k], -eps);
  }
  TensorList fp = evaluate(fn, xp), fm = evaluate(fn, xm), d;
  for (size_t j = 0; j < fp.size(); ++j)
    d.push_back(fp[j].defined() && is_floating(fp[j].dtype())
                    ? mul(sub(fp[j], fm[j]), 1.0 / (2 * eps))
                    : Tensor());
  return d;
}

// forward_check's step (1): every JVP column (one input element at a time) against central
// differences.
void check_jvp_columns(GradcheckReport& rep, const TensorFn& fn, const TensorList& inputs,
                       const std::vector<size_t>& idx, const GradcheckOptions& o, double& worst) {
  for (size_t k = 0; k < idx.size(); ++k) {
    for (int64_t e = 0; e < inputs[idx[k]].numel(); ++e) {
      TensorList v;
      for (size_t i : idx) v.push_back(zeros(inputs[i].shape(), float64));
      v[k].data<double>()[e] = 1.0;
      TensorList jv = tangents_of(fn, inputs, idx, v, nullptr);
      TensorList num = central_difference(fn, inputs, idx, v, o.eps);
      for (size_t j = 0; j < jv.size(); ++j) {
        if (!jv[j].defined() || !num[j].defined()) continue;
        const double* a = jv[j].data<double>();
        Tensor nc = num[j].contiguous();
        const double* n = nc.data<double>();
        for (int64_t r = 0; r < jv[j].numel(); ++r)
          consider(rep, o, a[r], n[r], static_cast<int64_t>(idx[k]), static_cast<int64_t>(j),
                   unravel(e, inputs[idx[k]].shape()), unravel(r, jv[j].shape()), worst);
      }
    }
  }
}

// <J^T u, v> from reverse mode: fn recorded on copies of the inputs (outside any dual level), its
// outputs' gradients against u pulled back to inputs idx[k] and dotted with v[k].
double reverse_dot(const TensorFn& fn, const TensorList& inputs, const std::vector<size_t>& idx,
                   const TensorList& u, const TensorList& v) {
  TensorList x = copies(inputs), y;
  {
    EnableGradGuard eg;
    y = fn(x);
  }
  TensorList ys, us, diff;
  for (size_t j = 0; j < y.size(); ++j)
    if (y[j].defined() && y[j].requires_grad() && u[j].defined()) {
      ys.push_back(y[j]);
      us.push_back(u[j].to(y[j].dtype()));
    }
  for (size_t i : idx) diff.push_back(x[i]);
  if (ys.empty()) return 0;
  return dot(grad(ys, diff, us, false, false, /*allow_unused=*/true), v);
}

GradcheckReport forward_check(const TensorFn& fn, const TensorList& inputs,
                              const GradcheckOptions& o) {
  GradcheckReport rep;
  rep.note = o.fast_mode ? "gradcheck_forward (fast mode)" : "gradcheck_forward";
  double worst = -INFINITY;
  std::vector<size_t> idx;
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].defined() && inputs[i].requires_grad()) idx.push_back(i);
  if (idx.empty()) fail<ValueError>("gradcheck_forward: no input requires grad");
  Generator gen(o.seed + 29);
  // (1) JVPs against central differences.
  if (!o.fast_mode) check_jvp_columns(rep, fn, inputs, idx, o, worst);
  for (int p = 0; p < o.projections; ++p) {
    TensorList v;
    for (size_t i : idx) v.push_back(randn(inputs[i].shape(), float64, &gen));
    TensorList outs;
    TensorList jv = tangents_of(fn, inputs, idx, v, &outs);
    TensorList u;
    for (const Tensor& t : jv)
      u.push_back(t.defined() ? randn(t.shape(), float64, &gen) : Tensor());
    if (o.fast_mode)
      consider(rep, o, dot(u, jv), dot(u, central_difference(fn, inputs, idx, v, o.eps)), -1, -1,
               {}, {}, worst);
    // (2) <u, J v> against <J^T u, v> from reverse mode (outputs recorded outside the level).
    consider(rep, o, dot(u, jv), reverse_dot(fn, inputs, idx, u, v), -1, -1, {}, {}, worst);
  }
  return rep;
}

TensorFn wrap(const std::function<Tensor(const TensorList&)>& fn) {
  return [fn](const TensorList& x) { return TensorList{fn(x)}; };
}

}  // namespace

std::string GradcheckReport::to_string() const {
  std::string s = fmt::format("{}: {} ({} entries compared)", note.empty() ? "gradcheck" : note,
                              ok ? "passed" : "FAILED", checked);
  if (input >= 0)
    s += fmt::format(
        "; worst entry: d output {}{} / d input {}{}: analytic {:.10g}, numeric {:.10g}", output,
        fmt::format("{}", output_index), input, fmt::format("{}", input_index), analytic, numeric);
  else if (checked)
    s += fmt::format("; worst projection: analytic {:.10g}, numeric {:.10g}", analytic, numeric);
  return s;
}

GradcheckReport gradcheck(const TensorFn& fn, const TensorList& inputs, const GradcheckOptions& o) {
  check_float64(inputs, "gradcheck");
  GradcheckReport rep = o.fast_mode ? fast_check(fn, inputs, o) : full_check(fn, inputs, o);
  if (!o.check_forward_ad) return rep;
  GradcheckReport f = forward_check(fn, inputs, o);
  // The worst entry shown is the reverse check's when it failed, else the forward check's.
  GradcheckReport both = rep.ok ? f : rep;
  both.ok = rep.ok && f.ok;
  both.checked = rep.checked + f.checked;
  both.note = rep.note + " + " + f.note;
  return both;
}

GradcheckReport gradcheck_forward(const TensorFn& fn, const TensorList& inputs,
                                  const GradcheckOptions& o) {
  check_float64(inputs, "gradcheck_forward");
  return forward_check(fn, inputs, o);
}

GradcheckReport gradcheck_forward(const std::function<Tensor(const TensorList&)>& fn,
                                  const TensorList& inputs, const GradcheckOptions& o) {
  return gradcheck_forward(wrap(fn), inputs, o);
}

GradcheckReport gradcheck(const std::function<Tensor(const TensorList&)>& fn,
                          const TensorList& inputs, const GradcheckOptions& o) {
  return gradcheck(wrap(fn), inputs, o);
}

GradcheckReport gradgradcheck(const TensorFn& fn, const TensorList& inputs,
                              const GradcheckOptions& o) {
  check_float64(inputs, "gradgradcheck");
  TensorList x = copies(inputs);
  TensorList outs;
  {
    EnableGradGuard eg;
    outs = fn(x);
  }
  Generator gen(o.seed + 17);
  TensorList all = inputs;
  std::vector<size_t> out_pos;
  for (size_t j = 0; j < outs.size(); ++j)
    if (outs[j].defined() && outs[j].requires_grad()) {
      all.push_back(randn(outs[j].shape(), float64, &gen).requires_grad_());
      out_pos.push_back(j);
    }
  size_t nin = inputs.size();
  TensorFn first = [fn, nin, out_pos](const TensorList& a) {
    TensorList xs(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(nin));
    TensorList outs = fn(xs);
    TensorList ys, vs;
    for (size_t k = 0; k < out_pos.size(); ++k) {
      if (!outs[out_pos[k]].requires_grad()) continue;
      ys.push_back(outs[out_pos[k]]);
      vs.push_back(a[nin + k]);
    }
    TensorList diff;
    for (const Tensor& t : xs)
      if (t.defined() && t.requires_grad()) diff.push_back(t);
    TensorList g;
    if (!ys.empty()) g = grad(ys, diff, vs, true, /*create_graph=*/true, /*allow_unused=*/true);
    TensorList r;
    for (size_t k = 0; k < diff.size(); ++k)
      r.push_back(k < g.size() && g[k].defined() ? g[k] : zeros_like(diff[k]));
    return r;
  };
  GradcheckReport rep = gradcheck(first, all, o);
  rep.note = o.fast_mode ? "gradgradcheck (fast mode)" : "gradgradcheck";
  return rep;
}

GradcheckReport gradgradcheck(const std::function<Tensor(const TensorList&)>& fn,
                              const TensorList& inputs, const GradcheckOptions& o) {
  return gradgradcheck(wrap(fn), inputs, o);
}

// ---- check_tape ----

namespace {

// Tape checking off while nodes are replayed: the replays need no replay data of their own.
struct TapeCheckingOff {
  bool prev = is_tape_checking();
  TapeCheckingOff() { set_tape_checking(false); }
  ~TapeCheckingOff() { set_tape_checking(prev); }
};

std::string shapes_string(const std::vector<Shape>& shapes) {
  std::string s;
  for (const Shape& sh : shapes) {
    if (!s.empty()) s += ' ';
    s += fmt::format("{}", sh);
  }
  return s.empty() ? "-" : s;
}

// Checks one node alone: gradcheck of x -> node.replay(x) at its recorded inputs, in float64.
// Inputs that had no gradient edge (constants of this op) stay constants.
TapeNodeReport check_node(const Node& node, const GradcheckOptions& o, bool& checkable) {
  TapeNodeReport r;
  r.op = node.name();
  r.sequence_nr = node.sequence_nr();
  r.recorded_at = node.diagnostics.recorded_at;
  TensorList x;
  bool any_diff = false;
  for (size_t i = 0; i < node.tape_check.replay_inputs.size(); ++i) {
    const Tensor& t = node.tape_check.replay_inputs[i];
    r.input_shapes.push_back(t.defined() ? t.shape() : Shape{});
    if (!t.defined() || !is_floating(t.dtype())) {
      x.push_back(t);
      continue;
    }
    Tensor c = t.detach().to(float64);
    if (node.needs_input_grad(i)) {
      c.requires_grad_();
      any_diff = true;
    }
    x.push_back(c);
  }
  checkable = any_diff;
  if (!any_diff) return r;
  TensorFn replay = [&node](const TensorList& in) { return node.replay(in); };
  try {
    // A node that casts to float32 (`to`) cannot be checked by finite differences: skip it.
    TensorList trial;
    {
      NoGradGuard ng;
      trial = replay(x);
    }
    for (const Tensor& y : trial)
      if (y.defined() && is_floating(y.dtype()) && y.dtype() != float64) checkable = false;
    if (!checkable) return r;
    r.report = gradcheck(replay, x, o);
  } catch (const Error& e) {
    r.report.ok = false;
    r.report.note = fmt::format("replay failed: {}", e.what());
  }
  return r;
}

}  // namespace

const TapeNodeReport* TapeReport::first_failure() const {
  for (const TapeNodeReport& n : nodes)
    if (!n.report.ok) return &n;
  return nullptr;
}

std::string TapeReport::to_string() const {
  std::string s = fmt::format("check_tape: {} ({} nodes checked, {} skipped without replay data)\n",
                              ok ? "passed" : "FAILED", nodes_checked, nodes_skipped);
  std::vector<std::string> shapes;
  size_t op_w = 2, shape_w = 12, at_w = 11;
  for (const TapeNodeReport& n : nodes) {
    shapes.push_back(shapes_string(n.input_shapes));
    op_w = std::max(op_w, n.op.size());
    shape_w = std::max(shape_w, shapes.back().size());
    at_w = std::max(at_w, n.recorded_at.empty() ? size_t{1} : n.recorded_at.size());
  }
  s += fmt::format("  {:>6}  {:<{}}  {:<{}}  {:<{}}  {}\n", "seq", "op", op_w, "input shapes",
                   shape_w, "recorded at", at_w, "result");
  for (size_t i = 0; i < nodes.size(); ++i) {
    const TapeNodeReport& n = nodes[i];
    std::string result;
    if (n.report.ok)
      result = fmt::format("ok ({} compared)", n.report.checked);
    else if (n.report.checked == 0)
      result = "FAILED: " + n.report.note;
    else if (n.report.input >= 0)
      result =
          fmt::format("FAILED: d out {}{} / d in {}{}: analytic {:.6g}, numeric {:.6g}",
                      n.report.output, fmt::format("{}", n.report.output_index), n.report.input,
                      fmt::format("{}", n.report.input_index), n.report.analytic, n.report.numeric);
    else
      result = fmt::format("FAILED: projection analytic {:.6g}, numeric {:.6g}", n.report.analytic,
                           n.report.numeric);
    s += fmt::format("  {:>6}  {:<{}}  {:<{}}  {:<{}}  {}\n", fmt::format("#{}", n.sequence_nr),
                     n.op, op_w, shapes[i], shape_w, n.recorded_at.empty() ? "-" : n.recorded_at,
                     at_w, result);
  }
  if (const TapeNodeReport* f = first_failure()) {
    s += fmt::format("first failure: {} (#{}) on inputs {}, recorded at {}\n  {}", f->op,
                     f->sequence_nr, shapes_string(f->input_shapes),
                     f->recorded_at.empty() ? "an unknown place (built-in op)" : f->recorded_at,
                     f->report.to_string());
  } else if (!s.empty() && s.back() == '\n') {
    s.pop_back();
  }
  return s;
}

TapeReport check_tape(const Tensor& loss, const GradcheckOptions& o) {
  if (!loss.defined()) fail<AutogradError>("check_tape: the loss is undefined");
  if (!loss.grad_fn())
    fail<AutogradError>(
        "check_tape: the tensor of shape {} has no grad_fn, so there is no tape behind it (record "
        "it with grad mode on from inputs that require grad)",
        loss.shape());
  // Every node behind the loss, without recursion; then recording order.
  std::vector<Node*> order, stack{loss.grad_fn().get()};
  std::unordered_set<Node*> seen{stack.back()};
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    if (!dynamic_cast<AccumulateGrad*>(n)) order.push_back(n);
    for (const Edge& e : n->tape.next_edges)
      if (e.fn && seen.insert(e.fn.get()).second) stack.push_back(e.fn.get());
  }
  std::sort(order.begin(), order.end(),
            [](const Node* a, const Node* b) { return a->sequence_nr() < b->sequence_nr(); });

  TapeCheckingOff off;
  TapeReport rep;
  for (Node* n : order) {
    bool checkable = false;
    TapeNodeReport r;
    if (n->can_replay()) r = check_node(*n, o, checkable);
    if (!checkable) {
      ++rep.nodes_skipped;
      continue;
    }
    ++rep.nodes_checked;
    rep.ok = rep.ok && r.report.ok;
    rep.nodes.push_back(std::move(r));
  }
  return rep;
}

TapeReport check_tape(const std::function<Tensor(const TensorList&)>& fn, const TensorList& inputs,
                      const GradcheckOptions& o) {
  Tensor loss;
  {
    TapeCheckGuard tape;
    EnableGradGuard grad;
    loss = fn(inputs);
  }
  return check_tape(loss, o);
}

}  // namespace ag
