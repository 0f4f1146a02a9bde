// `--emit-header` text for what tiny_cnn does not exercise: symbolic
// dimensions, scalars, names that need quoting, colliding name aliases.
// (toolchain_test.sh compiles a real header in C and C++.)
#include "tools/kiln/emit_header.h"

#include <gtest/gtest.h>

namespace kiln::cli {
namespace {

lower::TensorSignature sig(std::string name, ir::DType dtype, ir::Shape shape) {
  return {std::move(name), dtype, std::move(shape)};
}

TEST(EmitHeader, SymbolicDimsAreMarkedAndHaveNoSize) {
  HeaderSpec spec{"NET", "net.onnx", {sig("tokens", ir::DType::kInt64, {ir::Dim::named("batch"), ir::Dim::known(128)})},
                  {sig("logits", ir::DType::kFloat32, {ir::Dim::named("batch"), ir::Dim::known(2)})}};
  std::string h = renderModelHeader(spec);
  EXPECT_NE(h.find("#define NET_INPUT_0_DIM_0 (-1)"), std::string::npos) << h;
  EXPECT_NE(h.find("#define NET_INPUT_0_DIM_0_SYMBOL \"batch\""), std::string::npos) << h;
  EXPECT_NE(h.find("#define NET_INPUT_0_DIM_1 128"), std::string::npos) << h;
  EXPECT_NE(h.find("#define NET_INPUT_0_STATIC 0"), std::string::npos) << h;
  EXPECT_EQ(h.find("NET_INPUT_0_ELEMS"), std::string::npos) << h;
  EXPECT_NE(h.find("#define NET_INPUT_0_CTYPE int64_t"), std::string::npos) << h;
  EXPECT_NE(h.find("#define NET_INPUT_0_DIMS {-1, 128}"), std::string::npos) << h;
  EXPECT_NE(h.find("#define NET_OUTPUT_LOGITS_INDEX 0"), std::string::npos) << h;
}

TEST(EmitHeader, ScalarsAndStaticSizes) {
  HeaderSpec spec{"M", "m.onnx", {sig("x", ir::DType::kFloat16, {})}, {}};
  std::string h = renderModelHeader(spec);
  EXPECT_NE(h.find("#define M_INPUT_0_RANK 0"), std::string::npos) << h;
  EXPECT_NE(h.find("#define M_INPUT_0_ELEMS 1"), std::string::npos) << h;
  EXPECT_NE(h.find("#define M_INPUT_0_BYTES 2"), std::string::npos) << h;
  EXPECT_NE(h.find("#define M_NUM_OUTPUTS 0"), std::string::npos) << h;
}

TEST(EmitHeader, NamesAreQuotedAndCollidingAliasesLeftOut) {
  HeaderSpec spec{"M",
                  "evil*/.onnx",
                  {sig("a.b", ir::DType::kFloat32, {ir::Dim::known(1)}), sig("a_b", ir::DType::kFloat32, {ir::Dim::known(1)}),
                   sig("q\"*/\\", ir::DType::kFloat32, {ir::Dim::known(1)})},
                  {}};
  std::string h = renderModelHeader(spec);
  EXPECT_EQ(h.find("M_INPUT_A_B_INDEX"), std::string::npos) << h;  // "a.b" and "a_b" collide
  EXPECT_NE(h.find("#define M_INPUT_2_NAME \"q\\\"*/\\\\\""), std::string::npos) << h;
  // The only "*/" are comment ends: no name closes a comment early.
  size_t opens = 0, closes = 0;
  for (size_t at = 0; (at = h.find("/*", at)) != std::string::npos; ++at) ++opens;
  for (size_t at = 0; (at = h.find("*/", at)) != std::string::npos; ++at) ++closes;
  EXPECT_EQ(closes, opens + 1) << h;  // + the one inside M_INPUT_2_NAME's string literal
}

TEST(EmitHeader, PrefixFromFileName) {
  EXPECT_EQ(headerPrefixFor("tiny-cnn"), "TINY_CNN");
  EXPECT_EQ(headerPrefixFor("3net"), "M_3NET");
  EXPECT_EQ(headerPrefixFor(""), "M_");
}

}  // namespace
}  // namespace kiln::cli
