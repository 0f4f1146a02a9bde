// Kernel IR expressions -> LLVM IR, inside one stage function.
#pragma once

#include <llvm/IR/IRBuilder.h>

#include <functional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "compiler/kir/kir.h"

namespace kiln::codegen::cpu {

// Emits loops and expressions for one kernel's stage. Buffers are the stage
// function's pointer arguments, in kernel parameter order.
class ExprEmitter {
 public:
  ExprEmitter(llvm::IRBuilder<>& b, const kir::Kernel& kernel, std::vector<llvm::Value*> buffers);

  llvm::Value* emit(const kir::Expr& e);
  // The element address of buffer[indices].
  llvm::Value* address(int buffer, const std::vector<kir::Expr>& indices);
  void store(int buffer, const std::vector<kir::Expr>& indices, llvm::Value* value);
  // for (iv = begin; iv < end; ++iv) body(iv); binds `var_id` (when >= 0) to iv inside.
  void loop(int var_id, llvm::Value* begin, llvm::Value* end, const std::function<void(llvm::Value*)>& body);
  // if (cond) then(); else otherwise(); emitted as blocks, insertion point after.
  void branch(llvm::Value* cond, const std::function<void()>& then, const std::function<void()>& otherwise);
  void bind(int var_id, llvm::Value* value) { vars_[var_id] = value; }
  // emit() returns `value` for this node instead of computing it (a
  // contraction's accumulator standing in for its reduce).
  void substitute(const kir::ExprNode* node, llvm::Value* value) { substitutes_[node] = value; }
  // With speculation on, select(c, a, b) whose arms load evaluates both arms
  // without a branch; loads inside the arms clamp every index into the
  // buffer, so an untaken arm reads a valid element and its value is
  // discarded. Branch-free guards keep hot loops straight-line.
  void setSpeculateGuardedLoads(bool on) { speculate_ = on; }
  // Dynamic kernels: the run's dim slot table (an i64 array). Emitted at the
  // stage's entry, it also computes the strides of run-time-shaped params.
  void setSlots(llvm::Value* slots);
  llvm::Value* slot(int index);
  llvm::Value* extent(const kir::IterVar& v);  // a constant unless the extent is a slot
  // Kernels with string calls: the run's kiln_string_fns table and string
  // pool (runtime/src/string_fns.h), loaded at the stage's entry.
  void setStrings(llvm::Value* functions, llvm::Value* pool) {
    string_fns_ = functions;
    string_pool_ = pool;
  }

  // The LLVM type of a dtype in registers (bool is i1) and in memory (bool is i8).
  llvm::Type* valueType(kir::DType dtype) const;
  llvm::Type* memoryType(kir::DType dtype) const;

  // A reduction's starting value, and its accumulator combined with one
  // term of the operand at the current loop variables (kCount excluded).
  llvm::Value* reduceInit(const kir::ExprNode& n);
  llvm::Value* reduceStep(const kir::ExprNode& n, llvm::Value* acc);

 private:
  llvm::Value* emitConst(const kir::ExprNode& n);
  llvm::Value* emitUnary(const kir::ExprNode& n);
  llvm::Value* emitBinary(kir::BinaryOp op, kir::DType type, llvm::Value* a, llvm::Value* b);
  llvm::Value* emitIntDivision(kir::BinaryOp op, kir::DType type, llvm::Value* a, llvm::Value* b);
  llvm::Value* emitSelect(const kir::ExprNode& n);
  llvm::Value* emitCast(kir::DType from, kir::DType to, llvm::Value* v);
  // Float `v` clamped to integer type `to`'s bounds, NaN to 0: converting
  // it truncates to what a saturating conversion gives.
  llvm::Value* clampForCast(llvm::Value* v, kir::DType to);
  static std::pair<double, double> integerBounds(kir::DType t);
  llvm::Value* emitSmallIntegerDifference(const kir::ExprNode& n);
  llvm::Value* emitQuantizeRounding(const kir::ExprNode& n);
  llvm::Value* emitSigmoid(const kir::ExprNode& n);
  llvm::Value* emitReduce(const kir::ExprNode& n);
  llvm::Value* emitStringCall(const kir::ExprNode& n);
  llvm::Value* combineFloat(kir::ReduceOp op, llvm::Value* acc, llvm::Value* x);
  llvm::Value* callLibm(const char* f32_name, const char* f64_name, llvm::Value* v);
  llvm::Value* intrinsic(llvm::Intrinsic::ID id, std::vector<llvm::Value*> args);
  llvm::Value* dim(const kir::BufferParam& param, size_t d);

  llvm::IRBuilder<>& b_;
  const kir::Kernel& kernel_;
  std::vector<llvm::Value*> buffers_;
  std::vector<std::vector<int64_t>> strides_;
  llvm::Value* slots_ = nullptr;
  llvm::Value* string_fns_ = nullptr;
  llvm::Value* string_pool_ = nullptr;
  std::vector<std::vector<llvm::Value*>> dynamic_strides_;  // per param; empty where static
  std::unordered_map<int, llvm::Value*> vars_;
  std::unordered_map<const kir::ExprNode*, llvm::Value*> substitutes_;
  bool speculate_ = false;
  int guarded_depth_ = 0;  // > 0 while emitting a speculated select arm
};

}  // namespace kiln::codegen::cpu
