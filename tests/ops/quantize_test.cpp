// The quantization ops (compiler/ops/quantize.cpp, quantized_linear.cpp):
// attribute, dtype and shape validation with their exact messages, and on
// the reference evaluator the arithmetic ONNX fixes — round half to even,
// saturation, per-axis and blocked parameters, int32 accumulation — checked
// against straightforward loops written here from the ONNX formulas.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "tests/ops/node_fixture.h"

namespace kiln::ops {
namespace {

using ir::DType;
using testing::messageOf;
using testing::OneNodeModel;
using testing::OneNodeGraph;
using testing::tensorOf;
using testing::valuesOf;

constexpr DType f32 = DType::kFloat32;
constexpr DType u8 = DType::kUInt8;
constexpr DType i8 = DType::kInt8;

// The ONNX definition: saturate(round_half_even(v) + zp) into [lo, hi].
int64_t quantizeRef(double v, int64_t zp, int64_t lo, int64_t hi) {
  double q = std::nearbyint(v) + static_cast<double>(zp);
  return static_cast<int64_t>(std::clamp(q, static_cast<double>(lo), static_cast<double>(hi)));
}

// ---- Validation ------------------------------------------------------------------

TEST(QuantizeInferTest, OutputTypeComesFromTheZeroPointOrIsUint8) {
  OneNodeGraph with_zp("QuantizeLinear");
  with_zp.input(f32, "2x3").input(f32, "scalar").input(i8, "scalar");
  ASSERT_EQ(messageOf(with_zp.infer(13)), "ok");
  EXPECT_EQ(with_zp.outputType().dtype, i8);
  OneNodeGraph without("QuantizeLinear");
  without.input(f32, "2x3").input(f32, "scalar");
  ASSERT_EQ(messageOf(without.infer(13)), "ok");
  EXPECT_EQ(without.outputType().dtype, u8);
  EXPECT_EQ(without.outputShape(), "2x3");
}

TEST(QuantizeInferTest, RejectsWrongTypesWithTheirInput) {
  OneNodeGraph x("QuantizeLinear", "q");
  x.input(DType::kFloat64, "4").input(f32, "scalar");
  EXPECT_EQ(messageOf(x.infer(13)), "QuantizeLinear 'q': x has dtype float64, expected float32 or int32 (input 0)");
  OneNodeGraph scale("DequantizeLinear", "dq");
  scale.input(u8, "4").input(DType::kFloat16, "scalar");
  EXPECT_EQ(messageOf(scale.infer(13)), "DequantizeLinear 'dq': scale has dtype float16, expected float32 (input 1)");
  OneNodeGraph zp("DequantizeLinear", "dq");
  zp.input(u8, "4").input(f32, "scalar").input(i8, "scalar");
  EXPECT_EQ(messageOf(zp.infer(13)),
            "DequantizeLinear 'dq': x_zero_point has dtype int8, expected uint8 like input 0 (input 2)");
}

TEST(QuantizeInferTest, Int16IsAnOpset21Type) {
  OneNodeGraph old("QuantizeLinear", "q");
  old.input(f32, "4").input(f32, "scalar").input(DType::kInt16, "scalar");
  Status status = old.infer(13);
  EXPECT_EQ(status.kind(), ErrorKind::kUnsupported);
  EXPECT_EQ(messageOf(status),
            "QuantizeLinear 'q': the quantized output has dtype int16; Kiln supports int8 or uint8 at opset 13");
  OneNodeGraph current("QuantizeLinear", "q");
  current.input(f32, "4").input(f32, "scalar").input(DType::kInt16, "scalar");
  EXPECT_EQ(messageOf(current.infer(21)), "ok");
  EXPECT_EQ(current.outputType().dtype, DType::kInt16);
}

TEST(QuantizeInferTest, AttributesOfLaterOpsetsAndBadLayouts) {
  OneNodeGraph block("QuantizeLinear", "q");
  block.input(f32, "4x4").input(f32, "4x2").integer("block_size", 2);
  EXPECT_EQ(messageOf(block.infer(13)), "QuantizeLinear 'q': attribute 'block_size' needs opset 21 (model has 13)");
  OneNodeGraph per_axis("DequantizeLinear", "dq");
  per_axis.input(u8, "2x3").input(f32, "3");
  EXPECT_EQ(messageOf(per_axis.infer(10)), "DequantizeLinear 'dq': per-axis scale 3 needs opset 13");
  OneNodeGraph wrong_axis("DequantizeLinear", "dq");
  wrong_axis.input(u8, "2x3").input(f32, "3").integer("axis", 0);
  EXPECT_EQ(messageOf(wrong_axis.infer(13)), "DequantizeLinear 'dq': scale has 3 elements, x 2x3 has 2 along axis 0");
  OneNodeGraph bad_block("DequantizeLinear", "dq");
  bad_block.input(u8, "4x5").input(f32, "4x2").integer("axis", 1).integer("block_size", 2);
  EXPECT_EQ(messageOf(bad_block.infer(21)),
            "DequantizeLinear 'dq': scale 4x2 does not block x 4x5 by block_size 2 along axis 1");
  OneNodeGraph zp_shape("QuantizeLinear", "q");
  zp_shape.input(f32, "2x3").input(f32, "3").input(u8, "2");
  EXPECT_EQ(messageOf(zp_shape.infer(13)),
            "QuantizeLinear 'q': zero_point 2 and scale 3 differ in shape (inputs 1 and 2)");
}

TEST(QuantizeInferTest, IntegerOpsCheckOperandsAndParameters) {
  OneNodeGraph mm("MatMulInteger", "mm");
  mm.input(f32, "2x3").input(u8, "3x4");
  EXPECT_EQ(messageOf(mm.infer(10)), "MatMulInteger 'mm': A has dtype float32, expected int8 or uint8 (input 0)");
  OneNodeGraph zp("MatMulInteger", "mm");
  zp.input(u8, "2x3").input(u8, "3x4").input(u8, "3");
  EXPECT_EQ(messageOf(zp.infer(10)),
            "MatMulInteger 'mm': a_zero_point 3 must be a scalar or hold one value per row of A (input 2)");
  OneNodeGraph ok("MatMulInteger", "mm");
  ok.input(u8, "5x2x3").input(i8, "3x4").input(u8, "2").input(i8, "4");
  ASSERT_EQ(messageOf(ok.infer(10)), "ok");
  EXPECT_EQ(ok.outputType().dtype, DType::kInt32);
  EXPECT_EQ(ok.outputShape(), "5x2x4");
  OneNodeGraph bias("QLinearConv", "qc");
  bias.input(u8, "1x2x4x4").input(f32, "scalar").input(u8, "scalar").input(u8, "3x2x1x1").input(f32, "3");
  bias.input(u8, "3").input(f32, "scalar").input(u8, "scalar").input(f32, "3");
  EXPECT_EQ(messageOf(bias.infer(10)), "QLinearConv 'qc': B has dtype float32, expected int32 (input 8)");
  OneNodeGraph channels("ConvInteger", "ci");
  channels.input(u8, "1x2x4x4").input(u8, "3x3x1x1");
  EXPECT_EQ(messageOf(channels.infer(10)),
            "ConvInteger 'ci': w 3x3x1x1 expects 3 input channels, x 1x2x4x4 has 2 (input 1)");
}

// ---- Evaluation ------------------------------------------------------------------

TEST(QuantizeEvalTest, RoundsHalfToEvenAndSaturates) {
  std::vector<float> x = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 1000.f, -1000.f, 3.2f, -3.7f};
  float scale = 0.5f;
  int8_t zp = 3;
  OneNodeModel m("QuantizeLinear", 13);
  m.input(f32, {10}).input(f32, {}).input(i8, {});
  auto out = m.runTensors(1, {tensorOf(f32, {10}, x), tensorOf(f32, {}, std::vector<float>{scale}),
                       tensorOf(i8, {}, std::vector<int8_t>{zp})});
  ASSERT_EQ(out.size(), 1u);
  std::vector<int8_t> got = valuesOf<int8_t>(out[0]);
  for (size_t i = 0; i < x.size(); ++i)
    EXPECT_EQ(got[i], quantizeRef(x[i] / scale, zp, -128, 127)) << "x = " << x[i];
}

TEST(QuantizeEvalTest, PerAxisQuantizeAndDequantizeRoundTrip) {
  // x is 2x3, one scale and zero point per column (axis 1).
  std::vector<float> x = {-1.f, 0.25f, 7.f, 3.f, -0.75f, 100.f};
  std::vector<float> scale = {0.5f, 0.25f, 2.f};
  std::vector<uint8_t> zp = {10, 128, 0};
  OneNodeModel q("QuantizeLinear", 13);
  q.input(f32, {2, 3}).input(f32, {3}).input(u8, {3});
  auto quantized = q.runTensors(1, {tensorOf(f32, {2, 3}, x), tensorOf(f32, {3}, scale), tensorOf(u8, {3}, zp)});
  ASSERT_EQ(quantized.size(), 1u);
  std::vector<uint8_t> qv = valuesOf<uint8_t>(quantized[0]);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(qv[i], quantizeRef(x[i] / scale[i % 3], zp[i % 3], 0, 255));

  OneNodeModel dq("DequantizeLinear", 13);
  dq.input(u8, {2, 3}).input(f32, {3}).input(u8, {3});
  auto real = dq.runTensors(1, {quantized[0], tensorOf(f32, {3}, scale), tensorOf(u8, {3}, zp)});
  ASSERT_EQ(real.size(), 1u);
  std::vector<float> rv = valuesOf<float>(real[0]);
  for (size_t i = 0; i < x.size(); ++i)
    EXPECT_EQ(rv[i], static_cast<float>(static_cast<int>(qv[i]) - zp[i % 3]) * scale[i % 3]);
}

TEST(QuantizeEvalTest, BlockedDequantizeUsesOneScalePerBlock) {
  // x is 2x5 blocked by 2 along axis 1: scale and zero point are 2x3.
  std::vector<int8_t> x = {-128, -1, 0, 1, 127, 5, 6, 7, 8, 9};
  std::vector<float> scale = {1.f, 2.f, 4.f, 0.5f, 0.25f, 8.f};
  std::vector<int8_t> zp = {0, 1, -1, 2, 3, -4};
  OneNodeModel m("DequantizeLinear", 21);
  m.input(i8, {2, 5}).input(f32, {2, 3}).input(i8, {2, 3}).attr("axis", 1).attr("block_size", 2);
  auto out = m.runTensors(1, {tensorOf(i8, {2, 5}, x), tensorOf(f32, {2, 3}, scale), tensorOf(i8, {2, 3}, zp)});
  ASSERT_EQ(out.size(), 1u);
  std::vector<float> got = valuesOf<float>(out[0]);
  for (size_t r = 0; r < 2; ++r)
    for (size_t c = 0; c < 5; ++c) {
      size_t p = r * 3 + c / 2;
      EXPECT_EQ(got[r * 5 + c], static_cast<float>(x[r * 5 + c] - zp[p]) * scale[p]) << r << "," << c;
    }
}

TEST(QuantizeEvalTest, Int32DequantizeHasNoOverflow) {
  std::vector<int32_t> x = {2147483647, -2147483647 - 1};
  std::vector<int32_t> zp = {-2};
  OneNodeModel m("DequantizeLinear", 13);
  m.input(DType::kInt32, {2}).input(f32, {}).input(DType::kInt32, {});
  auto out = m.runTensors(1, {tensorOf(DType::kInt32, {2}, x), tensorOf(f32, {}, std::vector<float>{1.f}),
                       tensorOf(DType::kInt32, {}, std::vector<int32_t>{zp[0]})});
  ASSERT_EQ(out.size(), 1u);
  std::vector<float> got = valuesOf<float>(out[0]);
  EXPECT_EQ(got[0], static_cast<float>(2147483649.0));
  EXPECT_EQ(got[1], static_cast<float>(-2147483646.0));
}

TEST(QuantizeEvalTest, DynamicQuantizeFollowsTheFormula) {
  std::vector<float> x = {1.f, 2.5f, -3.25f, 0.1f, 7.f, -0.4f};
  OneNodeModel m("DynamicQuantizeLinear", 11);
  m.input(f32, {6});
  auto out = m.runTensors(3, {tensorOf(f32, {6}, x)});
  ASSERT_EQ(out.size(), 3u);
  float lo = std::min(0.f, *std::min_element(x.begin(), x.end()));
  float hi = std::max(0.f, *std::max_element(x.begin(), x.end()));
  float scale = (hi - lo) / 255.f;
  int64_t zp = quantizeRef(0.f - lo / scale, 0, 0, 255);
  EXPECT_EQ(valuesOf<float>(out[1])[0], scale);
  EXPECT_EQ(valuesOf<uint8_t>(out[2])[0], zp);
  std::vector<uint8_t> y = valuesOf<uint8_t>(out[0]);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], quantizeRef(x[i] / scale, zp, 0, 255)) << i;
}

TEST(QuantizeEvalTest, MatMulIntegerAccumulatesExactlyWithPerRowAndColumnZeroPoints) {
  const int M = 3, K = 40, N = 2;
  std::vector<uint8_t> a(M * K);
  std::vector<int8_t> b(K * N);
  for (int i = 0; i < M * K; ++i) a[i] = static_cast<uint8_t>((i * 37 + 11) % 256);
  for (int i = 0; i < K * N; ++i) b[i] = static_cast<int8_t>((i * 53 + 7) % 256 - 128);
  std::vector<uint8_t> a_zp = {0, 255, 17};
  std::vector<int8_t> b_zp = {-128, 5};
  OneNodeModel m("MatMulInteger", 10);
  m.input(u8, {M, K}).input(i8, {K, N}).input(u8, {M}).input(i8, {N});
  auto out = m.runTensors(1, {tensorOf(u8, {M, K}, a), tensorOf(i8, {K, N}, b), tensorOf(u8, {M}, a_zp),
                       tensorOf(i8, {N}, b_zp)});
  ASSERT_EQ(out.size(), 1u);
  std::vector<int32_t> got = valuesOf<int32_t>(out[0]);
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      int32_t sum = 0;
      for (int k = 0; k < K; ++k) sum += (a[i * K + k] - a_zp[i]) * (b[k * N + j] - b_zp[j]);
      EXPECT_EQ(got[i * N + j], sum) << i << "," << j;
    }
}

TEST(QuantizeEvalTest, QLinearMatMulRequantizes) {
  const int M = 2, K = 5, N = 3;
  std::vector<int8_t> a = {-128, -5, 0, 7, 127, 1, 2, 3, -4, -100};
  std::vector<uint8_t> b = {0, 255, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130};
  float a_scale = 0.05f, b_scale = 0.02f, y_scale = 0.3f;
  int8_t a_zp = -3, y_zp = 4;
  uint8_t b_zp = 128;
  OneNodeModel m("QLinearMatMul", 10);
  m.input(i8, {M, K}).input(f32, {}).input(i8, {}).input(u8, {K, N}).input(f32, {}).input(u8, {});
  m.input(f32, {}).input(i8, {});
  auto scalar = [](float v) { return tensorOf(f32, {}, std::vector<float>{v}); };
  auto out = m.runTensors(1, {tensorOf(i8, {M, K}, a), scalar(a_scale), tensorOf(i8, {}, std::vector<int8_t>{a_zp}),
                       tensorOf(u8, {K, N}, b), scalar(b_scale), tensorOf(u8, {}, std::vector<uint8_t>{b_zp}),
                       scalar(y_scale), tensorOf(i8, {}, std::vector<int8_t>{y_zp})});
  ASSERT_EQ(out.size(), 1u);
  std::vector<int8_t> got = valuesOf<int8_t>(out[0]);
  float multiplier = a_scale * b_scale / y_scale;
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      int32_t acc = 0;
      for (int k = 0; k < K; ++k) acc += (a[i * K + k] - a_zp) * (b[k * N + j] - b_zp);
      EXPECT_EQ(got[i * N + j], quantizeRef(static_cast<float>(acc) * multiplier, y_zp, -128, 127)) << i << "," << j;
    }
}

// y[m, oy, ox] over a 1 x C x H x W input with 1-pixel zero-point padding, 3x3 kernel.
TEST(QuantizeEvalTest, QLinearConvPerChannelWithPaddingAndBias) {
  const int C = 2, H = 4, W = 4, M = 3;
  std::vector<uint8_t> x(C * H * W);
  std::vector<int8_t> w(M * C * 9);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<uint8_t>((i * 29 + 3) % 256);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<int8_t>((i * 41 + 5) % 256 - 128);
  float x_scale = 0.01f, y_scale = 0.7f;
  std::vector<float> w_scale = {0.02f, 0.05f, 0.001f};
  std::vector<int8_t> w_zp = {0, 0, 0};
  std::vector<int32_t> bias = {100, -2000, 5};
  uint8_t x_zp = 120, y_zp = 128;
  OneNodeModel m("QLinearConv", 10);
  m.input(u8, {1, C, H, W}).input(f32, {}).input(u8, {}).input(i8, {M, C, 3, 3}).input(f32, {M}).input(i8, {M});
  m.input(f32, {}).input(u8, {}).input(DType::kInt32, {M});
  m.attr("pads", [] {
    ir::Attribute a;
    a.kind = ir::Attribute::Kind::kInts;
    a.ints = {1, 1, 1, 1};
    return a;
  }());
  auto out = m.runTensors(1, {tensorOf(u8, {1, C, H, W}, x), tensorOf(f32, {}, std::vector<float>{x_scale}),
                       tensorOf(u8, {}, std::vector<uint8_t>{x_zp}), tensorOf(i8, {M, C, 3, 3}, w),
                       tensorOf(f32, {M}, w_scale), tensorOf(i8, {M}, w_zp),
                       tensorOf(f32, {}, std::vector<float>{y_scale}), tensorOf(u8, {}, std::vector<uint8_t>{y_zp}),
                       tensorOf(DType::kInt32, {M}, bias)});
  ASSERT_EQ(out.size(), 1u);
  std::vector<uint8_t> got = valuesOf<uint8_t>(out[0]);
  for (int oc = 0; oc < M; ++oc)
    for (int oy = 0; oy < H; ++oy)
      for (int ox = 0; ox < W; ++ox) {
        int32_t acc = bias[oc];
        for (int c = 0; c < C; ++c)
          for (int r = 0; r < 3; ++r)
            for (int s = 0; s < 3; ++s) {
              int iy = oy + r - 1, ix = ox + s - 1;
              int xv = (iy < 0 || iy >= H || ix < 0 || ix >= W) ? x_zp : x[(c * H + iy) * W + ix];
              acc += (xv - x_zp) * (w[((oc * C + c) * 3 + r) * 3 + s] - w_zp[oc]);
            }
        float multiplier = x_scale * w_scale[oc] / y_scale;
        EXPECT_EQ(got[(oc * H + oy) * W + ox], quantizeRef(static_cast<float>(acc) * multiplier, y_zp, 0, 255))
            << oc << "," << oy << "," << ox;
      }
}

}  // namespace
}  // namespace kiln::ops
