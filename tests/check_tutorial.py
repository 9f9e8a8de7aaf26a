#!/usr/bin/env python3
"""Docs test for docs/tutorial.md.

1. Output blocks: every block the demo fills (`<!-- name -->` ... `<!-- /name -->`) must be there,
   closed, and hold more than whitespace and code fences. `scripts/demo --update-docs` fills them.
2. C++ snippets: every ```cpp block is compiled and linked against the engine, one translation unit
   per block, with `#line` directives so that errors point at the line of the tutorial. A block
   without #include lines gets `#include "nn/nn.h"` and `using namespace ag;` in front; a block
   without main() gets an empty one after it.

   check_tutorial.py TUTORIAL --cxx "g++" --src SOURCE_ROOT --lib LIB.so [--lib LIB.so ...]
   check_tutorial.py TUTORIAL --markers-only

Exit status 1 with one line per problem on any failure.
"""
import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile

# The blocks the tutorial promises (issue 17); others found in the page are checked too.
REQUIRED = ["gd-summary", "gd-discussion", "bbh-table", "bbh-training", "bbh-last", "custom-op",
            "gradient-flow", "newton-summary", "newton-hessian"]
MARKER = re.compile(r"^<!-- (/?)([a-z0-9-]+) -->\s*$")


def check_markers(lines):
    problems = []
    open_at = {}  # name -> line index of its begin marker
    filled = {}
    for i, line in enumerate(lines):
        m = MARKER.match(line)
        if not m:
            continue
        closing, name = m.group(1) == "/", m.group(2)
        if not closing:
            if name in open_at or name in filled:
                problems.append(f"line {i + 1}: marker <!-- {name} --> appears twice")
            open_at[name] = i
            continue
        if name not in open_at:
            problems.append(f"line {i + 1}: <!-- /{name} --> without <!-- {name} --> before it")
            continue
        begin = open_at.pop(name)
        body = [l for l in lines[begin + 1:i] if l.strip() and not l.strip().startswith("```")]
        filled[name] = len(body)
        if not body:
            problems.append(f"line {begin + 1}: block <!-- {name} --> is empty "
                            f"(run scripts/demo --update-docs)")
    for name, begin in open_at.items():
        problems.append(f"line {begin + 1}: <!-- {name} --> is never closed by <!-- /{name} -->")
    for name in REQUIRED:
        if name not in filled and name not in open_at:
            problems.append(f"block <!-- {name} --> ... <!-- /{name} --> is missing")
    return problems, filled


def cpp_blocks(lines):
    """(first line number of the code, code lines) for every ```cpp block."""
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```cpp":
            start = i + 1
            j = start
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            if j == len(lines):
                raise SystemExit(f"line {i + 1}: ```cpp block never closed")
            blocks.append((start + 1, lines[start:j]))
            i = j
        i += 1
    return blocks


def translation_unit(path, first_line, code):
    text = "\n".join(code)
    tu = []
    if not re.search(r"^\s*#\s*include", text, re.M):
        tu += ['#include "nn/nn.h"', "using namespace ag;"]
    tu += [f'#line {first_line} "{path}"', text]
    if not re.search(r"\bmain\s*\(", text):
        tu += ['#line 1 "<added by check_tutorial.py>"', "int main() {}"]
    return "\n".join(tu) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tutorial")
    ap.add_argument("--cxx", default="g++")
    ap.add_argument("--src", default=".")
    ap.add_argument("--lib", action="append", default=[])
    ap.add_argument("--markers-only", action="store_true")
    a = ap.parse_args()
    with open(a.tutorial, encoding="utf-8") as f:
        lines = f.read().split("\n")

    problems, filled = check_markers(lines)
    print(f"output blocks: {len(filled)} closed, "
          + ", ".join(f"{k} ({v} lines)" for k, v in filled.items()))

    blocks = [] if a.markers_only else cpp_blocks(lines)
    if not a.markers_only and not blocks:
        problems.append("no ```cpp block found (nothing to compile?)")
    libdirs = sorted({os.path.dirname(os.path.abspath(l)) for l in a.lib})
    with tempfile.TemporaryDirectory() as tmp:
        for k, (first_line, code) in enumerate(blocks):
            src = os.path.join(tmp, f"snippet{k}.cpp")
            with open(src, "w", encoding="utf-8") as f:
                f.write(translation_unit(a.tutorial, first_line, code))
            cmd = (shlex.split(a.cxx) +
                   ["-std=c++20", "-O0", "-Wall", "-Wextra", "-Werror", "-fopenmp",
                    "-DXTENSOR_USE_XSIMD", "-I", a.src, src, "-o", os.path.join(tmp, f"s{k}")] +
                   [os.path.abspath(l) for l in a.lib] +
                   [f"-Wl,-rpath,{d}" for d in libdirs] + ["-lfmt"])
            r = subprocess.run(cmd, capture_output=True, text=True)
            status = "compiles and links" if r.returncode == 0 else "FAILS to build"
            print(f"C++ block at line {first_line} ({len(code)} lines): {status}")
            if r.returncode != 0:
                sys.stdout.write(r.stderr)
                problems.append(f"line {first_line}: the C++ block does not build (errors above)")

    for p in problems:
        print(f"{a.tutorial}: {p}")
    print("docs check: " + ("FAILED" if problems else "passed"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
