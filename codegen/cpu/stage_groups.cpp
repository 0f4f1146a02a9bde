#include "codegen/cpu/stage_groups.h"

#include <algorithm>
#include <map>

#include "compiler/kir/affine.h"

namespace kiln::codegen::cpu {
namespace {

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

// A run of stages being grown from its first, with what keeps its points
// apart: every buffer that one stage of the run writes and another touches
// is indexed, in every access, by the group axes' own variables at the
// positions where its first writer stores them. Each access is checked
// once, when its buffer becomes shared or when it joins, so growing a run
// of n stages (an unrolled recurrence: thousands) costs O(n), not O(n^2).
class Run {
 public:
  Run(const kir::Kernel& kernel, size_t first, int axes) : kernel_(kernel), first_(first), axes_(axes) { add(first); }

  int axes() const { return axes_; }

  // The group axes the run would have with stage `s` added (0: none).
  int axesWith(size_t s, int allowed) const {
    int axes = std::min(axes_, allowed);
    for (int a = 0; a < axes; ++a)
      if (kernel_.stages[s].axes[static_cast<size_t>(a)].extent !=
          kernel_.stages[first_].axes[static_cast<size_t>(a)].extent)
        axes = a;
    for (const auto& [buffer, added] : accessesOf(s)) {
      auto it = uses_.find(buffer);
      const Use empty;
      const Use& use = it == uses_.end() ? empty : it->second;
      const size_t writer = use.writer >= 0 ? static_cast<size_t>(use.writer) : writesBuffer(s, buffer) ? s : SIZE_MAX;
      if (writer == SIZE_MAX) continue;  // only read in the run
      const bool shared = use.shared || touchedByOthers(use.accesses, writer) || touchedByOthers(added, writer);
      if (!shared) continue;
      const std::vector<int> dims = groupDims(writer, axes);
      if (!use.shared)  // shared from now on: what the run already did is checked too
        for (const Access& x : use.accesses) axes = std::min(axes, alignedAxes(x, dims));
      for (const Access& x : added) axes = std::min(axes, alignedAxes(x, dims));
    }
    return axes;
  }

  // Adds stage `s`, whose axesWith gave `axes`.
  void add(size_t s, int axes) {
    axes_ = axes;
    add(s);
  }

 private:
  struct Use {
    std::vector<Access> accesses;
    int writer = -1;      // the first stage of the run that writes the buffer
    bool shared = false;  // written, and touched by another stage than that
  };

  void add(size_t s) {
    for (auto& [buffer, added] : accessesOf(s)) {
      Use& use = uses_[buffer];
      if (use.writer < 0 && writesBuffer(s, buffer)) use.writer = static_cast<int>(s);
      use.accesses.insert(use.accesses.end(), added.begin(), added.end());
      if (use.writer >= 0 && !use.shared) use.shared = touchedByOthers(use.accesses, static_cast<size_t>(use.writer));
    }
  }

  // Whether an access of `accesses` is made by another stage than `writer`.
  static bool touchedByOthers(const std::vector<Access>& accesses, size_t writer) {
    return std::any_of(accesses.begin(), accesses.end(), [&](const Access& x) { return x.stage != writer; });
  }

  std::map<int, std::vector<Access>> accessesOf(size_t s) const {
    const kir::Stage& stage = kernel_.stages[s];
    std::map<int, std::vector<Access>> accesses;
    accesses[stage.buffer].push_back({s, &stage.store_index});
    collectLoads(stage.value, s, accesses);
    return accesses;
  }

  bool writesBuffer(size_t s, int buffer) const { return kernel_.stages[s].buffer == buffer; }

  // Where stage `writer` stores the first `axes` group axes' variables (-1: nowhere).
  std::vector<int> groupDims(size_t writer, int axes) const {
    const kir::Stage& stage = kernel_.stages[writer];
    std::vector<int> dims;
    for (int a = 0; a < axes; ++a) {
      const kir::IterVar& v = stage.axes[static_cast<size_t>(a)];
      auto it = std::find_if(stage.store_index.begin(), stage.store_index.end(),
                             [&](const kir::Expr& e) { return kir::isVar(e, v.id); });
      dims.push_back(it == stage.store_index.end() ? -1 : static_cast<int>(it - stage.store_index.begin()));
    }
    return dims;
  }

  // How many leading group axes access `x` indexes by its stage's own
  // variables at `dims`.
  int alignedAxes(const Access& x, const std::vector<int>& dims) const {
    const kir::Stage& stage = kernel_.stages[x.stage];
    int a = 0;
    for (; a < static_cast<int>(dims.size()); ++a) {
      const int d = dims[static_cast<size_t>(a)];
      if (d < 0 || d >= static_cast<int>(x.index->size()) ||
          !kir::isVar((*x.index)[static_cast<size_t>(d)], stage.axes[static_cast<size_t>(a)].id))
        break;
    }
    return a;
  }

  const kir::Kernel& kernel_;
  size_t first_;
  int axes_;
  std::map<int, Use> uses_;
};

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
    Run run(kernel, first, allowed[first]);
    size_t end = first + 1;
    for (; end < n; ++end) {
      const int next = run.axesWith(end, allowed[end]);
      if (next == 0 || points(first, next) < kMinGroupPoints) break;
      run.add(end, next);
    }
    const int axes = run.axes();
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
