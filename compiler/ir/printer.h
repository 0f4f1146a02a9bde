// Text and Graphviz views of the Graph IR, for --print-after, `kiln inspect`
// and tests (a printed graph is the clearest expected output of a pass).
#pragma once

#include <string>

#include "compiler/ir/graph.h"

namespace kiln::ir {

// model (ir 8, opset ai.onnx 13, producer 'pytorch 1.13')
// graph main(%x: float32[1x3x224x224]) -> (%y: float32[1x1000]) {
//   %w = const float32[64x3x7x7]
//   %y = Conv 'conv1' (%x, %w) {kernel_shape=[7,7]} : float32[1x64x112x112]
// }
// Constants show dtype and shape, and their values when they have at most 8
// elements. Subgraphs are printed nested under the node that owns them.
std::string printModel(const Model& model);
std::string printGraph(const Graph& graph);

// Graphviz: graph inputs/outputs as ellipses, nodes as boxes labelled with op
// and name, edges labelled with the tensor type.
std::string printDot(const Graph& graph);

}  // namespace kiln::ir
