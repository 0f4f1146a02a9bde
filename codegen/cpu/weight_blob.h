// The weights a CPU artifact keeps after its ELF image (artifact format 7).
//
// Large weights never enter the LLVM module: emitModule gives each its offset
// in the blob and a writer that produces its bytes (packing panels on the
// way), and sealArtifact runs the writers one at a time after linking,
// hashing and writing each piece as it comes. So a weight is held at most
// once more than the model's own tensors, and only while it is written,
// where an LLVM constant was copied by the module, the object file, the
// linker's input and output and the sealing pass.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

namespace kiln::codegen::cpu {

// Weights of at least this many bytes go to the blob; smaller ones stay
// LLVM constants, which LLVM may fold into the code that reads them.
inline constexpr uint64_t kBlobMinBytes = 64 * 1024;

class WeightBlob {
 public:
  // Receives a weight's bytes in order, in one piece or several.
  using Sink = std::function<void(std::span<const uint8_t>)>;
  // Produces exactly the bytes reserved for one weight.
  using Writer = std::function<void(const Sink&)>;

  struct Entry {
    uint64_t offset = 0;  // from the blob's start, a multiple of 64
    uint64_t bytes = 0;
    Writer write;
  };

  // Reserves `bytes` at the next multiple of 64 bytes and returns the offset.
  uint64_t add(uint64_t bytes, Writer write) {
    uint64_t offset = (bytes_ + 63) / 64 * 64;
    entries_.push_back({offset, bytes, std::move(write)});
    bytes_ = offset + bytes;
    return offset;
  }

  uint64_t bytes() const { return bytes_; }
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  std::vector<Entry> entries_;
  uint64_t bytes_ = 0;
};

}  // namespace kiln::codegen::cpu
