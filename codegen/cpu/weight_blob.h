// The weights a CPU artifact keeps after its ELF image (artifact format 7).
//
// Large weights never enter the LLVM module. emitModule plans every weight's
// place first and writes it here at once, in kernel layout (packing panels
// on the way), then lets the program's copy go; sealArtifact later copies
// the blob behind the linked image, hashing it as it goes. The blob waits in
// an unnamed temporary file in the output's folder, so a compile never holds
// the weights and LLVM's code generation in memory at the same time: its
// peak is the larger of the two rather than their sum (ResNet-50: 232 MB
// before, when the blob was written after linking).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "compiler/support/status.h"

namespace kiln::codegen::cpu {

// Weights of at least this many bytes go to the blob; smaller ones stay
// LLVM constants, which LLVM may fold into the code that reads them.
inline constexpr uint64_t kBlobMinBytes = 64 * 1024;

class WeightBlob {
 public:
  // Receives a weight's bytes in order, in one piece or several.
  using Sink = std::function<void(std::span<const uint8_t>)>;
  // Produces exactly the bytes of one weight.
  using Writer = std::function<void(const Sink&)>;

  // A blob whose file is created in `folder` when the first weight comes.
  explicit WeightBlob(std::string folder = ".");
  WeightBlob(WeightBlob&& other) noexcept;
  WeightBlob& operator=(WeightBlob&& other) noexcept;
  WeightBlob(const WeightBlob&) = delete;
  WeightBlob& operator=(const WeightBlob&) = delete;
  ~WeightBlob();

  // Writes a weight of `bytes` bytes, produced by `write` now, at the next
  // multiple of 64 bytes and returns its offset. A failure (the folder not
  // writable, the disk full, a writer that wrote another number of bytes)
  // is kept for status(); later weights are then only counted.
  uint64_t add(uint64_t bytes, const Writer& write);

  uint64_t bytes() const { return bytes_; }
  // The first failure of add(), or ok.
  const Status& status() const { return status_; }

  // Passes every byte of the blob to `sink` in order (padding between
  // weights as zeros), in pieces of at most 1 MiB.
  Status read(const Sink& sink) const;

 private:
  void put(std::span<const uint8_t> bytes);

  std::string folder_;
  int fd_ = -1;
  uint64_t bytes_ = 0;    // the blob's size: the last weight's end
  uint64_t written_ = 0;  // bytes in the file so far
  Status status_ = Status::ok();
};

}  // namespace kiln::codegen::cpu
