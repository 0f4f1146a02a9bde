// The expand-containers pass (expand_containers.cpp): sequences and optionals
// known at compile time become the tensor values they hold. It is part of
// every pipeline (lowering takes tensors only) and runs after infer-shapes
// whenever the model has a container.
#pragma once

#include "compiler/ir/graph.h"

namespace kiln::passes {

// Whether the graph has a sequence or optional value or a container op.
bool hasContainers(const ir::Graph& graph);

// One round of rewrites and dead-container removal; whether it changed anything.
Expected<bool> expandContainersOnce(ir::Model& model);

// Rounds of expandContainersOnce and shape inference until nothing changes.
// What is left is compiled over run-time values (ops/run_time_containers.cpp).
Status expandContainers(ir::Model& model);

}  // namespace kiln::passes
