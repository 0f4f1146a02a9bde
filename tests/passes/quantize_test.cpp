// The quantize step (static QDQ insertion, dynamic int8) and fold-qdq: the
// graph they produce, and numbers against float32 / the unfolded QDQ graph
// with stated tolerances.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <sstream>

#include "compiler/ir/printer.h"
#include "compiler/kir/evaluator.h"
#include "passes/quantize.h"
#include "tests/passes/model_check.h"

namespace kiln::testing {
namespace {

// x[1,3,8,8] -> Conv(4, bias) -> Relu -> Conv(6) -> Relu -> GlobalAveragePool
// -> Flatten -> Gemm(transB, bias) -> y[1,5]
std::unique_ptr<ir::Model> smallCnn() {
  TestGraph g(17);
  ir::Value* x = g.input("x", {1, 3, 8, 8});
  ir::Node* c1 = g.node("Conv", {x, g.randomConstant("w1", {4, 3, 3, 3}), g.randomConstant("b1", {4})}, "c1");
  setInts(c1, "pads", {1, 1, 1, 1});
  ir::Value* r1 = g.op("Relu", {c1->outputs[0]}, "r1");
  ir::Value* c2 = g.op("Conv", {r1, g.randomConstant("w2", {6, 4, 3, 3})}, "c2");
  ir::Value* r2 = g.op("Relu", {c2}, "r2");
  ir::Value* gap = g.op("GlobalAveragePool", {r2}, "gap");
  ir::Value* flat = g.op("Flatten", {gap}, "flat");
  ir::Node* fc = g.node("Gemm", {flat, g.randomConstant("wfc", {5, 6}), g.randomConstant("bfc", {5})}, "y");
  setInt(fc, "transB", 1);
  g.output(fc->outputs[0]);
  return g.take();
}

// Ranges that cover what random inputs in [-1, 1) and weights in [-1, 1) give.
std::map<std::string, quant::Range> cnnRanges() {
  return {{"x", {-1, 1}}, {"r1", {0, 4}}, {"r2", {0, 12}}, {"flat", {0, 6}}};
}

driver::CompileOptions quantizedOptions(std::vector<std::string> passes, passes::QuantizeSpec spec) {
  driver::CompileOptions options;
  options.pipeline.passes = std::move(passes);
  options.pipeline.quantize = std::make_shared<passes::QuantizeSpec>(std::move(spec));
  return options;
}

std::vector<ir::Tensor> randomInputs(const lower::Program& program, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<ir::Tensor> inputs;
  for (int b : program.input_buffers) {
    const lower::ProgramBuffer& buffer = program.buffers[b];
    std::vector<float> values(static_cast<size_t>(buffer.elementCount()));
    for (float& v : values) v = std::uniform_real_distribution<float>(-1, 1)(rng);
    inputs.push_back(ir::Tensor::fromValues<float>(ir::DType::kFloat32, buffer.dims, values));
  }
  return inputs;
}

// The programs' first outputs on the same random inputs, as (reference, other).
std::pair<std::vector<float>, std::vector<float>> firstOutputs(const lower::Program& ref, const lower::Program& other,
                                                               unsigned seed) {
  std::vector<ir::Tensor> inputs = randomInputs(ref, seed);
  auto a = lower::evaluateProgram(ref, inputs);
  auto b = lower::evaluateProgram(other, inputs);
  EXPECT_TRUE(a.isOk() && b.isOk());
  if (!a.isOk() || !b.isOk()) return {};
  auto floats = [](const ir::Tensor& t) {
    std::vector<float> out(static_cast<size_t>(t.elementCount()));
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(t.floatAt(static_cast<int64_t>(i)));
    return out;
  };
  return {floats((*a)[0]), floats((*b)[0])};
}

TEST(QuantizeTest, CalibratesActivationsOfLinearOps) {
  auto model = runPasses(smallCnn, {});  // types inferred
  // The Conv results are read after their Relu; the Gemm's result is a graph output.
  EXPECT_EQ(passes::valuesToCalibrate(model->graph), (std::vector<std::string>{"x", "r1", "r2", "flat"}));
}

TEST(QuantizeTest, InsertsQdqAndInt8Weights) {
  auto model = runPasses(smallCnn, {});
  ASSERT_TRUE(passes::quantizeStatic(*model, cnnRanges()).isOk());
  const ir::Graph& g = model->graph;
  // x, r1, r2, flat: one Q/DQ pair each; w1, w2, wfc: one DQ each.
  EXPECT_EQ(countOps(g, "QuantizeLinear"), 4) << ir::printModel(*model);
  EXPECT_EQ(countOps(g, "DequantizeLinear"), 7);
  for (const auto& n : g.nodes()) {
    if (n->op_type != "Conv" && n->op_type != "Gemm") continue;
    const ir::Node* wdq = n->input(1)->producer;
    ASSERT_TRUE(wdq && wdq->op_type == "DequantizeLinear") << n->describe();
    EXPECT_EQ(wdq->input(0)->constant->dtype(), ir::DType::kInt8);
    // Per output channel: Conv weights along axis 0, the transB Gemm's [5, 6] along axis 0 too.
    EXPECT_EQ(wdq->input(1)->constant->elementCount(), wdq->input(0)->constant->dims()[0]);
    EXPECT_EQ(wdq->attribute("axis")->i, 0);
    const ir::Node* xdq = n->input(0)->producer;
    ASSERT_TRUE(xdq && xdq->op_type == "DequantizeLinear");
    EXPECT_EQ(xdq->input(0)->type.dtype, ir::DType::kUInt8);
  }
  // The zero point of r1 (range [0, 4]) is 0; x's ([-1, 1]) is in the middle.
  EXPECT_EQ(g.findValue("r1_zero_point")->constant->intAt(0), 0);
  EXPECT_NEAR(g.findValue("x_zero_point")->constant->intAt(0), 127.5, 0.5);
}

TEST(QuantizeTest, RefusesAnAlreadyQuantizedModel) {
  auto model = runPasses(smallCnn, {});
  ASSERT_TRUE(passes::quantizeStatic(*model, cnnRanges()).isOk());
  passes::QuantizeSpec spec;
  auto again = passes::runQuantize(*model, spec);
  ASSERT_FALSE(again.isOk());
  EXPECT_NE(again.status().message().find("already quantized"), std::string::npos) << again.status().message();
}

TEST(FoldQdqTest, FoldsIntoIntegerOpsAndKeepsOutputs) {
  passes::QuantizeSpec spec;
  spec.ranges = cnnRanges();
  auto qdq = compileProgram(smallCnn, quantizedOptions({"quantize"}, spec));
  ASSERT_TRUE(qdq.isOk()) << qdq.status().message();
  auto folded_model = smallCnn();
  std::ostringstream log;
  auto options = quantizedOptions({"quantize", "fold-qdq", "eliminate-dead-nodes"}, spec);
  auto folded = driver::buildProgram(*folded_model, options, log);
  ASSERT_TRUE(folded.isOk()) << folded.status().message();
  const ir::Graph& g = folded_model->graph;
  // Both Convs (followed by Relu -> Q with zero point 0) become QLinearConv; the
  // Gemm (a graph output, no Q after it) becomes MatMulInteger + scale.
  EXPECT_EQ(countOps(g, "QLinearConv"), 2) << ir::printModel(*folded_model);
  EXPECT_EQ(countOps(g, "MatMulInteger"), 1);
  EXPECT_EQ(countOps(g, "Relu"), 0);
  EXPECT_EQ(countOps(g, "Conv") + countOps(g, "Gemm"), 0);
  EXPECT_EQ(countOps(g, "DequantizeLinear"), 1) << "only r2's, read by the pooling";
  // The folded graph computes the same quantized values: the integer sums are
  // exact where the QDQ graph sums dequantized floats, so a value may land one
  // output level away. Tolerance: two levels of the last quantized
  // activation (flat: 6/255) times the largest |Gemm weight| row sum (≤ 6),
  // about 0.1, against outputs of magnitude ~1.
  for (unsigned seed = 1; seed <= 3; ++seed) {
    auto [want, got] = firstOutputs(*qdq, *folded, seed);
    ASSERT_EQ(want.size(), got.size());
    ASSERT_FALSE(want.empty());
    double max_diff = 0;
    for (size_t i = 0; i < want.size(); ++i) max_diff = std::max(max_diff, std::fabs(double(want[i]) - got[i]));
    EXPECT_LT(max_diff, 0.1) << "seed " << seed;
  }
}

TEST(FoldQdqTest, QuantizedModelTracksFloat) {
  passes::QuantizeSpec spec;
  spec.ranges = cnnRanges();
  driver::CompileOptions plain;
  plain.pipeline.passes = {};
  auto fp32 = compileProgram(smallCnn, plain);
  auto int8 = compileProgram(smallCnn, quantizedOptions({"quantize", "fold-qdq", "eliminate-dead-nodes"}, spec));
  ASSERT_TRUE(fp32.isOk() && int8.isOk());
  quant::OutputError error;
  for (unsigned seed = 1; seed <= 4; ++seed) {
    auto [want, got] = firstOutputs(*fp32, *int8, seed);
    error.add(want, got, {1, static_cast<int64_t>(want.size())});
  }
  // 8-bit activations and weights through two convolutions and a Gemm: at
  // least 25 dB (a relative RMS error under ~6%).
  EXPECT_GT(error.sqnrDb(), 25.0);
}

// x -> Q -> DQ -> MaxPool(3x3, stride 2, pad 1) -> Q(scale `q_scale`) -> DQ -> y,
// all uint8 with zero point 128.
std::unique_ptr<ir::Model> quantizedPool(int64_t opset, float q_scale) {
  TestGraph g(opset);
  auto zero_point = [&](const std::string& name) {
    ir::Value* v = g.model().graph.addValue(name);
    v->constant = ir::Tensor::fromBytes(ir::DType::kUInt8, {}, {std::byte{128}});
    v->type = v->constant->type();
    return v;
  };
  ir::Value* x = g.input("x", {1, 4, 9, 9});
  ir::Value* s = g.constant("s", {}, {0.01f});
  ir::Value* q = g.op("QuantizeLinear", {x, s, zero_point("z")}, "q");
  ir::Value* dq = g.op("DequantizeLinear", {q, s, zero_point("z_dq")}, "dq");
  ir::Node* pool = g.node("MaxPool", {dq}, "pool");
  setInts(pool, "kernel_shape", {3, 3});
  setInts(pool, "strides", {2, 2});
  setInts(pool, "pads", {1, 1, 1, 1});
  ir::Value* q_scale_value = g.constant("s_out", {}, {q_scale});
  ir::Value* requantized = g.op("QuantizeLinear", {pool->outputs[0], q_scale_value, zero_point("z_out")}, "pooled_q");
  g.output(g.op("DequantizeLinear", {requantized, q_scale_value, zero_point("z_y")}, "y"));
  return g.take();
}

// DQ -> MaxPool -> Q with the same scale and zero point runs the pool on the
// 8-bit values, with exactly the same outputs; a different scale on the Q
// side, or an opset before 12 (no 8-bit MaxPool), keeps the float pool.
TEST(FoldQdqTest, MaxPoolBetweenMatchingQdqRunsOnBytes) {
  auto make = [] { return quantizedPool(13, 0.01f); };
  auto folded = runPasses(make, {"fold-qdq", "eliminate-dead-nodes"});
  EXPECT_EQ(opSequence(folded->graph), "QuantizeLinear,MaxPool,DequantizeLinear") << ir::printModel(*folded);
  for (const auto& node : folded->graph.nodes())
    if (node->op_type == "MaxPool") EXPECT_EQ(node->input(0)->type.dtype, ir::DType::kUInt8);
  EXPECT_TRUE(passesKeepOutputs(make, {"fold-qdq", "eliminate-dead-nodes"}));

  const std::string unfolded = "QuantizeLinear,DequantizeLinear,MaxPool,QuantizeLinear,DequantizeLinear";
  auto rescaled = runPasses([] { return quantizedPool(13, 0.02f); }, {"fold-qdq", "eliminate-dead-nodes"});
  EXPECT_EQ(opSequence(rescaled->graph), unfolded);
  auto old_opset = runPasses([] { return quantizedPool(11, 0.01f); }, {"fold-qdq", "eliminate-dead-nodes"});
  EXPECT_EQ(opSequence(old_opset->graph), unfolded);
}

// x[4,16] -> MatMul(W[16,8]) -> Gemm(W2[8,3], C[3], alpha 0.5, beta 2) -> y
std::unique_ptr<ir::Model> mlp() {
  TestGraph g(17);
  ir::Value* x = g.input("x", {4, 16});
  ir::Value* h = g.op("MatMul", {x, g.randomConstant("w1", {16, 8})}, "h");
  ir::Node* y = g.node("Gemm", {h, g.randomConstant("w2", {8, 3}), g.randomConstant("c", {3})}, "y");
  setFloat(y, "alpha", 0.5f);
  setFloat(y, "beta", 2.0f);
  g.output(y->outputs[0]);
  return g.take();
}

TEST(QuantizeDynamicTest, MatMulAndGemmBecomeMatMulInteger) {
  passes::QuantizeSpec spec;
  spec.mode = passes::QuantizeSpec::Mode::kDynamicInt8;
  auto model = mlp();
  std::ostringstream log;
  auto program = driver::buildProgram(*model, quantizedOptions({"quantize"}, spec), log);
  ASSERT_TRUE(program.isOk()) << program.status().message();
  EXPECT_EQ(opSequence(model->graph),
            "DynamicQuantizeLinear,Mul,MatMulInteger,Cast,Mul,DynamicQuantizeLinear,Mul,MatMulInteger,Cast,Mul,Add")
      << ir::printModel(*model);
  EXPECT_EQ(model->graph.outputs[0]->name, "y") << "the output keeps its name";

  driver::CompileOptions plain;
  plain.pipeline.passes = {};
  auto fp32 = compileProgram(mlp, plain);
  ASSERT_TRUE(fp32.isOk());
  // Tolerance: activations quantized to 1/255 of their range and weights to
  // 1/254 of each column's: the error stays under 5% of the largest |y|.
  for (unsigned seed = 1; seed <= 3; ++seed) {
    auto [want, got] = firstOutputs(*fp32, *program, seed);
    ASSERT_EQ(want.size(), 12u);
    double max_ref = 0, max_diff = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      max_ref = std::max(max_ref, std::fabs(double(want[i])));
      max_diff = std::max(max_diff, std::fabs(double(want[i]) - got[i]));
    }
    EXPECT_LT(max_diff, 0.05 * max_ref) << "seed " << seed;
    EXPECT_GT(max_diff, 0.0) << "quantization changes something";
  }
}

}  // namespace
}  // namespace kiln::testing
