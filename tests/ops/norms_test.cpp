// The norms family (compiler/ops/norms.cpp): inference and its errors, and,
// on the reference evaluator, corners the ONNX backend cases miss: the
// LayerNormalization statistics outputs, a large common offset (the two-pass
// variance), LRN at the channel edges, opset-11 Hardmax's flattened rows and
// its first-of-ties rule.
#include <gtest/gtest.h>

#include <cmath>

#include "tests/ops/node_fixture.h"

namespace kiln::ops {
namespace {

using ir::DType;
using testing::messageOf;
using testing::OneNodeGraph;
using testing::OneNodeModel;

constexpr DType f32 = DType::kFloat32;

void expectNear(const std::vector<float>& actual, const std::vector<float>& expected, float tolerance = 1e-4f) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) EXPECT_NEAR(actual[i], expected[i], tolerance) << "element " << i;
}

// ---- Inference -------------------------------------------------------------------

TEST(NormsInferTest, LayerNormStatisticsShapes) {
  OneNodeGraph g("LayerNormalization");
  g.input(DType::kFloat16, "batchx4x8").input(DType::kFloat16, "8").outputs(3).integer("axis", 1);
  ASSERT_EQ(messageOf(g.infer(17)), "ok");
  EXPECT_EQ(g.outputShape(0), "batchx4x8");
  EXPECT_EQ(g.outputType(0).dtype, DType::kFloat16);
  EXPECT_EQ(g.outputShape(1), "batchx1x1");
  EXPECT_EQ(g.outputType(1).dtype, f32);  // stash_type
  EXPECT_EQ(g.outputShape(2), "batchx1x1");
}

TEST(NormsInferTest, LayerNormScaleMustBroadcast) {
  OneNodeGraph g("LayerNormalization", "ln");
  g.input(f32, "2x4x8").input(f32, "4");
  EXPECT_EQ(messageOf(g.infer(17)), "LayerNormalization 'ln': Scale 4 does not broadcast to X 2x4x8 (input 1)");
  OneNodeGraph stash("LayerNormalization", "ln");
  stash.input(f32, "2x8").input(f32, "8").integer("stash_type", 7);
  EXPECT_EQ(messageOf(stash.infer(17)), "LayerNormalization 'ln': stash_type 7 is not a floating-point type");
}

TEST(NormsInferTest, InstanceNormParamsPerChannel) {
  OneNodeGraph g("InstanceNormalization", "in");
  g.input(f32, "1x3x5").input(f32, "3").input(f32, "4");
  EXPECT_EQ(messageOf(g.infer(6)),
            "InstanceNormalization 'in': B has 4 elements, expected 3 (one per channel of input 1x3x5, input 2)");
}

TEST(NormsInferTest, LrnNeedsPositiveSize) {
  OneNodeGraph g("LRN", "l");
  g.input(f32, "1x3x5x5").integer("size", 0);
  EXPECT_EQ(messageOf(g.infer(13)), "LRN 'l': size must be positive, got 0");
  OneNodeGraph missing("LRN", "l");
  missing.input(f32, "1x3x5x5");
  EXPECT_NE(messageOf(missing.infer(13)), "ok");
}

TEST(NormsInferTest, MvnAxesInRange) {
  OneNodeGraph g("MeanVarianceNormalization");
  g.input(f32, "2x3");  // the default axes [0, 2, 3] need rank 4
  EXPECT_NE(messageOf(g.infer(13)), "ok");
  OneNodeGraph h("MeanVarianceNormalization");
  h.input(f32, "2x3").ints("axes", {1});
  EXPECT_EQ(messageOf(h.infer(13)), "ok");
}

// ---- Evaluation ------------------------------------------------------------------

TEST(NormsEvalTest, LayerNormWithStatisticsOutputs) {
  OneNodeModel m("LayerNormalization", 17);
  m.input(f32, {2, 2}).input(f32, {2}).input(f32, {2}).attr("epsilon", 0.0f);
  std::vector<std::vector<float>> out = m.runFloat(3, {{1, 3, 10, 20}, {1, 2}, {0, 1}});
  ASSERT_EQ(out.size(), 3u);
  expectNear(out[0], {-1, 3, -1, 3});
  expectNear(out[1], {2, 15});
  expectNear(out[2], {1, 0.2f});
}

TEST(NormsEvalTest, VarianceSurvivesALargeOffset) {
  // E[x^2] - E[x]^2 in float32 would lose the unit variance under 1e4^2.
  OneNodeModel m("MeanVarianceNormalization", 13);
  m.input(f32, {1, 4}).attr("axes", std::vector<int64_t>{1});
  expectNear(m.runFloat({{10000 - 1, 10000 + 1, 10000 - 1, 10000 + 1}}), {-1, 1, -1, 1});
}

TEST(NormsEvalTest, LrnAtChannelEdges) {
  OneNodeModel m("LRN", 13);
  m.input(f32, {1, 3, 1, 1}).attr("size", int64_t{3}).attr("alpha", 3.0f).attr("beta", 1.0f).attr("bias", 1.0f);
  // Channel 0 sees channels 0-1, channel 1 all three, channel 2 channels 1-2.
  std::vector<float> y = m.runFloat({{1, 2, 3}});
  expectNear(y, {1.0f / (1 + 5), 2.0f / (1 + 14), 3.0f / (1 + 13)});
}

TEST(NormsEvalTest, HardmaxOpset11FlattensFromAxis) {
  OneNodeModel m("Hardmax", 11);
  m.input(f32, {1, 2, 2});  // axis 1: one row of 4
  expectNear(m.runFloat({{1, 7, 7, 3}}), {0, 1, 0, 0});
  OneNodeModel last("Hardmax", 13);
  last.input(f32, {1, 2, 2});  // axis -1: rows of 2
  expectNear(last.runFloat({{1, 7, 7, 3}}), {0, 1, 1, 0});
}

}  // namespace
}  // namespace kiln::ops
