#include "compiler/quant/calibration.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace kiln::quant {

std::optional<CalibrationMethod> parseCalibrationMethod(const std::string& name) {
  if (name == "minmax") return CalibrationMethod::kMinMax;
  if (name == "percentile") return CalibrationMethod::kPercentile;
  if (name == "entropy") return CalibrationMethod::kEntropy;
  return std::nullopt;
}

const char* methodName(CalibrationMethod method) {
  switch (method) {
    case CalibrationMethod::kMinMax: return "minmax";
    case CalibrationMethod::kPercentile: return "percentile";
    case CalibrationMethod::kEntropy: return "entropy";
  }
  return "?";
}

void TensorStats::widen(float new_edge) {
  if (edge_ > 0) {
    std::vector<double> old(kBins, 0.0);
    old.swap(hist_);
    double old_width = edge_ / kBins, new_width = new_edge / kBins;
    for (int j = 0; j < kBins; ++j) {
      if (old[j] == 0) continue;
      int to = static_cast<int>((j + 0.5) * old_width / new_width);
      hist_[std::min(to, kBins - 1)] += old[j];
    }
  }
  edge_ = new_edge;
}

void TensorStats::add(std::span<const float> values) {
  float lo = std::numeric_limits<float>::infinity(), hi = -lo, abs_max = 0;
  for (float v : values) {
    if (!std::isfinite(v)) continue;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  if (lo > hi) return;  // nothing finite
  abs_max = std::max(std::fabs(lo), std::fabs(hi));
  min_ = count_ ? std::min(min_, lo) : lo;
  max_ = count_ ? std::max(max_, hi) : hi;
  if (abs_max > edge_) widen(abs_max);
  if (edge_ > 0) {
    double per_bin = kBins / static_cast<double>(edge_);
    for (float v : values) {
      if (!std::isfinite(v)) continue;
      int bin = static_cast<int>(std::fabs(v) * per_bin);
      hist_[std::min(bin, kBins - 1)] += 1;
    }
  } else {
    hist_[0] += static_cast<double>(values.size());
  }
  count_ += static_cast<int64_t>(values.size());
}

float percentileThreshold(const std::vector<double>& hist, float edge, double percentile) {
  double total = 0;
  for (double c : hist) total += c;
  if (total == 0) return 0;
  double want = total * std::clamp(percentile, 0.0, 100.0) / 100.0, sum = 0;
  for (size_t i = 0; i < hist.size(); ++i) {
    sum += hist[i];
    if (sum >= want) return edge * static_cast<float>(i + 1) / static_cast<float>(hist.size());
  }
  return edge;
}

namespace {

// KL(p || q) of two unnormalized distributions of the same length; bins
// where p has mass and q has none count with q at a tiny floor, so such a
// candidate is heavily penalized rather than infinitely.
double klDivergence(const std::vector<double>& p, const std::vector<double>& q) {
  double p_sum = 0, q_sum = 0;
  for (double v : p) p_sum += v;
  for (double v : q) q_sum += v;
  if (p_sum == 0 || q_sum == 0) return std::numeric_limits<double>::infinity();
  double kl = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == 0) continue;
    double pi = p[i] / p_sum, qi = std::max(q[i] / q_sum, 1e-12);
    kl += pi * std::log(pi / qi);
  }
  return kl;
}

}  // namespace

float entropyThreshold(const std::vector<double>& histogram, float edge, int levels) {
  const int bins = static_cast<int>(histogram.size());
  // The first bin (exact zeros after a Relu, zero padding, blank pixels) is
  // left out: zero is exact at any threshold, and a spike there would pull
  // the search toward thresholds that clip the values that matter.
  std::vector<double> hist = histogram;
  if (!hist.empty()) hist[0] = 0;
  if (bins <= levels) return edge;
  std::vector<double> suffix(bins + 1, 0.0);
  for (int i = bins - 1; i >= 0; --i) suffix[i] = suffix[i + 1] + hist[i];
  double best = std::numeric_limits<double>::infinity();
  int best_i = bins;
  std::vector<double> p, q;
  for (int i = levels; i <= bins; ++i) {
    p.assign(hist.begin(), hist.begin() + i);
    p[i - 1] += suffix[i];
    // Quantize hist[0, i) into `levels` levels, then spread each level's
    // mass evenly over the bins it covers that were not empty.
    q.assign(i, 0.0);
    double merged = static_cast<double>(i) / levels;
    for (int level = 0; level < levels; ++level) {
      int start = static_cast<int>(std::floor(level * merged));
      int stop = level == levels - 1 ? i : static_cast<int>(std::floor((level + 1) * merged));
      double mass = 0;
      int nonzero = 0;
      for (int b = start; b < stop; ++b) {
        mass += hist[b];
        nonzero += hist[b] != 0;
      }
      if (nonzero == 0) continue;
      for (int b = start; b < stop; ++b)
        if (hist[b] != 0) q[b] = mass / nonzero;
    }
    double kl = klDivergence(p, q);
    if (kl < best) {
      best = kl;
      best_i = i;
    }
  }
  return std::min(edge, (best_i + 0.5f) * edge / bins);
}

Range chooseRange(const TensorStats& stats, CalibrationMethod method, double percentile) {
  Range r{std::min(stats.min(), 0.0f), std::max(stats.max(), 0.0f)};
  if (method == CalibrationMethod::kMinMax || stats.count() == 0) return r;
  // A tensor with no negative values (after a Relu) uses all 256 uint8
  // levels on [0, max]; a signed one has about 128 on each side.
  int levels = stats.min() >= 0 ? 256 : 128;
  float t = method == CalibrationMethod::kPercentile ? percentileThreshold(stats.histogram(), stats.edge(), percentile)
                                                     : entropyThreshold(stats.histogram(), stats.edge(), levels);
  r.lo = std::max(r.lo, -t);
  r.hi = std::min(r.hi, t);
  return r;
}

QuantParams uint8Params(Range range) {
  float lo = std::min(range.lo, 0.0f), hi = std::max(range.hi, 0.0f);
  if (!(hi - lo > 0) || !std::isfinite(hi - lo)) return {1.0f, 0};
  QuantParams p;
  p.scale = (hi - lo) / 255.0f;
  p.zero_point = static_cast<int32_t>(std::clamp(std::nearbyint(-lo / p.scale), 0.0f, 255.0f));
  return p;
}

std::vector<float> int8ChannelScales(std::span<const float> weights, const std::vector<int64_t>& dims,
                                     size_t channel_axis) {
  if (dims.empty()) return {};
  int64_t channels = channel_axis == 0 ? dims.front() : dims.back();
  std::vector<float> max_abs(static_cast<size_t>(channels), 0.0f);
  for (size_t i = 0; i < weights.size(); ++i) {
    size_t c = channel_axis == 0 ? i / (weights.size() / channels) : i % channels;
    max_abs[c] = std::max(max_abs[c], std::fabs(weights[i]));
  }
  for (float& s : max_abs) s = s > 0 && std::isfinite(s) ? s / 127.0f : 1.0f;
  return max_abs;
}

int32_t quantizeValue(float x, float scale, int32_t zero_point, int32_t lo, int32_t hi) {
  float q = std::nearbyint(x / scale) + static_cast<float>(zero_point);  // default rounding: half to even
  if (std::isnan(q)) return zero_point;
  return static_cast<int32_t>(std::clamp(q, static_cast<float>(lo), static_cast<float>(hi)));
}

void OutputError::add(std::span<const float> ref, std::span<const float> got, const std::vector<int64_t>& dims) {
  for (size_t i = 0; i < ref.size() && i < got.size(); ++i) {
    double d = static_cast<double>(ref[i]) - got[i];
    max_abs = std::max(max_abs, std::fabs(d));
    signal += static_cast<double>(ref[i]) * ref[i];
    noise += d * d;
  }
  if (dims.size() != 2 || dims[1] < 2 || ref.size() != got.size()) return;
  for (int64_t r = 0; r < dims[0]; ++r) {
    auto row = [&](std::span<const float> t) {
      auto begin = t.begin() + r * dims[1];
      return std::max_element(begin, begin + dims[1]) - begin;
    };
    ++rows;
    agreeing_rows += row(ref) == row(got);
  }
}

double OutputError::sqnrDb() const {
  if (noise == 0) return std::numeric_limits<double>::infinity();
  if (signal == 0) return -std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(signal / noise);
}

}  // namespace kiln::quant
