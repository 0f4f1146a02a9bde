// winograd-conv: 3x3, stride-1, group-1 channels-last convolutions (after
// channels-last) become kiln.WinogradConv -> kiln.WinogradCrop (banded:
// the transformed weight and a tile row's intermediates fit in L2) or
// kiln.WinogradInput -> kiln.WinogradMatMul -> kiln.WinogradOutput (steps:
// wider layers), and nothing else does; the outputs stay within the
// rounding Winograd's transforms add, both in the reference evaluator and
// in generated code, with the bias/Relu/residual epilogue fused into the
// crop or the output transform.
//
// Tolerance: F(2x2, 3x3) adds and subtracts up to 16 rounded partial sums
// per output where the direct convolution sums 9 * C products. Measured
// here on random data in [-1, 1) (weights too) the largest difference is
// 2.6e-7 to 5.8e-7 of the output's largest magnitude (7e-7 on ResNet-50 at
// -O2 against -O0, 3e-7 without the pass); the tests allow 1e-5, which a
// wrong tap, sign or padding read exceeds by five orders of magnitude.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "compiler/ir/printer.h"
#include "compiler/kir/evaluator.h"
#include "compiler/onnx/writer.h"
#include "tests/passes/model_check.h"
#include "tests/testing/artifact_fixture.h"
#include "tools/common/run_artifact.h"

namespace kiln::testing {
namespace {

constexpr double kTolerance = 1e-5;  // of the output's largest magnitude

struct ConvSpec {
  int64_t in, out;
  int64_t kernel = 3;
  std::vector<int64_t> pads = {1, 1, 1, 1};
  int64_t stride = 1, dilation = 1, group = 1;
  bool bias = true;
};

ir::Value* conv(TestGraph& g, ir::Value* x, const ConvSpec& s, const std::string& name, ir::Value* weight = nullptr) {
  if (!weight) weight = g.randomConstant(name + "_w", {s.out, s.in / s.group, s.kernel, s.kernel});
  std::vector<ir::Value*> inputs = {x, weight};
  if (s.bias) inputs.push_back(g.randomConstant(name + "_b", {s.out}));
  ir::Node* node = g.node("Conv", inputs, name);
  setInts(node, "pads", s.pads);
  setInts(node, "strides", {s.stride, s.stride});
  setInts(node, "dilations", {s.dilation, s.dilation});
  setInt(node, "group", s.group);
  return node->outputs[0];
}

// Both programs on the same random inputs (seeded): the largest |a - b|
// over the largest |b|, across all float32 outputs.
double relativeError(const lower::Program& a, const lower::Program& b, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::vector<std::byte>> inputs;
  std::vector<const void*> in;
  for (int buffer : a.input_buffers) {
    const lower::ProgramBuffer& pb = a.buffers[buffer];
    std::vector<std::byte> bytes(pb.byteSize());
    for (int64_t i = 0; i < pb.elementCount(); ++i) {
      float x = std::uniform_real_distribution<float>(-1, 1)(rng);
      std::memcpy(bytes.data() + i * 4, &x, 4);
    }
    inputs.push_back(std::move(bytes));
  }
  for (const auto& bytes : inputs) in.push_back(bytes.data());
  auto run = [&](const lower::Program& p) {
    std::vector<std::vector<float>> outputs;
    std::vector<void*> out;
    for (int buffer : p.output_buffers) outputs.emplace_back(p.buffers[buffer].elementCount());
    for (auto& o : outputs) out.push_back(o.data());
    Status status = lower::evaluateProgram(p, in, out);
    EXPECT_TRUE(status.isOk()) << status.message();
    return outputs;
  };
  auto out_a = run(a), out_b = run(b);
  double largest = 0, error = 0;
  for (size_t o = 0; o < out_a.size(); ++o)
    for (size_t i = 0; i < out_a[o].size(); ++i) {
      largest = std::max(largest, std::abs(static_cast<double>(out_b[o][i])));
      error = std::max(error, std::abs(static_cast<double>(out_a[o][i]) - out_b[o][i]));
    }
  return largest > 0 ? error / largest : error;
}

// -O0 against channels-last + winograd-conv (kernels unfused), on three seeds.
double passError(const ModelFactory& make) {
  driver::CompileOptions reference;
  reference.pipeline.opt_level = 0;
  driver::CompileOptions optimized;
  optimized.pipeline.passes = {"channels-last", "winograd-conv"};
  auto a = compileProgram(make, optimized);
  auto b = compileProgram(make, reference);
  EXPECT_TRUE(a.isOk() && b.isOk());
  if (!a || !b) return INFINITY;
  double worst = 0;
  for (unsigned seed = 1; seed <= 3; ++seed) worst = std::max(worst, relativeError(*a, *b, seed));
  return worst;
}

// Taken: two dense 3x3 stride-1 convolutions, one banded (a 64 KiB
// transformed weight) and one in steps (64 -> 192 channels: 768 KiB, with a
// band's intermediates more than kBandCacheBytes). Left alone: stride 2,
// dilation 2, grouped (2 groups) and depthwise, 1x1, a weight that is an
// input, one below 16 input channels, one below 16 output channels, and
// one whose weight is too large for a band (48 -> 256: 768 KiB) with too
// few input channels for the steps. The reference evaluator takes about a
// microsecond per multiply-add, so the wide ones run on small maps.
std::unique_ptr<ir::Model> mixedConvs() {
  TestGraph g;
  ir::Value* x = g.input("x", {1, 64, 9, 9});
  g.output(conv(g, x, {64, 16}, "taken"));
  g.output(conv(g, g.input("x_wide", {1, 64, 4, 3}), {64, 192}, "wide"));
  g.output(conv(g, x, {64, 16, 3, {1, 1, 1, 1}, 2}, "strided"));
  g.output(conv(g, x, {64, 16, 3, {2, 2, 2, 2}, 1, 2}, "dilated"));
  g.output(conv(g, x, {64, 16, 3, {1, 1, 1, 1}, 1, 1, 2}, "grouped"));
  g.output(conv(g, x, {64, 64, 3, {1, 1, 1, 1}, 1, 1, 64}, "depthwise"));
  g.output(conv(g, x, {64, 16, 1, {0, 0, 0, 0}}, "pointwise"));
  g.output(conv(g, x, {64, 16}, "dynamic", g.input("w", {16, 64, 3, 3})));
  g.output(conv(g, g.input("x8", {1, 8, 9, 9}), {8, 64}, "narrow_input"));
  g.output(conv(g, x, {64, 8}, "narrow_output"));
  g.output(conv(g, g.input("x48", {1, 48, 4, 3}), {48, 256}, "between"));
  return g.take();
}

TEST(WinogradConvTest, RewritesOnlyDenseThreeByThreeStrideOneConvolutions) {
  auto before = runPasses(mixedConvs, {"channels-last"});
  auto after = runPasses(mixedConvs, {"channels-last", "winograd-conv"});
  const ir::Graph& graph = after->graph;
  EXPECT_EQ(countOps(graph, "WinogradConv"), 1) << ir::printModel(*after);
  EXPECT_EQ(countOps(graph, "WinogradCrop"), 1);
  EXPECT_EQ(countOps(graph, "WinogradInput"), 1);
  EXPECT_EQ(countOps(graph, "WinogradMatMul"), 1);
  EXPECT_EQ(countOps(graph, "WinogradOutput"), 1);
  EXPECT_EQ(countOps(graph, "ConvNhwc"), countOps(before->graph, "ConvNhwc") - 2);
  EXPECT_EQ(countOps(graph, "Conv"), countOps(before->graph, "Conv"));  // grouped, dynamic stay NCHW
  for (const auto& node : graph.nodes()) {
    if (node->op_type == "WinogradCrop") EXPECT_EQ(node->outputs[0]->name, "taken_nhwc");
    if (node->op_type == "WinogradOutput") EXPECT_EQ(node->outputs[0]->name, "wide_nhwc");
  }
  EXPECT_LE(passError(mixedConvs), kTolerance);
}

// Without channels-last there is no kiln.ConvNhwc, and nothing to take.
TEST(WinogradConvTest, LeavesNchwConvolutionsAlone) {
  auto after = runPasses(mixedConvs, {"winograd-conv"});
  EXPECT_EQ(opSequence(after->graph), opSequence(mixedConvs()->graph));
}

// Under --precision bf16 the -O pipeline leaves convolutions to the
// direct kernel's bf16 dot products (or AMX tiles), which beat a float32
// product; at fp32 it takes them.
TEST(WinogradConvTest, LeftToTheDirectKernelUnderBf16Precision) {
  for (const char* precision : {"fp32", "bf16"}) {
    driver::CompileOptions options;
    options.codegen.precision = precision;
    bool lowered = false;
    options.on_lowered = [&](const ir::Model& model, const lower::Program&) {
      lowered = true;
      const int taken = std::string(precision) == "fp32" ? 1 : 0;
      EXPECT_EQ(countOps(model.graph, "WinogradConv"), taken) << precision;
      EXPECT_EQ(countOps(model.graph, "WinogradMatMul"), taken) << precision;
    };
    auto program = compileProgram(mixedConvs, options);
    EXPECT_TRUE(program.isOk()) << program.status().message();
    EXPECT_TRUE(lowered);
  }
}

struct MapCase {
  const char* name;
  std::vector<int64_t> x;  // N, C, H, W
  std::vector<int64_t> pads;
  int64_t filters = 24;             // 24: banded; 192 filters of 64 channels: in steps
  const char* op = "WinogradConv";  // the form's op, one of it expected
};

void PrintTo(const MapCase& c, std::ostream* os) { *os << c.name; }

class WinogradMaps : public ::testing::TestWithParam<MapCase> {};

// Odd maps end in half tiles (only valid outputs are written, by the steps'
// output transform or by the banded form's crop), pads of 0 read no
// padding, asymmetric pads shift the tiles, and batches stack tiles.
TEST_P(WinogradMaps, MatchesTheDirectConvolution) {
  const MapCase& c = GetParam();
  auto make = [&] {
    TestGraph g;
    ir::Value* x = g.input("x", c.x);
    g.output(g.op("Relu", {conv(g, x, {c.x[1], c.filters, 3, c.pads}, "conv")}, "y"));
    return g.take();
  };
  auto after = runPasses(make, {"channels-last", "winograd-conv"});
  EXPECT_EQ(countOps(after->graph, c.op), 1) << ir::printModel(*after);
  double error = passError(make);
  EXPECT_LE(error, kTolerance) << c.name;
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, WinogradMaps,
    ::testing::Values(MapCase{"map7", {1, 64, 7, 7}, {1, 1, 1, 1}}, MapCase{"map13", {1, 64, 13, 13}, {1, 1, 1, 1}},
                      MapCase{"row1x9", {1, 64, 1, 9}, {1, 1, 1, 1}}, MapCase{"unpadded8", {1, 64, 8, 8}, {0, 0, 0, 0}},
                      MapCase{"unpadded7x5", {1, 68, 7, 5}, {0, 0, 0, 0}},
                      MapCase{"asymmetric", {1, 64, 6, 9}, {0, 1, 2, 0}},
                      MapCase{"batch3", {3, 64, 6, 5}, {1, 1, 1, 1}},
                      MapCase{"sixteen_channels", {1, 16, 13, 11}, {1, 1, 1, 1}, 16},
                      MapCase{"steps_map5x3", {1, 64, 5, 3}, {1, 1, 1, 1}, 192, "WinogradMatMul"},
                      MapCase{"steps_unpadded_batch2", {2, 64, 5, 4}, {0, 0, 0, 0}, 192, "WinogradMatMul"}),
    [](const auto& info) { return std::string(info.param.name); });

// A residual block as ResNet has it: Relu(Conv3x3(x) + b + x), of 64
// channels (banded) or 112 (steps: a 784 KiB transformed weight).
std::unique_ptr<ir::Model> residualBlock(const std::vector<int64_t>& dims) {
  TestGraph g;
  const int64_t channels = dims[1];
  ir::Value* x = g.input("x", dims);
  ir::Value* a = g.op("Relu", {conv(g, x, {channels, channels}, "conv_a")}, "relu_a");
  ir::Value* b = conv(g, a, {channels, channels}, "conv_b");
  g.output(g.op("Relu", {g.op("Add", {b, x}, "residual")}, "y"));
  return g.take();
}

struct FormCase {
  const char* name;
  std::vector<int64_t> x;  // N, C, H, W
  const char* last_step;   // the op whose kernel takes the epilogue
};

void PrintTo(const FormCase& c, std::ostream* os) { *os << c.name; }

class WinogradForms : public ::testing::TestWithParam<FormCase> {};

// At -O2 the last step (the banded form's crop, the steps' output
// transform), bias, residual Add and Relu are one kernel, and the compiled
// program agrees with the one compiled without the pass.
TEST_P(WinogradForms, FusesTheEpilogueIntoTheLastStep) {
  const FormCase& c = GetParam();
  auto make = [&] { return residualBlock(c.x); };
  driver::CompileOptions with, without;
  without.pipeline.disabled = {"winograd-conv"};
  auto program = compileProgram(make, with);
  auto reference = compileProgram(make, without);
  ASSERT_TRUE(program.isOk()) << program.status().message();
  ASSERT_TRUE(reference.isOk()) << reference.status().message();
  int fused = 0;
  for (const lower::KernelCall& call : program->calls) {
    const std::string& origin = call.kernel.origin;
    if (origin.find(c.last_step) != std::string::npos) {
      EXPECT_NE(origin.find("Relu"), std::string::npos) << origin;
      fused += origin.find("Add") != std::string::npos;
    }
  }
  EXPECT_EQ(fused, 1) << lower::toString(*program);
  for (unsigned seed = 1; seed <= 2; ++seed) EXPECT_LE(relativeError(*program, *reference, seed), kTolerance);
}

// The generated code (the banded kernel's stage group, the product's
// contraction plan, the transforms' vectorized loops, the edge tiles)
// against the artifact compiled without the pass, on the runtime.
TEST_P(WinogradForms, GeneratedCodeMatchesTheDirectConvolution) {
  const std::vector<int64_t>& dims = GetParam().x;
  TempDir tmp;
  ASSERT_TRUE(frontend::writeOnnxFile(*residualBlock(dims), tmp.file("block.onnx")).isOk());
  driver::CompileOptions with, without;
  without.pipeline.disabled = {"winograd-conv"};
  compileOrFail(tmp.file("block.onnx"), tmp.file("with.so"), with);
  compileOrFail(tmp.file("block.onnx"), tmp.file("without.so"), without);
  std::mt19937 rng(7);
  std::vector<float> data(static_cast<size_t>(dims[0] * dims[1] * dims[2] * dims[3]));
  for (float& v : data) v = std::uniform_real_distribution<float>(-1, 1)(rng);
  std::vector<ir::Tensor> inputs = {ir::Tensor::fromValues<float>(ir::DType::kFloat32, dims, data)};
  auto run = [&](const std::string& path) {
    kiln::Model model(path);
    kiln::Session session(model, 2);
    auto outputs = tools::runArtifact(model, session, inputs);
    EXPECT_TRUE(outputs.isOk()) << outputs.status().message();
    return outputs.isOk() ? (*outputs)[0] : ir::Tensor();
  };
  ir::Tensor got = run(tmp.file("with.so")), want = run(tmp.file("without.so"));
  ASSERT_EQ(got.elementCount(), want.elementCount());
  const auto* a = reinterpret_cast<const float*>(got.bytes().data());
  const auto* b = reinterpret_cast<const float*>(want.bytes().data());
  double largest = 0, error = 0;
  for (int64_t i = 0; i < got.elementCount(); ++i) {
    largest = std::max(largest, std::abs(static_cast<double>(b[i])));
    error = std::max(error, std::abs(static_cast<double>(a[i]) - b[i]));
  }
  EXPECT_GT(largest, 1.0);
  EXPECT_LE(error / largest, kTolerance);
}

INSTANTIATE_TEST_SUITE_P(Forms, WinogradForms,
                         ::testing::Values(FormCase{"banded", {2, 64, 11, 10}, "WinogradCrop"},
                                           FormCase{"steps", {1, 112, 5, 4}, "WinogradOutput"}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace kiln::testing
