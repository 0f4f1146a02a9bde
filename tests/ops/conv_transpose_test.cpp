// ConvTranspose (compiler/ops/conv_transpose.cpp): inference and its errors,
// and, on the reference evaluator against a naive scatter implementation,
// corners the ONNX backend cases miss: groups, strides with dilations,
// output_padding, SAME_LOWER, and an output_shape larger than the full output.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "tests/ops/node_fixture.h"

namespace kiln::ops {
namespace {

using ir::DType;
using testing::messageOf;
using testing::OneNodeGraph;
using testing::OneNodeModel;

constexpr DType f32 = DType::kFloat32;

// ---- Inference -------------------------------------------------------------------

TEST(ConvTransposeInferTest, OutputShapes) {
  OneNodeGraph plain("ConvTranspose");
  plain.input(f32, "batchx1x3x3").input(f32, "1x2x3x3");
  ASSERT_EQ(messageOf(plain.infer(11)), "ok");
  EXPECT_EQ(plain.outputShape(), "batchx2x5x5");

  OneNodeGraph strided("ConvTranspose");
  strided.input(f32, "1x4x3x3")
      .input(f32, "4x3x3x3")
      .integer("group", 2)
      .ints("strides", {3, 2})
      .ints("output_padding", {1, 1})
      .ints("pads", {1, 2, 1, 2});
  ASSERT_EQ(messageOf(strided.infer(11)), "ok");
  // 3*(3-1) + 1 + 3 - 2 = 8 and 2*(3-1) + 1 + 3 - 4 = 4; 3 filters per group.
  EXPECT_EQ(strided.outputShape(), "1x6x8x4");

  OneNodeGraph shaped("ConvTranspose");
  shaped.input(f32, "1x1x3")
      .input(f32, "1x1x3")
      .ints("strides", {2})
      .ints("output_shape", {1, 1, 9})
      .ints("pads", {5, 5});  // overridden by output_shape
  ASSERT_EQ(messageOf(shaped.infer(1)), "ok");
  EXPECT_EQ(shaped.outputShape(), "1x1x9");

  OneNodeGraph same("ConvTranspose");
  same.input(f32, "1x1x3x4x5").input(f32, "1x1x2x2x2").ints("strides", {2, 3, 1}).string("auto_pad", "SAME_LOWER");
  ASSERT_EQ(messageOf(same.infer(11)), "ok");
  EXPECT_EQ(same.outputShape(), "1x1x6x12x5");
}

TEST(ConvTransposeInferTest, Errors) {
  OneNodeGraph channels("ConvTranspose", "t");
  channels.input(f32, "1x3x4").input(f32, "2x1x3");
  EXPECT_EQ(messageOf(channels.infer(11)),
            "ConvTranspose 't': weight 2x1x3 expects 2 input channels, X 1x3x4 has 3 (input 1)");

  OneNodeGraph group("ConvTranspose", "t");
  group.input(f32, "1x3x4").input(f32, "3x1x3").integer("group", 2);
  EXPECT_EQ(messageOf(group.infer(11)), "ConvTranspose 't': input channels 3 are not divisible by group 2");

  OneNodeGraph bias("ConvTranspose", "t");
  bias.input(f32, "1x2x4").input(f32, "2x3x3").input(f32, "2").integer("group", 2);
  EXPECT_EQ(messageOf(bias.infer(11)), "ConvTranspose 't': bias has 2 elements, expected 6 (input 2)");

  OneNodeGraph kernel("ConvTranspose", "t");
  kernel.input(f32, "1x1x4").input(f32, "1x1x3").ints("kernel_shape", {2});
  EXPECT_EQ(messageOf(kernel.infer(11)), "ConvTranspose 't': kernel_shape does not match weight 1x1x3 (input 1)");

  OneNodeGraph out_pad("ConvTranspose", "t");
  out_pad.input(f32, "1x1x4").input(f32, "1x1x3").ints("strides", {2}).ints("output_padding", {2});
  EXPECT_EQ(messageOf(out_pad.infer(11)),
            "ConvTranspose 't': output_padding 2 of spatial dim 0 must be smaller than its stride or dilation");

  OneNodeGraph pads("ConvTranspose", "t");
  pads.input(f32, "1x1x2").input(f32, "1x1x2").ints("pads", {2, 2});
  EXPECT_EQ(messageOf(pads.infer(11)),
            "ConvTranspose 't': spatial dim 0 has no output positions: pads 2+2 remove all 3");

  OneNodeGraph shape("ConvTranspose", "t");
  shape.input(f32, "1x1x2x2").input(f32, "1x1x2x2").ints("output_shape", {4});
  EXPECT_EQ(messageOf(shape.infer(11)),
            "ConvTranspose 't': output_shape has 1 values, expected 2 (one per spatial dim)");

  OneNodeGraph ints("ConvTranspose", "t");
  ints.input(DType::kInt32, "1x1x2").input(DType::kInt32, "1x1x2");
  EXPECT_NE(messageOf(ints.infer(11)), "ok");

  OneNodeGraph rank("ConvTranspose", "t");
  rank.input(f32, "1x1x2x2x2x2").input(f32, "1x1x1x1x1x1");
  EXPECT_NE(messageOf(rank.infer(11)), "ok");
}

// ---- Evaluation against a naive scatter --------------------------------------------

struct Case {
  std::vector<int64_t> x_dims;  // N, C_in, spatial...
  std::vector<int64_t> w_dims;  // C_in, C_out/group, k...
  int64_t group = 1;
  std::vector<int64_t> strides, dilations, output_padding, pads_begin;
  std::vector<int64_t> out_spatial;
};

int64_t count(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

// Every input element scatters x * w to y*s + k*d - pad_begin, dropped when outside.
std::vector<float> scatter(const Case& c, const std::vector<float>& x, const std::vector<float>& w,
                           const std::vector<float>& b) {
  size_t rank = c.x_dims.size() - 2;
  int64_t n_batch = c.x_dims[0], c_in = c.x_dims[1], per_out = c.w_dims[1], c_out = per_out * c.group;
  int64_t per_in = c_in / c.group;
  std::vector<int64_t> in(c.x_dims.begin() + 2, c.x_dims.end());
  std::vector<int64_t> kernel(c.w_dims.begin() + 2, c.w_dims.end());
  int64_t in_count = count(in), k_count = count(kernel), out_count = count(c.out_spatial);
  std::vector<float> y(n_batch * c_out * out_count, 0.0f);
  for (int64_t n = 0; n < n_batch; ++n)
    for (int64_t ci = 0; ci < c_in; ++ci)
      for (int64_t m = 0; m < per_out; ++m)
        for (int64_t p = 0; p < in_count; ++p)
          for (int64_t q = 0; q < k_count; ++q) {
            int64_t out_flat = 0, pr = p, qr = q;
            bool inside = true;
            std::vector<int64_t> pos(rank), off(rank);
            for (size_t i = rank; i-- > 0;) {
              pos[i] = pr % in[i];
              pr /= in[i];
              off[i] = qr % kernel[i];
              qr /= kernel[i];
            }
            for (size_t i = 0; i < rank; ++i) {
              int64_t o = pos[i] * c.strides[i] + off[i] * c.dilations[i] - c.pads_begin[i];
              if (o < 0 || o >= c.out_spatial[i]) inside = false;
              out_flat = out_flat * c.out_spatial[i] + o;
            }
            if (!inside) continue;
            int64_t oc = ci / per_in * per_out + m;
            y[(n * c_out + oc) * out_count + out_flat] +=
                x[(n * c_in + ci) * in_count + p] * w[(ci * per_out + m) * k_count + q];
          }
  for (int64_t n = 0; n < n_batch; ++n)
    for (int64_t oc = 0; oc < c_out; ++oc)
      for (int64_t o = 0; o < out_count; ++o) y[(n * c_out + oc) * out_count + o] += b.empty() ? 0.0f : b[oc];
  return y;
}

std::vector<float> ramp(int64_t n, float scale, float shift) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>((i * 7) % 11) * scale + shift;
  return v;
}

void expectMatchesScatter(OneNodeModel& model, const Case& c, bool with_bias) {
  std::vector<float> x = ramp(count(c.x_dims), 0.5f, -2.0f);
  std::vector<float> w = ramp(count(c.w_dims), 0.25f, -1.0f);
  std::vector<float> b = with_bias ? ramp(c.w_dims[1] * c.group, 1.0f, 0.5f) : std::vector<float>{};
  model.input(f32, c.x_dims).input(f32, c.w_dims);
  if (with_bias) model.input(f32, {c.w_dims[1] * c.group});
  std::vector<float> got = with_bias ? model.runFloat({x, w, b}) : model.runFloat({x, w});
  std::vector<float> want = scatter(c, x, w, b);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-4) << "element " << i;
}

TEST(ConvTransposeEvalTest, GroupedStridedDilatedWithOutputPadding) {
  Case c{{2, 4, 3, 4}, {4, 3, 2, 3}, 2, {2, 3}, {2, 1}, {1, 2}, {1, 0}, {}};
  // 2*2 + 1 + 3 - 1 - 0 = 7; 3*3 + 2 + 3 - 0 - 2 = 12.
  c.out_spatial = {7, 12};
  OneNodeModel model("ConvTranspose", 11);
  model.attr("group", int64_t{2})
      .attr("strides", c.strides)
      .attr("dilations", c.dilations)
      .attr("output_padding", c.output_padding)
      .attr("pads", std::vector<int64_t>{1, 0, 0, 2});
  expectMatchesScatter(model, c, true);
}

TEST(ConvTransposeEvalTest, SameLower1D) {
  // full = 2*(5-1) + 4 = 12, wanted 10: total 2, split 1/1.
  Case c{{1, 2, 5}, {2, 1, 4}, 1, {2}, {1}, {0}, {1}, {10}};
  OneNodeModel model("ConvTranspose", 11);
  model.attr("strides", c.strides).attr("auto_pad", std::string("SAME_LOWER"));
  expectMatchesScatter(model, c, false);

  // Odd total 3 (kernel 5): SAME_LOWER puts 2 at the beginning.
  Case odd{{1, 1, 5}, {1, 1, 5}, 1, {2}, {1}, {0}, {2}, {10}};
  OneNodeModel lower("ConvTranspose", 11);
  lower.attr("strides", odd.strides).attr("auto_pad", std::string("SAME_LOWER"));
  expectMatchesScatter(lower, odd, false);
}

TEST(ConvTransposeEvalTest, OutputShapeLargerThanFullOutput) {
  // full = 3*(3-1) + 3 = 9; output_shape 11 gives total -2: pads -1/-1, so the
  // output starts one position before the full one and ends one after.
  Case c{{1, 1, 3}, {1, 2, 3}, 1, {3}, {1}, {0}, {-1}, {11}};
  OneNodeModel model("ConvTranspose", 11);
  model.attr("strides", c.strides).attr("output_shape", std::vector<int64_t>{11});
  expectMatchesScatter(model, c, true);
}

TEST(ConvTransposeEvalTest, ThreeDimensionalOpset1) {
  Case c{{1, 3, 2, 3, 2}, {3, 1, 2, 2, 3}, 3, {1, 2, 2}, {2, 1, 1}, {0, 1, 0}, {1, 0, 1}, {}};
  // 1*1 + 0 + 3 - 2 = 2; 2*2 + 1 + 2 - 0 = 7; 2*1 + 0 + 3 - 2 = 3.
  c.out_spatial = {2, 7, 3};
  OneNodeModel model("ConvTranspose", 1);
  model.attr("group", int64_t{3})
      .attr("strides", c.strides)
      .attr("dilations", c.dilations)
      .attr("output_padding", c.output_padding)
      .attr("pads", std::vector<int64_t>{1, 0, 1, 1, 0, 1});
  expectMatchesScatter(model, c, true);
}

}  // namespace
}  // namespace kiln::ops
