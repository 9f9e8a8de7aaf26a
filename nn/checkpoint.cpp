#include "nn/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
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
#include <xtensor/xnpy.hpp>

#include "autograd/xtensor.h"

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
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
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
  } catch (const Json::parse_error& e) {
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
  StateDict out;
  std::vector<char> scratch;
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
    if (e.dtype->convert != Convert::none) convert_into(t, dst, t.numel(), e.dtype->convert);
    if (t.dtype() == boolean)  // any non-zero byte is true; ours are 0 or 1
      for (int64_t i = 0; i < t.numel(); ++i) dst[i] = dst[i] != 0;
    out.emplace_back(e.name, t);
  }
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

Tensor load_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail<IOError>("load_npy: cannot open '{}': {}", path, std::strerror(errno));
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream stream(all);
  xt::detail::npy_file file = [&] {
    try {
      return xt::detail::load_npy_file(stream);
    } catch (const std::exception& e) {
      fail<IOError>("load_npy: '{}' is not a valid .npy file: {}", path, e.what());
    }
  }();
  if (!stream)
    fail<IOError>("load_npy: '{}' is truncated: the header announces {} bytes of data", path,
                  file.n_bytes());
  if (static_cast<int64_t>(file.m_shape.size()) > kMaxDims)
    fail<IOError>("load_npy: '{}' has {} axes, at most {} are supported", path, file.m_shape.size(),
                  kMaxDims);
  const std::string& type = file.m_typestring;
  try {
    if (type == "<f4") return from_xarray<float>(std::move(file).cast<float>());
    if (type == "<f8") return from_xarray<double>(std::move(file).cast<double>());
    if (type == "<i8") return from_xarray<int64_t>(std::move(file).cast<int64_t>());
    if (type == "|b1") return from_xarray<bool>(std::move(file).cast<bool>());
  } catch (const std::exception& e) {
    fail<IOError>("load_npy: '{}': {}", path, e.what());
  }
  fail<IOError>("load_npy: '{}' holds dtype '{}'; supported: <f4, <f8, <i8, |b1", path, type);
}

}  // namespace ag::nn
