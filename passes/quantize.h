// Post-training quantization of a float32 graph into QDQ form (the `quantize`
// step of the pipeline, run when `kiln compile --quantize` asks for it).
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"
#include "compiler/quant/calibration.h"

namespace kiln::passes {

struct QuantizeSpec {
  enum class Mode { kInt8, kDynamicInt8 };
  Mode mode = Mode::kInt8;
  // kInt8: each activation's calibrated range, by value name (names as they
  // are at the quantization point of the same pipeline). A value without a
  // range stays float, and so do the ops reading it.
  std::map<std::string, quant::Range> ranges;
  // kInt8: layers (by quantizableLayers' names) left in float32: the mixed
  // precision that --accuracy-budget chooses. They read their float inputs.
  std::set<std::string> keep_float;
};

// kInt8: the Conv, MatMul and Gemm nodes quantizeStatic would quantize, in
// graph order, by name (the node's name, else its output's).
std::vector<std::string> quantizableLayers(const ir::Graph& graph);

// kInt8: the float activations calibration must measure — the activation
// input of every quantizable Conv, MatMul and Gemm, and each Conv's result
// (after a Relu that is its only reader) unless that is a graph output — in
// graph order, without repeats.
std::vector<std::string> valuesToCalibrate(const ir::Graph& graph);

// A node already in quantized form (QuantizeLinear, QLinearConv...), for
// refusing to quantize twice; nullptr when there is none.
const ir::Node* firstQuantizedNode(const ir::Graph& graph);

// Static INT8: QuantizeLinear/DequantizeLinear (uint8, asymmetric, per
// tensor) on every calibrated activation above, and each such op's weight
// replaced by an int8 initializer (symmetric, per output channel; per tensor
// below opset 13, where DequantizeLinear has no axis) read through a
// DequantizeLinear. Layers named in `keep_float` stay float32. Returns
// whether anything changed.
Expected<bool> quantizeStatic(ir::Model& model, const std::map<std::string, quant::Range>& ranges,
                              const std::set<std::string>& keep_float = {});

// Dynamic INT8: every MatMul/Gemm with a constant float32 weight becomes
// DynamicQuantizeLinear(x) -> MatMulInteger(x_u8, W_s8, x_zero_point) ->
// Cast -> Mul(x_scale * w_scale[column]) [-> Add(bias)].
Expected<bool> quantizeDynamic(ir::Model& model);

Expected<bool> runQuantize(ir::Model& model, const QuantizeSpec& spec);

}  // namespace kiln::passes
