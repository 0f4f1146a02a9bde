// `--input` arguments of the CLI's run, check, bench and profile commands:
// FILE (taken in the model's input order) or NAME=FILE, read into one slot
// per model input.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "compiler/ir/tensor.h"
#include "compiler/support/status.h"
#include "kiln_runtime.hpp"
#include "tools/common/values.h"

namespace kiln::tools {

// The index of the input called `name`; the error starts with `option` and
// lists the model's inputs.
Expected<size_t> inputIndex(const kiln::Model& model, const std::string& name, const std::string& option);

// One slot per model input, filled where a spec names a file for it. A spec
// containing '=' is NAME=FILE unless a file of that exact name exists.
Expected<std::vector<std::optional<ir::Tensor>>> readInputFiles(const kiln::Model& model,
                                                                const std::vector<std::string>& specs);

// The same for inputs of any kind (tools/common/values.h): a sequence from
// a SequenceProto .pb file, an optional from an OptionalProto one.
Expected<std::vector<std::optional<Value>>> readInputValueFiles(const kiln::Model& model,
                                                                       const std::vector<std::string>& specs);

}  // namespace kiln::tools
