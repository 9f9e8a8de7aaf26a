#include "nn/io/idx.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "nn/io/zlib.h"

namespace ag::nn {
namespace {

constexpr uint32_t kImagesMagic = 0x00000803;  // unsigned bytes, 3 dimensions
constexpr uint32_t kLabelsMagic = 0x00000801;  // unsigned bytes, 1 dimension

// A file read (or written) through zlib, which passes plain files through unchanged; through stdio
// without zlib.
class ByteFile {
 public:
  ByteFile(const std::string& path, const char* fn, bool write, bool gzip)
      : path_(path), fn_(fn), write_(write) {
#if AG_HAVE_ZLIB
    gz_ = gzopen(path.c_str(), write ? (gzip ? "wb6" : "wbT") : "rb");
    if (!gz_) fail<IOError>("{}: cannot open '{}': {}", fn, path, std::strerror(errno));
#else
    if (gzip) fail<IOError>("{}: '{}': gzip needs zlib, which this build lacks", fn, path);
    file_ = std::fopen(path.c_str(), write ? "wb" : "rb");
    if (!file_) fail<IOError>("{}: cannot open '{}': {}", fn, path, std::strerror(errno));
#endif
  }
  ByteFile(const ByteFile&) = delete;
  ByteFile& operator=(const ByteFile&) = delete;
  ~ByteFile() {
#if AG_HAVE_ZLIB
    if (gz_) gzclose(gz_);
#else
    if (file_) std::fclose(file_);
#endif
  }

  // Reads up to n bytes; fewer only at the end of the file.
  size_t read(void* dst, size_t n) {
    size_t done = 0;
    char* p = static_cast<char*>(dst);
    while (done < n) {
      size_t want = std::min(n - done, size_t{1} << 30);
#if AG_HAVE_ZLIB
      int got = gzread(gz_, p + done, static_cast<unsigned>(want));
      if (got < 0) fail_zlib("cannot read");
      if (got == 0) {
        // zlib reports a gzip stream cut short only through gzerror.
        int code = Z_OK;
        gzerror(gz_, &code);
        if (code == Z_BUF_ERROR)
          fail<IOError>("{}: '{}': truncated gzip data (unexpected end of file)", fn_, path_);
        break;
      }
      done += static_cast<size_t>(got);
#else
      size_t got = std::fread(p + done, 1, want, file_);
      if (std::ferror(file_)) fail<IOError>("{}: cannot read '{}'", fn_, path_);
      if (got == 0) break;
      done += got;
#endif
    }
    return done;
  }

  void write(const void* src, size_t n) {
    const char* p = static_cast<const char*>(src);
    while (n > 0) {
      size_t chunk = std::min(n, size_t{1} << 30);
#if AG_HAVE_ZLIB
      if (gzwrite(gz_, p, static_cast<unsigned>(chunk)) != static_cast<int>(chunk))
        fail_zlib("cannot write");
#else
      if (std::fwrite(p, 1, chunk, file_) != chunk)
        fail<IOError>("{}: cannot write '{}': {}", fn_, path_, std::strerror(errno));
#endif
      p += chunk;
      n -= chunk;
    }
  }

  void close() {
#if AG_HAVE_ZLIB
    int rc = gzclose(gz_);
    gz_ = nullptr;
    if (rc != Z_OK)
      fail<IOError>("{}: cannot {} '{}' (zlib error {})", fn_, write_ ? "finish writing" : "close",
                    path_, rc);
#else
    int rc = std::fclose(file_);
    file_ = nullptr;
    if (rc != 0) fail<IOError>("{}: cannot close '{}': {}", fn_, path_, std::strerror(errno));
#endif
  }

 private:
#if AG_HAVE_ZLIB
  [[noreturn]] void fail_zlib(const char* what) {
    int saved_errno = errno, code = Z_OK;
    std::string msg = gzerror(gz_, &code);
    if (code == Z_ERRNO) msg = std::strerror(saved_errno);
    if (msg.starts_with(path_ + ": ")) msg.erase(0, path_.size() + 2);  // zlib names the file too
    fail<IOError>("{}: {} '{}': {}", fn_, what, path_, msg);
  }
  gzFile gz_ = nullptr;
#else
  std::FILE* file_ = nullptr;
#endif
  std::string path_;
  const char* fn_;
  bool write_;
};

uint32_t big_endian_u32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

struct IdxContents {
  std::vector<int64_t> dims;
  std::vector<unsigned char> bytes;
};

// Reads a whole ubyte IDX file of the expected magic, checking its size against the header.
IdxContents read_idx(const std::string& path, uint32_t magic, const char* fn) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    fail<IOError>("{}: '{}': {}", fn, path,
                  std::filesystem::exists(path, ec) ? "not a regular file" : "no such file");
  ByteFile in(path, fn, false, false);
  unsigned char head[4];
  if (in.read(head, 4) < 4) fail<IOError>("{}: '{}': shorter than the 4-byte IDX magic", fn, path);
  uint32_t got = big_endian_u32(head);
  if (got != magic) {
    std::string hint;
    if (head[0] == 0x1f && head[1] == 0x8b)
      hint = " (gzip-compressed, and this build lacks zlib)";
    else if (got == kImagesMagic)
      hint = " (an image file)";
    else if (got == kLabelsMagic)
      hint = " (a label file)";
    fail<IOError>("{}: '{}': bad magic 0x{:08x}, expected 0x{:08x}{}", fn, path, got, magic, hint);
  }
  int ndim = head[3];
  IdxContents c;
  uint64_t total = 1;
  for (int i = 0; i < ndim; ++i) {
    unsigned char d[4];
    if (in.read(d, 4) < 4)
      fail<IOError>("{}: '{}': truncated header ({} of {} sizes)", fn, path, i, ndim);
    c.dims.push_back(big_endian_u32(d));
    if (__builtin_mul_overflow(total, uint64_t{big_endian_u32(d)}, &total))
      fail<IOError>("{}: '{}': the sizes in the header overflow 64 bits", fn, path);
  }
  // Read in pieces so a header claiming more than the file holds allocates no more than the file.
  constexpr size_t kChunk = size_t{1} << 20;
  while (c.bytes.size() < total) {
    size_t have = c.bytes.size();
    c.bytes.resize(have + static_cast<size_t>(std::min<uint64_t>(kChunk, total - have)));
    size_t n = in.read(c.bytes.data() + have, c.bytes.size() - have);
    c.bytes.resize(have + n);
    if (n == 0) break;
  }
  std::string dims_text;
  for (int64_t d : c.dims) dims_text += (dims_text.empty() ? "" : " x ") + std::to_string(d);
  if (c.bytes.size() < total)
    fail<IOError>(
        "{}: '{}': truncated: the header announces {} = {} bytes of data, the file has {}", fn,
        path, dims_text, total, c.bytes.size());
  unsigned char extra;
  if (in.read(&extra, 1) != 0)
    fail<IOError>(
        "{}: '{}': the file holds more than the {} = {} bytes its header announces (wrong "
        "count in the header?)",
        fn, path, dims_text, total);
  in.close();
  return c;
}

void write_idx(const std::string& path, uint32_t magic, const std::vector<int64_t>& dims,
               const std::vector<unsigned char>& bytes, bool gzip, const char* fn) {
  std::vector<unsigned char> head;
  auto put = [&](uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) head.push_back(static_cast<unsigned char>(v >> s));
  };
  put(magic);
  for (int64_t d : dims) put(static_cast<uint32_t>(d));
  ByteFile out(path, fn, true, gzip);
  out.write(head.data(), head.size());
  out.write(bytes.data(), bytes.size());
  out.close();
}

}  // namespace

Tensor read_idx_images(const std::string& path, bool flatten) {
  IdxContents c = read_idx(path, kImagesMagic, "read_idx_images");
  int64_t n = c.dims[0], rows = c.dims[1], cols = c.dims[2], pixels = 0;
  // With no images the data size does not bound the image size: its strides must still fit.
  if (__builtin_mul_overflow(rows, cols, &pixels))
    fail<IOError>("read_idx_images: '{}': images of {} x {} pixels are too large", path, rows,
                  cols);
  Tensor images =
      flatten ? Tensor::empty({n, pixels}, float32) : Tensor::empty({n, rows, cols}, float32);
  float* out = images.data<float>();
  for (size_t i = 0; i < c.bytes.size(); ++i) out[i] = static_cast<float>(c.bytes[i]) / 255.0f;
  return images;
}

Tensor read_idx_labels(const std::string& path) {
  IdxContents c = read_idx(path, kLabelsMagic, "read_idx_labels");
  std::vector<int64_t> labels(c.bytes.begin(), c.bytes.end());
  return Tensor::from_vector(labels, {c.dims[0]});
}

void write_idx_images(const std::string& path, const Tensor& images, bool gzip) {
  const char* fn = "write_idx_images";
  if (images.dim() != 3)
    fail<ShapeError>("{}: expected images [count, rows, cols], got {}", fn, images.shape());
  std::vector<unsigned char> bytes(static_cast<size_t>(images.numel()));
  if (is_floating(images.dtype())) {
    std::vector<double> v = images.to_vector<double>();
    for (size_t i = 0; i < v.size(); ++i)
      bytes[i] = static_cast<unsigned char>(std::lround(std::clamp(v[i], 0.0, 1.0) * 255.0));
  } else if (images.dtype() == int64) {
    std::vector<int64_t> v = images.to_vector<int64_t>();
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i] < 0 || v[i] > 255)
        fail<ValueError>("{}: pixel value {} is outside [0, 255]", fn, v[i]);
      bytes[i] = static_cast<unsigned char>(v[i]);
    }
  } else {
    fail<DtypeError>("{}: expected float or int64 images, got {}", fn, dtype_name(images.dtype()));
  }
  write_idx(path, kImagesMagic, images.shape().vec(), bytes, gzip, fn);
}

void write_idx_labels(const std::string& path, const Tensor& labels, bool gzip) {
  const char* fn = "write_idx_labels";
  if (labels.dim() != 1 || labels.dtype() != int64)
    fail<ShapeError>("{}: expected int64 labels [count], got {} {}", fn, dtype_name(labels.dtype()),
                     labels.shape());
  std::vector<unsigned char> bytes;
  for (int64_t v : labels.to_vector<int64_t>()) {
    if (v < 0 || v > 255) fail<ValueError>("{}: label {} is outside [0, 255]", fn, v);
    bytes.push_back(static_cast<unsigned char>(v));
  }
  write_idx(path, kLabelsMagic, labels.shape().vec(), bytes, gzip, fn);
}

}  // namespace ag::nn
