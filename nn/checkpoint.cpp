#include "nn/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <xtensor/xadapt.hpp>
#include <xtensor/xnpy.hpp>  // the writer

#include "autograd/xtensor.h"

#if __has_include(<zlib.h>)
#include <zlib.h>
#define AG_HAVE_ZLIB 1
#else
#define AG_HAVE_ZLIB 0
#endif

namespace ag::nn {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors stores little-endian data; this code copies it as is");

using Json = nlohmann::json;

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
  }
  return {};
}

constexpr const char* kMetadataKey = "__metadata__";
constexpr const char* kOptimizerPrefix = "optimizer/";
constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;  // as the reference implementation
// The metadata entry holding the CRC-32 of the data section, as 8 lowercase hex digits.
constexpr const char* kChecksumKey = "tapegrad.data_crc32";

// ---- CRC-32 (the one of zlib, gzip and PNG: reflected polynomial 0xedb88320) ----

#if AG_HAVE_ZLIB
uint32_t crc32_update(uint32_t crc, const char* data, size_t n) {
  if (n == 0) return crc;  // zlib would return its initial value for a null pointer
  return static_cast<uint32_t>(
      ::crc32_z(crc, reinterpret_cast<const Bytef*>(data), static_cast<z_size_t>(n)));
}
#else
uint32_t crc32_update(uint32_t crc, const char* data, size_t n) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (size_t i = 0; i < n; ++i)
    crc = table[(crc ^ static_cast<unsigned char>(data[i])) & 0xff] ^ (crc >> 8);
  return ~crc;
}
#endif

// ---- dtypes ----

enum class Convert { none, f16, bf16, i32, i16, i8, u8 };

struct FileDtype {
  const char* name;
  size_t itemsize;  // in the file
  Dtype dtype;      // in memory
  Convert convert;
};

constexpr FileDtype kFileDtypes[] = {
    {"F32", 4, float32, Convert::none}, {"F64", 8, float64, Convert::none},
    {"I64", 8, int64, Convert::none},   {"BOOL", 1, boolean, Convert::none},
    {"F16", 2, float32, Convert::f16},  {"BF16", 2, float32, Convert::bf16},
    {"I32", 4, int64, Convert::i32},    {"I16", 2, int64, Convert::i16},
    {"I8", 1, int64, Convert::i8},      {"U8", 1, int64, Convert::u8},
};

const FileDtype* find_file_dtype(const std::string& name) {
  for (const FileDtype& d : kFileDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

const char* file_dtype_name(Dtype dtype) {
  for (const FileDtype& d : kFileDtypes)
    if (d.convert == Convert::none && d.dtype == dtype) return d.name;
  return "?";
}

// The bytes of a contiguous tensor.
char* bytes_of(const Tensor& t) {
  switch (t.dtype()) {
    case Dtype::float32:
      return reinterpret_cast<char*>(t.data<float>());
    case Dtype::float64:
      return reinterpret_cast<char*>(t.data<double>());
    case Dtype::int64:
      return reinterpret_cast<char*>(t.data<int64_t>());
    case Dtype::boolean:
      return reinterpret_cast<char*>(t.data<bool>());
  }
  return nullptr;
}

float half_to_float(uint16_t h) {
  int exponent = (h >> 10) & 0x1f;
  int mantissa = h & 0x3ff;
  float v;
  if (exponent == 0)  // zero or subnormal: mantissa * 2^-24
    v = std::ldexp(static_cast<float>(mantissa), -24);
  else if (exponent == 31)
    v = mantissa ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  else  // (1 + mantissa / 1024) * 2^(exponent - 15)
    v = std::ldexp(static_cast<float>(mantissa + 1024), exponent - 25);
  return (h & 0x8000) ? -v : v;
}

template <class From>
From load_le(const char* p) {
  From v;
  std::memcpy(&v, p, sizeof(From));
  return v;
}

// Converts n items of a narrower file dtype into t (float32 or int64).
void convert_into(const Tensor& t, const char* src, int64_t n, Convert c) {
  if (c == Convert::f16 || c == Convert::bf16) {
    float* out = t.data<float>();
    for (int64_t i = 0; i < n; ++i) {
      uint16_t h = load_le<uint16_t>(src + 2 * i);
      out[i] = c == Convert::f16 ? half_to_float(h) : std::bit_cast<float>(uint32_t{h} << 16);
    }
    return;
  }
  int64_t* out = t.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) switch (c) {
      case Convert::i32:
        out[i] = load_le<int32_t>(src + 4 * i);
        break;
      case Convert::i16:
        out[i] = load_le<int16_t>(src + 2 * i);
        break;
      case Convert::i8:
        out[i] = static_cast<int8_t>(src[i]);
        break;
      default:
        out[i] = static_cast<unsigned char>(src[i]);
        break;
    }
}

// ---- atomic writing ----

// Writes to "<path>.tmp.<pid>" and renames it over `path` on commit(); removes the temporary file
// if destroyed before that (an exception on the way).
class AtomicWriter {
 public:
  explicit AtomicWriter(const std::string& path, const char* op = "save_safetensors")
      : op_(op), path_(path), tmp_(fmt::format("{}.tmp.{}", path, ::getpid())) {
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) fail_errno("cannot create the temporary file");
  }
  AtomicWriter(const AtomicWriter&) = delete;
  AtomicWriter& operator=(const AtomicWriter&) = delete;
  ~AtomicWriter() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }

  // Buffered: small pieces are gathered, large ones go straight to the file.
  void write(const char* data, size_t n) {
    if (buffer_.size() + n > kBufferBytes) flush();
    if (n >= kBufferBytes)
      write_fd(data, n);
    else
      buffer_.append(data, n);
  }

  void commit() {
    flush();
    if (::fsync(fd_) != 0) fail_errno("cannot flush the temporary file to disk");
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail_errno("cannot close the temporary file");
    if (::rename(tmp_.c_str(), path_.c_str()) != 0)
      fail_errno("cannot rename the temporary file over it");
    committed_ = true;
    // Make the rename itself durable (best effort: not every file system allows it).
    std::string dir = std::filesystem::path(path_).parent_path().string();
    int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }

 private:
  static constexpr size_t kBufferBytes = size_t{1} << 20;

  void flush() {
    write_fd(buffer_.data(), buffer_.size());
    buffer_.clear();
  }

  void write_fd(const char* data, size_t n) {
    while (n > 0) {
      ssize_t w = ::write(fd_, data, std::min(n, size_t{1} << 30));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) fail_errno("cannot write the temporary file");
      data += w;
      n -= static_cast<size_t>(w);
    }
  }

  [[noreturn]] void fail_errno(const char* what) const {
    fail<IOError>("{}: cannot write '{}': {} '{}': {}", op_, path_, what, tmp_,
                  std::strerror(errno));
  }

  const char* op_;
  std::string path_, tmp_;
  std::string buffer_;
  int fd_ = -1;
  bool committed_ = false;
};

// ---- reading ----

struct Entry {
  std::string name;
  const FileDtype* dtype;
  Shape shape;
  uint64_t begin, end;  // in the data section
};

// A non-negative integer of the header (nlohmann keeps those as unsigned numbers).
bool as_size(const Json& j, uint64_t& out) {
  if (!j.is_number_unsigned()) return false;
  out = j.get<uint64_t>();
  return true;
}

Entry parse_entry(const std::string& path, const std::string& name, const Json& j) {
  auto bad = [&](const std::string& what) -> IOError {
    return IOError(fmt::format("load_safetensors: '{}': tensor '{}': {}", path, name, what));
  };
  if (!j.is_object()) throw bad(fmt::format("entry is {}, not an object", j.dump()));
  auto dt = j.find("dtype"), sh = j.find("shape"), off = j.find("data_offsets");
  if (dt == j.end() || sh == j.end() || off == j.end())
    throw bad("entry needs \"dtype\", \"shape\" and \"data_offsets\"");
  Entry e{name, nullptr, Shape(), 0, 0};
  if (!dt->is_string() || !(e.dtype = find_file_dtype(dt->get<std::string>())))
    throw bad(
        fmt::format("unsupported dtype {} (supported: F32, F64, I64, BOOL, F16, BF16, I32, "
                    "I16, I8, U8)",
                    dt->dump()));
  if (!sh->is_array() || sh->size() > static_cast<size_t>(kMaxDims))
    throw bad(fmt::format("shape {} is not an array of at most {} sizes", sh->dump(), kMaxDims));
  uint64_t bytes = e.dtype->itemsize;
  for (const Json& d : *sh) {
    uint64_t size;
    if (!as_size(d, size) || size > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      throw bad(fmt::format("shape {} has a size that is not a non-negative integer", sh->dump()));
    if (__builtin_mul_overflow(bytes, size, &bytes))
      throw bad(fmt::format("shape {} is too large", sh->dump()));
    e.shape.push_back(static_cast<int64_t>(size));
  }
  if (!off->is_array() || off->size() != 2 || !as_size((*off)[0], e.begin) ||
      !as_size((*off)[1], e.end) || e.begin > e.end)
    throw bad(
        fmt::format("data_offsets {} are not [begin, end] with 0 <= begin <= end", off->dump()));
  if (e.end - e.begin != bytes)
    throw bad(fmt::format("data_offsets {} span {} bytes but {} {} needs {}", off->dump(),
                          e.end - e.begin, e.dtype->name, e.shape, bytes));
  return e;
}

}  // namespace

void save_safetensors(const std::string& path, const StateDict& tensors, const Metadata& metadata) {
  // Check everything before the file is created.
  if (metadata.count(kChecksumKey))
    fail<ValueError>("save_safetensors: '{}': the metadata key '{}' is reserved for the checksum",
                     path, kChecksumKey);
  std::set<std::string> names;
  std::vector<Tensor> data;
  for (auto& [name, t] : tensors) {
    if (name.empty() || name == kMetadataKey)
      fail<ValueError>("save_safetensors: '{}': invalid tensor name '{}'", path, name);
    if (!names.insert(name).second)
      fail<ValueError>("save_safetensors: '{}': tensor name '{}' appears twice", path, name);
    if (!t.defined())
      fail<ValueError>("save_safetensors: '{}': tensor '{}' is undefined", path, name);
    data.push_back(t.detach().contiguous());
  }

  // Header: metadata first, then the tensors in the given order, their data packed back to back.
  uint32_t crc = 0;
  for (const Tensor& t : data)
    crc = crc32_update(crc, bytes_of(t), static_cast<size_t>(t.numel()) * itemsize(t.dtype()));
  Metadata meta = metadata;
  meta[kChecksumKey] = fmt::format("{:08x}", crc);
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header[kMetadataKey] = meta;
  uint64_t offset = 0;
  for (size_t i = 0; i < data.size(); ++i) {
    uint64_t bytes = static_cast<uint64_t>(data[i].numel()) * itemsize(data[i].dtype());
    header[tensors[i].first] = {{"dtype", file_dtype_name(data[i].dtype())},
                                {"shape", data[i].shape().vec()},
                                {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    fail<ValueError>("save_safetensors: '{}': a name or metadata string is not UTF-8 ({})", path,
                     e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');

  AtomicWriter out(path);
  uint64_t length = text.size();
  out.write(reinterpret_cast<const char*>(&length), 8);
  out.write(text.data(), text.size());
  for (const Tensor& t : data)
    out.write(bytes_of(t), static_cast<size_t>(t.numel()) * itemsize(t.dtype()));
  out.commit();
}

StateDict load_safetensors(const std::string& path, Metadata* metadata) {
  auto bad = [&](const std::string& what) -> IOError {
    return IOError(fmt::format("load_safetensors: '{}': {}", path, what));
  };
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw bad(std::filesystem::exists(path, ec) ? "not a regular file" : "no such file");
  uint64_t file_size = std::filesystem::file_size(path, ec);
  if (ec) throw bad(ec.message());
  std::ifstream in(path, std::ios::binary);
  if (!in) throw bad(fmt::format("cannot open: {}", std::strerror(errno)));

  // Header length and header.
  if (file_size < 8)
    throw bad(
        fmt::format("the file has {} bytes, too few for the 8-byte header length", file_size));
  uint64_t length = 0;
  in.read(reinterpret_cast<char*>(&length), 8);
  if (length > file_size - 8 || length > kMaxHeaderBytes)
    throw bad(
        fmt::format("header length {} does not fit a file of {} bytes (truncated, or not a "
                    "safetensors file)",
                    length, file_size));
  std::string text(length, '\0');
  in.read(text.data(), static_cast<std::streamsize>(length));
  if (!in) throw bad("cannot read the header");
  Json header;
  try {
    header = Json::parse(text);
  } catch (const Json::exception& e) {
    // parse_error for bad syntax, out_of_range for a number beyond double's range.
    throw bad(fmt::format("the header is not valid JSON: {}", e.what()));
  }
  if (!header.is_object()) throw bad("the header is not a JSON object");

  // Entries, checked one by one, then together: they must tile the data section exactly.
  Metadata meta;
  std::vector<Entry> entries;
  for (auto& [key, value] : header.items()) {
    if (key != kMetadataKey) {
      entries.push_back(parse_entry(path, key, value));
      continue;
    }
    if (!value.is_object()) throw bad("__metadata__ is not an object");
    for (auto& [k, v] : value.items()) {
      if (!v.is_string())
        throw bad(fmt::format("__metadata__ '{}' is {}, not a string", k, v.dump()));
      meta[k] = v.get<std::string>();
    }
  }
  uint64_t data_size = file_size - 8 - length;
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (const Entry& e : entries)
    if (e.end > data_size)
      throw bad(
          fmt::format("tensor '{}' ends at byte {} of the data section but the file holds "
                      "only {} bytes of data (truncated?)",
                      e.name, e.end, data_size));
  uint64_t covered = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    if (e.begin < covered)
      throw bad(fmt::format("tensors '{}' and '{}' overlap (bytes [{}, {}) and [{}, {}))",
                            entries[i - 1].name, e.name, entries[i - 1].begin, entries[i - 1].end,
                            e.begin, e.end));
    if (e.begin > covered)
      throw bad(
          fmt::format("bytes [{}, {}) of the data section belong to no tensor", covered, e.begin));
    covered = e.end;
  }
  if (covered != data_size)
    throw bad(
        fmt::format("{} bytes after the last tensor belong to no tensor", data_size - covered));

  // Data.
  // The checksum, when the writer recorded one (ours always do; other tools' files have none).
  bool has_checksum = false;
  uint32_t expected_crc = 0;
  if (auto it = meta.find(kChecksumKey); it != meta.end()) {
    const std::string& hex = it->second;
    if (hex.size() != 8 || hex.find_first_not_of("0123456789abcdef") != std::string::npos)
      throw bad(
          fmt::format("__metadata__ '{}' is '{}', not 8 lowercase hex digits", kChecksumKey, hex));
    expected_crc = static_cast<uint32_t>(std::stoul(hex, nullptr, 16));
    has_checksum = true;
    meta.erase(it);
  }

  StateDict out;
  std::vector<char> scratch;
  uint32_t crc = 0;  // over the data section, in file order (the entries tile it)
  for (const Entry& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype->dtype);
    size_t bytes = e.end - e.begin;
    char* dst = bytes_of(t);
    if (e.dtype->convert != Convert::none) {
      scratch.resize(bytes);
      dst = scratch.data();
    }
    in.seekg(static_cast<std::streamoff>(8 + length + e.begin));
    in.read(dst, static_cast<std::streamsize>(bytes));
    if (!in) throw bad(fmt::format("cannot read the data of tensor '{}'", e.name));
    crc = crc32_update(crc, dst, bytes);
    if (e.dtype->convert != Convert::none) convert_into(t, dst, t.numel(), e.dtype->convert);
    if (t.dtype() == boolean)  // any non-zero byte is true; ours are 0 or 1
      for (int64_t i = 0; i < t.numel(); ++i) dst[i] = dst[i] != 0;
    out.emplace_back(e.name, t);
  }
  if (has_checksum && crc != expected_crc)
    throw bad(fmt::format(
        "the data section is corrupt: its CRC-32 is {:08x} but the header records {:08x}", crc,
        expected_crc));
  if (metadata) *metadata = std::move(meta);
  return out;
}

void save_checkpoint(const std::string& path, const Module& module, const Optimizer* optimizer,
                     const Metadata& metadata) {
  const std::string prefix = kOptimizerPrefix;
  for (auto& [k, _] : metadata)
    if (k.starts_with(prefix))
      fail<ValueError>("save_checkpoint: '{}': metadata key '{}' uses the reserved prefix '{}'",
                       path, k, prefix);
  StateDict tensors = module.state_dict();
  Metadata meta = metadata;
  if (optimizer) {
    OptimizerState state = optimizer->state_dict();
    for (auto& [k, t] : state.tensors) tensors.emplace_back(prefix + k, t);
    // fmt's shortest representation reads back to the same double.
    for (auto& [k, v] : state.scalars) meta[prefix + k] = fmt::format("{}", v);
  }
  save_safetensors(path, tensors, meta);
}

CheckpointInfo load_checkpoint(const std::string& path, Module& module, Optimizer* optimizer,
                               bool strict) {
  const std::string prefix = kOptimizerPrefix;
  Metadata meta;
  StateDict all = load_safetensors(path, &meta);

  CheckpointInfo info;
  StateDict model_state;
  OptimizerState optimizer_state;
  bool has_optimizer = false;
  for (auto& [k, t] : all)
    if (k.starts_with(prefix))
      optimizer_state.tensors.emplace_back(k.substr(prefix.size()), t);
    else
      model_state.emplace_back(k, t);
  for (auto& [k, v] : meta) {
    if (!k.starts_with(prefix)) {
      info.metadata[k] = v;
      continue;
    }
    has_optimizer = true;
    char* end = nullptr;
    double x = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0')
      fail<IOError>("load_checkpoint: '{}': metadata '{}' is '{}', not a number", path, k, v);
    optimizer_state.scalars[k.substr(prefix.size())] = x;
  }
  if (optimizer && !has_optimizer)
    fail<ValueError>("load_checkpoint: '{}' holds no optimizer state (saved without an optimizer)",
                     path);

  // The optimizer checks its state before changing anything; if the model then refuses its part,
  // the optimizer gets its previous state back.
  try {
    OptimizerState previous;
    if (optimizer) {
      previous = optimizer->state_dict();
      optimizer->load_state_dict(optimizer_state);
    }
    try {
      info.model = module.load_state_dict(model_state, strict);
    } catch (...) {
      if (optimizer) optimizer->load_state_dict(previous);
      throw;
    }
  } catch (const ValueError& e) {
    fail<ValueError>("load_checkpoint: '{}': {}", path, e.what());
  }
  return info;
}

}  // namespace ag::nn

namespace ag::nn {

// ---- .npy ----

void save_npy(const std::string& path, const Tensor& t) {
  if (!t.defined()) fail<ValueError>("save_npy: '{}': the tensor is undefined", path);
  Tensor c = t.detach().contiguous();
  std::string bytes = npy_bytes(c);
  AtomicWriter w(path, "save_npy");
  w.write(bytes.data(), bytes.size());
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

  // Magic "\x93NUMPY", version major.minor, header length (u16 in 1.0, u32 in 2.0 and 3.0).
  auto invalid = [&](const std::string& what) {
    fail<IOError>("load_npy: '{}' is not a valid .npy file: {}", path, what);
  };
  if (all.size() < 10 || all.compare(0, 6, "\x93NUMPY") != 0)
    invalid("it does not start with the magic \\x93NUMPY");
  int major = static_cast<unsigned char>(all[6]), minor = static_cast<unsigned char>(all[7]);
  if (major < 1 || major > 3 || minor != 0)
    invalid(fmt::format("format version {}.{} (known: 1.0, 2.0, 3.0)", major, minor));
  size_t start = major == 1 ? 10 : 12;
  if (all.size() < start) invalid("truncated before the header length");
  uint64_t header_len =
      major == 1 ? load_le<uint16_t>(all.data() + 8) : load_le<uint32_t>(all.data() + 8);
  if (header_len > all.size() - start)
    invalid(fmt::format("the header length {} exceeds the {} bytes that follow it", header_len,
                        all.size() - start));
  NpyHeader h = NpyHeaderParser(all.substr(start, header_len), path).parse();

  Dtype dtype;
  if (h.descr == "<f4")
    dtype = float32;
  else if (h.descr == "<f8")
    dtype = float64;
  else if (h.descr == "<i8")
    dtype = int64;
  else if (h.descr == "|b1")
    dtype = boolean;
  else
    fail<IOError>("load_npy: '{}' holds dtype '{}'; supported: <f4, <f8, <i8, |b1", path, h.descr);

  // The data must be exactly what the shape announces; checked before anything is allocated.
  uint64_t bytes = itemsize(dtype);
  for (uint64_t d : h.shape)
    if (__builtin_mul_overflow(bytes, d, &bytes))
      invalid(fmt::format("the shape {} is too large", fmt::join(h.shape, ", ")));
  uint64_t have = all.size() - start - header_len;
  if (have < bytes)
    fail<IOError>(
        "load_npy: '{}' is truncated: the header announces {} bytes of data, the file "
        "holds {}",
        path, bytes, have);
  if (have > bytes)
    invalid(fmt::format("{} bytes follow the {} bytes of data its header announces", have - bytes,
                        bytes));

  // Fortran order is the row-major data of the reversed shape, transposed back.
  Shape shape;
  for (size_t i = 0; i < h.shape.size(); ++i)
    shape.push_back(
        static_cast<int64_t>(h.fortran_order ? h.shape[h.shape.size() - 1 - i] : h.shape[i]));
  Tensor t = Tensor::empty(shape, dtype);
  char* dst = bytes_of(t);
  if (bytes > 0) std::memcpy(dst, all.data() + start + header_len, bytes);
  if (dtype == boolean)  // any non-zero byte is true
    for (uint64_t i = 0; i < bytes; ++i) dst[i] = dst[i] != 0;
  if (h.fortran_order && t.dim() > 1) {
    std::vector<int64_t> reverse(static_cast<size_t>(t.dim()));
    for (size_t i = 0; i < reverse.size(); ++i)
      reverse[i] = static_cast<int64_t>(reverse.size() - 1 - i);
    t = t.permute(reverse).contiguous();
  }
  return t;
}

}  // namespace ag::nn
