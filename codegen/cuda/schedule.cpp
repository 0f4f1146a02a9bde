#include "codegen/cuda/schedule.h"

#include <algorithm>
#include <map>
#include <utility>
#include <vector>

#include "compiler/kir/affine.h"

namespace kiln::codegen::cuda {
namespace {

constexpr int64_t kBlockThreads = 256;
// Past this many blocks a grid-stride loop covers the rest: 16 waves of full
// blocks on a 132-SM H100 is far beyond what keeps every SM busy.
constexpr int64_t kMaxBlocks = 1 << 16;
// A reduction at least this long is split across a warp's lanes: a thread
// looping over it alone leaves too few threads to hide memory latency (128
// rows of LayerNorm statistics are 128 threads).
constexpr int64_t kMinWarpReduction = 64;
// Row groups of fewer rows get a block per row: a warp each would leave
// most of a 132-SM GPU's warp slots empty.
constexpr int64_t kBlockPerRowBelow = 1024;
// A thread computes several consecutive points of a stage's innermost axis
// (16 bytes of its widest store) when the stage keeps at least
// kMinVectorThreads threads (64 resident warps on each of 132 SMs, with
// room to spare).
constexpr int64_t kVectorBytes = 16;
constexpr int64_t kMinVectorThreads = int64_t{1} << 18;

void collectReduces(const kir::Expr& e, bool under_select, std::vector<std::pair<const kir::ExprNode*, bool>>& out) {
  const kir::ExprNode& n = *e;
  if (n.kind == kir::ExprNode::Kind::kReduce) {
    out.emplace_back(&n, under_select);
    return;
  }
  for (size_t i = 0; i < n.operands.size(); ++i)
    collectReduces(n.operands[i], under_select || (n.kind == kir::ExprNode::Kind::kSelect && i > 0), out);
}

// The stage's one float32 reduction, when it is long enough to share across
// a warp and always evaluated (not inside a select arm, which may guard its
// loads).
const kir::ExprNode* warpReduction(const kir::Stage& stage) {
  std::vector<std::pair<const kir::ExprNode*, bool>> reduces;
  collectReduces(stage.value, false, reduces);
  if (reduces.empty()) return nullptr;
  const kir::ExprNode* first = reduces[0].first;
  for (const auto& [node, under_select] : reduces)
    if (node != first || under_select) return nullptr;
  if (first->dtype != ir::DType::kFloat32) return nullptr;
  int64_t length = 1;
  for (const kir::IterVar& v : first->reduce_vars) length *= v.extent;
  return length >= kMinWarpReduction ? first : nullptr;
}

bool storesAtAxes(const kir::Kernel& kernel, const kir::Stage& stage) {
  if (stage.kind != kir::Stage::Kind::kStore || stage.store_index.size() != stage.axes.size()) return false;
  std::vector<int64_t> shape;
  for (size_t d = 0; d < stage.axes.size(); ++d) {
    if (stage.store_index[d]->kind != kir::ExprNode::Kind::kVar || stage.store_index[d]->var_id != stage.axes[d].id)
      return false;
    shape.push_back(stage.axes[d].extent);
  }
  return kernel.params[static_cast<size_t>(stage.buffer)].shape == shape;
}

// The extents other than 1, in order: rows of [1, 128, 1] and [1, 128] agree.
std::vector<int64_t> nonUnitExtents(const std::vector<kir::IterVar>& axes, size_t count) {
  std::vector<int64_t> out;
  for (size_t d = 0; d < count; ++d)
    if (axes[d].extent != 1) out.push_back(axes[d].extent);
  return out;
}

// Whether every load in `e` of a parameter in `row_values` reads exactly
// the element of the row that `row_axes` index (row-major over them).
bool readsOnlyOwnRow(const kir::Kernel& kernel, const kir::Expr& e, const std::vector<int>& row_values,
                     const std::vector<kir::IterVar>& row_axes) {
  const kir::ExprNode& n = *e;
  if (n.kind == kir::ExprNode::Kind::kLoad &&
      std::find(row_values.begin(), row_values.end(), n.buffer) != row_values.end()) {
    auto flat = kir::flatIndex(kernel, n);
    if (!flat || flat->offset != 0) return false;
    int64_t stride = 1;
    std::map<int, int64_t> want;
    for (size_t d = row_axes.size(); d-- > 0;) {
      if (row_axes[d].extent != 1) want[row_axes[d].id] = stride;
      stride *= row_axes[d].extent;
    }
    std::map<int, int64_t> got;
    for (auto [var, c] : flat->coeff)
      if (c != 0) got[var] = c;
    for (const kir::IterVar& v : row_axes)
      if (v.extent == 1) got.erase(v.id);
    if (got != want) return false;
  }
  return std::all_of(n.operands.begin(), n.operands.end(),
                     [&](const kir::Expr& op) { return readsOnlyOwnRow(kernel, op, row_values, row_axes); });
}

void collectLoads(const kir::Expr& e, std::vector<int>& out) {
  if (e->kind == kir::ExprNode::Kind::kLoad) out.push_back(e->buffer);
  for (const kir::Expr& op : e->operands) collectLoads(op, out);
}

}  // namespace

std::optional<RowGroup> planRowGroup(const kir::Kernel& kernel, size_t first,
                                     const std::function<bool(int, int)>& aliases) {
  RowGroup group;
  group.first = first;
  std::vector<int> row_values;  // parameters the group's reductions write
  std::vector<int64_t> row_shape;
  size_t s = first;
  for (; s < kernel.stages.size(); ++s) {
    const kir::Stage& stage = kernel.stages[s];
    if (!storesAtAxes(kernel, stage) || kir::isDynamic(kernel, stage) || !warpReduction(stage)) break;
    int64_t points = stagePoints(stage);
    std::vector<int64_t> shape = nonUnitExtents(stage.axes, stage.axes.size());
    if (s > first && (points != group.rows || shape != row_shape)) break;
    if (!readsOnlyOwnRow(kernel, stage.value, row_values, stage.axes)) break;
    group.rows = points;
    row_shape = shape;
    row_values.push_back(stage.buffer);
    group.row_axes.push_back(static_cast<int>(stage.axes.size()));
  }
  if (row_values.empty() || s >= kernel.stages.size() || group.rows <= 0) return std::nullopt;
  // The elementwise stage: no reduction, its leading axes the same rows.
  const kir::Stage& last = kernel.stages[s];
  std::vector<std::pair<const kir::ExprNode*, bool>> reduces;
  collectReduces(last.value, false, reduces);
  if (last.kind != kir::Stage::Kind::kStore || !reduces.empty() || !kir::writesDistinctElements(last) ||
      kir::isDynamic(kernel, last) || last.axes.empty())
    return std::nullopt;
  size_t p = 0;
  int64_t product = 1;
  while (p < last.axes.size() && product < group.rows) product *= last.axes[p++].extent;
  while (p < last.axes.size() && last.axes[p].extent == 1) ++p;
  if (product != group.rows || nonUnitExtents(last.axes, p) != row_shape) return std::nullopt;
  std::vector<kir::IterVar> last_rows(last.axes.begin(), last.axes.begin() + static_cast<std::ptrdiff_t>(p));
  if (!readsOnlyOwnRow(kernel, last.value, row_values, last_rows)) return std::nullopt;
  group.row_axes.push_back(static_cast<int>(p));
  group.count = s - first + 1;
  // Warps share nothing but the row values they write: no buffer the group
  // writes may be another name for one it reads.
  std::vector<int> written = row_values, read;
  written.push_back(last.buffer);
  for (size_t t = first; t <= s; ++t) collectLoads(kernel.stages[t].value, read);
  for (int w : written)
    for (int r : read)
      if ((r == w || aliases(r, w)) && (r != w || r == last.buffer ||
                                        std::find(row_values.begin(), row_values.end(), r) == row_values.end()))
        return std::nullopt;
  for (size_t i = 0; i < written.size(); ++i)
    for (size_t j = i + 1; j < written.size(); ++j)
      if (written[i] == written[j] || aliases(written[i], written[j])) return std::nullopt;
  // The longest loop a row's threads share: a reduction or the last stage's inner elements.
  int64_t longest = 1;
  for (size_t t = first; t < s; ++t) {
    int64_t length = 1;
    for (const kir::IterVar& v : warpReduction(kernel.stages[t])->reduce_vars) length *= v.extent;
    longest = std::max(longest, length);
  }
  longest = std::max(longest, stagePoints(last) / group.rows);
  if (group.rows < kBlockPerRowBelow && longest >= 128) {
    // A block per row, about 2 to 4 elements per thread.
    group.block_per_row = true;
    group.block = static_cast<uint32_t>(std::clamp<int64_t>((longest / 3 + 31) / 32 * 32, 64, kBlockThreads));
    group.grid = static_cast<uint32_t>(std::min<int64_t>(group.rows, kMaxBlocks));
    return group;
  }
  int64_t lanes = group.rows * 32;
  group.block = static_cast<uint32_t>(std::min<int64_t>(lanes, kBlockThreads));
  group.grid = static_cast<uint32_t>(std::clamp<int64_t>((lanes + group.block - 1) / group.block, 1, kMaxBlocks));
  return group;
}

int64_t stagePoints(const kir::Stage& stage) {
  int64_t points = 1;
  for (const kir::IterVar& v : stage.axes) points *= v.extent;
  return points;
}

// Points per thread for `stage`'s vector schedule (1: none; not for a
// stage with a reduction: MobileNetV2's depthwise convolutions at batch 32
// took 69 us a launch with four channels per thread against 25 with one,
// their loads no longer coalesced): its stored
// elements of `bytes` (and `copy_bytes`) each, side by side along the
// innermost axis from a multiple of the count.
int64_t vectorWidth(const kir::Kernel& kernel, const kir::Stage& stage, int bytes, int copy_bytes) {
  std::vector<std::pair<const kir::ExprNode*, bool>> reduces;
  collectReduces(stage.value, false, reduces);
  if (!reduces.empty() || kir::isDynamic(kernel, stage) || (bytes != 2 && bytes != 4) ||
      (copy_bytes != 0 && copy_bytes != 2 && copy_bytes != 4))
    return 1;
  auto flat = kir::flatStoreIndex(kernel, stage);
  if (!flat) return 1;
  const kir::IterVar& inner = stage.axes.back();
  if (flat->of(inner.id) != 1) return 1;
  int64_t v = kVectorBytes / std::max(bytes, copy_bytes);
  auto aligned = [&](int64_t width) {
    if (inner.extent % width != 0 || flat->offset % width != 0) return false;
    for (auto [var, c] : flat->coeff)
      if (var != inner.id && c % width != 0) return false;
    return true;
  };
  while (v > 1 && !aligned(v)) v /= 2;
  return v;
}

LaunchSchedule scheduleStage(const kir::Kernel& kernel, const kir::Stage& stage,
                             const std::function<std::pair<int, int>(int)>& element_bytes) {
  LaunchSchedule schedule;
  if (!kir::storesDistinctAffine(stage) || stage.axes.empty()) return schedule;
  // A thread per output element: every axis is parallel.
  schedule.parallel_axes = static_cast<int>(stage.axes.size());
  schedule.threads = stagePoints(stage);
  if ((schedule.warp_reduce = warpReduction(stage))) schedule.threads *= 32;
  if (!schedule.warp_reduce && stage.kind == kir::Stage::Kind::kStore) {
    auto [bytes, copy_bytes] = element_bytes(stage.buffer);
    int64_t v = vectorWidth(kernel, stage, bytes, copy_bytes);
    while (v > 1 && schedule.threads / v < kMinVectorThreads) v /= 2;
    schedule.vector = v;
    schedule.threads /= v;
  }
  // Whole warps; an empty stage (0 points) keeps one warp and is never launched.
  int64_t block = std::clamp<int64_t>((schedule.threads + 31) / 32 * 32, 32, kBlockThreads);
  schedule.block = static_cast<uint32_t>(block);
  schedule.grid = static_cast<uint32_t>(std::clamp<int64_t>((schedule.threads + block - 1) / block, 1, kMaxBlocks));
  schedule.index32 = schedule.threads < (int64_t{1} << 31) - kBlockThreads * kMaxBlocks;
  return schedule;
}

}  // namespace kiln::codegen::cuda
