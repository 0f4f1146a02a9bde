#include "codegen/cpu/emit_sparse_contraction.h"

#include <llvm/IR/Intrinsics.h>

namespace kiln::codegen::cpu {
namespace {

llvm::GlobalVariable* constantArray(llvm::Module& module, llvm::Constant* init, const std::string& name) {
  auto* g = new llvm::GlobalVariable(module, init->getType(), true, llvm::GlobalValue::PrivateLinkage, init, name);
  g->setAlignment(llvm::Align(64));
  return g;
}

class SparseEmitter {
 public:
  SparseEmitter(llvm::IRBuilder<>& b, ExprEmitter& emitter, const kir::Stage& stage, const ContractionPlan& dense,
                const SparsePlan& sparse, const SparseWeights& weights)
      : b_(b), e_(emitter), stage_(stage), dense_(dense), sparse_(sparse), weights_(weights),
        vec_(llvm::FixedVectorType::get(b.getFloatTy(), kSparseBlockLanes)),
        v_id_(stage.axes[dense.v_axis].id), k_id_(dense.k_order[static_cast<size_t>(sparse.k_var)].id) {}

  void run(llvm::Value* begin, llvm::Value* end) {
    allocateScratch();
    for (const kir::IterVar& k : dense_.k_order)
      if (k.id != k_id_) e_.bind(k.id, b_.getInt64(0));  // the window of a 1x1 convolution
    const int64_t blocks = sparse_.blocks();
    const int64_t extent_row = rowExtent(stage_, dense_);
    const int64_t full = extent_row / sparse_.rows;
    const int64_t tail = extent_row % sparse_.rows;
    e_.loop(-1, begin, end, [&](llvm::Value* task) {
      llvm::Value* block = b_.CreateURem(task, b_.getInt64(blocks));
      llvm::Value* rest = b_.CreateUDiv(task, b_.getInt64(blocks));
      if (sparse_.rows_outer) {
        const int64_t tiles = sparseRowTiles(stage_, dense_, sparse_);
        llvm::Value* tile = b_.CreateURem(rest, b_.getInt64(tiles));
        bindTask(block, b_.CreateUDiv(rest, b_.getInt64(tiles)));
        llvm::Value* r0 = b_.CreateMul(tile, b_.getInt64(sparse_.rows), "", true, true);
        if (tail == 0) return tileAt(sparse_.rows, r0);
        if (full == 0) return tileAt(static_cast<int>(tail), r0);
        e_.branch(b_.CreateICmpULT(tile, b_.getInt64(full)), [&] { tileAt(sparse_.rows, r0); },
                  [&] { tileAt(static_cast<int>(tail), r0); });
        return;
      }
      bindTask(block, rest);
      if (full > 0)
        e_.loop(-1, b_.getInt64(0), b_.getInt64(full), [&](llvm::Value* tile) {
          tileAt(sparse_.rows, b_.CreateMul(tile, b_.getInt64(sparse_.rows), "", true, true));
        });
      if (tail > 0) tileAt(static_cast<int>(tail), b_.getInt64(full * sparse_.rows));
    });
  }

 private:
  // Accumulators and the epilogue's lane buffer in entry-block slots, which
  // SROA/mem2reg turn into registers.
  void allocateScratch() {
    llvm::Function* f = b_.GetInsertBlock()->getParent();
    llvm::IRBuilder<> entry(&f->getEntryBlock(), f->getEntryBlock().begin());
    for (int i = 0; i < sparse_.rows; ++i) acc_.push_back(entry.CreateAlloca(vec_));
    lanes_ = entry.CreateAlloca(llvm::ArrayType::get(b_.getFloatTy(), kSparseBlockLanes));
    lanes_->setAlignment(llvm::Align(64));
  }

  // Binds the outer axes from `rest` (the task index with the column block
  // and any row tile divided out) and sets the column block's range.
  void bindTask(llvm::Value* block, llvm::Value* rest) {
    for (size_t i = dense_.outer_axes.size(); i-- > 0;) {
      const kir::IterVar& axis = stage_.axes[dense_.outer_axes[i]];
      e_.bind(axis.id, i == 0 ? rest : b_.CreateURem(rest, b_.getInt64(axis.extent)));
      if (i > 0) rest = b_.CreateUDiv(rest, b_.getInt64(axis.extent));
    }
    v0_ = b_.CreateMul(block, b_.getInt64(kSparseBlockLanes), "", true, true);
    first_ = startOf(block);
    last_ = startOf(b_.CreateAdd(block, b_.getInt64(1), "", true, true));
  }

  llvm::Value* startOf(llvm::Value* block) {
    llvm::Value* at = b_.CreateInBoundsGEP(b_.getInt32Ty(), weights_.starts, block);
    return b_.CreateSExt(b_.CreateAlignedLoad(b_.getInt32Ty(), at, llvm::Align(4)), b_.getInt64Ty());
  }

  void bindRow(llvm::Value* r0, int i) {
    if (dense_.row_axis >= 0) e_.bind(stage_.axes[dense_.row_axis].id, b_.CreateAdd(r0, b_.getInt64(i), "", true, true));
  }

  // rows x 16 outputs: the column block's nonzero blocks, one weight vector
  // each, times each row's activation at the block's k.
  void tileAt(int rows, llvm::Value* r0) {
    for (int i = 0; i < rows; ++i) b_.CreateStore(llvm::Constant::getNullValue(vec_), acc_[static_cast<size_t>(i)]);
    e_.loop(-1, first_, last_, [&](llvm::Value* p) {
      llvm::Value* k = b_.CreateAlignedLoad(b_.getInt32Ty(), b_.CreateInBoundsGEP(b_.getInt32Ty(), weights_.k_index, p),
                                            llvm::Align(4));
      e_.bind(k_id_, b_.CreateSExt(k, b_.getInt64Ty()));
      llvm::Value* at = b_.CreateInBoundsGEP(b_.getFloatTy(), weights_.values,
                                             b_.CreateMul(p, b_.getInt64(kSparseBlockLanes), "", true, true));
      llvm::Value* w = b_.CreateAlignedLoad(vec_, at, llvm::Align(64));
      for (int i = 0; i < rows; ++i) {
        bindRow(r0, i);
        llvm::Value* s = b_.CreateVectorSplat(kSparseBlockLanes, e_.emit(dense_.scalar));
        llvm::AllocaInst* acc = acc_[static_cast<size_t>(i)];
        b_.CreateStore(b_.CreateIntrinsic(llvm::Intrinsic::fmuladd, {vec_}, {s, w, b_.CreateLoad(vec_, acc)}), acc);
      }
    });
    epilogue(rows, r0);
  }

  // The stage's own value with the accumulator standing in for the sum, one
  // element at a time. A full block's loop has a constant trip count of 16,
  // which LLVM turns into vector code; the last block of a ragged axis runs
  // its valid lanes only.
  void epilogue(int rows, llvm::Value* r0) {
    llvm::Value* remaining = b_.CreateSub(b_.getInt64(sparse_.extent_v), v0_);
    if (sparse_.extent_v % kSparseBlockLanes == 0) return storeRows(rows, r0, b_.getInt64(kSparseBlockLanes));
    e_.branch(b_.CreateICmpSGE(remaining, b_.getInt64(kSparseBlockLanes)),
             [&] { storeRows(rows, r0, b_.getInt64(kSparseBlockLanes)); }, [&] { storeRows(rows, r0, remaining); });
  }

  void storeRows(int rows, llvm::Value* r0, llvm::Value* lanes) {
    for (int i = 0; i < rows; ++i) {
      bindRow(r0, i);
      b_.CreateAlignedStore(b_.CreateLoad(vec_, acc_[static_cast<size_t>(i)]), lanes_, llvm::Align(64));
      e_.loop(-1, b_.getInt64(0), lanes, [&](llvm::Value* lane) {
        e_.bind(v_id_, b_.CreateAdd(v0_, lane, "", true, true));
        llvm::Value* sum = b_.CreateLoad(b_.getFloatTy(), b_.CreateInBoundsGEP(b_.getFloatTy(), lanes_, lane));
        e_.substitute(dense_.reduce, sum);
        e_.store(stage_.buffer, stage_.store_index, e_.emit(stage_.value));
      });
    }
  }

  llvm::IRBuilder<>& b_;
  ExprEmitter& e_;
  const kir::Stage& stage_;
  const ContractionPlan& dense_;
  const SparsePlan& sparse_;
  const SparseWeights& weights_;
  llvm::FixedVectorType* vec_;
  int v_id_;
  int k_id_;
  std::vector<llvm::AllocaInst*> acc_;
  llvm::AllocaInst* lanes_ = nullptr;
  llvm::Value* v0_ = nullptr;
  llvm::Value* first_ = nullptr;  // the column block's nonzeros: [first_, last_)
  llvm::Value* last_ = nullptr;
};

}  // namespace

SparseWeights emitSparseWeights(llvm::Module& module, const SparsePlan& plan, int id) {
  llvm::LLVMContext& c = module.getContext();
  const std::string suffix = std::to_string(id);
  // An empty array still gets one element, so every global has an address.
  std::vector<int32_t> k_index = plan.k_index.empty() ? std::vector<int32_t>{0} : plan.k_index;
  std::vector<float> values = plan.values.empty() ? std::vector<float>(kSparseBlockLanes, 0.0f) : plan.values;
  SparseWeights w;
  w.starts = constantArray(module, llvm::ConstantDataArray::get(c, llvm::ArrayRef<int32_t>(plan.starts)),
                           "sparse_starts_" + suffix);
  w.k_index = constantArray(module, llvm::ConstantDataArray::get(c, llvm::ArrayRef<int32_t>(k_index)),
                            "sparse_k_" + suffix);
  w.values = constantArray(module, llvm::ConstantDataArray::get(c, llvm::ArrayRef<float>(values)),
                           "sparse_values_" + suffix);
  return w;
}

int64_t sparseRowTiles(const kir::Stage& stage, const ContractionPlan& dense, const SparsePlan& sparse) {
  return (rowExtent(stage, dense) + sparse.rows - 1) / sparse.rows;
}

int64_t sparseContractionTasks(const kir::Stage& stage, const ContractionPlan& dense, const SparsePlan& sparse) {
  int64_t tasks = sparse.blocks();
  if (sparse.rows_outer) tasks *= sparseRowTiles(stage, dense, sparse);
  for (int a : dense.outer_axes) tasks *= stage.axes[a].extent;
  return tasks;
}

void emitSparseContraction(llvm::IRBuilder<>& b, ExprEmitter& emitter, const kir::Stage& stage,
                           const ContractionPlan& dense, const SparsePlan& sparse, const SparseWeights& weights,
                           llvm::Value* begin, llvm::Value* end) {
  emitter.setSpeculateGuardedLoads(true);
  SparseEmitter(b, emitter, stage, dense, sparse, weights).run(begin, end);
  emitter.setSpeculateGuardedLoads(false);
}

}  // namespace kiln::codegen::cpu
