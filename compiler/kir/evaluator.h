// The reference evaluator: interprets kernel IR directly, with no schedule.
// It defines what the generated code must compute; tests compare every backend
// against it, and constant folding runs through it.
#pragma once

#include <span>

#include "compiler/kir/kir.h"
#include "compiler/lower/program.h"

namespace kiln::kir {

// Runs `kernel` over `buffers` (one pointer per param, dense row-major data of
// the param's dtype and shape).
void evaluate(const Kernel& kernel, std::span<void* const> buffers);

}  // namespace kiln::kir

namespace kiln::lower {

// Runs a whole program on the host: inputs and outputs in signature order,
// caller-allocated, dense. Allocates the arena itself.
Status evaluateProgram(const Program& program, std::span<const void* const> inputs, std::span<void* const> outputs);

}  // namespace kiln::lower
