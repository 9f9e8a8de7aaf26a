// Shape ops: reshape/view, flatten, transpose/permute, squeeze/unsqueeze, expand, slice/select,
// cat/stack/split/chunk, tril/triu. Values, which results share storage, first and second
// derivatives (float64 gradcheck and gradgradcheck), and errors naming the op and the shapes.
#include "support.h"

using namespace ag;
using test::check_gradients;
using test::leaf;

namespace {

Tensor iota(const Shape& s) {
  return arange(0, static_cast<double>(s.numel()), 1, float64).reshape(s);
}

std::vector<double> values(const Tensor& t) { return t.to(float64).to_vector<double>(); }

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
  // A transposed 2-D tensor whose rows stay contiguous can still be viewed along them.
  Tensor m = iota({4, 6});
  Tensor cols = slice(m, 1, 0, 6);
  CHECK(view(cols, {2, 2, 6}).shape() == Shape{2, 2, 6});
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
  CHECK_THROWS_WITH_PARTS(flatten(x, 2, 1), IndexError, "flatten");
  CHECK_THROWS_AS(unsqueeze(x, 6), IndexError);
  CHECK_THROWS_AS(squeeze(x, 4), IndexError);
}

TEST_CASE("transpose and permute are views with permuted strides") {
  Tensor x = iota({2, 3, 4});
  Tensor p = permute(x, {2, 0, 1});
  CHECK(p.shape() == Shape{4, 2, 3});
  CHECK(shares_storage(p, x));
  CHECK(p.at({1, 1, 2}) == x.at({1, 2, 1}));
  CHECK(transpose(x, -1, 0).shape() == Shape{4, 3, 2});
  CHECK(iota({2, 5}).t().shape() == Shape{5, 2});
  CHECK(values(permute(p, {1, 2, 0})) == values(x));
  CHECK_THROWS_WITH_PARTS(permute(x, {0, 1}), ShapeError, "permute", "[2, 3, 4]");
  CHECK_THROWS_WITH_PARTS(permute(x, {0, 1, 1}), IndexError, "permute", "repeated");
  CHECK_THROWS_AS(transpose(x, 0, 3), IndexError);
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
  CHECK_THROWS_WITH_PARTS(slice(y, 0, 0, 2, 0), ValueError, "slice", "step");
  CHECK_THROWS_WITH_PARTS(select(y, 0, 4), IndexError, "select", "4", "[4, 6]");
  CHECK_THROWS_AS(slice(y, 2, 0, 1), IndexError);
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
}

TEST_CASE("tril and triu, with offsets; a bool mask stays bool (the causal mask)") {
  Tensor x = iota({3, 3}) + 1.0;
  CHECK(values(tril(x)) == std::vector<double>{1, 0, 0, 4, 5, 0, 7, 8, 9});
  CHECK(values(triu(x)) == std::vector<double>{1, 2, 3, 0, 5, 6, 0, 0, 9});
  CHECK(values(triu(x, 1)) == std::vector<double>{0, 2, 3, 0, 0, 6, 0, 0, 0});
  CHECK(values(tril(x, -1)) == std::vector<double>{0, 0, 0, 4, 0, 0, 7, 8, 0});
  CHECK(tril(iota({2, 3, 3})).shape() == Shape{2, 3, 3});
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
  // Non-linear use so that second derivatives are not trivially zero.
  check_gradients(
      [](const TensorList& v) {
        return mul(slice(v[0], 1, 0, 2), permute(v[0], {0, 1}));
      },
      {leaf({2, 2})});
}
