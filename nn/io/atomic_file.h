// Writing a file so that readers see either its old contents or the complete new ones, never a
// half-written file: the bytes go to "<path>.tmp.<pid>", which commit() flushes to disk (fsync)
// and renames over `path`. A writer destroyed before commit() (an exception on the way) removes
// its temporary file and leaves `path` as it was. Every format writer of nn/io uses it.
#pragma once

#include <cstddef>
#include <string>

namespace ag::nn {

class AtomicFile {
 public:
  // Creates the temporary file next to `path`. `op` names the caller in error messages
  // ("save_safetensors: cannot write 'x': ..."). IOError if the file cannot be created.
  explicit AtomicFile(const std::string& path, const char* op);
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();

  // Appends n bytes. Small pieces are gathered in a buffer, large ones go straight to the file.
  // IOError (naming the path and the system's reason) if the write fails.
  void write(const char* data, size_t n);
  void write(const std::string& bytes) { write(bytes.data(), bytes.size()); }

  // Flushes, syncs and renames the temporary file over `path`, then syncs the directory (best
  // effort). IOError if any step but the last fails; the temporary file is then removed.
  void commit();

  const std::string& path() const { return path_; }

 private:
  static constexpr size_t kBufferBytes = size_t{1} << 20;
  void flush();
  void write_fd(const char* data, size_t n);
  [[noreturn]] void fail_errno(const char* what) const;

  const char* op_;
  std::string path_, tmp_;
  std::string buffer_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace ag::nn
