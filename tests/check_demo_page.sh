#!/usr/bin/env bash
# The demo page test: runs the teaching examples into <source>/demo-output (as scripts/demo
# does), writes demo-output/index.html, opens it in headless Chromium and checks that
#   - every figure holds a drawn picture (inline SVG with a size) and every <img> loaded,
#   - nothing was logged as an error (page errors, failed loads, console.error),
#   - the page needs no horizontal scrolling in a 1280 px wide window;
# then keeps a screenshot of the whole page in demo-output/index.png.
#
#   check_demo_page.sh SOURCE_ROOT EXAMPLE_PROGRAM...
#
# Needs graphviz and chromium; installs them through scripts/install-deps when they are missing,
# and skips (exit 77) with a message saying why when that is not possible.
set -uo pipefail
src=$(cd "$1" && pwd)
shift
out="$src/demo-output"
mkdir -p "$out"

need=()
command -v dot > /dev/null 2>&1 || need+=(graphviz)
command -v chromium > /dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} for this test"
  if ! "$src/scripts/install-deps" "${need[@]}" || ! command -v dot > /dev/null ||
    ! command -v chromium > /dev/null; then
    echo "SKIPPED: the demo page test needs ${need[*]}, which could not be installed" \
      "(not root, no sudo, or no package mirror)"
    exit 77
  fi
fi

for exe in "$@"; do
  name=$(basename "$exe")
  if ! "$exe" "$out" > "$out/$name.txt"; then
    echo "FAILED: $name exited with an error (its output: $out/$name.txt)"
    exit 1
  fi
done
python3 "$src/scripts/demo_report.py" page "$out" || exit 1

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A copy of the page with a checker first in <head> (so it sees every error) that writes its
# findings into a <pre id="page-check"> once the page has loaded.
python3 - "$out/index.html" "$tmp/check.html" << 'EOF'
import sys
page = open(sys.argv[1], encoding="utf-8").read()
checker = """<script>
window.__problems = [];
window.addEventListener("error", function (e) {
  var t = e.target;
  if (t && t !== window && (t.src || t.href)) __problems.push("failed to load " + (t.src || t.href));
  else __problems.push("page error: " + e.message);
}, true);
window.addEventListener("unhandledrejection", function (e) { __problems.push("unhandled rejection: " + e.reason); });
(function () {
  var error = console.error;
  console.error = function () { __problems.push("console.error: " + Array.prototype.join.call(arguments, " ")); error.apply(console, arguments); };
})();
window.addEventListener("load", function () {
  var r = { problems: __problems, images: 0, figures: 0 };
  Array.prototype.forEach.call(document.images, function (img) {
    r.images++;
    if (!img.complete || img.naturalWidth === 0) __problems.push("image not loaded: " + img.src);
  });
  Array.prototype.forEach.call(document.querySelectorAll("figure"), function (f, i) {
    r.figures++;
    var pic = f.querySelector("svg, img");
    var box = pic ? pic.getBoundingClientRect() : null;
    var what = (f.querySelector("figcaption") || f).textContent.trim().slice(0, 80);
    if (!pic) __problems.push("figure " + (i + 1) + " has no picture: " + what);
    else if (box.width < 100 || box.height < 50 || pic.childElementCount === 0)
      __problems.push("figure " + (i + 1) + " is not drawn (" + Math.round(box.width) + "x" + Math.round(box.height) + "): " + what);
  });
  r.scroll_width = document.documentElement.scrollWidth;
  r.window_width = window.innerWidth;
  if (r.scroll_width > r.window_width) {
    var wide = Array.prototype.filter.call(document.body.querySelectorAll("*"), function (el) {
      return el.getBoundingClientRect().right > r.window_width && el.parentElement.getBoundingClientRect().right <= r.window_width;
    }).slice(0, 3).map(function (el) { return "<" + el.tagName.toLowerCase() + (el.className ? " class=" + el.className : "") + "> " + el.textContent.trim().slice(0, 60); });
    __problems.push("horizontal scrolling: the page is " + r.scroll_width + " px wide in a " + r.window_width + " px window; too wide: " + wide.join(" | "));
  }
  r.height = document.documentElement.scrollHeight;
  var pre = document.createElement("pre");
  pre.id = "page-check";
  pre.textContent = JSON.stringify(r);
  document.body.appendChild(pre);
});
</script>"""
open(sys.argv[2], "w", encoding="utf-8").write(page.replace("<head>", "<head>\n" + checker, 1))
EOF

chrome=(chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run
  --disable-background-networking --disable-component-update --disable-sync
  --disable-dev-shm-usage --hide-scrollbars --enable-logging=stderr --v=0)
timeout 180 "${chrome[@]}" --user-data-dir="$tmp/profile1" --window-size=1280,900 \
  --virtual-time-budget=5000 --dump-dom "file://$tmp/check.html" > "$tmp/dom.html" 2> "$tmp/log"
status=$?
if [ $status -ne 0 ]; then
  echo "FAILED: chromium exited with status $status"
  tail -20 "$tmp/log"
  exit 1
fi

result=$(python3 - "$tmp/dom.html" "$tmp/log" << 'EOF'
import html, json, re, sys
dom = open(sys.argv[1], encoding="utf-8", errors="replace").read()
log = open(sys.argv[2], encoding="utf-8", errors="replace").read()
m = re.search(r'<pre id="page-check">(.*?)</pre>', dom, re.S)
if not m:
    print("FAILED: the checker wrote no result (did the page load?)")
    sys.exit(1)
r = json.loads(html.unescape(m.group(1)))
problems = list(r["problems"])
# Chromium's own log: the page has no script of its own and the checker logs nothing unless
# something failed, so any console message from the page is a problem (chromium logs them all,
# errors and uncaught exceptions included, at level INFO).
for line in log.splitlines():
    if ":CONSOLE" in line:
        problems.append("chromium log: " + line.strip())
print(f"{r['figures']} figures, {r['images']} <img>, page {r['scroll_width']} px wide in a "
      f"{r['window_width']} px window, {r['height']} px tall")
for p in problems:
    print("PROBLEM: " + p)
print(f"HEIGHT {r['height']}")
sys.exit(1 if problems else 0)
EOF
)
status=$?
echo "$result" | grep -v '^HEIGHT '
if [ $status -ne 0 ]; then
  echo "FAILED: the demo page ($out/index.html) has problems (above)"
  exit 1
fi

height=$(echo "$result" | sed -n 's/^HEIGHT //p')
height=$((height > 16000 ? 16000 : height))
rm -f "$out/index.png"
timeout 180 "${chrome[@]}" --user-data-dir="$tmp/profile2" --window-size=1280,"$height" \
  --virtual-time-budget=5000 --screenshot="$out/index.png" "file://$out/index.html" \
  > /dev/null 2> "$tmp/log2"
if [ ! -s "$out/index.png" ]; then
  echo "FAILED: no screenshot was written"
  tail -20 "$tmp/log2"
  exit 1
fi
echo "screenshot of the whole page (1280 x $height): $out/index.png"
echo "demo page check: passed"
