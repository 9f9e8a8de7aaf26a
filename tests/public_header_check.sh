#!/usr/bin/env bash
# A model writer's file sees neither the op-authoring layer (op.h, node.h, function.h) nor the
# xtensor interop (xtensor.h, xtensor's headers): it includes autograd/autograd.h and nn/nn.h, and
# this lists every header the compiler opens for it (g++ -H) and fails on any of those.
#   public_header_check.sh <source dir>
set -euo pipefail
src=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/model.cpp" <<'CPP'
#include "autograd/autograd.h"
#include "nn/nn.h"
int main() {
  ag::nn::Linear layer(3, 2);
  ag::Tensor y = layer.forward(ag::ones({4, 3})).sum();
  y.backward();
  return layer.weight.grad().defined() ? 0 : 1;
}
CPP
${CXX:-c++} -std=c++20 -DXTENSOR_USE_XSIMD -fsyntax-only -H -I"$src" "$tmp/model.cpp" 2> "$tmp/headers"
grep -c '' "$tmp/headers" > /dev/null || { echo "no headers listed"; exit 1; }
opened=$(grep -E '^\.+ ' "$tmp/headers" | awk '{print $2}')
echo "$(echo "$opened" | wc -l) headers opened"
bad=$(echo "$opened" | grep -E '/autograd/(op|node|function|xtensor)\.h$|/xtensor/' || true)
if [ -n "$bad" ]; then
  echo "a model writer's file sees the op-authoring layer or the xtensor interop:"
  echo "$bad"
  exit 1
fi
echo "autograd/autograd.h and nn/nn.h: no op.h, node.h, function.h, xtensor.h or xtensor headers"
