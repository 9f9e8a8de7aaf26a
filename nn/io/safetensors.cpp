#include "nn/io/safetensors.h"

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
#include <optional>
#include <set>

#include "nn/io/atomic_file.h"
#include "nn/io/tensor_bytes.h"

#include "nn/io/zlib.h"

namespace ag::nn {
namespace {

using namespace detail;

static_assert(std::endian::native == std::endian::little,
              "safetensors stores little-endian data; this code copies it as is");

using Json = nlohmann::json;

constexpr const char* kMetadataKey = "__metadata__";
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

enum class Convert { none, f16, i32, i16, i8, u8 };

struct FileDtype {
  const char* name;
  size_t itemsize;  // in the file
  Dtype dtype;      // in memory
  Convert convert;
};

constexpr FileDtype kFileDtypes[] = {
    {"F32", 4, float32, Convert::none}, {"F64", 8, float64, Convert::none},
    {"I64", 8, int64, Convert::none},   {"BOOL", 1, boolean, Convert::none},
    {"F16", 2, float32, Convert::f16},  {"BF16", 2, bfloat16, Convert::none},
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

// Converts n items of a narrower file dtype into t (float32 or int64).
void convert_into(const Tensor& t, const char* src, int64_t n, Convert c) {
  if (c == Convert::f16) {
    float* out = t.data<float>();
    for (int64_t i = 0; i < n; ++i) out[i] = half_to_float(load_le<uint16_t>(src + 2 * i));
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

  AtomicFile out(path, "save_safetensors");
  uint64_t length = text.size();
  out.write(reinterpret_cast<const char*>(&length), 8);
  out.write(text.data(), text.size());
  for (const Tensor& t : data)
    out.write(bytes_of(t), static_cast<size_t>(t.numel()) * itemsize(t.dtype()));
  out.commit();
}

namespace {

IOError bad_file(const std::string& path, const std::string& what) {
  return IOError(fmt::format("load_safetensors: '{}': {}", path, what));
}

// The 8-byte header length and the JSON header after it; `length` receives the former.
Json read_header(std::ifstream& in, const std::string& path, uint64_t file_size, uint64_t& length) {
  if (file_size < 8)
    throw bad_file(path, fmt::format("the file has {} bytes, too few for the 8-byte header length",
                                     file_size));
  in.read(reinterpret_cast<char*>(&length), 8);
  if (length > file_size - 8 || length > kMaxHeaderBytes)
    throw bad_file(path, fmt::format("header length {} does not fit a file of {} bytes "
                                     "(truncated, or not a safetensors file)",
                                     length, file_size));
  std::string text(length, '\0');
  in.read(text.data(), static_cast<std::streamsize>(length));
  if (!in) throw bad_file(path, "cannot read the header");
  Json header;
  try {
    header = Json::parse(text);
  } catch (const Json::exception& e) {
    // parse_error for bad syntax, out_of_range for a number beyond double's range.
    throw bad_file(path, fmt::format("the header is not valid JSON: {}", e.what()));
  }
  if (!header.is_object()) throw bad_file(path, "the header is not a JSON object");
  return header;
}

// The header's entries, each checked alone, sorted by offset; the metadata strings into `meta`.
std::vector<Entry> parse_header(const std::string& path, const Json& header, Metadata& meta) {
  std::vector<Entry> entries;
  for (auto& [key, value] : header.items()) {
    if (key != kMetadataKey) {
      entries.push_back(parse_entry(path, key, value));
      continue;
    }
    if (!value.is_object()) throw bad_file(path, "__metadata__ is not an object");
    for (auto& [k, v] : value.items()) {
      if (!v.is_string())
        throw bad_file(path, fmt::format("__metadata__ '{}' is {}, not a string", k, v.dump()));
      meta[k] = v.get<std::string>();
    }
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  return entries;
}

// The sorted entries must tile the data section exactly: inside it, no overlap, no gap.
void check_tiling(const std::string& path, const std::vector<Entry>& entries, uint64_t data_size) {
  for (const Entry& e : entries)
    if (e.end > data_size)
      throw bad_file(path, fmt::format("tensor '{}' ends at byte {} of the data section but the "
                                       "file holds only {} bytes of data (truncated?)",
                                       e.name, e.end, data_size));
  uint64_t covered = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    if (e.begin < covered)
      throw bad_file(
          path, fmt::format("tensors '{}' and '{}' overlap (bytes [{}, {}) and [{}, {}))",
                            entries[i - 1].name, e.name, entries[i - 1].begin, entries[i - 1].end,
                            e.begin, e.end));
    if (e.begin > covered)
      throw bad_file(path, fmt::format("bytes [{}, {}) of the data section belong to no tensor",
                                       covered, e.begin));
    covered = e.end;
  }
  if (covered != data_size)
    throw bad_file(path, fmt::format("{} bytes after the last tensor belong to no tensor",
                                     data_size - covered));
}

// The checksum the writer recorded (ours always do; other tools' files have none), removed from
// `meta`; nullopt without one.
std::optional<uint32_t> take_checksum(const std::string& path, Metadata& meta) {
  auto it = meta.find(kChecksumKey);
  if (it == meta.end()) return std::nullopt;
  const std::string& hex = it->second;
  if (hex.size() != 8 || hex.find_first_not_of("0123456789abcdef") != std::string::npos)
    throw bad_file(path, fmt::format("__metadata__ '{}' is '{}', not 8 lowercase hex digits",
                                     kChecksumKey, hex));
  auto crc = static_cast<uint32_t>(std::stoul(hex, nullptr, 16));
  meta.erase(it);
  return crc;
}

// Every entry's data, converted to its tensor's dtype; `crc` receives the data section's CRC-32
// (in file order: the entries tile it).
StateDict read_tensors(std::ifstream& in, const std::string& path,
                       const std::vector<Entry>& entries, uint64_t data_start, uint32_t& crc) {
  StateDict out;
  std::vector<char> scratch;
  crc = 0;
  for (const Entry& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype->dtype);
    size_t bytes = e.end - e.begin;
    char* dst = bytes_of(t);
    if (e.dtype->convert != Convert::none) {
      scratch.resize(bytes);
      dst = scratch.data();
    }
    in.seekg(static_cast<std::streamoff>(data_start + e.begin));
    in.read(dst, static_cast<std::streamsize>(bytes));
    if (!in) throw bad_file(path, fmt::format("cannot read the data of tensor '{}'", e.name));
    crc = crc32_update(crc, dst, bytes);
    if (e.dtype->convert != Convert::none) convert_into(t, dst, t.numel(), e.dtype->convert);
    normalize_bools(t);  // any non-zero byte is true; ours are 0 or 1
    out.emplace_back(e.name, t);
  }
  return out;
}

}  // namespace

StateDict load_safetensors(const std::string& path, Metadata* metadata) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw bad_file(path, std::filesystem::exists(path, ec) ? "not a regular file" : "no such file");
  uint64_t file_size = std::filesystem::file_size(path, ec);
  if (ec) throw bad_file(path, ec.message());
  std::ifstream in(path, std::ios::binary);
  if (!in) throw bad_file(path, fmt::format("cannot open: {}", std::strerror(errno)));

  uint64_t length = 0;
  Json header = read_header(in, path, file_size, length);
  Metadata meta;
  std::vector<Entry> entries = parse_header(path, header, meta);
  check_tiling(path, entries, file_size - 8 - length);
  std::optional<uint32_t> expected_crc = take_checksum(path, meta);
  uint32_t crc = 0;
  StateDict out = read_tensors(in, path, entries, 8 + length, crc);
  if (expected_crc && crc != *expected_crc)
    throw bad_file(path, fmt::format("the data section is corrupt: its CRC-32 is {:08x} but the "
                                     "header records {:08x}",
                                     crc, *expected_crc));
  if (metadata) *metadata = std::move(meta);
  return out;
}

}  // namespace ag::nn
