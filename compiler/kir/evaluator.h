// The reference evaluator: interprets kernel IR directly, with no schedule.
// It defines what the generated code must compute; tests compare every backend
// against it, and constant folding runs through it.
#pragma once

#include <span>
#include <vector>

#include "compiler/kir/kir.h"
#include "compiler/lower/program.h"
#include "string_fns.h"

namespace kiln::kir {

// Strings the evaluator makes (kString values are pointers) live in the
// pool of the innermost StringPoolScope on this thread; without one, in a
// pool that lives as long as the process. evaluateProgram opens a scope
// for inputs and intermediates and copies string outputs out of it.
strings::StringPool& stringPool();
class StringPoolScope {
 public:
  StringPoolScope();
  ~StringPoolScope();
  StringPoolScope(const StringPoolScope&) = delete;
  StringPoolScope& operator=(const StringPoolScope&) = delete;

 private:
  strings::StringPool pool_;
  strings::StringPool* previous_;
};
// The pointer array a kernel buffer holds for a string tensor; valid while `t` lives.
std::vector<const char*> stringPointers(const ir::Tensor& t);

// Runs `kernel` over `buffers` (one pointer per param, dense row-major data of
// the param's dtype and shape), with `slots` the run's dim slot table (empty
// for a static kernel).
void evaluate(const Kernel& kernel, std::span<void* const> buffers, std::span<int64_t> slots = {});

}  // namespace kiln::kir

namespace kiln::lower {

// Runs a whole static program on the host: inputs and outputs in signature
// order, caller-allocated, dense. Allocates the arena itself.
Status evaluateProgram(const Program& program, std::span<const void* const> inputs, std::span<void* const> outputs);

// Runs any program, static or dynamic, on `inputs` (signature order, their
// own shapes) and returns the outputs with the shapes this run gave them. A
// failed run-time check is an invalid-input error with the check's message.
Expected<std::vector<ir::Tensor>> evaluateProgram(const Program& program, const std::vector<ir::Tensor>& inputs);

// Fills the input dim slots of a dynamic program from the shapes of its
// inputs (a symbol used twice must agree) after checking the static dims.
Status bindInputDims(const Program& program, const std::vector<std::vector<int64_t>>& input_dims,
                     std::vector<int64_t>& slots);

// A check message with each "{$k}" replaced by slot k's value.
std::string formatCheck(const std::string& message, std::span<const int64_t> slots);

}  // namespace kiln::lower
