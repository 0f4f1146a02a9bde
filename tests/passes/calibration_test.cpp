// Calibration math (compiler/quant): statistics, the range each method
// picks, quantization parameters and the accuracy measures, on inputs whose
// answers are known.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "compiler/quant/calibration.h"

namespace kiln::quant {
namespace {

TEST(CalibrationTest, MinMaxIsExactAndIncludesZero) {
  TensorStats s;
  s.add(std::vector<float>{-1.5f, 0.25f});
  s.add(std::vector<float>{3.0f, NAN, 0.5f});  // NaN is ignored
  Range r = chooseRange(s, CalibrationMethod::kMinMax);
  EXPECT_EQ(r.lo, -1.5f);
  EXPECT_EQ(r.hi, 3.0f);
  TensorStats positive;
  positive.add(std::vector<float>{0.5f, 2.0f});
  Range p = chooseRange(positive, CalibrationMethod::kMinMax);
  EXPECT_EQ(p.lo, 0.0f) << "widened to include zero";
  EXPECT_EQ(p.hi, 2.0f);
}

TEST(CalibrationTest, RebinningKeepsEveryCount) {
  TensorStats s;
  std::vector<float> small(1000), large(500);
  for (size_t i = 0; i < small.size(); ++i) small[i] = 0.001f * static_cast<float>(i);
  for (size_t i = 0; i < large.size(); ++i) large[i] = -0.1f * static_cast<float>(i);
  s.add(small);
  s.add(large);  // the edge grows from ~1 to ~50: old counts move to wider bins
  double total = 0;
  for (double c : s.histogram()) total += c;
  EXPECT_EQ(total, 1500.0);
  EXPECT_FLOAT_EQ(s.edge(), 49.9f);
  // All of `small` lies below 1.0, which is in the first ~41 bins of the new edge.
  double low = 0;
  for (int i = 0; i < 42; ++i) low += s.histogram()[i];
  EXPECT_GE(low, 1000.0);
}

TEST(CalibrationTest, PercentileClipsARareOutlier) {
  TensorStats s;
  std::vector<float> values(100000);
  std::mt19937 rng(7);
  for (float& v : values) v = std::uniform_real_distribution<float>(0.0f, 1.0f)(rng);
  values[0] = 100.0f;  // one outlier in 10^5
  s.add(values);
  Range r = chooseRange(s, CalibrationMethod::kPercentile, 99.9);
  // 99.9% of the mass lies below ~0.999; bins are 100/2048 wide.
  EXPECT_GT(r.hi, 0.95f);
  EXPECT_LT(r.hi, 1.1f);
  EXPECT_EQ(chooseRange(s, CalibrationMethod::kPercentile, 100.0).hi, 100.0f) << "100% keeps the max";
}

TEST(CalibrationTest, EntropyChoosesAThresholdBelowTheMaxOfAHeavyTail) {
  // Laplace-distributed |x| (scale 1) with a few huge values: most of the mass
  // lies within a few units, the max is 60.
  TensorStats s;
  std::mt19937 rng(11);
  std::exponential_distribution<float> exp(1.0f);
  std::vector<float> values(200000);
  for (size_t i = 0; i < values.size(); ++i) values[i] = (i % 2 ? 1.0f : -1.0f) * exp(rng);
  values[0] = 60.0f;
  values[1] = -45.0f;
  s.add(values);
  Range r = chooseRange(s, CalibrationMethod::kEntropy);
  EXPECT_LT(r.hi, 30.0f) << "the threshold clips the tail";
  EXPECT_GT(r.hi, 4.0f) << "but keeps the bulk (99% of |x| < 4.6)";
  EXPECT_EQ(r.lo, -r.hi) << "a signed tensor is clipped symmetrically";
  // A uniform distribution has no tail to clip: the threshold stays near the max.
  TensorStats uniform;
  std::vector<float> u(100000);
  for (float& v : u) v = std::uniform_real_distribution<float>(0.0f, 10.0f)(rng);
  uniform.add(u);
  EXPECT_GT(chooseRange(uniform, CalibrationMethod::kEntropy).hi, 9.0f);
}

TEST(CalibrationTest, Uint8ParamsPutZeroOnALevel) {
  QuantParams p = uint8Params({-1.0f, 3.0f});
  EXPECT_FLOAT_EQ(p.scale, 4.0f / 255.0f);
  EXPECT_EQ(p.zero_point, 64);  // round(1 / (4/255)) = round(63.75)
  EXPECT_EQ(quantizeValue(0.0f, p.scale, p.zero_point, 0, 255), 64);
  EXPECT_EQ(quantizeValue(100.0f, p.scale, p.zero_point, 0, 255), 255) << "saturates";
  QuantParams relu = uint8Params({0.0f, 2.55f});
  EXPECT_EQ(relu.zero_point, 0);
  EXPECT_EQ(uint8Params({0.0f, 0.0f}).scale, 1.0f) << "a constant-zero tensor";
  EXPECT_EQ(quantizeValue(2.5f, 1.0f, 0, -127, 127), 2) << "half to even";
  EXPECT_EQ(quantizeValue(3.5f, 1.0f, 0, -127, 127), 4);
}

TEST(CalibrationTest, Int8ChannelScalesPerRowOrColumn) {
  std::vector<float> w = {1.0f, -2.0f, 0.5f, 0.25f};  // [[1, -2], [0.5, 0.25]]
  std::vector<float> rows = int8ChannelScales(w, {2, 2}, 0);
  EXPECT_FLOAT_EQ(rows[0], 2.0f / 127);
  EXPECT_FLOAT_EQ(rows[1], 0.5f / 127);
  std::vector<float> cols = int8ChannelScales(w, {2, 2}, 1);
  EXPECT_FLOAT_EQ(cols[0], 1.0f / 127);
  EXPECT_FLOAT_EQ(cols[1], 2.0f / 127);
  EXPECT_EQ(int8ChannelScales(std::vector<float>(4, 0.0f), {2, 2}, 0)[0], 1.0f) << "an all-zero channel";
}

TEST(CalibrationTest, OutputErrorMeasures) {
  OutputError same;
  std::vector<float> ref = {1, 2, 3, 0, 5, 1};
  same.add(ref, ref, {2, 3});
  EXPECT_TRUE(std::isinf(same.sqnrDb()));
  EXPECT_EQ(same.top1Agreement(), 1.0);
  OutputError e;
  std::vector<float> got = {1, 2, 3, 6, 5, 1};  // row 1's arg-max moves; noise 36 against signal 40
  e.add(ref, got, {2, 3});
  EXPECT_EQ(e.max_abs, 6.0);
  EXPECT_NEAR(e.sqnrDb(), 10 * std::log10(40.0 / 36.0), 1e-9);
  EXPECT_EQ(e.rows, 2);
  EXPECT_EQ(e.agreeing_rows, 1);
}

}  // namespace
}  // namespace kiln::quant
