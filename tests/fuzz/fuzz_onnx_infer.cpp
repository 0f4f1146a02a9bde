// libFuzzer target: bytes -> ONNX import -> shape and type inference
// (passes::inferShapes, which also folds small all-constant nodes with the
// reference evaluator, within lower::FoldLimits). Most inputs stop in the
// importer; the seeds (whole ONNX test models) get the mutations into
// attributes, shapes and constants that inference reads.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "compiler/ir/graph.h"
#include "compiler/onnx/importer.h"
#include "passes/infer_shapes.h"
#include "tests/fuzz/fuzz_external_dir.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto bytes = std::as_bytes(std::span(data, size));
  auto model = kiln::frontend::importOnnxBytes(bytes, kiln::fuzz::externalDataDir(), "fuzz.onnx");
  if (!model) return 0;
  kiln::Status status = kiln::passes::inferShapes(**model);
  if (!status.isOk() && status.message().empty()) std::abort();
  if (status.isOk()) {
    kiln::Status verified = (*model)->graph.verify();
    (void)verified;
  }
  return 0;
}
