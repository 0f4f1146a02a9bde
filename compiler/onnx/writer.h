// Graph IR -> ONNX, so that the output of every pass can be checked and viewed
// with any ONNX tool. Constants are written as initializers with raw_data;
// types (with symbolic dims) as graph inputs/outputs and value_info.
#pragma once

#include <string>

#include "compiler/ir/graph.h"
#include "compiler/support/status.h"

namespace kiln::frontend {

Expected<std::string> serializeOnnx(const ir::Model& model);
Status writeOnnxFile(const ir::Model& model, const std::string& path);

}  // namespace kiln::frontend
