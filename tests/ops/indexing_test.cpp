// Indexing ops: shape inference and errors, and on the reference evaluator
// the corners the ONNX backend cases do not reach: negative and out-of-range
// run-time indices, duplicate scatter indices, reductions.
#include <gtest/gtest.h>

#include "tests/ops/node_fixture.h"

namespace kiln::ops {
namespace {

using ir::DType;
using testing::int64Tensor;
using testing::messageOf;
using testing::OneNodeGraph;
using testing::OneNodeModel;

constexpr DType f32 = DType::kFloat32;
constexpr DType i64 = DType::kInt64;

// ---- Inference -------------------------------------------------------------------

TEST(IndexingInferTest, GatherInsertsTheIndicesShapeAtAxis) {
  OneNodeGraph g("Gather");
  g.input(f32, "5x6x7").input(i64, "2x3").integer("axis", -2);
  ASSERT_EQ(messageOf(g.infer()), "ok");
  EXPECT_EQ(g.outputShape(), "5x2x3x7");
}

TEST(IndexingInferTest, GatherRejectsFloatIndices) {
  OneNodeGraph g("Gather", "g");
  g.input(f32, "5").input(f32, "2");
  EXPECT_EQ(messageOf(g.infer()), "Gather 'g': indices have dtype float32, expected int32 or int64 (input 1)");
}

TEST(IndexingInferTest, GatherNDWithBatchDims) {
  OneNodeGraph g("GatherND");
  g.input(f32, "2x3x4x5").input(i64, "2x7x2").integer("batch_dims", 1);
  ASSERT_EQ(messageOf(g.infer()), "ok");
  EXPECT_EQ(g.outputShape(), "2x7x5");
}

TEST(IndexingInferTest, ScatterNDChecksUpdatesShape) {
  OneNodeGraph g("ScatterND", "s");
  g.input(f32, "4x5").input(i64, "3x1").input(f32, "3x4");
  EXPECT_EQ(messageOf(g.infer()),
            "ScatterND 's': updates 3x4 must have shape 3x5 (indices.shape[:-1] + data.shape[m:]) (input 2)");
}

TEST(IndexingInferTest, ScatterReductionMaxNeedsOpset18) {
  OneNodeGraph g("ScatterElements", "s");
  g.input(f32, "4").input(i64, "2").input(f32, "2").string("reduction", "max");
  EXPECT_EQ(messageOf(g.infer(16)), "ScatterElements 's': unknown reduction 'max' (opset 16)");
  EXPECT_EQ(messageOf(g.infer(18)), "ok");
}

TEST(IndexingInferTest, OneHotDepthReadAtRunTimeLeavesItsDimUnknown) {
  OneNodeGraph g("OneHot", "h");
  g.input(i64, "3").input(i64, "scalar").input(f32, "2");
  ASSERT_EQ(messageOf(g.infer(11)), "ok");
  EXPECT_EQ(g.outputShape(), "3x?");
}

TEST(IndexingInferTest, OneHotInsertsDepthAtAxis) {
  OneNodeGraph g("OneHot");
  g.input(i64, "2x3").constantInput(int64Tensor({10})).input(f32, "2").integer("axis", 1);
  ASSERT_EQ(messageOf(g.infer(11)), "ok");
  EXPECT_EQ(g.outputShape(), "2x10x3");
}

// ---- Lowering --------------------------------------------------------------------

TEST(IndexingLowerTest, GatherWrapsNegativeAndZeroesOutOfRange) {
  OneNodeModel m("Gather", 13);
  m.input(f32, {4}).input(i64, {5});
  std::vector<float> data = {10, 11, 12, 13};
  std::vector<int64_t> indices = {-1, 0, 4, -5, 2};
  EXPECT_EQ(m.run<float>(data, indices), (std::vector<float>{13, 10, 0, 0, 12}));
}

TEST(IndexingLowerTest, GatherElementsOutOfRangeReadsZero) {
  OneNodeModel m("GatherElements", 13);
  m.input(f32, {2, 2}).input(DType::kInt32, {2, 2}).attr("axis", int64_t{1});
  std::vector<float> data = {1, 2, 3, 4};
  std::vector<int32_t> indices = {1, 7, -1, -3};
  EXPECT_EQ(m.run<float>(data, indices), (std::vector<float>{2, 0, 4, 0}));
}

TEST(IndexingLowerTest, GatherNDOutOfRangeReadsZero) {
  OneNodeModel m("GatherND", 13);
  m.input(f32, {2, 2}).input(i64, {3, 2});
  std::vector<float> data = {1, 2, 3, 4};
  std::vector<int64_t> indices = {1, 0, 2, 0, -1, -1};
  EXPECT_EQ(m.run<float>(data, indices), (std::vector<float>{3, 0, 4}));
}

TEST(IndexingLowerTest, ScatterElementsLaterDuplicateWinsAndOutOfRangeIsIgnored) {
  OneNodeModel m("ScatterElements", 13);
  m.input(f32, {4}).input(i64, {4}).input(f32, {4});
  std::vector<float> data = {1, 2, 3, 4};
  std::vector<int64_t> indices = {1, 1, 9, -1};
  std::vector<float> updates = {10, 20, 30, 40};
  EXPECT_EQ(m.run<float>(data, indices, updates), (std::vector<float>{1, 20, 3, 40}));
}

TEST(IndexingLowerTest, ScatterNDAddAccumulatesDuplicates) {
  OneNodeModel m("ScatterND", 16);
  m.input(f32, {3, 2}).input(i64, {3, 1}).input(f32, {3, 2}).attr("reduction", std::string("add"));
  std::vector<float> data = {1, 1, 1, 1, 1, 1};
  std::vector<int64_t> indices = {2, 2, -7};
  std::vector<float> updates = {1, 2, 3, 4, 5, 6};
  EXPECT_EQ(m.run<float>(data, indices, updates), (std::vector<float>{1, 1, 1, 1, 5, 7}));
}

TEST(IndexingLowerTest, ScatterElementsMinOnIntegers) {
  OneNodeModel m("ScatterElements", 18);
  m.input(DType::kInt32, {3}).input(i64, {2}).input(DType::kInt32, {2}).attr("reduction", std::string("min"));
  std::vector<int32_t> data = {5, 5, 5};
  std::vector<int64_t> indices = {0, 2};
  std::vector<int32_t> updates = {3, 9};
  EXPECT_EQ(m.run<int32_t>(data, indices, updates), (std::vector<int32_t>{3, 5, 5}));
}

TEST(IndexingLowerTest, OneHotWrapsNegativeIndicesAndIgnoresOutOfRange) {
  OneNodeModel m("OneHot", 11);
  m.input(i64, {3}).constantInput(int64Tensor({3})).input(f32, {2});
  std::vector<int64_t> indices = {-1, 1, 5};
  std::vector<float> values = {0, 7};
  EXPECT_EQ(m.run<float>(indices, values), (std::vector<float>{0, 0, 7, 0, 7, 0, 0, 0, 0}));
}

}  // namespace
}  // namespace kiln::ops
