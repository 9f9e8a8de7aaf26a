#!/usr/bin/env python3
"""Turns what the teaching demo wrote into a page and into the tutorial's output blocks.

  demo_report.py page DIR               DIR/index.html: one self-contained page (inline SVG, no
                                        network) from DIR/*.txt, *.svg, *.csv and tape.dot
  demo_report.py tutorial DIR TUTORIAL  rewrites every <!-- name --> ... <!-- /name --> block of
                                        TUTORIAL with the matching excerpt of DIR's output

DIR is what scripts/demo wrote (backprop_by_hand, gd_variants, gradient_flow, custom_op and newton
run into it). The tape is rendered with graphviz (`dot -Tsvg`), which must be installed.
"""
import csv
import datetime
import html
import os
import re
import subprocess
import sys

# ------------------------------------------------------------------------------------------------
# Reading the programs' output.


def read(dir_, name):
    path = os.path.join(dir_, name)
    if not os.path.exists(path):
        raise SystemExit(f"demo_report: {path} is missing (run scripts/demo first)")
    with open(path, encoding="utf-8") as f:
        return f.read()


def lines_of(dir_, name):
    return read(dir_, name).rstrip("\n").split("\n")


def paragraph(lines, start):
    """The lines from `start` up to (not including) the next blank line."""
    end = start
    while end < len(lines) and lines[end].strip():
        end += 1
    return lines[start:end]


def find(lines, pattern, start=0):
    for i in range(start, len(lines)):
        if re.search(pattern, lines[i]):
            return i
    raise SystemExit(f"demo_report: no line matching {pattern!r} in the output")


def bbh_comparisons(lines):
    """The per-layer tables of backprop_by_hand: [(title, loss line, rows)]."""
    out = []
    for i, line in enumerate(lines):
        m = re.match(r"^(MSE|softmax \+ cross-entropy), hidden activation (\w+), (.*)$", line)
        if not m:
            continue
        rows = []
        for row in paragraph(lines, i)[3:]:
            f = row.split()
            # layer, param, shape "[8, 4]" (two words), max |grad|, difference, relative
            rows.append({"layer": f[0], "param": f[1], "shape": f[2] + " " + f[3], "grad": f[4],
                         "diff": f[5], "rel": f[6]})
        loss = re.findall(r"[-\d.e+]+", lines[i + 1])
        out.append({"loss": m.group(1), "act": m.group(2), "what": m.group(3),
                    "hand_loss": loss[0], "auto_loss": loss[1], "rows": rows})
    return out


def gd_runs(dir_):
    """{problem: {regime: {batch, epoch[], seconds[], loss[], updates}}} from gd_variants.csv."""
    runs = {}
    with open(os.path.join(dir_, "gd_variants.csv"), encoding="utf-8") as f:
        for r in csv.DictReader(f):
            run = runs.setdefault(r["problem"], {}).setdefault(
                r["regime"], {"batch": int(r["batch_size"]), "epoch": [], "seconds": [],
                              "loss": [], "updates": 0})
            run["epoch"].append(int(r["epoch"]))
            run["seconds"].append(float(r["seconds"]))
            run["loss"].append(float(r["loss"]))
            run["updates"] = int(r["updates"])
    return runs


def gd_summary_rows(lines):
    start = find(lines, r"^Summary") + 2
    rows = []
    for line in paragraph(lines, start):
        m = re.match(r"^(\S+)\s+(.+?)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$",
                     line)
        if m:
            rows.append(m.groups())
    return rows


def fmt_s(x):
    return f"{x:.3f} s" if x >= 0.01 else f"{x * 1000:.1f} ms"


def sentence(parts):
    s = "; ".join(parts)
    return s[:1].upper() + s[1:] + "."


def gd_discussion(dir_):
    """What the gradient-descent run shows, as a list of sentences computed from its numbers
    (markdown: `code` and **bold** only)."""
    runs = gd_runs(dir_)
    out = []
    problems = list(runs)
    full = "full-batch GD"
    single = "single-sample SGD"
    # 1. The same number of epochs, very different numbers of updates.
    parts = []
    for p in problems:
        rs = runs[p]
        best = min(rs, key=lambda r: rs[r]["loss"][-1])
        ranked = sorted(rs, key=lambda r: rs[r]["loss"][-1])
        place = ranked.index(full) + 1 if full in rs else None
        where = ("the highest of all" if place == len(ranked) else
                 f"number {place} of {len(ranked)} from the lowest")
        parts.append(f"on {p} the lowest final loss is {best}'s ({rs[best]['loss'][-1]:.4g}), and "
                     f"full-batch GD's ({rs[full]['loss'][-1]:.4g}) is {where}")
    epochs = runs[problems[0]][full]["epoch"][-1]
    out.append(f"**Same epochs, different numbers of steps.** In {epochs} epochs every regime "
               f"saw each sample {epochs} times, but full-batch GD moved the weights "
               f"{runs[problems[0]][full]['updates']} times and single-sample SGD "
               f"{runs[problems[0]][single]['updates']} times. " + sentence(parts))
    # 2. Cost per update and per sample.
    parts = []
    for p in problems:
        rs = runs[p]
        per = {r: rs[r]["seconds"][-1] * 1e6 / rs[r]["updates"] for r in rs}
        per_sample = {r: per[r] / rs[r]["batch"] for r in rs}
        slowest = max(rs, key=lambda r: rs[r]["seconds"][-1])
        cheap = min(rs, key=lambda r: per_sample[r])
        dear = max(rs, key=lambda r: per_sample[r])
        parts.append(f"on {p}, one full-batch update took {per[full]:.0f} us and one "
                     f"single-sample update {per[single]:.0f} us; per sample, {cheap} was the "
                     f"cheapest ({per_sample[cheap]:.2g} us) and {dear} the dearest "
                     f"({per_sample[dear]:.2g} us); the slowest regime over the {epochs} epochs "
                     f"was {slowest} ({fmt_s(rs[slowest]['seconds'][-1])})")
    out.append("**Cost of a step.** Every step pays for a forward pass, a backward pass, an update "
               "and their bookkeeping, whatever the batch size; a batch shares that among its "
               "samples and turns the work into matrix products. " + sentence(parts))
    # 3. Against the clock: how long each regime needed to get as low as full-batch GD ends.
    parts = []
    for p in problems:
        rs = runs[p]
        target = rs[full]["loss"][-1]
        reached = {}
        for r, run in rs.items():
            for e, s, l in zip(run["epoch"], run["seconds"], run["loss"]):
                if e > 0 and l <= target:
                    reached[r] = (s, e)
                    break
        fastest = min(reached, key=lambda r: reached[r][0])
        parts.append(f"on {p} (loss {target:.4g}) {fastest} got there first, after "
                     f"{fmt_s(reached[fastest][0])} (epoch {reached[fastest][1]}), where full-batch "
                     f"GD needed {fmt_s(reached[full][0])}")
    out.append("**Against the clock.** Taking the loss full-batch GD ends at as the goal. "
               + sentence(parts))
    # 4. Noise: how often the loss over the whole set went up from one epoch to the next.
    parts = []
    for p in problems:
        rs = runs[p]
        ups = {r: sum(1 for a, b in zip(run["loss"], run["loss"][1:]) if b > a)
               for r, run in rs.items()}
        parts.append(f"on {p} " + ", ".join(f"{r} {n}" for r, n in ups.items()))
    out.append(f"**Noise.** A step on a small batch follows that batch's gradient, not the whole "
               f"set's, so the loss over the whole set can go up. The number of epochs (of "
               f"{epochs}) that ended higher than the epoch before, " + "; ".join(parts) + ".")
    return out


# ------------------------------------------------------------------------------------------------
# The tutorial's blocks.


def fenced(lines):
    return ["```text"] + [l.rstrip() for l in lines] + ["```"]


def tutorial_blocks(dir_):
    bbh = lines_of(dir_, "backprop_by_hand.txt")
    gd = lines_of(dir_, "gd_variants.txt")
    gf = lines_of(dir_, "gradient_flow.txt")
    co = lines_of(dir_, "custom_op.txt")
    nt = lines_of(dir_, "newton.txt")
    blocks = {}
    start = find(gd, r"^Summary")
    blocks["gd-summary"] = fenced(paragraph(gd, start))
    blocks["gd-discussion"] = (["What this run shows (sentences computed by `scripts/demo_report.py` "
                                "from `demo-output/gd_variants.csv`; the losses are the same on "
                                "every run, the times depend on the machine and its load):", ""] +
                               [f"- {s}" for s in gd_discussion(dir_)])
    # The first and the last comparison (MSE with sigmoid, cross-entropy with ReLU); all six are
    # in demo-output/backprop_by_hand.txt and on the demo page.
    first = find(bbh, r"^MSE, hidden activation")
    last = max(i for i, l in enumerate(bbh) if l.startswith("softmax + cross-entropy, hidden"))
    blocks["bbh-table"] = fenced(paragraph(bbh, 0) + [""] + paragraph(bbh, first) + ["..."] +
                                 paragraph(bbh, last))
    training = []
    for i, l in enumerate(bbh):
        if l.startswith("Training both:"):
            training += ([""] if training else []) + paragraph(bbh, i)
    blocks["bbh-training"] = fenced(training)
    blocks["bbh-last"] = fenced([bbh[-1]])
    blocks["custom-op"] = fenced(co)
    flow = [l for l in gf if not l.startswith("wrote ")]
    while flow and not flow[-1].strip():
        flow.pop()
    blocks["gradient-flow"] = fenced(flow)
    hessian = find(nt, r"^Hessian of the article's network")
    summary = [l for l in nt[:hessian] if not l.strip().startswith("wrote ")]
    while summary and not summary[-1].strip():
        summary.pop()
    blocks["newton-summary"] = fenced(summary)
    blocks["newton-hessian"] = fenced(nt[hessian:])
    return blocks


def fill_tutorial(dir_, path):
    blocks = tutorial_blocks(dir_)
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    out, i, done = [], 0, []
    while i < len(lines):
        m = re.match(r"^<!-- ([a-z0-9-]+) -->\s*$", lines[i])
        if m and m.group(1) in blocks:
            name = m.group(1)
            end = i + 1
            while end < len(lines) and lines[end].strip() != f"<!-- /{name} -->":
                end += 1
            if end == len(lines):
                raise SystemExit(f"demo_report: {path}: <!-- {name} --> has no <!-- /{name} -->")
            out += [lines[i]] + blocks[name] + [lines[end]]
            done.append(name)
            i = end + 1
            continue
        out.append(lines[i])
        i += 1
    missing = sorted(set(blocks) - set(done))
    if missing:
        raise SystemExit(f"demo_report: {path} has no block for {', '.join(missing)}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out))
    print(f"{path}: filled {', '.join(done)}")


# ------------------------------------------------------------------------------------------------
# The page.

E = html.escape


def md_inline(s):
    """`code` and **bold** of the discussion sentences, as HTML."""
    s = E(s, quote=False)
    s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", s)


def svg_inline(dir_, name, alt, cls="", caption=False):
    """A figure holding the SVG file `name` inline (its XML prolog removed)."""
    path = os.path.join(dir_, name)
    if not os.path.exists(path):
        return f'<figure class="missing"><figcaption>missing: {E(name)}</figcaption></figure>'
    with open(path, encoding="utf-8") as f:
        svg = f.read()
    svg = svg[svg.index("<svg"):]
    # The examples' plots (examples/plot.h) are drawn with 12 px text for a page of their own; on
    # the projector they get 14 px, and 60 px more room on the right for the longer legend.
    m = re.match(r'<svg xmlns="http://www.w3.org/2000/svg" width="(\d+)" height="(\d+)" '
                 r'viewBox="0 0 \d+ \d+" (font-family="[^"]*") font-size="12">', svg)
    if m:
        w, h = int(m.group(1)) + 60, int(m.group(2))
        svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
               f'viewBox="0 0 {w} {h}" {m.group(3)} font-size="14">' + svg[m.end():])
    svg = re.sub(r"<svg\b", f'<svg role="img" aria-label="{E(alt)}"', svg, count=1)
    cap = f"<figcaption>{E(alt)}</figcaption>" if caption else ""
    return f'<figure class="{cls}">{svg}{cap}</figure>'


def tape_svg(dir_):
    dot = os.path.join(dir_, "tape.dot")
    svg = os.path.join(dir_, "tape.svg")
    try:
        subprocess.run(["dot", "-Tsvg", dot, "-o", svg], check=True)
    except FileNotFoundError:
        raise SystemExit("demo_report: graphviz's `dot` is not installed "
                         "(scripts/install-deps graphviz)")
    return "tape.svg"


def table(head, rows, align, cls="", head_html=None):
    """align: one letter per column, l (text, left) or r (numbers, right)."""
    a = [' class="num"' if c == "r" else "" for c in align]
    h = head_html or ("<tr>" + "".join(f"<th{a[k]}>{E(c)}</th>" for k, c in enumerate(head))
                      + "</tr>")
    b = "".join("<tr>" + "".join(f"<td{a[k]}>{c}</td>" for k, c in enumerate(r)) + "</tr>"
                for r in rows)
    return f'<table class="{cls}"><thead>{h}</thead><tbody>{b}</tbody></table>'


def sci(x):
    """1.588e-16 as 1.6·10⁻¹⁶ (readable from the back of the room)."""
    v = float(x)
    if v == 0:
        return "0"
    m, e = f"{v:.1e}".split("e")
    if int(e) == 0:
        return m
    sup = str(int(e)).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))
    return f"{m}·10{sup}"


FORMULAS = """
<p>A network of <var>L</var> layers. Layer <var>l</var> holds a weight matrix
<var>W</var><sup>(l)</sup> and a bias <var>b</var><sup>(l)</sup>; the input is
<var>a</var><sup>(0)</sup> = <var>x</var>.</p>
<div class="eq">z<sup>(l)</sup> = W<sup>(l)</sup> a<sup>(l−1)</sup> + b<sup>(l)</sup>
  <span class="what">pre-activation</span></div>
<div class="eq">a<sup>(l)</sup> = σ(z<sup>(l)</sup>)
  <span class="what">activation; a<sup>(L)</sup> is the prediction ŷ</span></div>
<p>Training makes the average loss over the <var>N</var> samples small, one step against the
gradient at a time (η is the learning rate):</p>
<div class="eq">J(θ) = (1/N) Σ<sub>i</sub> ℓ(f(x<sub>i</sub>; θ), y<sub>i</sub>)
  <span class="what">MSE for regression, cross-entropy for classes</span></div>
<div class="eq">θ ← θ − η ∇J(θ)  <span class="what">full-batch gradient descent: all N samples
  per step</span></div>
<div class="eq">θ ← θ − η ∇ℓ(f(x<sub>i</sub>; θ), y<sub>i</sub>)  <span class="what">single-sample
  SGD: one random sample per step</span></div>
<div class="eq">θ ← θ − η ∇ (1/|B|) Σ<sub>i∈B</sub> ℓ(f(x<sub>i</sub>; θ), y<sub>i</sub>)
  <span class="what">mini-batch SGD: a random batch B per step</span></div>
<p>Backpropagation finds every gradient in one sweep from the output down. Call
δ<sup>(l)</sup> = ∂ℓ/∂z<sup>(l)</sup> the error of layer <var>l</var>
(⊙ multiplies element by element):</p>
<div class="eq">δ<sup>(L)</sup> = ∂ℓ/∂a<sup>(L)</sup> ⊙ σ′(z<sup>(L)</sup>)
  <span class="what">at the output (softmax + cross-entropy: ŷ − y)</span></div>
<div class="eq">δ<sup>(l)</sup> = (W<sup>(l+1)</sup>)<sup>T</sup> δ<sup>(l+1)</sup> ⊙
  σ′(z<sup>(l)</sup>)  <span class="what">for l = L−1 down to 1</span></div>
<div class="eq">∂ℓ/∂W<sup>(l)</sup> = δ<sup>(l)</sup> (a<sup>(l−1)</sup>)<sup>T</sup>,
  ∂ℓ/∂b<sup>(l)</sup> = δ<sup>(l)</sup>  <span class="what">averaged over the batch</span></div>
"""

CSS = """
html { font-size: 22px; }
body { margin: 0; font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; line-height: 1.45;
       color: #111827; background: #ffffff; }
main { max-width: 1220px; margin: 0 auto; padding: 0 24px 48px; box-sizing: border-box; }
h1 { font-size: 1.9rem; line-height: 1.2; margin: 0.8em 0 0.3em; }
h2 { font-size: 1.5rem; margin: 2em 0 0.5em; padding-bottom: 0.15em;
     border-bottom: 4px solid #2563eb; }
h3 { font-size: 1.15rem; margin: 1.2em 0 0.3em; }
p, li { max-width: 60em; }
nav ol { columns: 2; font-size: 1rem; }
a { color: #1d4ed8; }
code, pre { font-family: "DejaVu Sans Mono", monospace; }
code { font-size: 0.9em; background: #f3f4f6; padding: 0 0.2em; }
pre { font-size: 0.72rem; background: #f3f4f6; padding: 0.6em 0.8em; white-space: pre-wrap;
      overflow-wrap: anywhere; }
.eq { font-family: "DejaVu Serif", Georgia, serif; font-size: 1.3rem; margin: 0.35em 0 0.35em 1.2em; }
.eq .what { font-family: "DejaVu Sans", Helvetica, sans-serif; font-size: 0.95rem; color: #4b5563;
            margin-left: 1.2em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.95rem;
        font-variant-numeric: tabular-nums; }
th, td { padding: 0.2em 0.65em; border-bottom: 1px solid #d1d5db; text-align: left;
         vertical-align: top; }
th { background: #eef2ff; }
th.num, td.num { text-align: right; }
td.num { white-space: nowrap; }
th.group { text-align: center; border-left: 2px solid #ffffff; }
table.tape td { white-space: nowrap; }
table.tape td:last-child { white-space: normal; }
td.group { text-align: left; font-weight: bold; background: #f9fafb; padding-top: 0.5em; }
figure { margin: 1em 0 1.4em; }
figure svg { display: block; width: 100%; height: auto; max-width: 1160px; }
figure.tape svg { max-height: 560px; }
figcaption { font-size: 0.9rem; color: #4b5563; margin-top: 0.2em; }
.ok { color: #047857; font-weight: bold; }
.bad { color: #b91c1c; font-weight: bold; }
.big { font-size: 1.5rem; }
.note { color: #4b5563; font-size: 0.95rem; }
"""


def page_backprop(dir_):
    lines = lines_of(dir_, "backprop_by_hand.txt")
    comps = bbh_comparisons(lines)
    rows = []
    worst = 0.0
    for c in comps:
        rows.append([f'{E(c["loss"])} · hidden {E(c["act"])} · loss by hand {c["hand_loss"]}, '
                    f'by autograd {c["auto_loss"]}'])
        by_layer = {}
        for r in c["rows"]:
            by_layer.setdefault(r["layer"], {})[r["param"]] = r
            worst = max(worst, float(r["rel"]))
        for layer, pr in by_layer.items():
            w, b = pr["W"], pr["b"]
            rows.append([layer, E(w["shape"]), sci(w["grad"]), sci(w["rel"]), E(b["shape"]),
                         sci(b["grad"]), sci(b["rel"])])
    a = [' class="num"' if c == "r" else "" for c in "rrrrrrr"]
    head = ["layer", "W shape", "max |∂ℓ/∂W|", "W: |hand − auto| / max", "b shape", "max |∂ℓ/∂b|",
            "b: |hand − auto| / max"]
    body = ""
    for r in rows:
        if len(r) == 1:
            body += f'<tr><td class="group" colspan="7">{r[0]}</td></tr>'
        else:
            body += "<tr>" + "".join(f"<td{a[k]}>{c}</td>" for k, c in enumerate(r)) + "</tr>"
    h = "".join(f"<th{a[k]}>{E(c)}</th>" for k, c in enumerate(head))
    tbl = f'<table class="bbh"><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>'
    last = lines[-1]
    return f"""
<p>The delta recursion written by hand in xtensor (<code>HandNet</code> in
<code>examples/backprop_by_hand.cpp</code>, samples as columns) against the same 4-8-6-3 network
in <code>nn</code>, whose gradients come from autograd replaying its tape. Same weights, same batch
of 16, in float64. Per layer: the largest gradient entry, and the largest difference between the two
gradients divided by it.</p>
{tbl}
<p class="big">Largest relative difference in the table: <span class="ok">{sci(worst)}</span>:
float64 rounding, the same sums done in another order.</p>
<h3>Trained side by side</h3>
<p>Both networks then take the same mini-batch SGD steps (algorithm: draw a batch, forward, loss,
backward, θ ← θ − η∇). The hand-written curves are solid, autograd's dashed on top of them.</p>
{svg_inline(dir_, "side_by_side.svg", "batch loss of the hand-written and the autograd network, step by step")}
<p>The program's last line: <code>{E(last)}</code></p>
"""


def page_gd(dir_):
    lines = lines_of(dir_, "gd_variants.txt")
    rows = [[E(p), E(r), b, u, tu, l, s, us] for p, r, b, u, tu, l, s, us in gd_summary_rows(lines)]
    tbl = table(["problem", "regime", "batch", "updates / epoch", "updates", "final loss",
                 "seconds", "µs / update"], rows, "llrrrrrr", "gd")
    items = "".join(f"<li>{md_inline(s)}</li>" for s in gd_discussion(dir_))
    figs = "".join(svg_inline(dir_, f"gd_{p}_{k}.svg", f"{p}: loss over the training set vs {w}")
                   for p in ("regression", "classification")
                   for k, w in (("epochs", "epochs"), ("time", "training time")))
    return f"""
<p><code>examples/gd_variants.cpp</code> trains the same network from the same start with the same
learning rate for the same number of epochs; with <code>nn::DataLoader</code> the regime is only the
batch size: N for full-batch GD, 1 for single-sample SGD, anything between for mini-batches. After
every epoch it measures J(θ) over the whole training set.</p>
{tbl}
<p class="note">Computed from this run's <code>gd_variants.csv</code>. The losses are the same on
every run; the times depend on the machine and on what else it is doing.</p>
<ul>{items}</ul>
{figs}
"""


def flow_tables(lines):
    """[(title, [(layer, |dW|, |delta|)])] of gradient_flow's first-step tables."""
    out = []
    for i, l in enumerate(lines):
        if "first step: gradient norms" in l:
            rows = []
            for r in paragraph(lines, i)[2:]:
                f = r.split()
                if len(f) == 3 and f[0].isdigit():
                    rows.append(f)
            out.append((l.split(", first step")[0], rows))
    return out


def page_flow(dir_):
    lines = lines_of(dir_, "gradient_flow.txt")
    tabs = flow_tables(lines)
    head = '<tr><th rowspan="2" class="num">layer</th>'
    for title, _ in tabs:
        name = title.replace(" network", "").replace(" with every initial weight doubled",
                                                      ", weights ×2")
        head += f'<th colspan="2" class="group">{E(name)}</th>'
    head += "</tr><tr>" + '<th class="num">|∂ℓ/∂W|</th><th class="num">|δ|</th>' * len(tabs)
    head += "</tr>"
    rows = []
    for k in range(len(tabs[0][1])):
        row = [tabs[0][1][k][0]]
        for _, t in tabs:
            row += [sci(t[k][1]), sci(t[k][2])]
        rows.append(row)
    epochs = [l.split() for l in lines if l.strip().startswith("epoch")]
    half = len(epochs) // 2  # the sigmoid network's lines, then the ReLU network's
    epoch_rows = [[a[1].rstrip(":"), a[-1], b[-1]] for a, b in zip(epochs[:half], epochs[half:])]
    exploding = [E(l.strip()) for l in lines if l.strip().startswith("mini-batch loss of")]
    return f"""
<p>The recursion multiplies the error by (W<sup>(l+1)</sup>)<sup>T</sup> and by σ′(z<sup>(l)</sup>)
once per layer on its way down. The sigmoid's slope is at most 1/4, so in a deep sigmoid network the
error shrinks layer after layer and the first layers hardly learn: <strong>vanishing
gradients</strong>. ReLU's slope is 1 where a unit is on; with He initialisation the error keeps its
size. Double every weight of that ReLU network and each layer multiplies the error by about 2
instead: <strong>exploding gradients</strong>.</p>
<p><code>examples/gradient_flow.cpp</code>: 10 hidden layers of 32 units, two-spirals data, the norms at
the first SGD step, read from <code>.grad</code> (∂ℓ/∂W) and from each <code>linear</code> node's
traced gradient norm (δ). Layer 11 is the output, layer 1 next to the input.</p>
{table([], rows, "r" * 7, "flow", head)}
{svg_inline(dir_, "gradient_flow_layers.svg", "gradient norm per layer at the first step")}
<p>The doubled network's first steps: <code>{"</code>, <code>".join(exploding)}</code></p>
{svg_inline(dir_, "gradient_flow_steps.svg", "|∂ℓ/∂W| of the first and the last layer during training")}
{svg_inline(dir_, "gradient_flow_loss.svg", "training loss of the sigmoid and the ReLU network")}
<p>Mean training loss, every 5 epochs: the sigmoid network hardly moves, the ReLU network
learns.</p>
{table(["epoch", "sigmoid", "relu"], epoch_rows, "rrr", "epochs")}
"""


def page_tape(dir_):
    name = tape_svg(dir_)
    return f"""
<p>While the forward pass runs, every op records a node: its name, a sequence number, edges to the
nodes that made its inputs, and its own local backward rule. <code>backward()</code> seeds the loss
with 1 and replays the nodes from the highest number down. Below, one training step of a 4-5-3
network (sigmoid, cross-entropy, batch of 8), drawn from the tape by <code>ag::to_dot</code> after a
backward run with gradient-norm tracing on: each box shows the norm of the gradient that reached
it.</p>
{svg_inline(dir_, name, "the tape of one training step: ops (yellow), parameters (blue), data (dashed)", "tape", True)}
<p>Read it from right to left: 1 at <code>L</code>; at <code>z2</code> the gradient is
(softmax(z2) − y)/8, that is δ<sup>(2)</sup>; at <code>a1</code> it is W2<sup>T</sup>δ<sup>(2)</sup>;
the sigmoid node multiplies by σ′(z1) and hands δ<sup>(1)</sup> to <code>z1</code>; the parameters
receive δ a<sup>T</sup> and the batch sum of δ. Nothing in the engine knows about layers: the
recursion comes out of the replay, one local rule at a time.</p>
"""


def page_custom(dir_):
    lines = lines_of(dir_, "custom_op.txt")
    checks = []
    for l in lines:
        m = re.match(r"^(swish\w*)\s+(gradcheck|gradgradcheck): (passed|FAILED) \((.*?)\); "
                     r"worst entry: (.*)$", l)
        if m:
            ok = m.group(3) == "passed"
            checks.append([f"<code>{E(m.group(1))}</code>", E(m.group(2)),
                           f'<span class="{"ok" if ok else "bad"}">{m.group(3)}</span>',
                           E(m.group(4)), E(m.group(5))])
    tapes = []
    for i, l in enumerate(lines):
        if l.startswith("network with"):
            block = paragraph(lines, i)
            head = block[2]
            cols = [m.start() for m in re.finditer(r"\S+(?: \S+)*", head)]
            names = [head[c:].split("  ")[0].strip() for c in cols]
            rows = []
            for r in block[3:]:
                if not r.startswith("   "):
                    continue
                cells = [r[a:b].strip() for a, b in zip(cols, cols[1:] + [None])]
                # the first column (seq) is right-aligned under its header: take it from the start
                cells[0] = r[:cols[1]].strip()
                res = cells[-1]
                cls = "ok" if res.startswith("ok") else "bad"
                rows.append([E(c) for c in cells[:-1]] + [f'<span class="{cls}">{E(res)}</span>'])
            status = block[1]
            cls = "ok" if "passed" in status else "bad"
            tapes.append(f'<h3>{E(l.rstrip(":"))}: <span class="{cls}">{E(status)}</span></h3>'
                         + table(names, rows, "rlllll"[:len(names)], "tape"))
            tapes += [f"<p>{E(x)}</p>" for x in block if x.startswith("first failure")]
    verdict = lines[-1]
    vcls = "ok" if not verdict.startswith("UNEXPECTED") else "bad"
    return f"""
<p>An op of your own is one more local rule. <code>examples/custom_op.cpp</code> writes
swish(x, β) = x · sigmoid(βx) as one node with a hand-written backward
(<code>autograd/function.h</code>), then a copy whose backward forgets the second term of the product
rule. <code>gradcheck</code> and <code>gradgradcheck</code> compare the backward with central finite
differences in float64:</p>
{table(["op", "check", "result", "compared", "worst entry"], checks, "lllll", "checks")}
<p>Inside a small network, <code>check_tape</code> checks every node of the tape on the values it saw
and names the first one whose backward disagrees:</p>
{"".join(tapes)}
<p class="big"><span class="{vcls}">{E(verdict)}</span></p>
"""


def page_newton(dir_):
    lines = lines_of(dir_, "newton.txt")
    head = find(lines, r"^\s+method\s+iterations")
    rows = []
    for l in paragraph(lines, head + 1):
        m = re.match(r"^\s+(Newton|gradient descent)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)"
                     r"\s+(\S+)(.*)$", l)
        if m:
            note = E(m.group(7).strip().strip("()"))
            rows.append([E(m.group(1)), m.group(2), m.group(3), m.group(4), m.group(5),
                         sci(m.group(6)), note])
    tbl = table(["method", "iterations", "seconds", "µs / iteration", "final loss", "|∇L|", ""],
                rows, "lrrrrrl", "gd")
    verdict = [l for l in lines if l.strip().startswith("Newton reached")]
    hessian = find(lines, r"^Hessian of the article's network")
    blocks = []
    for l in lines[hessian:]:
        m = re.match(r"^\s+(\w+,\w+)\s+(\[.*?\])\s+(\S+)\s+(\S+)$", l)
        if m:
            blocks.append([E(m.group(1)), E(m.group(2)), sci(m.group(3)), sci(m.group(4))])
    last = lines[-1]
    return f"""
<p><code>examples/newton.cpp</code> fits a logistic regression two ways from the same start:
gradient descent, θ ← θ − η∇L, and Newton's method, θ ← θ − H<sup>−1</sup>∇L, with the Hessian
H computed by the engine (<code>ag::hessian</code>, forward-over-reverse), until |∇L| ≤ 10<sup>−10</sup>.</p>
{tbl}
<p>{E(verdict[0].strip()) if verdict else ""}</p>
{svg_inline(dir_, "newton_iterations.svg", "gradient norm vs iterations")}
{svg_inline(dir_, "newton_time.svg", "gradient norm vs time")}
<p>The Hessian of the article's 4-5-3 network (the one of the tape above) with respect to all 43
parameters, by the engine and by formulas derived by hand, block by block:</p>
{table(["block", "shape", "max |H|", "max |hand − engine|"], blocks, "llrr", "tape")}
<p class="big"><span class="ok">{E(last)}</span></p>
"""


def write_page(dir_):
    sections = [
        ("formulas", "The formulas", FORMULAS),
        ("regimes", "Three regimes of gradient descent", page_gd(dir_)),
        ("backprop", "Backpropagation by hand against autograd, per layer", page_backprop(dir_)),
        ("tape", "The tape of one step, with gradient norms", page_tape(dir_)),
        ("flow", "Vanishing and exploding gradients", page_flow(dir_)),
        ("custom-op", "Your own op, checked against finite differences", page_custom(dir_)),
        ("newton", "Second derivatives: Newton's method and the Hessian", page_newton(dir_)),
    ]
    nav = "".join(f'<li><a href="#{i}">{E(t)}</a></li>' for i, t, _ in sections)
    body = "".join(f'<section id="{i}"><h2>{n}. {E(t)}</h2>{c}</section>'
                   for n, (i, t, c) in enumerate(sections, 1))
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tapegrad: SGD and backpropagation, from the formulas to the tape</title>
<style>{CSS}</style>
</head>
<body>
<main>
<h1>SGD and backpropagation, from the formulas to the tape</h1>
<p>What the tapegrad teaching demo (<code>scripts/demo</code>) computed on {when}. Every number and
picture below comes from that run; the text that goes with it is <code>docs/tutorial.md</code> in the
source tree.</p>
<nav><ol>{nav}</ol></nav>
{body}
</main>
</body>
</html>
"""
    path = os.path.join(dir_, "index.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    print(f"wrote {path}")


def main(argv):
    if len(argv) == 3 and argv[1] == "page":
        write_page(argv[2])
    elif len(argv) == 4 and argv[1] == "tutorial":
        fill_tutorial(argv[2], argv[3])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
