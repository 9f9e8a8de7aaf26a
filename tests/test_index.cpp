// Index ops with int64 index tensors: index_select, index_add, gather, scatter_add, embedding,
// one_hot. Values by hand, repeated indices accumulating, first and second derivatives with
// respect to the float inputs (float64 gradcheck and gradgradcheck), and errors.
#include "support.h"

using namespace ag;
using test::check_gradients;
using test::leaf;
using test::values;

namespace {

Tensor iota(const Shape& s) {
  return arange(0, static_cast<double>(s.numel()), 1, float64).reshape(s);
}
Tensor idx(std::vector<int64_t> v) { return Tensor::from_vector(v); }
Tensor idx(std::vector<int64_t> v, const Shape& s) { return Tensor::from_vector(v, s); }

}  // namespace

TEST_CASE("index_select picks slices along any axis, repeats allowed") {
  Tensor x = iota({3, 4});
  CHECK(values(index_select(x, 0, idx({2, 0, 2}))) ==
        std::vector<double>{8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11});
  Tensor c = index_select(x, 1, idx({3, 1}));
  CHECK(c.shape() == Shape{3, 2});
  CHECK(values(c) == std::vector<double>{3, 1, 7, 5, 11, 9});
  CHECK(index_select(x, -1, idx({})).shape() == Shape{3, 0});
  // Strided input.
  CHECK(values(index_select(x.t(), 0, idx({1}))) == std::vector<double>{1, 5, 9});
  // Integer tensors too.
  Tensor ints = Tensor::from_vector(std::vector<int64_t>{5, 6, 7});
  CHECK(index_select(ints, 0, idx({2})).to_vector<int64_t>() == std::vector<int64_t>{7});
  // Middle axis of a 3-D tensor; a 0-d index keeps the axis with size 1.
  Tensor z = iota({2, 3, 4});
  CHECK(values(index_select(z, 1, idx({2, 0}))) ==
        std::vector<double>{8, 9, 10, 11, 0, 1, 2, 3, 20, 21, 22, 23, 12, 13, 14, 15});
  Tensor one = index_select(z, 1, Tensor::from_vector(std::vector<int64_t>{1}, Shape{}));
  CHECK(one.shape() == Shape{2, 1, 4});
  CHECK(values(one) == std::vector<double>{4, 5, 6, 7, 16, 17, 18, 19});
}

TEST_CASE("the gradient of index_select adds up over repeated indices") {
  Tensor x = leaf({3, 2});
  (index_select(x, 0, idx({2, 0, 2})) * 2.0).sum().backward();
  CHECK(values(x.grad()) == std::vector<double>{2, 2, 0, 0, 4, 4});
  Tensor y = leaf({2, 3});
  gather(y, 1, idx({1, 1, 1, 0, 2, 2}, {2, 3})).sum().backward();
  CHECK(values(y.grad()) == std::vector<double>{0, 3, 0, 1, 0, 2});
}

TEST_CASE("index_add accumulates repeated indices") {
  Tensor x = zeros({3, 2}, float64);
  Tensor src = iota({4, 2}) + 1.0;  // rows 1..4
  Tensor r = index_add(x, 0, idx({0, 2, 0, 1}), src);
  CHECK(values(r) == std::vector<double>{1 + 5, 2 + 6, 7, 8, 3, 4});
  CHECK(values(x) == std::vector<double>(6, 0.0));  // input untouched
  // Middle axis of a 3-D tensor: index 1 twice, index 0 once, index 2 never.
  Tensor r3 = index_add(full({2, 3, 2}, 0.5, float64), 1, idx({1, 1, 0}), iota({2, 3, 2}));
  CHECK(values(r3) == std::vector<double>{0.5 + 4, 0.5 + 5, 0.5 + 0 + 2, 0.5 + 1 + 3, 0.5, 0.5,
                                          0.5 + 10, 0.5 + 11, 0.5 + 6 + 8, 0.5 + 7 + 9, 0.5, 0.5});
  // Last axis of a strided input.
  Tensor xt = iota({2, 3}).t();  // [[0,3],[1,4],[2,5]]
  Tensor r1 = index_add(xt, 1, idx({0, 0}), ones({3, 2}, float64));
  CHECK(values(r1) == std::vector<double>{2, 3, 3, 4, 4, 5});
  // Integer tensors accumulate too.
  Tensor counts = index_add(zeros({3}, int64), 0, idx({2, 2, 0, 2}), ones({4}, int64));
  CHECK(counts.to_vector<int64_t>() == std::vector<int64_t>{1, 0, 3});
}

TEST_CASE("gather and scatter_add along an axis") {
  Tensor x = iota({2, 3});  // [[0,1,2],[3,4,5]]
  Tensor g = gather(x, 1, idx({2, 0, 1, 1}, {2, 2}));
  CHECK(values(g) == std::vector<double>{2, 0, 4, 4});
  Tensor g0 = gather(x, 0, idx({1, 0, 1}, {1, 3}));
  CHECK(values(g0) == std::vector<double>{3, 1, 5});
  // Index smaller than the input on the other axis.
  CHECK(values(gather(x, 1, idx({1}, {1, 1}))) == std::vector<double>{1});
  Tensor s = scatter_add(zeros({2, 3}, float64), 1, idx({2, 2, 0, 1}, {2, 2}),
                         Tensor::from_vector(std::vector<double>{1, 2, 3, 4}, {2, 2}));
  CHECK(values(s) == std::vector<double>{0, 0, 3, 3, 4, 0});
  // The class-index pick of a loss: gather(log_probs, 1, y[:, None]).
  Tensor lp = iota({3, 4});
  CHECK(values(gather(lp, 1, idx({3, 0, 2}, {3, 1}))) == std::vector<double>{3, 4, 10});
  // Middle axis of a 3-D tensor with an index smaller than the input on the other axes:
  // out[i][j][k] = z[i][index[i][j][k]][k].
  Tensor z = iota({2, 3, 4});
  CHECK(values(gather(z, 1, idx({2, 0, 1, 1}, {1, 2, 2}))) == std::vector<double>{8, 1, 4, 5});
  Tensor s3 = scatter_add(zeros({2, 3, 2}, float64), 1, idx({2, 2, 0, 2}, {1, 2, 2}),
                          ones({1, 2, 2}, float64));
  CHECK(values(s3) == std::vector<double>{1, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0});
  // Strided input: zt[i][j][k] = z[k][j][i].
  Tensor zt = z.transpose(0, 2);
  CHECK(values(gather(zt, 0, idx({3, 0}, {2, 1, 1}))) == std::vector<double>{3, 0});
  Tensor st = scatter_add(zt, 0, idx({3, 3}, {2, 1, 1}), ones({2, 1, 1}, float64));
  CHECK(st.at({3, 0, 0}) == 3 + 2);
  CHECK(st.at({3, 0, 1}) == 15);
  CHECK(values(zt) == values(z.transpose(0, 2)));  // input untouched
}

TEST_CASE("embedding looks rows up for any index shape; its gradient scatter-adds") {
  Tensor w = (iota({5, 3}) * 0.5).requires_grad_();
  Tensor ids = idx({4, 1, 4, 0, 1, 4}, {2, 3});
  Tensor e = embedding(w, ids);
  CHECK(e.shape() == Shape{2, 3, 3});
  CHECK(values(e[0][0]) == std::vector<double>{6, 6.5, 7});
  e.sum().backward();
  // Row r's gradient is 3 * (number of times r was used).
  CHECK(values(w.grad()) == std::vector<double>{1, 1, 1, 2, 2, 2, 0, 0, 0, 0, 0, 0, 3, 3, 3});
  // The gradient of each lookup is added, not overwritten: weight the outputs differently.
  Tensor w2 = leaf({3, 2});
  Tensor e2 = embedding(w2, idx({2, 2, 1}));
  (e2 * Tensor::from_vector(std::vector<double>{1, 10, 100}, {3, 1})).sum().backward();
  CHECK(values(w2.grad()) == std::vector<double>{0, 0, 100, 100, 11, 11});
  // A 0-d index gives one row; 1-D indices a matrix.
  CHECK(values(embedding(iota({4, 2}), Tensor::from_vector(std::vector<int64_t>{3}, Shape{}))) ==
        std::vector<double>{6, 7});
  CHECK(embedding(iota({4, 2}), idx({0, 0, 3})).shape() == Shape{3, 2});
}

TEST_CASE("one_hot") {
  Tensor o = one_hot(idx({2, 0, 1}), 3);
  CHECK(o.shape() == Shape{3, 3});
  CHECK(o.dtype() == float32);
  CHECK(values(o) == std::vector<double>{0, 0, 1, 1, 0, 0, 0, 1, 0});
  Tensor o3 = one_hot(idx({1, 0}, {2, 1}), 2, float64);
  CHECK(o3.shape() == Shape{2, 1, 2});
  CHECK(o3.dtype() == float64);
  CHECK(values(o3) == std::vector<double>{0, 1, 1, 0});
  CHECK(one_hot(idx({3}), 4, int64).to_vector<int64_t>() == std::vector<int64_t>{0, 0, 0, 1});
  CHECK_FALSE(o.requires_grad());
}

TEST_CASE("first and second derivatives with respect to the float inputs") {
  Tensor i1 = idx({2, 0, 2, 1});
  check_gradients([i1](const TensorList& v) { return index_select(v[0], 0, i1) * v[1]; },
                  {leaf({3, 2}, -1, 1, 1), leaf({4, 2}, -1, 1, 2)});
  check_gradients([i1](const TensorList& v) { return index_select(v[0], 1, i1); },
                  {leaf({2, 3}, -1, 1, 3)});
  check_gradients([i1](const TensorList& v) { return index_add(v[0], 0, i1, v[1] * v[1]); },
                  {leaf({3, 2}, -1, 1, 4), leaf({4, 2}, -1, 1, 5)});
  Tensor gi = idx({2, 0, 1, 1, 0, 0}, {2, 3});
  check_gradients([gi](const TensorList& v) { return gather(v[0], 1, gi) * v[0].sum(); },
                  {leaf({2, 4}, -1, 1, 6)});
  check_gradients([gi](const TensorList& v) { return scatter_add(v[0], 1, gi, v[1] * v[1]); },
                  {leaf({2, 4}, -1, 1, 7), leaf({2, 3}, -1, 1, 8)});
  Tensor ids = idx({1, 3, 1, 0}, {2, 2});
  check_gradients([ids](const TensorList& v) { return embedding(v[0], ids) * 2.0; },
                  {leaf({4, 3}, -1, 1, 9)});
  // Non-linear in the weight, so the second derivative is not zero; broadcast against [dim].
  check_gradients([ids](const TensorList& v) { return embedding(v[0], ids) * v[0][1] * v[1]; },
                  {leaf({4, 3}, -1, 1, 10), leaf({3}, -1, 1, 11)});
  // 3-D, middle axis, index smaller than the input on the other axes.
  Tensor g3 = idx({2, 0, 1, 1, 2, 2}, {1, 2, 3});
  check_gradients([g3](const TensorList& v) { return gather(v[0], 1, g3) * v[0].sum(); },
                  {leaf({2, 3, 4}, -1, 1, 12)});
  check_gradients([g3](const TensorList& v) { return scatter_add(v[0], 1, g3, v[1] * v[1]); },
                  {leaf({2, 3, 4}, -1, 1, 13), leaf({1, 2, 3}, -1, 1, 14)});
  check_gradients(
      [](const TensorList& v) {
        return gather(v[0], 0, idx({1, 1, 0}, {1, 3}));
      },
      {leaf({2, 3}, -1, 1, 15)});
  check_gradients(
      [](const TensorList& v) {
        return index_add(v[0], 1, idx({2, 2, 0}), v[1]) * v[0];
      },
      {leaf({2, 4, 2}, -1, 1, 16), leaf({2, 3, 2}, -1, 1, 17)});
  // Strided input.
  check_gradients(
      [](const TensorList& v) {
        return index_select(v[0].t(), 0, idx({1, 1}));
      },
      {leaf({3, 2}, -1, 1, 18)});
}

TEST_CASE("bad indices: out of range, wrong dtype, wrong shapes") {
  Tensor x = iota({3, 4});
  CHECK_THROWS_WITH_PARTS(index_select(x, 0, idx({0, 3})), IndexError, "index_select", "3",
                          "size 3", "[3, 4]");
  CHECK_THROWS_WITH_PARTS(index_select(x, 0, idx({-1})), IndexError, "index_select", "-1");
  CHECK_THROWS_WITH_PARTS(index_select(x, 0, Tensor({0.0, 1.0})), DtypeError, "index_select",
                          "int64", "float32");
  CHECK_THROWS_WITH_PARTS(index_select(x, 0, idx({0, 1}, {1, 2})), ShapeError, "index_select",
                          "1-D", "[1, 2]");
  CHECK_THROWS_AS(index_select(x, 2, idx({0})), IndexError);
  CHECK_THROWS_WITH_PARTS(index_add(x, 0, idx({0}), zeros({2, 4}, float64)), ShapeError,
                          "index_add", "[2, 4]", "[1, 4]");
  CHECK_THROWS_WITH_PARTS(index_add(x, 0, idx({0}), zeros({1, 4})), DtypeError, "index_add",
                          "float32", "float64");
  CHECK_THROWS_WITH_PARTS(gather(x, 1, idx({4}, {1, 1})), IndexError, "gather", "4", "size 4");
  CHECK_THROWS_WITH_PARTS(gather(x, 1, idx({0})), ShapeError, "gather", "[1]", "[3, 4]");
  CHECK_THROWS_WITH_PARTS(gather(x, 1, idx({0, 0, 0, 0}, {4, 1})), ShapeError, "gather", "[4, 1]",
                          "[3, 4]");
  CHECK_THROWS_WITH_PARTS(scatter_add(x, 1, idx({0}, {1, 1}), zeros({1, 2}, float64)), ShapeError,
                          "scatter_add", "[1, 2]", "[1, 1]");
  CHECK_THROWS_WITH_PARTS(embedding(x, idx({5})), IndexError, "embedding", "5");
  CHECK_THROWS_WITH_PARTS(embedding(x, Tensor({1.0})), DtypeError, "embedding", "int64");
  CHECK_THROWS_WITH_PARTS(embedding(iota({3}), idx({0})), ShapeError, "embedding", "[3]");
  CHECK_THROWS_WITH_PARTS(one_hot(idx({3}), 3), IndexError, "one_hot", "3");
  CHECK_THROWS_WITH_PARTS(one_hot(idx({0}), 0), ValueError, "one_hot");
  // Every op names itself, the bad value and the size; negative indices are out of range too.
  CHECK_THROWS_WITH_PARTS(index_add(x, 1, idx({4}), zeros({3, 1}, float64)), IndexError,
                          "index_add", "4", "size 4");
  CHECK_THROWS_WITH_PARTS(scatter_add(x, 0, idx({-2}, {1, 1}), zeros({1, 1}, float64)), IndexError,
                          "scatter_add", "-2", "size 3");
  CHECK_THROWS_WITH_PARTS(one_hot(idx({-1}), 3), IndexError, "one_hot", "-1", "3");
  CHECK_THROWS_WITH_PARTS(embedding(x, idx({0, 3})), IndexError, "embedding", "3", "size 3");
  // Indices must be int64.
  CHECK_THROWS_WITH_PARTS(index_add(x, 0, Tensor({0.0}), zeros({1, 4}, float64)), DtypeError,
                          "index_add", "int64", "float32");
  CHECK_THROWS_WITH_PARTS(gather(x, 1, zeros({1, 1}, float64)), DtypeError, "gather", "int64",
                          "float64");
  CHECK_THROWS_WITH_PARTS(scatter_add(x, 1, zeros({1, 1}, boolean), zeros({1, 1}, float64)),
                          DtypeError, "scatter_add", "int64", "bool");
  CHECK_THROWS_WITH_PARTS(one_hot(Tensor({1.0}), 3), DtypeError, "one_hot", "int64", "float32");
  // Source dtype and shapes.
  CHECK_THROWS_WITH_PARTS(scatter_add(x, 1, idx({0}, {1, 1}), zeros({1, 1})), DtypeError,
                          "scatter_add", "float32", "float64");
  CHECK_THROWS_WITH_PARTS(scatter_add(x, 1, idx({0}), zeros({1}, float64)), ShapeError,
                          "scatter_add", "[1]", "[3, 4]");
  CHECK_THROWS_WITH_PARTS(index_add(x, 0, idx({0, 1}, {2, 1}), zeros({2, 4}, float64)), ShapeError,
                          "index_add", "1-D", "[2, 1]");
  CHECK_THROWS_WITH_PARTS(index_select(scalar_tensor(1.0), 0, idx({0})), ShapeError, "index_select",
                          "[]");
  CHECK_THROWS_WITH_PARTS(gather(scalar_tensor(1.0), 0, idx({0})), ShapeError, "gather", "[]");
  CHECK_THROWS_WITH_PARTS(gather(x, 2, idx({0}, {1, 1})), IndexError, "gather", "2");
  CHECK_THROWS_WITH_PARTS(embedding(iota({2, 2, 2}), idx({0})), ShapeError, "embedding",
                          "[2, 2, 2]");
}
