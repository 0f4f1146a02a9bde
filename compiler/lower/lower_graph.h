// Graph IR -> Program: every node becomes kernels through its op's lowering,
// every value a program buffer (input, output, constant or arena slot).
#pragma once

#include "compiler/ir/graph.h"
#include "compiler/lower/program.h"

namespace kiln::lower {

// Requires: shapes inferred and static (every value's shape known).
Expected<Program> lowerGraph(const ir::Model& model);

// Places every intermediate buffer in one arena from the buffers' lifetimes
// (first use to last use in call order), reusing space whose tensor is dead.
// Offsets are 64-byte aligned.
void planArena(Program& program);

}  // namespace kiln::lower
