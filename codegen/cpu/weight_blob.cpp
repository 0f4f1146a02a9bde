#include "codegen/cpu/weight_blob.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

namespace kiln::codegen::cpu {
namespace {

// An unnamed file in `folder`: O_TMPFILE where the file system has it, else
// a named one unlinked at once. Either way nothing is left behind, even if
// the compile is killed.
int openUnnamedFile(const std::string& folder, std::string* error) {
  int fd = ::open(folder.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;
  std::string name = folder + "/.kiln-weights-XXXXXX";
  fd = ::mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0) {
    *error = "cannot create a temporary file for the weights in '" + folder + "': " + std::strerror(errno);
    return -1;
  }
  ::unlink(name.c_str());
  return fd;
}

}  // namespace

WeightBlob::WeightBlob(std::string folder) : folder_(std::move(folder)) {}

WeightBlob::WeightBlob(WeightBlob&& other) noexcept
    : folder_(std::move(other.folder_)),
      fd_(std::exchange(other.fd_, -1)),
      bytes_(std::exchange(other.bytes_, 0)),
      written_(std::exchange(other.written_, 0)),
      status_(std::move(other.status_)) {}

WeightBlob& WeightBlob::operator=(WeightBlob&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    folder_ = std::move(other.folder_);
    fd_ = std::exchange(other.fd_, -1);
    bytes_ = std::exchange(other.bytes_, 0);
    written_ = std::exchange(other.written_, 0);
    status_ = std::move(other.status_);
  }
  return *this;
}

WeightBlob::~WeightBlob() {
  if (fd_ >= 0) ::close(fd_);
}

void WeightBlob::put(std::span<const uint8_t> bytes) {
  while (!bytes.empty() && status_.isOk()) {
    ssize_t n = ::write(fd_, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      status_ = ioError("cannot write the weights' temporary file in '" + folder_ + "': " + std::strerror(errno));
      return;
    }
    bytes = bytes.subspan(static_cast<size_t>(n));
    written_ += static_cast<uint64_t>(n);
  }
}

uint64_t WeightBlob::add(uint64_t bytes, const Writer& write) {
  const uint64_t offset = (bytes_ + 63) / 64 * 64;
  bytes_ = offset + bytes;
  if (!status_.isOk()) return offset;
  if (fd_ < 0) {
    std::string error;
    fd_ = openUnnamedFile(folder_, &error);
    if (fd_ < 0) {
      status_ = ioError(error);
      return offset;
    }
  }
  static const uint8_t kZeros[64] = {};
  put({kZeros, static_cast<size_t>(offset - written_)});
  const uint64_t start = written_;
  write([&](std::span<const uint8_t> piece) { put(piece); });
  if (status_.isOk() && written_ - start != bytes)
    status_ = internalError("a weight at blob offset " + std::to_string(offset) + " wrote " +
                            std::to_string(written_ - start) + " bytes of " + std::to_string(bytes));
  return offset;
}

Status WeightBlob::read(const Sink& sink) const {
  if (!status_.isOk()) return status_;
  std::vector<uint8_t> piece(static_cast<size_t>(std::min<uint64_t>(bytes_, 1 << 20)));
  for (uint64_t at = 0; at < bytes_;) {
    const auto want = static_cast<size_t>(std::min<uint64_t>(bytes_ - at, piece.size()));
    ssize_t n = ::pread(fd_, piece.data(), want, static_cast<off_t>(at));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      return ioError("cannot read the weights' temporary file back: " +
                     std::string(n == 0 ? "it is shorter than written" : std::strerror(errno)));
    sink({piece.data(), static_cast<size_t>(n)});
    at += static_cast<uint64_t>(n);
  }
  return Status::ok();
}

}  // namespace kiln::codegen::cpu
