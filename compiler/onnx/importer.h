// ONNX -> Graph IR. Reads everything of an ONNX model that matters for
// inference: opsets, metadata, graph inputs/outputs/value_info with symbolic
// shapes, initializers in every encoding (raw, typed fields, external data,
// sparse), node attributes of every kind and If/Loop/Scan bodies as nested
// graphs. Malformed models give an error naming the file and the node, tensor
// or input at fault; they never crash the importer.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>

#include "compiler/ir/graph.h"
#include "compiler/support/status.h"

namespace onnx {
class TensorProto;
}

namespace kiln::frontend {

// Maps the file; initializer weights stored as raw_data are borrowed from the
// mapping (kept alive by the tensors) instead of copied where alignment allows.
Expected<std::unique_ptr<ir::Model>> importOnnxFile(const std::string& path);

// `base_dir` is the folder external data paths are relative to ("" refuses
// external data); `display_name` names the model in error messages. Weights
// are copied, since `bytes` may not outlive the call.
Expected<std::unique_ptr<ir::Model>> importOnnxBytes(std::span<const std::byte> bytes, const std::string& base_dir,
                                                     const std::string& display_name);

// One TensorProto (an initializer, or a test input/output .pb file). External
// data is resolved relative to `base_dir` and mapped, not copied.
Expected<ir::Tensor> tensorFromProto(const onnx::TensorProto& proto, const std::string& base_dir);

}  // namespace kiln::frontend
