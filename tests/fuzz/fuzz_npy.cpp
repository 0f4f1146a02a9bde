// libFuzzer target: bytes -> the .npy reader (tools::parseNpyBytes), as
// `kiln run` / `kiln check` read inputs and expected outputs.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "tools/common/tensor_files.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto tensor = kiln::tools::parseNpyBytes(std::as_bytes(std::span(data, size)));
  if (!tensor) {
    if (tensor.status().message().empty()) std::abort();
    return 0;
  }
  // The tensor must hold exactly what its type says: one string per element,
  // or each element's bytes.
  const bool exact = tensor->dtype() == kiln::ir::DType::kString
                         ? static_cast<int64_t>(tensor->strings().size()) == tensor->elementCount()
                         : static_cast<int64_t>(tensor->bytes().size()) ==
                               tensor->elementCount() * kiln::ir::byteSize(tensor->dtype());
  if (!exact) std::abort();
  return 0;
}
