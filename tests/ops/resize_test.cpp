// Resize and Upsample (compiler/ops/resize.cpp): every ONNX backend resize
// case on the reference evaluator with its scales/sizes bound as constants
// (the cases feed them as graph inputs; tf_crop_and_resize keeps its roi a
// run-time input), opset-18 features the shipped cases lack (antialias, axes,
// keep_aspect_ratio_policy) against values worked by hand from the spec, and
// the validation errors.
#include <gtest/gtest.h>

#include <vector>

#include "tests/ops/bound_case.h"
#include "tests/ops/node_fixture.h"

namespace kiln::ops {
namespace {

using ir::DType;
using testing::messageOf;
using testing::OneNodeGraph;
using testing::OneNodeModel;

constexpr DType f32 = DType::kFloat32;

ir::Tensor floats(std::vector<float> values) {
  return ir::Tensor::fromValues<float>(f32, {static_cast<int64_t>(values.size())}, std::span<const float>(values));
}

class ResizeCaseTest : public ::testing::TestWithParam<const char*> {};

TEST_P(ResizeCaseTest, MatchesExpectedOutputs) {
  std::string name = GetParam();
  // Graph inputs: X, then scales or sizes (and roi before sizes for tf_crop_and_resize).
  std::set<size_t> bound = name == "test_resize_tf_crop_and_resize" ? std::set<size_t>{2} : std::set<size_t>{1, 2, 3};
  EXPECT_EQ(testing::runBoundCase(name, bound), "");
}

INSTANTIATE_TEST_SUITE_P(
    Node, ResizeCaseTest,
    ::testing::Values("test_resize_downsample_scales_cubic", "test_resize_downsample_scales_cubic_A_n0p5_exclude_outside",
                      "test_resize_downsample_scales_cubic_align_corners", "test_resize_downsample_scales_linear",
                      "test_resize_downsample_scales_linear_align_corners", "test_resize_downsample_scales_nearest",
                      "test_resize_downsample_sizes_cubic", "test_resize_downsample_sizes_linear_pytorch_half_pixel",
                      "test_resize_downsample_sizes_nearest", "test_resize_downsample_sizes_nearest_tf_half_pixel_for_nn",
                      "test_resize_tf_crop_and_resize", "test_resize_upsample_scales_cubic",
                      "test_resize_upsample_scales_cubic_A_n0p5_exclude_outside",
                      "test_resize_upsample_scales_cubic_align_corners", "test_resize_upsample_scales_cubic_asymmetric",
                      "test_resize_upsample_scales_linear", "test_resize_upsample_scales_linear_align_corners",
                      "test_resize_upsample_scales_nearest", "test_resize_upsample_sizes_cubic",
                      "test_resize_upsample_sizes_nearest", "test_resize_upsample_sizes_nearest_ceil_half_pixel",
                      "test_resize_upsample_sizes_nearest_floor_align_corners",
                      "test_resize_upsample_sizes_nearest_round_prefer_ceil_asymmetric", "test_upsample_nearest"));

// Downsampling [1 2 3 4] by 0.5 with an antialiased linear filter: the
// triangle widens to 4 taps weighted 1:3:3:1, edge values repeated.
TEST(ResizeTest, AntialiasWidensTheFilter) {
  OneNodeModel m("Resize", 18);
  m.input(f32, {1, 4}).omittedInput().constantInput(floats({1.0f, 0.5f}));
  m.attr("mode", std::string("linear")).attr("antialias", 1);
  std::vector<float> y = m.runFloat({{1, 2, 3, 4}});
  ASSERT_EQ(y.size(), 2u);
  EXPECT_FLOAT_EQ(y[0], 1.625f);  // (1*1 + 1*3 + 2*3 + 3*1) / 8
  EXPECT_FLOAT_EQ(y[1], 3.375f);  // (2*1 + 3*3 + 4*3 + 4*1) / 8
}

TEST(ResizeTest, AxesAndKeepAspectRatio) {
  OneNodeGraph g("Resize");
  g.input(f32, "1x3x4x8").omittedInput().omittedInput().constantInput(testing::int64Tensor({6, 6}));
  g.ints("axes", {2, 3}).string("keep_aspect_ratio_policy", "not_larger");
  ASSERT_EQ(messageOf(g.infer(18)), "ok");
  EXPECT_EQ(g.outputShape(), "1x3x3x6");  // scale min(6/4, 6/8) = 0.75 on both axes

  OneNodeGraph larger("Resize");
  larger.input(f32, "1x3x4x8").omittedInput().omittedInput().constantInput(testing::int64Tensor({6, 6}));
  larger.ints("axes", {2, 3}).string("keep_aspect_ratio_policy", "not_smaller");
  ASSERT_EQ(messageOf(larger.infer(18)), "ok");
  EXPECT_EQ(larger.outputShape(), "1x3x6x12");
}

// Nearest with asymmetric coordinates picks floor(o / scale) on an upsample.
TEST(ResizeTest, NearestOnIntegers) {
  OneNodeModel m("Resize", 13);
  m.input(DType::kInt32, {1, 3}).omittedInput().constantInput(floats({1.0f, 2.0f}));
  m.attr("mode", std::string("nearest")).attr("coordinate_transformation_mode", std::string("asymmetric"));
  std::vector<int32_t> y = m.run<int32_t>(std::vector<int32_t>{7, 8, 9});
  EXPECT_EQ(y, (std::vector<int32_t>{7, 7, 8, 8, 9, 9}));
}

TEST(ResizeTest, Errors) {
  OneNodeGraph mode("Resize", "r");
  mode.input(f32, "1x1x2x2").omittedInput().constantInput(floats({1, 1, 2, 2})).string("mode", "bicubic");
  EXPECT_EQ(messageOf(mode.infer(13)),
            "Resize 'r': unknown mode 'bicubic' at opset 13 (expected one of nearest, linear, cubic)");

  OneNodeGraph transform("Resize", "r");
  transform.input(f32, "1x1x2x2").omittedInput().constantInput(floats({1, 1, 2, 2}))
      .string("coordinate_transformation_mode", "tf_half_pixel_for_nn");
  EXPECT_EQ(messageOf(transform.infer(13)),
            "Resize 'r': unknown coordinate_transformation_mode 'tf_half_pixel_for_nn' at opset 13 (expected one of "
            "half_pixel, pytorch_half_pixel, align_corners, asymmetric, tf_crop_and_resize)");

  OneNodeGraph rounding("Resize", "r");
  rounding.input(f32, "1x1x2x2").omittedInput().constantInput(floats({1, 1, 2, 2})).string("nearest_mode", "up");
  EXPECT_EQ(messageOf(rounding.infer(13)),
            "Resize 'r': unknown nearest_mode 'up' at opset 13 (expected one of round_prefer_floor, "
            "round_prefer_ceil, floor, ceil)");

  OneNodeGraph count("Resize", "r");
  count.input(f32, "1x1x2x2").omittedInput().constantInput(floats({2, 2}));
  EXPECT_EQ(messageOf(count.infer(13)), "Resize 'r': scales has 2 values, expected 4 (input 2)");

  OneNodeGraph both("Resize", "r");
  both.input(f32, "1x1x2x2").omittedInput().constantInput(floats({1, 1, 2, 2}))
      .constantInput(testing::int64Tensor({1, 1, 4, 4}));
  EXPECT_EQ(messageOf(both.infer(13)), "Resize 'r': exactly one of scales (input 2) and sizes (input 3) must be given");

  OneNodeGraph antialias("Resize", "r");
  antialias.input(f32, "1x1x2x2").omittedInput().constantInput(floats({1, 1, 2, 2})).integer("antialias", 1);
  EXPECT_EQ(messageOf(antialias.infer(13)), "Resize 'r': attribute 'antialias' needs Resize at opset 18 or later");

  // Scales read at run time: the resized dims are left to the run; their
  // count must be known.
  OneNodeGraph runtime("Resize", "r");
  runtime.input(f32, "1x1x2x2").omittedInput().input(f32, "4");
  ASSERT_TRUE(runtime.infer(13).isOk());
  EXPECT_EQ(runtime.outputShape(), "?x?x?x?");
  OneNodeGraph unknown_count("Resize", "r");
  unknown_count.input(f32, "1x1x2x2").omittedInput().input(f32, "k");
  Status s = unknown_count.infer(13);
  EXPECT_EQ(s.kind(), ErrorKind::kUnsupported);
  EXPECT_EQ(messageOf(s), "Resize 'r': scales is computed at run time and its length is not static (input 2)");
  OneNodeGraph wrong_count("Resize", "r");
  wrong_count.input(f32, "1x1x2x2").omittedInput().input(f32, "3");
  EXPECT_EQ(messageOf(wrong_count.infer(13)), "Resize 'r': scales has 3 values, expected 4 (input 2)");

  OneNodeGraph upsample("Upsample", "u");
  upsample.input(f32, "1x1x2x2").constantInput(floats({1, 1, 0.5f, 0.5f}));
  EXPECT_EQ(messageOf(upsample.infer(9)), "Upsample 'u': Upsample scales must be at least 1");

  OneNodeGraph crop("Resize", "r");
  crop.input(f32, "1x1x2x2").omittedInput().constantInput(floats({1, 1, 2, 2}))
      .string("coordinate_transformation_mode", "tf_crop_and_resize");
  EXPECT_EQ(messageOf(crop.infer(13)), "Resize 'r': tf_crop_and_resize needs roi (input 1)");
}

}  // namespace
}  // namespace kiln::ops
