// Einsum (compiler/ops/einsum.cpp): forms the backend cases miss (trace,
// implicit output order, broadcast ellipsis, a three-operand contraction)
// against loops written out here, and the equation errors.
#include <gtest/gtest.h>

#include <vector>

#include "tests/ops/node_fixture.h"

namespace kiln::ops {
namespace {

using ir::DType;
using testing::messageOf;
using testing::OneNodeGraph;
using testing::OneNodeModel;

constexpr DType f32 = DType::kFloat32;

std::vector<float> iota(size_t n, float scale = 1) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(i) * scale - 2;
  return v;
}

TEST(EinsumTest, Trace) {
  OneNodeModel m("Einsum", 12);
  m.input(f32, {3, 3}).attr("equation", std::string("ii"));
  std::vector<float> y = m.runFloat({iota(9)});
  ASSERT_EQ(y.size(), 1u);
  EXPECT_FLOAT_EQ(y[0], -2.0f + 2.0f + 6.0f);
}

// Implicit output: letters used once, alphabetically ('ba' -> 'ab' is a transpose).
TEST(EinsumTest, ImplicitOutputIsAlphabetical) {
  OneNodeGraph g("Einsum");
  g.input(f32, "2x3").string("equation", "ba");
  ASSERT_EQ(messageOf(g.infer(12)), "ok");
  EXPECT_EQ(g.outputShape(), "3x2");
}

// '...' broadcasts: A is 2x1x3x4, B is 5x4x6 -> 2x5x3x6.
TEST(EinsumTest, BroadcastEllipsisMatmul) {
  std::vector<float> a = iota(24, 0.5f), b = iota(120, 0.25f);
  OneNodeModel m("Einsum", 12);
  m.input(f32, {2, 1, 3, 4}).input(f32, {5, 4, 6}).attr("equation", std::string("...ij,...jk->...ik"));
  std::vector<float> y = m.runFloat({a, b});
  ASSERT_EQ(y.size(), 2u * 5 * 3 * 6);
  for (int p = 0; p < 2; ++p)
    for (int q = 0; q < 5; ++q)
      for (int i = 0; i < 3; ++i)
        for (int k = 0; k < 6; ++k) {
          float sum = 0;
          for (int j = 0; j < 4; ++j) sum += a[(p * 3 + i) * 4 + j] * b[(q * 4 + j) * 6 + k];
          EXPECT_NEAR(y[((p * 5 + q) * 3 + i) * 6 + k], sum, 1e-4);
        }
}

TEST(EinsumTest, ThreeOperands) {
  std::vector<float> a = iota(6), b = iota(12, 0.5f), c = iota(8);
  OneNodeModel m("Einsum", 12);
  m.input(f32, {2, 3}).input(f32, {3, 4}).input(f32, {4, 2}).attr("equation", std::string("ij,jk,kl->il"));
  std::vector<float> y = m.runFloat({a, b, c});
  ASSERT_EQ(y.size(), 4u);
  for (int i = 0; i < 2; ++i)
    for (int l = 0; l < 2; ++l) {
      float sum = 0;
      for (int j = 0; j < 3; ++j)
        for (int k = 0; k < 4; ++k) sum += a[i * 3 + j] * b[j * 4 + k] * c[k * 2 + l];
      EXPECT_NEAR(y[i * 2 + l], sum, 1e-3);
    }
}

TEST(EinsumTest, Errors) {
  OneNodeGraph terms("Einsum", "e");
  terms.input(f32, "2x3").string("equation", "ij,jk->ik");
  EXPECT_EQ(messageOf(terms.infer(12)), "Einsum 'e': equation has 2 terms for 1 inputs");

  OneNodeGraph rank("Einsum", "e");
  rank.input(f32, "2x3x4").string("equation", "ij->i");
  EXPECT_EQ(messageOf(rank.infer(12)), "Einsum 'e': equation term 0 has 2 subscripts, input of rank 3 (input 0)");

  OneNodeGraph sizes("Einsum", "e");
  sizes.input(f32, "2x3").input(f32, "4x5").string("equation", "ij,jk->ik");
  EXPECT_EQ(messageOf(sizes.infer(12)), "Einsum 'e': subscript 'j' has sizes 3 and 4");

  OneNodeGraph output("Einsum", "e");
  output.input(f32, "2x3").string("equation", "ij->iz");
  EXPECT_EQ(messageOf(output.infer(12)), "Einsum 'e': output subscript 'z' is in no input");

  OneNodeGraph character("Einsum", "e");
  character.input(f32, "2x3").string("equation", "i1->i");
  EXPECT_EQ(messageOf(character.infer(12)), "Einsum 'e': equation has an unexpected character '1'");

  OneNodeGraph twice("Einsum", "e");
  twice.input(f32, "2x2").string("equation", "ij->ii");
  EXPECT_EQ(messageOf(twice.infer(12)), "Einsum 'e': output subscript 'i' appears twice");
}

}  // namespace
}  // namespace kiln::ops
