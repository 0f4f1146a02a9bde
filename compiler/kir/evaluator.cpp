// Tree-walking interpreter of the kernel IR. Values are held as double for
// float dtypes (rounded to the dtype's precision after every operation, so
// float32 results match generated code) and as int64 bit patterns otherwise.
#include "compiler/kir/evaluator.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <unordered_map>
#include <vector>

#include "compiler/support/half.h"
#include "string_fns.h"

namespace kiln::kir {
namespace {

struct Scalar {
  double f = 0;
  int64_t i = 0;
};

// Wraps an integer to the width of `t`, as the generated code's iN arithmetic does.
int64_t wrap(DType t, int64_t v) {
  switch (t) {
    case DType::kInt8: return static_cast<int8_t>(v);
    case DType::kUInt8: return static_cast<uint8_t>(v);
    case DType::kInt16: return static_cast<int16_t>(v);
    case DType::kUInt16: return static_cast<uint16_t>(v);
    case DType::kInt32: return static_cast<int32_t>(v);
    case DType::kUInt32: return static_cast<uint32_t>(v);
    case DType::kBool: return v != 0;
    default: return v;
  }
}

double roundTo(DType t, double v) {
  switch (t) {
    case DType::kFloat32: return static_cast<float>(v);
    case DType::kFloat16: return halfToFloat(floatToHalf(static_cast<float>(v)));
    case DType::kBFloat16: return bfloat16ToFloat(floatToBfloat16(static_cast<float>(v)));
    default: return v;
  }
}

Scalar makeFloat(DType t, double v) { return Scalar{roundTo(t, v), 0}; }
Scalar makeInt(DType t, int64_t v) { return Scalar{0, wrap(t, v)}; }

template <typename T>
T loadAs(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}
template <typename T>
void storeAs(std::byte* p, T v) {
  std::memcpy(p, &v, sizeof(T));
}

Scalar loadScalar(DType t, const std::byte* p) {
  switch (t) {
    case DType::kFloat32: return {loadAs<float>(p), 0};
    case DType::kFloat64: return {loadAs<double>(p), 0};
    case DType::kFloat16: return {halfToFloat(loadAs<uint16_t>(p)), 0};
    case DType::kBFloat16: return {bfloat16ToFloat(loadAs<uint16_t>(p)), 0};
    case DType::kInt8: return {0, loadAs<int8_t>(p)};
    case DType::kUInt8: return {0, loadAs<uint8_t>(p)};
    case DType::kBool: return {0, loadAs<uint8_t>(p) != 0};
    case DType::kInt16: return {0, loadAs<int16_t>(p)};
    case DType::kUInt16: return {0, loadAs<uint16_t>(p)};
    case DType::kInt32: return {0, loadAs<int32_t>(p)};
    case DType::kUInt32: return {0, loadAs<uint32_t>(p)};
    case DType::kInt64:
    case DType::kUInt64:
    case DType::kString: return {0, loadAs<int64_t>(p)};  // a string: its pointer's bits
    default: return {};
  }
}

void storeScalar(DType t, std::byte* p, Scalar v) {
  switch (t) {
    case DType::kFloat32: storeAs<float>(p, static_cast<float>(v.f)); return;
    case DType::kFloat64: storeAs<double>(p, v.f); return;
    case DType::kFloat16: storeAs<uint16_t>(p, floatToHalf(static_cast<float>(v.f))); return;
    case DType::kBFloat16: storeAs<uint16_t>(p, floatToBfloat16(static_cast<float>(v.f))); return;
    case DType::kInt8:
    case DType::kUInt8:
    case DType::kBool: storeAs<uint8_t>(p, static_cast<uint8_t>(v.i)); return;
    case DType::kInt16:
    case DType::kUInt16: storeAs<uint16_t>(p, static_cast<uint16_t>(v.i)); return;
    case DType::kInt32:
    case DType::kUInt32: storeAs<uint32_t>(p, static_cast<uint32_t>(v.i)); return;
    case DType::kInt64:
    case DType::kUInt64:
    case DType::kString: storeAs<int64_t>(p, v.i); return;
    default: return;
  }
}

// Saturating float -> integer conversion (NaN -> 0), matching llvm.fpto[su]i.sat.
int64_t saturate(DType t, double v) {
  if (std::isnan(v)) return 0;
  if (t == DType::kBool) return v != 0;
  double lo = 0, hi = 0;
  switch (t) {
    case DType::kInt8: lo = INT8_MIN; hi = INT8_MAX; break;
    case DType::kUInt8: lo = 0; hi = UINT8_MAX; break;
    case DType::kInt16: lo = INT16_MIN; hi = INT16_MAX; break;
    case DType::kUInt16: lo = 0; hi = UINT16_MAX; break;
    case DType::kInt32: lo = INT32_MIN; hi = INT32_MAX; break;
    case DType::kUInt32: lo = 0; hi = UINT32_MAX; break;
    case DType::kUInt64:
      if (v <= 0) return 0;
      if (v >= 18446744073709551615.0) return static_cast<int64_t>(UINT64_MAX);
      return static_cast<int64_t>(static_cast<uint64_t>(v));
    default:
      if (v <= -9223372036854775808.0) return INT64_MIN;
      if (v >= 9223372036854775807.0) return INT64_MAX;
      return static_cast<int64_t>(v);
  }
  return static_cast<int64_t>(std::fmin(std::fmax(std::trunc(v), lo), hi));
}

double toDouble(DType t, Scalar v) {
  if (ir::isFloat(t)) return v.f;
  if (t == DType::kUInt64) return static_cast<double>(static_cast<uint64_t>(v.i));
  return static_cast<double>(v.i);
}

Scalar castScalar(DType from, DType to, Scalar v) {
  if (to == DType::kBool) return {0, ir::isFloat(from) ? (v.f != 0) : (v.i != 0)};
  if (ir::isFloat(to)) return makeFloat(to, toDouble(from, v));
  if (ir::isFloat(from)) return makeInt(to, saturate(to, v.f));
  return makeInt(to, v.i);
}

double unaryFloat(UnaryOp op, double x) {
  switch (op) {
    case UnaryOp::kNeg: return -x;
    case UnaryOp::kAbs: return std::fabs(x);
    case UnaryOp::kExp: return std::exp(x);
    case UnaryOp::kLog: return std::log(x);
    case UnaryOp::kSqrt: return std::sqrt(x);
    case UnaryOp::kTanh: return std::tanh(x);
    case UnaryOp::kErf: return std::erf(x);
    case UnaryOp::kFloor: return std::floor(x);
    case UnaryOp::kCeil: return std::ceil(x);
    case UnaryOp::kRound: return std::nearbyint(x);  // ties to even
    case UnaryOp::kSin: return std::sin(x);
    case UnaryOp::kCos: return std::cos(x);
    case UnaryOp::kNot: return x == 0;
    case UnaryOp::kTan: return std::tan(x);
    case UnaryOp::kAsin: return std::asin(x);
    case UnaryOp::kAcos: return std::acos(x);
    case UnaryOp::kAtan: return std::atan(x);
    case UnaryOp::kSinh: return std::sinh(x);
    case UnaryOp::kCosh: return std::cosh(x);
    case UnaryOp::kAsinh: return std::asinh(x);
    case UnaryOp::kAcosh: return std::acosh(x);
    case UnaryOp::kAtanh: return std::atanh(x);
    case UnaryOp::kCount: break;
  }
  return 0;
}

int64_t unaryInt(UnaryOp op, DType t, int64_t x) {
  switch (op) {
    case UnaryOp::kNeg: return -static_cast<uint64_t>(x);
    case UnaryOp::kAbs: return x < 0 ? -static_cast<uint64_t>(x) : x;
    case UnaryOp::kNot: return t == DType::kBool ? !x : ~x;
    default: return x;  // floor/ceil/round are identities on integers
  }
}

double binaryFloat(BinaryOp op, double a, double b) {
  switch (op) {
    case BinaryOp::kAdd: return a + b;
    case BinaryOp::kSub: return a - b;
    case BinaryOp::kMul: return a * b;
    case BinaryOp::kDiv: return a / b;
    case BinaryOp::kMod: return std::fmod(a, b);
    case BinaryOp::kMax: return a > b || std::isnan(a) ? a : b;
    case BinaryOp::kMin: return a < b || std::isnan(a) ? a : b;
    case BinaryOp::kPow: return std::pow(a, b);
    case BinaryOp::kEq: return a == b;
    case BinaryOp::kNe: return a != b;
    case BinaryOp::kLt: return a < b;
    case BinaryOp::kLe: return a <= b;
    case BinaryOp::kGt: return a > b;
    case BinaryOp::kGe: return a >= b;
    default: return 0;
  }
}

// Integer semantics as generated: wrapping arithmetic, division truncates, and
// division by zero gives 0 rather than trapping (untrusted run-time inputs).
int64_t binaryInt(BinaryOp op, DType t, int64_t a, int64_t b) {
  bool u = ir::isUnsigned(t);
  uint64_t ua = static_cast<uint64_t>(a), ub = static_cast<uint64_t>(b);
  switch (op) {
    case BinaryOp::kAdd: return static_cast<int64_t>(ua + ub);
    case BinaryOp::kSub: return static_cast<int64_t>(ua - ub);
    case BinaryOp::kMul: return static_cast<int64_t>(ua * ub);
    case BinaryOp::kDiv:
      if (b == 0) return 0;
      if (u) return static_cast<int64_t>(ua / ub);
      if (b == -1) return static_cast<int64_t>(-ua);
      return a / b;
    case BinaryOp::kMod:
      if (b == 0) return 0;
      if (u) return static_cast<int64_t>(ua % ub);
      if (b == -1) return 0;
      return a % b;
    case BinaryOp::kMax: return u ? static_cast<int64_t>(std::max(ua, ub)) : std::max(a, b);
    case BinaryOp::kMin: return u ? static_cast<int64_t>(std::min(ua, ub)) : std::min(a, b);
    case BinaryOp::kPow: return static_cast<int64_t>(std::pow(static_cast<double>(a), static_cast<double>(b)));
    case BinaryOp::kAnd: return t == DType::kBool ? (a && b) : (a & b);
    case BinaryOp::kOr: return t == DType::kBool ? (a || b) : (a | b);
    case BinaryOp::kXor: return t == DType::kBool ? ((a != 0) != (b != 0)) : (a ^ b);
    case BinaryOp::kShl: return ub >= static_cast<uint64_t>(8 * ir::byteSize(t)) ? 0 : static_cast<int64_t>(ua << ub);
    case BinaryOp::kShr: {
      // Logical shift of the value's own width (ONNX BitShift is for unsigned types).
      uint64_t width = static_cast<uint64_t>(8 * ir::byteSize(t));
      uint64_t mask = width == 64 ? ~0ull : ((1ull << width) - 1);
      return ub >= width ? 0 : static_cast<int64_t>((ua & mask) >> ub);
    }
    case BinaryOp::kEq: return a == b;
    case BinaryOp::kNe: return a != b;
    case BinaryOp::kLt: return u ? ua < ub : a < b;
    case BinaryOp::kLe: return u ? ua <= ub : a <= b;
    case BinaryOp::kGt: return u ? ua > ub : a > b;
    case BinaryOp::kGe: return u ? ua >= ub : a >= b;
    default: return 0;
  }
}

Scalar reduceInit(ReduceOp op, DType t) {
  bool fl = ir::isFloat(t);
  switch (op) {
    case ReduceOp::kSum: return {};
    case ReduceOp::kProd: return fl ? Scalar{1, 0} : Scalar{0, 1};
    case ReduceOp::kMax:
      if (fl) return {-std::numeric_limits<double>::infinity(), 0};
      return {0, ir::isUnsigned(t) ? 0 : wrap(t, std::numeric_limits<int64_t>::min() >> (64 - 8 * ir::byteSize(t)))};
    case ReduceOp::kMin:
      if (fl) return {std::numeric_limits<double>::infinity(), 0};
      return {0, ir::isUnsigned(t) ? wrap(t, -1) : wrap(t, std::numeric_limits<int64_t>::max() >> (64 - 8 * ir::byteSize(t)))};
    case ReduceOp::kCount: break;
  }
  return {};
}

BinaryOp combineOp(ReduceOp op) {
  static constexpr BinaryOp kOps[] = {BinaryOp::kAdd, BinaryOp::kMul, BinaryOp::kMax, BinaryOp::kMin};
  return kOps[static_cast<int>(op)];
}

class Interpreter {
 public:
  Interpreter(const Kernel& kernel, std::span<void* const> buffers, std::span<int64_t> slots)
      : kernel_(kernel), buffers_(buffers), slots_(slots) {
    strides_.resize(kernel.params.size());
    for (size_t p = 0; p < kernel.params.size(); ++p) {
      const BufferParam& param = kernel.params[p];
      strides_[p].assign(param.shape.size(), 1);
      for (size_t d = param.shape.size(); d-- > 1;) strides_[p][d - 1] = strides_[p][d] * dimOf(param, d);
    }
  }

  void run() {
    for (const Stage& stage : kernel_.stages) runStage(stage);
  }

 private:
  int64_t slot(int k) const { return k >= 0 && static_cast<size_t>(k) < slots_.size() ? slots_[k] : 0; }
  int64_t extentOf(const IterVar& v) const { return v.extent_slot >= 0 ? slot(v.extent_slot) : v.extent; }
  int64_t dimOf(const BufferParam& p, size_t d) const {
    return d < p.dim_slots.size() && p.dim_slots[d] >= 0 ? slot(p.dim_slots[d]) : p.shape[d];
  }

  void runStage(const Stage& stage) {
    if (stage.kind == Stage::Kind::kSetSlot) {
      if (static_cast<size_t>(stage.target) < slots_.size()) slots_[stage.target] = eval(stage.value).i;
      return;
    }
    if (stage.kind == Stage::Kind::kCheck) {
      if (!eval(stage.value).i && !slots_.empty() && slots_[kErrorSlot] == 0) slots_[kErrorSlot] = stage.target + 1;
      return;
    }
    std::vector<int64_t> point(stage.axes.size(), 0);
    for (const IterVar& v : stage.axes)
      if (extentOf(v) <= 0) return;
    while (true) {
      for (size_t d = 0; d < stage.axes.size(); ++d) vars_[stage.axes[d].id] = point[d];
      std::byte* addr = address(stage.buffer, stage.store_index);
      storeScalar(kernel_.params[stage.buffer].dtype, addr, eval(stage.value));
      size_t d = stage.axes.size();
      while (d > 0) {
        --d;
        if (++point[d] < extentOf(stage.axes[d])) break;
        point[d] = 0;
        if (d == 0) return;
      }
      if (stage.axes.empty()) return;
    }
  }

  std::byte* address(int buffer, const std::vector<Expr>& index) {
    int64_t offset = 0;
    for (size_t d = 0; d < index.size(); ++d) offset += eval(index[d]).i * strides_[buffer][d];
    return static_cast<std::byte*>(buffers_[buffer]) + offset * ir::byteSize(kernel_.params[buffer].dtype);
  }

  Scalar eval(const Expr& e) {
    const ExprNode& n = *e;
    switch (n.kind) {
      case ExprNode::Kind::kConst:
        return ir::isFloat(n.dtype) ? makeFloat(n.dtype, n.value) : makeInt(n.dtype, static_cast<int64_t>(n.value));
      case ExprNode::Kind::kVar: return {0, vars_[n.var_id]};
      case ExprNode::Kind::kSlot: return {0, slot(n.var_id)};
      case ExprNode::Kind::kLoad: return loadScalar(n.dtype, address(n.buffer, n.operands));
      case ExprNode::Kind::kUnary: {
        Scalar a = eval(n.operands[0]);
        auto op = static_cast<UnaryOp>(n.op);
        if (ir::isFloat(n.dtype)) return makeFloat(n.dtype, unaryFloat(op, a.f));
        return makeInt(n.dtype, unaryInt(op, n.dtype, a.i));
      }
      case ExprNode::Kind::kBinary: {
        DType t = n.operands[0].dtype();
        return combine(static_cast<BinaryOp>(n.op), t, n.dtype, eval(n.operands[0]), eval(n.operands[1]));
      }
      case ExprNode::Kind::kSelect: return eval(n.operands[0]).i ? eval(n.operands[1]) : eval(n.operands[2]);
      case ExprNode::Kind::kCast: return castScalar(n.operands[0].dtype(), n.dtype, eval(n.operands[0]));
      case ExprNode::Kind::kReduce: return evalReduce(n);
      case ExprNode::Kind::kStringCall: return evalStringCall(n);
    }
    return {};
  }

  Scalar evalStringCall(const ExprNode& n) {
    std::vector<Scalar> args;
    for (const Expr& operand : n.operands) args.push_back(eval(operand));
    auto text = [&](size_t i) { return reinterpret_cast<const char*>(args[i].i); };
    auto pooled = [](std::string s) { return Scalar{0, reinterpret_cast<int64_t>(stringPool().add(std::move(s)))}; };
    switch (static_cast<StringFn>(n.op)) {
      case StringFn::kFormatFloat: return pooled(strings::formatFloat(args[0].f, static_cast<int>(args[1].i)));
      case StringFn::kFormatInt: return pooled(strings::formatInt(args[0].i, args[1].i != 0));
      case StringFn::kParseFloat: return {strings::parseFloat(text(0), static_cast<int>(args[1].i)), 0};
      case StringFn::kParseInt: return {0, strings::parseInt(text(0), args[1].i != 0)};
      case StringFn::kChangeCase: return pooled(strings::changeCase(text(0), args[1].i != 0));
      case StringFn::kEqual: return {0, strings::equal(text(0), text(1), args[2].i != 0) ? 1 : 0};
      case StringFn::kCount: break;
    }
    return {};
  }

  Scalar combine(BinaryOp op, DType operand_type, DType result_type, Scalar a, Scalar b) {
    if (ir::isFloat(operand_type)) {
      double r = binaryFloat(op, a.f, b.f);
      return isComparison(op) ? makeInt(DType::kBool, static_cast<int64_t>(r)) : makeFloat(result_type, r);
    }
    return makeInt(result_type, binaryInt(op, operand_type, a.i, b.i));
  }

  Scalar evalReduce(const ExprNode& n) {
    auto op = static_cast<ReduceOp>(n.op);
    Scalar acc = reduceInit(op, n.dtype);
    for (const IterVar& v : n.reduce_vars)
      if (extentOf(v) <= 0) return acc;
    std::vector<int64_t> point(n.reduce_vars.size(), 0);
    while (true) {
      for (size_t d = 0; d < point.size(); ++d) vars_[n.reduce_vars[d].id] = point[d];
      acc = combine(combineOp(op), n.dtype, n.dtype, acc, eval(n.operands[0]));
      size_t d = point.size();
      bool done = true;
      while (d > 0) {
        --d;
        if (++point[d] < extentOf(n.reduce_vars[d])) {
          done = false;
          break;
        }
        point[d] = 0;
      }
      if (done) return acc;
    }
  }

  const Kernel& kernel_;
  std::span<void* const> buffers_;
  std::span<int64_t> slots_;
  std::vector<std::vector<int64_t>> strides_;
  std::unordered_map<int, int64_t> vars_;
};

}  // namespace

namespace {
thread_local strings::StringPool* current_pool = nullptr;
}  // namespace

strings::StringPool& stringPool() {
  static strings::StringPool unscoped;
  return current_pool ? *current_pool : unscoped;
}

StringPoolScope::StringPoolScope() : previous_(current_pool) { current_pool = &pool_; }
StringPoolScope::~StringPoolScope() { current_pool = previous_; }

std::vector<const char*> stringPointers(const ir::Tensor& t) {
  std::vector<const char*> pointers;
  for (const std::string& s : t.strings()) pointers.push_back(s.c_str());
  return pointers;
}

void evaluate(const Kernel& kernel, std::span<void* const> buffers, std::span<int64_t> slots) {
  Interpreter(kernel, buffers, slots).run();
}

}  // namespace kiln::kir

namespace kiln::lower {

Status evaluateProgram(const Program& program, std::span<const void* const> inputs, std::span<void* const> outputs) {
  if (program.isDynamic() || !program.container_steps.empty())
    return unsupported("evaluateProgram: the program has run-time shapes or containers; pass input tensors instead");
  if (inputs.size() != program.input_buffers.size() || outputs.size() != program.output_buffers.size())
    return invalidInput("evaluateProgram: expected " + std::to_string(program.input_buffers.size()) + " inputs and " +
                        std::to_string(program.output_buffers.size()) + " outputs");
  // 64-byte granules, as the generated code's arena.
  std::vector<std::byte> arena(static_cast<size_t>(program.workspace_bytes) + 64);
  std::vector<void*> addresses(program.buffers.size(), nullptr);
  std::vector<std::vector<const char*>> string_constants(program.buffers.size());
  for (size_t b = 0; b < program.buffers.size(); ++b) {
    const ProgramBuffer& buffer = program.buffers[b];
    switch (buffer.kind) {
      case ProgramBuffer::Kind::kInput: addresses[b] = const_cast<void*>(inputs[buffer.io_index]); break;
      case ProgramBuffer::Kind::kOutput: addresses[b] = outputs[buffer.io_index]; break;
      case ProgramBuffer::Kind::kConstant:
        if (buffer.dtype == ir::DType::kString) {
          string_constants[b] = kir::stringPointers(*buffer.constant);
          addresses[b] = string_constants[b].data();
          break;
        }
        addresses[b] = const_cast<std::byte*>(buffer.constant->bytes().data());
        break;
      case ProgramBuffer::Kind::kIntermediate: addresses[b] = arena.data() + buffer.workspace_offset; break;
    }
  }
  std::vector<void*> args;
  for (const KernelCall& call : program.calls) {
    args.clear();
    for (int a : call.args) args.push_back(addresses[a]);
    kir::evaluate(call.kernel, args);
  }
  return Status::ok();
}

}  // namespace kiln::lower

namespace kiln::lower {
namespace {

// Largest buffer the reference evaluator allocates for a run-time shape.
constexpr int64_t kMaxDynamicBytes = int64_t{1} << 32;

std::string dimsString(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? "x" : "") + std::to_string(dims[i]);
  return s + "]";
}

// The dims a buffer has in this run.
std::vector<int64_t> runDims(const ProgramBuffer& b, std::span<const int64_t> slots) {
  std::vector<int64_t> dims = b.dims;
  for (size_t d = 0; d < b.dim_slots.size(); ++d)
    if (b.dim_slots[d] >= 0) dims[d] = slots[b.dim_slots[d]];
  return dims;
}

}  // namespace

std::string formatCheck(const std::string& message, std::span<const int64_t> slots) {
  std::string out;
  for (size_t i = 0; i < message.size(); ++i) {
    if (message.compare(i, 2, "{$") == 0) {
      size_t end = message.find('}', i);
      if (end != std::string::npos) {
        size_t k = std::strtoull(message.c_str() + i + 2, nullptr, 10);
        out += k < slots.size() ? std::to_string(slots[k]) : "?";
        i = end;
        continue;
      }
    }
    out += message[i];
  }
  return out;
}

Status bindInputDims(const Program& program, const std::vector<std::vector<int64_t>>& input_dims,
                     std::vector<int64_t>& slots) {
  slots.assign(static_cast<size_t>(program.num_slots), 0);
  std::vector<bool> bound(slots.size(), false);
  for (size_t i = 0; i < program.input_buffers.size(); ++i) {
    const ProgramBuffer& b = program.buffers[program.input_buffers[i]];
    const std::vector<int64_t>& got = input_dims[i];
    std::string where = "input " + std::to_string(i) + " '" + b.name + "'";
    if (got.size() != b.dims.size())
      return invalidInput(where + ": rank " + std::to_string(got.size()) + ", expected " + std::to_string(b.dims.size()));
    for (size_t d = 0; d < got.size(); ++d) {
      int slot = d < b.dim_slots.size() ? b.dim_slots[d] : -1;
      if (slot < 0) {
        if (got[d] != b.dims[d])
          return invalidInput(where + ": shape " + dimsString(got) + ", expected " + std::to_string(b.dims[d]) +
                              " in dimension " + std::to_string(d));
        continue;
      }
      if (got[d] < 0) return invalidInput(where + ": negative dimension " + std::to_string(d));
      if (bound[slot] && slots[slot] != got[d])
        return invalidInput(where + ": dimension " + std::to_string(d) + " is " + std::to_string(got[d]) +
                            ", but an earlier input gave the same symbol " + std::to_string(slots[slot]));
      slots[slot] = got[d];
      bound[slot] = true;
    }
  }
  return Status::ok();
}

Expected<std::vector<ir::Tensor>> evaluateProgram(const Program& program, const std::vector<ir::Tensor>& inputs) {
  for (const auto* list : {&program.input_buffers, &program.output_buffers})
    for (int b : *list)
      if (program.buffers[b].container != ir::ValueKind::kTensor)
        return unsupported("'" + program.buffers[b].name + "' is " + ir::kindName(program.buffers[b].container) +
                           "; the reference evaluator runs programs with tensor inputs and outputs only");
  if (inputs.size() != program.input_buffers.size())
    return invalidInput("expected " + std::to_string(program.input_buffers.size()) + " inputs, got " +
                        std::to_string(inputs.size()));
  std::vector<std::vector<int64_t>> input_dims;
  for (const ir::Tensor& t : inputs) input_dims.push_back(t.dims());
  std::vector<int64_t> slots;
  KILN_RETURN_IF_ERROR(bindInputDims(program, input_dims, slots));
  std::vector<std::byte> arena(static_cast<size_t>(program.workspace_bytes) + 64);
  std::vector<std::vector<std::byte>> owned(program.buffers.size());
  std::vector<void*> addresses(program.buffers.size(), nullptr);
  std::vector<bool> fixed(program.buffers.size(), false);
  // String inputs and constants as the pointer arrays kernels read; strings
  // the run makes live in this scope's pool until the outputs are copied.
  kir::StringPoolScope string_scope;
  std::vector<std::vector<const char*>> string_arrays(program.buffers.size());
  auto stringArray = [&](size_t b, const ir::Tensor& t) {
    string_arrays[b] = kir::stringPointers(t);
    return static_cast<void*>(string_arrays[b].data());
  };
  for (size_t b = 0; b < program.buffers.size(); ++b) {
    const ProgramBuffer& buffer = program.buffers[b];
    bool is_string = buffer.dtype == ir::DType::kString;
    if (buffer.kind == ProgramBuffer::Kind::kInput) {
      const ir::Tensor& input = inputs[buffer.io_index];
      addresses[b] = is_string ? stringArray(b, input) : const_cast<std::byte*>(input.bytes().data());
      fixed[b] = true;
    } else if (buffer.kind == ProgramBuffer::Kind::kConstant) {
      addresses[b] = is_string ? stringArray(b, *buffer.constant) : const_cast<std::byte*>(buffer.constant->bytes().data());
      fixed[b] = true;
    } else if (buffer.kind == ProgramBuffer::Kind::kIntermediate && !buffer.isDynamic()) {
      addresses[b] = arena.data() + buffer.workspace_offset;
      fixed[b] = true;
    }
  }
  // Outputs and dynamic intermediates get memory when a kernel is about to
  // use them, once the slots that size them are known, and again whenever
  // their size in the run outgrows what they have (a loop body's values).
  auto allocate = [&](int b) -> Status {
    if (fixed[b]) return Status::ok();
    const ProgramBuffer& buffer = program.buffers[b];
    std::vector<int64_t> dims = runDims(buffer, slots);
    int64_t bytes = ir::byteSize(buffer.dtype);
    for (int64_t d : dims) {
      if (d < 0 || (d > 0 && bytes > kMaxDynamicBytes / d))
        return invalidInput("'" + buffer.name + "' would have shape " + dimsString(dims) +
                            (d < 0 ? ", a negative size" : ", too large"));
      bytes *= d;
    }
    if (addresses[b] && owned[b].size() >= static_cast<size_t>(bytes) + 64) return Status::ok();
    owned[b].assign(static_cast<size_t>(bytes) + 64, std::byte{0});
    addresses[b] = owned[b].data();
    return Status::ok();
  };
  std::vector<void*> args;
  auto runCall = [&](const KernelCall& call) -> Status {
    args.clear();
    for (int a : call.args) {
      KILN_RETURN_IF_ERROR(allocate(a).withContext(call.kernel.origin));
      args.push_back(addresses[a]);
    }
    kir::evaluate(call.kernel, args, slots);
    if (!slots.empty() && slots[kir::kErrorSlot] != 0) {
      size_t check = static_cast<size_t>(slots[kir::kErrorSlot] - 1);
      return invalidInput(check < program.checks.size() ? formatCheck(program.checks[check], slots)
                                                        : "run-time check " + std::to_string(check) + " failed");
    }
    return Status::ok();
  };
  // Calls [first, end); `next` is the first region not yet met. A region
  // runs while its slot is nonzero (once at most unless it repeats); the
  // regions nested in it follow it in the list.
  std::function<Status(int, int, size_t&)> runRange = [&](int first, int end, size_t& next) -> Status {
    for (int c = first; c < end;) {
      if (next < program.regions.size() && program.regions[next].first == c) {
        const CallRegion& region = program.regions[next];
        size_t inner = next + 1, after = inner;
        while (after < program.regions.size() && program.regions[after].first < region.end) ++after;
        while (slots[region.cond_slot] != 0) {
          size_t k = inner;
          KILN_RETURN_IF_ERROR(runRange(region.first, region.end, k));
          if (!region.repeat) break;
        }
        next = after;
        c = region.end;
        continue;
      }
      KILN_RETURN_IF_ERROR(runCall(program.calls[c]));
      ++c;
    }
    return Status::ok();
  };
  size_t first_region = 0;
  KILN_RETURN_IF_ERROR(runRange(0, static_cast<int>(program.calls.size()), first_region));
  std::vector<ir::Tensor> results;
  for (int b : program.output_buffers) {
    KILN_RETURN_IF_ERROR(allocate(b));
    const ProgramBuffer& buffer = program.buffers[b];
    std::vector<int64_t> dims = runDims(buffer, slots);
    int64_t bytes = ir::byteSize(buffer.dtype);
    for (int64_t d : dims) bytes *= d;
    auto* p = static_cast<std::byte*>(addresses[b]);
    if (buffer.dtype == ir::DType::kString) {
      std::vector<std::string> strings;
      for (int64_t i = 0; i < bytes / 8; ++i) {
        const char* s = nullptr;
        std::memcpy(&s, p + i * 8, sizeof(s));
        strings.emplace_back(s ? s : "");
      }
      results.push_back(ir::Tensor::fromStrings(dims, std::move(strings)));
      continue;
    }
    results.push_back(ir::Tensor::fromBytes(buffer.dtype, dims, std::vector<std::byte>(p, p + bytes)));
  }
  return results;
}

}  // namespace kiln::lower
