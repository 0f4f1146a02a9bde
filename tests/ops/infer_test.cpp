// Shape and type inference of each op, and the errors it gives.
#include <gtest/gtest.h>

#include "kiln_runtime.h"
#include "tests/ops/node_fixture.h"

namespace kiln::ops {
namespace {

using ir::DType;
using testing::messageOf;
using testing::OneNodeGraph;

constexpr DType f32 = DType::kFloat32;

// The message of a failed inference, or "ok".

// ---- Elementwise ----------------------------------------------------------------

TEST(InferElementwiseTest, NumpyBroadcasting) {
  OneNodeGraph g("Add");
  g.input(f32, "3x1x5").input(f32, "4x5");
  ASSERT_EQ(messageOf(g.infer()), "ok");
  EXPECT_EQ(g.outputShape(), "3x4x5");
  EXPECT_EQ(g.outputType().dtype, f32);
}

TEST(InferElementwiseTest, SymbolicDimsBroadcast) {
  OneNodeGraph g("Mul");
  g.input(f32, "batchx1x8").input(f32, "batchx7x1");
  ASSERT_EQ(messageOf(g.infer()), "ok");
  EXPECT_EQ(g.outputShape(), "batchx7x8");
  OneNodeGraph h("Sub");
  h.input(f32, "batchx8").input(f32, "8");
  ASSERT_EQ(messageOf(h.infer()), "ok");
  EXPECT_EQ(h.outputShape(), "batchx8");
}

TEST(InferElementwiseTest, MismatchNamesTheShapes) {
  OneNodeGraph g("Add", "sum");
  g.input(f32, "2x3").input(f32, "4x3");
  EXPECT_EQ(messageOf(g.infer()), "Add 'sum': shapes 2x3, 4x3 do not broadcast (dim 0: 2 vs 4)");
}

TEST(InferElementwiseTest, DTypesMustAgree) {
  OneNodeGraph g("Div", "d");
  g.input(f32, "2").input(DType::kInt64, "2");
  EXPECT_EQ(messageOf(g.infer()), "Div 'd': B has dtype int64, expected float32 like input 0 (input 1)");
}

TEST(InferElementwiseTest, IntegersAreAllowedForArithmeticNotForExp) {
  OneNodeGraph div("Div");
  div.input(DType::kInt32, "4").input(DType::kInt32, "4");
  EXPECT_EQ(messageOf(div.infer()), "ok");
  OneNodeGraph e("Exp", "e");
  e.input(DType::kInt32, "4");
  EXPECT_EQ(messageOf(e.infer()), "Exp 'e': X has dtype int32, expected a float type (input 0)");
}

TEST(InferElementwiseTest, LegacyBroadcastAtAxis) {
  OneNodeGraph g("Add");
  g.input(f32, "2x3x4x5").input(f32, "3x4").integer("broadcast", 1).integer("axis", 1);
  ASSERT_EQ(messageOf(g.infer(6)), "ok");
  EXPECT_EQ(g.outputShape(), "2x3x4x5");
  OneNodeGraph strict("Add", "a");
  strict.input(f32, "2x3").input(f32, "3");
  EXPECT_NE(messageOf(strict.infer(6)).find("broadcast=0"), std::string::npos);
}

TEST(InferElementwiseTest, UnaryKeepsShape) {
  OneNodeGraph g("LeakyRelu");
  g.input(DType::kFloat16, "nx3").real("alpha", 0.2f);
  ASSERT_EQ(messageOf(g.infer(16)), "ok");
  EXPECT_EQ(g.outputType().toString(), "float16[nx3]");
}

TEST(InferElementwiseTest, ClipBoundsBecameInputsInOpset11) {
  OneNodeGraph old("Clip");
  old.input(f32, "3").real("min", 0).real("max", 6);
  EXPECT_EQ(messageOf(old.infer(6)), "ok");
  OneNodeGraph now("Clip", "c");
  now.input(f32, "3").real("min", 0);
  EXPECT_EQ(messageOf(now.infer(13)), "Clip 'c': attribute 'min' is input 1 since opset 11");
  OneNodeGraph inputs("Clip", "c");
  inputs.input(DType::kInt8, "3").omittedInput().input(DType::kInt8, "scalar");
  EXPECT_EQ(messageOf(inputs.infer(13)), "ok");
  OneNodeGraph vector_bound("Clip", "c");
  vector_bound.input(f32, "3").input(f32, "2");
  EXPECT_EQ(messageOf(vector_bound.infer(13)), "Clip 'c': min must be a scalar, got shape 2 (input 1)");
}

// ---- MatMul / Gemm ---------------------------------------------------------------

TEST(InferMatMulTest, NumpySemantics) {
  struct Case { const char* a; const char* b; const char* out; };
  for (Case c : {Case{"3x4", "4x5", "3x5"}, Case{"4", "4x5", "5"}, Case{"3x4", "4", "3"}, Case{"4", "4", "scalar"},
                 Case{"2x1x3x4", "7x4x5", "2x7x3x5"}, Case{"batchx3x4", "4x5", "batchx3x5"}}) {
    OneNodeGraph g("MatMul");
    g.input(f32, c.a).input(f32, c.b);
    ASSERT_EQ(messageOf(g.infer()), "ok") << c.a << " @ " << c.b;
    EXPECT_EQ(g.outputShape(), c.out) << c.a << " @ " << c.b;
  }
}

TEST(InferMatMulTest, InnerDimsMustAgree) {
  OneNodeGraph g("MatMul", "mm");
  g.input(f32, "3x4").input(f32, "5x6");
  EXPECT_EQ(messageOf(g.infer()), "MatMul 'mm': A 3x4 has K=4 but B 5x6 has K=5");
}

TEST(InferGemmTest, TransposesAndBias) {
  OneNodeGraph g("Gemm");
  g.input(f32, "4x3").input(f32, "5x4").input(f32, "5").integer("transA", 1).integer("transB", 1);
  ASSERT_EQ(messageOf(g.infer()), "ok");
  EXPECT_EQ(g.outputShape(), "3x5");
  OneNodeGraph bad("Gemm", "fc");
  bad.input(f32, "3x4").input(f32, "4x5").input(f32, "3");
  EXPECT_EQ(messageOf(bad.infer()), "Gemm 'fc': C 3 does not broadcast to the result 3x5 (input 2)");
  OneNodeGraph rank("Gemm", "fc");
  rank.input(f32, "3x4x1").input(f32, "4x5");
  EXPECT_EQ(messageOf(rank.infer()), "Gemm 'fc': A has rank 3, expected 2 (input 0)");
}

TEST(InferGemmTest, BiasOptionalFromOpset11) {
  OneNodeGraph g("Gemm", "fc");
  g.input(f32, "3x4").input(f32, "4x5");
  EXPECT_EQ(messageOf(g.infer(11)), "ok");
  EXPECT_EQ(messageOf(g.infer(9)), "Gemm 'fc': expects 3 inputs, got 2");
}

// ---- Conv -------------------------------------------------------------------------

TEST(InferConvTest, WeightRankError) {
  OneNodeGraph g("Conv", "layer3/conv1");
  g.input(f32, "1x3x8x8").input(f32, "4x3x3");
  EXPECT_EQ(messageOf(g.infer()), "Conv 'layer3/conv1': weight has rank 3, expected 4 (input 1)");
}

TEST(InferConvTest, PadsStridesDilations) {
  OneNodeGraph g("Conv");
  g.input(f32, "batchx3x32x30").input(f32, "16x3x3x5").input(f32, "16");
  g.ints("pads", {1, 2, 1, 2}).ints("strides", {2, 1}).ints("dilations", {1, 2});
  ASSERT_EQ(messageOf(g.infer()), "ok");
  // H: (32 + 2 - 3) / 2 + 1 = 16; W: (30 + 4 - 9) / 1 + 1 = 26
  EXPECT_EQ(g.outputShape(), "batchx16x16x26");
}

TEST(InferConvTest, AutoPadSame) {
  OneNodeGraph g("Conv");
  g.input(f32, "1x1x7x7").input(f32, "2x1x3x3").string("auto_pad", "SAME_UPPER").ints("strides", {2, 2});
  ASSERT_EQ(messageOf(g.infer()), "ok");
  EXPECT_EQ(g.outputShape(), "1x2x4x4");
  OneNodeGraph bad("Conv", "c");
  bad.input(f32, "1x1x7x7").input(f32, "2x1x3x3").string("auto_pad", "SAME");
  EXPECT_EQ(messageOf(bad.infer()),
            "Conv 'c': auto_pad 'SAME' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID");
}

TEST(InferConvTest, Groups) {
  OneNodeGraph g("Conv");
  g.input(f32, "1x8x5").input(f32, "4x2x3").integer("group", 4);
  ASSERT_EQ(messageOf(g.infer()), "ok");
  EXPECT_EQ(g.outputShape(), "1x4x3");
  OneNodeGraph bad("Conv", "c");
  bad.input(f32, "1x8x5").input(f32, "4x4x3").integer("group", 4);
  EXPECT_EQ(messageOf(bad.infer()), "Conv 'c': weight 4x4x3 expects 16 input channels, X 1x8x5 has 8");
}

TEST(InferConvTest, WindowLargerThanInput) {
  OneNodeGraph g("Conv", "c");
  g.input(f32, "1x1x2x2").input(f32, "1x1x3x3");
  EXPECT_NE(messageOf(g.infer()).find("smaller than the window"), std::string::npos);
}

// ---- Pooling ------------------------------------------------------------------------

TEST(InferPoolTest, MaxPoolWithIndices) {
  OneNodeGraph g("MaxPool");
  g.input(f32, "1x3x8x8").ints("kernel_shape", {2, 2}).ints("strides", {2, 2}).outputs(2);
  ASSERT_EQ(messageOf(g.infer(12)), "ok");
  EXPECT_EQ(g.outputShape(0), "1x3x4x4");
  EXPECT_EQ(g.outputType(1).toString(), "int64[1x3x4x4]");
}

TEST(InferPoolTest, CeilModeDropsWindowStartingInRightPadding) {
  OneNodeGraph g("MaxPool");
  g.input(f32, "1x1x5").ints("kernel_shape", {2}).ints("strides", {2}).integer("ceil_mode", 1);
  ASSERT_EQ(messageOf(g.infer(12)), "ok");
  EXPECT_EQ(g.outputShape(), "1x1x3");
  // ceil((5 + 2 - 2) / 2) + 1 = 4, but window 4 would start at 6 - 1 = 5: all padding.
  OneNodeGraph padded("MaxPool");
  padded.input(f32, "1x1x5").ints("kernel_shape", {2}).ints("strides", {2}).ints("pads", {1, 1});
  padded.integer("ceil_mode", 1);
  ASSERT_EQ(messageOf(padded.infer(12)), "ok");
  EXPECT_EQ(padded.outputShape(), "1x1x3");
}

TEST(InferPoolTest, KernelShapeLengthMustMatch) {
  OneNodeGraph g("AveragePool", "p");
  g.input(f32, "1x3x8x8").ints("kernel_shape", {2});
  EXPECT_EQ(messageOf(g.infer(11)), "AveragePool 'p': kernel_shape has 1 values, expected 2 (one per spatial dim of X)");
}

TEST(InferPoolTest, GlobalPools) {
  OneNodeGraph g("GlobalAveragePool");
  g.input(f32, "nx3x7x7");
  ASSERT_EQ(messageOf(g.infer()), "ok");
  EXPECT_EQ(g.outputShape(), "nx3x1x1");
}

// ---- Normalization -----------------------------------------------------------------

TEST(InferNormalizationTest, BatchNorm) {
  OneNodeGraph g("BatchNormalization");
  g.input(f32, "2x3x4x4");
  for (int i = 0; i < 4; ++i) g.input(f32, "3");
  ASSERT_EQ(messageOf(g.infer(15)), "ok");
  EXPECT_EQ(g.outputShape(), "2x3x4x4");
}

TEST(InferNormalizationTest, BatchNormChannelMismatch) {
  OneNodeGraph g("BatchNormalization", "bn");
  g.input(f32, "2x3x4x4").input(f32, "4");
  for (int i = 0; i < 3; ++i) g.input(f32, "3");
  EXPECT_EQ(messageOf(g.infer(15)),
            "BatchNormalization 'bn': scale has 4 elements, expected 3 (one per channel of X 2x3x4x4, input 1)");
}

TEST(InferNormalizationTest, BatchNormTrainingOutputsRunningStatistics) {
  OneNodeGraph g("BatchNormalization", "bn");
  g.input(f32, "2x3x4x4");
  for (int i = 0; i < 4; ++i) g.input(f32, "3");
  g.integer("training_mode", 1).outputs(3);
  ASSERT_EQ(messageOf(g.infer(15)), "ok");
  EXPECT_EQ(g.outputShape(1), "3");
  EXPECT_EQ(g.outputShape(2), "3");
  // Before opset 14 the extra outputs were the saved statistics of an older training form.
  OneNodeGraph old("BatchNormalization", "bn");
  old.input(f32, "2x3x4x4");
  for (int i = 0; i < 4; ++i) old.input(f32, "3");
  old.outputs(3);
  EXPECT_EQ(old.infer(9).kind(), ErrorKind::kUnsupported);
  OneNodeGraph inference("BatchNormalization", "bn");
  inference.input(f32, "2x3x4x4");
  for (int i = 0; i < 4; ++i) inference.input(f32, "3");
  inference.outputs(3);
  EXPECT_EQ(inference.infer(15).kind(), ErrorKind::kUnsupported);
}

TEST(InferNormalizationTest, SoftmaxAxis) {
  OneNodeGraph g("Softmax", "sm");
  g.input(f32, "2x3").integer("axis", 2);
  EXPECT_EQ(messageOf(g.infer()), "Softmax 'sm': axis 2 is out of range for rank 2");
  OneNodeGraph ok("LogSoftmax");
  ok.input(f32, "2x3").integer("axis", -2);
  ASSERT_EQ(messageOf(ok.infer()), "ok");
  EXPECT_EQ(ok.outputShape(), "2x3");
}

// ---- Shape ops -------------------------------------------------------------------------

TEST(InferShapeOpsTest, ReshapeZeroAndMinusOne) {
  OneNodeGraph g("Reshape");
  g.input(f32, "batchx3x4").constantInput(testing::int64Tensor({0, -1}));
  ASSERT_EQ(messageOf(g.infer(14)), "ok");
  EXPECT_EQ(g.outputShape(), "batchx12");
  OneNodeGraph known("Reshape");
  known.input(f32, "2x3x4").constantInput(testing::int64Tensor({0, -1, 2}));
  ASSERT_EQ(messageOf(known.infer(14)), "ok");
  EXPECT_EQ(known.outputShape(), "2x6x2");
  OneNodeGraph zero("Reshape");
  zero.input(f32, "0x3").constantInput(testing::int64Tensor({3, 0})).integer("allowzero", 1);
  ASSERT_EQ(messageOf(zero.infer(14)), "ok");
  EXPECT_EQ(zero.outputShape(), "3x0");
}

// A target shape computed at run time leaves the output's dims open (the
// lowering reads them into dim slots); its rank is the target's length.
TEST(InferShapeOpsTest, ReshapeToARunTimeShapeKnowsOnlyTheRank) {
  OneNodeGraph g("Reshape", "r");
  g.input(f32, "2x3").input(DType::kInt64, "2");
  ASSERT_EQ(messageOf(g.infer(13)), "ok");
  EXPECT_EQ(g.outputShape(), "?x?");
}

// A run-time target's length is the output's rank: held to ir::kMaxRank, the
// runtime's KILN_MAX_RANK (libFuzzer found a length of 2^40).
TEST(InferShapeOpsTest, ReshapeToARunTimeShapeOfTooManyEntries) {
  static_assert(ir::kMaxRank == KILN_MAX_RANK);
  OneNodeGraph g("Reshape", "r");
  g.input(f32, "2x3").input(DType::kInt64, "1099511627776");
  EXPECT_EQ(messageOf(g.infer(13)), "Reshape 'r': the target shape (input 1) has 1099511627776 entries; a shape has at most 16");
  OneNodeGraph expand("Expand", "e");
  expand.input(f32, "2x3").input(DType::kInt64, "17");
  EXPECT_EQ(messageOf(expand.infer(13)), "Expand 'e': shape (input 1) has 17 entries; a shape has at most 16");
}

TEST(InferShapeOpsTest, ReshapeCountMismatch) {
  OneNodeGraph g("Reshape", "r");
  g.input(f32, "2x3").constantInput(testing::int64Tensor({4, 2}));
  EXPECT_EQ(messageOf(g.infer(13)), "Reshape 'r': cannot reshape 2x3 into 4x2: element counts differ");
  OneNodeGraph legacy("Reshape");
  legacy.input(f32, "2x3").ints("shape", {3, 2});
  ASSERT_EQ(messageOf(legacy.infer(1)), "ok");
  EXPECT_EQ(legacy.outputShape(), "3x2");
}

// Known dims whose product overflows int64 beside a -1 (libFuzzer found one).
TEST(InferShapeOpsTest, ReshapeTargetTooLargeToCount) {
  OneNodeGraph g("Reshape", "r");
  g.input(f32, "2x3").constantInput(testing::int64Tensor({4211080960, -1, 71776115034685443}));
  EXPECT_EQ(messageOf(g.infer(14)),
            "Reshape 'r': the target shape 4211080960x?x71776115034685443 holds more elements than int64 counts");
}

TEST(InferShapeOpsTest, Flatten) {
  OneNodeGraph g("Flatten");
  g.input(f32, "2x3x4x5").integer("axis", -1);
  ASSERT_EQ(messageOf(g.infer()), "ok");
  EXPECT_EQ(g.outputShape(), "24x5");
  OneNodeGraph zero("Flatten");
  zero.input(f32, "2x3").integer("axis", 0);
  ASSERT_EQ(messageOf(zero.infer()), "ok");
  EXPECT_EQ(zero.outputShape(), "1x6");
}

TEST(InferShapeOpsTest, Transpose) {
  OneNodeGraph g("Transpose");
  g.input(f32, "2x3x4");
  ASSERT_EQ(messageOf(g.infer()), "ok");
  EXPECT_EQ(g.outputShape(), "4x3x2");
  OneNodeGraph perm("Transpose", "t");
  perm.input(f32, "2x3x4").ints("perm", {0, 0, 1});
  EXPECT_EQ(messageOf(perm.infer()),
            "Transpose 't': perm has 3 entries that are not a permutation of the 3 dims of the input");
}

TEST(InferShapeOpsTest, Concat) {
  OneNodeGraph g("Concat");
  g.input(f32, "2x3").input(f32, "2x5").integer("axis", -1);
  ASSERT_EQ(messageOf(g.infer()), "ok");
  EXPECT_EQ(g.outputShape(), "2x8");
  OneNodeGraph bad("Concat", "cat");
  bad.input(f32, "2x3").input(f32, "4x5").integer("axis", 1);
  EXPECT_EQ(messageOf(bad.infer()),
            "Concat 'cat': input 1 4x5 differs from input 0 in dim 0 (only the concat axis 1 may differ)");
  OneNodeGraph no_axis("Concat", "cat");
  no_axis.input(f32, "2x3");
  EXPECT_EQ(messageOf(no_axis.infer()), "Concat 'cat': missing required attribute 'axis'");
}

TEST(InferShapeOpsTest, ConstantRecordsItsValue) {
  OneNodeGraph g("Constant");
  g.ints("value_ints", {3, 1, 4});
  ASSERT_EQ(messageOf(g.infer()), "ok");
  EXPECT_EQ(g.outputType().toString(), "int64[3]");
  ASSERT_TRUE(g.node().outputs[0]->constant.has_value());
  EXPECT_EQ(g.node().outputs[0]->constant->toInts(), (std::vector<int64_t>{3, 1, 4}));
  OneNodeGraph none("Constant", "k");
  EXPECT_EQ(messageOf(none.infer()), "Constant 'k': has no value attribute (value, value_float(s), value_int(s))");
}

}  // namespace
}  // namespace kiln::ops
