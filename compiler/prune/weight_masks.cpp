#include "compiler/prune/weight_masks.h"

#include <algorithm>
#include <cmath>

namespace kiln::prune {

int64_t unitCount(const WeightView& view, Unit unit) {
  return unit == Unit::kElement ? view.elements() : view.inner * view.blocksPerInner();
}

std::vector<float> unitScores(std::span<const float> weight, const WeightView& view, Unit unit) {
  if (unit == Unit::kElement) {
    std::vector<float> scores(weight.size());
    for (size_t k = 0; k < weight.size(); ++k) scores[k] = std::fabs(weight[k]);
    return scores;
  }
  int64_t blocks = view.blocksPerInner();
  std::vector<float> scores(static_cast<size_t>(view.inner * blocks));
  for (int64_t i = 0; i < view.inner; ++i)
    for (int64_t b = 0; b < blocks; ++b) {
      int64_t end = std::min(view.outputs, (b + 1) * kBlockWidth);
      double sum = 0;
      for (int64_t o = b * kBlockWidth; o < end; ++o) {
        double w = weight[static_cast<size_t>(view.offset(o, i))];
        sum += w * w;
      }
      scores[static_cast<size_t>(i * blocks + b)] =
          static_cast<float>(std::sqrt(sum / static_cast<double>(end - b * kBlockWidth)));
    }
  return scores;
}

void zeroUnits(std::span<float> weight, const WeightView& view, Unit unit, std::span<const uint8_t> pruned) {
  if (unit == Unit::kElement) {
    for (size_t k = 0; k < weight.size(); ++k)
      if (pruned[k]) weight[k] = 0;
    return;
  }
  int64_t blocks = view.blocksPerInner();
  for (int64_t i = 0; i < view.inner; ++i)
    for (int64_t b = 0; b < blocks; ++b) {
      if (!pruned[static_cast<size_t>(i * blocks + b)]) continue;
      int64_t end = std::min(view.outputs, (b + 1) * kBlockWidth);
      for (int64_t o = b * kBlockWidth; o < end; ++o) weight[static_cast<size_t>(view.offset(o, i))] = 0;
    }
}

std::vector<uint8_t> lowestScores(std::span<const float> scores, int64_t count) {
  std::vector<uint8_t> flags(scores.size(), 0);
  if (count <= 0 || scores.empty()) return flags;
  if (count >= static_cast<int64_t>(scores.size())) {
    std::fill(flags.begin(), flags.end(), 1);
    return flags;
  }
  std::vector<float> sorted(scores.begin(), scores.end());
  auto nth = sorted.begin() + (count - 1);
  std::nth_element(sorted.begin(), nth, sorted.end());
  float threshold = *nth;
  int64_t taken = 0;
  for (size_t k = 0; k < scores.size(); ++k)
    if (scores[k] < threshold) {
      flags[k] = 1;
      ++taken;
    }
  for (size_t k = 0; k < scores.size() && taken < count; ++k)
    if (scores[k] == threshold) {
      flags[k] = 1;
      ++taken;
    }
  return flags;
}

std::vector<double> outputNormsSquared(std::span<const float> weight, const WeightView& view) {
  std::vector<double> norms(static_cast<size_t>(view.outputs), 0.0);
  for (int64_t o = 0; o < view.outputs; ++o)
    for (int64_t i = 0; i < view.inner; ++i) {
      double w = weight[static_cast<size_t>(view.offset(o, i))];
      norms[static_cast<size_t>(o)] += w * w;
    }
  return norms;
}

int64_t unitsToRemove(double ratio, int64_t units) {
  return std::clamp<int64_t>(std::llround(ratio * static_cast<double>(units)), 0, units);
}

}  // namespace kiln::prune
