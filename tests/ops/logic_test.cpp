// The logic family (compiler/ops/logic.cpp): bool results, per-opset dtype
// lists, legacy broadcasting, and on the reference evaluator BitShift at and
// beyond the bit width, IsInf's detect flags, IsNaN and three-way Where.
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

// ---- Inference -------------------------------------------------------------------

TEST(LogicInferTest, ComparisonsGiveBoolAndBroadcast) {
  for (const char* op : {"Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"}) {
    OneNodeGraph g(op);
    g.input(DType::kFloat16, "3x1").input(DType::kFloat16, "4");
    ASSERT_EQ(messageOf(g.infer(16)), "ok") << op;
    EXPECT_EQ(g.outputShape(), "3x4") << op;
    EXPECT_EQ(g.outputType().dtype, DType::kBool) << op;
  }
}

TEST(LogicInferTest, DTypeListsFollowTheOpset) {
  OneNodeGraph eq("Equal", "e");
  eq.input(f32, "2").input(f32, "2");
  EXPECT_EQ(messageOf(eq.infer(7)),
            "Equal 'e': input 0 has dtype float32, expected bool, int32 or int64 (before opset 11)");
  EXPECT_EQ(messageOf(eq.infer(11)), "ok");
  OneNodeGraph gt("Greater", "g");
  gt.input(DType::kInt32, "2").input(DType::kInt32, "2");
  EXPECT_EQ(messageOf(gt.infer(7)), "Greater 'g': input 0 has dtype int32, expected a float type");
  EXPECT_EQ(messageOf(gt.infer(9)), "ok");
}

TEST(LogicInferTest, StringsAreUnsupported) {
  OneNodeGraph g("Equal", "e");
  g.input(DType::kString, "2").input(DType::kString, "2");
  Status status = g.infer(19);
  EXPECT_EQ(status.kind(), ErrorKind::kUnsupported);
  EXPECT_EQ(messageOf(status), "Equal 'e': string tensors are not supported (input 0)");
}

TEST(LogicInferTest, AndNeedsBools) {
  OneNodeGraph g("And", "a");
  g.input(DType::kInt32, "2").input(DType::kInt32, "2");
  EXPECT_EQ(messageOf(g.infer()), "And 'a': input 0 has dtype int32, expected bool");
}

TEST(LogicInferTest, LegacyBroadcastNeedsTheAttribute) {
  OneNodeGraph g("Or", "o");
  g.input(DType::kBool, "2x3").input(DType::kBool, "3");
  EXPECT_EQ(messageOf(g.infer(1)), "Or 'o': shapes 2x3 and 3 differ and broadcast=0 (opset 1)");
  g.integer("broadcast", 1);
  ASSERT_EQ(messageOf(g.infer(1)), "ok");
  EXPECT_EQ(g.outputShape(), "2x3");
}

TEST(LogicInferTest, BitShiftDirection) {
  OneNodeGraph missing("BitShift", "s");
  missing.input(DType::kUInt8, "2").input(DType::kUInt8, "2");
  EXPECT_NE(messageOf(missing.infer()).find("missing required attribute 'direction'"), std::string::npos);
  OneNodeGraph bad("BitShift", "s");
  bad.input(DType::kUInt8, "2").input(DType::kUInt8, "2").string("direction", "UP");
  EXPECT_EQ(messageOf(bad.infer()), "BitShift 's': attribute direction is 'UP', expected 'LEFT' or 'RIGHT'");
  OneNodeGraph signed_input("BitShift", "s");
  signed_input.input(DType::kInt8, "2").input(DType::kInt8, "2").string("direction", "LEFT");
  EXPECT_EQ(messageOf(signed_input.infer()), "BitShift 's': input 0 has dtype int8, expected an unsigned integer type");
}

TEST(LogicInferTest, BitwiseNeedsIntegers) {
  OneNodeGraph g("BitwiseNot", "b");
  g.input(DType::kBool, "2");
  EXPECT_EQ(messageOf(g.infer(18)), "BitwiseNot 'b': input 0 has dtype bool, expected an integer type");
}

TEST(LogicInferTest, WhereBroadcastsThreeWays) {
  OneNodeGraph g("Where");
  g.input(DType::kBool, "3x1x1").input(DType::kInt64, "4x1").input(DType::kInt64, "5");
  ASSERT_EQ(messageOf(g.infer(16)), "ok");
  EXPECT_EQ(g.outputShape(), "3x4x5");
  EXPECT_EQ(g.outputType().dtype, DType::kInt64);
  OneNodeGraph bad("Where", "w");
  bad.input(DType::kInt32, "2").input(f32, "2").input(f32, "2");
  EXPECT_EQ(messageOf(bad.infer(16)), "Where 'w': condition has dtype int32, expected bool (input 0)");
}

TEST(LogicInferTest, IsNaNNeedsFloats) {
  OneNodeGraph g("IsNaN", "n");
  g.input(DType::kInt32, "2");
  EXPECT_EQ(messageOf(g.infer()), "IsNaN 'n': input 0 has dtype int32, expected a float type");
}

// ---- Evaluation ------------------------------------------------------------------

TEST(LogicEvalTest, ShiftsOfTheBitWidthOrMoreGiveZero) {
  OneNodeModel left("BitShift", 11);
  ir::Attribute direction;
  direction.kind = ir::Attribute::Kind::kString;
  direction.s = "LEFT";
  left.input(DType::kUInt8, {4}).input(DType::kUInt8, {4}).attr("direction", direction);
  std::vector<uint8_t> x = {1, 0xFF, 3, 1};
  std::vector<uint8_t> shift = {7, 1, 8, 200};
  EXPECT_EQ(left.run<uint8_t>(x, shift), (std::vector<uint8_t>{0x80, 0xFE, 0, 0}));
  OneNodeModel right("BitShift", 11);
  direction.s = "RIGHT";
  right.input(DType::kUInt16, {3}).input(DType::kUInt16, {1}).attr("direction", direction);
  EXPECT_EQ(right.run<uint16_t>(std::vector<uint16_t>{0x8000, 16, 3}, std::vector<uint16_t>{4}),
            (std::vector<uint16_t>{0x0800, 1, 0}));
}

TEST(LogicEvalTest, IsInfDetectFlags) {
  float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = {inf, -inf, 1, std::numeric_limits<float>::quiet_NaN()};
  OneNodeModel both("IsInf", 10);
  both.input(f32, {4});
  EXPECT_EQ(both.run<uint8_t>(x), (std::vector<uint8_t>{1, 1, 0, 0}));
  OneNodeModel negative("IsInf", 10);
  negative.input(f32, {4}).attr("detect_positive", int64_t{0});
  EXPECT_EQ(negative.run<uint8_t>(x), (std::vector<uint8_t>{0, 1, 0, 0}));
  OneNodeModel neither("IsInf", 10);
  neither.input(f32, {4}).attr("detect_positive", int64_t{0}).attr("detect_negative", int64_t{0});
  EXPECT_EQ(neither.run<uint8_t>(x), (std::vector<uint8_t>{0, 0, 0, 0}));
}

TEST(LogicEvalTest, IsNaNOnHalf) {
  OneNodeModel m("IsNaN", 13);
  m.input(DType::kFloat16, {3});
  std::vector<uint16_t> x = {floatToHalf(1.0f), 0x7E00, floatToHalf(-0.0f)};
  EXPECT_EQ(m.run<uint8_t>(x), (std::vector<uint8_t>{0, 1, 0}));
}

TEST(LogicEvalTest, EqualOnBoolsAndNaN) {
  OneNodeModel b("Equal", 11);
  b.input(DType::kBool, {3}).input(DType::kBool, {1});
  EXPECT_EQ(b.run<uint8_t>(std::vector<uint8_t>{1, 0, 1}, std::vector<uint8_t>{1}), (std::vector<uint8_t>{1, 0, 1}));
  OneNodeModel f("Equal", 11);
  f.input(f32, {1}).input(f32, {1});
  float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(f.run<uint8_t>(std::vector<float>{nan}, std::vector<float>{nan}), (std::vector<uint8_t>{0}));
}

TEST(LogicEvalTest, UnsignedComparisonIsUnsigned) {
  OneNodeModel m("Greater", 13);
  m.input(DType::kUInt64, {1}).input(DType::kUInt64, {1});
  EXPECT_EQ(m.run<uint8_t>(std::vector<uint64_t>{~0ull}, std::vector<uint64_t>{1}), (std::vector<uint8_t>{1}));
}

TEST(LogicEvalTest, WhereWithBroadcastCondition) {
  OneNodeModel m("Where", 16);
  m.input(DType::kBool, {2, 1}).input(DType::kInt32, {3}).input(DType::kInt32, {1});
  std::vector<uint8_t> cond = {1, 0};
  std::vector<int32_t> x = {1, 2, 3}, y = {-1};
  EXPECT_EQ(m.run<int32_t>(cond, x, y), (std::vector<int32_t>{1, 2, 3, -1, -1, -1}));
}

TEST(LogicEvalTest, BitwiseOnSignedIntegers) {
  OneNodeModel m("BitwiseXor", 18);
  m.input(DType::kInt16, {2}).input(DType::kInt16, {2});
  EXPECT_EQ(m.run<int16_t>(std::vector<int16_t>{-1, 0x0F0F}, std::vector<int16_t>{0x00FF, 0x00FF}),
            (std::vector<int16_t>{static_cast<int16_t>(0xFF00), 0x0FF0}));
  OneNodeModel n("BitwiseNot", 18);
  n.input(DType::kUInt8, {2});
  EXPECT_EQ(n.run<uint8_t>(std::vector<uint8_t>{0, 0xF0}), (std::vector<uint8_t>{0xFF, 0x0F}));
}

}  // namespace
}  // namespace kiln::ops
