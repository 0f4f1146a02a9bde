#include "codegen/cpu/contraction.h"

#include <algorithm>
#include <cstring>
#include <map>

#include "compiler/kir/affine.h"

namespace kiln::codegen::cpu {
namespace {

using kir::ExprNode;

using kir::Affine;
using kir::affine;
using kir::dependsOn;
using kir::flatIndex;

void collectReduces(const kir::Expr& e, std::vector<const ExprNode*>& out) {
  const ExprNode& n = *e;
  if (n.kind == ExprNode::Kind::kReduce) {
    if (std::find(out.begin(), out.end(), &n) == out.end()) out.push_back(&n);
    return;
  }
  for (const kir::Expr& op : n.operands) collectReduces(op, out);
}

// Variables that decide a select's condition somewhere in `e` (padding guards).
void collectGuardVars(const kir::Expr& e, std::vector<int>& out) {
  const ExprNode& n = *e;
  if (n.kind == ExprNode::Kind::kSelect) {
    std::function<void(const kir::Expr&)> vars = [&](const kir::Expr& c) {
      if (c->kind == ExprNode::Kind::kVar) out.push_back(c->var_id);
      for (const kir::Expr& op : c->operands) vars(op);
    };
    vars(n.operands[0]);
  }
  for (const kir::Expr& op : n.operands) collectGuardVars(op, out);
}

bool storesAtAxes(const kir::Stage& stage) {
  if (stage.store_index.size() != stage.axes.size()) return false;
  for (size_t d = 0; d < stage.axes.size(); ++d) {
    const ExprNode& index = *stage.store_index[d];
    if (index.kind != ExprNode::Kind::kVar || index.var_id != stage.axes[d].id) return false;
  }
  return true;
}

// Register tile: rows x vectors accumulators plus the V vectors and one
// broadcast must fit AVX-512's 32 registers. Rows that load their own V
// (rows_read_vector) hold a row's V vectors, and for stride-2 reads both
// halves of each, besides the accumulators.
void chooseTile(ContractionPlan& plan, int64_t extent_v, int64_t extent_row) {
  static constexpr int kRowsForVectors[] = {0, 14, 12, 8, 6};
  static constexpr int kRowsReadingVector[] = {0, 8, 6, 4, 4};
  // Vectors per block: the fewest padding vectors over all blocks, then the
  // widest block. 96 lanes are two blocks of 3 vectors rather than one of 4
  // and one of 4 with 2 padding; 144 are three of 3 rather than three of 4.
  const int64_t needed = std::max<int64_t>(1, (extent_v + kVectorLanes - 1) / kVectorLanes);
  plan.vectors = static_cast<int>(std::min<int64_t>(needed, 4));
  int64_t least_padding = (needed + plan.vectors - 1) / plan.vectors * plan.vectors - needed;
  for (int v = plan.vectors - 1; v >= 2; --v) {
    const int64_t padding = (needed + v - 1) / v * v - needed;
    if (padding < least_padding) plan.vectors = v, least_padding = padding;
  }
  const int* table = plan.rows_read_vector ? kRowsReadingVector : kRowsForVectors;
  // As many rows as fit, spread evenly over the tiles: 7 rows are tiles of
  // 4 and 3 rather than 6 and a lone 1.
  const int64_t most = table[plan.vectors];
  const int64_t tiles = (extent_row + most - 1) / most;
  plan.rows = static_cast<int>(std::max<int64_t>(1, (extent_row + tiles - 1) / tiles));
}

// The extent of iteration variable `id` among the stage's axes and the
// reduction's variables; 0 when it is neither.
int64_t extentOf(const kir::Stage& stage, const ExprNode& reduce, int id) {
  for (const kir::IterVar& x : stage.axes)
    if (x.id == id) return x.extent;
  for (const kir::IterVar& x : reduce.reduce_vars)
    if (x.id == id) return x.extent;
  return 0;
}

// True when `a` stays within int32 over the whole iteration space (with
// headroom for a vector's lane offsets).
bool fitsInt32(const Affine& a, const kir::Stage& stage, const ExprNode& reduce) {
  constexpr int64_t kLimit = int64_t{1} << 30;
  int64_t lo = a.offset, hi = a.offset;
  for (auto [var, c] : a.coeff) {
    int64_t extent = extentOf(stage, reduce, var);
    if (extent <= 0 || extent >= kLimit || c >= kLimit || c <= -kLimit) return false;
    (c < 0 ? lo : hi) += c * (extent - 1);
    if (lo <= -kLimit || hi >= kLimit) return false;
  }
  return true;
}

constexpr int64_t kMinVectorExtent = 8;  // below this most lanes would idle
// A streaming plan replaces a packed one (streamingBeatsPacked) only when at
// least this share of its lanes does useful work.
constexpr double kMinStreamingLaneUse = 0.75;

// Load nodes in `e`, counted as a tree.
int loadSites(const kir::Expr& e) {
  int n = e->kind == ExprNode::Kind::kLoad;
  for (const kir::Expr& op : e->operands) n += loadSites(op);
  return n;
}

bool hasSelect(const kir::Expr& e) {
  if (e->kind == ExprNode::Kind::kSelect) return true;
  for (const kir::Expr& op : e->operands)
    if (hasSelect(op)) return true;
  return false;
}

// The comparisons of a guard `c1 && c2 && ...`, each as an affine difference
// `lhs - rhs` against 0; false when the guard has another form.
bool laneConditions(const kir::Expr& cond, std::vector<ContractionPlan::LaneCondition>& out) {
  const ExprNode& n = *cond;
  if (n.kind != ExprNode::Kind::kBinary) return false;
  auto op = static_cast<kir::BinaryOp>(n.op);
  if (op == kir::BinaryOp::kAnd)
    return n.dtype == ir::DType::kBool && laneConditions(n.operands[0], out) && laneConditions(n.operands[1], out);
  if (op != kir::BinaryOp::kLt && op != kir::BinaryOp::kLe && op != kir::BinaryOp::kGt && op != kir::BinaryOp::kGe)
    return false;
  if (n.operands[0].dtype() != ir::DType::kInt64 || !affine(n.operands[0]) || !affine(n.operands[1])) return false;
  out.push_back({n.operands[0] - n.operands[1], 0, 0, op});
  return true;
}

// offset + sum(coeff * var) as an int64 expression.
kir::Expr affineExpr(const Affine& a) {
  kir::Expr sum = kir::Expr::index(a.offset);
  for (auto [var, c] : a.coeff) {
    if (c == 0) continue;
    kir::Expr v(kir::IterVar{var, 1, "v"});
    sum = sum + (c == 1 ? v : v * kir::Expr::index(c));
  }
  return sum;
}

double laneUse(int64_t extent) {
  int64_t padded = (extent + kVectorLanes - 1) / kVectorLanes * kVectorLanes;
  return static_cast<double>(extent) / static_cast<double>(padded);
}

// A packed plan usually wins: its weights stream sequentially. It loses to
// streaming along another axis (an NCHW convolution's output row) when that
// axis keeps most lanes busy and the packed plan either broadcasts a guarded
// operand (bounds checks once per row per reduction step) or vectorizes an
// axis that is not the output's innermost (its epilogue stores one element
// at a time, at a stride).
bool streamingBeatsPacked(const kir::Stage& stage, const ContractionPlan& packed, const ContractionPlan& streaming) {
  if (!packed.packed || laneUse(vectorExtent(stage, streaming)) < kMinStreamingLaneUse) return false;
  bool strided_stores = packed.v_axis + 1 != static_cast<int>(stage.axes.size());
  return (hasSelect(packed.scalar) && !packed.hoisted_scalar_guard) || strided_stores;
}

// S can be read as a vector along output axis `id` (ContractionPlan::scalar_vector):
// a float32 load at unit stride in it.
bool loadsAlong(const kir::Kernel& kernel, const kir::Expr& s, int id) {
  if (s->kind != ExprNode::Kind::kLoad || s->dtype != ir::DType::kFloat32) return false;
  std::optional<Affine> flat = flatIndex(kernel, *s);
  return flat && flat->of(id) == 1;
}

// A broadcast S = select(guard, load, 0) whose guard the innermost
// reduction variable leaves alone: hoisted (ContractionPlan::hoisted_scalar_guard).
// Packed plans, and streaming ones whose V is a plain load (a grouped
// convolution's weight read along the group's filters): not where S is a
// vector or serves every row (rows_read_vector, scalar_vector).
void hoistScalarGuard(const kir::Kernel& kernel, ContractionPlan& plan) {
  const ExprNode& s = *plan.scalar;
  if (!plan.packed && (plan.guarded_load || plan.rows_read_vector || plan.scalar_vector)) return;
  if (plan.k_order.empty() || s.kind != ExprNode::Kind::kSelect) return;
  const ExprNode& zero = *s.operands[2];
  const ExprNode& load = *s.operands[1];
  if (zero.kind != ExprNode::Kind::kConst || zero.value != 0 || load.kind != ExprNode::Kind::kLoad ||
      load.dtype != ir::DType::kFloat32)
    return;
  const int inner = plan.k_order.back().id;
  std::optional<Affine> flat = flatIndex(kernel, load);
  if (!flat || dependsOn(s.operands[0], inner) || flat->of(inner) <= 0) return;
  plan.hoisted_scalar_guard = true;
  plan.scalar_k_stride = flat->of(inner);
}

// cast<i32>(load) of an 8-bit buffer: the load, else nullptr.
const ExprNode* widenedByteLoad(const kir::Expr& e) {
  if (e->kind != ExprNode::Kind::kCast || e->dtype != ir::DType::kInt32) return nullptr;
  const ExprNode& load = *e->operands[0];
  if (load.kind != ExprNode::Kind::kLoad) return nullptr;
  return load.dtype == ir::DType::kInt8 || load.dtype == ir::DType::kUInt8 ? &load : nullptr;
}

// Weights vpdpbusd can take as its signed operand: int8, or uint8 that all
// lie below 128 (the same values).
bool signedBytes(const ir::Tensor& weights) {
  if (weights.dtype() == ir::DType::kInt8) return true;
  if (weights.dtype() != ir::DType::kUInt8) return false;
  for (std::byte b : weights.bytes())
    if (static_cast<uint8_t>(b) >= 128) return false;
  return true;
}

// True when every (v, k) of `flat` reads inside `count` elements.
bool readsInside(const Affine& flat, const kir::Stage& stage, const ExprNode& reduce, int64_t count) {
  int64_t lo = flat.offset, hi = flat.offset;
  for (auto [var, c] : flat.coeff) (c < 0 ? lo : hi) += c * (extentOf(stage, reduce, var) - 1);
  return lo >= 0 && hi < count;
}

int mergeableOuterAxis(const kir::Kernel& kernel, const kir::Stage& stage, const ExprNode& reduce,
                       const ContractionPlan& plan, const Affine& flat, const kir::Expr& s_expr,
                       const kir::Expr& v_expr);

constexpr int64_t kAmxTileRows = 16;
constexpr int64_t kAmxTileBytes = 64;  // k per tile step
// Below 4 output rows a tile step does less work than a few vpdpbusd.
constexpr int64_t kMinAmxRows = 4;
constexpr int64_t kAmxTaskRows = 256;

// An int8 plan with output rows whose S steps a fixed number of bytes per
// row, and whole groups of four k along the innermost variable, at least
// one tile step of them, runs on AMX tiles (ContractionPlan::amx): up to
// two row tiles (amxTileRows) by two vectors.
// Rows per AMX register tile: up to two tiles of 16 rows, the rows spread
// evenly over the tiles (70 rows: 24, 24 and 22).
int amxTileRows(int64_t extent_row) {
  const int64_t tiles = (extent_row + 2 * kAmxTileRows - 1) / (2 * kAmxTileRows);
  return static_cast<int>((extent_row + tiles - 1) / tiles);
}

void useAmxTiles(const kir::Stage& stage, const Affine& s_flat, ContractionPlan& plan) {
  const int64_t depth = plan.k_order.back().extent;
  const int64_t extent_row = rowExtent(stage, plan);
  if (plan.row_axis < 0 || depth % 4 != 0 || depth < kAmxTileBytes || extent_row < kMinAmxRows) return;
  const int64_t row_stride = s_flat.of(stage.axes[plan.row_axis].id);
  if (row_stride <= 0) return;
  plan.amx = true;
  plan.scalar_row_stride = row_stride;
  for (const kir::IterVar& k : plan.k_order) plan.scalar_k_strides.push_back(s_flat.of(k.id));
  plan.vectors = vectorExtent(stage, plan) > kVectorLanes ? 2 : 1;
  plan.rows = amxTileRows(extent_row);
  const int64_t tiles = (extent_row + plan.rows - 1) / plan.rows;
  // A task's sums wait in a stack buffer for the epilogue: at most 256 rows.
  plan.row_chunks = (tiles + kAmxTaskRows / plan.rows - 1) / (kAmxTaskRows / plan.rows);
}

// sum_k cast<i32>(S) * cast<i32>(V) with V a constant int8 weight read along
// one output axis (or two that merge into one run) and S an 8-bit load contiguous along one reduction
// variable: the VNNI plan (dot_group 4). That variable runs innermost, in
// groups of four; any others (a convolution's kernel offsets) run outside it.
std::optional<ContractionPlan> planInt8Contraction(const kir::Kernel& kernel, const kir::Stage& stage,
                                                   const ExprNode& reduce, const ConstantOf& constant_of,
                                                   const ContractionIsa& isa) {
  if (reduce.reduce_vars.empty()) return std::nullopt;
  const ExprNode& body = *reduce.operands[0];
  if (body.kind != ExprNode::Kind::kBinary || static_cast<kir::BinaryOp>(body.op) != kir::BinaryOp::kMul)
    return std::nullopt;
  for (int vi : {1, 0}) {
    const ExprNode* v_load = widenedByteLoad(body.operands[vi]);
    const ExprNode* s_load = widenedByteLoad(body.operands[1 - vi]);
    if (!v_load || !s_load) continue;
    const ir::Tensor* weights = constant_of(v_load->buffer);
    if (!weights || !signedBytes(*weights)) continue;
    std::optional<Affine> v_flat = flatIndex(kernel, *v_load);
    std::optional<Affine> s_flat = flatIndex(kernel, *s_load);
    if (!v_flat || !s_flat) continue;
    auto contiguous = std::find_if(reduce.reduce_vars.begin(), reduce.reduce_vars.end(),
                                   [&](const kir::IterVar& k) { return s_flat->of(k.id) == 1; });
    if (contiguous == reduce.reduce_vars.end()) continue;
    ContractionPlan plan;
    std::vector<int> v_axes;  // output axes V reads along
    for (size_t a = 0; a < stage.axes.size(); ++a)
      if (v_flat->of(stage.axes[a].id) != 0) v_axes.push_back(static_cast<int>(a));
    if (v_axes.empty() || v_axes.size() > 2) continue;
    plan.v_axis = v_axes.back();
    if (v_axes.size() == 2) {
      // Two axes that are one run of V and of the output (a head split
      // Reshape fused after a projection, [S, 768] stored as [S, 12, 64]):
      // one merged vector index, packed along it.
      plan.v_outer_axis = mergeableOuterAxis(kernel, stage, reduce, plan, *v_flat, body.operands[1 - vi],
                                             body.operands[vi]);
      if (plan.v_outer_axis != v_axes[0]) continue;
    }
    if (s_flat->of(stage.axes[plan.v_axis].id) != 0) continue;
    const kir::IterVar& v = stage.axes[plan.v_axis];
    if (vectorExtent(stage, plan) < kMinVectorExtent || !readsInside(*v_flat, stage, reduce, weights->elementCount()))
      continue;
    auto vector_axis = [&](size_t a) {
      return static_cast<int>(a) == plan.v_axis || static_cast<int>(a) == plan.v_outer_axis;
    };
    for (size_t a = 0; a < stage.axes.size(); ++a)
      if (!vector_axis(a) && s_flat->of(stage.axes[a].id) != 0) plan.row_axis = static_cast<int>(a);
    for (size_t a = 0; a < stage.axes.size(); ++a)
      if (!vector_axis(a) && static_cast<int>(a) != plan.row_axis) plan.outer_axes.push_back(static_cast<int>(a));
    for (const kir::IterVar& k : reduce.reduce_vars)
      if (k.id != contiguous->id) plan.k_order.push_back(k);
    plan.k_order.push_back(*contiguous);
    plan.packed = true;
    plan.pack_offset = v_flat->offset;
    plan.pack_v_stride = v_flat->of(v.id);
    for (const kir::IterVar& k : plan.k_order) plan.pack_k_strides.push_back(v_flat->of(k.id));
    plan.dot_group = 4;
    plan.scalar_signed = s_load->dtype == ir::DType::kInt8;
    plan.reduce = &reduce;
    plan.scalar = body.operands[1 - vi]->operands[0];
    plan.vector = body.operands[vi]->operands[0];
    chooseTile(plan, vectorExtent(stage, plan), rowExtent(stage, plan));
    if (isa.amx_int8) useAmxTiles(stage, *s_flat, plan);
    return plan;
  }
  return std::nullopt;
}

// True when, outside `reduce`, the variables `outer` and `v` appear only in
// the indices of loads that see them as one run (coefficient of outer =
// span * coefficient of v), and in no select arm: the merged epilogue binds
// v past its extent (outer fixed at the run's first lane), which only such
// loads read correctly.
bool readsMergedRuns(const kir::Kernel& kernel, const kir::Expr& e, const ExprNode& reduce, int outer, int v,
                     int64_t span) {
  const ExprNode& n = *e;
  if (&n == &reduce) return true;
  if (n.kind == ExprNode::Kind::kVar) return n.var_id != outer && n.var_id != v;
  if (n.kind == ExprNode::Kind::kLoad) {
    if (!dependsOn(e, outer) && !dependsOn(e, v)) return true;
    std::optional<Affine> flat = flatIndex(kernel, n);
    return flat && flat->of(outer) == span * flat->of(v);
  }
  if (n.kind == ExprNode::Kind::kSelect)
    for (size_t i = 1; i < n.operands.size(); ++i)
      if (dependsOn(n.operands[i], outer) || dependsOn(n.operands[i], v)) return false;
  for (const kir::Expr& op : n.operands)
    if (!readsMergedRuns(kernel, op, reduce, outer, v, span)) return false;
  return true;
}

// The output axis that merges with a streaming plan's v (see
// ContractionPlan::v_outer_axis), or -1. Only where another axis is left for
// the tile's rows (one that S reads and V does not), so depthwise
// convolutions keep their rows over output rows.
int mergeableOuterAxis(const kir::Kernel& kernel, const kir::Stage& stage, const ExprNode& reduce,
                       const ContractionPlan& plan, const Affine& flat, const kir::Expr& s_expr,
                       const kir::Expr& v_expr) {
  const kir::IterVar& v = stage.axes[plan.v_axis];
  if (plan.packed || flat.of(v.id) != 1) return -1;
  bool has_rows = false;
  for (size_t a = 0; a < stage.axes.size(); ++a) {
    int id = stage.axes[a].id;
    has_rows = has_rows || (static_cast<int>(a) != plan.v_axis && flat.of(id) == 0 && !dependsOn(v_expr, id) &&
                            dependsOn(s_expr, id));
  }
  if (!has_rows) return -1;
  std::optional<Affine> store = kir::flatStoreIndex(kernel, stage);
  if (!store) return -1;
  for (size_t a = 0; a < stage.axes.size(); ++a) {
    const kir::IterVar& outer = stage.axes[a];
    if (static_cast<int>(a) == plan.v_axis || outer.extent < 2 || flat.of(outer.id) != v.extent) continue;
    if (dependsOn(s_expr, outer.id) || store->of(outer.id) != v.extent * store->of(v.id)) continue;
    if (outer.extent * v.extent >= (int64_t{1} << 30)) continue;
    if (!readsMergedRuns(kernel, stage.value, reduce, outer.id, v.id, v.extent)) continue;
    return static_cast<int>(a);
  }
  return -1;
}

// How tasks split a plan's work (ContractionPlan::row_chunks): enough tasks
// to balance a few threads. Streaming plans sweep their blocks inside a
// task, row tile by row tile, and split rows before blocks.
void splitTasks(ContractionPlan& plan, const kir::Stage& stage) {
  if (plan.rows_read_vector || plan.dot_group != 1) return;
  constexpr int64_t kTargetTasks = 16;
  int64_t outer = 1;
  for (int a : plan.outer_axes) outer *= stage.axes[a].extent;
  const int64_t extent_row = rowExtent(stage, plan);
  const int64_t tiles = (extent_row + plan.rows - 1) / plan.rows;
  const int64_t blocks = (vectorExtent(stage, plan) + plan.blockLanes() - 1) / plan.blockLanes();
  if (plan.packed) {
    // A task per block; where that makes too few tasks to balance (BERT's
    // 768 output columns are 12 blocks: a late thread left a whole block's
    // time, 1/6 of the run, to the other), rows are split too.
    plan.row_chunks = std::clamp<int64_t>((kTargetTasks + outer * blocks - 1) / (outer * blocks), 1, tiles);
    return;
  }
  plan.rows_outside_blocks = true;
  plan.row_chunks = std::clamp<int64_t>((kTargetTasks + outer - 1) / outer, 1, tiles);
  plan.block_groups = std::clamp<int64_t>((kTargetTasks + outer * plan.row_chunks - 1) / (outer * plan.row_chunks), 1, blocks);
}

// A bf16 plan with output rows and a multiple of 32 k along the innermost
// variable runs on AMX-BF16 tiles (ContractionPlan::amx): row tiles of up to
// 32 rows (amxTileRows) by two vectors. A task takes as many row tiles as
// keep its rows of S in bf16 under 512 KiB (and its sums under kAmxTaskRows
// rows), so that each vector block's panel comes from memory once per task
// and its row tiles reuse it from cache; the blocks are split into enough
// groups to give a few threads tasks. With one row tile per task, BERT-base's
// 128 rows made four tasks read every panel of a 4.7 MB weight, which does
// not stay in cache between them.
void useAmxBf16(const kir::Stage& stage, ContractionPlan& plan) {
  constexpr int64_t kMaxRowsBytes = 512 * 1024;
  constexpr int64_t kTargetTasks = 16;
  const int64_t depth = plan.k_order.back().extent;
  const int64_t extent_row = rowExtent(stage, plan);
  if (plan.row_axis < 0 || plan.rows_read_vector || plan.scalar_vector || depth % 32 != 0 || extent_row < kMinAmxRows)
    return;
  const int rows = amxTileRows(extent_row);
  const int64_t tile_bytes = rows * reductionPoints(plan) * 2;
  if (tile_bytes > kMaxRowsBytes) return;
  const int64_t tiles = (extent_row + rows - 1) / rows;
  const int64_t per_task = std::clamp<int64_t>(std::min(kMaxRowsBytes / tile_bytes, kAmxTaskRows / rows), 1, tiles);
  plan.amx = true;
  plan.rows = rows;
  plan.vectors = vectorExtent(stage, plan) > kVectorLanes ? 2 : 1;
  plan.row_chunks = (tiles + per_task - 1) / per_task;
  int64_t outer = 1;
  for (int a : plan.outer_axes) outer *= stage.axes[a].extent;
  const int64_t blocks = (vectorExtent(stage, plan) + plan.blockLanes() - 1) / plan.blockLanes();
  plan.block_groups =
      std::clamp<int64_t>((kTargetTasks + outer * plan.row_chunks - 1) / (outer * plan.row_chunks), 1, blocks);
}

// ContractionPlan::staged_scalar, where it applies: a float32 FMA plan with
// output rows and one reduction variable whose S reads two loads or more,
// its tile's rows of S at most kMaxStagedBytes.
void useStagedScalar(ContractionPlan& plan) {
  constexpr int64_t kMaxStagedBytes = 64 * 1024;
  if (plan.dot_group != 1 || plan.amx || plan.row_axis < 0 || plan.k_order.size() != 1 || plan.rows_read_vector ||
      plan.scalar_vector || plan.hoisted_scalar_guard)
    return;
  plan.staged_scalar = loadSites(plan.scalar) >= 2 && plan.rows * plan.k_order[0].extent * 4 <= kMaxStagedBytes;
}

// ContractionPlan::half_last, where it applies.
void useHalfLastVector(const kir::Stage& stage, ContractionPlan& plan) {
  const int64_t extent = vectorExtent(stage, plan);
  const int64_t full = int64_t{plan.vectors - 1} * kVectorLanes;
  plan.half_last = plan.packed && plan.dot_group == 1 && !plan.amx && !plan.guarded_load && !plan.rows_read_vector &&
                   !plan.scalar_vector && plan.v_outer_axis < 0 && extent <= plan.blockLanes() && extent > full &&
                   extent <= full + kVectorLanes / 2;
}

// A packed plan whose S is a float32 load (or a hoisted guarded one)
// contiguous along its innermost reduction variable becomes a bf16
// dot-product plan (dot_group 2), when that variable runs at least
// kMinBf16DotDepth: S is converted to bf16 32 values at a time per outer
// reduction point, so a short innermost run pays a whole conversion for a
// few products. An RGB stem (3 channels innermost) ran 2.64 ms as a bf16
// plan against 0.85 ms in float32 on the AMX Xeon (ResNet-50's 7x7, 2
// threads), 1.38 against 1.23 ms on a Zen 4.
constexpr int64_t kMinBf16DotDepth = 16;

void useBf16Dot(const kir::Kernel& kernel, ContractionPlan& plan) {
  if (!plan.packed || plan.guarded_load || plan.rows_read_vector || plan.k_order.empty()) return;
  if (plan.k_order.back().extent < kMinBf16DotDepth) return;
  // A hoisted guard (a padded channels-last convolution) gives each row's
  // address per outer reduction point; the innermost variable must step
  // through contiguous floats from there.
  if (plan.hoisted_scalar_guard) {
    if (plan.scalar_k_stride == 1) plan.dot_group = 2;
    return;
  }
  const ExprNode& s = *plan.scalar;
  if (s.kind != ExprNode::Kind::kLoad || s.dtype != ir::DType::kFloat32) return;
  std::optional<Affine> flat = flatIndex(kernel, s);
  if (!flat || flat->of(plan.k_order.back().id) != 1) return;
  plan.dot_group = 2;
}

}  // namespace

std::optional<ContractionPlan> planContraction(const kir::Kernel& kernel, const kir::Stage& stage,
                                               const ConstantOf& constant_of, const ContractionIsa& isa) {
  if (isa.int8_dot && !stage.axes.empty() && storesAtAxes(stage)) {
    std::vector<const ExprNode*> reduces;
    collectReduces(stage.value, reduces);
    if (reduces.size() == 1 && static_cast<kir::ReduceOp>(reduces[0]->op) == kir::ReduceOp::kSum &&
        reduces[0]->dtype == ir::DType::kInt32)
      return planInt8Contraction(kernel, stage, *reduces[0], constant_of, isa);
  }
  if (stage.value.dtype() != ir::DType::kFloat32 || kernel.params[stage.buffer].dtype != ir::DType::kFloat32)
    return std::nullopt;
  // The output may be a slice of a larger buffer (a Concat's part, fusion's
  // copies_into_stores): the epilogue stores element by element at the
  // stage's own index, which only has to write each element once.
  if (stage.axes.empty() || !kir::storesDistinctAffine(stage)) return std::nullopt;
  std::vector<const ExprNode*> reduces;
  collectReduces(stage.value, reduces);
  if (reduces.size() != 1) return std::nullopt;
  const ExprNode& reduce = *reduces[0];
  if (static_cast<kir::ReduceOp>(reduce.op) != kir::ReduceOp::kSum || reduce.dtype != ir::DType::kFloat32)
    return std::nullopt;
  const ExprNode& body = *reduce.operands[0];
  if (body.kind != ExprNode::Kind::kBinary || static_cast<kir::BinaryOp>(body.op) != kir::BinaryOp::kMul)
    return std::nullopt;

  std::optional<ContractionPlan> best;
  for (int vi : {1, 0}) {
    const kir::Expr& v_expr = body.operands[vi];
    const kir::Expr& s_expr = body.operands[1 - vi];
    ContractionPlan plan;
    const ExprNode* load = &*v_expr;
    if (v_expr->kind == ExprNode::Kind::kSelect) {
      const ExprNode& zero = *v_expr->operands[2];
      if (zero.kind != ExprNode::Kind::kConst || zero.value != 0 || !laneConditions(v_expr->operands[0], plan.guard))
        continue;
      load = &*v_expr->operands[1];
      plan.guarded_load = load;
    }
    if (load->kind != ExprNode::Kind::kLoad || load->dtype != ir::DType::kFloat32) continue;
    std::optional<Affine> flat = flatIndex(kernel, *load);
    if (!flat) continue;
    std::vector<int> v_axes;  // output axes V depends on
    for (size_t a = 0; a < stage.axes.size(); ++a)
      if (flat->of(stage.axes[a].id) != 0) v_axes.push_back(static_cast<int>(a));

    const ir::Tensor* weights = plan.guarded_load ? nullptr : constant_of(load->buffer);
    // A weight read along two output axes that are one run of it and of the
    // output (a projection with a head-split Reshape fused after it) packs
    // along the merged index like one axis.
    int merged_outer = -1;
    if (weights && v_axes.size() == 2) {
      ContractionPlan probe;
      probe.v_axis = v_axes[1];
      merged_outer = mergeableOuterAxis(kernel, stage, reduce, probe, *flat, s_expr, v_expr);
    }
    if (weights && v_axes.size() == 1 && !dependsOn(s_expr, stage.axes[v_axes[0]].id)) {
      plan.packed = true;
      plan.v_axis = v_axes[0];
    } else if (weights && v_axes.size() == 2 && merged_outer == v_axes[0] &&
               !dependsOn(s_expr, stage.axes[v_axes[1]].id)) {
      plan.packed = true;
      plan.v_axis = v_axes[1];
      plan.v_outer_axis = merged_outer;
    } else if (plan.guarded_load) {
      // The innermost axis V reads along at a positive stride (unit stride
      // loads contiguously; others gather).
      for (int a : v_axes) {
        int64_t c = flat->of(stage.axes[a].id);
        const int id = stage.axes[a].id;
        if (c > 0 && (!dependsOn(s_expr, id) || (c == 1 && loadsAlong(kernel, s_expr, id))) &&
            (plan.v_axis < 0 || c == 1 || c <= flat->of(stage.axes[plan.v_axis].id)))
          plan.v_axis = a;
      }
      if (plan.v_axis < 0) continue;
      // Gathers lose to a packed plan whatever its guard costs.
      if (best && flat->of(stage.axes[plan.v_axis].id) > 2) continue;
      plan.v_outer_axis = mergeableOuterAxis(kernel, stage, reduce, plan, *flat, s_expr, v_expr);
      if (best && !streamingBeatsPacked(stage, *best, plan)) continue;
      const int v_id = stage.axes[plan.v_axis].id;
      const int outer_id = plan.v_outer_axis < 0 ? -1 : stage.axes[plan.v_outer_axis].id;
      for (ContractionPlan::LaneCondition& c : plan.guard) {
        std::optional<Affine> d = affine(c.difference);
        if (!d) break;
        c.v_coeff = d->of(v_id);
        c.outer_coeff = outer_id < 0 ? 0 : d->of(outer_id);
      }
      plan.flat_index = affineExpr(*flat);
      plan.v_stride = flat->of(v_id);
      plan.narrow_guard = vectorExtent(stage, plan) < (int64_t{1} << 30);
      for (const ContractionPlan::LaneCondition& c : plan.guard) {
        std::optional<Affine> d = affine(c.difference);
        plan.narrow_guard = plan.narrow_guard && d && fitsInt32(*d, stage, reduce);
      }
    } else {
      for (int a : v_axes) {
        const int id = stage.axes[a].id;
        if (flat->of(id) == 1 && (!dependsOn(s_expr, id) || loadsAlong(kernel, s_expr, id))) plan.v_axis = a;
      }
      if (plan.v_axis < 0) continue;
      plan.v_outer_axis = mergeableOuterAxis(kernel, stage, reduce, plan, *flat, s_expr, v_expr);
      if (best && !streamingBeatsPacked(stage, *best, plan)) continue;
    }
    const kir::IterVar& v = stage.axes[plan.v_axis];
    plan.scalar_vector = !plan.packed && dependsOn(s_expr, v.id);
    if (vectorExtent(stage, plan) < kMinVectorExtent) continue;
    // Rows: the innermost other axis that S reads along and V does not.
    for (size_t a = 0; a < stage.axes.size(); ++a) {
      int id = stage.axes[a].id;
      if (static_cast<int>(a) != plan.v_axis && static_cast<int>(a) != plan.v_outer_axis && flat->of(id) == 0 &&
          !dependsOn(v_expr, id) && dependsOn(s_expr, id))
        plan.row_axis = static_cast<int>(a);
    }
    // No axis that only S reads along (a depthwise convolution: its weight
    // depends on the channel, which V reads too): rows over the innermost
    // other axis V reads along, so S's broadcast and the per-lane part of
    // the guard serve several output rows.
    if (plan.row_axis < 0 && !plan.packed) {
      for (size_t a = 0; a < stage.axes.size(); ++a) {
        int id = stage.axes[a].id;
        if (static_cast<int>(a) != plan.v_axis && static_cast<int>(a) != plan.v_outer_axis && stage.axes[a].extent > 1 &&
            dependsOn(v_expr, id) && !dependsOn(s_expr, id))
          plan.row_axis = static_cast<int>(a);
      }
      plan.rows_read_vector = plan.row_axis >= 0;
    }
    // A vector S serves every row only when the rows index V alone.
    if (plan.scalar_vector && plan.row_axis >= 0 && !plan.rows_read_vector) continue;
    for (size_t a = 0; a < stage.axes.size(); ++a)
      if (static_cast<int>(a) != plan.v_axis && static_cast<int>(a) != plan.row_axis &&
          static_cast<int>(a) != plan.v_outer_axis)
        plan.outer_axes.push_back(static_cast<int>(a));
    // Reductions that guards depend on run outermost, so the guards are
    // invariant in the inner loops.
    std::vector<int> guard_vars;
    collectGuardVars(s_expr, guard_vars);
    collectGuardVars(v_expr, guard_vars);
    auto guarded = [&](const kir::IterVar& k) {
      return std::find(guard_vars.begin(), guard_vars.end(), k.id) != guard_vars.end();
    };
    plan.k_order = reduce.reduce_vars;
    std::stable_partition(plan.k_order.begin(), plan.k_order.end(), guarded);
    if (plan.packed) {
      // Every (v, k) must read inside the weights, as the lowering promises.
      int64_t lo = flat->offset, hi = flat->offset;
      for (auto [var, c] : flat->coeff) {
        int64_t extent = 0;
        for (const kir::IterVar& x : stage.axes) extent = x.id == var ? x.extent : extent;
        for (const kir::IterVar& x : reduce.reduce_vars) extent = x.id == var ? x.extent : extent;
        (c < 0 ? lo : hi) += c * (extent - 1);
      }
      if (lo < 0 || hi >= weights->elementCount()) continue;
      plan.pack_offset = flat->offset;
      plan.pack_v_stride = flat->of(v.id);
      for (const kir::IterVar& k : plan.k_order) plan.pack_k_strides.push_back(flat->of(k.id));
    }
    plan.reduce = &reduce;
    plan.scalar = s_expr;
    plan.vector = v_expr;
    hoistScalarGuard(kernel, plan);
    chooseTile(plan, vectorExtent(stage, plan), rowExtent(stage, plan));
    splitTasks(plan, stage);
    best = std::move(plan);
  }
  if (best && isa.bf16_dot) useBf16Dot(kernel, *best);
  if (best && isa.amx_bf16 && best->dot_group == 2) useAmxBf16(stage, *best);
  if (best) useHalfLastVector(stage, *best);
  if (best) useStagedScalar(*best);
  return best;
}

int64_t reductionPoints(const ContractionPlan& plan) {
  int64_t points = 1;
  for (const kir::IterVar& k : plan.k_order) points *= k.extent;
  return points;
}

int64_t amxBf16RowsBytes(const kir::Stage& stage, const ContractionPlan& plan) {
  const int64_t tiles = (rowExtent(stage, plan) + plan.rows - 1) / plan.rows;
  return (tiles + plan.row_chunks - 1) / plan.row_chunks * plan.rows * reductionPoints(plan) * 2;
}

int64_t vectorExtent(const kir::Stage& stage, const ContractionPlan& plan) {
  int64_t extent = stage.axes[plan.v_axis].extent;
  return plan.v_outer_axis < 0 ? extent : extent * stage.axes[plan.v_outer_axis].extent;
}

int64_t rowExtent(const kir::Stage& stage, const ContractionPlan& plan) {
  return plan.row_axis < 0 ? 1 : stage.axes[plan.row_axis].extent;
}

void packPanels(const ContractionPlan& plan, const kir::Stage& stage, const ir::Tensor& weights,
                const std::function<void(std::span<const float>)>& sink) {
  const int64_t extent_v = vectorExtent(stage, plan);  // merged: V's flat index is pack_v_stride * q
  const int64_t block = plan.blockLanes();
  const int64_t blocks = (extent_v + block - 1) / block;
  int64_t k_total = 1;
  for (const kir::IterVar& k : plan.k_order) k_total *= k.extent;
  std::vector<float> panel(static_cast<size_t>(k_total * block));
  const auto* src = reinterpret_cast<const float*>(weights.bytes().data());
  std::vector<int64_t> k_index(plan.k_order.size());
  for (int64_t vb = 0; vb < blocks; ++vb) {
    const int64_t lanes = std::min(block, extent_v - vb * block);
    std::fill(panel.begin(), panel.end(), 0.0f);
    std::fill(k_index.begin(), k_index.end(), 0);
    for (int64_t kf = 0; kf < k_total; ++kf) {
      int64_t base = plan.pack_offset + plan.pack_v_stride * vb * block;
      for (size_t i = 0; i < k_index.size(); ++i) base += plan.pack_k_strides[i] * k_index[i];
      for (int64_t lane = 0; lane < lanes; ++lane)
        panel[static_cast<size_t>(kf * block + lane)] = src[base + plan.pack_v_stride * lane];
      for (size_t i = k_index.size(); i-- > 0;) {  // odometer, innermost k fastest
        if (++k_index[i] < plan.k_order[i].extent) break;
        k_index[i] = 0;
      }
    }
    sink(panel);
  }
}

std::vector<float> packPanels(const ContractionPlan& plan, const kir::Stage& stage, const ir::Tensor& weights) {
  std::vector<float> panels;
  packPanels(plan, stage, weights,
             [&](std::span<const float> panel) { panels.insert(panels.end(), panel.begin(), panel.end()); });
  return panels;
}

int64_t packedPanelsBytes(const ContractionPlan& plan, const kir::Stage& stage) {
  const int64_t block = plan.blockLanes();
  const int64_t blocks = (vectorExtent(stage, plan) + block - 1) / block;
  if (plan.dot_group <= 1) return blocks * reductionPoints(plan) * block * static_cast<int64_t>(sizeof(float));
  return dotPanelsHeaderBytes(plan, stage) + blocks * dotGroups(plan) * block * 4;
}

int64_t dotPanelsHeaderBytes(const ContractionPlan& plan, const kir::Stage& stage) {
  if (plan.dot_group != 4) return 0;
  const int64_t block = plan.blockLanes();
  const int64_t blocks = (vectorExtent(stage, plan) + block - 1) / block;
  return blocks * block * 4;
}

namespace {

// Calls fn(point, base) for each point of the outer reduction variables (all
// but the innermost, the last fastest): its flat index, and V's element
// offset there at v = 0 and innermost k = 0.
void forEachOuterPoint(const ContractionPlan& plan, const std::function<void(int64_t, int64_t)>& fn) {
  const size_t inner = plan.k_order.size() - 1;
  std::vector<int64_t> k_index(inner, 0);
  for (int64_t point = 0;; ++point) {
    int64_t base = plan.pack_offset;
    for (size_t i = 0; i < inner; ++i) base += plan.pack_k_strides[i] * k_index[i];
    fn(point, base);
    size_t i = inner;
    while (i-- > 0) {  // odometer
      if (++k_index[i] < plan.k_order[i].extent) break;
      k_index[i] = 0;
    }
    if (i == static_cast<size_t>(-1)) return;
  }
}

// float32 -> bfloat16, rounded to nearest even; NaNs stay (quiet) NaNs.
uint16_t toBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

std::vector<uint8_t> packBf16Panels(const ContractionPlan& plan, const kir::Stage& stage, const ir::Tensor& weights) {
  const int64_t extent_v = vectorExtent(stage, plan);
  const int64_t block = plan.blockLanes();
  const int64_t blocks = (extent_v + block - 1) / block;
  const int64_t groups = dotGroups(plan);
  const int64_t depth = plan.k_order.back().extent;  // the innermost variable, in pairs
  const int64_t inner_pairs = (depth + 1) / 2;
  const size_t inner = plan.k_order.size() - 1;
  std::vector<uint16_t> packed(static_cast<size_t>(blocks * groups * block * 2), 0);
  const auto* src = reinterpret_cast<const float*>(weights.bytes().data());
  forEachOuterPoint(plan, [&](int64_t point, int64_t base) {
    for (int64_t v = 0; v < extent_v; ++v)
      for (int64_t k = 0; k < depth; ++k) {
        float w = src[base + plan.pack_v_stride * v + plan.pack_k_strides[inner] * k];
        const int64_t pair = point * inner_pairs + k / 2;
        packed[static_cast<size_t>((((v / block) * groups + pair) * block + v % block) * 2 + k % 2)] = toBf16(w);
      }
  });
  std::vector<uint8_t> out(packed.size() * 2);
  std::memcpy(out.data(), packed.data(), out.size());
  return out;
}

}  // namespace

int64_t dotGroups(const ContractionPlan& plan) {
  int64_t outer_points = 1;
  for (size_t i = 0; i + 1 < plan.k_order.size(); ++i) outer_points *= plan.k_order[i].extent;
  return outer_points * ((plan.k_order.back().extent + plan.dot_group - 1) / plan.dot_group);
}

std::vector<uint8_t> packDotPanels(const ContractionPlan& plan, const kir::Stage& stage, const ir::Tensor& weights) {
  if (plan.dot_group == 2) return packBf16Panels(plan, stage, weights);
  const int64_t extent_v = vectorExtent(stage, plan);  // merged: V's flat index is pack_v_stride * q
  const int64_t block = plan.blockLanes();
  const int64_t blocks = (extent_v + block - 1) / block;
  const int64_t groups = dotGroups(plan);
  const int64_t depth = plan.k_order.back().extent;  // the innermost variable, grouped by four
  const int64_t inner_groups = (depth + 3) / 4;
  const int64_t header = dotPanelsHeaderBytes(plan, stage);
  std::vector<uint8_t> out(static_cast<size_t>(header + blocks * groups * block * 4), 0);
  const auto* src = reinterpret_cast<const int8_t*>(weights.bytes().data());
  auto* initial = reinterpret_cast<int32_t*>(out.data());
  const size_t inner = plan.k_order.size() - 1;
  std::vector<int32_t> column_sums(static_cast<size_t>(extent_v), 0);
  // AMX multiplies S as it is up to the last multiple of 64 k; vpdpbusd
  // takes the rest.
  const int64_t on_tiles = plan.amx ? depth / kAmxTileBytes * kAmxTileBytes : 0;
  forEachOuterPoint(plan, [&](int64_t point, int64_t base) {
    for (int64_t v = 0; v < extent_v; ++v)
      for (int64_t k = 0; k < depth; ++k) {
        int8_t w = src[base + plan.pack_v_stride * v + plan.pack_k_strides[inner] * k];
        if (k >= on_tiles) column_sums[static_cast<size_t>(v)] += w;
        int64_t dst = (((v / block) * groups + point * inner_groups + k / 4) * block + v % block) * 4 + k % 4;
        out[static_cast<size_t>(header + dst)] = static_cast<uint8_t>(w);
      }
  });
  for (int64_t v = 0; v < extent_v; ++v) {
    // S + 128 adds 128 * sum_k V to every sum vpdpbusd forms.
    int32_t start = plan.scalar_signed ? -128 * column_sums[static_cast<size_t>(v)] : 0;
    std::memcpy(initial + v, &start, sizeof start);
  }
  return out;
}

}  // namespace kiln::codegen::cpu
