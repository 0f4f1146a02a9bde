#include "codegen/cpu/stage_groups.h"

#include <algorithm>
#include <functional>
#include <map>

#include "compiler/kir/affine.h"

namespace kiln::codegen::cpu {
namespace {

bool isVarOf(const kir::Expr& e, const kir::IterVar& v) {
  return e->kind == kir::ExprNode::Kind::kVar && e->var_id == v.id;
}

bool anyLoad(const kir::Expr& e) {
  if (e->kind == kir::ExprNode::Kind::kLoad) return true;
  return std::any_of(e->operands.begin(), e->operands.end(), anyLoad);
}

// How many leading axes stage `s` could share with others (0: none).
int groupableAxes(const kir::Kernel& kernel, size_t s, const ContractionPlan* plan) {
  const kir::Stage& stage = kernel.stages[s];
  if (stage.kind != kir::Stage::Kind::kStore || kir::isDynamic(kernel, stage) || stage.axes.size() < 2) return 0;
  for (const kir::Expr& index : stage.store_index)
    if (anyLoad(index)) return 0;
  if (!kir::storesDistinctAffine(stage)) return 0;
  if (!plan) return static_cast<int>(stage.axes.size()) - 1;
  int axes = 0;
  while (axes < static_cast<int>(plan->outer_axes.size()) && plan->outer_axes[static_cast<size_t>(axes)] == axes)
    ++axes;
  return axes;
}

// One access of a buffer parameter: its indices, in the stage that makes it.
struct Access {
  size_t stage;
  const std::vector<kir::Expr>* index;
};

void collectLoads(const kir::Expr& e, size_t stage, std::map<int, std::vector<Access>>& out) {
  if (e->kind == kir::ExprNode::Kind::kLoad) out[e->buffer].push_back({stage, &e->operands});
  for (const kir::Expr& op : e->operands) collectLoads(op, stage, out);
}

// Whether the stages [first, end) keep to their own point of the first
// `axes` axes in every buffer one of them writes and another touches.
bool pointsIsolated(const kir::Kernel& kernel, size_t first, size_t end, int axes) {
  std::map<int, std::vector<Access>> accesses;
  std::map<int, std::vector<size_t>> writers;
  for (size_t s = first; s < end; ++s) {
    const kir::Stage& stage = kernel.stages[s];
    accesses[stage.buffer].push_back({s, &stage.store_index});
    writers[stage.buffer].push_back(s);
    collectLoads(stage.value, s, accesses);
  }
  for (const auto& written : writers) {
    const std::vector<size_t>& stages = written.second;
    const std::vector<Access>& all = accesses[written.first];
    if (std::all_of(all.begin(), all.end(), [&](const Access& a) { return a.stage == stages[0]; })) continue;
    // The dims the writer indexes with the group axes, in order.
    const kir::Stage& writer = kernel.stages[stages[0]];
    std::vector<size_t> dims;
    for (int a = 0; a < axes; ++a) {
      const kir::IterVar& v = writer.axes[static_cast<size_t>(a)];
      auto it = std::find_if(writer.store_index.begin(), writer.store_index.end(),
                             [&](const kir::Expr& e) { return isVarOf(e, v); });
      if (it == writer.store_index.end()) return false;
      dims.push_back(static_cast<size_t>(it - writer.store_index.begin()));
    }
    for (const Access& access : all) {
      const kir::Stage& stage = kernel.stages[access.stage];
      for (int a = 0; a < axes; ++a) {
        const size_t d = dims[static_cast<size_t>(a)];
        if (d >= access.index->size() || !isVarOf((*access.index)[d], stage.axes[static_cast<size_t>(a)])) return false;
      }
    }
  }
  return true;
}

// The group axes of stages [first, end), each allowing `allowed[s]`: the
// most that share extents and keep the points apart, or 0.
int groupAxes(const kir::Kernel& kernel, size_t first, size_t end, const std::vector<int>& allowed) {
  int axes = *std::min_element(allowed.begin() + static_cast<std::ptrdiff_t>(first),
                               allowed.begin() + static_cast<std::ptrdiff_t>(end));
  const kir::Stage& lead = kernel.stages[first];
  for (size_t s = first + 1; s < end; ++s)
    for (int a = 0; a < axes; ++a)
      if (kernel.stages[s].axes[static_cast<size_t>(a)].extent != lead.axes[static_cast<size_t>(a)].extent) axes = a;
  for (; axes > 0; --axes)
    if (pointsIsolated(kernel, first, end, axes)) return axes;
  return 0;
}

}  // namespace

std::vector<StageGroup> planStageGroups(const kir::Kernel& kernel, const std::vector<const ContractionPlan*>& plans,
                                        const std::vector<bool>& excluded) {
  const size_t n = kernel.stages.size();
  std::vector<int> allowed(n);
  for (size_t s = 0; s < n; ++s) allowed[s] = excluded[s] ? 0 : groupableAxes(kernel, s, plans[s]);
  auto points = [&](size_t s, int axes) {
    int64_t p = 1;
    for (int a = 0; a < axes; ++a) p *= kernel.stages[s].axes[static_cast<size_t>(a)].extent;
    return p;
  };
  std::vector<StageGroup> groups;
  for (size_t first = 0; first < n;) {
    // The longest run from `first` that still has group axes with enough points.
    size_t end = first + 1;
    int axes = 0;
    while (end < n) {
      const int next = groupAxes(kernel, first, end + 1, allowed);
      if (next == 0 || points(first, next) < kMinGroupPoints) break;
      axes = next;
      ++end;
    }
    if (end - first >= 2) {
      StageGroup g{first, end, axes, points(first, axes)};
      int64_t per_point = 0;  // elements the stages write per point
      for (size_t s = first; s < end; ++s) {
        int64_t elements = 1;
        for (size_t a = static_cast<size_t>(axes); a < kernel.stages[s].axes.size(); ++a)
          elements *= kernel.stages[s].axes[a].extent;
        per_point += elements;
      }
      const int64_t most = std::max<int64_t>(1, g.points / kGroupTargetTasks);
      g.points_per_task = std::clamp<int64_t>(kGroupTaskElements / std::max<int64_t>(1, per_point), 1, most);
      groups.push_back(g);
    }
    first = end;
  }
  return groups;
}

}  // namespace kiln::codegen::cpu
