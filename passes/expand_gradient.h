// The expand-gradient pass (expand_gradient.cpp): a Gradient node of the
// ai.onnx.preview.training domain becomes the backward nodes that compute
// its outputs. It is part of every pipeline (Gradient has no lowering) and
// runs after infer-shapes whenever the model has a Gradient.
#pragma once

#include "compiler/ir/graph.h"

namespace kiln::passes {

// Whether the main graph has a Gradient node.
bool hasGradient(const ir::Graph& graph);

// Replaces every Gradient node of the main graph by reverse-mode
// differentiation of the nodes between its xs and y. An op without a
// derivative rule on that path is an error naming the op and the node.
// Requires: shapes inferred (static on the differentiated path).
Status expandGradients(ir::Model& model);

}  // namespace kiln::passes
