// The normalization family (compiler/ops/normalization.cpp) on the reference
// evaluator: BatchNormalization in training mode (batch statistics, running
// statistics as outputs 1 and 2), checked against the formula computed here.
#include <gtest/gtest.h>

#include <cmath>

#include "tests/ops/node_fixture.h"

namespace kiln::ops {
namespace {

using ir::DType;
using testing::OneNodeModel;
using testing::tensorOf;
using testing::valuesOf;

constexpr DType f32 = DType::kFloat32;

TEST(NormalizationEvalTest, BatchNormTrainingUsesBatchStatistics) {
  // X is N=2, C=2, W=3; channel c holds N*W values.
  const int64_t n = 2, c = 2, w = 3;
  std::vector<float> x = {1, 2, 6, -1, 0, 4, 3, 5, 7, 2, 2, -3};
  std::vector<float> scale = {0.5f, 2}, bias = {1, -1}, mean_in = {0.25f, -2}, var_in = {1.5f, 0.5f};
  const float epsilon = 0.01f, momentum = 0.8f;
  OneNodeModel m("BatchNormalization", 15);
  m.input(f32, {n, c, w});
  for (int i = 0; i < 4; ++i) m.input(f32, {c});
  m.attr("training_mode", int64_t{1}).attr("epsilon", epsilon).attr("momentum", momentum);
  std::vector<ir::Tensor> out =
      m.runTensors(3, {tensorOf(f32, {n, c, w}, x), tensorOf(f32, {c}, scale), tensorOf(f32, {c}, bias),
                       tensorOf(f32, {c}, mean_in), tensorOf(f32, {c}, var_in)});
  ASSERT_EQ(out.size(), 3u);
  std::vector<float> y = valuesOf<float>(out[0]), running_mean = valuesOf<float>(out[1]),
                     running_var = valuesOf<float>(out[2]);
  for (int64_t ch = 0; ch < c; ++ch) {
    double sum = 0, squares = 0;
    for (int64_t b = 0; b < n; ++b)
      for (int64_t k = 0; k < w; ++k) sum += x[static_cast<size_t>((b * c + ch) * w + k)];
    double mean = sum / (n * w);
    for (int64_t b = 0; b < n; ++b)
      for (int64_t k = 0; k < w; ++k) squares += std::pow(x[static_cast<size_t>((b * c + ch) * w + k)] - mean, 2);
    double var = squares / (n * w);  // population variance
    auto u = static_cast<size_t>(ch);
    EXPECT_NEAR(running_mean[u], mean_in[u] * momentum + mean * (1 - momentum), 1e-5) << "channel " << ch;
    EXPECT_NEAR(running_var[u], var_in[u] * momentum + var * (1 - momentum), 1e-5) << "channel " << ch;
    for (int64_t b = 0; b < n; ++b)
      for (int64_t k = 0; k < w; ++k) {
        auto i = static_cast<size_t>((b * c + ch) * w + k);
        EXPECT_NEAR(y[i], (x[i] - mean) / std::sqrt(var + epsilon) * scale[u] + bias[u], 1e-5) << "element " << i;
      }
  }
}

TEST(NormalizationEvalTest, BatchNormTrainingWithoutStatisticOutputs) {
  OneNodeModel m("BatchNormalization", 14);
  m.input(f32, {2, 1});
  for (int i = 0; i < 4; ++i) m.input(f32, {1});
  m.attr("training_mode", int64_t{1});
  // Batch {1, 3}: mean 2, variance 1, so y = (x - 2) / sqrt(1 + 1e-5).
  std::vector<float> y = m.runFloat({{1, 3}, {1}, {0}, {100}, {100}});
  ASSERT_EQ(y.size(), 2u);
  EXPECT_NEAR(y[0], -1 / std::sqrt(1 + 1e-5), 1e-6);
  EXPECT_NEAR(y[1], 1 / std::sqrt(1 + 1e-5), 1e-6);
}

}  // namespace
}  // namespace kiln::ops
