// Graph IR -> Program: every node becomes kernels through its op's lowering,
// every value a program buffer (input, output, constant or arena slot).
#pragma once

#include "compiler/ir/graph.h"
#include <optional>
#include <vector>

#include "compiler/lower/program.h"

namespace kiln::lower {

// Requires: shapes inferred and static (every value's shape known).
Expected<Program> lowerGraph(const ir::Model& model);

// Places every intermediate buffer in one arena from the buffers' lifetimes
// (first use to last use in call order), reusing space whose tensor is dead.
// Offsets are 64-byte aligned. With `in_place` (the plan-in-place pass, -O1
// and above), an elementwise kernel's output takes the slot of an input that
// dies in that kernel when each element is read at the position it is written
// to.
void planArena(Program& program, bool in_place = false);

}  // namespace kiln::lower

namespace kiln::lower {

// Limits on what compile-time evaluation materializes: folding never creates
// a tensor larger than this, nor runs more work than this.
struct FoldLimits {
  int64_t max_output_bytes = 4 << 20;
  int64_t max_flops = int64_t{1} << 28;
};

// Evaluates `node` on its constant inputs with the reference evaluator (the
// same op definitions the backends compile). Requires: every present input is
// constant and output types are inferred and static. nullopt when the node
// cannot or should not be folded (limits, unsupported lowering).
std::optional<std::vector<ir::Tensor>> evaluateNode(const ir::Node& node, int64_t opset, const FoldLimits& limits);

}  // namespace kiln::lower
