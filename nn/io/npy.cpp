#include "nn/io/npy.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <xtensor/xadapt.hpp>
#include <xtensor/xnpy.hpp>  // the writer

#include "autograd/xtensor.h"
#include "nn/io/atomic_file.h"
#include "nn/io/tensor_bytes.h"

namespace ag::nn {
namespace {

using namespace detail;

// The .npy bytes (header and row-major data) of a contiguous tensor, written by xtensor.
std::string npy_bytes(const Tensor& c) {
  std::vector<size_t> shape(c.shape().begin(), c.shape().end());
  switch (c.dtype()) {
    case Dtype::float32:
      return xt::dump_npy(xt::adapt(c.data<float>(), c.numel(), xt::no_ownership(), shape));
    case Dtype::float64:
      return xt::dump_npy(xt::adapt(c.data<double>(), c.numel(), xt::no_ownership(), shape));
    case Dtype::int64:
      return xt::dump_npy(xt::adapt(c.data<int64_t>(), c.numel(), xt::no_ownership(), shape));
    case Dtype::boolean:
      return xt::dump_npy(xt::adapt(c.data<bool>(), c.numel(), xt::no_ownership(), shape));
    case Dtype::bfloat16:
      fail<DtypeError>("save_npy: .npy has no bfloat16 type; convert with .to(float32) first");
  }
  return {};
}

}  // namespace

void save_npy(const std::string& path, const Tensor& t) {
  if (!t.defined()) fail<ValueError>("save_npy: '{}': the tensor is undefined", path);
  Tensor c = t.detach().contiguous();
  std::string bytes = npy_bytes(c);
  AtomicFile w(path, "save_npy");
  w.write(bytes);
  w.commit();
}

namespace {

// The dictionary of a .npy header, a Python literal such as
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
// read by a small parser of exactly that grammar: quoted keys, and values that are a quoted
// string, True / False or a tuple of non-negative integers.
struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<uint64_t> shape;
};

class NpyHeaderParser {
 public:
  NpyHeaderParser(const std::string& text, const std::string& path) : s_(text), path_(path) {}

  NpyHeader parse() {
    NpyHeader h;
    bool seen_descr = false, seen_order = false, seen_shape = false;
    expect('{');
    while (true) {
      skip_space();
      if (peek() == '}') break;
      std::string key = quoted();
      expect(':');
      skip_space();
      if (key == "descr" && !seen_descr) {
        h.descr = quoted();
        seen_descr = true;
      } else if (key == "fortran_order" && !seen_order) {
        h.fortran_order = boolean();
        seen_order = true;
      } else if (key == "shape" && !seen_shape) {
        h.shape = tuple();
        seen_shape = true;
      } else {
        bad(fmt::format("unexpected or repeated key '{}'", key));
      }
      skip_space();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      if (peek() != '}') bad("expected ',' or '}' after a value");
    }
    ++i_;
    skip_space();
    if (i_ != s_.size()) bad("text after the dictionary");
    if (!seen_descr || !seen_order || !seen_shape)
      bad("the dictionary needs 'descr', 'fortran_order' and 'shape'");
    return h;
  }

 private:
  [[noreturn]] void bad(const std::string& what) const {
    fail<IOError>("load_npy: '{}' is not a valid .npy file: header at character {}: {}", path_, i_,
                  what);
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip_space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t')) ++i_;
  }
  void expect(char c) {
    skip_space();
    if (peek() != c) bad(fmt::format("expected '{}'", c));
    ++i_;
  }
  std::string quoted() {
    char q = peek();
    if (q != '\'' && q != '"') bad("expected a quoted string");
    size_t end = s_.find(q, i_ + 1);
    if (end == std::string::npos) bad("unterminated string");
    std::string out = s_.substr(i_ + 1, end - i_ - 1);
    i_ = end + 1;
    return out;
  }
  bool boolean() {
    if (s_.compare(i_, 4, "True") == 0) {
      i_ += 4;
      return true;
    }
    if (s_.compare(i_, 5, "False") == 0) {
      i_ += 5;
      return false;
    }
    bad("expected True or False");
  }
  std::vector<uint64_t> tuple() {
    std::vector<uint64_t> out;
    expect('(');
    while (true) {
      skip_space();
      if (peek() == ')') break;
      if (peek() < '0' || peek() > '9') bad("expected a non-negative integer size");
      uint64_t v = 0;
      while (peek() >= '0' && peek() <= '9') {
        if (__builtin_mul_overflow(v, uint64_t{10}, &v) ||
            __builtin_add_overflow(v, uint64_t(peek() - '0'), &v) ||
            v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
          bad("a size does not fit 63 bits");
        ++i_;
      }
      if (peek() == 'L') ++i_;  // Python 2's long literals
      out.push_back(v);
      if (out.size() > static_cast<size_t>(kMaxDims))
        bad(fmt::format("more than {} axes", kMaxDims));
      skip_space();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      if (peek() != ')') bad("expected ',' or ')' in the shape");
    }
    ++i_;
    return out;
  }

  const std::string& s_;
  const std::string& path_;
  size_t i_ = 0;
};

}  // namespace

namespace {

[[noreturn]] void invalid_npy(const std::string& path, const std::string& what) {
  fail<IOError>("load_npy: '{}' is not a valid .npy file: {}", path, what);
}

// The header of the file's bytes `all`: magic "\x93NUMPY", version major.minor, header length
// (u16 in 1.0, u32 in 2.0 and 3.0), the header; `data` receives where the data starts.
NpyHeader read_npy_header(const std::string& all, const std::string& path, size_t& data) {
  if (all.size() < 10 || all.compare(0, 6, "\x93NUMPY") != 0)
    invalid_npy(path, "it does not start with the magic \\x93NUMPY");
  int major = static_cast<unsigned char>(all[6]), minor = static_cast<unsigned char>(all[7]);
  if (major < 1 || major > 3 || minor != 0)
    invalid_npy(path, fmt::format("format version {}.{} (known: 1.0, 2.0, 3.0)", major, minor));
  size_t start = major == 1 ? 10 : 12;
  if (all.size() < start) invalid_npy(path, "truncated before the header length");
  uint64_t header_len =
      major == 1 ? load_le<uint16_t>(all.data() + 8) : load_le<uint32_t>(all.data() + 8);
  if (header_len > all.size() - start)
    invalid_npy(path, fmt::format("the header length {} exceeds the {} bytes that follow it",
                                  header_len, all.size() - start));
  data = start + header_len;
  return NpyHeaderParser(all.substr(start, header_len), path).parse();
}

Dtype npy_dtype(const std::string& descr, const std::string& path) {
  if (descr == "<f4") return float32;
  if (descr == "<f8") return float64;
  if (descr == "<i8") return int64;
  if (descr == "|b1") return boolean;
  fail<IOError>("load_npy: '{}' holds dtype '{}'; supported: <f4, <f8, <i8, |b1", path, descr);
}

}  // namespace

Tensor load_npy(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    fail<IOError>("load_npy: cannot open '{}': {}", path,
                  std::filesystem::exists(path, ec) ? "not a regular file" : "no such file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail<IOError>("load_npy: cannot open '{}': {}", path, std::strerror(errno));
  // The whole file: its size bounds every allocation below.
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail<IOError>("load_npy: cannot read '{}'", path);
  size_t data = 0;
  NpyHeader h = read_npy_header(all, path, data);
  Dtype dtype = npy_dtype(h.descr, path);

  // The data must be exactly what the shape announces; checked before anything is allocated.
  uint64_t bytes = itemsize(dtype);
  for (uint64_t d : h.shape)
    if (__builtin_mul_overflow(bytes, d, &bytes))
      invalid_npy(path, fmt::format("the shape {} is too large", fmt::join(h.shape, ", ")));
  uint64_t have = all.size() - data;
  if (have < bytes)
    fail<IOError>(
        "load_npy: '{}' is truncated: the header announces {} bytes of data, the file holds {}",
        path, bytes, have);
  if (have > bytes)
    invalid_npy(path, fmt::format("{} bytes follow the {} bytes of data its header announces",
                                  have - bytes, bytes));

  // Fortran order is the row-major data of the reversed shape, transposed back.
  Shape shape;
  for (size_t i = 0; i < h.shape.size(); ++i)
    shape.push_back(
        static_cast<int64_t>(h.fortran_order ? h.shape[h.shape.size() - 1 - i] : h.shape[i]));
  Tensor t = Tensor::empty(shape, dtype);
  if (bytes > 0) std::memcpy(bytes_of(t), all.data() + data, bytes);
  normalize_bools(t);  // any non-zero byte is true
  if (h.fortran_order && t.dim() > 1) {
    std::vector<int64_t> reverse(static_cast<size_t>(t.dim()));
    for (size_t i = 0; i < reverse.size(); ++i)
      reverse[i] = static_cast<int64_t>(reverse.size() - 1 - i);
    t = t.permute(reverse).contiguous();
  }
  return t;
}

}  // namespace ag::nn
