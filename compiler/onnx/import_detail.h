// Pieces of the ONNX importer shared between its files; not a public API.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstddef>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>

#include "compiler/ir/tensor.h"
#include "compiler/onnx/mapped_file.h"
#include "compiler/support/status.h"

namespace kiln::frontend::detail {

// Where the raw_data of initializers sits in the model file, found by
// parseModel so that it can be borrowed instead of copied into the message.
using RawDataSpans = std::unordered_map<const onnx::TensorProto*, std::span<const std::byte>>;

struct ParsedModel {
  onnx::ModelProto proto;
  RawDataSpans raw_data;
};

// Parses an ONNX model. Initializers of the main graph are parsed by hand so
// that their raw_data stays in `bytes` (recorded in raw_data) rather than being
// copied; everything else goes through the protobuf classes.
Expected<std::unique_ptr<ParsedModel>> parseModel(std::span<const std::byte> bytes);

// What converting a TensorProto needs besides the message itself.
struct TensorSource {
  std::string base_dir;                     // folder of the model ("" forbids external data)
  std::shared_ptr<const MappedFile> model_owner;  // keeps the bytes behind raw_spans alive; null: copy
  const RawDataSpans* raw_spans = nullptr;
  std::map<std::string, std::shared_ptr<const MappedFile>> external_files;  // by canonical path
};

// `what` names the tensor in errors: "initializer 'w'", "attribute 'value' of node ...".
Expected<ir::Tensor> convertTensor(const onnx::TensorProto& proto, TensorSource& source, const std::string& what);
Expected<ir::Tensor> convertSparseTensor(const onnx::SparseTensorProto& proto, TensorSource& source,
                                         const std::string& what);

// A TypeProto of a tensor, a sequence of tensors or an optional of either
// (TensorType::kind). Other kinds (maps, sparse tensors, nested sequences)
// are kUnsupported errors.
Expected<ir::TensorType> convertType(const onnx::TypeProto& proto, const std::string& what);

}  // namespace kiln::frontend::detail
