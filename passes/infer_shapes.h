// Type and shape inference over the whole graph, through each op's infer
// function in the op table.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"

namespace kiln::passes {

// Requires: node order topological. Sets every node output's TensorType, and
// its value when all of the node's inputs are constant and the result is
// small (lower::FoldLimits): shape arithmetic becomes constants here, so ops
// that need a constant shape or axes input can read it. Unknown ops fail
// here, naming the node.
Status inferShapes(ir::Model& model);

// Pins graph input dimensions (`--shape x=1x3x224x224`); fails naming an
// unknown input, a rank mismatch, or a conflict with a known dimension.
Status pinInputShapes(ir::Model& model, const std::map<std::string, std::vector<int64_t>>& shapes);

}  // namespace kiln::passes
