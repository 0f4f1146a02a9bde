// The math family (compiler/ops/math.cpp): inference and its errors, and, on
// the reference evaluator, corners the ONNX backend cases miss: Python-style
// integer Mod, mixed-dtype Pow, legacy and pre-opset-8 broadcasting, Dropout's
// training_mode, Softplus for large inputs, half precision.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "compiler/support/half.h"
#include "tests/ops/node_fixture.h"

namespace kiln::ops {
namespace {

using ir::DType;
using testing::messageOf;
using testing::OneNodeGraph;
using testing::OneNodeModel;

constexpr DType f32 = DType::kFloat32;

ir::Tensor boolScalar(bool value) {
  uint8_t byte = value;
  return ir::Tensor::fromValues<uint8_t>(DType::kBool, {}, std::span<const uint8_t>(&byte, 1));
}

// ---- Inference -------------------------------------------------------------------

TEST(MathInferTest, UnaryKeepsShapeAndDType) {
  for (const char* op : {"Ceil", "Sin", "Atanh", "Softplus", "HardSwish", "Mish"}) {
    OneNodeGraph g(op);
    g.input(DType::kFloat16, "batchx3");
    ASSERT_EQ(messageOf(g.infer(18)), "ok") << op;
    EXPECT_EQ(g.outputShape(), "batchx3") << op;
    EXPECT_EQ(g.outputType().dtype, DType::kFloat16) << op;
  }
}

TEST(MathInferTest, FloatOnlyOpsRejectIntegers) {
  OneNodeGraph g("Cos", "c");
  g.input(DType::kInt32, "2");
  EXPECT_EQ(messageOf(g.infer()), "Cos 'c': X has dtype int32, expected a float type (input 0)");
}

TEST(MathInferTest, SignAndShrinkAcceptIntegers) {
  for (const char* op : {"Sign", "Shrink", "Erf"}) {
    OneNodeGraph g(op);
    g.input(DType::kInt8, "4");
    EXPECT_EQ(messageOf(g.infer()), "ok") << op;
  }
}

TEST(MathInferTest, GeluApproximateIsChecked) {
  OneNodeGraph g("Gelu", "g");
  g.input(f32, "2").string("approximate", "fast");
  EXPECT_EQ(messageOf(g.infer(20)), "Gelu 'g': attribute approximate is 'fast', expected 'none' or 'tanh'");
}

TEST(MathInferTest, GeluPredatesOpset20) {
  OneNodeGraph g("Gelu", "g");
  g.input(f32, "2");
  EXPECT_NE(messageOf(g.infer(19)).find("predates the op's first version 20"), std::string::npos);
}

TEST(MathInferTest, PReluSlopeBroadcastsOneWay) {
  OneNodeGraph ok("PRelu");
  ok.input(f32, "2x3x4x5").input(f32, "3x1x1");
  ASSERT_EQ(messageOf(ok.infer()), "ok");
  EXPECT_EQ(ok.outputShape(), "2x3x4x5");
  OneNodeGraph bad("PRelu", "p");
  bad.input(f32, "3x4").input(f32, "2x3x4");
  EXPECT_EQ(messageOf(bad.infer()), "PRelu 'p': slope 2x3x4 does not broadcast to X 3x4 (input 1)");
}

TEST(MathInferTest, PowExponentDTypeIsFreeSinceOpset12) {
  OneNodeGraph g("Pow");
  g.input(DType::kInt64, "3").input(f32, "2x1");
  ASSERT_EQ(messageOf(g.infer(15)), "ok");
  EXPECT_EQ(g.outputShape(), "2x3");
  EXPECT_EQ(g.outputType().dtype, DType::kInt64);
  OneNodeGraph old("Pow", "p");
  old.input(f32, "3").input(DType::kFloat64, "3");
  EXPECT_EQ(messageOf(old.infer(7)), "Pow 'p': Y has dtype float64, expected float32 like input 0 (input 1)");
}

TEST(MathInferTest, FloatModNeedsFmod) {
  OneNodeGraph g("Mod", "m");
  g.input(f32, "2").input(f32, "2");
  EXPECT_EQ(messageOf(g.infer()), "Mod 'm': fmod=0 is only defined for integers; set fmod=1 for float32 inputs");
  OneNodeGraph h("Mod");
  h.input(f32, "2").input(f32, "2").integer("fmod", 1);
  EXPECT_EQ(messageOf(h.infer()), "ok");
}

TEST(MathInferTest, VariadicBroadcastsAllInputs) {
  OneNodeGraph g("Max");
  g.input(f32, "3x1").input(f32, "4").input(f32, "2x1x1");
  ASSERT_EQ(messageOf(g.infer()), "ok");
  EXPECT_EQ(g.outputShape(), "2x3x4");
}

TEST(MathInferTest, VariadicBeforeOpset8NeedsEqualShapes) {
  OneNodeGraph g("Sum", "s");
  g.input(f32, "3").input(f32, "1");
  EXPECT_EQ(messageOf(g.infer(6)),
            "Sum 's': input 1 has shape 1, expected 3 like input 0 (no broadcasting before opset 8)");
}

TEST(MathInferTest, MaxTakesIntegersOnlySinceOpset12) {
  OneNodeGraph g("Min", "m");
  g.input(DType::kInt32, "2").input(DType::kInt32, "2");
  EXPECT_EQ(messageOf(g.infer(8)), "Min 'm': input 0 has dtype int32, expected a float type (input 0)");
  EXPECT_EQ(messageOf(g.infer(12)), "ok");
}

TEST(MathInferTest, DropoutMaskIsBoolSinceOpset10) {
  OneNodeGraph g("Dropout");
  g.input(f32, "2x3").outputs(2);
  ASSERT_EQ(messageOf(g.infer(7)), "ok");
  EXPECT_EQ(g.outputType(1).dtype, f32);
  ASSERT_EQ(messageOf(g.infer(13)), "ok");
  EXPECT_EQ(g.outputType(1).dtype, DType::kBool);
  EXPECT_EQ(g.outputShape(1), "2x3");
}

TEST(MathInferTest, DropoutRefusesAConstantTrueTrainingModeUnlessRatioIsZero) {
  OneNodeGraph on("Dropout", "d");
  on.input(f32, "2").omittedInput().constantInput(boolScalar(true));
  EXPECT_EQ(messageOf(on.infer(13)),
            "Dropout 'd': training_mode (input 2) is true and ratio is not 0: dropout draws a random mask; Kiln "
            "compiles deterministic inference");
  OneNodeGraph zero("Dropout");
  zero.input(f32, "2").constantInput(testing::tensorOf<float>(f32, {}, {0.0f})).constantInput(boolScalar(true));
  EXPECT_EQ(messageOf(zero.infer(13)), "ok");
  OneNodeGraph off("Dropout");
  off.input(f32, "2").omittedInput().constantInput(boolScalar(false));
  EXPECT_EQ(messageOf(off.infer(13)), "ok");
  OneNodeGraph runtime("Dropout");
  runtime.input(f32, "2").input(f32, "scalar").input(DType::kBool, "scalar");
  EXPECT_EQ(messageOf(runtime.infer(13)), "ok");
  OneNodeGraph vector("Dropout", "d");
  vector.input(f32, "2").input(f32, "2").input(DType::kBool, "scalar");
  EXPECT_EQ(messageOf(vector.infer(13)), "Dropout 'd': ratio must be a scalar, got shape 2 (input 1)");
}

// ---- Evaluation ------------------------------------------------------------------

TEST(MathEvalTest, IntegerModTakesTheDivisorsSign) {
  OneNodeModel m("Mod", 13);
  m.input(DType::kInt32, {6}).input(DType::kInt32, {6});
  std::vector<int32_t> a = {7, -7, 7, -7, 6, 5};
  std::vector<int32_t> b = {3, 3, -3, -3, -3, 0};
  // x % 0 is 0 by Kiln's definition (no trap on run-time data).
  EXPECT_EQ(m.run<int32_t>(a, b), (std::vector<int32_t>{1, 2, -2, -1, 0, 0}));
}

TEST(MathEvalTest, FmodTakesTheDividendsSign) {
  OneNodeModel m("Mod", 13);
  m.input(DType::kInt64, {4}).input(DType::kInt64, {4}).attr("fmod", int64_t{1});
  std::vector<int64_t> a = {7, -7, 7, -7};
  std::vector<int64_t> b = {3, 3, -3, -3};
  EXPECT_EQ(m.run<int64_t>(a, b), (std::vector<int64_t>{1, -1, 1, -1}));
}

TEST(MathEvalTest, PowOfIntegersWithFloatExponentTruncates) {
  OneNodeModel m("Pow", 15);
  m.input(DType::kInt32, {4}).input(f32, {4});
  std::vector<int32_t> base = {2, 9, 2, -3};
  std::vector<float> exponent = {3, 0.5f, -1, 3};
  EXPECT_EQ(m.run<int32_t>(base, exponent), (std::vector<int32_t>{8, 3, 0, -27}));
}

TEST(MathEvalTest, PowLegacyBroadcastAtAxis) {
  OneNodeModel m("Pow", 1);
  m.input(f32, {2, 2}).input(f32, {2}).attr("broadcast", int64_t{1}).attr("axis", int64_t{0});
  std::vector<float> base = {2, 3, 2, 3};
  std::vector<float> exponent = {2, 3};
  EXPECT_EQ(m.run<float>(base, exponent), (std::vector<float>{4, 9, 8, 27}));
}

TEST(MathEvalTest, MeanOfThreeBroadcastInputs) {
  OneNodeModel m("Mean", 13);
  m.input(f32, {2}).input(f32, {1}).input(f32, {2, 1});
  std::vector<float> a = {1, 2}, b = {3}, c = {5, 8};
  EXPECT_EQ(m.run<float>(a, b, c), (std::vector<float>{3, 10.0f / 3, 4, 13.0f / 3}));
}

TEST(MathEvalTest, MaxPropagatesNaNAndHandlesUnsigned) {
  OneNodeModel m("Max", 13);
  m.input(f32, {2}).input(f32, {2});
  float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> y = m.run<float>(std::vector<float>{1, nan}, std::vector<float>{nan, 1});
  ASSERT_EQ(y.size(), 2u);
  EXPECT_TRUE(std::isnan(y[0]) && std::isnan(y[1]));
  OneNodeModel u("Min", 13);
  u.input(DType::kUInt32, {1}).input(DType::kUInt32, {1});
  EXPECT_EQ(u.run<uint32_t>(std::vector<uint32_t>{0xFFFFFFFFu}, std::vector<uint32_t>{1}), (std::vector<uint32_t>{1}));
}

TEST(MathEvalTest, SoftplusDoesNotOverflow) {
  OneNodeModel m("Softplus", 1);
  m.input(f32, {3});
  std::vector<float> y = m.run<float>(std::vector<float>{100, 0, -100});
  ASSERT_EQ(y.size(), 3u);
  EXPECT_FLOAT_EQ(y[0], 100);
  EXPECT_FLOAT_EQ(y[1], std::log(2.0f));
  EXPECT_NEAR(y[2], 0, 1e-30);
}

TEST(MathEvalTest, SignOfIntegersAndZero) {
  OneNodeModel m("Sign", 13);
  m.input(DType::kInt8, {3});
  EXPECT_EQ(m.run<int8_t>(std::vector<int8_t>{-5, 0, 7}), (std::vector<int8_t>{-1, 0, 1}));
}

TEST(MathEvalTest, ShrinkOnIntegers) {
  OneNodeModel m("Shrink", 9);
  m.input(DType::kInt32, {5}).attr("lambd", 1.5f).attr("bias", 1.0f);
  EXPECT_EQ(m.run<int32_t>(std::vector<int32_t>{-3, -1, 0, 1, 3}), (std::vector<int32_t>{-2, 0, 0, 0, 2}));
}

TEST(MathEvalTest, GeluTanhOnHalf) {
  OneNodeModel m("Gelu", 20);
  ir::Attribute approximate;
  approximate.kind = ir::Attribute::Kind::kString;
  approximate.s = "tanh";
  m.input(DType::kFloat16, {2}).attr("approximate", approximate);
  std::vector<uint16_t> y = m.run<uint16_t>(std::vector<uint16_t>{floatToHalf(1.0f), floatToHalf(-1.0f)});
  ASSERT_EQ(y.size(), 2u);
  EXPECT_NEAR(halfToFloat(y[0]), 0.8412f, 1e-3);
  EXPECT_NEAR(halfToFloat(y[1]), -0.1588f, 1e-3);
}

TEST(MathEvalTest, PReluBeforeOpset7IsPerChannel) {
  OneNodeModel m("PRelu", 6);
  m.input(f32, {1, 2, 2}).input(f32, {2});
  std::vector<float> x = {-1, -2, -1, 3};
  std::vector<float> slope = {0.5f, 2};
  EXPECT_EQ(m.run<float>(x, slope), (std::vector<float>{-0.5f, -1, -2, 3}));
}

TEST(MathEvalTest, DropoutIsTheIdentity) {
  OneNodeModel m("Dropout", 13);
  m.input(f32, {3});
  EXPECT_EQ(m.run<float>(std::vector<float>{1, -2, 3}), (std::vector<float>{1, -2, 3}));
}

}  // namespace
}  // namespace kiln::ops
