// TopK (compiler/ops/topk.cpp): k as attribute (opset 1), constant input
// (opset 10+) and input computed at run time, validation messages, and the
// order ONNX asks for — ties by the lower index, NaN ordered, largest and
// smallest — checked against std::stable_sort of each row (on the reference
// evaluator; a run-time k also as a compiled artifact).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "tests/ops/data_dependent_model.h"
#include "tests/ops/node_fixture.h"

namespace kiln::ops {
namespace {

using ir::DType;
using testing::int64Tensor;
using testing::messageOf;
using testing::OneNodeModel;
using testing::OneNodeGraph;
using testing::tensorOf;
using testing::valuesOf;

constexpr DType f32 = DType::kFloat32;

TEST(TopKInferTest, OutputShapesTakeKAlongTheAxis) {
  OneNodeGraph g("TopK");
  g.input(f32, "3x7x2").constantInput(int64Tensor({4})).integer("axis", 1).outputs(2);
  ASSERT_EQ(messageOf(g.infer(11)), "ok");
  EXPECT_EQ(g.outputShape(0), "3x4x2");
  EXPECT_EQ(g.outputShape(1), "3x4x2");
  EXPECT_EQ(g.outputType(1).dtype, DType::kInt64);
  OneNodeGraph attr("TopK");
  attr.input(f32, "5").integer("k", 2).outputs(2);
  ASSERT_EQ(messageOf(attr.infer(1)), "ok");
  EXPECT_EQ(attr.outputShape(0), "2");
}

TEST(TopKInferTest, RejectsBadKAndAttributes) {
  OneNodeGraph big("TopK", "t");
  big.input(f32, "3x4").constantInput(int64Tensor({5})).outputs(2);
  EXPECT_EQ(messageOf(big.infer(11)), "TopK 't': k 5 exceeds X's 4 elements along axis 1");
  OneNodeGraph runtime("TopK", "t");
  runtime.input(f32, "3x4").input(DType::kInt64, "1").outputs(2);
  ASSERT_EQ(messageOf(runtime.infer(11)), "ok");
  EXPECT_EQ(runtime.outputShape(0), "3x?");  // k is read at run time
  EXPECT_EQ(runtime.outputShape(1), "3x?");
  OneNodeGraph wide("TopK", "t");
  wide.input(f32, "3x4").input(DType::kInt64, "2").outputs(2);
  EXPECT_EQ(messageOf(wide.infer(11)), "TopK 't': K must be a 1-element int64 tensor, got int64[2] (input 1)");
  OneNodeGraph moved("TopK", "t");
  moved.input(f32, "3x4").constantInput(int64Tensor({1})).integer("k", 1).outputs(2);
  EXPECT_EQ(messageOf(moved.infer(10)), "TopK 't': attribute 'k' is an input since opset 10");
  OneNodeGraph largest("TopK", "t");
  largest.input(f32, "3x4").constantInput(int64Tensor({1})).integer("largest", 0).outputs(2);
  EXPECT_EQ(messageOf(largest.infer(10)), "TopK 't': attribute 'largest' needs opset 11 (model has 10)");
  OneNodeGraph ints("TopK", "t");
  ints.input(DType::kInt32, "4").constantInput(int64Tensor({1})).outputs(2);
  EXPECT_EQ(messageOf(ints.infer(10)), "TopK 't': X has dtype int32, expected a float type (input 0)");
}

// Rows of `x` ([rows, n], axis 1): indices of the k first by value then index.
std::vector<int64_t> expectedIndices(const std::vector<float>& x, int rows, int n, int k, bool largest) {
  std::vector<int64_t> out;
  for (int r = 0; r < rows; ++r) {
    std::vector<int64_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    auto key = [&](int64_t i) { return x[r * n + i]; };
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      float va = key(a), vb = key(b);
      if (std::isnan(va) || std::isnan(vb)) return largest ? std::isnan(va) && !std::isnan(vb)
                                                           : !std::isnan(va) && std::isnan(vb);
      return largest ? va > vb : va < vb;
    });
    out.insert(out.end(), order.begin(), order.begin() + k);
  }
  return out;
}

void checkTopK(const std::vector<float>& x, int rows, int n, int k, bool largest) {
  OneNodeModel m("TopK", 11);
  m.input(f32, {rows, n}).constantInput(int64Tensor({k})).attr("axis", -1).attr("largest", largest ? 1 : 0);
  std::vector<ir::Tensor> out = m.runTensors(2, {tensorOf(f32, {rows, n}, x)});
  ASSERT_EQ(out.size(), 2u);
  std::vector<int64_t> want = expectedIndices(x, rows, n, k, largest);
  std::vector<int64_t> got = valuesOf<int64_t>(out[1]);
  std::vector<float> values = valuesOf<float>(out[0]);
  ASSERT_EQ(got, want);
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < k; ++j) {
      float v = x[r * n + want[r * k + j]];
      if (std::isnan(v)) EXPECT_TRUE(std::isnan(values[r * k + j]));
      else EXPECT_EQ(values[r * k + j], v);
    }
}

TEST(TopKEvalTest, TiesKeepTheLowerIndexFirst) {
  std::vector<float> x = {3, 1, 3, 2, 3, 1, 0, 0, 0, 0, 0, 0, -1, 5, 5, -1, 2, 5};
  checkTopK(x, 3, 6, 4, true);
  checkTopK(x, 3, 6, 4, false);
  checkTopK(x, 3, 6, 6, true);
}

TEST(TopKEvalTest, NanIsOrderedAndKZeroIsEmpty) {
  float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> x = {1, nan, -2, nan, 7, 0.5f};
  checkTopK(x, 1, 6, 3, true);
  checkTopK(x, 1, 6, 5, false);
  OneNodeModel m("TopK", 11);
  m.input(f32, {2, 3}).constantInput(int64Tensor({0}));
  std::vector<ir::Tensor> out = m.runTensors(2, {tensorOf(f32, {2, 3}, std::vector<float>(6, 1.f))});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].elementCount(), 0);
}

TEST(TopKEvalTest, MiddleAxisOfARank3Input) {
  // x[a, i, b] = pattern; top 2 along axis 1, checked per (a, b) column.
  const int A = 2, N = 5, Bd = 3;
  std::vector<float> x(A * N * Bd);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 7) % 5);
  OneNodeModel m("TopK", 1);
  m.input(f32, {A, N, Bd}).attr("k", 2).attr("axis", 1);
  std::vector<ir::Tensor> out = m.runTensors(2, {tensorOf(f32, {A, N, Bd}, x)});
  ASSERT_EQ(out.size(), 2u);
  std::vector<int64_t> got = valuesOf<int64_t>(out[1]);
  for (int a = 0; a < A; ++a)
    for (int b = 0; b < Bd; ++b) {
      std::vector<float> column(N);
      for (int i = 0; i < N; ++i) column[i] = x[(a * N + i) * Bd + b];
      std::vector<int64_t> want = expectedIndices(column, 1, N, 2, true);
      for (int j = 0; j < 2; ++j) EXPECT_EQ(got[(a * 2 + j) * Bd + b], want[j]) << a << "," << b << "," << j;
    }
}

// K as a graph input: one artifact serves every k in [0, n]; values and
// indices come back k wide. A k outside [0, n] is a run-time error naming
// the node.
TEST(TopKRunTimeTest, KReadAtRunTime) {
  float nan = std::numeric_limits<float>::quiet_NaN();
  const int rows = 3, n = 5;
  std::vector<float> x = {4, 1, 4, -2, 0.5f, nan, 3, -1, 3, nan, 2, 2, 2, 2, 2};
  for (bool largest : {true, false}) {
    testing::DataDependentModel m("TopK", 11);
    m.input("x", f32, {rows, n}).input("k", DType::kInt64, {1}).outputs({"values", "indices"});
    m.attr("largest", largest ? 1 : 0).attr("axis", 1);
    ASSERT_TRUE(m.compile().isOk());
    for (int64_t k : {int64_t{0}, int64_t{1}, int64_t{3}, int64_t{n}}) {
      auto out = m.run({tensorOf(f32, {rows, n}, x), int64Tensor({k})});
      ASSERT_TRUE(out.isOk()) << out.status().message();
      ASSERT_EQ(out->size(), 2u);
      EXPECT_EQ((*out)[0].dims(), (std::vector<int64_t>{rows, k}));
      EXPECT_EQ((*out)[1].dims(), (std::vector<int64_t>{rows, k}));
      std::vector<int64_t> want = expectedIndices(x, rows, n, static_cast<int>(k), largest);
      EXPECT_EQ(valuesOf<int64_t>((*out)[1]), want) << "k=" << k;
      std::vector<float> values = valuesOf<float>((*out)[0]);
      for (size_t i = 0; i < want.size(); ++i) {
        float v = x[(i / static_cast<size_t>(k)) * n + static_cast<size_t>(want[i])];
        EXPECT_TRUE(values[i] == v || (std::isnan(v) && std::isnan(values[i]))) << "k=" << k << " element " << i;
      }
    }
    for (int64_t k : {int64_t{n + 1}, int64_t{-1}}) {
      auto out = m.run({tensorOf(f32, {rows, n}, x), int64Tensor({k})});
      ASSERT_FALSE(out.isOk()) << "k=" << k;
      EXPECT_NE(out.status().message().find("TopK 'n': K " + std::to_string(k) +
                                            " (input 1) is outside [0, 5], the number of elements along axis 1"),
                std::string::npos)
          << out.status().message();
    }
  }
}

}  // namespace
}  // namespace kiln::ops
