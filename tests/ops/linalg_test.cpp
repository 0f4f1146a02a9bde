// Det (compiler/ops/linalg.cpp) against cofactor expansion: matrices that
// need row swaps, singular ones, a batch, and the shape errors.
#include <gtest/gtest.h>

#include <vector>

#include "tests/ops/node_fixture.h"

namespace kiln::ops {
namespace {

using ir::DType;
using testing::messageOf;
using testing::OneNodeGraph;
using testing::OneNodeModel;

double cofactorDet(const std::vector<double>& a, int n) {
  if (n == 1) return a[0];
  double det = 0;
  for (int c = 0; c < n; ++c) {
    std::vector<double> minor;
    for (int i = 1; i < n; ++i)
      for (int j = 0; j < n; ++j)
        if (j != c) minor.push_back(a[i * n + j]);
    det += (c % 2 ? -1 : 1) * a[c] * cofactorDet(minor, n - 1);
  }
  return det;
}

TEST(DetTest, MatchesCofactorExpansion) {
  // A zero top-left entry (needs a swap), a singular matrix, and a general one, 4x4 each.
  std::vector<double> x = {0, 2, 1, 3, 1, 0, 4, 1, 2, 5, 0, 1, 3, 1, 1, 0,
                           1, 2, 3, 4, 2, 4, 6, 8, 0, 1, 0, 1, 5, 3, 2, 1,
                           0.5, -1, 2, 0.25, 3, 1.5, -2, 1, -1, 4, 0.5, 2, 2, 0, 1, -3};
  OneNodeModel m("Det", 11);
  m.input(DType::kFloat64, {3, 4, 4});
  std::vector<double> y = m.run<double>(x);
  ASSERT_EQ(y.size(), 3u);
  for (int b = 0; b < 3; ++b) {
    std::vector<double> mat(x.begin() + b * 16, x.begin() + (b + 1) * 16);
    EXPECT_NEAR(y[b], cofactorDet(mat, 4), 1e-9) << "matrix " << b;
  }
}

TEST(DetTest, Errors) {
  OneNodeGraph square("Det", "d");
  square.input(DType::kFloat32, "2x3x4");
  EXPECT_EQ(messageOf(square.infer(11)), "Det 'd': X 2x3x4 must hold square matrices in its last two dims (input 0)");

  OneNodeGraph rank("Det", "d");
  rank.input(DType::kFloat32, "3");
  EXPECT_EQ(messageOf(rank.infer(11)), "Det 'd': X has rank 1, expected at least 2 (input 0)");

  OneNodeGraph dtype("Det", "d");
  dtype.input(DType::kInt32, "3x3");
  EXPECT_EQ(messageOf(dtype.infer(11)), "Det 'd': X has dtype int32, expected a float type (input 0)");
}

}  // namespace
}  // namespace kiln::ops
