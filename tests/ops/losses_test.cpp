// The loss family (compiler/ops/losses.cpp): inference and its errors, and, on
// the reference evaluator, corners the ONNX backend cases miss: out-of-range
// run-time targets (read as 0, never out of bounds), ignore_index in weighted
// and unweighted means, and the log-softmax of large scores.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <optional>

#include "tests/ops/node_fixture.h"

namespace kiln::ops {
namespace {

using ir::DType;
using testing::messageOf;
using testing::OneNodeGraph;
using testing::OneNodeModel;

constexpr DType f32 = DType::kFloat32;
constexpr DType i64 = DType::kInt64;

// ---- Inference -------------------------------------------------------------------

TEST(LossInferTest, OutputShapes) {
  OneNodeGraph none("NegativeLogLikelihoodLoss");
  none.input(f32, "batchx5x2x3").input(i64, "batchx2x3").string("reduction", "none");
  ASSERT_EQ(messageOf(none.infer(13)), "ok");
  EXPECT_EQ(none.outputShape(), "batchx2x3");

  OneNodeGraph mean("NegativeLogLikelihoodLoss");
  mean.input(f32, "4x5").input(DType::kInt32, "4").input(f32, "5");
  ASSERT_EQ(messageOf(mean.infer(12)), "ok");
  EXPECT_EQ(mean.outputShape(), "scalar");

  OneNodeGraph sce("SoftmaxCrossEntropyLoss");
  sce.input(f32, "4x5x6").input(i64, "4x6").string("reduction", "sum").outputs(2);
  ASSERT_EQ(messageOf(sce.infer(13)), "ok");
  EXPECT_EQ(sce.outputShape(0), "scalar");
  EXPECT_EQ(sce.outputShape(1), "4x5x6");
}

TEST(LossInferTest, Errors) {
  OneNodeGraph reduction("NegativeLogLikelihoodLoss", "l");
  reduction.input(f32, "4x5").input(i64, "4").string("reduction", "max");
  EXPECT_EQ(messageOf(reduction.infer(13)), "NegativeLogLikelihoodLoss 'l': reduction is 'max', expected 'none', 'sum' or 'mean'");

  OneNodeGraph float_target("SoftmaxCrossEntropyLoss", "l");
  float_target.input(f32, "4x5").input(f32, "4");
  EXPECT_EQ(messageOf(float_target.infer(13)),
            "SoftmaxCrossEntropyLoss 'l': labels has dtype float32, expected int32 or int64 (input 1)");

  OneNodeGraph shape("NegativeLogLikelihoodLoss", "l");
  shape.input(f32, "4x5x6").input(i64, "4x5");
  EXPECT_EQ(messageOf(shape.infer(13)),
            "NegativeLogLikelihoodLoss 'l': target has shape 4x5, expected input 4x5x6 without dim 1 (input 1)");

  OneNodeGraph weight("NegativeLogLikelihoodLoss", "l");
  weight.input(f32, "4x5").input(i64, "4").input(f32, "3");
  EXPECT_EQ(messageOf(weight.infer(13)),
            "NegativeLogLikelihoodLoss 'l': weight has 3 elements, expected 5 (one per class, dim 1 of input 4x5, "
            "input 2)");

  OneNodeGraph rank("NegativeLogLikelihoodLoss", "l");
  rank.input(f32, "4x5").input(i64, "4x5");
  EXPECT_NE(messageOf(rank.infer(13)), "ok");

  OneNodeGraph old("SoftmaxCrossEntropyLoss", "l");
  old.input(f32, "4x5").input(i64, "4");
  EXPECT_NE(messageOf(old.infer(11)), "ok");
}

// ---- Evaluation ------------------------------------------------------------------

const std::vector<float> kLogProbs = {-1, -2, -3, -4, -5, -6};  // [2, 3]

std::vector<float> nll(const std::string& reduction, std::vector<int64_t> target, std::optional<int64_t> ignore,
                       const std::vector<float>* weight = nullptr) {
  OneNodeModel m("NegativeLogLikelihoodLoss", 13);
  m.input(f32, {2, 3}).input(i64, {2});
  if (weight) m.input(f32, {3});
  m.attr("reduction", reduction);
  if (ignore) m.attr("ignore_index", *ignore);
  return weight ? m.run<float>(kLogProbs, target, *weight) : m.run<float>(kLogProbs, target);
}

TEST(LossEvalTest, OutOfRangeTargetsReadZero) {
  EXPECT_EQ(nll("none", {1, 7}, std::nullopt), (std::vector<float>{2, 0}));
  EXPECT_EQ(nll("none", {-1, 2}, std::nullopt), (std::vector<float>{0, 6}));
  // Unweighted mean: every element counts, like numpy's mean in the reference.
  EXPECT_EQ(nll("mean", {1, 1000000}, std::nullopt), (std::vector<float>{1}));
  std::vector<float> weight = {1, 2, 3};
  EXPECT_EQ(nll("none", {1, 3}, std::nullopt, &weight), (std::vector<float>{4, 0}));
  // Weighted mean: an out-of-range target has weight 0.
  EXPECT_EQ(nll("mean", {1, -5}, std::nullopt, &weight), (std::vector<float>{2}));
}

TEST(LossEvalTest, IgnoreIndex) {
  EXPECT_EQ(nll("none", {1, 2}, 1), (std::vector<float>{0, 6}));
  EXPECT_EQ(nll("sum", {1, 2}, 1), (std::vector<float>{6}));
  EXPECT_EQ(nll("mean", {1, 2}, 1), (std::vector<float>{6}));    // one counted target
  EXPECT_EQ(nll("mean", {-1, 2}, -1), (std::vector<float>{6}));  // negative ignore_index
  std::vector<float> weight = {1, 2, 3};
  EXPECT_NEAR(nll("mean", {1, 2}, std::nullopt, &weight)[0], 22.0f / 5.0f, 1e-6f);
  EXPECT_EQ(nll("mean", {1, 2}, 2, &weight), (std::vector<float>{2}));  // 4 / weight 2
}

TEST(LossEvalTest, SoftmaxCrossEntropyOfLargeScores) {
  OneNodeModel m("SoftmaxCrossEntropyLoss", 13);
  m.input(f32, {1, 3}).input(DType::kInt32, {1});
  // int32 label 2, passed as raw bytes in a float vector.
  std::vector<std::vector<float>> out = m.runFloat(2, {{1000, 1000, 1000}, {std::bit_cast<float>(int32_t{2})}});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_NEAR(out[0][0], std::log(3.0f), 1e-5f);
  ASSERT_EQ(out[1].size(), 3u);
  for (float v : out[1]) EXPECT_NEAR(v, -std::log(3.0f), 1e-5f);
}

}  // namespace
}  // namespace kiln::ops
