#include "codegen/cpu/emit_contraction.h"

#include <algorithm>
#include <functional>
#include <map>

#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/IntrinsicsX86.h>

#include "compiler/kir/affine.h"

namespace kiln::codegen::cpu {
namespace {

// k values of S converted to bf16 at a time: two float32 vectors.
constexpr int kBf16Chunk = 2 * kVectorLanes;
// AMX tiles: at most 16 rows of 64 bytes.
constexpr int kTileRows = 16;
constexpr int kTileBytes = 64;
constexpr int kPrefetchSteps = 2;  // how far ahead AMX steps fetch S's rows

int64_t vectorBlocks(const kir::Stage& stage, const ContractionPlan& plan) {
  int64_t block = plan.blockLanes();
  return (vectorExtent(stage, plan) + block - 1) / block;
}

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

int64_t blockGroups(const kir::Stage& stage, const ContractionPlan& plan) {
  return plan.block_groups > 0 ? plan.block_groups : vectorBlocks(stage, plan);
}

// The full steps (64 bytes of k) of row tiles on AMX (ContractionEmitter::amxSteps):
// over every outer reduction point and step, ceil(rows / 16) A tiles of S's
// rows and `vectors` B tiles of the panel into as many accumulator tiles,
// carried across the steps in phis (tiles have no memory slots), stored
// once at the end.
class AmxTiles {
 public:
  AmxTiles(llvm::IRBuilder<>& b, const ContractionPlan& plan, int rows) : b_(b), plan_(plan), rows_(rows) {}

  // Row tile by row tile, `tiles` of them (>= 0), from S's row 0 at `s`.
  void emit(llvm::Value* s, llvm::Value* panel, llvm::Value* sums, llvm::Value* tiles) {
    llvm::Function* f = b_.GetInsertBlock()->getParent();
    llvm::BasicBlock* entry = b_.GetInsertBlock();
    auto* body = llvm::BasicBlock::Create(b_.getContext(), "tile", f);
    auto* exit = llvm::BasicBlock::Create(b_.getContext(), "exit", f);
    b_.CreateCondBr(b_.CreateICmpSGT(tiles, b_.getInt64(0)), body, exit);
    b_.SetInsertPoint(body);
    llvm::PHINode* tile = b_.CreatePHI(b_.getInt64Ty(), 2, "tile");
    tile->addIncoming(b_.getInt64(0), entry);
    llvm::Type* i8 = b_.getInt8Ty();
    rowTile(b_.CreateGEP(i8, s, b_.CreateMul(tile, b_.getInt64(rows_ * rowStride()))), panel,
            b_.CreateGEP(i8, sums, b_.CreateMul(tile, b_.getInt64(rows_ * plan_.blockLanes() * 4))));
    llvm::Value* next = b_.CreateAdd(tile, b_.getInt64(1), "", true, true);
    tile->addIncoming(next, b_.GetInsertBlock());
    b_.CreateCondBr(b_.CreateICmpSLT(next, tiles), body, exit);
    b_.SetInsertPoint(exit);
    b_.CreateRetVoid();
  }

 private:
  // int8: S itself, k one byte each; bf16: the task's rows converted,
  // [row][point][k] two bytes each.
  bool bf16() const { return plan_.dot_group == 2; }
  int64_t rowStride() const { return bf16() ? reductionPoints(plan_) * 2 : plan_.scalar_row_stride; }

  void rowTile(llvm::Value* s, llvm::Value* panel, llvm::Value* sums) {
    const kir::IterVar& inner = plan_.k_order.back();
    const int64_t per_step = bf16() ? kTileBytes / 2 : kTileBytes;  // k
    const int64_t chunks = inner.extent / per_step;
    const int64_t points = reductionPoints(plan_) / inner.extent;  // of the outer reduction variables
    const int row_tiles = (rows_ + kTileRows - 1) / kTileRows;
    const int vectors = plan_.vectors;
    const int64_t panel_row = plan_.blockLanes() * 4;  // bytes per group of four k
    llvm::Type* i8 = b_.getInt8Ty();
    std::vector<llvm::Value*> zero;
    for (int t = 0; t < row_tiles; ++t)
      for (int j = 0; j < vectors; ++j)
        zero.push_back(call(llvm::Intrinsic::x86_tilezero_internal, {rowsOf(t), shape(kTileBytes)}));

    llvm::Function* f = b_.GetInsertBlock()->getParent();
    llvm::BasicBlock* entry = b_.GetInsertBlock();
    auto* loop = llvm::BasicBlock::Create(b_.getContext(), "step", f);
    auto* done = llvm::BasicBlock::Create(b_.getContext(), "done", f);
    b_.CreateBr(loop);
    b_.SetInsertPoint(loop);
    llvm::PHINode* step = b_.CreatePHI(b_.getInt64Ty(), 2, "step");
    step->addIncoming(b_.getInt64(0), entry);
    std::vector<llvm::PHINode*> acc;
    for (llvm::Value* z : zero) {
      acc.push_back(b_.CreatePHI(z->getType(), 2));
      acc.back()->addIncoming(z, entry);
    }
    // Step = point * chunks + chunk; S's offset there is the chunk's 64 k
    // plus each outer reduction variable's stride times its value.
    llvm::Value* point = b_.CreateUDiv(step, b_.getInt64(chunks));
    llvm::Value* chunk = b_.CreateURem(step, b_.getInt64(chunks));
    llvm::Value* s_offset = b_.CreateMul(chunk, b_.getInt64(kTileBytes));
    llvm::Value* rest = point;
    if (bf16()) s_offset = b_.CreateAdd(s_offset, b_.CreateMul(point, b_.getInt64(inner.extent * 2)));
    for (size_t d = plan_.k_order.size() - 1; !bf16() && d-- > 0;) {
      const int64_t extent = plan_.k_order[d].extent;
      llvm::Value* k = d == 0 ? rest : b_.CreateURem(rest, b_.getInt64(extent));
      if (d > 0) rest = b_.CreateUDiv(rest, b_.getInt64(extent));
      s_offset = b_.CreateAdd(s_offset, b_.CreateMul(k, b_.getInt64(plan_.scalar_k_strides[d])));
    }
    // The panel's rows: groups of four k (int8) or pairs (bf16), 16 a step.
    llvm::Value* group = b_.CreateAdd(b_.CreateMul(point, b_.getInt64(inner.extent / (bf16() ? 2 : 4))),
                                      b_.CreateMul(chunk, b_.getInt64(kTileRows)));
    llvm::Value* row_stride = b_.getInt64(rowStride());
    // A's rows are as many streams as rows, `stride` bytes apart, which
    // the hardware prefetchers do not follow: each row's line two steps
    // ahead is fetched into L1 now, so the tile loads find it there.
    // (B's panel is one contiguous stream.)
    llvm::Function* prefetch =
        llvm::Intrinsic::getDeclaration(b_.GetInsertBlock()->getModule(), llvm::Intrinsic::prefetch, {b_.getPtrTy()});
    llvm::Value* ahead = b_.CreateGEP(i8, s, b_.CreateAdd(s_offset, b_.getInt64(kPrefetchSteps * kTileBytes)));
    for (int r = 0; r < rows_; ++r)
      b_.CreateCall(prefetch, {b_.CreateGEP(i8, ahead, b_.getInt64(r * rowStride())), b_.getInt32(0), b_.getInt32(3),
                               b_.getInt32(1)});
    std::vector<llvm::Value*> a, v;
    for (int t = 0; t < row_tiles; ++t) {
      llvm::Value* at = b_.CreateGEP(i8, s, b_.CreateAdd(s_offset, b_.getInt64(t * kTileRows * rowStride())));
      a.push_back(call(llvm::Intrinsic::x86_tileloadd64_internal, {rowsOf(t), shape(kTileBytes), at, row_stride}));
    }
    for (int j = 0; j < vectors; ++j) {
      llvm::Value* at = b_.CreateGEP(
          i8, panel, b_.CreateAdd(b_.CreateMul(group, b_.getInt64(panel_row)), b_.getInt64(j * kTileBytes)));
      v.push_back(call(llvm::Intrinsic::x86_tileloadd64_internal,
                       {shape(kTileRows), shape(kTileBytes), at, b_.getInt64(panel_row)}));
    }
    const auto dot = bf16()                ? llvm::Intrinsic::x86_tdpbf16ps_internal
                     : plan_.scalar_signed ? llvm::Intrinsic::x86_tdpbssd_internal
                                           : llvm::Intrinsic::x86_tdpbusd_internal;
    std::vector<llvm::Value*> next;
    for (int t = 0; t < row_tiles; ++t)
      for (int j = 0; j < vectors; ++j) {
        llvm::Value* in = acc[static_cast<size_t>(t * vectors + j)];
        next.push_back(call(dot, {rowsOf(t), shape(kTileBytes), shape(kTileBytes), in, a[static_cast<size_t>(t)],
                                  v[static_cast<size_t>(j)]}));
      }
    llvm::Value* following = b_.CreateAdd(step, b_.getInt64(1), "", true, true);
    step->addIncoming(following, b_.GetInsertBlock());
    for (size_t i = 0; i < acc.size(); ++i) acc[i]->addIncoming(next[i], b_.GetInsertBlock());
    b_.CreateCondBr(b_.CreateICmpSLT(following, b_.getInt64(points * chunks)), loop, done);

    b_.SetInsertPoint(done);
    for (int t = 0; t < row_tiles; ++t)
      for (int j = 0; j < vectors; ++j) {
        llvm::Value* at = b_.CreateConstInBoundsGEP1_64(
            i8, sums, static_cast<uint64_t>((t * kTileRows * plan_.blockLanes() + j * kVectorLanes) * 4));
        call(llvm::Intrinsic::x86_tilestored64_internal,
             {rowsOf(t), shape(kTileBytes), at, b_.getInt64(panel_row), next[static_cast<size_t>(t * vectors + j)]});
      }
  }

  llvm::Value* shape(int64_t value) { return b_.getInt16(static_cast<uint16_t>(value)); }
  llvm::Value* rowsOf(int tile) { return shape(std::min(kTileRows, rows_ - tile * kTileRows)); }
  llvm::Value* call(llvm::Intrinsic::ID id, llvm::ArrayRef<llvm::Value*> args) {
    return b_.CreateCall(llvm::Intrinsic::getDeclaration(b_.GetInsertBlock()->getModule(), id), args);
  }

  llvm::IRBuilder<>& b_;
  const ContractionPlan& plan_;
  int rows_;
};

class ContractionEmitter {
 public:
  ContractionEmitter(llvm::IRBuilder<>& b, ExprEmitter& emitter, const kir::Stage& stage, const ContractionPlan& plan,
                     llvm::Value* panels)
      : b_(b),
        e_(emitter),
        stage_(stage),
        plan_(plan),
        panels_(panels),
        f32_(b.getFloatTy()),
        vec_(llvm::FixedVectorType::get(b.getFloatTy(), kVectorLanes)),
        lane_(plan.dot_group == 4 ? b.getInt32Ty() : b.getFloatTy()),
        acc_vec_(llvm::FixedVectorType::get(lane_, kVectorLanes)),
        extent_v_(vectorExtent(stage, plan)),
        v_id_(stage.axes[plan.v_axis].id),
        outer_id_(plan.v_outer_axis < 0 ? -1 : stage.axes[plan.v_outer_axis].id),
        span_(stage.axes[plan.v_axis].extent),
        vectors_(plan.vectors) {}

  // Task t covers one outer-axis point, one range of row tiles (a chunk) and
  // one range of vector blocks (a group): t = (outer * chunks + chunk) *
  // groups + group.
  void run(llvm::Value* begin, llvm::Value* end) {
    allocateScratch();
    const int64_t blocks = vectorBlocks(stage_, plan_);
    const int64_t groups = blockGroups(stage_, plan_);
    const int64_t per_group = ceilDiv(blocks, groups);
    const int64_t extent_row = rowExtent(stage_, plan_);
    const int64_t tiles = ceilDiv(extent_row, plan_.rows);
    const int64_t chunks = plan_.row_chunks;
    const int64_t per_chunk = ceilDiv(tiles, chunks);
    e_.loop(-1, begin, end, [&](llvm::Value* task) {
      llvm::Value* group = b_.CreateURem(task, b_.getInt64(groups));
      llvm::Value* rest = b_.CreateUDiv(task, b_.getInt64(groups));
      llvm::Value* chunk = b_.CreateURem(rest, b_.getInt64(chunks));
      rest = b_.CreateUDiv(rest, b_.getInt64(chunks));
      for (size_t i = plan_.outer_axes.size(); i-- > 0;) {
        const kir::IterVar& axis = stage_.axes[plan_.outer_axes[i]];
        e_.bind(axis.id, i == 0 ? rest : b_.CreateURem(rest, b_.getInt64(axis.extent)));
        if (i > 0) rest = b_.CreateUDiv(rest, b_.getInt64(axis.extent));
      }
      llvm::Value* block0 = b_.CreateMul(group, b_.getInt64(per_group));
      llvm::Value* block1 = smin(b_.CreateAdd(block0, b_.getInt64(per_group)), b_.getInt64(blocks));
      llvm::Value* tile0 = b_.CreateMul(chunk, b_.getInt64(per_chunk));
      llvm::Value* tile1 = smin(b_.CreateAdd(tile0, b_.getInt64(per_chunk)), b_.getInt64(tiles));
      const int tail = tailVectors(blocks);
      auto each_block = [&](const std::function<void()>& body) {
        e_.loop(-1, block0, block1, [&](llvm::Value* block) {
          startBlock(block);
          if (plan_.amx) amxBlock(tile0, tile1, extent_row);
          if (tail == plan_.vectors) return body();
          e_.branch(
              b_.CreateICmpEQ(block, b_.getInt64(blocks - 1)),
              [&] {
                vectors_ = tail;
                body();
                vectors_ = plan_.vectors;
              },
              body);
        });
      };
      auto each_tile = [&](const std::function<void(llvm::Value*)>& body) { e_.loop(-1, tile0, tile1, body); };
      if (bf16_rows_) convertRows(tile0, tile1, extent_row);
      if (plan_.rows_outside_blocks)
        each_tile([&](llvm::Value* tile) { each_block([&] { rowTile(tile, extent_row); }); });
      else
        each_block([&] { each_tile([&](llvm::Value* tile) { rowTile(tile, extent_row); }); });
    });
  }

 private:
  // Accumulators and the epilogue's lane buffer live in entry-block slots;
  // SROA/mem2reg keep the accumulators in registers.
  void allocateScratch() {
    llvm::Function* f = b_.GetInsertBlock()->getParent();
    llvm::IRBuilder<> entry(&f->getEntryBlock(), f->getEntryBlock().begin());
    for (int i = 0; i < plan_.rows * plan_.vectors; ++i) acc_.push_back(entry.CreateAlloca(accType(i % plan_.vectors)));
    lanes_ = entry.CreateAlloca(llvm::ArrayType::get(lane_, static_cast<uint64_t>(plan_.blockLanes())));
    lanes_->setAlignment(llvm::Align(64));
    if (plan_.amx) {
      const int64_t tiles = ceilDiv(rowExtent(stage_, plan_), plan_.rows);
      const int64_t rows = ceilDiv(tiles, plan_.row_chunks) * plan_.rows;  // a task's
      tile_sums_ =
          entry.CreateAlloca(llvm::ArrayType::get(b_.getInt32Ty(), static_cast<uint64_t>(rows * plan_.blockLanes())));
      tile_sums_->setAlignment(llvm::Align(64));
      if (plan_.dot_group == 2) {
        bf16_rows_ = entry.CreateAlloca(
            llvm::ArrayType::get(b_.getInt8Ty(), static_cast<uint64_t>(amxBf16RowsBytes(stage_, plan_))));
        bf16_rows_->setAlignment(llvm::Align(64));
      }
    }
    if (plan_.staged_scalar) {
      staged_ =
          entry.CreateAlloca(llvm::ArrayType::get(f32_, static_cast<uint64_t>(plan_.rows * reductionPoints(plan_))));
      staged_->setAlignment(llvm::Align(64));
    }
    if (plan_.dot_group == 2) {
      pairs_ = entry.CreateAlloca(llvm::ArrayType::get(b_.getInt32Ty(), static_cast<uint64_t>(plan_.rows * kVectorLanes)));
      pairs_->setAlignment(llvm::Align(64));
    }
  }

  // The vectors the last of `blocks` blocks holds lanes of: in a float32
  // FMA plan, fewer than plan_.vectors where the blocks' lanes run past the
  // extent by a whole vector or more (112 output channels are blocks of 4
  // vectors, the second with 3); the vectors past the extent are neither
  // multiplied nor stored. Other plans keep plan_.vectors.
  int tailVectors(int64_t blocks) const {
    if (plan_.dot_group != 1 || plan_.amx) return plan_.vectors;
    const int64_t rest = extent_v_ - (blocks - 1) * plan_.blockLanes();
    return static_cast<int>(std::min<int64_t>(plan_.vectors, (rest + kVectorLanes - 1) / kVectorLanes));
  }

  llvm::Value* smin(llvm::Value* a, llvm::Value* b) { return b_.CreateSelect(b_.CreateICmpSLT(a, b), a, b); }

  void startBlock(llvm::Value* block) {
    v0_ = b_.CreateMul(block, b_.getInt64(plan_.blockLanes()), "", true, true);
    if (plan_.dot_group > 1)
      locateDotPanels(block);
    else if (plan_.packed)
      panel_ = b_.CreateInBoundsGEP(f32_, panels_, b_.CreateMul(block, b_.getInt64(reductionPoints(plan_) * plan_.blockLanes())));
  }

  // Row tile `tile`: full tiles of plan.rows rows, the last one the rest.
  void rowTile(llvm::Value* tile, int64_t extent_row) {
    const int64_t full = extent_row / plan_.rows;
    const int64_t tail = extent_row % plan_.rows;
    if (tail == 0) return tileAt(plan_.rows, b_.CreateMul(tile, b_.getInt64(plan_.rows), "", true, true));
    if (full == 0) return tileAt(static_cast<int>(tail), b_.getInt64(0));
    e_.branch(b_.CreateICmpSLT(tile, b_.getInt64(full)),
              [&] { tileAt(plan_.rows, b_.CreateMul(tile, b_.getInt64(plan_.rows), "", true, true)); },
              [&] { tileAt(static_cast<int>(tail), b_.getInt64(full * plan_.rows)); });
  }

  // Binds the vectorized axis (and the merged outer axis) to vector index q.
  void bindVector(llvm::Value* q) {
    if (outer_id_ < 0) return e_.bind(v_id_, q);
    e_.bind(outer_id_, b_.CreateUDiv(q, b_.getInt64(span_)));
    e_.bind(v_id_, b_.CreateURem(q, b_.getInt64(span_)));
  }

  llvm::AllocaInst* acc(int row, int vector) { return acc_[static_cast<size_t>(row * plan_.vectors + vector)]; }

  // The j-th vector's lanes: 8 for a half last vector (ContractionPlan::half_last).
  int lanesOf(int j) const { return plan_.half_last && j == vectors_ - 1 ? kVectorLanes / 2 : kVectorLanes; }
  llvm::FixedVectorType* accType(int j) const { return llvm::FixedVectorType::get(lane_, lanesOf(j)); }

  void bindRow(llvm::Value* r0, int i) {
    if (plan_.row_axis >= 0) e_.bind(stage_.axes[plan_.row_axis].id, b_.CreateAdd(r0, b_.getInt64(i), "", true, true));
  }

  // V's j-th vector when V is select(guard, load, 0): lanes past the axis or
  // outside the guard are masked off and read nothing (a padded window's
  // edge), so the first lane's address may lie outside the buffer. Unit
  // stride loads contiguously, stride 2 loads two contiguous vectors and
  // keeps the even elements, others gather.
  llvm::Value* loadGuarded(int j) {
    llvm::Value* v = b_.CreateAdd(v0_, b_.getInt64(j * kVectorLanes), "", true, true);
    bindVector(v);
    const kir::ExprNode& load = *plan_.guarded_load;
    std::vector<kir::Expr> origin(load.operands.size(), kir::Expr::index(0));
    llvm::Value* base = e_.address(load.buffer, origin);
    llvm::Value* offset = e_.emit(plan_.flat_index);
    llvm::Value* zero = llvm::Constant::getNullValue(vec_);
    std::vector<int64_t> lanes(kVectorLanes);
    // Inside the guard (tileInside) with every block full, no lane needs a mask.
    const bool unmasked = assume_inside_ && extent_v_ % plan_.blockLanes() == 0;
    if (plan_.v_stride == 2) {
      // Element e of the two loads is lane e / 2 when e is even; odd
      // elements are masked off. The masks come from the lanes' guards
      // directly rather than by spreading a lane mask (mask shuffles are
      // slow).
      std::vector<int> evens(kVectorLanes);
      for (int i = 0; i < kVectorLanes; ++i) evens[static_cast<size_t>(i)] = 2 * i;
      llvm::Value* first = b_.CreateGEP(f32_, base, offset);
      llvm::Value* halves[2];
      for (int h = 0; h < 2; ++h) {
        if (unmasked) {
          halves[h] = b_.CreateAlignedLoad(vec_, b_.CreateGEP(f32_, first, b_.getInt64(h * kVectorLanes)), llvm::Align(4));
          continue;
        }
        for (int e = 0; e < kVectorLanes; ++e) lanes[static_cast<size_t>(e)] = (h * kVectorLanes + e) / 2;
        llvm::Value* mask = b_.CreateAnd(laneMask(lanes, v), evenElements());
        halves[h] = b_.CreateMaskedLoad(vec_, b_.CreateGEP(f32_, first, b_.getInt64(h * kVectorLanes)), llvm::Align(4),
                                        mask, zero);
      }
      return b_.CreateShuffleVector(halves[0], halves[1], evens);
    }
    if (unmasked && plan_.v_stride == 1)
      return b_.CreateAlignedLoad(vec_, b_.CreateGEP(f32_, base, offset), llvm::Align(4));
    if (plan_.v_stride == 1 && guardUniformOverLanes()) {
      // Every lane has the same guard (a channels-last depthwise window):
      // one scalar test picks the row's address or a zero row, and the load
      // needs a mask only past the axis's end.
      llvm::Value* at = b_.CreateGEP(f32_, base, offset);
      if (llvm::Value* inside = assume_inside_ ? nullptr : uniformConditions())
        at = b_.CreateSelect(inside, at, zeroRow(kVectorLanes));
      if (extent_v_ % plan_.blockLanes() == 0) return b_.CreateAlignedLoad(vec_, at, llvm::Align(4));
      for (int i = 0; i < kVectorLanes; ++i) lanes[static_cast<size_t>(i)] = i;
      return b_.CreateMaskedLoad(vec_, at, llvm::Align(4), tailMask(lanes, v), zero);
    }
    for (int i = 0; i < kVectorLanes; ++i) lanes[static_cast<size_t>(i)] = i;
    llvm::Value* mask = laneMask(lanes, v);
    if (plan_.v_stride == 1)
      return b_.CreateMaskedLoad(vec_, b_.CreateGEP(f32_, base, offset), llvm::Align(4), mask, zero);
    llvm::Value* offsets = b_.CreateAdd(b_.CreateVectorSplat(kVectorLanes, offset),
                                        b_.CreateMul(laneConstants(lanes, b_.getInt64Ty()),
                                                     b_.CreateVectorSplat(kVectorLanes, b_.getInt64(plan_.v_stride))));
    return b_.CreateMaskedGather(vec_, b_.CreateGEP(f32_, base, offsets), llvm::Align(4), mask, zero);
  }

  // No guard condition varies across the lanes of a vector.
  bool guardUniformOverLanes() const {
    return outer_id_ < 0 && std::all_of(plan_.guard.begin(), plan_.guard.end(), [](const ContractionPlan::LaneCondition& c) {
             return c.v_coeff == 0;
           });
  }

  // The index type lane masks are computed on: i32 when the plan says every
  // difference fits.
  llvm::Type* maskIndexType() { return plan_.narrow_guard ? b_.getInt32Ty() : b_.getInt64Ty(); }

  // Which of 16 elements lie before the axis's end, element e standing for
  // lane lanes[e] of the vector that starts at v.
  llvm::Value* tailMask(const std::vector<int64_t>& lanes, llvm::Value* v) {
    llvm::Type* index_type = maskIndexType();
    llvm::Value* left = b_.CreateSExtOrTrunc(b_.CreateSub(b_.getInt64(extent_v_), v), index_type);
    return b_.CreateICmpSLT(laneConstants(lanes, index_type), b_.CreateVectorSplat(kVectorLanes, left));
  }

  // The guard conditions that do not vary across lanes, and-ed; nullptr
  // when there are none.
  llvm::Value* uniformConditions() {
    llvm::Value* uniform = nullptr;
    for (const ContractionPlan::LaneCondition& c : plan_.guard) {
      if (c.v_coeff != 0) continue;
      llvm::Value* ok = b_.CreateICmp(predicate(c.op), e_.emit(c.difference), b_.getInt64(0));
      uniform = uniform ? b_.CreateAnd(uniform, ok) : ok;
    }
    return uniform;
  }

  // Which of 16 elements read inside the axis and the guard, element e
  // standing for lane lanes[e] of the vector that starts at v.
  llvm::Value* laneMask(const std::vector<int64_t>& lanes, llvm::Value* v) {
    llvm::Type* index_type = maskIndexType();
    llvm::Value* ids = laneConstants(lanes, index_type);
    auto splat = [&](llvm::Value* x) { return b_.CreateVectorSplat(kVectorLanes, b_.CreateSExtOrTrunc(x, index_type)); };
    llvm::Value* vzero = llvm::Constant::getNullValue(ids->getType());
    llvm::Value* mask = tailMask(lanes, v);
    if (outer_id_ >= 0) return mergedLaneMask(ids, v, mask, splat);
    if (assume_inside_) return mask;  // tileInside holds: the axis's end alone masks
    for (const ContractionPlan::LaneCondition& c : plan_.guard) {
      if (c.v_coeff == 0) continue;  // uniformConditions, below
      llvm::Value* d = b_.CreateAdd(splat(e_.emit(c.difference)), b_.CreateMul(ids, splat(b_.getInt64(c.v_coeff))));
      mask = b_.CreateAnd(mask, b_.CreateICmp(predicate(c.op), d, vzero));
    }
    if (llvm::Value* uniform = uniformConditions())
      mask = b_.CreateSelect(uniform, mask, llvm::Constant::getNullValue(mask->getType()));
    return mask;
  }

  // laneMask over a merged vector index: lane e stands for q = v + ids[e],
  // at outer q / span and v q % span; each condition is its value at
  // outer = v = 0 plus both coefficients times the lane's own position.
  template <typename Splat>
  llvm::Value* mergedLaneMask(llvm::Value* ids, llvm::Value* v, llvm::Value* mask, const Splat& splat) {
    llvm::Value* q = b_.CreateAdd(splat(v), ids);
    llvm::Value* outer = b_.CreateUDiv(q, splat(b_.getInt64(span_)));
    llvm::Value* inner = b_.CreateURem(q, splat(b_.getInt64(span_)));
    llvm::Value* vzero = llvm::Constant::getNullValue(ids->getType());
    e_.bind(outer_id_, b_.getInt64(0));
    e_.bind(v_id_, b_.getInt64(0));
    for (const ContractionPlan::LaneCondition& c : plan_.guard) {
      llvm::Value* d = splat(e_.emit(c.difference));
      if (c.outer_coeff != 0) d = b_.CreateAdd(d, b_.CreateMul(outer, splat(b_.getInt64(c.outer_coeff))));
      if (c.v_coeff != 0) d = b_.CreateAdd(d, b_.CreateMul(inner, splat(b_.getInt64(c.v_coeff))));
      mask = b_.CreateAnd(mask, b_.CreateICmp(predicate(c.op), d, vzero));
    }
    bindVector(v);
    return mask;
  }

  llvm::Value* laneConstants(const std::vector<int64_t>& lanes, llvm::Type* type) {
    std::vector<llvm::Constant*> c;
    for (int64_t lane : lanes) c.push_back(llvm::ConstantInt::get(type, static_cast<uint64_t>(lane)));
    return llvm::ConstantVector::get(c);
  }

  llvm::Value* evenElements() {
    std::vector<llvm::Constant*> c;
    for (int e = 0; e < kVectorLanes; ++e) c.push_back(b_.getInt1(e % 2 == 0));
    return llvm::ConstantVector::get(c);
  }

  static llvm::CmpInst::Predicate predicate(kir::BinaryOp op) {
    switch (op) {
      case kir::BinaryOp::kLt: return llvm::CmpInst::ICMP_SLT;
      case kir::BinaryOp::kLe: return llvm::CmpInst::ICMP_SLE;
      case kir::BinaryOp::kGt: return llvm::CmpInst::ICMP_SGT;
      default: return llvm::CmpInst::ICMP_SGE;
    }
  }

  // V's j-th vector at the current reduction point.
  llvm::Value* loadVector(int j, llvm::Value* k_flat) {
    if (plan_.guarded_load) return loadGuarded(j);
    if (plan_.packed) {
      llvm::Value* offset = b_.CreateAdd(b_.CreateMul(k_flat, b_.getInt64(plan_.blockLanes())), b_.getInt64(j * kVectorLanes));
      return b_.CreateAlignedLoad(accType(j), b_.CreateInBoundsGEP(f32_, panel_, offset), llvm::Align(64));
    }
    return loadStreaming(*plan_.vector, j);
  }

  // The j-th vector of `load` along the vectorized index, read at unit stride.
  llvm::Value* loadStreaming(const kir::ExprNode& load, int j) {
    llvm::Value* v = b_.CreateAdd(v0_, b_.getInt64(j * kVectorLanes), "", true, true);
    bindVector(v);
    if (extent_v_ % plan_.blockLanes() == 0) {
      return b_.CreateAlignedLoad(vec_, e_.address(load.buffer, load.operands), llvm::Align(4));
    }
    llvm::Value* remaining = b_.CreateSub(b_.getInt64(extent_v_), v);
    // The last block runs past the axis: lanes beyond it are masked off
    // (an all-off mask reads nothing). The address of the first lane is
    // computed from a clamped v so that it stays inside the buffer.
    bindVector(b_.CreateSelect(b_.CreateICmpSGT(remaining, b_.getInt64(0)), v, b_.getInt64(0)));
    llvm::Value* address = e_.address(load.buffer, load.operands);
    llvm::Value* lane_ids = llvm::ConstantDataVector::get(b_.getContext(), laneIds());
    llvm::Value* mask = b_.CreateICmpSLT(lane_ids, b_.CreateVectorSplat(kVectorLanes, remaining));
    return b_.CreateMaskedLoad(vec_, address, llvm::Align(4), mask, llvm::Constant::getNullValue(vec_));
  }

  std::vector<uint64_t> laneIds() const {
    std::vector<uint64_t> ids(kVectorLanes);
    for (int i = 0; i < kVectorLanes; ++i) ids[static_cast<size_t>(i)] = static_cast<uint64_t>(i);
    return ids;
  }

  // This task's block of the byte panels: the accumulators' initial values
  // (int32) and the weights.
  void locateDotPanels(llvm::Value* block) {
    const int64_t block_bytes = plan_.blockLanes() * 4;
    const int64_t groups = dotGroups(plan_);
    llvm::Type* i8 = b_.getInt8Ty();
    if (dotPanelsHeaderBytes(plan_, stage_) > 0)
      initial_ = b_.CreateInBoundsGEP(i8, panels_, b_.CreateMul(block, b_.getInt64(block_bytes)));
    llvm::Value* start = b_.CreateMul(block, b_.getInt64(groups * block_bytes));
    panel_ = b_.CreateInBoundsGEP(i8, panels_, b_.CreateAdd(start, b_.getInt64(dotPanelsHeaderBytes(plan_, stage_))));
  }

  // A guarded plan's tile whose every row, reduction point and lane lies
  // inside the guard (a padded convolution's interior, most of its tiles)
  // runs a copy of the tile without the guard's masks; the edge tiles keep
  // them. Both copies compute the same sums.
  void tileAt(int rows, llvm::Value* r0) {
    if (!plan_.guarded_load || plan_.guard.empty() || outer_id_ >= 0) return tileBody(rows, r0);
    e_.branch(
        tileInside(rows, r0),
        [&] {
          assume_inside_ = true;
          tileBody(rows, r0);
          assume_inside_ = false;
        },
        [&] { tileBody(rows, r0); });
  }

  // Whether every guard condition holds over the whole tile. Each
  // condition's difference is affine, so its least (for >=, >) or greatest
  // (for <, <=) value over the tile's box of rows, reduction points and the
  // block's lanes is its value at the box's first corner plus, for each
  // variable, its coefficient times its span where that lowers (raises) it.
  llvm::Value* tileInside(int rows, llvm::Value* r0) {
    std::map<int, int64_t> span;  // variable id -> last value - first value
    for (const kir::IterVar& k : plan_.k_order) {
      e_.bind(k.id, b_.getInt64(0));
      span[k.id] = k.extent - 1;
    }
    if (plan_.row_axis >= 0) {
      e_.bind(stage_.axes[plan_.row_axis].id, r0);
      span[stage_.axes[plan_.row_axis].id] = rows - 1;
    }
    bindVector(v0_);
    span[v_id_] = plan_.blockLanes() - 1;
    llvm::Value* inside = b_.getTrue();
    for (const ContractionPlan::LaneCondition& c : plan_.guard) {
      std::optional<kir::Affine> d = kir::affine(c.difference);
      if (!d) return b_.getFalse();
      const bool least = c.op == kir::BinaryOp::kGe || c.op == kir::BinaryOp::kGt;
      int64_t shift = 0;
      for (auto [id, extent] : span) {
        const int64_t change = d->of(id) * extent;
        shift += least ? std::min<int64_t>(0, change) : std::max<int64_t>(0, change);
      }
      llvm::Value* bound = b_.CreateAdd(e_.emit(c.difference), b_.getInt64(shift));
      inside = b_.CreateAnd(inside, b_.CreateICmp(predicate(c.op), bound, b_.getInt64(0)));
    }
    return inside;
  }

  void tileBody(int rows, llvm::Value* r0) {
    if (plan_.amx) {
      amxReduction(rows, r0);
      epilogue(rows, r0);
      return;
    }
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < vectors_; ++j) {
        llvm::Value* start = llvm::Constant::getNullValue(accType(j));
        if (initial_)
          start = b_.CreateAlignedLoad(acc_vec_, b_.CreateConstInBoundsGEP1_64(lane_, initial_, j * kVectorLanes),
                                       llvm::Align(64));
        b_.CreateStore(start, acc(i, j));
      }
    if (plan_.dot_group > 1) {
      if (plan_.dot_group == 4) int8Reduction(rows, r0);
      else bf16Reduction(rows, r0);
      epilogue(rows, r0);
      return;
    }
    if (plan_.k_order.empty()) {
      multiplyAccumulate(rows, r0, b_.getInt64(0));
      epilogue(rows, r0);
      return;
    }
    if (staged_) stageScalarRows(rows, r0);
    // Reduction loops; the flat k counts points in loop order (the panel's k).
    outerReductionLoops([&](llvm::Value* point) {
      const kir::IterVar& inner = plan_.k_order.back();
      if (plan_.hoisted_scalar_guard) hoistScalarRows(rows, r0, inner);
      e_.loop(inner.id, b_.getInt64(0), b_.getInt64(inner.extent), [&](llvm::Value* iv) {
        k_inner_ = iv;
        multiplyAccumulate(rows, r0,
                           b_.CreateAdd(b_.CreateMul(point, b_.getInt64(inner.extent), "", true, true), iv, "", true, true));
      });
    });
    epilogue(rows, r0);
  }

  // Each row's address of S at the innermost reduction variable's 0 (a
  // hoisted guard: zeros where the row's guard fails), computed before that
  // loop.
  void hoistScalarRows(int rows, llvm::Value* r0, const kir::IterVar& inner) {
    const kir::ExprNode& select = *plan_.scalar;
    const kir::ExprNode& load = *select.operands[1];
    e_.bind(inner.id, b_.getInt64(0));
    llvm::Value* zeros = zeroRow((inner.extent - 1) * plan_.scalar_k_stride + 1);
    scalar_rows_.clear();
    for (int i = 0; i < rows; ++i) {
      bindRow(r0, i);
      llvm::Value* inside = e_.emit(select.operands[0]);
      scalar_rows_.push_back(b_.CreateSelect(inside, e_.address(load.buffer, load.operands), zeros));
    }
  }

  // staged_scalar: S of the tile's rows at every k, into staged_ [rows][K].
  void stageScalarRows(int rows, llvm::Value* r0) {
    const kir::IterVar& k = plan_.k_order.back();
    for (int i = 0; i < rows; ++i) {
      bindRow(r0, i);
      e_.loop(k.id, b_.getInt64(0), b_.getInt64(k.extent),
              [&](llvm::Value* iv) { b_.CreateStore(e_.emit(plan_.scalar), stagedAt(i, iv)); });
    }
  }

  // staged_'s element for row i of the tile at k.
  llvm::Value* stagedAt(int i, llvm::Value* k) {
    const int64_t depth = plan_.k_order.back().extent;
    return b_.CreateInBoundsGEP(f32_, staged_, b_.CreateAdd(b_.getInt64(i * depth), k, "", true, true));
  }

  // A module constant of `count` float zeros, one per size.
  llvm::Value* zeroRow(int64_t count) {
    llvm::Module& module = *b_.GetInsertBlock()->getModule();
    const std::string name = "kiln.zeros." + std::to_string(count);
    if (llvm::GlobalVariable* g = module.getNamedGlobal(name)) return g;
    auto* type = llvm::ArrayType::get(f32_, static_cast<uint64_t>(count));
    auto* g = new llvm::GlobalVariable(module, type, true, llvm::GlobalValue::PrivateLinkage,
                                       llvm::ConstantAggregateZero::get(type), name);
    g->setAlignment(llvm::Align(64));
    return g;
  }

  // S at row i of the tile.
  llvm::Value* scalarAt(int i) {
    if (staged_) return b_.CreateLoad(f32_, stagedAt(i, k_inner_));
    if (!plan_.hoisted_scalar_guard) return e_.emit(plan_.scalar);
    llvm::Value* at = b_.CreateGEP(f32_, scalar_rows_[static_cast<size_t>(i)],
                                   b_.CreateMul(k_inner_, b_.getInt64(plan_.scalar_k_stride), "", true, true));
    return b_.CreateLoad(f32_, at);
  }

  void multiplyAccumulate(int rows, llvm::Value* r0, llvm::Value* k_flat) {
    if (plan_.rows_read_vector || plan_.scalar_vector) {
      // S does not depend on the row: one broadcast (or, along the vector
      // axis, one vector each), each row its own V.
      std::vector<llvm::Value*> s;
      if (!plan_.scalar_vector) s.assign(vectors_, b_.CreateVectorSplat(kVectorLanes, e_.emit(plan_.scalar)));
      for (int j = 0; plan_.scalar_vector && j < vectors_; ++j) s.push_back(loadStreaming(*plan_.scalar, j));
      for (int i = 0; i < rows; ++i) {
        bindRow(r0, i);
        for (int j = 0; j < vectors_; ++j) {
          llvm::Value* sum = b_.CreateLoad(vec_, acc(i, j));
          b_.CreateStore(b_.CreateIntrinsic(llvm::Intrinsic::fmuladd, {vec_}, {s[static_cast<size_t>(j)], loadVector(j, k_flat), sum}),
                         acc(i, j));
        }
      }
      return;
    }
    std::vector<llvm::Value*> v;
    for (int j = 0; j < vectors_; ++j) v.push_back(loadVector(j, k_flat));
    for (int i = 0; i < rows; ++i) {
      bindRow(r0, i);
      // A splat of the scalar per width: LLVM folds both into one
      // broadcasting load and the 8-lane FMA reads its low half, where a
      // shuffle taking the low half of the 16-lane splat compiled to a
      // second, register broadcast (a shuffle on the FMA ports).
      llvm::Value* scalar = scalarAt(i);
      llvm::Value* full = b_.CreateVectorSplat(kVectorLanes, scalar);
      for (int j = 0; j < vectors_; ++j) {
        llvm::FixedVectorType* type = accType(j);
        llvm::Value* s = lanesOf(j) == kVectorLanes ? full : b_.CreateVectorSplat(lanesOf(j), scalar);
        llvm::Value* sum = b_.CreateLoad(type, acc(i, j));
        b_.CreateStore(b_.CreateIntrinsic(llvm::Intrinsic::fmuladd, {type}, {s, v[static_cast<size_t>(j)], sum}),
                       acc(i, j));
      }
    }
  }

  // Loops over the outer reduction variables (all but the innermost) and
  // calls body(point) inside, `point` their flat index (the panel's order).
  void outerReductionLoops(const std::function<void(llvm::Value*)>& body) {
    std::function<void(size_t, llvm::Value*)> nest = [&](size_t d, llvm::Value* point) {
      if (d + 1 >= plan_.k_order.size()) return body(point);
      const kir::IterVar& k = plan_.k_order[d];
      e_.loop(k.id, b_.getInt64(0), b_.getInt64(k.extent), [&](llvm::Value* iv) {
        nest(d + 1, b_.CreateAdd(b_.CreateMul(point, b_.getInt64(k.extent), "", true, true), iv, "", true, true));
      });
    };
    nest(0, b_.getInt64(0));
  }

  // Per outer point, along the innermost variable full groups of four k
  // (from first_group on) and the ragged rest (K % 4 values, the panel's
  // zero-padded bytes cancelling whatever the rest of S's word holds).
  void int8Reduction(int rows, llvm::Value* r0, int64_t first_group = 0) {
    const kir::IterVar& inner = plan_.k_order.back();
    const int64_t full = inner.extent / 4;
    const int64_t inner_groups = (inner.extent + 3) / 4;
    outerReductionLoops([&](llvm::Value* point) {
      llvm::Value* first = b_.CreateMul(point, b_.getInt64(inner_groups), "", true, true);
      if (full > first_group)
        e_.loop(-1, b_.getInt64(first_group), b_.getInt64(full),
                [&](llvm::Value* g) { int8Step(rows, r0, b_.CreateAdd(first, g, "", true, true), g, 4); });
      if (inner.extent % 4 != 0)
        int8Step(rows, r0, b_.CreateAdd(first, b_.getInt64(full)), b_.getInt64(full), static_cast<int>(inner.extent % 4));
    });
  }

  // One group of k (`group` in the panel, `inner_group` along the innermost
  // variable): V's four bytes per lane from the panel, S's (count) bytes per
  // row as one broadcast word, vpdpbusd into each accumulator.
  void int8Step(int rows, llvm::Value* r0, llvm::Value* group, llvm::Value* inner_group, int count) {
    llvm::Type* i32 = b_.getInt32Ty();
    const int k_id = plan_.k_order.back().id;
    llvm::Value* k0 = b_.CreateMul(inner_group, b_.getInt64(4), "", true, true);
    std::vector<llvm::Value*> v;
    for (int j = 0; j < plan_.vectors; ++j) {
      llvm::Value* word = b_.CreateAdd(b_.CreateMul(group, b_.getInt64(plan_.blockLanes())), b_.getInt64(j * kVectorLanes));
      v.push_back(b_.CreateAlignedLoad(acc_vec_, b_.CreateInBoundsGEP(i32, panel_, word), llvm::Align(64)));
    }
    const kir::ExprNode& load = *plan_.scalar;
    for (int i = 0; i < rows; ++i) {
      bindRow(r0, i);
      llvm::Value* word = nullptr;
      if (count == 4) {
        e_.bind(k_id, k0);
        word = b_.CreateAlignedLoad(i32, e_.address(load.buffer, load.operands), llvm::Align(1));
      } else {
        word = b_.getInt32(0);
        for (int t = 0; t < count; ++t) {
          e_.bind(k_id, b_.CreateAdd(k0, b_.getInt64(t), "", true, true));
          llvm::Value* byte = b_.CreateLoad(b_.getInt8Ty(), e_.address(load.buffer, load.operands));
          word = b_.CreateOr(word, b_.CreateShl(b_.CreateZExt(byte, i32), 8 * t));
        }
      }
      if (plan_.scalar_signed) word = b_.CreateXor(word, b_.getInt32(0x80808080u));
      llvm::Value* s = b_.CreateVectorSplat(kVectorLanes, word);
      for (int j = 0; j < plan_.vectors; ++j) {
        llvm::Value* sum = b_.CreateLoad(acc_vec_, acc(i, j));
        b_.CreateStore(vnniDot(sum, s, v[static_cast<size_t>(j)]), acc(i, j));
      }
    }
  }

  // The sums of the task's row tiles in this block on AMX (contraction.h):
  // the reduction's full steps of 64 k run in functions of their own
  // (amxSteps), one call for the full row tiles and one for a row tail,
  // which leave them in tile_sums_ for amxReduction.
  void amxBlock(llvm::Value* tile0, llvm::Value* tile1, int64_t extent_row) {
    const int64_t full = extent_row / plan_.rows;
    const int64_t tail = extent_row % plan_.rows;
    first_row_ = b_.CreateMul(tile0, b_.getInt64(plan_.rows), "", true, true);
    llvm::Value* full_tiles = b_.CreateSub(smin(tile1, b_.getInt64(full)), tile0);
    b_.CreateCall(amxSteps(plan_.rows), {amxRows(first_row_), panel_, tile_sums_, full_tiles});
    if (tail == 0) return;
    e_.branch(
        b_.CreateICmpSGT(tile1, b_.getInt64(full)),
        [&] {
          llvm::Value* sums = b_.CreateInBoundsGEP(
              b_.getInt32Ty(), tile_sums_, b_.CreateMul(full_tiles, b_.getInt64(plan_.rows * plan_.blockLanes())));
          b_.CreateCall(amxSteps(static_cast<int>(tail)),
                        {amxRows(b_.getInt64(full * plan_.rows)), panel_, sums, b_.getInt64(1)});
        },
        [] {});
  }

  // The A tiles' source at output row `row`, every reduction variable 0:
  // S itself (int8), or the row in the task's bf16 rows.
  llvm::Value* amxRows(llvm::Value* row) {
    if (bf16_rows_)
      return b_.CreateInBoundsGEP(b_.getInt8Ty(), bf16_rows_,
                                  b_.CreateMul(b_.CreateSub(row, first_row_), b_.getInt64(bf16RowBytes())));
    for (const kir::IterVar& k : plan_.k_order) e_.bind(k.id, b_.getInt64(0));
    return scalarRowAddress(row);
  }

  // S's address at output row `row` and innermost reduction variable 0,
  // the outer ones as bound (S a load, not a guarded select).
  llvm::Value* scalarRowAddress(llvm::Value* row) {
    e_.bind(plan_.k_order.back().id, b_.getInt64(0));
    bindRow(row, 0);
    const kir::ExprNode& load = *plan_.scalar;
    return e_.address(load.buffer, load.operands);
  }

  int64_t bf16RowBytes() const { return reductionPoints(plan_) * 2; }

  // AMX-BF16: the task's rows of S, at every reduction point, into
  // bf16_rows_ ([row][point][k], rounded to nearest even 32 at a time;
  // zeros where a hoisted guard fails), before its blocks read them.
  void convertRows(llvm::Value* tile0, llvm::Value* tile1, int64_t extent_row) {
    const kir::IterVar& inner = plan_.k_order.back();
    llvm::Value* first = b_.CreateMul(tile0, b_.getInt64(plan_.rows), "", true, true);
    llvm::Value* last = smin(b_.CreateMul(tile1, b_.getInt64(plan_.rows), "", true, true), b_.getInt64(extent_row));
    llvm::Function* cvt = declaration(llvm::Intrinsic::x86_avx512bf16_cvtne2ps2bf16_512);
    e_.loop(-1, first, last, [&](llvm::Value* row) {
      llvm::Value* out_row = b_.CreateInBoundsGEP(b_.getInt8Ty(), bf16_rows_,
                                                  b_.CreateMul(b_.CreateSub(row, first), b_.getInt64(bf16RowBytes())));
      outerReductionLoops([&](llvm::Value* point) {
        llvm::Value* start = nullptr;  // S's address at k 0
        if (plan_.hoisted_scalar_guard) {
          hoistScalarRows(1, row, inner);
          start = scalar_rows_[0];
        } else {
          start = scalarRowAddress(row);
        }
        llvm::Value* out =
            b_.CreateInBoundsGEP(b_.getInt8Ty(), out_row, b_.CreateMul(point, b_.getInt64(inner.extent * 2)));
        e_.loop(-1, b_.getInt64(0), b_.getInt64(inner.extent / kBf16Chunk), [&](llvm::Value* c) {
          llvm::Value* at =
              b_.CreateGEP(f32_, start, b_.CreateMul(c, b_.getInt64(kBf16Chunk)));  // k at unit stride (useBf16Dot)
          llvm::Value* lo = b_.CreateAlignedLoad(vec_, at, llvm::Align(4));
          llvm::Value* hi = b_.CreateAlignedLoad(vec_, b_.CreateConstGEP1_64(f32_, at, kVectorLanes), llvm::Align(4));
          // The second operand fills the low half.
          b_.CreateAlignedStore(b_.CreateCall(cvt, {hi, lo}),
                                b_.CreateInBoundsGEP(b_.getInt8Ty(), out, b_.CreateMul(c, b_.getInt64(kBf16Chunk * 2))),
                                llvm::Align(64));
        });
      });
    });
  }

  // The tile's sums from tile_sums_ with the block's initial values into
  // the accumulators; the innermost variable's rest (under 64 k per outer
  // point) then runs as vpdpbusd.
  void amxReduction(int rows, llvm::Value* r0) {
    llvm::Type* i32 = b_.getInt32Ty();
    llvm::Value* sums = b_.CreateInBoundsGEP(
        i32, tile_sums_, b_.CreateMul(b_.CreateSub(r0, first_row_), b_.getInt64(plan_.blockLanes())));
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < plan_.vectors; ++j) {
        llvm::Value* sum = b_.CreateAlignedLoad(
            acc_vec_,
            b_.CreateConstInBoundsGEP1_64(i32, sums, static_cast<uint64_t>(i * plan_.blockLanes() + j * kVectorLanes)),
            llvm::Align(64));
        if (initial_)
          sum = b_.CreateAdd(
              sum, b_.CreateAlignedLoad(acc_vec_, b_.CreateConstInBoundsGEP1_64(i32, initial_, j * kVectorLanes),
                                        llvm::Align(64)));
        b_.CreateStore(sum, acc(i, j));
      }
    if (plan_.dot_group == 4 && plan_.k_order.back().extent % kTileBytes != 0)
      int8Reduction(rows, r0, plan_.k_order.back().extent / kTileBytes * (kTileBytes / 4));
  }

  // void steps(ptr s, ptr panel, ptr sums, i64 tiles): the sums of `tiles`
  // consecutive row tiles of `rows` rows over every outer reduction point's
  // full 64-k steps, S's first row at `s` (all reduction variables 0), into
  // sums ([tiles * rows][block] int32). Each row count has its own function
  // because LLVM configures the tile registers once per function, one shape
  // per register: a tile of 32 rows (A and accumulator tiles of 16 and 16
  // rows, B tiles of 16) and one of 22 (16 and 6) in the same function would
  // need more than the 8 registers. A call configures them (ldtilecfg) and
  // releases them, so each call covers all the row tiles it can.
  llvm::Function* amxSteps(int rows) {
    llvm::Function* stage_fn = b_.GetInsertBlock()->getParent();
    llvm::Module& module = *stage_fn->getParent();
    const std::string name = stage_fn->getName().str() + ".amx" + std::to_string(rows);
    if (llvm::Function* f = module.getFunction(name)) return f;
    llvm::LLVMContext& c = b_.getContext();
    llvm::Type* ptr = b_.getPtrTy();
    auto* f = llvm::Function::Create(llvm::FunctionType::get(b_.getVoidTy(), {ptr, ptr, ptr, b_.getInt64Ty()}, false),
                                     llvm::GlobalValue::InternalLinkage, name, module);
    f->addFnAttr(llvm::Attribute::NoUnwind);
    f->addFnAttr(llvm::Attribute::NoInline);
    llvm::IRBuilder<> b(llvm::BasicBlock::Create(c, "entry", f));
    AmxTiles tiles{b, plan_, rows};
    tiles.emit(f->getArg(0), f->getArg(1), f->getArg(2), f->getArg(3));
    return f;
  }

  // Per outer point (with a hoisted guard, each row's address there first),
  // chunks of 32 k along the innermost variable.
  void bf16Reduction(int rows, llvm::Value* r0) {
    const kir::IterVar& inner = plan_.k_order.back();
    const int64_t full = inner.extent / kBf16Chunk;
    const int64_t inner_pairs = (inner.extent + 1) / 2;
    outerReductionLoops([&](llvm::Value* point) {
      if (plan_.hoisted_scalar_guard) hoistScalarRows(rows, r0, inner);
      llvm::Value* first_pair = b_.CreateMul(point, b_.getInt64(inner_pairs), "", true, true);
      if (full > 0)
        e_.loop(-1, b_.getInt64(0), b_.getInt64(full),
                [&](llvm::Value* c) { bf16Chunk(rows, r0, first_pair, c, kBf16Chunk); });
      if (inner.extent % kBf16Chunk != 0)
        bf16Chunk(rows, r0, first_pair, b_.getInt64(full), static_cast<int>(inner.extent % kBf16Chunk));
    });
  }

  // One chunk of up to 32 k: each row's S converted to 16 bf16 pairs in one
  // instruction, parked in a small buffer, then broadcast pair by pair
  // against the panel's pairs from `first_pair` + 16 * chunk on.
  void bf16Chunk(int rows, llvm::Value* r0, llvm::Value* first_pair, llvm::Value* chunk, int count) {
    llvm::Type* i32 = b_.getInt32Ty();
    auto* words = llvm::FixedVectorType::get(i32, kVectorLanes);
    const int k_id = plan_.k_order.back().id;
    llvm::Value* k0 = b_.CreateMul(chunk, b_.getInt64(kBf16Chunk), "", true, true);
    e_.bind(k_id, k0);
    for (int i = 0; i < rows; ++i) {
      bindRow(r0, i);
      llvm::Value* first = nullptr;
      if (plan_.hoisted_scalar_guard) {
        first = b_.CreateGEP(f32_, scalar_rows_[static_cast<size_t>(i)], k0);
      } else {
        const kir::ExprNode& load = *plan_.scalar;
        first = e_.address(load.buffer, load.operands);
      }
      llvm::Value* halves[2];
      for (int h = 0; h < 2; ++h) {
        llvm::Value* at = b_.CreateConstInBoundsGEP1_64(f32_, first, static_cast<uint64_t>(h * kVectorLanes));
        int valid = std::clamp(count - h * kVectorLanes, 0, kVectorLanes);
        if (valid == kVectorLanes) {
          halves[h] = b_.CreateAlignedLoad(vec_, at, llvm::Align(4));
          continue;
        }
        std::vector<llvm::Constant*> mask;
        for (int e = 0; e < kVectorLanes; ++e) mask.push_back(b_.getInt1(e < valid));
        // Lanes past K read nothing and count as 0 (the panel's padding is 0
        // too, and 0 * 0 keeps NaN out of the sum).
        halves[h] = b_.CreateMaskedLoad(vec_, at, llvm::Align(4), llvm::ConstantVector::get(mask),
                                        llvm::Constant::getNullValue(vec_));
      }
      llvm::Function* cvt = declaration(llvm::Intrinsic::x86_avx512bf16_cvtne2ps2bf16_512);
      // The second operand fills the low half: pair p of the result is S[2p], S[2p+1].
      llvm::Value* pairs = b_.CreateCall(cvt, {halves[1], halves[0]});
      b_.CreateAlignedStore(b_.CreateBitCast(pairs, words),
                            b_.CreateConstInBoundsGEP1_64(i32, pairs_, static_cast<uint64_t>(i * kVectorLanes)),
                            llvm::Align(64));
    }
    llvm::Value* pair0 = b_.CreateAdd(first_pair, b_.CreateMul(chunk, b_.getInt64(kBf16Chunk / 2)));
    for (int p = 0; p < (count + 1) / 2; ++p) {
      llvm::Value* pair = b_.CreateAdd(pair0, b_.getInt64(p));
      std::vector<llvm::Value*> v;
      for (int j = 0; j < plan_.vectors; ++j) {
        llvm::Value* word = b_.CreateAdd(b_.CreateMul(pair, b_.getInt64(plan_.blockLanes())), b_.getInt64(j * kVectorLanes));
        v.push_back(b_.CreateAlignedLoad(words, b_.CreateInBoundsGEP(i32, panel_, word), llvm::Align(64)));
      }
      for (int i = 0; i < rows; ++i) {
        llvm::Value* s = b_.CreateLoad(i32, b_.CreateConstInBoundsGEP1_64(i32, pairs_, static_cast<uint64_t>(i * kVectorLanes + p)));
        s = b_.CreateVectorSplat(kVectorLanes, s);
        for (int j = 0; j < plan_.vectors; ++j) {
          llvm::Value* sum = b_.CreateLoad(acc_vec_, acc(i, j));
          b_.CreateStore(bf16Dot(sum, s, v[static_cast<size_t>(j)]), acc(i, j));
        }
      }
    }
  }

  // sum + a.even * b.even + a.odd * b.odd per float32 lane (vdpbf16ps).
  llvm::Value* bf16Dot(llvm::Value* sum, llvm::Value* a, llvm::Value* b) {
    llvm::Function* f = declaration(llvm::Intrinsic::x86_avx512bf16_dpbf16ps_512);
    llvm::FunctionType* type = f->getFunctionType();
    return b_.CreateCall(f, {sum, b_.CreateBitCast(a, type->getParamType(1)), b_.CreateBitCast(b, type->getParamType(2))});
  }

  llvm::Function* declaration(llvm::Intrinsic::ID id) {
    return llvm::Intrinsic::getDeclaration(b_.GetInsertBlock()->getModule(), id);
  }

  // sum + dot4(u8 a, s8 b) per int32 lane (vpdpbusd).
  llvm::Value* vnniDot(llvm::Value* sum, llvm::Value* a, llvm::Value* b) {
    llvm::Function* f = declaration(llvm::Intrinsic::x86_avx512_vpdpbusd_512);
    llvm::FunctionType* type = f->getFunctionType();
    return b_.CreateCall(f, {b_.CreateBitCast(sum, type->getParamType(0)), b_.CreateBitCast(a, type->getParamType(1)),
                             b_.CreateBitCast(b, type->getParamType(2))});
  }

  // The stage's own value with the accumulator standing in for the sum, one
  // element at a time over the block's valid lanes.
  void epilogue(int rows, llvm::Value* r0) {
    llvm::Value* remaining = b_.CreateSub(b_.getInt64(extent_v_), v0_);
    llvm::Value* lanes = b_.CreateSelect(b_.CreateICmpSLT(remaining, b_.getInt64(plan_.blockLanes())), remaining,
                                         b_.getInt64(plan_.blockLanes()));
    for (int i = 0; i < rows; ++i) {
      bindRow(r0, i);
      for (int j = 0; j < vectors_; ++j)
        b_.CreateAlignedStore(b_.CreateLoad(accType(j), acc(i, j)),
                              b_.CreateConstInBoundsGEP1_64(lane_, lanes_, static_cast<uint64_t>(j * kVectorLanes)),
                              llvm::Align(64));
      // A merged index binds outer at the block's first lane and lets v run
      // on past its extent: every read and the store see q as one run
      // (contraction.cpp's readsMergedRuns), and the addresses stay affine
      // in the lane, which keeps this loop vectorizable.
      if (outer_id_ >= 0) bindVector(v0_);
      llvm::Value* inner0 = outer_id_ >= 0 ? b_.CreateURem(v0_, b_.getInt64(span_)) : v0_;
      e_.loop(-1, b_.getInt64(0), lanes, [&](llvm::Value* lane) {
        e_.bind(v_id_, b_.CreateAdd(inner0, lane, "", true, true));
        e_.substitute(plan_.reduce, b_.CreateLoad(lane_, b_.CreateInBoundsGEP(lane_, lanes_, lane)));
        e_.store(stage_.buffer, stage_.store_index, e_.emit(stage_.value));
      });
    }
  }

  llvm::IRBuilder<>& b_;
  ExprEmitter& e_;
  const kir::Stage& stage_;
  const ContractionPlan& plan_;
  llvm::Value* panels_;
  llvm::Type* f32_;
  llvm::FixedVectorType* vec_;
  llvm::Type* lane_;               // an accumulator lane: float32, or int32 for int8 dot products
  llvm::FixedVectorType* acc_vec_;
  int64_t extent_v_;  // of the vectorized index (merged axes: both extents' product)
  int v_id_;
  int outer_id_;    // the merged outer axis, or -1
  int64_t span_;    // extent of v: the merged index's stride of the outer axis
  // Vectors the current block computes: plan_.vectors, or in a float32
  // plan's last block only those holding lanes below extent_v_ (tailVectors).
  int vectors_;
  std::vector<llvm::AllocaInst*> acc_;
  llvm::AllocaInst* lanes_ = nullptr;
  llvm::Value* v0_ = nullptr;
  llvm::Value* panel_ = nullptr;
  llvm::Value* initial_ = nullptr;  // dot panels: the block's initial accumulators
  llvm::AllocaInst* pairs_ = nullptr;  // bf16: each row's current chunk of S as 16 pairs
  llvm::AllocaInst* tile_sums_ = nullptr;  // AMX: the task's row tiles' sums in a block, [rows][block] int32
  llvm::Value* first_row_ = nullptr;       // AMX: the task's first row, tile_sums_'s row 0
  llvm::AllocaInst* bf16_rows_ = nullptr;  // AMX-BF16: the task's rows of S in bf16
  llvm::AllocaInst* staged_ = nullptr;     // staged_scalar: the tile's rows of S, [rows][K]
  llvm::Value* k_inner_ = nullptr;     // the innermost reduction loop's variable
  bool assume_inside_ = false;         // emitting the tile tileInside proved inside the guard
  std::vector<llvm::Value*> scalar_rows_;  // hoisted_scalar_guard: each row's S address at k_inner 0
};

}  // namespace

int64_t contractionTasks(const kir::Stage& stage, const ContractionPlan& plan) {
  int64_t tasks = blockGroups(stage, plan) * plan.row_chunks;
  for (int a : plan.outer_axes) tasks *= stage.axes[a].extent;
  return tasks;
}

void emitContraction(llvm::IRBuilder<>& b, ExprEmitter& emitter, const kir::Stage& stage, const ContractionPlan& plan,
                     llvm::Value* panels, llvm::Value* begin, llvm::Value* end) {
  emitter.setSpeculateGuardedLoads(true);
  ContractionEmitter(b, emitter, stage, plan, panels).run(begin, end);
  emitter.setSpeculateGuardedLoads(false);
}

}  // namespace kiln::codegen::cpu
