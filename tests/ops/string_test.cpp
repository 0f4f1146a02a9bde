// String tensors on the reference evaluator: the string primitives
// (runtime/src/string_fns.*, shared with the runtime), Cast between strings
// and numbers, StringNormalizer, and the ops that only move strings.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "string_fns.h"
#include "tests/ops/node_fixture.h"

namespace kiln::ops {
namespace {

using ir::DType;
using testing::messageOf;
using testing::OneNodeGraph;
using testing::OneNodeModel;

constexpr DType f32 = DType::kFloat32;

ir::Tensor strings(std::vector<int64_t> dims, std::vector<std::string> values) {
  return ir::Tensor::fromStrings(std::move(dims), std::move(values));
}

ir::Attribute stringsAttr(std::vector<std::string> values) {
  ir::Attribute a;
  a.kind = ir::Attribute::Kind::kStrings;
  a.strings = std::move(values);
  return a;
}

// ---- Primitives ----------------------------------------------------------------

TEST(StringFunctionsTest, FloatsFormatAsNumpyStr) {
  // numpy 1.24: str(np.float32(v)) / str(np.float64(v)).
  EXPECT_EQ(strings::formatFloat(0.9767611026763916f, 32), "0.9767611");
  EXPECT_EQ(strings::formatFloat(0.03918779268860817f, 32), "0.039187793");
  EXPECT_EQ(strings::formatFloat(123456789.0f, 32), "123456790.0");
  EXPECT_EQ(strings::formatFloat(123456789.0, 64), "123456789.0");
  EXPECT_EQ(strings::formatFloat(100.0, 32), "100.0");
  EXPECT_EQ(strings::formatFloat(0.0001f, 32), "1e-04");  // float32(0.0001) is just below 1e-4
  EXPECT_EQ(strings::formatFloat(0.0001, 64), "0.0001");
  EXPECT_EQ(strings::formatFloat(1e-5, 32), "1e-05");
  EXPECT_EQ(strings::formatFloat(3.4e38f, 32), "3.4e+38");
  EXPECT_EQ(strings::formatFloat(1e16, 64), "1e+16");
  EXPECT_EQ(strings::formatFloat(-0.0, 64), "-0.0");
  EXPECT_EQ(strings::formatFloat(-std::numeric_limits<double>::infinity(), 64), "-inf");
  EXPECT_EQ(strings::formatFloat(std::nan(""), 32), "nan");
}

TEST(StringFunctionsTest, FormattedFloatsReadBackExactly) {
  for (float v : {0.1f, 1.0f / 3, 6.02214076e23f, 1.17549435e-38f, 16777217.0f, -7.5e-3f}) {
    std::string text = strings::formatFloat(v, 32);
    EXPECT_EQ(static_cast<float>(strings::parseFloat(text, 32)), v) << text;
  }
  for (double v : {0.1, 1.0 / 3, 2.2250738585072014e-308, 9007199254740993.0}) {
    std::string text = strings::formatFloat(v, 64);
    EXPECT_EQ(strings::parseFloat(text, 64), v) << text;
  }
}

TEST(StringFunctionsTest, ParsingAcceptsOnnxSpellings) {
  EXPECT_TRUE(std::isinf(strings::parseFloat("+INF", 32)) && strings::parseFloat("+INF", 32) > 0);
  EXPECT_TRUE(std::isinf(strings::parseFloat("-inf", 64)) && strings::parseFloat("-inf", 64) < 0);
  EXPECT_TRUE(std::isnan(strings::parseFloat("NaN", 32)));
  EXPECT_EQ(strings::parseFloat(" 1E8 ", 64), 1e8);
  EXPECT_EQ(strings::parseFloat("1e-5", 32), static_cast<double>(1e-5f));
  EXPECT_TRUE(std::isnan(strings::parseFloat("Hello World!", 32)));
  EXPECT_TRUE(std::isnan(strings::parseFloat("--1", 32)));
  EXPECT_EQ(strings::parseInt("1000", false), 1000);
  EXPECT_EQ(strings::parseInt("-9223372036854775808", false), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(strings::parseInt("100.5", false), 100);  // ONNX: "100.5" to an integer may give 100
  EXPECT_EQ(strings::parseInt("1e30", false), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(static_cast<uint64_t>(strings::parseInt("18446744073709551615", true)), UINT64_MAX);
  EXPECT_EQ(strings::parseInt("text", false), 0);
}

TEST(StringFunctionsTest, CaseMappingCoversLatinGreekCyrillic) {
  EXPECT_EQ(strings::changeCase("Monday", true), "MONDAY");
  EXPECT_EQ(strings::changeCase("ÉCOLE Straße", false), "école straße");
  EXPECT_EQ(strings::changeCase("łódź", true), "ŁÓDŹ");
  EXPECT_EQ(strings::changeCase("Ωμέγα", true), "ΩΜΈΓΑ");
  EXPECT_EQ(strings::changeCase("ΣΟΦΊΑ", false), "σοφία");
  EXPECT_EQ(strings::changeCase("Привет, Ёж", true), "ПРИВЕТ, ЁЖ");
  EXPECT_EQ(strings::changeCase("日本 123", true), "日本 123");
  EXPECT_TRUE(strings::equal("MONDAY", "monday", true));
  EXPECT_FALSE(strings::equal("MONDAY", "monday", false));
}

TEST(StringFunctionsTest, Utf8Validation) {
  EXPECT_TRUE(strings::isValidUtf8("plain ascii"));
  EXPECT_TRUE(strings::isValidUtf8("\xF0\x9F\x98\x80 emoji, \xC3\xA9"));
  EXPECT_FALSE(strings::isValidUtf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(strings::isValidUtf8("\xED\xA0\x80"));      // a surrogate
  EXPECT_FALSE(strings::isValidUtf8("\xF5\x80\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(strings::isValidUtf8("cut \xE2\x82"));      // truncated
  EXPECT_FALSE(strings::isValidUtf8("\x80"));
}

// ---- Cast ------------------------------------------------------------------------

TEST(StringCastTest, NumbersToStringsAndBack) {
  OneNodeModel to_string("Cast", 13);
  to_string.input(f32, {2, 2}).attr("to", static_cast<int64_t>(DType::kString));
  std::vector<float> x = {0.5f, -2.25f, 1e-5f, 0.9767611026763916f};
  auto formatted = to_string.evaluateTensors(1, {testing::tensorOf(f32, {2, 2}, x)});
  ASSERT_TRUE(formatted) << formatted.status().message();
  ASSERT_EQ((*formatted)[0].dtype(), DType::kString);
  EXPECT_EQ((*formatted)[0].dims(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ((*formatted)[0].strings(), (std::vector<std::string>{"0.5", "-2.25", "1e-05", "0.9767611"}));

  OneNodeModel to_float("Cast", 13);
  to_float.input(DType::kString, {2, 2}).attr("to", static_cast<int64_t>(f32));
  auto parsed = to_float.evaluateTensors(1, {(*formatted)[0]});
  ASSERT_TRUE(parsed) << parsed.status().message();
  EXPECT_EQ(testing::valuesOf<float>((*parsed)[0]), x);
}

TEST(StringCastTest, IntegersFormatAndParse) {
  OneNodeModel to_string("Cast", 13);
  to_string.input(DType::kUInt64, {2}).attr("to", static_cast<int64_t>(DType::kString));
  auto formatted = to_string.evaluateTensors(1, {testing::tensorOf<uint64_t>(DType::kUInt64, {2}, {UINT64_MAX, 7})});
  ASSERT_TRUE(formatted) << formatted.status().message();
  EXPECT_EQ((*formatted)[0].strings(), (std::vector<std::string>{"18446744073709551615", "7"}));

  OneNodeModel to_int("Cast", 13);
  to_int.input(DType::kString, {3}).attr("to", static_cast<int64_t>(DType::kInt8));
  auto parsed = to_int.evaluateTensors(1, {strings({3}, {"-5", "12.9", "300"})});
  ASSERT_TRUE(parsed) << parsed.status().message();
  // 300 wraps in int8 as an int64 -> int8 cast does.
  EXPECT_EQ(testing::valuesOf<int8_t>((*parsed)[0]), (std::vector<int8_t>{-5, 12, 44}));
}

TEST(StringCastTest, CastLikeReadsOnlyTheTargetsDType) {
  OneNodeModel m("CastLike", 15);
  m.input(DType::kString, {2}).input(DType::kFloat64, {5});
  auto out = m.evaluateTensors(1, {strings({2}, {"0.25", "-INF"}), testing::tensorOf<double>(DType::kFloat64, {5}, {0, 0, 0, 0, 0})});
  ASSERT_TRUE(out) << out.status().message();
  std::vector<double> y = testing::valuesOf<double>((*out)[0]);
  EXPECT_EQ(y[0], 0.25);
  EXPECT_TRUE(std::isinf(y[1]) && y[1] < 0);
}

// ---- StringNormalizer ------------------------------------------------------------

struct NormalizerCase {
  std::string action;
  int64_t case_sensitive;
  std::vector<std::string> stopwords;
  std::vector<int64_t> dims;
  std::vector<std::string> input;
  std::vector<int64_t> want_dims;
  std::vector<std::string> want;
};

void expectNormalized(const NormalizerCase& c) {
  OneNodeModel m("StringNormalizer", 10);
  m.input(DType::kString, c.dims).attr("case_change_action", c.action).attr("is_case_sensitive", c.case_sensitive);
  if (!c.stopwords.empty()) m.attr("stopwords", stringsAttr(c.stopwords));
  auto out = m.evaluateTensors(1, {strings(c.dims, c.input)});
  ASSERT_TRUE(out) << out.status().message();
  EXPECT_EQ((*out)[0].dims(), c.want_dims);
  EXPECT_EQ((*out)[0].strings(), c.want);
}

TEST(StringNormalizerTest, RemovesStopwordsThenChangesCase) {
  expectNormalized({"LOWER", 1, {"monday"}, {4}, {"monday", "Tuesday", "MONDAY", "x"}, {3}, {"tuesday", "monday", "x"}});
  expectNormalized({"UPPER", 0, {"monday"}, {4}, {"monday", "Tuesday", "MONDAY", "x"}, {2}, {"TUESDAY", "X"}});
  expectNormalized({"NONE", 1, {}, {2}, {"Monday", "tuesday"}, {2}, {"Monday", "tuesday"}});
  expectNormalized({"UPPER", 0, {"b", "d"}, {1, 5}, {"a", "B", "c", "d", "é"}, {1, 3}, {"A", "C", "É"}});
}

TEST(StringNormalizerTest, EverythingRemovedLeavesOneEmptyString) {
  expectNormalized({"UPPER", 1, {"monday"}, {2}, {"monday", "monday"}, {1}, {""}});
  expectNormalized({"LOWER", 0, {"monday"}, {1, 2}, {"Monday", "MONDAY"}, {1, 1}, {""}});
}

TEST(StringNormalizerTest, ErrorsNameTheProblem) {
  OneNodeGraph action("StringNormalizer", "sn");
  action.input(DType::kString, "3");
  action.node().attributes["case_change_action"] = [] {
    ir::Attribute a;
    a.kind = ir::Attribute::Kind::kString;
    a.s = "TITLE";
    return a;
  }();
  EXPECT_EQ(messageOf(action.infer(10)), "StringNormalizer 'sn': case_change_action 'TITLE' is not LOWER, UPPER or NONE");
  OneNodeGraph locale("StringNormalizer", "sn");
  locale.input(DType::kString, "3");
  locale.node().attributes["locale"] = [] {
    ir::Attribute a;
    a.kind = ir::Attribute::Kind::kString;
    a.s = "tr_TR.UTF-8";
    return a;
  }();
  Status refused = locale.infer(10);
  EXPECT_EQ(refused.kind(), ErrorKind::kUnsupported);
  EXPECT_NE(messageOf(refused).find("locale 'tr_TR.UTF-8' is not supported"), std::string::npos);
  OneNodeGraph rank("StringNormalizer", "sn");
  rank.input(DType::kString, "2x3");
  EXPECT_EQ(messageOf(rank.infer(10)), "StringNormalizer 'sn': X has shape 2x3, expected [C] or [1, C] (input 0)");
  OneNodeGraph numbers("StringNormalizer", "sn");
  numbers.input(f32, "3");
  EXPECT_EQ(messageOf(numbers.infer(10)), "StringNormalizer 'sn': X has dtype float32, expected string (input 0)");
}

// ---- Ops that move strings -------------------------------------------------------

TEST(StringDataTest, GatherAndConcatMovePointers) {
  OneNodeModel gather("Gather", 13);
  gather.input(DType::kString, {3}).input(DType::kInt64, {4});
  auto picked = gather.evaluateTensors(1, {strings({3}, {"a", "bb", "ccc"}), testing::int64Tensor({2, 0, -1, 1})});
  ASSERT_TRUE(picked) << picked.status().message();
  EXPECT_EQ((*picked)[0].strings(), (std::vector<std::string>{"ccc", "a", "ccc", "bb"}));

  OneNodeModel concat("Concat", 13);
  concat.input(DType::kString, {1, 2}).constantInput(strings({1, 1}, {"const"})).attr("axis", int64_t{1});
  auto joined = concat.evaluateTensors(1, {strings({1, 2}, {"x", "y"})});
  ASSERT_TRUE(joined) << joined.status().message();
  EXPECT_EQ((*joined)[0].strings(), (std::vector<std::string>{"x", "y", "const"}));
}

TEST(StringDataTest, ArithmeticOnStringsIsRefused) {
  OneNodeGraph add("Add", "a");
  add.input(DType::kString, "2").input(DType::kString, "2");
  EXPECT_FALSE(add.infer(13).isOk());
}

}  // namespace
}  // namespace kiln::ops
