// Lowerings on the reference evaluator for corners the ONNX backend cases
// do not reach: integer division, half precision, legacy broadcasting,
// opset-11 Softmax, runtime Clip bounds, empty Concat inputs.
#include <gtest/gtest.h>

#include <cstring>

#include "compiler/support/half.h"
#include "tests/ops/node_fixture.h"

namespace kiln::ops {
namespace {

using ir::DType;
using testing::OneNodeModel;

TEST(LowerTest, IntegerDivisionTruncatesTowardZero) {
  OneNodeModel m("Div", 14);
  m.input(DType::kInt32, {4}).input(DType::kInt32, {4});
  std::vector<int32_t> a = {7, -7, 7, -7};
  std::vector<int32_t> b = {2, 2, -2, -2};
  EXPECT_EQ(m.run<int32_t>(a, b), (std::vector<int32_t>{3, -3, -3, 3}));
}

TEST(LowerTest, HalfPrecisionAddComputesInFloat) {
  OneNodeModel m("Add", 14);
  m.input(DType::kFloat16, {2}).input(DType::kFloat16, {1});
  std::vector<uint16_t> a = {floatToHalf(1.5f), floatToHalf(-2.0f)};
  std::vector<uint16_t> b = {floatToHalf(0.25f)};
  std::vector<uint16_t> y = m.run<uint16_t>(a, b);
  ASSERT_EQ(y.size(), 2u);
  EXPECT_EQ(halfToFloat(y[0]), 1.75f);
  EXPECT_EQ(halfToFloat(y[1]), -1.75f);
}

TEST(LowerTest, LegacyBroadcastAlignsBAtAxis) {
  OneNodeModel m("Add", 6);
  m.input(DType::kFloat32, {2, 3}).input(DType::kFloat32, {2}).attr("broadcast", 1).attr("axis", 0);
  std::vector<float> a = {0, 0, 0, 1, 1, 1};
  std::vector<float> b = {10, 20};
  EXPECT_EQ(m.run<float>(a, b), (std::vector<float>{10, 10, 10, 21, 21, 21}));
}

TEST(LowerTest, SoftmaxBeforeOpset13NormalizesTheFlattenedTail) {
  OneNodeModel m("Softmax", 11);
  m.input(DType::kFloat32, {1, 2, 2}).attr("axis", 1);
  std::vector<float> x = {0, 0, 0, 0};
  for (float v : m.run<float>(x)) EXPECT_FLOAT_EQ(v, 0.25f);  // over all 4, not per row of 2
}

TEST(LowerTest, ClipWithRuntimeMaxOnly) {
  OneNodeModel m("Clip", 13);
  m.input(DType::kInt64, {3}).omittedInput().input(DType::kInt64, {});
  std::vector<int64_t> x = {-5, 5, 50};
  std::vector<int64_t> hi = {10};
  EXPECT_EQ(m.run<int64_t>(x, hi), (std::vector<int64_t>{-5, 5, 10}));
}

TEST(LowerTest, ConcatSkipsEmptyInputs) {
  OneNodeModel m("Concat", 13);
  m.input(DType::kFloat32, {0, 2}).input(DType::kFloat32, {1, 2}).attr("axis", 0);
  std::vector<float> empty;
  std::vector<float> b = {3, 4};
  EXPECT_EQ(m.run<float>(empty, b), (std::vector<float>{3, 4}));
}

TEST(LowerTest, MatMulVectorTimesBatchedMatrix) {
  OneNodeModel m("MatMul", 13);
  m.input(DType::kFloat32, {2}).input(DType::kFloat32, {2, 2, 1});
  std::vector<float> a = {1, 2};
  std::vector<float> b = {3, 4, 5, 6};
  EXPECT_EQ(m.run<float>(a, b), (std::vector<float>{11, 17}));  // shape 2x1
}

TEST(LowerTest, AveragePoolCeilModeCountsOnlyInsidePositions) {
  OneNodeModel m("AveragePool", 11);
  m.input(DType::kFloat32, {1, 1, 5}).attr("kernel_shape", std::vector<int64_t>{2});
  m.attr("strides", std::vector<int64_t>{2}).attr("ceil_mode", 1);
  std::vector<float> x = {1, 3, 5, 7, 9};
  EXPECT_EQ(m.run<float>(x), (std::vector<float>{2, 6, 9}));  // last window holds only x[4]
}

}  // namespace
}  // namespace kiln::ops
