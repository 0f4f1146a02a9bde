// Model inputs and outputs of every kind — tensors, sequences of tensors and
// optionals — in files (ONNX TensorProto, SequenceProto and OptionalProto
// .pb files; .npy for tensors), in runs (kiln_session_run_values) and in
// comparisons. The ONNX backend test data stores a sequence input as a
// SequenceProto file; which message a .pb file holds follows from the kind
// of the model's input or output it is for.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "compiler/ir/tensor.h"
#include "compiler/support/status.h"
#include "kiln_runtime.hpp"
#include "tools/common/run_artifact.h"

namespace kiln::tools {

struct Value {
  kiln_value_kind kind = KILN_KIND_TENSOR;
  bool present = true;              // an optional: false when it holds nothing
  std::vector<ir::Tensor> tensors;  // a tensor: one; a sequence: its elements; empty when absent

  static Value tensor(ir::Tensor t) { return Value{KILN_KIND_TENSOR, true, {std::move(t)}}; }
  // "tensor", "sequence", "optional tensor", "optional sequence"
  static const char* kindName(kiln_value_kind kind);
};

// Reads `path` as a value of `kind`: a .npy or TensorProto .pb for a tensor,
// a SequenceProto .pb of tensors for a sequence, an OptionalProto .pb for an
// optional (an optional tensor also from a plain tensor file).
Expected<Value> readValueFile(const std::string& path, kiln_value_kind kind);

// Runs `session` on `inputs` (in the model's input order), each of the
// model's kind for it. Errors name the input at fault.
Expected<std::vector<Value>> runArtifactValues(const kiln::Model& model, kiln::Session& session,
                                               const std::vector<Value>& inputs);

// nullopt when `got` matches `want` (kind, presence, element count, and
// each tensor as compareTensors); otherwise the first difference.
std::optional<std::string> compareValues(const Value& got, const Value& want, Tolerance tolerance);

}  // namespace kiln::tools
