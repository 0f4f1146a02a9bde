// libFuzzer target: bytes -> the ONNX importer (frontend::importOnnxBytes),
// then what every tool does next with an imported model: print it and write
// it back as ONNX. Invariant: an error is a non-empty message, never a crash,
// a hang or a read outside the input and the external data folder.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "compiler/ir/printer.h"
#include "compiler/onnx/importer.h"
#include "compiler/onnx/writer.h"
#include "tests/fuzz/fuzz_external_dir.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto bytes = std::as_bytes(std::span(data, size));
  auto model = kiln::frontend::importOnnxBytes(bytes, kiln::fuzz::externalDataDir(), "fuzz.onnx");
  if (!model) {
    if (model.status().message().empty()) std::abort();
    return 0;
  }
  (void)kiln::ir::printModel(**model);
  (void)kiln::frontend::serializeOnnx(**model);
  return 0;
}
