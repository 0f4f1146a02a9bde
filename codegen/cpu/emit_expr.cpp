#include "codegen/cpu/emit_expr.h"

#include <algorithm>
#include <cmath>

#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/Module.h>

#include "codegen/cpu/emit_math.h"

namespace kiln::codegen::cpu {

using kir::BinaryOp;
using kir::DType;
using kir::ExprNode;
using kir::UnaryOp;

namespace {

bool containsLoadOrDivision(const kir::Expr& e) {
  const ExprNode& n = *e;
  if (n.kind == ExprNode::Kind::kLoad || n.kind == ExprNode::Kind::kReduce) return true;
  for (const kir::Expr& op : n.operands)
    if (containsLoadOrDivision(op)) return true;
  return false;
}

// A float constant (or splat of one) that is neither zero nor NaN.
bool isNonzeroNumber(llvm::Value* v) {
  auto* c = llvm::dyn_cast<llvm::Constant>(v);
  if (c && c->getType()->isVectorTy()) c = c->getSplatValue();
  auto* f = llvm::dyn_cast_or_null<llvm::ConstantFP>(c);
  return f && !f->isNaN() && !f->isZero();
}

bool isKind(const kir::Expr& e, ExprNode::Kind kind, int op) {
  return e->kind == kind && static_cast<int>(e->op) == op;
}

// An integer of at most 16 bits: every value and every difference of two is
// exact in float32.
bool isSmallInteger(DType t) { return ir::isInteger(t) && ir::byteSize(t) <= 2; }

// Whether a float expression is integer-valued for every input that is not
// NaN or infinite: rounding, integers converted, and sums, differences,
// products, max and min of such (a float sum of two integers rounds to an
// integer: below 2^24 it is exact, above every float is one).
bool isIntegral(const kir::Expr& e) {
  switch (e->kind) {
    case ExprNode::Kind::kConst:
      return std::nearbyint(e->value) == e->value;
    case ExprNode::Kind::kCast:
      return ir::isInteger(e->operands[0].dtype()) || e->operands[0].dtype() == DType::kBool;
    case ExprNode::Kind::kUnary: {
      auto op = static_cast<UnaryOp>(e->op);
      return op == UnaryOp::kRound || op == UnaryOp::kFloor || op == UnaryOp::kCeil;
    }
    case ExprNode::Kind::kBinary: {
      auto op = static_cast<BinaryOp>(e->op);
      bool closed = op == BinaryOp::kAdd || op == BinaryOp::kSub || op == BinaryOp::kMul || op == BinaryOp::kMax ||
                    op == BinaryOp::kMin;
      return closed && isIntegral(e->operands[0]) && isIntegral(e->operands[1]);
    }
    default:
      return false;
  }
}

// The operand of max/min clamps with constant bounds no tighter than
// [lo, hi], stripped: a saturating conversion to [lo, hi] of either gives the
// same (NaN goes through max and min to the conversion, which makes it 0).
const kir::Expr& looserClampOperand(const kir::Expr& e, double lo, double hi) {
  const kir::Expr* x = &e;
  for (;;) {
    const ExprNode& n = **x;
    if (n.kind != ExprNode::Kind::kBinary) return *x;
    auto op = static_cast<BinaryOp>(n.op);
    if (op != BinaryOp::kMax && op != BinaryOp::kMin) return *x;
    int c = n.operands[1]->kind == ExprNode::Kind::kConst ? 1 : n.operands[0]->kind == ExprNode::Kind::kConst ? 0 : -1;
    if (c < 0) return *x;
    double bound = n.operands[c]->value;  // NaN fails both tests
    if (!(op == BinaryOp::kMax ? bound <= lo : bound >= hi)) return *x;
    x = &n.operands[1 - c];
  }
}

// A loop-invariant scalar: a constant, or an element of a buffer at constant indices.
bool isScalarOperand(const kir::Expr& e) {
  if (e->kind == ExprNode::Kind::kConst) return true;
  if (e->kind != ExprNode::Kind::kLoad) return false;
  return std::all_of(e->operands.begin(), e->operands.end(),
                     [](const kir::Expr& i) { return i->kind == ExprNode::Kind::kConst; });
}

}  // namespace

ExprEmitter::ExprEmitter(llvm::IRBuilder<>& b, const kir::Kernel& kernel, std::vector<llvm::Value*> buffers)
    : b_(b), kernel_(kernel), buffers_(std::move(buffers)) {
  for (const kir::BufferParam& p : kernel.params) {
    std::vector<int64_t> strides(p.shape.size(), 1);
    for (size_t d = p.shape.size(); d-- > 1;) strides[d - 1] = strides[d] * p.shape[d];
    strides_.push_back(std::move(strides));
  }
}

void ExprEmitter::setSlots(llvm::Value* slots) {
  slots_ = slots;
  dynamic_strides_.assign(kernel_.params.size(), {});
  for (size_t p = 0; p < kernel_.params.size(); ++p) {
    const kir::BufferParam& param = kernel_.params[p];
    if (!param.isDynamic()) continue;
    std::vector<llvm::Value*> strides(param.shape.size(), b_.getInt64(1));
    for (size_t d = param.shape.size(); d-- > 1;) strides[d - 1] = b_.CreateMul(strides[d], dim(param, d));
    dynamic_strides_[p] = std::move(strides);
  }
}

llvm::Value* ExprEmitter::slot(int index) {
  return b_.CreateLoad(b_.getInt64Ty(), b_.CreateConstGEP1_64(b_.getInt64Ty(), slots_, static_cast<uint64_t>(index)));
}

llvm::Value* ExprEmitter::extent(const kir::IterVar& v) {
  return v.extent_slot >= 0 ? slot(v.extent_slot) : b_.getInt64(v.extent);
}

llvm::Value* ExprEmitter::dim(const kir::BufferParam& param, size_t d) {
  if (d < param.dim_slots.size() && param.dim_slots[d] >= 0) return slot(param.dim_slots[d]);
  return b_.getInt64(param.shape[d]);
}

llvm::Type* ExprEmitter::valueType(DType t) const {
  llvm::LLVMContext& c = b_.getContext();
  switch (t) {
    case DType::kFloat32: return llvm::Type::getFloatTy(c);
    case DType::kFloat64: return llvm::Type::getDoubleTy(c);
    case DType::kFloat16: return llvm::Type::getHalfTy(c);
    case DType::kBFloat16: return llvm::Type::getBFloatTy(c);
    case DType::kBool: return llvm::Type::getInt1Ty(c);
    default: return llvm::Type::getIntNTy(c, 8 * ir::byteSize(t));
  }
}

llvm::Type* ExprEmitter::memoryType(DType t) const {
  return t == DType::kBool ? llvm::Type::getInt8Ty(b_.getContext()) : valueType(t);
}

llvm::Value* ExprEmitter::intrinsic(llvm::Intrinsic::ID id, std::vector<llvm::Value*> args) {
  return b_.CreateIntrinsic(id, {args[0]->getType()}, args);
}

llvm::Value* ExprEmitter::address(int buffer, const std::vector<kir::Expr>& indices) {
  llvm::Value* offset = b_.getInt64(0);
  for (size_t d = 0; d < indices.size(); ++d) {
    llvm::Value* index = emit(indices[d]);
    bool dynamic = !dynamic_strides_.empty() && !dynamic_strides_[buffer].empty();
    if (guarded_depth_ > 0) {
      llvm::Value* last = b_.getInt64(std::max<int64_t>(kernel_.params[buffer].shape[d] - 1, 0));
      if (dynamic) last = b_.CreateIntrinsic(llvm::Intrinsic::smax, {index->getType()},
                                             {b_.CreateSub(dim(kernel_.params[buffer], d), b_.getInt64(1)), b_.getInt64(0)});
      index = b_.CreateIntrinsic(llvm::Intrinsic::smin, {index->getType()},
                                 {b_.CreateIntrinsic(llvm::Intrinsic::smax, {index->getType()}, {index, b_.getInt64(0)}),
                                  last});
    }
    llvm::Value* stride = dynamic ? dynamic_strides_[buffer][d] : b_.getInt64(strides_[buffer][d]);
    llvm::Value* term = b_.CreateMul(index, stride, "", false, true);
    offset = b_.CreateAdd(offset, term, "", false, true);
  }
  return b_.CreateInBoundsGEP(memoryType(kernel_.params[buffer].dtype), buffers_[buffer], offset);
}

void ExprEmitter::store(int buffer, const std::vector<kir::Expr>& indices, llvm::Value* value) {
  if (kernel_.params[buffer].dtype == DType::kBool) value = b_.CreateZExt(value, b_.getInt8Ty());
  b_.CreateStore(value, address(buffer, indices));
}

void ExprEmitter::branch(llvm::Value* cond, const std::function<void()>& then,
                         const std::function<void()>& otherwise) {
  llvm::Function* f = b_.GetInsertBlock()->getParent();
  auto* yes = llvm::BasicBlock::Create(b_.getContext(), "then", f);
  auto* no = llvm::BasicBlock::Create(b_.getContext(), "else", f);
  auto* done = llvm::BasicBlock::Create(b_.getContext(), "joined", f);
  b_.CreateCondBr(cond, yes, no);
  b_.SetInsertPoint(yes);
  then();
  b_.CreateBr(done);
  b_.SetInsertPoint(no);
  otherwise();
  b_.CreateBr(done);
  b_.SetInsertPoint(done);
}

void ExprEmitter::loop(int var_id, llvm::Value* begin, llvm::Value* end,
                       const std::function<void(llvm::Value*)>& body) {
  llvm::Function* f = b_.GetInsertBlock()->getParent();
  llvm::LLVMContext& c = b_.getContext();
  llvm::BasicBlock* pre = b_.GetInsertBlock();
  auto* header = llvm::BasicBlock::Create(c, "loop", f);
  auto* body_block = llvm::BasicBlock::Create(c, "body", f);
  auto* exit = llvm::BasicBlock::Create(c, "exit", f);
  b_.CreateCondBr(b_.CreateICmpSLT(begin, end), header, exit);
  b_.SetInsertPoint(header);
  llvm::PHINode* iv = b_.CreatePHI(b_.getInt64Ty(), 2, "iv");
  iv->addIncoming(begin, pre);
  b_.CreateBr(body_block);
  b_.SetInsertPoint(body_block);
  llvm::Value* saved = vars_.count(var_id) ? vars_[var_id] : nullptr;
  if (var_id >= 0) vars_[var_id] = iv;
  body(iv);
  if (var_id >= 0) vars_[var_id] = saved;
  llvm::Value* next = b_.CreateAdd(iv, b_.getInt64(1), "", true, true);
  iv->addIncoming(next, b_.GetInsertBlock());
  b_.CreateCondBr(b_.CreateICmpSLT(next, end), header, exit);
  b_.SetInsertPoint(exit);
}

llvm::Value* ExprEmitter::emit(const kir::Expr& e) {
  const ExprNode& n = *e;
  if (!substitutes_.empty()) {
    auto it = substitutes_.find(&n);
    if (it != substitutes_.end()) return it->second;
  }
  switch (n.kind) {
    case ExprNode::Kind::kConst: return emitConst(n);
    case ExprNode::Kind::kVar: return vars_.at(n.var_id);
    case ExprNode::Kind::kSlot: return slot(n.var_id);
    case ExprNode::Kind::kLoad: {
      llvm::Value* v = b_.CreateLoad(memoryType(n.dtype), address(n.buffer, n.operands));
      return n.dtype == DType::kBool ? b_.CreateICmpNE(v, b_.getInt8(0)) : v;
    }
    case ExprNode::Kind::kUnary: return emitUnary(n);
    case ExprNode::Kind::kBinary: {
      if (llvm::Value* v = emitQuantizeRounding(n)) return v;
      if (llvm::Value* v = emitSigmoid(n)) return v;
      llvm::Value* a = emit(n.operands[0]);
      llvm::Value* b = emit(n.operands[1]);
      return emitBinary(static_cast<BinaryOp>(n.op), n.operands[0].dtype(), a, b);
    }
    case ExprNode::Kind::kSelect: return emitSelect(n);
    case ExprNode::Kind::kCast: {
      if (llvm::Value* v = emitSmallIntegerDifference(n)) return v;
      DType from = n.operands[0].dtype();
      if (ir::isFloat(from) && isSmallInteger(n.dtype)) {
        auto [lo, hi] = integerBounds(n.dtype);
        return emitCast(from, n.dtype, emit(looserClampOperand(n.operands[0], lo, hi)));
      }
      return emitCast(from, n.dtype, emit(n.operands[0]));
    }
    case ExprNode::Kind::kReduce: return emitReduce(n);
    case ExprNode::Kind::kStringCall: return emitStringCall(n);
  }
  return nullptr;
}

// A call through the run's kiln_string_fns table, whose function pointers
// are in kir::StringFn order. Strings travel as i64 (the pointer's bits: the
// same registers as a pointer in the C calling convention), numbers as
// double or i64 as the lowering built them; `equal` returns an i32 flag.
llvm::Value* ExprEmitter::emitStringCall(const ExprNode& n) {
  auto fn = static_cast<kir::StringFn>(n.op);
  llvm::Type* ptr = llvm::PointerType::get(b_.getContext(), 0);
  std::vector<llvm::Value*> args = {string_pool_};
  std::vector<llvm::Type*> types = {ptr};
  for (const kir::Expr& operand : n.operands) {
    llvm::Value* v = emit(operand);
    if (v->getType()->isIntegerTy() && v->getType()->getIntegerBitWidth() < 64) v = b_.CreateZExt(v, b_.getInt64Ty());
    args.push_back(v);
    types.push_back(v->getType());
  }
  bool is_equal = fn == kir::StringFn::kEqual;
  llvm::Type* ret = is_equal ? b_.getInt32Ty() : valueType(n.dtype);
  llvm::Value* entry = b_.CreateConstGEP1_64(ptr, string_fns_, static_cast<uint64_t>(fn));
  llvm::Value* callee = b_.CreateLoad(ptr, entry);
  llvm::CallInst* call = b_.CreateCall(llvm::FunctionType::get(ret, types, false), callee, args);
  call->setDoesNotThrow();
  return is_equal ? b_.CreateICmpNE(call, b_.getInt32(0)) : call;
}

llvm::Value* ExprEmitter::emitConst(const ExprNode& n) {
  llvm::Type* t = valueType(n.dtype);
  if (ir::isFloat(n.dtype)) return llvm::ConstantFP::get(t, n.value);
  if (n.dtype == DType::kBool) return b_.getInt1(n.value != 0);
  if (n.dtype == DType::kUInt64 && n.value >= 9223372036854775808.0)
    return llvm::ConstantInt::get(t, static_cast<uint64_t>(n.value));
  return llvm::ConstantInt::get(t, static_cast<uint64_t>(static_cast<int64_t>(n.value)), true);
}

llvm::Value* ExprEmitter::callLibm(const char* f32_name, const char* f64_name, llvm::Value* v) {
  llvm::Type* t = v->getType();
  bool narrow = !t->isDoubleTy();
  llvm::Value* arg = narrow && !t->isFloatTy() ? b_.CreateFPExt(v, b_.getFloatTy()) : v;
  llvm::Module* m = b_.GetInsertBlock()->getModule();
  llvm::FunctionCallee f = m->getOrInsertFunction(narrow ? f32_name : f64_name, arg->getType(), arg->getType());
  if (auto* fn = llvm::dyn_cast<llvm::Function>(f.getCallee())) {
    fn->setDoesNotThrow();
    fn->setOnlyAccessesInaccessibleMemory();
  }
  llvm::Value* r = b_.CreateCall(f, {arg});
  return r->getType() == t ? r : b_.CreateFPTrunc(r, t);
}

llvm::Value* ExprEmitter::emitUnary(const ExprNode& n) {
  auto op = static_cast<UnaryOp>(n.op);
  llvm::Value* a = emit(n.operands[0]);
  if (ir::isFloat(n.dtype)) {
    // float32 exp/tanh/erf inline (emit_math.h: vectorizable, error bounds there).
    bool f32 = n.dtype == DType::kFloat32;
    switch (op) {
      case UnaryOp::kNeg: return b_.CreateFNeg(a);
      case UnaryOp::kAbs: return intrinsic(llvm::Intrinsic::fabs, {a});
      case UnaryOp::kExp: return f32 ? emitExpF32(b_, a) : intrinsic(llvm::Intrinsic::exp, {a});
      case UnaryOp::kLog: return intrinsic(llvm::Intrinsic::log, {a});
      case UnaryOp::kSqrt: return intrinsic(llvm::Intrinsic::sqrt, {a});
      case UnaryOp::kFloor: return intrinsic(llvm::Intrinsic::floor, {a});
      case UnaryOp::kCeil: return intrinsic(llvm::Intrinsic::ceil, {a});
      case UnaryOp::kRound: return intrinsic(llvm::Intrinsic::roundeven, {a});
      case UnaryOp::kSin: return intrinsic(llvm::Intrinsic::sin, {a});
      case UnaryOp::kCos: return intrinsic(llvm::Intrinsic::cos, {a});
      case UnaryOp::kTanh: return f32 ? emitTanhF32(b_, a) : callLibm("tanhf", "tanh", a);
      case UnaryOp::kErf: return f32 ? emitErfF32(b_, a) : callLibm("erff", "erf", a);
      case UnaryOp::kTan: return callLibm("tanf", "tan", a);
      case UnaryOp::kAsin: return callLibm("asinf", "asin", a);
      case UnaryOp::kAcos: return callLibm("acosf", "acos", a);
      case UnaryOp::kAtan: return callLibm("atanf", "atan", a);
      case UnaryOp::kSinh: return callLibm("sinhf", "sinh", a);
      case UnaryOp::kCosh: return callLibm("coshf", "cosh", a);
      case UnaryOp::kAsinh: return callLibm("asinhf", "asinh", a);
      case UnaryOp::kAcosh: return callLibm("acoshf", "acosh", a);
      case UnaryOp::kAtanh: return callLibm("atanhf", "atanh", a);
      case UnaryOp::kNot: return b_.CreateUIToFP(b_.CreateFCmpOEQ(a, llvm::ConstantFP::get(a->getType(), 0)), a->getType());
      case UnaryOp::kCount: break;
    }
    return nullptr;
  }
  switch (op) {
    case UnaryOp::kNeg: return b_.CreateNeg(a);
    case UnaryOp::kAbs: return intrinsic(llvm::Intrinsic::abs, {a, b_.getFalse()});
    case UnaryOp::kNot: return b_.CreateNot(a);
    default: return a;  // floor/ceil/round of an integer
  }
}

llvm::Value* ExprEmitter::emitBinary(BinaryOp op, DType t, llvm::Value* a, llvm::Value* b) {
  if (ir::isFloat(t)) {
    switch (op) {
      case BinaryOp::kAdd: return b_.CreateFAdd(a, b);
      case BinaryOp::kSub: return b_.CreateFSub(a, b);
      case BinaryOp::kMul: return b_.CreateFMul(a, b);
      case BinaryOp::kDiv: return b_.CreateFDiv(a, b);
      case BinaryOp::kMod: return b_.CreateFRem(a, b);
      case BinaryOp::kPow: return intrinsic(llvm::Intrinsic::pow, {a, b});
      // a > b || isnan(a) ? a : b, as the reference evaluator: NaN propagates
      // from a. Against a constant b other than zero and NaN that is exactly
      // b > a ? b : a (a == b only where they are the same float), x86's
      // vmaxps(b, a), one instruction in place of two compares, their or
      // and a blend: Clip's upper bound, HardSwish's.
      case BinaryOp::kMax:
        if (isNonzeroNumber(b)) return b_.CreateSelect(b_.CreateFCmpOGT(b, a), b, a);
        return b_.CreateSelect(b_.CreateOr(b_.CreateFCmpOGT(a, b), b_.CreateFCmpUNO(a, a)), a, b);
      case BinaryOp::kMin:
        if (isNonzeroNumber(b)) return b_.CreateSelect(b_.CreateFCmpOLT(b, a), b, a);
        return b_.CreateSelect(b_.CreateOr(b_.CreateFCmpOLT(a, b), b_.CreateFCmpUNO(a, a)), a, b);
      case BinaryOp::kEq: return b_.CreateFCmpOEQ(a, b);
      case BinaryOp::kNe: return b_.CreateFCmpUNE(a, b);
      case BinaryOp::kLt: return b_.CreateFCmpOLT(a, b);
      case BinaryOp::kLe: return b_.CreateFCmpOLE(a, b);
      case BinaryOp::kGt: return b_.CreateFCmpOGT(a, b);
      case BinaryOp::kGe: return b_.CreateFCmpOGE(a, b);
      default: return nullptr;
    }
  }
  bool u = ir::isUnsigned(t);
  switch (op) {
    case BinaryOp::kAdd: return b_.CreateAdd(a, b);
    case BinaryOp::kSub: return b_.CreateSub(a, b);
    case BinaryOp::kMul: return b_.CreateMul(a, b);
    case BinaryOp::kDiv:
    case BinaryOp::kMod: return emitIntDivision(op, t, a, b);
    case BinaryOp::kMax: return b_.CreateSelect(u ? b_.CreateICmpUGT(a, b) : b_.CreateICmpSGT(a, b), a, b);
    case BinaryOp::kMin: return b_.CreateSelect(u ? b_.CreateICmpULT(a, b) : b_.CreateICmpSLT(a, b), a, b);
    case BinaryOp::kPow: {
      llvm::Value* fa = u ? b_.CreateUIToFP(a, b_.getDoubleTy()) : b_.CreateSIToFP(a, b_.getDoubleTy());
      llvm::Value* fb = u ? b_.CreateUIToFP(b, b_.getDoubleTy()) : b_.CreateSIToFP(b, b_.getDoubleTy());
      return emitCast(DType::kFloat64, t, intrinsic(llvm::Intrinsic::pow, {fa, fb}));
    }
    case BinaryOp::kAnd: return b_.CreateAnd(a, b);
    case BinaryOp::kOr: return b_.CreateOr(a, b);
    case BinaryOp::kXor: return b_.CreateXor(a, b);
    case BinaryOp::kShl:
    case BinaryOp::kShr: {
      // LLVM shifts by >= the width are poison; ONNX wants 0.
      llvm::Value* width = llvm::ConstantInt::get(a->getType(), a->getType()->getIntegerBitWidth());
      llvm::Value* shifted = op == BinaryOp::kShl ? b_.CreateShl(a, b) : b_.CreateLShr(a, b);
      return b_.CreateSelect(b_.CreateICmpUGE(b, width), llvm::ConstantInt::get(a->getType(), 0), shifted);
    }
    case BinaryOp::kEq: return b_.CreateICmpEQ(a, b);
    case BinaryOp::kNe: return b_.CreateICmpNE(a, b);
    case BinaryOp::kLt: return u ? b_.CreateICmpULT(a, b) : b_.CreateICmpSLT(a, b);
    case BinaryOp::kLe: return u ? b_.CreateICmpULE(a, b) : b_.CreateICmpSLE(a, b);
    case BinaryOp::kGt: return u ? b_.CreateICmpUGT(a, b) : b_.CreateICmpSGT(a, b);
    case BinaryOp::kGe: return u ? b_.CreateICmpUGE(a, b) : b_.CreateICmpSGE(a, b);
    default: return nullptr;
  }
}

// Integer division never traps on run-time data: x/0 is 0 and MIN/-1 wraps,
// as the reference evaluator defines them.
llvm::Value* ExprEmitter::emitIntDivision(BinaryOp op, DType t, llvm::Value* a, llvm::Value* b) {
  llvm::Type* ty = a->getType();
  llvm::Value* zero = llvm::ConstantInt::get(ty, 0);
  llvm::Value* is_zero = b_.CreateICmpEQ(b, zero);
  bool div = op == BinaryOp::kDiv;
  if (ir::isUnsigned(t)) {
    llvm::Value* safe_b = b_.CreateSelect(is_zero, llvm::ConstantInt::get(ty, 1), b);
    llvm::Value* r = div ? b_.CreateUDiv(a, safe_b) : b_.CreateURem(a, safe_b);
    return b_.CreateSelect(is_zero, zero, r);
  }
  llvm::Value* is_minus_one = b_.CreateICmpEQ(b, llvm::ConstantInt::get(ty, -1, true));
  llvm::Value* safe_b = b_.CreateSelect(b_.CreateOr(is_zero, is_minus_one), llvm::ConstantInt::get(ty, 1), b);
  llvm::Value* r = div ? b_.CreateSDiv(a, safe_b) : b_.CreateSRem(a, safe_b);
  llvm::Value* minus_one_result = div ? b_.CreateNeg(a) : zero;
  return b_.CreateSelect(is_zero, zero, b_.CreateSelect(is_minus_one, minus_one_result, r));
}

// Arms that load run under a branch: padding guards like
// select(inRange(i), x[i], 0) must not read x out of bounds.
llvm::Value* ExprEmitter::emitSelect(const ExprNode& n) {
  llvm::Value* cond = emit(n.operands[0]);
  if (!containsLoadOrDivision(n.operands[1]) && !containsLoadOrDivision(n.operands[2]))
    return b_.CreateSelect(cond, emit(n.operands[1]), emit(n.operands[2]));
  if (speculate_) {
    ++guarded_depth_;
    llvm::Value* t = emit(n.operands[1]);
    llvm::Value* f = emit(n.operands[2]);
    --guarded_depth_;
    return b_.CreateSelect(cond, t, f);
  }
  llvm::Function* f = b_.GetInsertBlock()->getParent();
  llvm::LLVMContext& c = b_.getContext();
  auto* then_block = llvm::BasicBlock::Create(c, "then", f);
  auto* else_block = llvm::BasicBlock::Create(c, "else", f);
  auto* join = llvm::BasicBlock::Create(c, "join", f);
  b_.CreateCondBr(cond, then_block, else_block);
  b_.SetInsertPoint(then_block);
  llvm::Value* t = emit(n.operands[1]);
  llvm::BasicBlock* t_end = b_.GetInsertBlock();
  b_.CreateBr(join);
  b_.SetInsertPoint(else_block);
  llvm::Value* e = emit(n.operands[2]);
  llvm::BasicBlock* e_end = b_.GetInsertBlock();
  b_.CreateBr(join);
  b_.SetInsertPoint(join);
  llvm::PHINode* phi = b_.CreatePHI(t->getType(), 2);
  phi->addIncoming(t, t_end);
  phi->addIncoming(e, e_end);
  return phi;
}

llvm::Value* ExprEmitter::emitCast(DType from, DType to, llvm::Value* v) {
  if (from == to) return v;
  llvm::Type* target = valueType(to);
  bool from_float = ir::isFloat(from), to_float = ir::isFloat(to);
  if (to == DType::kBool)
    return from_float ? b_.CreateFCmpUNE(v, llvm::ConstantFP::get(v->getType(), 0))
                      : b_.CreateICmpNE(v, llvm::ConstantInt::get(v->getType(), 0));
  if (from_float && to_float) {
    // half <-> bfloat go through float.
    if ((from == DType::kFloat16 && to == DType::kBFloat16) || (from == DType::kBFloat16 && to == DType::kFloat16))
      return b_.CreateFPTrunc(b_.CreateFPExt(v, b_.getFloatTy()), target);
    return target->getPrimitiveSizeInBits() > v->getType()->getPrimitiveSizeInBits() ? b_.CreateFPExt(v, target)
                                                                                     : b_.CreateFPTrunc(v, target);
  }
  if (from_float) {
    const unsigned bits = target->getPrimitiveSizeInBits();
    if (bits < 32) {
      // Saturating to i8/i16 with llvm.fpto[su]i.sat is scalarized by the
      // x86 backend once vectorized (a compare, move and convert per lane).
      // Clamping in float first (the bounds are exact), NaN to 0, then a
      // plain conversion stays in vectors, with the same result for every
      // input: truncation toward zero and clamping to integer bounds commute.
      return b_.CreateTrunc(b_.CreateFPToSI(clampForCast(v, to), b_.getInt32Ty()), target);
    }
    auto id = ir::isUnsigned(to) ? llvm::Intrinsic::fptoui_sat : llvm::Intrinsic::fptosi_sat;
    return b_.CreateIntrinsic(id, {target, v->getType()}, {v});
  }
  if (to_float) return ir::isUnsigned(from) ? b_.CreateUIToFP(v, target) : b_.CreateSIToFP(v, target);
  return ir::isUnsigned(from) ? b_.CreateZExtOrTrunc(v, target) : b_.CreateSExtOrTrunc(v, target);
}

std::pair<double, double> ExprEmitter::integerBounds(DType t) {
  const int bits = 8 * ir::byteSize(t);
  if (ir::isUnsigned(t)) return {0.0, std::ldexp(1.0, bits) - 1};
  return {-std::ldexp(1.0, bits - 1), std::ldexp(1.0, bits - 1) - 1};
}

// Each bound is one compare-and-select with the bound second, which x86
// emits as a single vmaxps/vminps (they return the second operand when the
// first is NaN): NaN becomes the lower bound, then 0 where that is not 0.
llvm::Value* ExprEmitter::clampForCast(llvm::Value* v, DType to) {
  auto [lo, hi] = integerBounds(to);
  llvm::Type* ft = v->getType();
  llvm::Value* lo_c = llvm::ConstantFP::get(ft, lo);
  llvm::Value* hi_c = llvm::ConstantFP::get(ft, hi);
  llvm::Value* clamped = b_.CreateSelect(b_.CreateFCmpOGT(v, lo_c), v, lo_c);
  clamped = b_.CreateSelect(b_.CreateFCmpOLT(clamped, hi_c), clamped, hi_c);
  if (lo != 0) clamped = b_.CreateSelect(b_.CreateFCmpUNO(v, v), llvm::ConstantFP::get(ft, 0.0), clamped);
  return clamped;
}

// float32(sub(a, b)) where a and b widen integers of at most 16 bits: both
// and their difference are exact in float32, so the subtraction runs there.
// A widened saturating conversion from float32 (a quantized value read back,
// DequantizeLinear after QuantizeLinear) becomes its clamp, truncated unless
// the value is already integral: no round trip through the integer lanes.
llvm::Value* ExprEmitter::emitSmallIntegerDifference(const ExprNode& n) {
  if (n.dtype != DType::kFloat32) return nullptr;
  const kir::Expr& d = n.operands[0];
  if (!isKind(d, ExprNode::Kind::kBinary, static_cast<int>(BinaryOp::kSub)) || !ir::isInteger(d.dtype()) ||
      substitutes_.count(&*d))
    return nullptr;
  auto widened = [&](const kir::Expr& e) {
    return e->kind == ExprNode::Kind::kCast && isSmallInteger(e->operands[0].dtype()) && !substitutes_.count(&*e);
  };
  if (!widened(d->operands[0]) || !widened(d->operands[1])) return nullptr;
  auto asFloat = [&](const kir::Expr& e) -> llvm::Value* {
    const kir::Expr& narrow = e->operands[0];
    DType t = narrow.dtype();
    if (narrow->kind == ExprNode::Kind::kCast && narrow->operands[0].dtype() == DType::kFloat32 &&
        !substitutes_.count(&*narrow)) {
      auto [lo, hi] = integerBounds(t);
      const kir::Expr& x = looserClampOperand(narrow->operands[0], lo, hi);
      llvm::Value* clamped = clampForCast(emit(x), t);
      return isIntegral(x) ? clamped : intrinsic(llvm::Intrinsic::trunc, {clamped});
    }
    llvm::Value* v = emit(narrow);
    return ir::isUnsigned(t) ? b_.CreateUIToFP(v, b_.getFloatTy()) : b_.CreateSIToFP(v, b_.getFloatTy());
  };
  llvm::Value* a = asFloat(d->operands[0]);
  return b_.CreateFSub(a, asFloat(d->operands[1]));
}

// add(round(div(x, s)), z) with a scalar s and a z that is never -0:
// QuantizeLinear's rounding. The division is x·(1/s) corrected by one
// residual step (Markstein: with r = RN(1/s) and q0 = RN(x·r), the residual
// x − q0·s is exact through an FMA and RN(q0 + residual·r) = RN(x/s)), three
// FMA-unit operations in place of a divide whose throughput is 5–16 cycles a
// vector. Where the correction is NaN (x or x·r infinite, s zero or
// infinite) q0 is already the quotient's value or its saturation. The only
// other difference, the sign of a zero quotient, does not survive the add.
llvm::Value* ExprEmitter::emitQuantizeRounding(const ExprNode& n) {
  if (n.dtype != DType::kFloat32 || static_cast<BinaryOp>(n.op) != BinaryOp::kAdd) return nullptr;
  for (int side = 0; side < 2; ++side) {
    const kir::Expr& rounded = n.operands[side];
    const kir::Expr& z = n.operands[1 - side];
    if (!isKind(rounded, ExprNode::Kind::kUnary, static_cast<int>(UnaryOp::kRound)) || substitutes_.count(&*rounded))
      continue;
    const kir::Expr& div = rounded->operands[0];
    if (!isKind(div, ExprNode::Kind::kBinary, static_cast<int>(BinaryOp::kDiv)) || div.dtype() != DType::kFloat32 ||
        substitutes_.count(&*div) || !isScalarOperand(div->operands[1]))
      continue;
    bool never_negative_zero = (z->kind == ExprNode::Kind::kCast && !ir::isFloat(z->operands[0].dtype())) ||
                               (z->kind == ExprNode::Kind::kConst && !(z->value == 0 && std::signbit(z->value)));
    if (!never_negative_zero) continue;
    llvm::Value* x = emit(div->operands[0]);
    llvm::Value* s = emit(div->operands[1]);
    llvm::Value* r = b_.CreateFDiv(llvm::ConstantFP::get(s->getType(), 1.0), s);
    llvm::Value* q0 = b_.CreateFMul(x, r);
    llvm::Value* residual = intrinsic(llvm::Intrinsic::fma, {b_.CreateFNeg(q0), s, x});
    llvm::Value* q1 = intrinsic(llvm::Intrinsic::fma, {residual, r, q0});
    llvm::Value* q = b_.CreateSelect(b_.CreateFCmpUNO(q1, q1), q0, q1);
    llvm::Value* round = intrinsic(llvm::Intrinsic::roundeven, {q});
    llvm::Value* zv = emit(z);
    return side == 0 ? b_.CreateFAdd(round, zv) : b_.CreateFAdd(zv, round);
  }
  return nullptr;
}

// 1 / (1 + exp(-x)) in float32, as Sigmoid, SiLU and the recurrent cells
// lower it: emitSigmoidF32's cheaper form (emit_math.h), the exp's scaling
// and the divide being most of an expand convolution's SiLU epilogue.
llvm::Value* ExprEmitter::emitSigmoid(const ExprNode& n) {
  auto isOne = [](const kir::Expr& e) { return e->kind == ExprNode::Kind::kConst && e->value == 1.0; };
  if (n.dtype != DType::kFloat32 || static_cast<BinaryOp>(n.op) != BinaryOp::kDiv || !isOne(n.operands[0]))
    return nullptr;
  const kir::Expr& sum = n.operands[1];
  if (!isKind(sum, ExprNode::Kind::kBinary, static_cast<int>(BinaryOp::kAdd)) || substitutes_.count(&*sum))
    return nullptr;
  for (int side = 0; side < 2; ++side) {
    const kir::Expr& exp = sum->operands[side];
    if (!isOne(sum->operands[1 - side]) || !isKind(exp, ExprNode::Kind::kUnary, static_cast<int>(UnaryOp::kExp)) ||
        substitutes_.count(&*exp))
      continue;
    const kir::Expr& neg = exp->operands[0];
    if (!isKind(neg, ExprNode::Kind::kUnary, static_cast<int>(UnaryOp::kNeg)) || substitutes_.count(&*neg)) continue;
    return emitSigmoidF32(b_, emit(neg->operands[0]));
  }
  return nullptr;
}

// A float reduction's combining step, in a form LLVM's loop vectorizer
// accepts as a reduction: sums and products may be reassociated (the vector
// loop keeps one partial result per lane; the rounding differs from a serial
// sum by a few ulp of the row's magnitude), max/min are llvm.maximum/minimum,
// which propagate NaN as the reference evaluator does.
llvm::Value* ExprEmitter::combineFloat(kir::ReduceOp op, llvm::Value* acc, llvm::Value* x) {
  llvm::IRBuilderBase::FastMathFlagGuard guard(b_);
  llvm::FastMathFlags reassoc;
  reassoc.setAllowReassoc();
  b_.setFastMathFlags(reassoc);
  switch (op) {
    case kir::ReduceOp::kSum: return b_.CreateFAdd(acc, x);
    case kir::ReduceOp::kProd: return b_.CreateFMul(acc, x);
    case kir::ReduceOp::kMax: return intrinsic(llvm::Intrinsic::maximum, {acc, x});
    case kir::ReduceOp::kMin: return intrinsic(llvm::Intrinsic::minimum, {acc, x});
    case kir::ReduceOp::kCount: break;
  }
  return nullptr;
}

llvm::Value* ExprEmitter::reduceInit(const ExprNode& n) {
  llvm::Type* t = valueType(n.dtype);
  bool fl = ir::isFloat(n.dtype);
  unsigned bits = t->getPrimitiveSizeInBits();
  bool u = ir::isUnsigned(n.dtype);
  switch (static_cast<kir::ReduceOp>(n.op)) {
    case kir::ReduceOp::kSum: return fl ? llvm::ConstantFP::get(t, 0.0) : llvm::ConstantInt::get(t, 0);
    case kir::ReduceOp::kProd: return fl ? llvm::ConstantFP::get(t, 1.0) : llvm::ConstantInt::get(t, 1);
    case kir::ReduceOp::kMax:
      return fl ? llvm::ConstantFP::getInfinity(t, true)
                : llvm::ConstantInt::get(t, u ? llvm::APInt::getMinValue(bits) : llvm::APInt::getSignedMinValue(bits));
    case kir::ReduceOp::kMin:
      return fl ? llvm::ConstantFP::getInfinity(t, false)
                : llvm::ConstantInt::get(t, u ? llvm::APInt::getMaxValue(bits) : llvm::APInt::getSignedMaxValue(bits));
    case kir::ReduceOp::kCount: break;
  }
  return nullptr;
}

llvm::Value* ExprEmitter::reduceStep(const ExprNode& n, llvm::Value* acc) {
  static constexpr BinaryOp kCombine[] = {BinaryOp::kAdd, BinaryOp::kMul, BinaryOp::kMax, BinaryOp::kMin};
  auto op = static_cast<kir::ReduceOp>(n.op);
  llvm::Value* term = emit(n.operands[0]);
  return ir::isFloat(n.dtype) ? combineFloat(op, acc, term)
                              : emitBinary(kCombine[static_cast<int>(op)], n.dtype, acc, term);
}

llvm::Value* ExprEmitter::emitReduce(const ExprNode& n) {
  llvm::Type* t = valueType(n.dtype);
  // The accumulator lives in an entry-block slot; mem2reg turns it into a register.
  llvm::Function* f = b_.GetInsertBlock()->getParent();
  llvm::IRBuilder<> entry(&f->getEntryBlock(), f->getEntryBlock().begin());
  llvm::AllocaInst* acc = entry.CreateAlloca(t);
  b_.CreateStore(reduceInit(n), acc);
  std::function<void(size_t)> nest = [&](size_t d) {
    if (d == n.reduce_vars.size()) {
      b_.CreateStore(reduceStep(n, b_.CreateLoad(t, acc)), acc);
      return;
    }
    const kir::IterVar& v = n.reduce_vars[d];
    loop(v.id, b_.getInt64(0), extent(v), [&](llvm::Value*) { nest(d + 1); });
  };
  nest(0);
  return b_.CreateLoad(t, acc);
}

}  // namespace kiln::codegen::cpu
