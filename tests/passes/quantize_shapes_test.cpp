// Static INT8 on the graph shapes that real models have (bench/quant's
// digits models, ResNet-50, BERT): a Gemm chain with ReLU, conv-BN-ReLU
// blocks with a residual Add, a transformer block (MatMul + Add, attention,
// LayerNorm, GELU), a weight read by two nodes, and a Constant node feeding a
// Conv. For each, calibrated on the reference evaluator the way
// `kiln compile --quantize int8` calibrates:
//   - the -O2 pipeline with the quantize step compiles (ordered graph, every
//     value produced before it is read) and really quantizes;
//   - the QDQ graph as --emit onnx -O0 writes it defines every name once,
//     before its readers, carries no float weight that nothing reads, and
//     imports again;
//   - the int8 program tracks float32 within a stated SQNR.
#include <gtest/gtest.h>

#include <onnx/onnx_pb.h>

#include <cstddef>
#include <random>
#include <set>
#include <sstream>

#include "compiler/ir/printer.h"
#include "compiler/kir/evaluator.h"
#include "compiler/onnx/importer.h"
#include "compiler/onnx/writer.h"
#include "passes/quantize.h"
#include "tests/passes/model_check.h"

namespace kiln::testing {
namespace {

ir::Value* gemm(TestGraph& g, ir::Value* x, int64_t in, int64_t out, const std::string& name) {
  ir::Node* n =
      g.node("Gemm", {x, g.randomConstant(name + "_w", {out, in}), g.randomConstant(name + "_b", {out})}, name);
  setInt(n, "transB", 1);
  return n->outputs[0];
}

// x[1,16] -> Gemm -> Relu -> Gemm -> Relu -> Gemm -> y[1,10] (digits_mlp).
std::unique_ptr<ir::Model> gemmChain() {
  TestGraph g(17);
  ir::Value* r1 = g.op("Relu", {gemm(g, g.input("x", {1, 16}), 16, 32, "g1")}, "r1");
  ir::Value* r2 = g.op("Relu", {gemm(g, r1, 32, 24, "g2")}, "r2");
  g.output(gemm(g, r2, 24, 10, "y"));
  return g.take();
}

// Conv(3x3, pad 1) -> BatchNormalization, named `out`.
ir::Value* convBn(TestGraph& g, ir::Value* x, int64_t in, int64_t out, const std::string& name) {
  ir::Node* c = g.node("Conv", {x, g.randomConstant(name + "_w", {out, in, 3, 3}, -0.3f, 0.3f)}, name + "_conv");
  setInts(c, "pads", {1, 1, 1, 1});
  return g.op("BatchNormalization",
              {c->outputs[0], g.randomConstant(name + "_scale", {out}, 0.8f, 1.2f),
               g.randomConstant(name + "_shift", {out}, -0.1f, 0.1f),
               g.randomConstant(name + "_mean", {out}, -0.1f, 0.1f),
               g.randomConstant(name + "_var", {out}, 0.9f, 1.1f)},
              name);
}

// conv-BN-ReLU, then a residual block (conv-BN-ReLU, conv-BN, Add the block's
// input, ReLU), global pool, Gemm (digits_cnn, a ResNet basic block).
std::unique_ptr<ir::Model> convBnResidual() {
  TestGraph g(17);
  ir::Value* r1 = g.op("Relu", {convBn(g, g.input("x", {1, 3, 8, 8}), 3, 8, "b1")}, "r1");
  ir::Value* r2 = g.op("Relu", {convBn(g, r1, 8, 8, "b2")}, "r2");
  ir::Value* sum = g.op("Add", {convBn(g, r2, 8, 8, "b3"), r1}, "sum");
  ir::Value* r3 = g.op("Relu", {sum}, "r3");
  ir::Value* flat = g.op("Flatten", {g.op("GlobalAveragePool", {r3}, "gap")}, "flat");
  g.output(gemm(g, flat, 8, 10, "y"));
  return g.take();
}

ir::Value* linear(TestGraph& g, ir::Value* x, int64_t in, int64_t out, const std::string& name) {
  float bound = 1.0f / static_cast<float>(in);  // keeps activations O(1) through the block
  ir::Value* m = g.op("MatMul", {x, g.randomConstant(name + "_w", {in, out}, -3 * bound, 3 * bound)}, name + "_mm");
  return g.op("Add", {m, g.randomConstant(name + "_b", {out}, -0.1f, 0.1f)}, name);
}

ir::Value* layerNorm(TestGraph& g, ir::Value* x, const std::string& name) {
  ir::Node* n = g.node("LayerNormalization",
                       {x, g.constant(name + "_g", {16}, std::vector<float>(16, 1.0f)),
                        g.constant(name + "_b", {16}, std::vector<float>(16, 0.0f))},
                       name);
  setInt(n, "axis", -1);
  return n->outputs[0];
}

// One post-norm encoder layer on x[1,6,16] (digits_transformer, BERT):
// attention (q·kᵀ and p·v read two activations: not quantized), output
// projection + residual + LayerNorm, MatMul + Add -> exact GELU (erf form, as
// PyTorch exports it) -> MatMul + Add + residual + LayerNorm.
std::unique_ptr<ir::Model> transformerBlock() {
  TestGraph g(17);
  ir::Value* x = g.input("x", {1, 6, 16});
  ir::Value* q = linear(g, x, 16, 16, "q");
  ir::Node* kt = g.node("Transpose", {linear(g, x, 16, 16, "k")}, "kt");
  setInts(kt, "perm", {0, 2, 1});
  ir::Value* qk = g.op("MatMul", {q, kt->outputs[0]}, "qk");
  ir::Value* scores = g.op("Mul", {qk, g.constant("scale", {}, {0.25f})}, "scores");
  ir::Node* p = g.node("Softmax", {scores}, "p");
  setInt(p, "axis", -1);
  ir::Value* att = g.op("MatMul", {p->outputs[0], linear(g, x, 16, 16, "v")}, "att");
  ir::Value* ln1 = layerNorm(g, g.op("Add", {linear(g, att, 16, 16, "o"), x}, "res1"), "ln1");
  ir::Value* f1 = linear(g, ln1, 16, 32, "f1");
  ir::Value* erf = g.op("Erf", {g.op("Div", {f1, g.constant("sqrt2", {}, {1.4142135f})}, "gdiv")}, "gerf");
  ir::Value* gate = g.op("Add", {erf, g.constant("one", {}, {1.0f})}, "gate");
  ir::Value* gelu = g.op("Mul", {g.op("Mul", {f1, gate}, "gmul"), g.constant("half", {}, {0.5f})}, "gelu");
  g.output(layerNorm(g, g.op("Add", {linear(g, gelu, 32, 16, "f2"), ln1}, "res2"), "y"));
  return g.take();
}

// One weight read by two MatMuls and one by two Convs (tied weights, a reused
// layer), with a float result that adds both paths.
std::unique_ptr<ir::Model> sharedWeights() {
  TestGraph g(17);
  ir::Value* x = g.input("x", {1, 4, 6, 6});
  ir::Value* cw = g.randomConstant("cw", {4, 4, 3, 3}, -0.3f, 0.3f);
  ir::Node* c1 = g.node("Conv", {x, cw}, "c1");
  setInts(c1, "pads", {1, 1, 1, 1});
  ir::Value* r1 = g.op("Relu", {c1->outputs[0]}, "r1");
  ir::Node* c2 = g.node("Conv", {r1, cw, g.randomConstant("cb", {4}, -0.1f, 0.1f)}, "c2");
  setInts(c2, "pads", {1, 1, 1, 1});
  ir::Value* r2 = g.op("Relu", {c2->outputs[0]}, "r2");
  ir::Value* ws = g.randomConstant("ws", {6, 6}, -0.5f, 0.5f);
  ir::Value* m1 = g.op("MatMul", {r2, ws}, "m1");
  ir::Value* m2 = g.op("MatMul", {g.op("Relu", {m1}, "r3"), ws}, "m2");
  g.output(g.op("Add", {m2, m1}, "y"));
  return g.take();
}

// Conv weight and bias from Constant nodes (how some exporters write them).
std::unique_ptr<ir::Model> constantFeedsConv() {
  TestGraph g(17);
  ir::Value* x = g.input("x", {1, 3, 8, 8});
  std::mt19937 rng(7);
  auto constantNode = [&](const std::string& name, std::vector<int64_t> dims) {
    int64_t count = 1;
    for (int64_t d : dims) count *= d;
    std::vector<float> data(static_cast<size_t>(count));
    for (float& v : data) v = std::uniform_real_distribution<float>(-0.3f, 0.3f)(rng);
    ir::Node* n = g.node("Constant", {}, name);
    ir::Attribute value;
    value.kind = ir::Attribute::Kind::kTensor;
    value.t = ir::Tensor::fromValues<float>(ir::DType::kFloat32, std::move(dims), data);
    n->attributes["value"] = value;
    return n->outputs[0];
  };
  ir::Node* c1 = g.node("Conv", {x, constantNode("kw", {6, 3, 3, 3}), constantNode("kb", {6})}, "c1");
  setInts(c1, "pads", {1, 1, 1, 1});
  ir::Value* r1 = g.op("Relu", {c1->outputs[0]}, "r1");
  g.output(g.op("Conv", {r1, g.randomConstant("kw2", {2, 6, 1, 1})}, "y"));
  return g.take();
}

std::vector<ir::Tensor> seededInputs(const lower::Program& program, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0, 1);
  std::vector<ir::Tensor> inputs;
  for (int b : program.input_buffers) {
    std::vector<float> values(static_cast<size_t>(program.buffers[b].elementCount()));
    for (float& v : values) v = normal(rng);
    inputs.push_back(ir::Tensor::fromValues<float>(ir::DType::kFloat32, program.buffers[b].dims, values));
  }
  return inputs;
}

std::vector<float> floats(const ir::Tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.elementCount()));
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(t.floatAt(static_cast<int64_t>(i)));
  return out;
}

constexpr unsigned kCalibrationSeed = 100;
constexpr unsigned kSets = 32;

// As the CLI calibrates: the -O2 pipeline without the quantize step, the
// values to calibrate as extra outputs, min-max ranges over seeded inputs.
std::map<std::string, quant::Range> calibrate(const ModelFactory& make) {
  auto model = make();
  std::ostringstream log;
  auto records = passes::runPipeline(*model, passes::PipelineOptions{}, log);
  EXPECT_TRUE(records.isOk()) << records.status().message();
  std::vector<std::string> names = passes::valuesToCalibrate(model->graph);
  for (const std::string& name : names) {
    ir::Value* v = model->graph.findValue(name);
    bool listed = false;
    for (const ir::Value* io : model->graph.inputs) listed = listed || io == v;
    for (const ir::Value* io : model->graph.outputs) listed = listed || io == v;
    if (!listed) model->graph.outputs.push_back(v);
  }
  auto program = driver::buildProgram(*model, driver::CompileOptions{}, log);
  EXPECT_TRUE(program.isOk()) << program.status().message();
  if (!program.isOk()) return {};
  std::map<std::string, quant::TensorStats> stats;
  for (unsigned s = 0; s < kSets; ++s) {
    std::vector<ir::Tensor> inputs = seededInputs(*program, kCalibrationSeed + s);
    auto outputs = lower::evaluateProgram(*program, inputs);
    EXPECT_TRUE(outputs.isOk()) << outputs.status().message();
    if (!outputs.isOk()) return {};
    for (size_t i = 0; i < program->input_buffers.size(); ++i)
      stats[program->buffers[program->input_buffers[i]].name].add(floats(inputs[i]));
    for (size_t i = 0; i < program->output_buffers.size(); ++i)
      stats[program->buffers[program->output_buffers[i]].name].add(floats((*outputs)[i]));
  }
  std::map<std::string, quant::Range> ranges;
  for (const std::string& name : names) {
    EXPECT_TRUE(stats.count(name)) << name << " was not measured";
    if (stats.count(name)) ranges[name] = quant::chooseRange(stats[name], quant::CalibrationMethod::kMinMax);
  }
  return ranges;
}

driver::CompileOptions int8Options(std::map<std::string, quant::Range> ranges, int opt_level) {
  auto spec = std::make_shared<passes::QuantizeSpec>();
  spec->ranges = std::move(ranges);
  driver::CompileOptions options;
  options.pipeline.opt_level = opt_level;
  options.pipeline.quantize = spec;
  return options;
}

// What ONNX Runtime and onnx.checker ask of a graph: every name defined once
// (graph input, initializer or node output), each node's inputs defined
// before it; and of a quantized export, no initializer that nothing reads.
::testing::AssertionResult wellFormedOnnx(const std::string& bytes) {
  onnx::ModelProto proto;
  if (!proto.ParseFromString(bytes)) return ::testing::AssertionFailure() << "the ONNX bytes do not parse";
  const onnx::GraphProto& g = proto.graph();
  std::set<std::string> defined, read;
  auto define = [&](const std::string& name, const std::string& what) -> ::testing::AssertionResult {
    if (name.empty() || defined.insert(name).second) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "duplicate definition of '" << name << "' (" << what << ")";
  };
  for (const auto& in : g.input())
    if (auto r = define(in.name(), "graph input"); !r) return r;
  for (const auto& init : g.initializer())
    if (auto r = define(init.name(), "initializer"); !r) return r;
  for (const auto& node : g.node()) {
    for (const std::string& in : node.input()) {
      if (!in.empty() && !defined.count(in))
        return ::testing::AssertionFailure() << node.op_type() << " '" << node.name() << "' reads '" << in
                                             << "' before it is defined";
      read.insert(in);
    }
    for (const std::string& out : node.output())
      if (auto r = define(out, node.op_type() + " '" + node.name() + "'"); !r) return r;
  }
  for (const auto& out : g.output()) read.insert(out.name());
  for (const auto& init : g.initializer())
    if (!read.count(init.name()))
      return ::testing::AssertionFailure() << "initializer '" << init.name() << "' is read by nothing";
  auto again = frontend::importOnnxBytes(std::as_bytes(std::span(bytes.data(), bytes.size())), "", "qdq.onnx");
  if (!again.isOk()) return ::testing::AssertionFailure() << "re-import: " << again.status().message();
  return ::testing::AssertionSuccess();
}

int countOps(const ir::Graph& graph, std::initializer_list<const char*> ops) {
  int n = 0;
  for (const auto& node : graph.nodes())
    for (const char* op : ops) n += node->op_type == op;
  return n;
}

struct Shape {
  const char* name;
  ModelFactory make;
  int quantized_products;  // Conv/MatMul/Gemm the -O2 graph computes on int8
};

class QuantizeShapesTest : public ::testing::TestWithParam<Shape> {};

TEST_P(QuantizeShapesTest, CompilesExportsAndTracksFloat) {
  const Shape& shape = GetParam();
  std::map<std::string, quant::Range> ranges = calibrate(shape.make);
  ASSERT_FALSE(ranges.empty());

  // -O2 with the quantize step: compiles, and the products run on integers.
  auto model = shape.make();
  std::ostringstream log;
  auto int8 = driver::buildProgram(*model, int8Options(ranges, 2), log);
  ASSERT_TRUE(int8.isOk()) << int8.status().message();
  EXPECT_EQ(countOps(model->graph, {"QLinearConv", "QLinearConvNhwc", "QLinearMatMul", "ConvInteger", "MatMulInteger"}),
            shape.quantized_products)
      << ir::printModel(*model);

  // The QDQ export (--emit onnx -O0).
  auto qdq = shape.make();
  auto records = passes::runPipeline(*qdq, int8Options(ranges, 0).pipeline, log);
  ASSERT_TRUE(records.isOk()) << records.status().message();
  auto bytes = frontend::serializeOnnx(*qdq);
  ASSERT_TRUE(bytes.isOk()) << bytes.status().message();
  EXPECT_TRUE(wellFormedOnnx(*bytes)) << ir::printModel(*qdq);

  // Against float32 on inputs the calibration did not see. Bound: 30 dB
  // (relative RMS error under 3.2%). Each quantized activation and weight
  // adds noise about 45-50 dB below its signal, and up to four quantized
  // products in sequence measured 36-46 dB here; the margin covers the new
  // inputs' values outside the calibrated ranges, which saturate.
  auto fp32 = compileProgram(shape.make, driver::CompileOptions{});
  ASSERT_TRUE(fp32.isOk()) << fp32.status().message();
  quant::OutputError error;
  for (unsigned seed = 1; seed <= 4; ++seed) {
    std::vector<ir::Tensor> inputs = seededInputs(*fp32, seed);
    auto want = lower::evaluateProgram(*fp32, inputs);
    auto got = lower::evaluateProgram(*int8, inputs);
    ASSERT_TRUE(want.isOk() && got.isOk());
    error.add(floats((*want)[0]), floats((*got)[0]), (*want)[0].dims());
  }
  EXPECT_GT(error.sqnrDb(), 30.0);
  EXPECT_GT(error.noise, 0.0) << "quantization changes the numbers";
}

INSTANTIATE_TEST_SUITE_P(Shapes, QuantizeShapesTest,
                         ::testing::Values(Shape{"gemm_chain_relu", gemmChain, 3},
                                           Shape{"conv_bn_relu_residual", convBnResidual, 4},
                                           Shape{"transformer_block", transformerBlock, 6},
                                           Shape{"shared_weights", sharedWeights, 4},
                                           Shape{"constant_feeds_conv", constantFeedsConv, 2}),
                         [](const auto& info) { return std::string(info.param.name); });

// A weight read by two nodes is quantized once: one int8 copy behind one
// DequantizeLinear, and the float weight is gone from the QDQ graph.
TEST(QuantizeStaticTest, SharedWeightIsQuantizedOnce) {
  std::map<std::string, quant::Range> ranges = calibrate(sharedWeights);
  auto model = sharedWeights();
  std::ostringstream log;
  ASSERT_TRUE(passes::runPipeline(*model, int8Options(ranges, 0).pipeline, log).isOk());
  int int8_weights = 0;
  for (const auto& v : model->graph.values())
    int8_weights += v->isConstant() && v->constant->dtype() == ir::DType::kInt8 && v->constant->dims().size() >= 2;
  EXPECT_EQ(int8_weights, 2) << "cw and ws, once each\n" << ir::printModel(*model);
  EXPECT_EQ(model->graph.findValue("cw"), nullptr);
  EXPECT_EQ(model->graph.findValue("ws"), nullptr);
}

// Layers named in keep_float stay float32 and read the float activations.
TEST(QuantizeStaticTest, KeepFloatLeavesLayersInFloat) {
  std::map<std::string, quant::Range> ranges = calibrate(gemmChain);
  auto model = runPasses(gemmChain, {});
  EXPECT_EQ(passes::quantizableLayers(model->graph), (std::vector<std::string>{"Gemm_g1", "Gemm_g2", "Gemm_y"}));
  ASSERT_TRUE(passes::quantizeStatic(*model, ranges, {"Gemm_g2"}).isOk());
  for (const auto& n : model->graph.nodes()) {
    if (n->op_type != "Gemm") continue;
    const ir::Node* wdq = n->input(1)->producer;
    bool quantized = wdq && wdq->op_type == "DequantizeLinear";
    EXPECT_EQ(quantized, n->name != "Gemm_g2") << n->describe();
    if (n->name == "Gemm_g2") {
      EXPECT_EQ(n->input(0)->name, "r1") << "reads the float activation";
    }
  }
}

}  // namespace
}  // namespace kiln::testing
