// Stage groups: consecutive stages of one kernel that run together, point
// by point of their common leading axes, in one parallel loop.
//
// A kernel's stages normally run one after the other, each split across
// the threads on its own, so a stage reads what the one before wrote back
// from memory, after a barrier. Softmax's three stages (row max, row sum,
// output), LayerNormalization's three and kiln.Attention's six (per head:
// keys, scores, max, exponentials, sum, context) index the same leading
// axes (rows; batch and head) and only ever read an intermediate at the
// point where they are: at that point, the stages depend on nothing from
// other points. Such a run becomes one loop over the points, each point
// running every stage of the run for itself, so the point's intermediates
// (one head's 128 x 128 scores) are still in cache when the next stage
// reads them, and the threads meet once per run instead of once per stage.
//
// A stage may join when it stores (no shape steps, no run-time extents) to
// distinct elements (kir::storesDistinctAffine), and:
//  - a plain stage: its leading axes, all but the innermost, are
//    candidates; it runs a point's range of its collapsed outer axes;
//  - a contraction: the leading axes of the plan's outer axes (in order)
//    are; it runs the point's range of its tasks, whose index puts the
//    outer axes first (emit_contraction.cpp).
// The run's group axes are the first `axes` axes of every stage, with the
// same extents. Every buffer that one stage of the run writes and another
// touches must be indexed at the same positions by the group axes' own
// variables in every access of the run, so no point reads or writes
// another's elements. Runs of at least two stages and kMinGroupPoints
// points become groups.
#pragma once

#include <cstdint>
#include <vector>

#include "codegen/cpu/contraction.h"
#include "compiler/kir/kir.h"

namespace kiln::codegen::cpu {

// Fewer points than this leave threads idle; the stages then run apart.
inline constexpr int64_t kMinGroupPoints = 4;
// A task takes consecutive points until their stages write about this many
// elements (16 KiB of floats: one L1's worth), so that narrow rows (a
// Softmax over 8 values) do not pay a call per stage per row; a head of
// attention is a task of its own...
inline constexpr int64_t kGroupTaskElements = 4096;
// ...while leaving at least this many tasks where there are points enough.
inline constexpr int64_t kGroupTargetTasks = 16;

struct StageGroup {
  size_t first = 0;  // stages [first, end)
  size_t end = 0;
  int axes = 0;                 // leading axes shared: the group's points
  int64_t points = 1;           // product of their extents
  int64_t points_per_task = 1;  // consecutive points a task runs (the last may have fewer)
};

// `plans[s]`: stage s's contraction plan, or nullptr for a plain stage;
// `excluded[s]`: a stage that runs apart (a sparse contraction).
std::vector<StageGroup> planStageGroups(const kir::Kernel& kernel, const std::vector<const ContractionPlan*>& plans,
                                        const std::vector<bool>& excluded);

}  // namespace kiln::codegen::cpu
