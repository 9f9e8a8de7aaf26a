// Shape ops: reshape/view, flatten, transpose/permute, squeeze/unsqueeze, expand, slice/select,
// cat/stack/split/chunk, tril/triu. Values, which results share storage, first and second
// derivatives (float64 gradcheck and gradgradcheck), and errors naming the op and the shapes.
#include "support.h"

using namespace ag;
using test::check_gradients;
using test::leaf;
using test::values;

namespace {

Tensor iota(const Shape& s) {
  return arange(0, static_cast<double>(s.numel()), 1, float64).reshape(s);
}

bool shares_storage(const Tensor& a, const Tensor& b) {
  return a.impl()->storage == b.impl()->storage;
}

}  // namespace

TEST_CASE("reshape and view: -1 is inferred; views share storage; strided input is copied") {
  Tensor x = iota({2, 3, 4});
  Tensor r = reshape(x, {6, -1});
  CHECK(r.shape() == Shape{6, 4});
  CHECK(shares_storage(r, x));
  CHECK(values(r) == values(x));
  CHECK(view(x, {4, 6}).shape() == Shape{4, 6});
  CHECK(x.reshape({-1}).shape() == Shape{24});
  Tensor t = transpose(x, 0, 2);  // [4, 3, 2], not contiguous
  CHECK_FALSE(t.is_contiguous());
  Tensor flat = reshape(t, {-1});
  CHECK_FALSE(shares_storage(flat, x));
  CHECK(values(flat) == values(t.contiguous()));
  CHECK_THROWS_WITH_PARTS(view(t, {24}), ShapeError, "view", "[4, 3, 2]", "reshape");
  CHECK_THROWS_WITH_PARTS(reshape(x, {5, -1}), ShapeError, "reshape", "[2, 3, 4]", "[5, -1]");
  CHECK_THROWS_WITH_PARTS(reshape(x, {-1, -1}), ShapeError, "reshape", "-1");
  CHECK_THROWS_WITH_PARTS(reshape(x, {7, 3}), ShapeError, "reshape", "24", "21");
  // A column slice ([4, 3] with row stride 6) can split its rows but not merge rows and columns.
  Tensor m = iota({4, 6});
  Tensor cols = slice(m, 1, 0, 3);
  Tensor v = view(cols, {2, 2, 3});
  CHECK(shares_storage(v, m));
  CHECK(v.strides() == Shape{12, 6, 1});
  CHECK(v.at({1, 0, 2}) == 14);
  CHECK_THROWS_WITH_PARTS(view(cols, {12}), ShapeError, "view", "[4, 3]", "[12]", "reshape");
  CHECK(values(reshape(cols, {12})) ==
        std::vector<double>{0, 1, 2, 6, 7, 8, 12, 13, 14, 18, 19, 20});
  // An expanded tensor (stride 0) can be split along the broadcast axis, not flattened.
  Tensor e = expand(iota({3, 1}), {3, 4});
  CHECK(view(e, {3, 2, 2}).strides() == Shape{1, 0, 0});
  CHECK_THROWS_WITH_PARTS(view(e, {12}), ShapeError, "view", "[3, 4]", "reshape");
  // Size-1 axes can be added or dropped by a view.
  CHECK(view(x, {1, 2, 3, 4, 1}).shape() == Shape{1, 2, 3, 4, 1});
  CHECK(values(view(x, {1, 2, 3, 4, 1})) == values(x));
  // Writes through a view are seen by the base.
  view(x, {24}).select(0, 5).fill_(-7);
  CHECK(x.at({0, 1, 1}) == -7);
}

TEST_CASE("flatten, squeeze, unsqueeze") {
  Tensor x = iota({2, 1, 3, 1});
  CHECK(flatten(x).shape() == Shape{6});
  CHECK(flatten(x, 1).shape() == Shape{2, 3});
  CHECK(flatten(x, 0, 1).shape() == Shape{2, 3, 1});
  CHECK(squeeze(x).shape() == Shape{2, 3});
  CHECK(squeeze(x, 1).shape() == Shape{2, 3, 1});
  CHECK(squeeze(x, 0).shape() == Shape{2, 1, 3, 1});  // size 2: unchanged
  CHECK(unsqueeze(x, 0).shape() == Shape{1, 2, 1, 3, 1});
  CHECK(unsqueeze(x, -1).shape() == Shape{2, 1, 3, 1, 1});
  Tensor t = transpose(iota({2, 3}), 0, 1);
  Tensor u = unsqueeze(t, 1);
  CHECK(u.shape() == Shape{3, 1, 2});
  CHECK(values(u) == values(t.contiguous()));
  CHECK(shares_storage(u, t));
  CHECK(values(flatten(transpose(iota({2, 3}), 0, 1))) == std::vector<double>{0, 3, 1, 4, 2, 5});
  CHECK(flatten(scalar_tensor(2.0)).shape() == Shape{1});
  CHECK(unsqueeze(scalar_tensor(2.0), 0).shape() == Shape{1});
  CHECK_THROWS_WITH_PARTS(flatten(x, 2, 1), IndexError, "flatten");
  CHECK_THROWS_WITH_PARTS(unsqueeze(x, 6), IndexError, "unsqueeze", "6");
  CHECK_THROWS_WITH_PARTS(squeeze(x, 4), IndexError, "squeeze", "4");
  CHECK_THROWS_WITH_PARTS(flatten(x, 0, 7), IndexError, "flatten", "7");
  // A 0-d tensor takes axis 0 or -1 only, as in PyTorch (found by the property test: flatten and
  // squeeze returned early for 0-d inputs and accepted any axis).
  Tensor s = scalar_tensor(2.0);
  CHECK(squeeze(s, -1).shape() == Shape{});
  CHECK(flatten(s, 0, -1).shape() == Shape{1});
  CHECK_THROWS_WITH_PARTS(squeeze(s, -2), IndexError, "squeeze", "-2");
  CHECK_THROWS_WITH_PARTS(squeeze(s, 1), IndexError, "squeeze", "1");
  CHECK_THROWS_WITH_PARTS(flatten(s, -2), IndexError, "flatten", "-2");
  CHECK_THROWS_WITH_PARTS(flatten(s, 0, 3), IndexError, "flatten", "3");
}

TEST_CASE("transpose and permute are views with permuted strides") {
  Tensor x = iota({2, 3, 4});
  Tensor p = permute(x, {2, 0, 1});
  CHECK(p.shape() == Shape{4, 2, 3});
  CHECK(shares_storage(p, x));
  CHECK(p.at({1, 1, 2}) == x.at({1, 2, 1}));
  CHECK(transpose(x, -1, 0).shape() == Shape{4, 3, 2});
  Tensor m = iota({2, 3});
  CHECK(m.t().shape() == Shape{3, 2});
  CHECK(values(m.t()) == std::vector<double>{0, 3, 1, 4, 2, 5});
  CHECK(shares_storage(m.t(), m));
  CHECK(iota({2, 3, 5}).t().shape() == Shape{2, 5, 3});  // last two axes
  CHECK(values(transpose(m, 1, 0)) == values(m.t()));
  CHECK(values(permute(p, {1, 2, 0})) == values(x));
  CHECK_THROWS_WITH_PARTS(permute(x, {0, 1}), ShapeError, "permute", "[2, 3, 4]");
  CHECK_THROWS_WITH_PARTS(permute(x, {0, 1, 1}), IndexError, "permute", "repeated");
  CHECK_THROWS_WITH_PARTS(transpose(x, 0, 3), IndexError, "transpose", "3");
  CHECK_THROWS_WITH_PARTS(permute(x, {0, 1, 5}), IndexError, "permute", "5");
}

TEST_CASE("expand and broadcast_to: stride 0, -1 keeps a size, errors name both shapes") {
  Tensor x = iota({3, 1});
  Tensor e = expand(x, {2, 3, 4});
  CHECK(e.shape() == Shape{2, 3, 4});
  CHECK(e.strides()[0] == 0);
  CHECK(e.strides()[2] == 0);
  CHECK(shares_storage(e, x));
  CHECK(e.at({1, 2, 3}) == 2);
  CHECK(broadcast_to(x, {-1, 5}).shape() == Shape{3, 5});
  CHECK(values(broadcast_to(x, {2, 3, 2})) ==
        std::vector<double>{0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2});
  CHECK(expand(x, {3, 1}).same(x));  // nothing to do
  CHECK(expand(scalar_tensor(4.0), {2, 2}).at({1, 1}) == 4);
  CHECK_THROWS_WITH_PARTS(expand(x, {-1, 3, 4}), ShapeError, "expand", "-1");
  CHECK_THROWS_WITH_PARTS(expand(x, {2, 4}), ShapeError, "expand", "[3, 1]", "[2, 4]");
  CHECK_THROWS_WITH_PARTS(expand(iota({2, 3}), {3}), ShapeError, "expand", "[2, 3]", "[3]");
}

TEST_CASE("slice: start, stop, step, negative and clamped bounds, on any axis; select") {
  Tensor x = iota({4, 6});
  CHECK(values(slice(x, 1, 1, 5, 2)) == std::vector<double>{1, 3, 7, 9, 13, 15, 19, 21});
  CHECK(slice(x, 0, -2, 100).shape() == Shape{2, 6});
  CHECK(values(slice(x, 0, -2, 100)) == values(slice(x, 0, 2, 4)));
  CHECK(slice(x, 1, 4, 2).shape() == Shape{4, 0});  // empty
  CHECK(slice(x, -1, 0, 6, 5).shape() == Shape{4, 2});
  Tensor s = slice(x, 0, 1, 3);
  CHECK(shares_storage(s, x));
  s.fill_(-1);  // writes through the view
  CHECK(x.at({1, 0}) == -1);
  CHECK(x.at({0, 0}) == 0);
  Tensor y = iota({4, 6});
  CHECK(values(select(y, 1, -1)) == std::vector<double>{5, 11, 17, 23});
  CHECK(values(y[2]) == std::vector<double>{12, 13, 14, 15, 16, 17});
  // Negative stop, negative start with a step, on each axis of a 3-D tensor.
  Tensor z = iota({4, 3, 5});
  CHECK(values(slice(y, 1, 0, -1, 2)) ==
        std::vector<double>{0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22});
  CHECK(values(slice(y, 1, -5, -1, 3)) == std::vector<double>{1, 4, 7, 10, 13, 16, 19, 22});
  CHECK(values(slice(y, 0, -100, -1, 2)) ==
        std::vector<double>{0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 16, 17});
  Tensor z0 = slice(z, 0, 1, 4, 2);  // rows 1 and 3
  CHECK(z0.shape() == Shape{2, 3, 5});
  CHECK(z0.at({1, 2, 4}) == 3 * 15 + 2 * 5 + 4);
  Tensor z1 = slice(z, 1, -2, 3);  // middle axis, entries 1 and 2
  CHECK(z1.shape() == Shape{4, 2, 5});
  CHECK(values(z1.select(0, 0)) == std::vector<double>{5, 6, 7, 8, 9, 10, 11, 12, 13, 14});
  Tensor z2 = slice(z, 2, 1, -1, 2);  // last axis, entries 1 and 3
  CHECK(z2.shape() == Shape{4, 3, 2});
  CHECK(values(z2.select(0, 1)) == std::vector<double>{16, 18, 21, 23, 26, 28});
  CHECK(slice(z, 1, 2, 1).shape() == Shape{4, 0, 5});
  CHECK(slice(z, 1, 5, 9).shape() == Shape{4, 0, 5});  // start clamped to the end
  // A slice of a slice.
  CHECK(values(slice(slice(y, 1, 1, 6, 2), 1, -2, 3)) ==
        std::vector<double>{3, 5, 9, 11, 15, 17, 21, 23});
  CHECK(values(select(z, 1, 1).select(1, -1)) == std::vector<double>{9, 24, 39, 54});
  CHECK(shares_storage(select(z, 2, 0), z));
  CHECK_THROWS_WITH_PARTS(slice(y, 0, 0, 2, 0), ValueError, "slice", "step");
  CHECK_THROWS_WITH_PARTS(slice(y, 0, 0, 2, -1), ValueError, "slice", "-1");
  CHECK_THROWS_WITH_PARTS(select(y, 0, 4), IndexError, "select", "4", "[4, 6]");
  CHECK_THROWS_WITH_PARTS(select(y, 1, -7), IndexError, "select", "-7", "[4, 6]");
  CHECK_THROWS_WITH_PARTS(slice(y, 2, 0, 1), IndexError, "slice", "2");
  // A 0-d tensor has no axis to slice or select along.
  Tensor s0 = scalar_tensor(1.0, float64);
  CHECK_THROWS_WITH_PARTS(slice(s0, 0, 0, 1), ShapeError, "slice", "[]");
  CHECK_THROWS_WITH_PARTS(select(s0, 0, 0), ShapeError, "select", "[]");
}

TEST_CASE("the gradient of a slice lands in the sliced positions") {
  Tensor x = leaf({3, 5});
  (slice(x, 1, -4, 5, 2) * 3.0).sum().backward();
  CHECK(values(x.grad()) == std::vector<double>{0, 3, 0, 3, 0, 0, 3, 0, 3, 0, 0, 3, 0, 3, 0});
  Tensor w = leaf({2, 2});
  (select(w, 0, -1) + select(w, 1, 0)).sum().backward();  // row 1 plus column 0
  CHECK(values(w.grad()) == std::vector<double>{1, 0, 2, 1});
}

TEST_CASE("slice_backward takes a negative axis and checks its arguments") {
  // Found by the property test: a negative axis indexed the shapes directly (out of bounds), so
  // the forward mis-sized the slice and the backward returned a gradient of the wrong shape.
  Tensor g = leaf({3, 2, 2});
  Tensor out = slice_backward(g, {3, 4, 2}, -2, 0, 2);
  CHECK(values(out) == values(slice_backward(g, {3, 4, 2}, 1, 0, 2)));
  CHECK(values(slice(out, -2, 0, 4, 2)) == values(g));
  check_gradients(
      [](const TensorList& v) {
        return slice_backward(v[0], {3, 4, 2}, -2, 1, 2);
      },
      {leaf({3, 2, 2})});
  CHECK_THROWS_WITH_PARTS(slice_backward(g, {3, 4, 2}, 3, 0, 1), IndexError, "slice_backward",
                          "axis 3");
  CHECK_THROWS_WITH_PARTS(slice_backward(g, {3, 4}, 0, 0, 1), ShapeError, "slice_backward",
                          "[3, 2, 2]", "[3, 4]");
  CHECK_THROWS_WITH_PARTS(slice_backward(g, {3, 4, 2}, 1, 0, 0), ValueError, "slice_backward",
                          "step");
}

TEST_CASE("cat, stack, split, chunk") {
  Tensor a = iota({2, 3}), b = iota({2, 2}) + 100.0;
  Tensor c = cat({a, b}, 1);
  CHECK(c.shape() == Shape{2, 5});
  CHECK(values(c) == std::vector<double>{0, 1, 2, 100, 101, 3, 4, 5, 102, 103});
  CHECK(cat({a, a}, 0).shape() == Shape{4, 3});
  Tensor s = stack({a, a * 2.0}, 1);
  CHECK(s.shape() == Shape{2, 2, 3});
  CHECK(s.at({1, 1, 2}) == 10);
  auto parts = split(iota({7}), 3);
  REQUIRE(parts.size() == 3);
  CHECK(parts[2].shape() == Shape{1});
  CHECK(values(parts[1]) == std::vector<double>{3, 4, 5});
  auto ch = chunk(iota({2, 6}), 3, 1);
  REQUIRE(ch.size() == 3);
  CHECK(ch[0].shape() == Shape{2, 2});
  CHECK(values(ch[2]) == std::vector<double>{4, 5, 10, 11});
  CHECK_THROWS_WITH_PARTS(cat({a, iota({3, 2})}, 1), ShapeError, "cat", "[3, 2]", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(cat({a, a.to(float32)}, 0), DtypeError, "cat", "float32", "float64");
  CHECK_THROWS_WITH_PARTS(cat({}, 0), ValueError, "cat");
  CHECK_THROWS_WITH_PARTS(stack({a, b}), ShapeError, "stack", "[2, 2]", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(split(a, 0), ValueError, "split");
  CHECK_THROWS_WITH_PARTS(chunk(a, 0), ValueError, "chunk");
  // More than two tensors, negative axis, a 3-D middle axis.
  Tensor c3 = cat({iota({2, 1}), iota({2, 2}) + 10.0, iota({2, 1}) + 20.0}, -1);
  CHECK(values(c3) == std::vector<double>{0, 10, 11, 20, 1, 12, 13, 21});
  Tensor m3 = cat({iota({2, 1, 2}), iota({2, 2, 2}) + 10.0}, 1);
  CHECK(m3.shape() == Shape{2, 3, 2});
  CHECK(values(m3) == std::vector<double>{0, 1, 10, 11, 12, 13, 2, 3, 14, 15, 16, 17});
  CHECK(values(cat({a}, 0)) == values(a));
  // stack on the last axis interleaves.
  Tensor sl = stack({iota({3}), iota({3}) + 10.0}, -1);
  CHECK(sl.shape() == Shape{3, 2});
  CHECK(values(sl) == std::vector<double>{0, 10, 1, 11, 2, 12});
  // split and chunk return views; chunk of 5 into 3 gives 2, 2, 1; of 6 into 4 gives 3 pieces of 2.
  Tensor v = iota({5});
  auto c5 = chunk(v, 3);
  REQUIRE(c5.size() == 3);
  CHECK(c5[2].shape() == Shape{1});
  CHECK(shares_storage(c5[1], v));
  CHECK(chunk(iota({6}), 4).size() == 3);
  CHECK(split(iota({3, 4}), 10, 1).size() == 1);
  CHECK(values(split(iota({3, 4}), 3, -1)[1]) == std::vector<double>{3, 7, 11});
  // An empty axis gives one empty piece (as in PyTorch), so cat undoes split; it gave none, and
  // cat of nothing raised (found by the property test).
  Tensor e = leaf({2, 0});
  auto pieces = split(e, 2, 1);
  REQUIRE(pieces.size() == 1);
  CHECK(pieces[0].shape() == Shape{2, 0});
  CHECK(cat(pieces, 1).shape() == Shape{2, 0});
  REQUIRE(chunk(e, 3, -1).size() == 1);
  (pieces[0].sum() + e.sum()).backward();
  CHECK(e.grad().shape() == Shape{2, 0});
  // 0-d tensors have no axis to join or split along.
  Tensor s0 = scalar_tensor(1.0, float64);
  CHECK_THROWS_WITH_PARTS(cat({s0, s0}), ShapeError, "cat", "[]");
  CHECK(stack({s0, s0 * 2.0}).shape() == Shape{2});  // stack adds the axis
  CHECK_THROWS_WITH_PARTS(split(s0, 1), ShapeError, "split", "[]");
  CHECK_THROWS_WITH_PARTS(chunk(s0, 1), ShapeError, "chunk", "[]");
  CHECK_THROWS_WITH_PARTS(cat({a, a}, 2), IndexError, "cat", "2");
  CHECK_THROWS_WITH_PARTS(cat({a, iota({6})}, 0), ShapeError, "cat", "[6]", "[2, 3]");
  // stack checks dtypes itself: its error named the cat it is built on (found by the property
  // test).
  CHECK_THROWS_WITH_PARTS(stack({a, a.to(float32)}), DtypeError, "stack", "float32", "float64");
}

TEST_CASE("split records one node for all its pieces; their gradients are joined back") {
  Tensor x = leaf({2, 7});
  auto p = split(x, 3, 1);  // widths 3, 3, 1
  REQUIRE(p.size() == 3);
  CHECK(p[0].grad_fn() == p[2].grad_fn());
  CHECK(p[1].impl()->output_nr == 1);
  CHECK(p[0].grad_fn()->name() == "split");
  // Piece 1 unused: its part of x.grad is zero; piece 2 used twice; retain_grad on a piece.
  p[2].retain_grad();
  Tensor y = sum(p[0] * 2.0) + sum(p[2] * p[2]);
  y.backward();
  std::vector<double> xv = values(x), want(14, 0.0);
  for (int64_t r = 0; r < 2; ++r) {
    for (int64_t c = 0; c < 3; ++c) want[r * 7 + c] = 2.0;
    want[r * 7 + 6] = 2.0 * xv[r * 7 + 6];
  }
  CHECK(values(x.grad()) == want);
  CHECK(values(p[2].grad()) == std::vector<double>{2.0 * xv[6], 2.0 * xv[13]});
  // Pieces are views, like slices: writing into one in place while recording is refused.
  Tensor z = leaf({6});
  auto q = split(z * 1.0, 2);
  CHECK_THROWS_WITH_PARTS(q[1].mul_(3.0), AutogradError, "mul_", "view", "[2]");
  // check_tape replays the split node (all pieces) on its own.
  TapeReport r = check_tape(
      [](const TensorList& v) {
        auto s = split(v[0], 2, 0);
        return sum(s[0] * s[2]) + sum(s[1]);
      },
      {leaf({6, 2})});
  CHECK(r.ok);
  CHECK(r.nodes_checked >= 2);
  bool saw_split = false;
  for (const auto& n : r.nodes) saw_split = saw_split || n.op == "split";
  CHECK(saw_split);
}

TEST_CASE("tril and triu, with offsets; a bool mask stays bool (the causal mask)") {
  Tensor x = iota({3, 3}) + 1.0;
  CHECK(values(tril(x)) == std::vector<double>{1, 0, 0, 4, 5, 0, 7, 8, 9});
  CHECK(values(triu(x)) == std::vector<double>{1, 2, 3, 0, 5, 6, 0, 0, 9});
  CHECK(values(triu(x, 1)) == std::vector<double>{0, 2, 3, 0, 0, 6, 0, 0, 0});
  CHECK(values(tril(x, -1)) == std::vector<double>{0, 0, 0, 4, 0, 0, 7, 8, 0});
  Tensor b = tril(iota({2, 3, 3}));  // each matrix of a batch
  CHECK(b.shape() == Shape{2, 3, 3});
  CHECK(values(b.select(0, 1)) == std::vector<double>{9, 0, 0, 12, 13, 0, 15, 16, 17});
  // Non-square, offsets beyond the diagonal.
  Tensor r = iota({2, 4}) + 1.0;
  CHECK(values(triu(r, 2)) == std::vector<double>{0, 0, 3, 4, 0, 0, 0, 8});
  CHECK(values(tril(r, 1)) == std::vector<double>{1, 2, 0, 0, 5, 6, 7, 0});
  CHECK(values(tril(r, -5)) == std::vector<double>(8, 0.0));
  CHECK(values(triu(r, -5)) == values(r));
  // Integer input stays integer.
  Tensor ti = triu(arange(9, int64).reshape({3, 3}));
  CHECK(ti.dtype() == int64);
  CHECK(ti.to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 0, 4, 5, 0, 0, 8});
  Tensor lowb = tril(ones({2, 3}, boolean));
  CHECK(lowb.dtype() == boolean);
  CHECK(values(lowb) == std::vector<double>{1, 0, 0, 1, 1, 0});
  Tensor mask = triu(ones({4, 4}, boolean), 1);
  CHECK(mask.dtype() == boolean);
  std::vector<bool> got;
  for (int64_t i = 0; i < 16; ++i) got.push_back(mask.contiguous().data<bool>()[i]);
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 4; ++j) CHECK(got[i * 4 + j] == (j > i));
  Tensor scores = masked_fill(zeros({4, 4}), mask, -1e9);
  CHECK(scores.at({0, 3}) == -1e9);
  CHECK(scores.at({3, 0}) == 0);
  CHECK_THROWS_WITH_PARTS(tril(iota({3})), ShapeError, "tril", "[3]");
  CHECK_THROWS_WITH_PARTS(triu(scalar_tensor(1.0)), ShapeError, "triu", "[]");
}

TEST_CASE("first and second derivatives of the shape ops") {
  check_gradients(
      [](const TensorList& v) {
        return reshape(v[0], {3, -1}) * 2.0;
      },
      {leaf({2, 3, 2})});
  check_gradients([](const TensorList& v) { return view(v[0], {6}); }, {leaf({2, 3})});
  check_gradients([](const TensorList& v) { return reshape(transpose(v[0], 0, 1), {-1}); },
                  {leaf({2, 3})});
  check_gradients([](const TensorList& v) { return flatten(v[0], 1); }, {leaf({2, 3, 2})});
  check_gradients(
      [](const TensorList& v) {
        return permute(v[0], {2, 0, 1}) * 3.0;
      },
      {leaf({2, 3, 4})});
  check_gradients([](const TensorList& v) { return squeeze(unsqueeze(v[0], 1)); }, {leaf({2, 3})});
  check_gradients(
      [](const TensorList& v) {
        return expand(v[0], {2, 3, 4}) * 1.5;
      },
      {leaf({3, 1})});
  check_gradients([](const TensorList& v) { return slice(v[0], 1, 1, 6, 2); }, {leaf({3, 6})});
  check_gradients([](const TensorList& v) { return slice(v[0], 0, -2, 10); }, {leaf({4, 2})});
  check_gradients([](const TensorList& v) { return select(v[0], 1, 2); }, {leaf({3, 4})});
  check_gradients(
      [](const TensorList& v) {
        return cat({v[0], v[1] * 2.0}, 1);
      },
      {leaf({2, 3}), leaf({2, 2})});
  check_gradients(
      [](const TensorList& v) {
        return stack({v[0], v[1]}, 0) * v[0];
      },
      {leaf({2, 3}), leaf({2, 3})});
  check_gradients(
      [](const TensorList& v) {
        auto p = split(v[0], 2, 1);
        return p[0] * p[1];
      },
      {leaf({3, 4})});
  check_gradients([](const TensorList& v) { return chunk(v[0], 3, 0)[2]; }, {leaf({6, 2})});
  check_gradients([](const TensorList& v) { return tril(v[0], 1) + triu(v[0], -1); },
                  {leaf({2, 3, 3})});
  check_gradients([](const TensorList& v) { return view(v[0], {-1, 2}); }, {leaf({3, 2, 2})});
  check_gradients([](const TensorList& v) { return v[0].t() * v[1]; },
                  {leaf({3, 2}), leaf({2, 3}, -1, 1, 2)});
  check_gradients([](const TensorList& v) { return flatten(v[0].t()); }, {leaf({3, 4})});
  check_gradients([](const TensorList& v) { return unsqueeze(v[0].t(), 1) * 2.0; }, {leaf({3, 4})});
  check_gradients([](const TensorList& v) { return squeeze(v[0], 1); }, {leaf({2, 1, 3})});
  // Broadcast shapes: an expanded input times a full one.
  check_gradients(
      [](const TensorList& v) {
        return broadcast_to(v[0], {2, 3, 4}) * v[1];
      },
      {leaf({3, 1}), leaf({2, 3, 4}, -1, 1, 3)});
  check_gradients([](const TensorList& v) { return expand(v[0], {-1, 4}) * v[0]; }, {leaf({3, 1})});
  // Slices with steps and negative bounds on every axis of a 3-D tensor.
  check_gradients([](const TensorList& v) { return slice(v[0], 0, 0, 5, 3); }, {leaf({5, 2, 3})});
  check_gradients([](const TensorList& v) { return slice(v[0], 1, -3, -1, 2); }, {leaf({2, 4, 3})});
  check_gradients([](const TensorList& v) { return slice(v[0], 2, -4, 10, 2); }, {leaf({2, 3, 5})});
  check_gradients([](const TensorList& v) { return slice(slice(v[0], 0, 1, 4), 1, 0, 4, 3); },
                  {leaf({4, 4})});
  check_gradients([](const TensorList& v) { return select(v[0], 0, -1) * select(v[0], 2, 0); },
                  {leaf({3, 3, 3})});
  check_gradients(
      [](const TensorList& v) {
        return cat({v[0], v[1], v[0] * v[0]}, -1);
      },
      {leaf({2, 1, 2}), leaf({2, 1, 3}, -1, 1, 4)});
  check_gradients(
      [](const TensorList& v) {
        return cat({v[0], v[1]}, 1);
      },
      {leaf({2, 1, 2}), leaf({2, 3, 2}, -1, 1, 5)});
  // Only some of the joined tensors require grad.
  check_gradients(
      [](const TensorList& v) {
        return cat({v[0], iota({1, 3})}, 0) * 2.0;
      },
      {leaf({2, 3})});
  check_gradients(
      [](const TensorList& v) {
        return stack({v[0], v[1] * v[0]}, -1);
      },
      {leaf({2, 3}), leaf({2, 3}, -1, 1, 6)});
  check_gradients(
      [](const TensorList& v) {
        auto p = chunk(v[0], 3, 1);  // pieces of 2, 2, 1
        return p[0] * p[1] + p[2];
      },
      {leaf({2, 5})});
  check_gradients([](const TensorList& v) { return triu(v[0], 1) * v[0]; }, {leaf({3, 4})});
  check_gradients([](const TensorList& v) { return tril(v[0], -1) * v[0]; }, {leaf({2, 4, 3})});
  // Non-linear use so that second derivatives are not trivially zero.
  check_gradients(
      [](const TensorList& v) {
        return mul(slice(v[0], 1, 0, 2), permute(v[0], {0, 1}));
      },
      {leaf({2, 2})});
}
