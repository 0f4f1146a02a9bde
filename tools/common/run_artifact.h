// Running an artifact on ir::Tensors through the runtime's C++ API, and
// comparing results — shared by `kiln run/check` and the conformance runner.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "compiler/ir/tensor.h"
#include "kiln_runtime.hpp"

namespace kiln::tools {

// A runtime error as a Status, whose kind gives the CLI's exit code: a file
// that cannot be read is I/O, an artifact this host cannot run unsupported;
// a damaged artifact, a refused argument and a run stopped by a run-time
// check on the inputs' values (KILN_ERROR_RUNTIME) are invalid input.
Status runtimeStatus(const kiln::Error& e);

// Runs `session` on `inputs` (in the model's input order); outputs come back
// as owned tensors in the model's output order. Errors name the input at fault.
Expected<std::vector<ir::Tensor>> runArtifact(const kiln::Model& model, kiln::Session& session,
                                              const std::vector<ir::Tensor>& inputs);

struct Tolerance {
  double rtol = 1e-3;
  double atol = 1e-7;
};

// nullopt when `got` matches `want` (same dtype and shape, every element
// within atol + rtol * |want|, NaN matching NaN); otherwise the first
// mismatch, described for a person.
std::optional<std::string> compareTensors(const ir::Tensor& got, const ir::Tensor& want, Tolerance tolerance);

}  // namespace kiln::tools
