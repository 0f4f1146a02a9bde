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

 private:
  MappedFile() = default;

  std::string path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace kiln::frontend
