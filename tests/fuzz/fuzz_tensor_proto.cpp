// libFuzzer target: bytes -> the ONNX TensorProto (.pb) reader
// (tools::parseTensorProtoBytes), with external data resolved against a
// folder holding one real file.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "tests/fuzz/fuzz_external_dir.h"
#include "tools/common/tensor_files.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto tensor =
      kiln::tools::parseTensorProtoBytes(std::as_bytes(std::span(data, size)), kiln::fuzz::externalDataDir());
  if (!tensor) {
    if (tensor.status().message().empty()) std::abort();
    return 0;
  }
  if (tensor->dtype() != kiln::ir::DType::kString &&
      static_cast<int64_t>(tensor->bytes().size()) != tensor->elementCount() * kiln::ir::byteSize(tensor->dtype()))
    std::abort();
  return 0;
}
