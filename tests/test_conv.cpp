// conv2d, conv1d, conv_transpose2d, conv2d_weight and pad: values against a direct loop over the
// definition, the adjoint identities that tie them together, first and second derivatives in
// float64, the threaded path on larger shapes, and the errors.
#include <algorithm>
#include <cmath>

#include "support.h"

using namespace ag;
using test::check_gradients;
using test::check_values;
using test::leaf;

namespace {

struct Conv {
  int64_t sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1, groups = 1;
};

// The convolution written straight from its definition, in doubles.
Tensor conv_by_hand(const Tensor& x, const Tensor& w, const Tensor& b, const Conv& c) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t K = w.size(0), Cg = w.size(1), kh = w.size(2), kw = w.size(3);
  const int64_t OH = (H + 2 * c.ph - c.dh * (kh - 1) - 1) / c.sh + 1;
  const int64_t OW = (W + 2 * c.pw - c.dw * (kw - 1) - 1) / c.sw + 1;
  auto xv = test::values(x), wv = test::values(w);
  std::vector<double> bv = b.defined() ? test::values(b) : std::vector<double>(K, 0.0);
  std::vector<double> out(N * K * OH * OW);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t i = 0; i < OH; ++i)
        for (int64_t j = 0; j < OW; ++j) {
          double s = bv[k];
          const int64_t grp = k / (K / c.groups);
          for (int64_t cc = 0; cc < Cg; ++cc)
            for (int64_t u = 0; u < kh; ++u)
              for (int64_t v = 0; v < kw; ++v) {
                const int64_t h = i * c.sh - c.ph + u * c.dh, ww = j * c.sw - c.pw + v * c.dw;
                if (h < 0 || h >= H || ww < 0 || ww >= W) continue;
                s += wv[((k * Cg + cc) * kh + u) * kw + v] *
                     xv[((n * C + grp * Cg + cc) * H + h) * W + ww];
              }
          out[((n * K + k) * OH + i) * OW + j] = s;
        }
  return Tensor::from_vector(out, {N, K, OH, OW});
}

Tensor run_conv(const Tensor& x, const Tensor& w, const Tensor& b, const Conv& c) {
  return conv2d(x, w, b, Size2(c.sh, c.sw), ConvPadding(c.ph, c.pw), Size2(c.dh, c.dw), c.groups);
}

double dot(const Tensor& a, const Tensor& b) { return (a * b).sum().item(); }

}  // namespace

TEST_CASE("conv2d of a 3x3 image with a 2x2 kernel, by hand") {
  Tensor x = test::f64({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3});
  Tensor w = test::f64({1, 0, 0, -1}, {1, 1, 2, 2});
  // Each output is top-left minus bottom-right of its window: 1-5, 2-6, 4-8, 5-9.
  Tensor y = conv2d(x, w);
  CHECK(y.shape() == Shape{1, 1, 2, 2});
  check_values(y, {-4, -4, -4, -4});
  // With a bias and padding 1 the border windows see zeros.
  Tensor yb = conv2d(x, w, test::f64({0.5}), 1, 1);
  CHECK(yb.shape() == Shape{1, 1, 4, 4});
  check_values(yb, {-0.5, -1.5, -2.5, 0.5,  //
                    -3.5, -3.5, -3.5, 3.5,  //
                    -6.5, -3.5, -3.5, 6.5,  //
                    0.5, 7.5, 8.5, 9.5});
}

TEST_CASE("conv2d equals the definition: stride, padding, dilation, groups, bias") {
  struct Case {
    Shape x, w;
    Conv c;
    bool bias;
  };
  std::vector<Case> cases = {
      {{2, 3, 7, 6}, {4, 3, 3, 3}, {}, true},
      {{2, 3, 7, 6}, {4, 3, 3, 2}, {2, 1, 1, 0, 1, 1, 1}, false},
      {{1, 2, 8, 9}, {3, 2, 3, 3}, {1, 2, 2, 1, 2, 1, 1}, true},
      {{2, 4, 6, 6}, {6, 2, 3, 3}, {1, 1, 1, 1, 1, 1, 2}, true},   // 2 groups
      {{2, 4, 6, 5}, {4, 1, 3, 3}, {2, 2, 1, 1, 1, 1, 4}, true},   // depthwise
      {{2, 4, 5, 5}, {6, 4, 1, 1}, {}, true},                      // 1x1, pointwise path
      {{1, 1, 5, 5}, {1, 1, 5, 5}, {}, false},                     // kernel = image
      {{2, 2, 4, 4}, {2, 2, 2, 2}, {3, 3, 0, 0, 1, 1, 1}, false},  // stride > kernel
      {{1, 2, 5, 3}, {2, 2, 9, 9}, {1, 1, 4, 4, 1, 1, 1}, true},   // padding wider than the image
      {{2, 3, 6, 7}, {2, 3, 3, 3}, {1, 1, 2, 2, 2, 2, 1}, true},   // "same" size with dilation
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    CAPTURE(i);
    const Case& k = cases[i];
    Tensor x = leaf(k.x, -1, 1, 10 + i).detach();
    Tensor w = leaf(k.w, -1, 1, 20 + i).detach();
    Tensor b = k.bias ? leaf({k.w[0]}, -1, 1, 30 + i).detach() : Tensor();
    Tensor want = conv_by_hand(x, w, b, k.c);
    Tensor got = run_conv(x, w, b, k.c);
    REQUIRE(got.shape() == want.shape());
    check_values(got, test::values(want), 1e-12);
    // float32 gives the same numbers to float32 precision.
    Tensor got32 = run_conv(x.to(float32), w.to(float32), b.defined() ? b.to(float32) : b, k.c);
    CHECK(got32.dtype() == float32);
    CHECK(test::allclose(got32.to(float64), want, 1e-5, 1e-4));
  }
}

TEST_CASE("conv2d on a batch large enough to be split over threads equals the definition") {
  // N * K * (C * kh * kw) * OH * OW well above the threading threshold.
  Tensor x = leaf({6, 3, 12, 11}, -1, 1, 40).detach();
  Tensor w = leaf({8, 3, 3, 3}, -1, 1, 41).detach();
  Tensor b = leaf({8}, -1, 1, 42).detach();
  Conv c{1, 2, 1, 1, 1, 1, 1};
  check_values(run_conv(x, w, b, c), test::values(conv_by_hand(x, w, b, c)), 1e-12);
  // The input and weight gradients on this shape are the adjoints of the convolution:
  // <conv(x, w), g> = <x, dx> = <w, dw>.
  Tensor xr = x.clone().requires_grad_(), wr = w.clone().requires_grad_();
  Tensor y = run_conv(xr, wr, Tensor(), c);
  Tensor g = leaf(y.shape(), -1, 1, 43).detach();
  y.backward(g);
  const double s = dot(y.detach(), g);
  CHECK(dot(x, xr.grad()) == doctest::Approx(s).epsilon(1e-12));
  CHECK(dot(w, wr.grad()) == doctest::Approx(s).epsilon(1e-12));
  // And each entry of the weight gradient is the sum the definition gives.
  Tensor dw = conv2d_weight(x, g, 3, 3, Size2(1, 2), 1);
  CHECK(test::allclose(dw, wr.grad(), 1e-12, 1e-12));
  auto xv = test::values(x), gv = test::values(g), dv = test::values(dw);
  double want = 0;  // dw[5, 2, 0, 1]
  for (int64_t n = 0; n < 6; ++n)
    for (int64_t i = 0; i < y.size(2); ++i)
      for (int64_t j = 0; j < y.size(3); ++j) {
        int64_t h = i - 1, ww = 2 * j - 1 + 1;
        if (h < 0 || h >= 12 || ww < 0 || ww >= 11) continue;
        want += gv[((n * 8 + 5) * y.size(2) + i) * y.size(3) + j] *
                xv[((n * 3 + 2) * 12 + h) * 11 + ww];
      }
  CHECK(dv[((5 * 3 + 2) * 3 + 0) * 3 + 1] == doctest::Approx(want).epsilon(1e-12));
}

TEST_CASE("conv2d and its gradients on rows wider than a SIMD register, float32 and float64") {
  // Widths 37 and 40: im2col and col2im copy rows a whole register at a time and the rest with a
  // masked one (kernels/rows.h); the narrow cases above use only the masked part in float32.
  for (Conv c : {Conv{1, 1, 2, 2, 1, 1, 1}, Conv{1, 1, 0, 3, 1, 2, 1}}) {
    Tensor x = leaf({2, 2, 5, 37}, -1, 1, 44).detach();
    Tensor w = leaf({3, 2, 3, 5}, -1, 1, 45).detach();
    Tensor want = conv_by_hand(x, w, Tensor(), c);
    check_values(run_conv(x, w, Tensor(), c), test::values(want), 1e-12);
    Tensor g = leaf(want.shape(), -1, 1, 46).detach();
    Tensor gx64, gw64;
    for (Dtype dt : {float64, float32}) {
      CAPTURE(dtype_name(dt));
      Tensor xr = x.to(dt).clone().requires_grad_(), wr = w.to(dt).clone().requires_grad_();
      Tensor y = run_conv(xr, wr, Tensor(), c);
      CHECK(test::allclose(y.to(float64), want, 1e-5, 1e-4));
      y.backward(g.to(dt));
      if (dt == float64) {
        // The adjoint identities fix the float64 gradients: <y, g> = <x, dx> = <w, dw>.
        const double sum = dot(y.detach(), g);
        CHECK(dot(x, xr.grad()) == doctest::Approx(sum).epsilon(1e-12));
        CHECK(dot(w, wr.grad()) == doctest::Approx(sum).epsilon(1e-12));
        gx64 = xr.grad();
        gw64 = wr.grad();
      } else {
        CHECK(test::allclose(xr.grad().to(float64), gx64, 1e-4, 1e-4));
        CHECK(test::allclose(wr.grad().to(float64), gw64, 1e-4, 1e-4));
      }
    }
  }
}

TEST_CASE("conv2d with an unrolled input above the kept scratch size (16 MiB) equals its halves") {
  // 32 channels, 3x3, 128x128: the unrolled input is 288 x 16384 floats (18.9 MB) and gets a
  // buffer of its own; each 16-channel half (9.4 MB) uses the kept per-thread buffer.
  Tensor x = leaf({1, 32, 128, 128}, -1, 1, 47).detach().to(float32);
  Tensor w = leaf({2, 32, 3, 3}, -1, 1, 48).detach().to(float32);
  Tensor whole = conv2d(x, w, Tensor(), 1, 1);
  Tensor halves = conv2d(x.slice(1, 0, 16), w.slice(1, 0, 16), Tensor(), 1, 1) +
                  conv2d(x.slice(1, 16, 32), w.slice(1, 16, 32), Tensor(), 1, 1);
  CHECK(test::allclose(whole, halves, 1e-4, 1e-4));
}

TEST_CASE("conv2d with padding \"same\" keeps the size; an odd total pads the end") {
  Tensor x = leaf({1, 2, 5, 6}, -1, 1, 50).detach();
  // 3x3: one row / column each side, exactly padding 1.
  Tensor w3 = leaf({3, 2, 3, 3}, -1, 1, 51).detach();
  Tensor y3 = conv2d(x, w3, Tensor(), 1, "same");
  CHECK(y3.shape() == Shape{1, 3, 5, 6});
  CHECK(test::allclose(y3, conv2d(x, w3, Tensor(), 1, 1), 1e-12));
  // 2x4: totals 1 and 3 -> (0 before, 1 after) rows and (1 before, 2 after) columns.
  Tensor w24 = leaf({3, 2, 2, 4}, -1, 1, 52).detach();
  Tensor y24 = conv2d(x, w24, Tensor(), 1, "same");
  CHECK(y24.shape() == Shape{1, 3, 5, 6});
  CHECK(test::allclose(y24, conv2d(pad(x, {1, 2, 0, 1}), w24), 1e-12));
  // Dilation 2 with a 2x2 kernel: total 2 per axis, symmetric.
  Tensor y_d = conv2d(x, w24.slice(3, 0, 2), Tensor(), 1, "same", 2);
  CHECK(y_d.shape() == Shape{1, 3, 5, 6});
  // "valid" is no padding.
  CHECK(test::allclose(conv2d(x, w3, Tensor(), 1, "valid"), conv2d(x, w3), 1e-12));
}

TEST_CASE("conv1d equals conv2d over a height of one") {
  Tensor x = leaf({2, 4, 9}, -1, 1, 60).detach();
  Tensor w = leaf({6, 2, 3}, -1, 1, 61).detach();
  Tensor b = leaf({6}, -1, 1, 62).detach();
  Tensor y = conv1d(x, w, b, 2, 1, 2, 2);
  Conv c{1, 2, 0, 1, 1, 2, 2};
  Tensor want = conv_by_hand(x.unsqueeze(2), w.unsqueeze(2), b, c).squeeze(2);
  CHECK(y.shape() == want.shape());
  check_values(y, test::values(want));
  CHECK(conv1d(x, w.slice(1, 0, 2), Tensor(), 1, "same", 1, 2).shape() == Shape{2, 6, 9});
}

TEST_CASE("conv_transpose2d is the adjoint of conv2d and has PyTorch's output size") {
  struct Case {
    Shape x, w;  // x: the transposed conv's input; w: [Cin, Cout/G, kh, kw]
    Size2 s, p, op;
    int64_t groups;
    Size2 d;
  };
  std::vector<Case> cases = {
      {{2, 3, 4, 5}, {3, 2, 3, 3}, 1, 0, 0, 1, 1},
      {{2, 3, 4, 5}, {3, 2, 3, 2}, 2, 1, 1, 1, 1},
      {{1, 4, 3, 3}, {4, 3, 2, 2}, Size2(2, 3), Size2(0, 1), Size2(1, 2), 2, 1},
      {{1, 2, 3, 4}, {2, 1, 3, 3}, 1, 1, 0, 2, 2},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    CAPTURE(i);
    const Case& k = cases[i];
    Tensor x = leaf(k.x, -1, 1, 70 + i).detach();
    Tensor w = leaf(k.w, -1, 1, 80 + i).detach();
    Tensor y = conv_transpose2d(x, w, Tensor(), k.s, k.p, k.op, k.groups, k.d);
    const int64_t OH = (k.x[2] - 1) * k.s.h - 2 * k.p.h + k.d.h * (k.w[2] - 1) + k.op.h + 1;
    const int64_t OW = (k.x[3] - 1) * k.s.w - 2 * k.p.w + k.d.w * (k.w[3] - 1) + k.op.w + 1;
    CHECK(y.shape() == Shape{k.x[0], k.w[1] * k.groups, OH, OW});
    // <conv_transpose2d(x, w), z> = <x, conv2d(z, w)> for every z of the output's shape.
    Tensor z = leaf(y.shape(), -1, 1, 90 + i).detach();
    Tensor cz = conv2d(z, w, Tensor(), k.s, ConvPadding(k.p), k.d, k.groups);
    REQUIRE(cz.shape() == x.shape());
    CHECK(dot(y, z) == doctest::Approx(dot(x, cz)).epsilon(1e-12));
  }
  // By hand: one input pixel with stride 2 stamps the kernel; two pixels stamp it twice.
  Tensor x = test::f64({1, 2}, {1, 1, 1, 2});
  Tensor w = test::f64({1, 2, 3, 4}, {1, 1, 2, 2});
  check_values(conv_transpose2d(x, w, test::f64({10}), 2), {11, 12, 12, 14, 13, 14, 16, 18});
  check_values(conv_transpose2d(x, w), {1, 4, 4, 3, 10, 8});
}

TEST_CASE("conv2d gradients and second derivatives (float64)") {
  // Small shapes: each config with input, weight and bias requiring grad.
  check_gradients(
      [](const TensorList& a) { return conv2d(a[0], a[1], a[2]); },
      {leaf({2, 2, 4, 4}, -1, 1, 100), leaf({3, 2, 2, 2}, -1, 1, 101), leaf({3}, -1, 1, 102)});
  check_gradients(
      [](const TensorList& a) { return conv2d(a[0], a[1], a[2], Size2(2, 1), Size2(1, 0), 1); },
      {leaf({1, 2, 5, 4}, -1, 1, 103), leaf({2, 2, 3, 2}, -1, 1, 104), leaf({2}, -1, 1, 105)});
  check_gradients(  // dilation and padding
      [](const TensorList& a) { return conv2d(a[0], a[1], Tensor(), 1, 1, 2); },
      {leaf({1, 1, 5, 5}, -1, 1, 106), leaf({2, 1, 2, 2}, -1, 1, 107)});
  check_gradients(  // groups
      [](const TensorList& a) { return conv2d(a[0], a[1], a[2], 1, 1, 1, 2); },
      {leaf({1, 4, 3, 3}, -1, 1, 108), leaf({4, 2, 2, 2}, -1, 1, 109), leaf({4}, -1, 1, 110)});
  check_gradients(  // depthwise with stride
      [](const TensorList& a) { return conv2d(a[0], a[1], Tensor(), 2, 1, 1, 3); },
      {leaf({2, 3, 4, 4}, -1, 1, 111), leaf({3, 1, 3, 3}, -1, 1, 112)});
  check_gradients(  // "same" with an even kernel (asymmetric padding)
      [](const TensorList& a) { return conv2d(a[0], a[1], Tensor(), 1, "same"); },
      {leaf({1, 2, 3, 4}, -1, 1, 113), leaf({2, 2, 2, 2}, -1, 1, 114)});
  check_gradients(  // 1x1 (pointwise path)
      [](const TensorList& a) { return conv2d(a[0], a[1], a[2]); },
      {leaf({2, 3, 2, 3}, -1, 1, 115), leaf({2, 3, 1, 1}, -1, 1, 116), leaf({2}, -1, 1, 117)});
}

TEST_CASE("conv2d gradients when only the input or only the weight requires grad") {
  Tensor w = leaf({2, 2, 2, 2}, -1, 1, 120).detach();
  Tensor x = leaf({1, 2, 3, 3}, -1, 1, 121).detach();
  check_gradients([w](const TensorList& a) { return conv2d(a[0], w, Tensor(), 1, 1); },
                  {leaf({1, 2, 3, 3}, -1, 1, 122)});
  check_gradients([x](const TensorList& a) { return conv2d(x, a[0], Tensor(), 2, 1); },
                  {leaf({2, 2, 2, 2}, -1, 1, 123)});
}

TEST_CASE("conv1d, conv_transpose2d and conv2d_weight gradients and second derivatives") {
  check_gradients(
      [](const TensorList& a) { return conv1d(a[0], a[1], a[2], 2, 1, 1, 2); },
      {leaf({2, 2, 6}, -1, 1, 130), leaf({4, 1, 3}, -1, 1, 131), leaf({4}, -1, 1, 132)});
  check_gradients(
      [](const TensorList& a) { return conv_transpose2d(a[0], a[1], a[2], 2, 1, 1); },
      {leaf({1, 2, 3, 2}, -1, 1, 133), leaf({2, 3, 3, 2}, -1, 1, 134), leaf({3}, -1, 1, 135)});
  check_gradients(
      [](const TensorList& a) { return conv_transpose2d(a[0], a[1], Tensor(), 1, 0, 0, 2, 2); },
      {leaf({1, 4, 2, 3}, -1, 1, 136), leaf({4, 1, 2, 2}, -1, 1, 137)});
  check_gradients([](const TensorList& a) { return conv2d_weight(a[0], a[1], 2, 3, 1, 1); },
                  {leaf({2, 2, 3, 4}, -1, 1, 138), leaf({2, 3, 4, 4}, -1, 1, 139)});
  check_gradients([](const TensorList& a) { return conv2d_weight(a[0], a[1], 2, 2, 2, 0, 1, 2); },
                  {leaf({1, 4, 4, 4}, -1, 1, 140), leaf({1, 2, 2, 2}, -1, 1, 141)});
}

TEST_CASE("pad: constant and reflect values") {
  Tensor x = test::f64({1, 2, 3, 4, 5, 6}, {1, 2, 3});
  Tensor c = pad(x, {1, 2}, "constant", 9);
  CHECK(c.shape() == Shape{1, 2, 6});
  check_values(c, {9, 1, 2, 3, 9, 9, 9, 4, 5, 6, 9, 9});
  Tensor c2 = pad(x, {0, 1, 1, 0});
  CHECK(c2.shape() == Shape{1, 3, 4});
  check_values(c2, {0, 0, 0, 0, 1, 2, 3, 0, 4, 5, 6, 0});
  Tensor r = pad(x, {2, 2}, "reflect");
  check_values(r, {3, 2, 1, 2, 3, 2, 1, 6, 5, 4, 5, 6, 5, 4});
  Tensor r2 = pad(x, {0, 0, 1, 1}, "reflect");
  check_values(r2, {4, 5, 6, 1, 2, 3, 4, 5, 6, 1, 2, 3});
  CHECK(pad(x, {0, 0}).shape() == x.shape());
}

TEST_CASE("pad gradients and second derivatives") {
  check_gradients(
      [](const TensorList& a) {
        return pad(a[0], {1, 0, 2, 1}, "constant", 0.5);
      },
      {leaf({2, 2, 3}, -1, 1, 150)});
  check_gradients(
      [](const TensorList& a) {
        return pad(a[0], {2, 1, 1, 2}, "reflect");
      },
      {leaf({1, 3, 4}, -1, 1, 151)});
}

TEST_CASE("convolution errors name the op and the shapes") {
  Tensor x = zeros({2, 3, 5, 5}), w = zeros({4, 3, 3, 3});
  CHECK_THROWS_WITH_PARTS(conv2d(zeros({3, 5, 5}), w), ShapeError, "conv2d", "4-D", "[3, 5, 5]");
  CHECK_THROWS_WITH_PARTS(conv2d(x, zeros({4, 3, 3})), ShapeError, "conv2d", "[4, 3, 3]");
  CHECK_THROWS_WITH_PARTS(conv2d(zeros({2, 2, 5, 5}), w), ShapeError, "conv2d", "[2, 2, 5, 5]",
                          "[4, 3, 3, 3]", "2 channels", "expects 3");
  CHECK_THROWS_WITH_PARTS(conv2d(x, zeros({4, 1, 3, 3}), Tensor(), 1, 0, 1, 2), ShapeError,
                          "conv2d", "groups 2", "3 input channels", "[2, 3, 5, 5]");
  CHECK_THROWS_WITH_PARTS(conv2d(zeros({1, 4, 5, 5}), zeros({3, 2, 3, 3}), Tensor(), 1, 0, 1, 2),
                          ShapeError, "conv2d", "groups 2", "3 output channels");
  CHECK_THROWS_WITH_PARTS(conv2d(x, zeros({4, 3, 7, 3})), ShapeError, "conv2d", "larger",
                          "[2, 3, 5, 5]", "[4, 3, 7, 3]");
  CHECK_THROWS_WITH_PARTS(conv2d(x, w, Tensor(), 1, 0, 3), ShapeError, "conv2d", "dilation 3",
                          "larger");
  CHECK_NOTHROW(conv2d(x, zeros({4, 3, 7, 3}), Tensor(), 1, 1));  // fits once padded
  CHECK_THROWS_WITH_PARTS(conv2d(x, w, zeros({3})), ShapeError, "conv2d", "bias", "[3]");
  CHECK_THROWS_WITH_PARTS(conv2d(x, w, Tensor(), 0), ValueError, "conv2d", "stride");
  CHECK_THROWS_WITH_PARTS(conv2d(x, w, Tensor(), 1, -1), ValueError, "conv2d", "padding");
  CHECK_THROWS_WITH_PARTS(conv2d(x, w, Tensor(), 2, "same"), ValueError, "conv2d", "same",
                          "stride 1");
  CHECK_THROWS_WITH_PARTS(conv2d(x, w, Tensor(), 1, "full"), ValueError, "same", "full");
  CHECK_THROWS_WITH_PARTS(conv2d(zeros({2, 3, 5, 5}, int64), w), DtypeError, "conv2d", "int64");
  CHECK_THROWS_WITH_PARTS(conv1d(x, w), ShapeError, "conv1d", "3-D", "[2, 3, 5, 5]");
  CHECK_THROWS_WITH_PARTS(conv1d(zeros({2, 3, 4}), zeros({2, 3, 5})), ShapeError, "conv1d",
                          "larger", "[2, 3, 4]", "[2, 3, 5]");
  CHECK_THROWS_WITH_PARTS(conv_transpose2d(x, zeros({2, 3, 3, 3})), ShapeError, "conv_transpose2d",
                          "[2, 3, 5, 5]", "[2, 3, 3, 3]");
  CHECK_THROWS_WITH_PARTS(conv_transpose2d(x, zeros({3, 2, 3, 3}), Tensor(), 2, 0, 2), ValueError,
                          "conv_transpose2d", "output_padding");
  CHECK_THROWS_WITH_PARTS(pad(x, {1}), ValueError, "pad", "pairs");
  CHECK_THROWS_WITH_PARTS(pad(x, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1}), ShapeError, "pad",
                          "[2, 3, 5, 5]");
  CHECK_THROWS_WITH_PARTS(pad(x, {5, 0}, "reflect"), ShapeError, "pad", "reflect", "size 5");
  CHECK_THROWS_WITH_PARTS(pad(x, {-1, 0}), ValueError, "pad", ">= 0");
  CHECK_THROWS_WITH_PARTS(pad(x, {1, 0}, "circular"), ValueError, "pad", "circular");
}

TEST_CASE("check_tape replays each convolution and pooling node on its own") {
  auto r = check_tape(
      [](const TensorList& a) {
        Tensor h = max_pool2d(tanh(conv2d(a[0], a[1], a[2], 1, 1)), 2);  // no ReLU: no ties at 0
        Tensor t = conv_transpose2d(h, a[3], Tensor(), 2);
        return (conv2d_weight(a[0], t, 3, 3, 1, 1) * a[1]).sum() + avg_pool2d(t, 2).sum();
      },
      {leaf({2, 2, 4, 4}, -1, 1, 160), leaf({3, 2, 3, 3}, -1, 1, 161), leaf({3}, -1, 1, 162),
       leaf({3, 3, 2, 2}, -1, 1, 163)});
  INFO(r.to_string());
  CHECK(r.ok);
  CHECK(r.nodes_skipped == 0);
  std::vector<std::string> ops;
  for (const auto& n : r.nodes) ops.push_back(n.op);
  for (const char* op : {"conv2d", "max_pool2d", "conv_transpose2d", "conv2d_weight"})
    CHECK_MESSAGE(std::find(ops.begin(), ops.end(), op) != ops.end(), op);
}
