// The reduce family (compiler/ops/reduce.cpp): inference and its errors, and,
// on the reference evaluator, corners the ONNX backend cases miss: empty
// reductions, noop_with_empty_axes, constant axes inputs, log-sum-exp of large
// values, integer means, NaN in ArgMax, exclusive reverse CumSum.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "tests/ops/node_fixture.h"

namespace kiln::ops {
namespace {

using ir::DType;
using testing::int64Tensor;
using testing::messageOf;
using testing::OneNodeGraph;
using testing::OneNodeModel;

constexpr DType f32 = DType::kFloat32;

// ---- Inference -------------------------------------------------------------------

TEST(ReduceInferTest, KeepdimsAndAxes) {
  OneNodeGraph keep("ReduceMean");
  keep.input(f32, "batchx3x4").ints("axes", {-1});
  ASSERT_EQ(messageOf(keep.infer(13)), "ok");
  EXPECT_EQ(keep.outputShape(), "batchx3x1");

  OneNodeGraph drop("ReduceMax");
  drop.input(f32, "batchx3x4").ints("axes", {0, 2}).integer("keepdims", 0);
  ASSERT_EQ(messageOf(drop.infer(13)), "ok");
  EXPECT_EQ(drop.outputShape(), "3");

  OneNodeGraph all("ReduceProd");
  all.input(DType::kInt32, "2x3").integer("keepdims", 0);
  ASSERT_EQ(messageOf(all.infer(13)), "ok");
  EXPECT_EQ(all.outputShape(), "scalar");
  EXPECT_EQ(all.outputType().dtype, DType::kInt32);
}

TEST(ReduceInferTest, AxesInputAtRunTime) {
  OneNodeGraph runtime("ReduceSum", "s");
  runtime.input(f32, "2x3").input(DType::kInt64, "1");
  ASSERT_EQ(messageOf(runtime.infer(13)), "ok");
  EXPECT_EQ(runtime.outputShape(), "?x?");  // keepdims: the rank stays, which dim is 1 is read at run time
  OneNodeGraph dropped("ReduceMax");
  dropped.input(f32, "2x3x4").input(DType::kInt64, "2").integer("keepdims", 0);
  ASSERT_EQ(messageOf(dropped.infer(18)), "ok");
  EXPECT_EQ(dropped.outputShape(), "?");
  OneNodeGraph mean("ReduceMean", "m");  // its result depends on the reduced count
  mean.input(f32, "2x3").input(DType::kInt64, "1");
  EXPECT_EQ(messageOf(mean.infer(18)),
            "ReduceMean 'm': axes (input 1) is computed at run time; Kiln reads it at run time only for ReduceSum, "
            "ReduceMax, ReduceMin, ReduceProd, ReduceL1 and ReduceSumSquare");

  OneNodeGraph constant("ReduceL2");
  constant.input(f32, "2x3x4").constantInput(int64Tensor({1}));
  ASSERT_EQ(messageOf(constant.infer(18)), "ok");
  EXPECT_EQ(constant.outputShape(), "2x1x4");

  OneNodeGraph noop("ReduceSum");
  noop.input(f32, "2x3").integer("noop_with_empty_axes", 1);
  ASSERT_EQ(messageOf(noop.infer(13)), "ok");
  EXPECT_EQ(noop.outputShape(), "2x3");
}

TEST(ReduceInferTest, AxesErrors) {
  OneNodeGraph twice("ReduceSum", "s");
  twice.input(f32, "2x3").ints("axes", {1, -1});
  EXPECT_EQ(messageOf(twice.infer(11)), "ReduceSum 's': axes lists dim 1 twice");

  OneNodeGraph late_attr("ReduceMean", "m");
  late_attr.input(f32, "2x3").ints("axes", {1});
  EXPECT_EQ(messageOf(late_attr.infer(18)), "ReduceMean 'm': axes is input 1 since opset 18, not an attribute");

  OneNodeGraph early_input("ReduceMean", "m");
  early_input.input(f32, "2x3").constantInput(int64Tensor({1}));
  EXPECT_NE(messageOf(early_input.infer(13)), "ok");
}

TEST(ReduceInferTest, BoolOnlyForMaxMinFromOpset20) {
  OneNodeGraph max20("ReduceMax");
  max20.input(DType::kBool, "4");
  EXPECT_EQ(messageOf(max20.infer(20)), "ok");
  OneNodeGraph max18("ReduceMax");
  max18.input(DType::kBool, "4");
  EXPECT_NE(messageOf(max18.infer(18)), "ok");
  OneNodeGraph sum("ReduceSum");
  sum.input(DType::kBool, "4");
  EXPECT_NE(messageOf(sum.infer(20)), "ok");
}

TEST(ReduceInferTest, ArgMaxShapes) {
  OneNodeGraph keep("ArgMax");
  keep.input(f32, "2x3x4").integer("axis", -2);
  ASSERT_EQ(messageOf(keep.infer(13)), "ok");
  EXPECT_EQ(keep.outputShape(), "2x1x4");
  EXPECT_EQ(keep.outputType().dtype, DType::kInt64);

  OneNodeGraph drop("ArgMin");
  drop.input(f32, "2x3x4").integer("keepdims", 0);
  ASSERT_EQ(messageOf(drop.infer(13)), "ok");
  EXPECT_EQ(drop.outputShape(), "3x4");

  OneNodeGraph empty("ArgMax", "a");
  empty.input(f32, "0x3");
  EXPECT_EQ(messageOf(empty.infer(13)),
            "ArgMax 'a': data 0x3 has no elements along axis 0, so there is no extreme to take the index of");
}

TEST(ReduceInferTest, CumSumAxisAtRunTime) {
  OneNodeGraph g("CumSum", "c");
  g.input(f32, "5").input(DType::kInt64, "scalar");
  ASSERT_EQ(messageOf(g.infer(14)), "ok");
  EXPECT_EQ(g.outputShape(), "5");
  OneNodeGraph bad("CumSum", "c");
  bad.input(f32, "5").input(f32, "scalar");
  EXPECT_EQ(messageOf(bad.infer(14)), "CumSum 'c': axis must be an int32/int64 scalar (input 1)");
  OneNodeGraph h("CumSum");
  h.input(f32, "2x5").constantInput(int64Tensor({-1}));
  ASSERT_EQ(messageOf(h.infer(14)), "ok");
  EXPECT_EQ(h.outputShape(), "2x5");
}

// ---- Evaluation ------------------------------------------------------------------

TEST(ReduceEvalTest, EmptyReductionsGiveTheIdentity) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> none;
  struct Case {
    const char* op;
    float expected;
  };
  for (Case c : {Case{"ReduceSum", 0.0f}, Case{"ReduceProd", 1.0f}, Case{"ReduceMax", -inf}, Case{"ReduceMin", inf},
                 Case{"ReduceLogSum", -inf}, Case{"ReduceLogSumExp", -inf}, Case{"ReduceSumSquare", 0.0f},
                 Case{"ReduceL2", 0.0f}}) {
    OneNodeModel m(c.op, 12);
    m.input(f32, {2, 0}).attr("axes", std::vector<int64_t>{1});
    EXPECT_EQ(m.run<float>(none), (std::vector<float>{c.expected, c.expected})) << c.op;
  }
  OneNodeModel mean("ReduceMean", 13);
  mean.input(f32, {0}).attr("keepdims", 0);
  std::vector<float> result = mean.run<float>(none);
  ASSERT_EQ(result.size(), 1u);
  EXPECT_TRUE(std::isnan(result[0]));
}

TEST(ReduceEvalTest, NoopWithEmptyAxesMapsEachElement) {
  OneNodeModel m("ReduceSumSquare", 18);
  m.input(f32, {3}).attr("noop_with_empty_axes", 1);
  EXPECT_EQ(m.run<float>(std::vector<float>{1, -2, 3}), (std::vector<float>{1, 4, 9}));
}

TEST(ReduceEvalTest, ConstantAxesInput) {
  OneNodeModel m("ReduceMax", 18);
  m.input(f32, {2, 3}).constantInput(int64Tensor({0})).attr("keepdims", 0);
  EXPECT_EQ(m.run<float>(std::vector<float>{1, 5, 3, 4, 2, 6}), (std::vector<float>{4, 5, 6}));
}

TEST(ReduceEvalTest, BoolMaxIsAnyMinIsAll) {
  std::vector<uint8_t> x = {0, 1, 0, 0, 0, 0};
  OneNodeModel any("ReduceMax", 20);
  any.input(DType::kBool, {2, 3}).constantInput(int64Tensor({1})).attr("keepdims", 0);
  EXPECT_EQ(any.run<uint8_t>(x), (std::vector<uint8_t>{1, 0}));
  OneNodeModel all("ReduceMin", 20);
  all.input(DType::kBool, {2, 3}).constantInput(int64Tensor({1})).attr("keepdims", 0);
  EXPECT_EQ(all.run<uint8_t>(std::vector<uint8_t>{1, 1, 1, 1, 0, 1}), (std::vector<uint8_t>{1, 0}));
}

TEST(ReduceEvalTest, LogSumExpOfLargeValuesDoesNotOverflow) {
  OneNodeModel m("ReduceLogSumExp", 13);
  m.input(f32, {2, 2}).attr("axes", std::vector<int64_t>{1});
  std::vector<float> result = m.run<float>(std::vector<float>{1000, 1000, -1000, -1000});
  ASSERT_EQ(result.size(), 2u);
  EXPECT_NEAR(result[0], 1000 + std::log(2.0f), 1e-3);
  EXPECT_NEAR(result[1], -1000 + std::log(2.0f), 1e-3);
}

TEST(ReduceEvalTest, IntegerMeanTruncatesTowardZero) {
  OneNodeModel m("ReduceMean", 13);
  m.input(DType::kInt32, {2, 2}).attr("axes", std::vector<int64_t>{1});
  EXPECT_EQ(m.run<int32_t>(std::vector<int32_t>{1, 2, -1, -2}), (std::vector<int32_t>{1, -1}));
}

TEST(ReduceEvalTest, ArgMaxTiesAndNaN) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> x = {3, 1, 3, 2, nan, 5};
  OneNodeModel first("ArgMax", 13);
  first.input(f32, {2, 3}).attr("axis", 1).attr("keepdims", 0);
  EXPECT_EQ(first.run<int64_t>(x), (std::vector<int64_t>{0, 1}));
  OneNodeModel last("ArgMax", 13);
  last.input(f32, {2, 3}).attr("axis", 1).attr("keepdims", 0).attr("select_last_index", 1);
  EXPECT_EQ(last.run<int64_t>(x), (std::vector<int64_t>{2, 1}));
  OneNodeModel min("ArgMin", 13);
  min.input(DType::kInt32, {4});
  EXPECT_EQ(min.run<int64_t>(std::vector<int32_t>{4, -7, 2, -7}), (std::vector<int64_t>{1}));
}

TEST(ReduceEvalTest, CumSumExclusiveReverse) {
  OneNodeModel m("CumSum", 14);
  m.input(DType::kInt64, {2, 3}).constantInput(int64Tensor({1})).attr("exclusive", 1).attr("reverse", 1);
  EXPECT_EQ(m.run<int64_t>(std::vector<int64_t>{1, 2, 3, 4, 5, 6}), (std::vector<int64_t>{5, 3, 0, 11, 6, 0}));
}

}  // namespace
}  // namespace kiln::ops
