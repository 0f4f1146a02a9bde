// The cast family (compiler/ops/cast.cpp): target dtypes and the unsupported
// ones, and on the reference evaluator the conversions ONNX leaves to the
// implementation: float -> integer saturates (NaN -> 0), integers wrap,
// anything -> bool is `!= 0`, half and bfloat16 in both directions. The
// string conversions are tested in string_test.cpp.
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

ir::Attribute castTo(DType dtype) {
  ir::Attribute a;
  a.i = static_cast<int64_t>(dtype);
  return a;
}

// ---- Inference -------------------------------------------------------------------

TEST(CastInferTest, OutputHasTheTargetDType) {
  OneNodeGraph g("Cast");
  g.input(f32, "batchx3").integer("to", static_cast<int64_t>(DType::kBFloat16));
  ASSERT_EQ(messageOf(g.infer(13)), "ok");
  EXPECT_EQ(g.outputType().dtype, DType::kBFloat16);
  EXPECT_EQ(g.outputShape(), "batchx3");
}

TEST(CastInferTest, CastLikeTakesTheSecondInputsDType) {
  OneNodeGraph g("CastLike");
  g.input(DType::kInt64, "2x2").input(DType::kFloat16, "7");
  ASSERT_EQ(messageOf(g.infer(15)), "ok");
  EXPECT_EQ(g.outputType().dtype, DType::kFloat16);
  EXPECT_EQ(g.outputShape(), "2x2");
}

TEST(CastInferTest, ToIsRequired) {
  OneNodeGraph g("Cast", "c");
  g.input(f32, "2");
  EXPECT_NE(messageOf(g.infer()).find("missing required attribute 'to'"), std::string::npos);
}

TEST(CastInferTest, Float8IsUnsupported) {
  OneNodeGraph f8("Cast", "c");
  f8.input(f32, "2").integer("to", 17).integer("saturate", 0);
  Status status = f8.infer(19);
  EXPECT_EQ(status.kind(), ErrorKind::kUnsupported);
  EXPECT_EQ(messageOf(status),
            "Cast 'c': casting to float8e4m3fn (to=17) is not supported; Kiln casts between numeric types and bool");
}

TEST(CastInferTest, StringsConvertToAndFromNumbersOnly) {
  OneNodeGraph to_string("Cast");
  to_string.input(f32, "2").integer("to", 8);
  ASSERT_EQ(messageOf(to_string.infer(13)), "ok");
  EXPECT_EQ(to_string.outputType().dtype, DType::kString);
  OneNodeGraph from_string("CastLike");
  from_string.input(DType::kString, "2").input(DType::kInt32, "1");
  ASSERT_EQ(messageOf(from_string.infer(15)), "ok");
  EXPECT_EQ(from_string.outputType().dtype, DType::kInt32);
  OneNodeGraph from_bool("Cast", "c");
  from_bool.input(DType::kBool, "2").integer("to", 8);
  Status status = from_bool.infer(13);
  EXPECT_EQ(status.kind(), ErrorKind::kUnsupported);
  EXPECT_EQ(messageOf(status),
            "Cast 'c': casting bool to string is not supported; strings convert to and from float32, float64 and "
            "integers");
  OneNodeGraph to_half("Cast", "c");
  to_half.input(DType::kString, "2").integer("to", static_cast<int64_t>(DType::kFloat16));
  EXPECT_EQ(to_half.infer(13).kind(), ErrorKind::kUnsupported);
}

TEST(CastInferTest, UnknownTypeCodeIsAnError) {
  OneNodeGraph g("Cast", "c");
  g.input(f32, "2").integer("to", 99);
  EXPECT_EQ(messageOf(g.infer()), "Cast 'c': attribute to=99 is not an ONNX data type");
}

// ---- Evaluation ------------------------------------------------------------------

TEST(CastEvalTest, FloatToIntTruncatesAndSaturates) {
  OneNodeModel m("Cast", 13);
  m.input(f32, {6}).attr("to", castTo(DType::kInt8));
  std::vector<float> x = {2.9f, -2.9f, 1000, -1000, std::numeric_limits<float>::quiet_NaN(), -0.5f};
  EXPECT_EQ(m.run<int8_t>(x), (std::vector<int8_t>{2, -2, 127, -128, 0, 0}));
}

TEST(CastEvalTest, NegativeFloatToUnsignedSaturatesAtZero) {
  OneNodeModel m("Cast", 13);
  m.input(DType::kFloat64, {2}).attr("to", castTo(DType::kUInt16));
  EXPECT_EQ(m.run<uint16_t>(std::vector<double>{-3, 70000}), (std::vector<uint16_t>{0, 65535}));
}

TEST(CastEvalTest, IntegersWrap) {
  OneNodeModel m("Cast", 13);
  m.input(DType::kInt32, {3}).attr("to", castTo(DType::kUInt8));
  EXPECT_EQ(m.run<uint8_t>(std::vector<int32_t>{257, -1, 128}), (std::vector<uint8_t>{1, 255, 128}));
}

TEST(CastEvalTest, ToBoolIsNonZero) {
  OneNodeModel m("Cast", 13);
  m.input(f32, {4}).attr("to", castTo(DType::kBool));
  std::vector<float> x = {0, -0.0f, 0.1f, std::numeric_limits<float>::quiet_NaN()};
  EXPECT_EQ(m.run<uint8_t>(x), (std::vector<uint8_t>{0, 0, 1, 1}));
}

TEST(CastEvalTest, BoolToFloat16) {
  OneNodeModel m("Cast", 13);
  m.input(DType::kBool, {2}).attr("to", castTo(DType::kFloat16));
  std::vector<uint16_t> y = m.run<uint16_t>(std::vector<uint8_t>{1, 0});
  ASSERT_EQ(y.size(), 2u);
  EXPECT_EQ(halfToFloat(y[0]), 1.0f);
  EXPECT_EQ(halfToFloat(y[1]), 0.0f);
}

TEST(CastEvalTest, BFloat16ToFloat16) {
  OneNodeModel m("Cast", 13);
  m.input(DType::kBFloat16, {2}).attr("to", castTo(DType::kFloat16));
  std::vector<uint16_t> x = {0x3FC0, 0xC040};  // 1.5, -3.0
  std::vector<uint16_t> y = m.run<uint16_t>(x);
  ASSERT_EQ(y.size(), 2u);
  EXPECT_EQ(halfToFloat(y[0]), 1.5f);
  EXPECT_EQ(halfToFloat(y[1]), -3.0f);
}

TEST(CastEvalTest, CastLikeToInt64) {
  OneNodeModel m("CastLike", 15);
  m.input(DType::kFloat16, {2}).input(DType::kInt64, {1});
  std::vector<uint16_t> x = {floatToHalf(-7.75f), floatToHalf(65504.0f)};
  EXPECT_EQ(m.run<int64_t>(x, std::vector<int64_t>{0}), (std::vector<int64_t>{-7, 65504}));
}

}  // namespace
}  // namespace kiln::ops
