// GridSample and RoiAlign (compiler/ops/sampling.cpp): what the backend
// cases miss (a volumetric GridSample at opset 20, reads outside X with
// hostile grids and roi batch indices) and the validation errors.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "tests/ops/node_fixture.h"

namespace kiln::ops {
namespace {

using ir::DType;
using testing::messageOf;
using testing::OneNodeGraph;
using testing::OneNodeModel;

constexpr DType f32 = DType::kFloat32;

// An identity grid with align_corners reproduces X, in 3-D too (opset 20).
TEST(GridSampleTest, VolumetricIdentity) {
  const int64_t d = 2, h = 3, w = 4;
  std::vector<float> x, grid;
  for (int64_t i = 0; i < d * h * w; ++i) x.push_back(static_cast<float>(i * i % 7) - 3.0f);
  auto norm = [](int64_t i, int64_t n) { return static_cast<float>(2.0 * i / (n - 1) - 1.0); };
  for (int64_t k = 0; k < d; ++k)
    for (int64_t j = 0; j < h; ++j)
      for (int64_t i = 0; i < w; ++i) grid.insert(grid.end(), {norm(i, w), norm(j, h), norm(k, d)});
  for (const char* mode : {"linear", "nearest"}) {
    OneNodeModel m("GridSample", 20);
    m.input(f32, {1, 1, d, h, w}).input(f32, {1, d, h, w, 3});
    m.attr("align_corners", 1).attr("mode", std::string(mode));
    std::vector<float> y = m.runFloat({x, grid});
    ASSERT_EQ(y.size(), x.size()) << mode;
    for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(y[i], x[i], 1e-5) << mode << " element " << i;
  }
}

// Coordinates far outside X: zeros padding reads 0, border the edge,
// reflection mirrors back inside; none reads outside the buffer.
TEST(GridSampleTest, FarOutsideCoordinates) {
  std::vector<float> x = {1, 2, 3, 4};  // 1x1x1x4
  std::vector<float> grid = {-1e6f, 0, 1e6f, 0, 2.0f, 0, -3.0f, 0};  // 1x1x4x2
  auto run = [&](const char* padding) {
    OneNodeModel m("GridSample", 16);
    m.input(f32, {1, 1, 1, 4}).input(f32, {1, 1, 4, 2});
    m.attr("padding_mode", std::string(padding)).attr("align_corners", 1);
    return m.runFloat({x, grid});
  };
  EXPECT_EQ(run("zeros"), (std::vector<float>{0, 0, 0, 0}));
  EXPECT_EQ(run("border"), (std::vector<float>{1, 4, 4, 1}));
  // x = 2 maps to pixel 4.5, mirrored at 3 to 1.5; x = -3 maps to -3, mirrored to 3.
  std::vector<float> reflected = run("reflection");
  ASSERT_EQ(reflected.size(), 4u);
  EXPECT_FLOAT_EQ(reflected[2], 2.5f);
  EXPECT_FLOAT_EQ(reflected[3], 4.0f);
}

TEST(GridSampleTest, Errors) {
  OneNodeGraph mode("GridSample", "g");
  mode.input(f32, "1x1x3x3").input(f32, "1x2x2x2").string("mode", "linear");
  EXPECT_EQ(messageOf(mode.infer(16)),
            "GridSample 'g': unknown mode 'linear' (expected bilinear, nearest or bicubic)");

  OneNodeGraph renamed("GridSample", "g");
  renamed.input(f32, "1x1x3x3").input(f32, "1x2x2x2").string("mode", "bilinear");
  EXPECT_EQ(messageOf(renamed.infer(20)),
            "GridSample 'g': unknown mode 'bilinear' (expected linear, nearest or cubic)");

  OneNodeGraph padding("GridSample", "g");
  padding.input(f32, "1x1x3x3").input(f32, "1x2x2x2").string("padding_mode", "wrap");
  EXPECT_EQ(messageOf(padding.infer(16)),
            "GridSample 'g': unknown padding_mode 'wrap' (expected zeros, border or reflection)");

  OneNodeGraph rank("GridSample", "g");
  rank.input(f32, "1x1x3x3x3").input(f32, "1x2x2x2x3");
  EXPECT_EQ(messageOf(rank.infer(16)), "GridSample 'g': X has rank 5, expected 4 (input 0)");

  OneNodeGraph cubic("GridSample", "g");
  cubic.input(f32, "1x1x3x3x3").input(f32, "1x2x2x2x3").string("mode", "cubic");
  EXPECT_EQ(messageOf(cubic.infer(20)), "GridSample 'g': cubic mode needs a 4-D X, got rank 5");

  OneNodeGraph grid("GridSample", "g");
  grid.input(f32, "1x1x3x3").input(f32, "1x2x2x3");
  EXPECT_EQ(messageOf(grid.infer(16)),
            "GridSample 'g': grid 1x2x2x3 must have shape N x out... x 2 for X 1x1x3x3 (input 1)");
}

// A roi naming a batch that does not exist reads a clamped batch, never
// outside X; a roi covering pixel (1, 1) exactly with one sample reads it.
TEST(RoiAlignTest, SamplesInsideX) {
  OneNodeModel m("RoiAlign", 16);
  m.input(f32, {1, 1, 3, 3}).input(f32, {2, 4}).input(DType::kInt64, {2});
  m.attr("sampling_ratio", 1).attr("output_height", 1).attr("output_width", 1);
  std::vector<float> x = {0, 1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<float> rois = {1, 1, 2, 2, 0, 0, 3, 3};
  std::vector<int64_t> batch = {0, 99};
  std::vector<float> y = m.run<float>(x, rois, batch);
  ASSERT_EQ(y.size(), 2u);
  EXPECT_FLOAT_EQ(y[0], 4.0f);  // half_pixel: bin centre (1.5 - 0.5, 1.5 - 0.5) = pixel (1, 1)
  EXPECT_FLOAT_EQ(y[1], 4.0f);  // centre of the whole image, from batch 0 (99 clamped)
}

TEST(RoiAlignTest, Errors) {
  auto graph = [](OneNodeGraph& g) -> OneNodeGraph& {
    return g.input(f32, "1x1x4x4").input(f32, "2x4").input(DType::kInt64, "2").integer("sampling_ratio", 2);
  };
  OneNodeGraph mode("RoiAlign", "a");
  graph(mode).string("mode", "mean");
  EXPECT_EQ(messageOf(mode.infer(16)), "RoiAlign 'a': unknown mode 'mean' (expected avg or max)");

  OneNodeGraph transform("RoiAlign", "a");
  graph(transform).string("coordinate_transformation_mode", "align_corners");
  EXPECT_EQ(messageOf(transform.infer(16)),
            "RoiAlign 'a': unknown coordinate_transformation_mode 'align_corners' (expected half_pixel or "
            "output_half_pixel)");

  OneNodeGraph rank("RoiAlign", "a");
  rank.input(f32, "1x4x4").input(f32, "2x4").input(DType::kInt64, "2");
  EXPECT_EQ(messageOf(rank.infer(16)), "RoiAlign 'a': X has rank 3, expected 4 (input 0)");

  OneNodeGraph adaptive("RoiAlign", "a");
  adaptive.input(f32, "1x1x4x4").input(f32, "2x4").input(DType::kInt64, "2");
  Status s = adaptive.infer(16);
  EXPECT_EQ(s.kind(), ErrorKind::kUnsupported);
  EXPECT_EQ(messageOf(s),
            "RoiAlign 'a': sampling_ratio 0 (adaptive) takes its sample count from the run-time roi sizes; Kiln "
            "needs a fixed sampling_ratio");
}

}  // namespace
}  // namespace kiln::ops
