// Calibration math for static INT8 quantization: per-tensor statistics
// collected over calibration runs (min, max and a histogram of |x|), the
// range each calibration method picks from them, and the quantization
// parameters of a range or of a weight.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace kiln::quant {

enum class CalibrationMethod { kMinMax, kPercentile, kEntropy };

// "minmax" / "percentile" / "entropy".
std::optional<CalibrationMethod> parseCalibrationMethod(const std::string& name);
const char* methodName(CalibrationMethod method);

struct Range {
  float lo = 0;
  float hi = 0;
};

// Running statistics of one tensor: exact min and max, and a histogram of
// |x| over [0, edge) in kBins equal bins. When a batch exceeds the edge, the
// edge grows to its max and the old counts are re-binned (each old bin's
// count lands in the new bin holding its centre), as ONNX Runtime's and
// TensorRT's calibrators do.
class TensorStats {
 public:
  static constexpr int kBins = 2048;

  void add(std::span<const float> values);

  float min() const { return min_; }
  float max() const { return max_; }
  float edge() const { return edge_; }
  int64_t count() const { return count_; }
  const std::vector<double>& histogram() const { return hist_; }

 private:
  void widen(float new_edge);

  float min_ = 0, max_ = 0, edge_ = 0;
  int64_t count_ = 0;
  std::vector<double> hist_ = std::vector<double>(kBins, 0.0);
};

// The smallest |x| threshold below which `percentile` percent of the
// histogram's mass lies (the upper edge of the bin where the cumulative
// share reaches it).
float percentileThreshold(const std::vector<double>& hist, float edge, double percentile);

// TensorRT's entropy calibration: among thresholds at bin edges i in
// [levels, bins], the one whose distribution clipped to [0, i) (outliers
// folded into the last bin) and quantized to `levels` levels has the least
// KL divergence from the clipped reference.
float entropyThreshold(const std::vector<double>& hist, float edge, int levels = 128);

// The range a method picks: min/max as observed, or clipped to
// [-threshold, threshold]. Always includes 0, so zero is exact.
Range chooseRange(const TensorStats& stats, CalibrationMethod method, double percentile = 99.99);

struct QuantParams {
  float scale = 1;
  int32_t zero_point = 0;
};

// uint8 asymmetric: scale = (hi - lo) / 255, zero_point = round(-lo / scale),
// the range first widened to include 0. A zero-width range gets scale 1.
QuantParams uint8Params(Range range);

// int8 symmetric per channel of a weight laid out with `channels` rows
// along its outermost axis (`channel_axis` 0) or innermost axis (1, for a
// MatMul's [K, N]): scale = max|w| / 127 (1 for an all-zero channel).
std::vector<float> int8ChannelScales(std::span<const float> weights, const std::vector<int64_t>& dims,
                                     size_t channel_axis);

// round-half-to-even(x / scale) + zero_point, saturated to [lo, hi] (what
// QuantizeLinear computes).
int32_t quantizeValue(float x, float scale, int32_t zero_point, int32_t lo, int32_t hi);

// Output comparison for the accuracy report.
struct OutputError {
  double max_abs = 0;
  double signal = 0;  // sum of ref^2
  double noise = 0;   // sum of (ref - got)^2
  int64_t rows = 0, agreeing_rows = 0;  // rank-2 [N, C] outputs: arg-max agreement

  void add(std::span<const float> ref, std::span<const float> got, const std::vector<int64_t>& dims);
  // 10·log10(signal / noise); +inf when identical.
  double sqnrDb() const;
  double top1Agreement() const { return rows ? static_cast<double>(agreeing_rows) / rows : 0; }
};

}  // namespace kiln::quant
