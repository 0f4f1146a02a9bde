// Kernel IR expressions -> CUDA C statements, inside one stage's __global__
// function. Mirrors codegen/cpu/emit_expr.h: same semantics (NaN-propagating
// max/min, integer division by zero gives 0, shifts past the width give 0,
// saturating float->integer casts, select arms that load evaluated lazily),
// so the GPU agrees with the reference evaluator.
#pragma once

#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "compiler/kir/kir.h"
#include "compiler/support/status.h"

namespace kiln::codegen::cuda {

// The helper functions every generated translation unit starts with (half and
// bfloat16 conversions, saturating casts, safe integer division).
const char* cudaPrelude();

// The C type of a dtype in registers (float16/bfloat16 are held as float and
// rounded after every operation) and in memory (16-bit patterns; bool is a byte).
Expected<std::string> registerType(kir::DType dtype);
Expected<std::string> memoryType(kir::DType dtype);

// Emits statements into `out`; buffer i is the pointer `p<i>`.
class ExprEmitter {
 public:
  ExprEmitter(const kir::Kernel& kernel, std::ostringstream& out, int indent);

  // Statements computing `e`; returns a C expression for its value (a
  // variable or a literal). The first unsupported construct is kept in status().
  std::string emit(const kir::Expr& e);
  void store(int buffer, const std::vector<kir::Expr>& indices, const std::string& value);
  // Every later store to parameter `buffer` is also made to parameter `copy`
  // (the same view in another dtype, rounded to it): the 16-bit copy of an
  // activation that a GEMM reads. With `copy_only`, nothing reads the
  // buffer's own elements: only the copy is stored.
  void mirror(int buffer, int copy, bool copy_only = false) {
    mirrors_[buffer] = copy;
    if (copy_only) copy_only_.insert(buffer);
  }
  // Every later load of parameter `buffer` reads parameter `copy` instead
  // (its 16-bit copy, widened): for a packing stage, which rounds what it
  // loads to that same 16-bit type, so the result is the same.
  void readCopy(int buffer, int copy) { read_copies_[buffer] = copy; }
  // Every later load of parameter `buffer` gives `name` instead: in a row
  // group, the value a reduction stage computed for the current row, which
  // every thread holds and the group's later stages read only at that row.
  // Not for a buffer whose loads read a 16-bit copy (they would see the
  // rounded value).
  void bindValue(int buffer, std::string name) {
    if (!read_copies_.count(buffer)) values_[buffer] = std::move(name);
  }
  // for (long long NAME = 0; NAME < extent; ++NAME) { body }, with `var_id` bound to NAME.
  void loop(int var_id, int64_t extent, const std::function<void()>& body);
  // Stores `value` at `width` consecutive points of the innermost store
  // axis `var_id`, from `base` on: the points are computed in an unrolled
  // loop into a register array, then written with one `width`-element
  // vector store (and one to the mirror copy). The caller guarantees the
  // points are adjacent and the first is aligned to the vector's size.
  // A load the loop always makes whose `width` elements are adjacent along
  // the axis and start at a multiple of `width` (the GEMM's D an epilogue
  // reads, a bias) is read before the loop with vector loads (16 bytes
  // each, or the whole run when it is 4 or 8 bytes).
  void vectorStore(int buffer, const std::vector<kir::Expr>& indices, int var_id, const std::string& base,
                   int64_t width, const kir::Expr& value);
  void bind(int var_id, std::string name) { vars_[var_id] = std::move(name); }
  // The reduction `n` computed by the 32 lanes of a warp together: lane
  // `lane` folds iterations lane, lane + 32, ... of its flattened space, then
  // the lanes combine by shuffles, so every lane holds the result, which
  // later uses of `n` in this scope read.
  // With `threads` > 32 (a multiple of 32), `lane` is the thread's index in
  // a block of that many that reduces together: the warps' results combine
  // through shared memory (every thread of the block must reach this).
  void warpReduce(const kir::ExprNode& n, const std::string& lane, int64_t threads = 32);
  void line(const std::string& text);
  const Status& status() const { return status_; }

 private:
  std::string emitNode(const kir::ExprNode& n);
  std::string emitConst(kir::DType dtype, double value);
  std::string emitUnary(const kir::ExprNode& n);
  std::string emitBinary(kir::BinaryOp op, kir::DType type, const std::string& a, const std::string& b);
  std::string emitSelect(const kir::ExprNode& n);
  std::string emitCast(kir::DType from, kir::DType to, const std::string& v);
  std::string emitReduce(const kir::ExprNode& n);
  std::string reduceInit(const kir::ExprNode& n);
  std::string offset(int buffer, const std::vector<kir::Expr>& indices);
  // The parameter a load reads: its own, or the 16-bit copy bound to it.
  int loadedParam(const kir::ExprNode& n) const;
  // vectorStore's loads read ahead into register arrays (vector_loads_).
  void vectorLoads(int var_id, const std::string& base, int64_t width, const kir::Expr& value);
  // `value` (a register value) as stored in parameter `buffer`'s memory type.
  std::string memoryValue(int buffer, const std::string& value);
  std::string fresh(const char* prefix);
  std::string define(kir::DType dtype, const std::string& value);
  std::string rounded(kir::DType dtype, const std::string& value);
  std::string type(kir::DType dtype);
  void fail(Status status);

  const kir::Kernel& kernel_;
  std::ostringstream& out_;
  int indent_;
  std::vector<std::vector<int64_t>> strides_;
  std::map<int, std::string> vars_;
  std::map<int, int> mirrors_;
  std::set<int> copy_only_;
  std::map<int, int> read_copies_;
  std::map<int, std::string> values_;  // bindValue
  // Inside vectorStore's loop: loads read ahead, as register arrays indexed by vector_lane_.
  std::map<const kir::ExprNode*, std::string> vector_loads_;
  std::string vector_lane_;
  // Values already computed, per open scope (an if arm or loop body closes
  // its own), so shared subexpressions are computed once where visible.
  std::vector<std::map<const kir::ExprNode*, std::string>> scopes_;
  int next_id_ = 0;
  Status status_;
};

}  // namespace kiln::codegen::cuda
