// Programs with a sequence or optional at the graph boundary: the reference
// evaluator refuses them, so the sweeps that compare against it skip them and
// the conformance run checks those cases on generated code.
#pragma once

#include <algorithm>

#include "compiler/lower/program.h"

namespace kiln::testing {

inline constexpr const char* kContainerBoundarySkip =
    "a sequence or optional at the graph boundary: the reference evaluator does not run it "
    "(kiln-conformance checks the case on generated code)";

inline bool hasContainerBoundary(const lower::Program& program) {
  auto container = [](const lower::TensorSignature& sig) { return sig.kind != ir::ValueKind::kTensor; };
  return std::any_of(program.inputs.begin(), program.inputs.end(), container) ||
         std::any_of(program.outputs.begin(), program.outputs.end(), container);
}

}  // namespace kiln::testing
