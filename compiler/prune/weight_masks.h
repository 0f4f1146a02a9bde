// Pruning math over constant weights, independent of the graph: a weight seen
// as [outputs x inner] (whatever its storage order), the scores of the units
// pruning removes (single elements, 1x16 blocks along the outputs, whole
// output channels) and the choice of the lowest-scoring units.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace kiln::prune {

// Blocks are 1 x kBlockWidth: one inner index (a k of a [K, N] MatMul weight,
// an (input channel, kh, kw) of a Conv weight) and kBlockWidth consecutive
// output columns / channels. The block-sparse CPU kernels skip all-zero
// blocks of exactly this shape (one AVX-512 vector of fp32 outputs).
inline constexpr int64_t kBlockWidth = 16;

// Element (o, i) of the logical [outputs, inner] matrix lives at
// o * out_stride + i * inner_stride of the stored weight:
//   MatMul B [K, N]           outputs N, out_stride 1, inner K, inner_stride N
//   Gemm B [N, K] (transB=1)  outputs N, out_stride K, inner K, inner_stride 1
//   Conv W [M, C/g, kh, kw]   outputs M, out_stride C/g*kh*kw, inner C/g*kh*kw, inner_stride 1
struct WeightView {
  int64_t outputs = 0, inner = 0;
  int64_t out_stride = 0, inner_stride = 0;

  int64_t offset(int64_t o, int64_t i) const { return o * out_stride + i * inner_stride; }
  int64_t elements() const { return outputs * inner; }
  // 1 x kBlockWidth blocks per inner index (the last one shorter when
  // outputs is not a multiple of kBlockWidth).
  int64_t blocksPerInner() const { return (outputs + kBlockWidth - 1) / kBlockWidth; }
};

enum class Unit { kElement, kBlock };

// One score per unit: |w| per element (unit u = the element at storage
// offset u), or per block the root mean square of its elements (unit
// u = i * blocksPerInner() + b), so a short tail block compares fairly.
std::vector<float> unitScores(std::span<const float> weight, const WeightView& view, Unit unit);
int64_t unitCount(const WeightView& view, Unit unit);
// Sets the units whose `pruned` flag is set to zero.
void zeroUnits(std::span<float> weight, const WeightView& view, Unit unit, std::span<const uint8_t> pruned);

// Flags the `count` lowest scores (ties broken by position, so the choice is
// deterministic). Linear time: one nth_element over a copy of the scores.
std::vector<uint8_t> lowestScores(std::span<const float> scores, int64_t count);

// Squared L2 norm of each output's row: sum over i of w(o, i)^2.
std::vector<double> outputNormsSquared(std::span<const float> weight, const WeightView& view);

// How many of `units` a ratio removes: round(ratio * units), at most `units`.
int64_t unitsToRemove(double ratio, int64_t units);

}  // namespace kiln::prune
