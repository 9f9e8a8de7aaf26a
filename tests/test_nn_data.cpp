// Data: TensorDataset and DataLoader (batch counts, shuffling, the three regimes), the IDX reader
// (plain and gzip, and its errors) and the synthetic data sets.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>

#include "nn/nn.h"
#include "support.h"

using namespace ag;
using test::read_bytes;
using test::TempDir;
using test::write_bytes;
namespace fs = std::filesystem;

namespace {

void append_be32(std::string& s, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) s.push_back(static_cast<char>((v >> shift) & 0xff));
}

// An IDX file: magic, big-endian sizes, then the bytes.
std::string idx_file(uint32_t magic, const std::vector<uint32_t>& dims,
                     const std::vector<int>& values) {
  std::string s;
  append_be32(s, magic);
  for (uint32_t d : dims) append_be32(s, d);
  for (int v : values) s.push_back(static_cast<char>(v));
  return s;
}

uint32_t crc32_of(const std::string& s) {
  uint32_t crc = 0xffffffffu;
  for (unsigned char c : s) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

// A gzip member holding `payload` in "stored" (uncompressed) deflate blocks, built by hand from
// RFC 1951/1952, so the reader is tested against a file our writer did not make.
std::string gzip_stored(const std::string& payload) {
  std::string s = {'\x1f', '\x8b', '\x08', '\0', '\0', '\0', '\0', '\0', '\0', '\xff'};
  size_t pos = 0;
  do {
    size_t len = std::min<size_t>(payload.size() - pos, 65535);
    bool last = pos + len == payload.size();
    s.push_back(last ? '\x01' : '\x00');
    uint16_t n = static_cast<uint16_t>(len), nn = static_cast<uint16_t>(~n);
    for (uint16_t v : {n, nn}) {
      s.push_back(static_cast<char>(v & 0xff));
      s.push_back(static_cast<char>(v >> 8));
    }
    s += payload.substr(pos, len);
    pos += len;
  } while (pos < payload.size());
  for (uint32_t v : {crc32_of(payload), static_cast<uint32_t>(payload.size())})
    for (int k = 0; k < 4; ++k) s.push_back(static_cast<char>((v >> (8 * k)) & 0xff));
  return s;
}

// 3 images of 2 x 4 pixels and their labels.
const std::vector<int> kPixels = {0,  255, 51, 102, 1,   2, 3, 4, 10, 20, 30, 40,
                                  50, 60,  70, 80,  255, 0, 0, 0, 9,  8,  7,  6};
const std::vector<int> kLabels = {7, 0, 9};

std::vector<float> scaled(const std::vector<int>& bytes) {
  std::vector<float> v;
  for (int b : bytes) v.push_back(static_cast<float>(b) / 255.0f);
  return v;
}

// A dataset whose inputs and labels both hold the sample index, to follow samples through batches.
nn::TensorDataset indexed(int64_t n) {
  return nn::TensorDataset(arange(n, float32).reshape({n, 1}), arange(n, int64));
}

// Every batch of one epoch as lists of sample indices; checks inputs and labels stay paired.
std::vector<std::vector<int64_t>> epoch(nn::DataLoader& loader) {
  std::vector<std::vector<int64_t>> batches;
  for (const std::vector<Tensor>& b : loader) {
    REQUIRE(b.size() == 2);
    CHECK(b[0].shape()[0] == b[1].shape()[0]);
    std::vector<int64_t> ids = b[1].to_vector<int64_t>();
    std::vector<float> xs = b[0].to_vector<float>();
    for (size_t i = 0; i < ids.size(); ++i) CHECK(xs[i] == static_cast<float>(ids[i]));
    batches.push_back(ids);
  }
  return batches;
}

std::vector<int64_t> flat(const std::vector<std::vector<int64_t>>& batches) {
  std::vector<int64_t> all;
  for (auto& b : batches) all.insert(all.end(), b.begin(), b.end());
  return all;
}

std::vector<size_t> sizes(const std::vector<std::vector<int64_t>>& batches) {
  std::vector<size_t> s;
  for (auto& b : batches) s.push_back(b.size());
  return s;
}

}  // namespace

// ---- TensorDataset and DataLoader ----

TEST_CASE("TensorDataset: samples along axis 0, batches by index, ranges, split") {
  nn::TensorDataset d = indexed(10);
  CHECK(d.size() == 10);
  std::vector<Tensor> b = d.batch(Tensor::from_vector<int64_t>({4, 1, 4}));
  CHECK(b[0].shape() == Shape{3, 1});
  CHECK(b[1].to_vector<int64_t>() == std::vector<int64_t>{4, 1, 4});
  std::vector<Tensor> r = d.range(2, 5);
  CHECK(r[1].to_vector<int64_t>() == std::vector<int64_t>{2, 3, 4});
  auto [train, val] = d.split(0.3);
  CHECK(train.size() == 7);
  CHECK(val.size() == 3);
  CHECK(val.tensors()[1].to_vector<int64_t>() == std::vector<int64_t>{7, 8, 9});
}

TEST_CASE("TensorDataset errors") {
  CHECK_THROWS_WITH_PARTS(nn::TensorDataset(zeros({3, 2}), zeros({4})), ShapeError, "TensorDataset",
                          "4 samples", "[4]", "[3, 2]");
  CHECK_THROWS_WITH_PARTS(nn::TensorDataset(zeros({3}), scalar_tensor(1.0)), ShapeError, "scalar");
  CHECK_THROWS_WITH_PARTS(nn::TensorDataset(std::vector<Tensor>{}), ValueError, "no tensors");
  CHECK_THROWS_WITH_PARTS(indexed(4).split(1.5), ValueError, "1.5");
}

TEST_CASE("DataLoader batch counts with and without drop_last") {
  nn::TensorDataset d = indexed(10);
  nn::LoaderOptions o;
  o.batch_size = 3;
  o.shuffle = false;
  nn::DataLoader keep(d, o);
  CHECK(keep.batches_per_epoch() == 4);
  CHECK(sizes(epoch(keep)) == std::vector<size_t>{3, 3, 3, 1});
  o.drop_last = true;
  nn::DataLoader drop(d, o);
  CHECK(drop.batches_per_epoch() == 3);
  CHECK(sizes(epoch(drop)) == std::vector<size_t>{3, 3, 3});
  o.batch_size = 5;  // divides evenly: drop_last changes nothing
  nn::DataLoader even(d, o);
  CHECK(even.batches_per_epoch() == 2);
  CHECK(sizes(epoch(even)) == std::vector<size_t>{5, 5});
  o.batch_size = 16;  // larger than the data set
  nn::DataLoader none(d, o);
  CHECK(none.batches_per_epoch() == 0);
  CHECK(epoch(none).empty());
  o.drop_last = false;
  nn::DataLoader one(d, o);
  CHECK(one.batches_per_epoch() == 1);
  CHECK(sizes(epoch(one)) == std::vector<size_t>{10});
}

TEST_CASE("DataLoader: every sample exactly once per epoch, inputs and labels kept together") {
  nn::LoaderOptions o;
  o.batch_size = 4;
  o.seed = 11;
  nn::DataLoader loader(indexed(23), o);
  std::vector<int64_t> expected(23);
  std::iota(expected.begin(), expected.end(), 0);
  for (int e = 0; e < 3; ++e) {
    std::vector<int64_t> seen = flat(epoch(loader));
    std::sort(seen.begin(), seen.end());
    CHECK(seen == expected);
  }
  // With drop_last, each epoch sees distinct samples, all but the remainder.
  o.drop_last = true;
  nn::DataLoader dropping(indexed(23), o);
  std::vector<int64_t> seen = flat(epoch(dropping));
  CHECK(seen.size() == 20);
  CHECK(std::set<int64_t>(seen.begin(), seen.end()).size() == 20);
}

TEST_CASE("DataLoader shuffling: reproducible from the seed, new order every epoch") {
  nn::LoaderOptions o;
  o.batch_size = 5;
  o.seed = 42;
  nn::DataLoader a(indexed(20), o), b(indexed(20), o);
  auto a1 = flat(epoch(a)), a2 = flat(epoch(a));
  auto b1 = flat(epoch(b)), b2 = flat(epoch(b));
  CHECK(a1 == b1);  // same seed, same sequence of epochs
  CHECK(a2 == b2);
  CHECK(a1 != a2);  // reshuffled each epoch
  std::vector<int64_t> in_order(20);
  std::iota(in_order.begin(), in_order.end(), 0);
  CHECK(a1 != in_order);
  o.seed = 43;
  nn::DataLoader c(indexed(20), o);
  CHECK(flat(epoch(c)) != a1);
  o.shuffle = false;
  nn::DataLoader d(indexed(20), o);
  CHECK(flat(epoch(d)) == in_order);
  CHECK(flat(epoch(d)) == in_order);
}

TEST_CASE("the three regimes of gradient descent are batch sizes") {
  const int64_t n = 12;
  nn::LoaderOptions o;
  o.seed = 5;
  SUBCASE("full batch: one batch holding the whole data set") {
    o.batch_size = n;
    nn::DataLoader loader(indexed(n), o);
    auto batches = epoch(loader);
    REQUIRE(batches.size() == 1);
    CHECK(std::set<int64_t>(batches[0].begin(), batches[0].end()).size() == n);
  }
  SUBCASE("single sample (stochastic): n batches of one") {
    o.batch_size = 1;
    nn::DataLoader loader(indexed(n), o);
    CHECK(loader.batches_per_epoch() == n);
    auto batches = epoch(loader);
    CHECK(sizes(batches) == std::vector<size_t>(n, 1));
    std::vector<int64_t> all = flat(batches);
    CHECK(std::set<int64_t>(all.begin(), all.end()).size() == n);
  }
  SUBCASE("mini-batch") {
    o.batch_size = 4;
    nn::DataLoader loader(indexed(n), o);
    CHECK(sizes(epoch(loader)) == std::vector<size_t>{4, 4, 4});
  }
}

TEST_CASE("DataLoader errors") {
  nn::LoaderOptions o;
  o.batch_size = 0;
  CHECK_THROWS_WITH_PARTS(nn::DataLoader(indexed(3), o), ValueError, "batch_size", "0");
}

// ---- IDX ----

TEST_CASE("read_idx_images and read_idx_labels read plain IDX files of any image size") {
  TempDir dir;
  write_bytes(dir.file("images"), idx_file(0x803, {3, 2, 4}, kPixels));
  write_bytes(dir.file("labels"), idx_file(0x801, {3}, kLabels));
  Tensor images = nn::read_idx_images(dir.file("images"));
  CHECK(images.dtype() == float32);
  CHECK(images.shape() == Shape{3, 8});
  CHECK(images.to_vector<float>() == scaled(kPixels));
  CHECK(images.at({0, 1}) == 1.0);
  Tensor square = nn::read_idx_images(dir.file("images"), /*flatten=*/false);
  CHECK(square.shape() == Shape{3, 2, 4});
  CHECK(square.at({1, 1, 0}) == doctest::Approx(50.0 / 255));
  Tensor labels = nn::read_idx_labels(dir.file("labels"));
  CHECK(labels.dtype() == int64);
  CHECK(labels.to_vector<int64_t>() == std::vector<int64_t>{7, 0, 9});
  nn::TensorDataset d = nn::read_idx_dataset(dir.file("images"), dir.file("labels"));
  CHECK(d.size() == 3);
  // An empty set is valid too.
  write_bytes(dir.file("none"), idx_file(0x803, {0, 28, 28}, {}));
  CHECK(nn::read_idx_images(dir.file("none")).shape() == Shape{0, 784});
}

TEST_CASE("gzip-compressed IDX files are read (a gzip file made by hand, and our writer's)") {
  TempDir dir;
  write_bytes(dir.file("images.gz"), gzip_stored(idx_file(0x803, {3, 2, 4}, kPixels)));
  write_bytes(dir.file("labels.gz"), gzip_stored(idx_file(0x801, {3}, kLabels)));
  CHECK(nn::read_idx_images(dir.file("images.gz")).to_vector<float>() == scaled(kPixels));
  CHECK(nn::read_idx_labels(dir.file("labels.gz")).to_vector<int64_t>() ==
        std::vector<int64_t>{7, 0, 9});

  // A larger file spanning several stored blocks (> 64 KiB).
  std::vector<int> many;
  for (int i = 0; i < 100 * 28 * 28; ++i) many.push_back((i * 7) % 256);
  write_bytes(dir.file("many.gz"), gzip_stored(idx_file(0x803, {100, 28, 28}, many)));
  Tensor m = nn::read_idx_images(dir.file("many.gz"));
  CHECK(m.shape() == Shape{100, 784});
  CHECK(m.to_vector<float>() == scaled(many));

  // Our writer, compressed and plain: the same images back (pixels are stored as bytes).
  Tensor images = nn::read_idx_images(dir.file("images.gz"), false);
  nn::write_idx_images(dir.file("w.gz"), images, /*gzip=*/true);
  nn::write_idx_labels(dir.file("l.gz"), Tensor::from_vector<int64_t>({7, 0, 9}), true);
  nn::write_idx_images(dir.file("w"), images);
  CHECK(read_bytes(dir.file("w.gz")).substr(0, 2) == "\x1f\x8b");
  CHECK(read_bytes(dir.file("w")) == idx_file(0x803, {3, 2, 4}, kPixels));
  CHECK(nn::read_idx_images(dir.file("w.gz")).to_vector<float>() == scaled(kPixels));
  CHECK(nn::read_idx_labels(dir.file("l.gz")).to_vector<int64_t>() ==
        std::vector<int64_t>{7, 0, 9});
}

TEST_CASE("IDX errors name the file and the problem") {
  TempDir dir;
  std::string p = dir.file("f");
  std::string missing = dir.file("missing");
  CHECK_THROWS_WITH_PARTS(nn::read_idx_images(missing), IOError, "read_idx_images", missing.c_str(),
                          "no such file");
  write_bytes(p, idx_file(0x801, {3}, kLabels));
  CHECK_THROWS_WITH_PARTS(nn::read_idx_images(p), IOError, p.c_str(), "bad magic 0x00000801",
                          "expected 0x00000803", "a label file");
  write_bytes(p, idx_file(0x803, {3, 2, 4}, kPixels));
  CHECK_THROWS_WITH_PARTS(nn::read_idx_labels(p), IOError, "read_idx_labels",
                          "bad magic 0x00000803", "an image file");
  write_bytes(p, idx_file(0x803, {4, 2, 4}, kPixels));  // one image short
  CHECK_THROWS_WITH_PARTS(nn::read_idx_images(p), IOError, p.c_str(), "truncated", "4 x 2 x 4",
                          "32 bytes", "has 24");
  write_bytes(p, idx_file(0x803, {2, 2, 4}, kPixels));  // one image more than announced
  CHECK_THROWS_WITH_PARTS(nn::read_idx_images(p), IOError, p.c_str(), "more than",
                          "2 x 2 x 4 = 16 bytes");
  write_bytes(p, idx_file(0x803, {3, 2}, {}));
  CHECK_THROWS_WITH_PARTS(nn::read_idx_images(p), IOError, "truncated header");
  // No images, but an image size whose pixel count overflows int64 (was undefined behaviour).
  write_bytes(p, idx_file(0x803, {0, 0xffffffff, 0xffffffff}, {}));
  CHECK_THROWS_WITH_PARTS(nn::read_idx_images(p), IOError, p.c_str(),
                          "4294967295 x 4294967295 pixels are too large");
  CHECK_THROWS_WITH_PARTS(nn::read_idx_images(p, /*flatten=*/false), IOError, "too large");
  write_bytes(p, "\x00\x00");
  CHECK_THROWS_WITH_PARTS(nn::read_idx_images(p), IOError, "shorter than the 4-byte IDX magic");
  write_bytes(p, "");
  CHECK_THROWS_WITH_PARTS(nn::read_idx_labels(p), IOError, "shorter than the 4-byte IDX magic");
  // A gzip stream cut in the middle.
  std::string gz = gzip_stored(idx_file(0x803, {3, 2, 4}, kPixels));
  write_bytes(p, gz.substr(0, gz.size() - 20));
  CHECK_THROWS_WITH_PARTS(nn::read_idx_images(p), IOError, "read_idx_images", p.c_str(),
                          "truncated gzip data");
  // ... or corrupted: the CRC-32 at the end no longer matches.
  gz[gz.size() - 8] ^= 0x55;
  write_bytes(p, gz);
  CHECK_THROWS_WITH_PARTS(nn::read_idx_images(p), IOError, "read_idx_images", p.c_str(),
                          "incorrect data check");
  // Image and label counts that differ.
  write_bytes(dir.file("images"), idx_file(0x803, {3, 2, 4}, kPixels));
  write_bytes(dir.file("labels"), idx_file(0x801, {2}, {1, 2}));
  CHECK_THROWS_WITH_PARTS(nn::read_idx_dataset(dir.file("images"), dir.file("labels")), IOError,
                          "count mismatch", "3 images", "2 labels");
  // Writers.
  CHECK_THROWS_WITH_PARTS(nn::write_idx_images(p, zeros({3, 4})), ShapeError, "write_idx_images",
                          "[3, 4]");
  CHECK_THROWS_WITH_PARTS(nn::write_idx_labels(p, Tensor::from_vector<int64_t>({1, 256})),
                          ValueError, "write_idx_labels", "256");
  CHECK_THROWS_WITH_PARTS(nn::write_idx_images(dir.file("no/dir/x"), zeros({1, 2, 2})), IOError,
                          "write_idx_images", "no/dir/x");
}

TEST_CASE("load_mnist finds MNIST's four files by name, plain or gzipped") {
  TempDir dir;
  write_bytes(dir.file("train-images-idx3-ubyte"), idx_file(0x803, {3, 2, 4}, kPixels));
  write_bytes(dir.file("train-labels-idx1-ubyte.gz"), gzip_stored(idx_file(0x801, {3}, kLabels)));
  write_bytes(dir.file("t10k-images-idx3-ubyte.gz"),
              gzip_stored(idx_file(0x803, {1, 2, 4}, {1, 2, 3, 4, 5, 6, 7, 8})));
  CHECK_THROWS_WITH_PARTS(nn::load_mnist(dir.path.string()), IOError, "load_mnist",
                          "t10k-labels-idx1-ubyte", "t10k-labels-idx1-ubyte.gz");
  write_bytes(dir.file("t10k-labels-idx1-ubyte"), idx_file(0x801, {1}, {4}));
  auto [train, test] = nn::load_mnist(dir.path.string());
  CHECK(train.size() == 3);
  CHECK(test.size() == 1);
  CHECK(train.tensors()[0].shape() == Shape{3, 8});
  CHECK(test.tensors()[1].to_vector<int64_t>() == std::vector<int64_t>{4});
  auto [train3d, _] = nn::load_mnist(dir.path.string(), /*flatten=*/false);
  CHECK(train3d.tensors()[0].shape() == Shape{3, 2, 4});
}

// ---- synthetic data sets ----

TEST_CASE("xor_dataset: the four corners, or n noisy points") {
  nn::TensorDataset d = nn::xor_dataset();
  CHECK(d.tensors()[0].to_vector<float>() == std::vector<float>{0, 0, 0, 1, 1, 0, 1, 1});
  CHECK(d.tensors()[1].to_vector<int64_t>() == std::vector<int64_t>{0, 1, 1, 0});
  nn::TensorDataset noisy = nn::xor_dataset(100, 0.1, 3);
  CHECK(noisy.tensors()[0].shape() == Shape{100, 2});
  std::vector<float> x = noisy.tensors()[0].to_vector<float>();
  std::vector<int64_t> y = noisy.tensors()[1].to_vector<int64_t>();
  int agree = 0;
  for (int i = 0; i < 100; ++i) agree += ((x[2 * i] > 0.5) ^ (x[2 * i + 1] > 0.5)) == y[i];
  CHECK(agree >= 95);  // noise 0.1 rarely crosses the middle
  CHECK(nn::xor_dataset(100, 0.1, 3).tensors()[0].to_vector<float>() == x);
  CHECK(nn::xor_dataset(100, 0.1, 4).tensors()[0].to_vector<float>() != x);
}

TEST_CASE("two_spirals: 2n points in two interleaved spirals, classes in turn") {
  nn::TensorDataset d = nn::two_spirals(50, 0.0, 1);
  Tensor x = d.tensors()[0], y = d.tensors()[1];
  CHECK(x.shape() == Shape{100, 2});
  CHECK(x.dtype() == float32);
  CHECK(y.dtype() == int64);
  std::vector<int64_t> labels = y.to_vector<int64_t>();
  for (int i = 0; i < 100; ++i) CHECK(labels[i] == i % 2);
  // Without noise: radii from 0.1 to 1, and class 1 is class 0 turned by pi.
  std::vector<float> p = x.to_vector<float>();
  CHECK(std::hypot(p[0], p[1]) == doctest::Approx(0.1).epsilon(1e-6));
  CHECK(std::hypot(p[196], p[197]) == doctest::Approx(1.0).epsilon(1e-6));
  for (int i = 0; i < 50; ++i) {
    CHECK(p[4 * i + 2] == -p[4 * i]);
    CHECK(p[4 * i + 3] == -p[4 * i + 1]);
  }
  nn::TensorDataset noisy = nn::two_spirals(50, 0.05, 1);
  CHECK(nn::two_spirals(50, 0.05, 1).tensors()[0].to_vector<float>() ==
        noisy.tensors()[0].to_vector<float>());
  CHECK(nn::two_spirals(50, 0.05, 2).tensors()[0].to_vector<float>() !=
        noisy.tensors()[0].to_vector<float>());
  CHECK_FALSE(test::allclose(noisy.tensors()[0], x, 1e-3));
}

TEST_CASE("gaussian_blobs: points around their class center") {
  Tensor centers = nn::circle_centers(3, 2.0);
  CHECK(centers.shape() == Shape{3, 2});
  CHECK(centers.at({1, 0}) == doctest::Approx(-1.0).epsilon(1e-6));
  CHECK(centers.at({1, 1}) == doctest::Approx(std::sqrt(3.0)).epsilon(1e-6));
  nn::TensorDataset d = nn::gaussian_blobs(3000, centers, 0.3, 7);
  std::vector<float> x = d.tensors()[0].to_vector<float>();
  std::vector<int64_t> y = d.tensors()[1].to_vector<int64_t>();
  std::vector<double> c = centers.to_vector<double>();
  double sum[3][2] = {}, sq = 0;
  for (int i = 0; i < 3000; ++i) {
    CHECK(y[i] == i % 3);
    for (int j = 0; j < 2; ++j) {
      sum[y[i]][j] += x[2 * i + j];
      sq += std::pow(x[2 * i + j] - c[y[i] * 2 + j], 2);
    }
  }
  for (int k = 0; k < 3; ++k)
    for (int j = 0; j < 2; ++j)
      CHECK(sum[k][j] / 1000 == doctest::Approx(c[k * 2 + j]).epsilon(0.03).scale(1));
  CHECK(std::sqrt(sq / 6000) == doctest::Approx(0.3).epsilon(0.05));
  // Any dimension.
  nn::TensorDataset d3 = nn::gaussian_blobs(10, Tensor({{0, 0, 0}, {5, 5, 5}}), 0.1, 1);
  CHECK(d3.tensors()[0].shape() == Shape{10, 3});
}

TEST_CASE("sine_regression: y = sin(3x) + noise with x uniform in [-1, 1]") {
  nn::TensorDataset clean = nn::sine_regression(200, 0.0, 1);
  Tensor x = clean.tensors()[0], y = clean.tensors()[1];
  CHECK(x.shape() == Shape{200, 1});
  CHECK(y.shape() == Shape{200, 1});
  std::vector<float> xs = x.to_vector<float>(), ys = y.to_vector<float>();
  for (size_t i = 0; i < xs.size(); ++i) {
    CHECK(xs[i] >= -1.0f);
    CHECK(xs[i] <= 1.0f);
    CHECK(ys[i] == doctest::Approx(std::sin(3.0 * xs[i])).epsilon(1e-6).scale(1));
  }
  CHECK(*std::min_element(xs.begin(), xs.end()) < -0.9f);
  CHECK(*std::max_element(xs.begin(), xs.end()) > 0.9f);
  nn::TensorDataset noisy = nn::sine_regression(4000, 0.2, 2);
  std::vector<float> nx = noisy.tensors()[0].to_vector<float>(),
                     ny = noisy.tensors()[1].to_vector<float>();
  double sq = 0;
  for (size_t i = 0; i < nx.size(); ++i) sq += std::pow(ny[i] - std::sin(3.0 * nx[i]), 2);
  CHECK(std::sqrt(sq / 4000) == doctest::Approx(0.2).epsilon(0.05));
}

TEST_CASE(
    "synthetic_digits: MNIST-like images in [0, 1], classes sharing prototypes across seeds") {
  nn::TensorDataset a = nn::synthetic_digits(200, 1);
  Tensor x = a.tensors()[0], y = a.tensors()[1];
  CHECK(x.shape() == Shape{200, 784});
  CHECK(x.dtype() == float32);
  std::vector<float> px = x.to_vector<float>();
  CHECK(*std::min_element(px.begin(), px.end()) >= 0.0f);
  CHECK(*std::max_element(px.begin(), px.end()) <= 1.0f);
  std::vector<int64_t> labels = y.to_vector<int64_t>();
  for (int i = 0; i < 200; ++i) CHECK(labels[i] == i % 10);
  CHECK(nn::synthetic_digits(200, 1).tensors()[0].to_vector<float>() == px);
  CHECK(nn::synthetic_digits(200, 2).tensors()[0].to_vector<float>() != px);
  nn::DigitsOptions o;
  o.rows = 12;
  o.cols = 10;
  o.num_classes = 4;
  o.flatten = false;
  CHECK(nn::synthetic_digits(8, 0, o).tensors()[0].shape() == Shape{8, 12, 10});

  // The class means of two sets drawn with different seeds match (same prototypes), and differ
  // between classes: nearest-class-mean classification of set b by the means of set a works.
  nn::TensorDataset b = nn::synthetic_digits(200, 2);
  std::vector<float> pb = b.tensors()[0].to_vector<float>();
  std::vector<std::vector<double>> means(10, std::vector<double>(784));
  for (int i = 0; i < 200; ++i)
    for (int j = 0; j < 784; ++j) means[i % 10][j] += px[i * 784 + j] / 20.0;
  int correct = 0;
  for (int i = 0; i < 200; ++i) {
    int best = 0;
    double best_d = 1e300;
    for (int k = 0; k < 10; ++k) {
      double d = 0;
      for (int j = 0; j < 784; ++j) d += std::pow(pb[i * 784 + j] - means[k][j], 2);
      if (d < best_d) best_d = d, best = k;
    }
    correct += best == i % 10;
  }
  CHECK(correct >= 160);  // (chance: 20)
}

TEST_CASE("an MLP learns synthetic_digits in a few epochs (on held-out samples)") {
  nn::TensorDataset train = nn::synthetic_digits(2000, 1);
  nn::TensorDataset test = nn::synthetic_digits(300, 2);
  Generator g(0);
  auto model = nn::make_mlp({784, 32, 10}, "relu", 0.0, &g);
  nn::SGDOptions so;
  so.lr = 0.1;
  so.momentum = 0.9;
  nn::SGD opt(model->parameters(), so);
  nn::LoaderOptions lo;
  lo.batch_size = 32;
  lo.seed = 1;
  nn::DataLoader loader(train, lo);
  for (int e = 0; e < 5; ++e)
    for (auto batch : loader) {
      opt.zero_grad();
      nn::cross_entropy(model->forward(batch[0]), batch[1]).backward();
      opt.step();
    }
  NoGradGuard ng;
  Tensor predicted = argmax(model->forward(test.tensors()[0]), 1);
  double accuracy = mean(eq(predicted, test.tensors()[1]).to(float64)).item();
  INFO("test accuracy " << accuracy);
  CHECK(accuracy > 0.9);
}

TEST_CASE("synthetic data set errors") {
  CHECK_THROWS_WITH_PARTS(nn::two_spirals(-1), ValueError, "two_spirals", "-1");
  CHECK_THROWS_WITH_PARTS(nn::xor_dataset(4, -0.5), ValueError, "xor_dataset", "-0.5");
  CHECK_THROWS_WITH_PARTS(nn::gaussian_blobs(10, zeros({3})), ShapeError, "gaussian_blobs", "[3]");
  CHECK_THROWS_WITH_PARTS(nn::circle_centers(0), ValueError, "circle_centers", "0");
  nn::DigitsOptions o;
  o.rows = 0;
  CHECK_THROWS_WITH_PARTS(nn::synthetic_digits(10, 0, o), ValueError, "synthetic_digits", "rows 0");
}
