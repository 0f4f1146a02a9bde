// Kernel IR: target-neutral definitions of what each output element is.
//
// A Kernel has buffer parameters and an ordered list of Stages. A Stage says
// `buffer[store_index(axes)] = value(axes)` for every point of its iteration
// space; `value` is an expression tree of loads, arithmetic, selects and
// reductions. This is the algorithm only: how a stage is tiled, vectorized or
// parallelized is decided by a backend's schedule, never written here. The
// reference evaluator (evaluator.h) interprets the same definitions.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "compiler/ir/dtype.h"

namespace kiln::kir {

using ir::DType;

enum class UnaryOp {
  kNeg, kAbs, kExp, kLog, kSqrt, kTanh, kErf, kFloor, kCeil, kRound, kSin, kCos, kNot,
  kTan, kAsin, kAcos, kAtan, kSinh, kCosh, kAsinh, kAcosh, kAtanh,
  kCount
};
enum class BinaryOp {
  kAdd, kSub, kMul, kDiv, kMod, kMax, kMin, kPow,
  kAnd, kOr, kXor,                      // logical for bool, bitwise for integers
  kShl, kShr,                           // integers; shifts of >= the bit width give 0
  kEq, kNe, kLt, kLe, kGt, kGe,         // produce bool
  kCount
};
enum class ReduceOp { kSum, kProd, kMax, kMin, kCount };
// String primitives. A kString value is a pointer to NUL-terminated UTF-8
// (held as a 64-bit value); strings made during a run belong to the run.
// Generated code calls the run's string functions for these (see
// runtime/src/string_fns.h); everything else done to strings (copies,
// gathers, selects) is ordinary loads and stores of the pointers.
enum class StringFn {
  kFormatFloat,  // {float64 x, int64 bits (32 or 64)} -> string: shortest round-trip decimal
  kFormatInt,    // {int64 x, int64 is_unsigned} -> string
  kParseFloat,   // {string s, int64 bits} -> float64 (strtof for 32, strtod for 64)
  kParseInt,     // {string s, int64 is_unsigned} -> int64
  kChangeCase,   // {string s, int64 upper} -> string
  kEqual,        // {string a, string b, int64 ignore_case} -> bool
  kCount
};

const char* opName(UnaryOp op);
const char* opName(BinaryOp op);
const char* opName(ReduceOp op);
const char* opName(StringFn fn);
bool isComparison(BinaryOp op);

// An iteration variable ranging over [0, extent). When `extent_slot` >= 0
// the extent is known only at run time: it is the value of that dim slot
// (see "Dim slots" below) and `extent` holds the value it had when the
// program was sampled, for estimates (FLOPs) only.
struct IterVar {
  int id = -1;
  int64_t extent = 0;
  std::string name;
  int extent_slot = -1;
};

// Dim slots: a per-run table of int64 sizes. Slot 0 receives the code of a
// failed run-time check; the other slots are filled at run start from the
// caller's input shapes and by kSetSlot stages, which compute sizes from
// small integer tensors and other slots. Static programs use none.
inline constexpr int kErrorSlot = 0;

struct ExprNode;
using ExprPtr = std::shared_ptr<const ExprNode>;

// A value-semantic handle on an immutable expression tree. Index arithmetic
// uses int64 expressions; operators taking a double build a constant of the
// other side's dtype.
class Expr {
 public:
  Expr() = default;
  explicit Expr(ExprPtr node) : node_(std::move(node)) {}
  Expr(const IterVar& var);  // NOLINT: iteration variables read as int64 indices

  static Expr constant(DType dtype, double value);
  static Expr index(int64_t value) { return constant(DType::kInt64, static_cast<double>(value)); }

  const ExprNode& operator*() const { return *node_; }
  const ExprNode* operator->() const { return node_.get(); }
  const ExprPtr& node() const { return node_; }
  DType dtype() const;
  bool valid() const { return node_ != nullptr; }

 private:
  ExprPtr node_;
};

struct ExprNode {
  enum class Kind { kConst, kVar, kLoad, kUnary, kBinary, kSelect, kCast, kReduce, kSlot, kStringCall };
  Kind kind = Kind::kConst;
  DType dtype = DType::kFloat32;
  double value = 0;          // kConst (integers are exact up to 2^53)
  int var_id = -1;           // kVar; kSlot: the slot read (int64)
  int buffer = -1;           // kLoad: parameter index
  int op = 0;                // UnaryOp / BinaryOp / ReduceOp / StringFn
  std::vector<Expr> operands;  // load indices; unary {a}; binary {a,b}; select {cond,a,b}; cast {a}; reduce {body}; string call: its arguments
  std::vector<IterVar> reduce_vars;  // kReduce
};

Expr unary(UnaryOp op, Expr a);
Expr binary(BinaryOp op, Expr a, Expr b);
Expr select(Expr cond, Expr if_true, Expr if_false);
Expr cast(DType dtype, Expr a);
Expr reduce(ReduceOp op, std::vector<IterVar> vars, Expr body);
// The run-time value of dim slot `slot` (int64).
Expr slotValue(int slot);
// A string primitive's result (its dtype is fixed by `fn`, see StringFn).
Expr stringCall(StringFn fn, std::vector<Expr> args);

Expr operator+(Expr a, Expr b);
Expr operator-(Expr a, Expr b);
Expr operator*(Expr a, Expr b);
Expr operator/(Expr a, Expr b);
Expr operator%(Expr a, Expr b);
Expr operator-(Expr a);
Expr operator<(Expr a, Expr b);
Expr operator<=(Expr a, Expr b);
Expr operator>(Expr a, Expr b);
Expr operator>=(Expr a, Expr b);
Expr operator&&(Expr a, Expr b);
Expr operator||(Expr a, Expr b);
Expr eq(Expr a, Expr b);
Expr max(Expr a, Expr b);
Expr min(Expr a, Expr b);
// Mixed forms with a constant of the expression's own dtype.
Expr operator+(Expr a, double b);
Expr operator-(Expr a, double b);
Expr operator*(Expr a, double b);
Expr operator/(Expr a, double b);
Expr operator+(double a, Expr b);
Expr operator-(double a, Expr b);
Expr operator*(double a, Expr b);
Expr operator/(double a, Expr b);
Expr max(Expr a, double b);
Expr min(Expr a, double b);
Expr exp(Expr a);
Expr log(Expr a);
Expr sqrt(Expr a);
Expr tanh(Expr a);
Expr abs(Expr a);
// 0 <= index < extent, as a bool expression.
Expr inRange(Expr index, int64_t extent);
// Whether `e` is iteration variable `var_id` itself.
inline bool isVar(const Expr& e, int var_id) { return e->kind == ExprNode::Kind::kVar && e->var_id == var_id; }
// Whether index `e` names the element of axis `axis`: the axis's variable,
// or, for a unit axis, the constant 0 (as broadcasting lowerings write it).
inline bool indexesAxis(const Expr& e, const IterVar& axis) {
  return isVar(e, axis.id) || (axis.extent == 1 && e->kind == ExprNode::Kind::kConst && e->value == 0);
}

struct BufferParam {
  std::string name;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;  // the view this kernel indexes; row-major, dense
  bool written = false;
  // Empty for a static view; else one per dim: the dim slot holding that
  // dim's size at run time, or -1 where `shape` is exact.
  std::vector<int> dim_slots;

  int64_t elementCount() const;
  bool isDynamic() const;
};

struct Stage {
  // kStore: buffer[store_index] = value over the axes. The shape steps of a
  // dynamic program are stages without axes: kSetSlot writes the int64
  // `value` to dim slot `target`; kCheck stops the run with check `target`
  // (a message in the program's list) unless the bool `value` holds.
  enum class Kind { kStore, kSetSlot, kCheck };
  int buffer = -1;              // parameter written (kStore)
  std::vector<IterVar> axes;    // iteration space, outermost first
  std::vector<Expr> store_index;  // one per buffer dim; defaults to the axes
  Expr value;
  Kind kind = Kind::kStore;
  int target = -1;              // kSetSlot: the slot; kCheck: the check's index
};



struct Kernel {
  std::string name;    // unique within a program, a valid symbol
  std::string origin;  // the graph node(s) it came from, for profiles and errors
  std::vector<BufferParam> params;
  std::vector<Stage> stages;
};

// Whether anything in the stage (extents, the dims of a buffer it touches,
// slot reads) is known only at run time, or the stage is a shape step.
// Backends schedule such stages with plain loops.
bool isDynamic(const Kernel& kernel, const Stage& stage);
bool isDynamic(const Kernel& kernel);
bool usesSlots(const Expr& e);
// True when every iteration writes its own element: each store index is a
// distinct axis variable covering all the axes. Only such stages (or those
// storesDistinctAffine, affine.h, proves distinct) may be split across
// threads; a scatter (indices from data) may write one element from many
// iterations and runs serially, so later updates win as the algorithm says.
bool writesDistinctElements(const Stage& stage);

// Builds a Kernel. A parameter handle loads with `x(i, j)`.
class KernelBuilder {
 public:
  explicit KernelBuilder(std::string name, std::string origin = {});

  class Buffer {
   public:
    Buffer() = default;
    Buffer(int index, DType dtype, std::vector<int64_t> shape) : index_(index), dtype_(dtype), shape_(std::move(shape)) {}
    template <typename... Ix>
    Expr operator()(Ix... ix) const { return load({Expr(ix)...}); }
    Expr load(std::vector<Expr> indices) const;
    int index() const { return index_; }
    DType dtype() const { return dtype_; }
    const std::vector<int64_t>& shape() const { return shape_; }
    int64_t dim(size_t i) const { return shape_[i]; }
    size_t rank() const { return shape_.size(); }

   private:
    int index_ = -1;
    DType dtype_ = DType::kFloat32;
    std::vector<int64_t> shape_;
  };

  Buffer input(std::string name, DType dtype, std::vector<int64_t> shape);
  Buffer output(std::string name, DType dtype, std::vector<int64_t> shape);
  IterVar var(std::string name, int64_t extent);
  // One iteration variable per dim of `shape`, named prefix0, prefix1...
  std::vector<IterVar> vars(const std::vector<int64_t>& shape, const std::string& prefix = "i");

  // out[axes...] = value
  void compute(const Buffer& out, std::vector<IterVar> axes, Expr value);
  // out[store_index...] = value, for every point of axes
  void computeAt(const Buffer& out, std::vector<IterVar> axes, std::vector<Expr> store_index, Expr value);
  // Shape steps: slot = value (int64); stop with check `check` unless `ok`.
  void setSlot(int slot, Expr value);
  void check(int check, Expr ok);
  Kernel& kernel() { return kernel_; }

  Kernel finish() { return std::move(kernel_); }

 private:
  Kernel kernel_;
  int next_var_ = 0;
};

std::string toString(const Kernel& kernel);
std::string extentString(const IterVar& v);  // "12", or "$3" for a slot
std::string toString(const Expr& expr);

// Estimated floating-point operations of one run (multiply-add counts two).
int64_t countFlops(const Kernel& kernel);

}  // namespace kiln::kir
