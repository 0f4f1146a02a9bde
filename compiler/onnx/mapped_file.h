// A read-only memory mapping of a whole file. Tensors borrow their bytes from
// it (ir::Tensor::borrow) and keep it alive through a shared_ptr, so weights
// in model and external-data files are never copied.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>

#include "compiler/support/status.h"

namespace kiln::frontend {

class MappedFile {
 public:
  static Expected<std::shared_ptr<const MappedFile>> open(const std::string& path);

  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

  // Gives the whole pages inside `range` (part of bytes()) back to the
  // kernel once their bytes were copied elsewhere: they leave the process's
  // memory and are read from the file again if touched. Without this a
  // weight copied at import (raw data not aligned for its type) would count
  // twice towards the compile's peak memory.
  void release(std::span<const std::byte> range) const;

 private:
  MappedFile() = default;

  std::string path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace kiln::frontend
