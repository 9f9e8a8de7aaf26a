#include "nn/io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "autograd/error.h"

namespace ag::nn {

AtomicFile::AtomicFile(const std::string& path, const char* op)
    : op_(op), path_(path), tmp_(fmt::format("{}.tmp.{}", path, ::getpid())) {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail_errno("cannot create the temporary file");
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

void AtomicFile::write(const char* data, size_t n) {
  if (buffer_.size() + n > kBufferBytes) flush();
  if (n >= kBufferBytes)
    write_fd(data, n);
  else
    buffer_.append(data, n);
}

void AtomicFile::commit() {
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

void AtomicFile::flush() {
  write_fd(buffer_.data(), buffer_.size());
  buffer_.clear();
}

void AtomicFile::write_fd(const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd_, data, std::min(n, size_t{1} << 30));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail_errno("cannot write the temporary file");
    data += w;
    n -= static_cast<size_t>(w);
  }
}

void AtomicFile::fail_errno(const char* what) const {
  fail<IOError>("{}: cannot write '{}': {} '{}': {}", op_, path_, what, tmp_, std::strerror(errno));
}

}  // namespace ag::nn
