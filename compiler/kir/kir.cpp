#include "compiler/kir/kir.h"

#include <algorithm>
#include <cassert>
#include <set>
#include <sstream>

namespace kiln::kir {
namespace {

constexpr const char* kUnaryNames[] = {"neg",  "abs",  "exp",  "log",  "sqrt", "tanh",  "erf",   "floor",
                                       "ceil", "round", "sin", "cos",  "not",  "tan",   "asin",  "acos",
                                       "atan", "sinh", "cosh", "asinh", "acosh", "atanh"};
constexpr const char* kBinaryNames[] = {"add", "sub", "mul", "div", "mod", "max", "min", "pow", "and", "or",
                                        "xor", "shl", "shr", "eq",  "ne",  "lt",  "le",  "gt",  "ge"};
constexpr const char* kReduceNames[] = {"sum", "prod", "max", "min"};
constexpr const char* kStringFnNames[] = {"format_float", "format_int", "parse_float", "parse_int", "change_case",
                                          "string_equal"};
static_assert(std::size(kUnaryNames) == static_cast<size_t>(UnaryOp::kCount));
static_assert(std::size(kBinaryNames) == static_cast<size_t>(BinaryOp::kCount));
static_assert(std::size(kReduceNames) == static_cast<size_t>(ReduceOp::kCount));
static_assert(std::size(kStringFnNames) == static_cast<size_t>(StringFn::kCount));

Expr make(ExprNode node) { return Expr(std::make_shared<const ExprNode>(std::move(node))); }

}  // namespace

const char* opName(UnaryOp op) { return kUnaryNames[static_cast<int>(op)]; }
const char* opName(BinaryOp op) { return kBinaryNames[static_cast<int>(op)]; }
const char* opName(ReduceOp op) { return kReduceNames[static_cast<int>(op)]; }
const char* opName(StringFn fn) { return kStringFnNames[static_cast<int>(fn)]; }
bool isComparison(BinaryOp op) { return op >= BinaryOp::kEq && op <= BinaryOp::kGe; }

Expr::Expr(const IterVar& var) {
  ExprNode node;
  node.kind = ExprNode::Kind::kVar;
  node.dtype = DType::kInt64;
  node.var_id = var.id;
  node_ = std::make_shared<const ExprNode>(std::move(node));
}

Expr Expr::constant(DType dtype, double value) {
  ExprNode node;
  node.kind = ExprNode::Kind::kConst;
  node.dtype = dtype;
  node.value = value;
  return make(std::move(node));
}

DType Expr::dtype() const { return node_->dtype; }

Expr unary(UnaryOp op, Expr a) {
  ExprNode node;
  node.kind = ExprNode::Kind::kUnary;
  node.dtype = a.dtype();
  node.op = static_cast<int>(op);
  node.operands = {std::move(a)};
  return make(std::move(node));
}

Expr binary(BinaryOp op, Expr a, Expr b) {
  assert(a.dtype() == b.dtype() && "binary operands must share a dtype; cast first");
  ExprNode node;
  node.kind = ExprNode::Kind::kBinary;
  node.dtype = isComparison(op) ? DType::kBool : a.dtype();
  node.op = static_cast<int>(op);
  node.operands = {std::move(a), std::move(b)};
  return make(std::move(node));
}

Expr select(Expr cond, Expr if_true, Expr if_false) {
  assert(cond.dtype() == DType::kBool && if_true.dtype() == if_false.dtype());
  ExprNode node;
  node.kind = ExprNode::Kind::kSelect;
  node.dtype = if_true.dtype();
  node.operands = {std::move(cond), std::move(if_true), std::move(if_false)};
  return make(std::move(node));
}

Expr cast(DType dtype, Expr a) {
  if (a.dtype() == dtype) return a;
  ExprNode node;
  node.kind = ExprNode::Kind::kCast;
  node.dtype = dtype;
  node.operands = {std::move(a)};
  return make(std::move(node));
}

Expr reduce(ReduceOp op, std::vector<IterVar> vars, Expr body) {
  ExprNode node;
  node.kind = ExprNode::Kind::kReduce;
  node.dtype = body.dtype();
  node.op = static_cast<int>(op);
  node.operands = {std::move(body)};
  node.reduce_vars = std::move(vars);
  return make(std::move(node));
}

Expr slotValue(int slot) {
  ExprNode node;
  node.kind = ExprNode::Kind::kSlot;
  node.dtype = DType::kInt64;
  node.var_id = slot;
  return make(std::move(node));
}

Expr stringCall(StringFn fn, std::vector<Expr> args) {
  ExprNode node;
  node.kind = ExprNode::Kind::kStringCall;
  switch (fn) {
    case StringFn::kFormatFloat:
    case StringFn::kFormatInt:
    case StringFn::kChangeCase: node.dtype = DType::kString; break;
    case StringFn::kParseFloat: node.dtype = DType::kFloat64; break;
    case StringFn::kParseInt: node.dtype = DType::kInt64; break;
    case StringFn::kEqual:
    case StringFn::kCount: node.dtype = DType::kBool; break;
  }
  node.op = static_cast<int>(fn);
  node.operands = std::move(args);
  return make(std::move(node));
}

Expr operator+(Expr a, Expr b) { return binary(BinaryOp::kAdd, std::move(a), std::move(b)); }
Expr operator-(Expr a, Expr b) { return binary(BinaryOp::kSub, std::move(a), std::move(b)); }
Expr operator*(Expr a, Expr b) { return binary(BinaryOp::kMul, std::move(a), std::move(b)); }
Expr operator/(Expr a, Expr b) { return binary(BinaryOp::kDiv, std::move(a), std::move(b)); }
Expr operator%(Expr a, Expr b) { return binary(BinaryOp::kMod, std::move(a), std::move(b)); }
Expr operator-(Expr a) { return unary(UnaryOp::kNeg, std::move(a)); }
Expr operator<(Expr a, Expr b) { return binary(BinaryOp::kLt, std::move(a), std::move(b)); }
Expr operator<=(Expr a, Expr b) { return binary(BinaryOp::kLe, std::move(a), std::move(b)); }
Expr operator>(Expr a, Expr b) { return binary(BinaryOp::kGt, std::move(a), std::move(b)); }
Expr operator>=(Expr a, Expr b) { return binary(BinaryOp::kGe, std::move(a), std::move(b)); }
Expr operator&&(Expr a, Expr b) { return binary(BinaryOp::kAnd, std::move(a), std::move(b)); }
Expr operator||(Expr a, Expr b) { return binary(BinaryOp::kOr, std::move(a), std::move(b)); }
Expr eq(Expr a, Expr b) { return binary(BinaryOp::kEq, std::move(a), std::move(b)); }
Expr max(Expr a, Expr b) { return binary(BinaryOp::kMax, std::move(a), std::move(b)); }
Expr min(Expr a, Expr b) { return binary(BinaryOp::kMin, std::move(a), std::move(b)); }
Expr operator+(Expr a, double b) { DType t = a.dtype(); return std::move(a) + Expr::constant(t, b); }
Expr operator-(Expr a, double b) { DType t = a.dtype(); return std::move(a) - Expr::constant(t, b); }
Expr operator*(Expr a, double b) { DType t = a.dtype(); return std::move(a) * Expr::constant(t, b); }
Expr operator/(Expr a, double b) { DType t = a.dtype(); return std::move(a) / Expr::constant(t, b); }
Expr operator+(double a, Expr b) { DType t = b.dtype(); return Expr::constant(t, a) + std::move(b); }
Expr operator-(double a, Expr b) { DType t = b.dtype(); return Expr::constant(t, a) - std::move(b); }
Expr operator*(double a, Expr b) { DType t = b.dtype(); return Expr::constant(t, a) * std::move(b); }
Expr operator/(double a, Expr b) { DType t = b.dtype(); return Expr::constant(t, a) / std::move(b); }
Expr max(Expr a, double b) { DType t = a.dtype(); return max(std::move(a), Expr::constant(t, b)); }
Expr min(Expr a, double b) { DType t = a.dtype(); return min(std::move(a), Expr::constant(t, b)); }
Expr exp(Expr a) { return unary(UnaryOp::kExp, std::move(a)); }
Expr log(Expr a) { return unary(UnaryOp::kLog, std::move(a)); }
Expr sqrt(Expr a) { return unary(UnaryOp::kSqrt, std::move(a)); }
Expr tanh(Expr a) { return unary(UnaryOp::kTanh, std::move(a)); }
Expr abs(Expr a) { return unary(UnaryOp::kAbs, std::move(a)); }
Expr inRange(Expr index, int64_t extent) { return (index >= Expr::index(0)) && (index < Expr::index(extent)); }

int64_t BufferParam::elementCount() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

bool BufferParam::isDynamic() const {
  for (int s : dim_slots)
    if (s >= 0) return true;
  return false;
}

bool usesSlots(const Expr& e) {
  if (e->kind == ExprNode::Kind::kSlot) return true;
  for (const IterVar& v : e->reduce_vars)
    if (v.extent_slot >= 0) return true;
  for (const Expr& op : e->operands)
    if (usesSlots(op)) return true;
  return false;
}

namespace {

bool anyDynamicParam(const Kernel& kernel) {
  return std::any_of(kernel.params.begin(), kernel.params.end(), [](const BufferParam& p) { return p.isDynamic(); });
}

// isDynamic without the params' dims, which all stages share.
bool readsRunTimeSizes(const Stage& stage) {
  if (stage.kind != Stage::Kind::kStore) return true;
  for (const IterVar& v : stage.axes)
    if (v.extent_slot >= 0) return true;
  if (usesSlots(stage.value)) return true;
  return std::any_of(stage.store_index.begin(), stage.store_index.end(), [](const Expr& e) { return usesSlots(e); });
}

}  // namespace

bool isDynamic(const Kernel& kernel, const Stage& stage) { return readsRunTimeSizes(stage) || anyDynamicParam(kernel); }

bool isDynamic(const Kernel& kernel) {
  return anyDynamicParam(kernel) || std::any_of(kernel.stages.begin(), kernel.stages.end(), readsRunTimeSizes);
}

bool writesDistinctElements(const Stage& stage) {
  std::vector<int> seen;
  for (const Expr& index : stage.store_index) {
    if (index->kind != ExprNode::Kind::kVar) return false;
    if (std::find(seen.begin(), seen.end(), index->var_id) != seen.end()) return false;
    seen.push_back(index->var_id);
  }
  return seen.size() == stage.axes.size();
}

KernelBuilder::KernelBuilder(std::string name, std::string origin) {
  kernel_.name = std::move(name);
  kernel_.origin = std::move(origin);
}

Expr KernelBuilder::Buffer::load(std::vector<Expr> indices) const {
  assert(indices.size() == shape_.size() && "load needs one index per dimension");
  ExprNode node;
  node.kind = ExprNode::Kind::kLoad;
  node.dtype = dtype_;
  node.buffer = index_;
  node.operands = std::move(indices);
  return Expr(std::make_shared<const ExprNode>(std::move(node)));
}

KernelBuilder::Buffer KernelBuilder::input(std::string name, DType dtype, std::vector<int64_t> shape) {
  kernel_.params.push_back(BufferParam{std::move(name), dtype, shape, false, {}});
  return Buffer(static_cast<int>(kernel_.params.size() - 1), dtype, std::move(shape));
}

KernelBuilder::Buffer KernelBuilder::output(std::string name, DType dtype, std::vector<int64_t> shape) {
  kernel_.params.push_back(BufferParam{std::move(name), dtype, shape, true, {}});
  return Buffer(static_cast<int>(kernel_.params.size() - 1), dtype, std::move(shape));
}

IterVar KernelBuilder::var(std::string name, int64_t extent) { return IterVar{next_var_++, extent, std::move(name), -1}; }

std::vector<IterVar> KernelBuilder::vars(const std::vector<int64_t>& shape, const std::string& prefix) {
  std::vector<IterVar> out;
  for (size_t i = 0; i < shape.size(); ++i) out.push_back(var(prefix + std::to_string(i), shape[i]));
  return out;
}

void KernelBuilder::compute(const Buffer& out, std::vector<IterVar> axes, Expr value) {
  std::vector<Expr> index(axes.begin(), axes.end());
  computeAt(out, std::move(axes), std::move(index), std::move(value));
}

void KernelBuilder::computeAt(const Buffer& out, std::vector<IterVar> axes, std::vector<Expr> store_index,
                              Expr value) {
  assert(store_index.size() == out.rank());
  assert(value.dtype() == out.dtype() && "stage value must have the buffer's dtype");
  kernel_.stages.push_back(Stage{out.index(), std::move(axes), std::move(store_index), cast(out.dtype(), std::move(value)), Stage::Kind::kStore, -1});
}

void KernelBuilder::setSlot(int slot, Expr value) {
  assert(value.dtype() == DType::kInt64);
  Stage stage;
  stage.kind = Stage::Kind::kSetSlot;
  stage.target = slot;
  stage.value = std::move(value);
  kernel_.stages.push_back(std::move(stage));
}

void KernelBuilder::check(int check, Expr ok) {
  assert(ok.dtype() == DType::kBool);
  Stage stage;
  stage.kind = Stage::Kind::kCheck;
  stage.target = check;
  stage.value = std::move(ok);
  kernel_.stages.push_back(std::move(stage));
}

namespace {

class Printer {
 public:
  explicit Printer(const Kernel* kernel) : kernel_(kernel) {}

  void expr(std::ostream& os, const Expr& e) {
    const ExprNode& n = *e;
    switch (n.kind) {
      case ExprNode::Kind::kConst:
        if (ir::isFloat(n.dtype)) os << n.value << (n.dtype == DType::kFloat32 ? "f" : "");
        else os << static_cast<int64_t>(n.value);
        return;
      case ExprNode::Kind::kVar: os << 'v' << n.var_id; return;
      case ExprNode::Kind::kSlot: os << '$' << n.var_id; return;
      case ExprNode::Kind::kLoad:
        os << (kernel_ ? kernel_->params[n.buffer].name : "%" + std::to_string(n.buffer)) << '[';
        list(os, n.operands);
        os << ']';
        return;
      case ExprNode::Kind::kUnary:
        os << opName(static_cast<UnaryOp>(n.op)) << '(';
        expr(os, n.operands[0]);
        os << ')';
        return;
      case ExprNode::Kind::kBinary:
        os << opName(static_cast<BinaryOp>(n.op)) << '(';
        list(os, n.operands);
        os << ')';
        return;
      case ExprNode::Kind::kSelect: os << "select("; list(os, n.operands); os << ')'; return;
      case ExprNode::Kind::kCast: os << ir::name(n.dtype) << '('; expr(os, n.operands[0]); os << ')'; return;
      case ExprNode::Kind::kStringCall:
        os << opName(static_cast<StringFn>(n.op)) << '(';
        list(os, n.operands);
        os << ')';
        return;
      case ExprNode::Kind::kReduce:
        os << opName(static_cast<ReduceOp>(n.op)) << '[';
        for (size_t i = 0; i < n.reduce_vars.size(); ++i)
          os << (i ? ", " : "") << 'v' << n.reduce_vars[i].id << " < " << extentString(n.reduce_vars[i]);
        os << "](";
        expr(os, n.operands[0]);
        os << ')';
        return;
    }
  }

 private:
  void list(std::ostream& os, const std::vector<Expr>& items) {
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) os << ", ";
      expr(os, items[i]);
    }
  }
  const Kernel* kernel_;
};

}  // namespace

std::string extentString(const IterVar& v) {
  return v.extent_slot >= 0 ? "$" + std::to_string(v.extent_slot) : std::to_string(v.extent);
}

namespace {

// A node that several operands share (a fused SiLU's one sum) counts once.
int64_t exprFlops(const Expr& e, std::set<const ExprNode*>& seen) {
  const ExprNode& n = *e;
  if (!seen.insert(&n).second) return 0;
  int64_t own = 0;
  if (ir::isFloat(n.dtype) && (n.kind == ExprNode::Kind::kBinary || n.kind == ExprNode::Kind::kUnary)) own = 1;
  int64_t children = 0;
  if (n.kind != ExprNode::Kind::kLoad)  // index arithmetic is not counted
    for (const Expr& operand : n.operands) children += exprFlops(operand, seen);
  if (n.kind == ExprNode::Kind::kReduce) {
    int64_t trip = 1;
    for (const IterVar& v : n.reduce_vars) trip *= v.extent;
    return trip * (children + 1);
  }
  return own + children;
}

}  // namespace

std::string toString(const Expr& expr) {
  std::ostringstream os;
  Printer(nullptr).expr(os, expr);
  return os.str();
}

std::string toString(const Kernel& kernel) {
  std::ostringstream os;
  os << "kernel @" << kernel.name;
  if (!kernel.origin.empty()) os << "  // " << kernel.origin;
  os << "\n";
  for (const BufferParam& p : kernel.params) {
    os << "  " << (p.written ? "out " : "in  ") << p.name << ": " << ir::name(p.dtype) << '[';
    for (size_t i = 0; i < p.shape.size(); ++i) {
      os << (i ? "x" : "");
      if (i < p.dim_slots.size() && p.dim_slots[i] >= 0) os << '$' << p.dim_slots[i];
      else os << p.shape[i];
    }
    os << "]\n";
  }
  Printer printer(&kernel);
  for (const Stage& stage : kernel.stages) {
    if (stage.kind != Stage::Kind::kStore) {
      os << (stage.kind == Stage::Kind::kSetSlot ? "  $" : "  check #") << stage.target
         << (stage.kind == Stage::Kind::kSetSlot ? " = " : ": ");
      printer.expr(os, stage.value);
      os << "\n";
      continue;
    }
    os << "  for ";
    for (size_t i = 0; i < stage.axes.size(); ++i)
      os << (i ? ", " : "") << 'v' << stage.axes[i].id << " < " << extentString(stage.axes[i]);
    os << ":\n    " << kernel.params[stage.buffer].name << '[';
    for (size_t i = 0; i < stage.store_index.size(); ++i) {
      if (i) os << ", ";
      printer.expr(os, stage.store_index[i]);
    }
    os << "] = ";
    printer.expr(os, stage.value);
    os << "\n";
  }
  return os.str();
}

int64_t countFlops(const Kernel& kernel) {
  int64_t total = 0;
  for (const Stage& stage : kernel.stages) {
    if (stage.kind != Stage::Kind::kStore) continue;
    int64_t points = 1;
    for (const IterVar& v : stage.axes) points *= v.extent;
    std::set<const ExprNode*> seen;
    total += points * exprFlops(stage.value, seen);
  }
  return total;
}

}  // namespace kiln::kir
