// What the prune steps share: which nodes are prunable layers, their weights
// as [outputs x inner] views, and their size and cost for the report.
#pragma once

#include <optional>
#include <vector>

#include "compiler/ir/graph.h"
#include "compiler/prune/weight_masks.h"
#include "passes/prune.h"

namespace kiln::passes {

// A Conv, Gemm or MatMul whose weight is a float32 constant: Conv W (input
// 1, any group), Gemm B (input 1, either transB), MatMul B (input 1, rank 2).
struct PrunableLayer {
  ir::Node* node = nullptr;
  size_t weight_input = 1;
  prune::WeightView view;
  int64_t out_dim = 0;    // the weight's dim holding the outputs
  int64_t inner_dim = 0;  // Gemm/MatMul: the dim of K (Conv: 1, input channels)
  // Multiply-adds per weight element (Conv: N x output pixels; Gemm/MatMul:
  // rows of A), 0 when the shapes are not known.
  int64_t macs_per_weight = 0;
};

std::optional<PrunableLayer> prunableLayer(ir::Node& node);
std::vector<PrunableLayer> prunableLayers(ir::Graph& graph);

// The view of a weight with `dims` as `layer`'s op stores it.
prune::WeightView weightView(const PrunableLayer& layer, const std::vector<int64_t>& dims);

// Fills the "before" (or, when `after`, the "after") columns of `record`
// from the layer's current weight.
void measureLayer(const PrunableLayer& layer, PruneLayerRecord& record, bool after);

std::vector<float> floatData(const ir::Tensor& t);
ir::Tensor floatTensor(std::vector<int64_t> dims, const std::vector<float>& values);

// Gives input `input` of `node` the constant `value`: in place when the node
// is the constant's only reader, else as a new constant named after it.
void setConstantInput(ir::Graph& graph, ir::Node& node, size_t input, ir::Tensor value);

}  // namespace kiln::passes
