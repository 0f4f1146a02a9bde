// Ops that move elements without changing them: Reshape, Flatten, Transpose,
// Concat. Reshape and Flatten are a copy through a view of the same dense
// bytes; later passes turn them into aliases.
#include <algorithm>
#include <numeric>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"
#include "compiler/ops/run_time_shapes.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using kir::Expr;

// Output = input read through the output's shape (same element count).
Status lowerViewCopy(LowerContext& ctx) {
  std::vector<int64_t> out_dims = ctx.outputDims(0);
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(0, out_dims);
  LowerContext::Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(out_dims);
  kb.compute(y, axes, x.load(asExprs(axes)));
  return Status::ok();
}

// ---- Reshape -------------------------------------------------------------------
// The target shape is an attribute before opset 5 and input 1 after. In it,
// -1 (at most once) is inferred from the element count and 0 copies the input
// dim at the same position, unless allowzero=1 (opset 14) makes it a real 0.

Expected<std::vector<int64_t>> reshapeTarget(const NodeView& ctx) {
  if (ctx.opset() < 5) return ctx.attrInts("shape");
  const ir::Tensor* shape = ctx.constantInput(1);
  if (!shape)
    return ctx.unsupportedError("the target shape (input 1) is computed at run time; Kiln needs it to be a "
                                "constant (fold the shape computation, or give the model static input shapes)");
  if (ir::isFloat(shape->dtype()) || shape->dims().size() != 1)
    return ctx.error("the target shape must be a 1-D int64 tensor, got " + shape->type().toString() + " (input 1)");
  return shape->toInts();
}

// The dim -1 stands for the input's element count over the other dims'.
// Symbolic dims copied from the input (0 entries) cancel, so [0, -1] on
// batch x 3 x 4 gives batch x 12.
Expected<ir::Dim> inferredDim(const NodeView& ctx, const ir::Shape& in, const ir::Shape& out, size_t minus_one) {
  ir::Shape rest(in.begin(), in.end());
  int64_t others = 1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (i == minus_one) continue;
    if (out[i].isKnown()) {
      if (__builtin_mul_overflow(others, out[i].value, &others))
        return ctx.error("the target shape " + ir::toString(out) + " holds more elements than int64 counts");
      continue;
    }
    auto same = std::find_if(rest.begin(), rest.end(),
                             [&](const ir::Dim& d) { return !d.symbol.empty() && d.symbol == out[i].symbol; });
    if (same == rest.end()) return ir::Dim{};
    rest.erase(same);
  }
  ir::Dim total = productDim(rest, 0, rest.size());
  if (!total.isKnown()) return ir::Dim{};
  if (others == 0 || total.value % others != 0)
    return ctx.error("cannot reshape " + ir::toString(in) + " with -1: " + std::to_string(total.value) +
                     " elements do not divide into dims holding " + std::to_string(others));
  return ir::Dim::known(total.value / others);
}

// A target shape computed at run time has a static length: the output's rank.
Expected<size_t> runTimeTargetRank(const NodeView& ctx) {
  KILN_ASSIGN_OR_RETURN(ir::Shape shape, inputShapeOfRank(ctx, 1, "shape", 1));
  if (!shape[0].isKnown() || ctx.inputType(1).dtype != ir::DType::kInt64)
    return ctx.unsupportedError("the target shape (input 1) is computed at run time and is not a 1-D int64 tensor "
                                "of known length: the output's rank would be unknown");
  if (shape[0].value > ir::kMaxRank)
    return ctx.error("the target shape (input 1) has " + std::to_string(shape[0].value) +
                     " entries; a shape has at most " + std::to_string(ir::kMaxRank));
  return static_cast<size_t>(shape[0].value);
}

Status inferReshape(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, ctx.opset() < 5 ? 1 : 2, ctx.opset() < 5 ? 1 : 2));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "data", DTypeClass::kAnyData));
  KILN_ASSIGN_OR_RETURN(ir::Shape in, inputShape(ctx, 0, "data"));
  if (ctx.opset() >= 5 && !ctx.constantInput(1)) {
    KILN_ASSIGN_OR_RETURN(size_t rank, runTimeTargetRank(ctx));
    ctx.setOutputType(0, {ctx.inputType(0).dtype, unknownDims(rank)});
    return Status::ok();
  }
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> target, reshapeTarget(ctx));
  bool allow_zero = ctx.attrInt("allowzero", 0) != 0;
  ir::Shape out;
  std::optional<size_t> minus_one;
  for (size_t i = 0; i < target.size(); ++i) {
    int64_t t = target[i];
    if (t < -1) return ctx.error("target shape has invalid dim " + std::to_string(t));
    if (t == -1) {
      if (minus_one) return ctx.error("target shape has more than one -1");
      minus_one = i;
      out.push_back(ir::Dim{});
    } else if (t == 0 && !allow_zero) {
      if (i >= in.size())
        return ctx.error("target dim " + std::to_string(i) + " is 0 (copy) but data " + ir::toString(in) +
                         " has only " + std::to_string(in.size()) + " dims");
      out.push_back(in[i]);
    } else {
      out.push_back(ir::Dim::known(t));
    }
  }
  if (minus_one && allow_zero && std::count(target.begin(), target.end(), 0))
    return ctx.error("allowzero=1 forbids a target shape with both 0 and -1");
  if (minus_one) {
    KILN_ASSIGN_OR_RETURN(out[*minus_one], inferredDim(ctx, in, out, *minus_one));
  }
  ir::Dim in_count = productDim(in, 0, in.size());
  ir::Dim out_count = productDim(out, 0, out.size());
  if (conflictingDims(in_count, out_count))
    return ctx.error("cannot reshape " + ir::toString(in) + " into " + ir::toString(out) +
                     ": element counts differ");
  ctx.setOutputType(0, {ctx.inputType(0).dtype, out});
  return Status::ok();
}

// A target computed at run time: a shape step resolves its 0 and -1 entries
// from the input's (static) dims and checks the element count.
Status lowerRunTimeReshape(LowerContext& ctx) {
  if (ctx.isDynamicInput(0)) return ctx.unsupportedError("data (input 0) and the target shape both have run-time shapes");
  std::vector<int64_t> in = ctx.inputDims(0);
  int64_t count = 1;
  for (int64_t d : in) count *= d;
  bool allow_zero = ctx.attrInt("allowzero", 0) != 0;
  size_t rank = static_cast<size_t>(ctx.inputDims(1)[0]);
  kir::KernelBuilder& kb = ctx.newKernel("shape");
  LowerContext::Buffer target = ctx.input(1);
  // Entry k as given, with 0 copying the input's dim k (unless allowzero).
  std::vector<Expr> given;
  Expr minus_ones = Expr::index(0), bad = Expr::constant(ir::DType::kBool, 0);
  for (size_t k = 0; k < rank; ++k) {
    Expr t = indexAt(target, static_cast<int64_t>(k));
    Expr copy = Expr::index(k < in.size() ? in[k] : -1);  // -1: past the input's rank, refused below
    if (!allow_zero) {
      bad = bad || (kir::eq(t, Expr::index(0)) && Expr::constant(ir::DType::kBool, k >= in.size()));
      t = kir::select(kir::eq(t, Expr::index(0)), copy, t);
    }
    bad = bad || (t < Expr::index(-1));
    minus_ones = minus_ones + kir::select(kir::eq(t, Expr::index(-1)), Expr::index(1), Expr::index(0));
    given.push_back(t);
  }
  Expr known = Expr::index(1);  // product of the entries other than -1
  for (const Expr& t : given) known = known * kir::select(kir::eq(t, Expr::index(-1)), Expr::index(1), t);
  std::vector<Expr> sizes;
  for (const Expr& t : given)
    sizes.push_back(kir::select(kir::eq(t, Expr::index(-1)), Expr::index(count) / max(known, Expr::index(1)), t));
  std::vector<int> raw;
  for (size_t i = 0; i < given.size(); ++i) {
    raw.push_back(ctx.newSlot());
    kb.setSlot(raw.back(), indexAt(target, static_cast<int64_t>(raw.size() - 1)));
  }
  kb.check(ctx.addCheck("target shape " + slotsShape(raw) + " has an entry below -1, more than one -1, or a 0 past " +
                        "the input's rank " + std::to_string(in.size())),
           kir::unary(kir::UnaryOp::kNot, bad || (minus_ones > Expr::index(1))));
  std::vector<int> slots = setOutputDims(ctx, 0, sizes);
  std::string in_shape = ir::toString(ir::makeShape(in));
  kb.check(ctx.addCheck("target shape " + slotsShape(raw) + " gives " + slotsShape(slots) + ", which does not hold the " +
                        std::to_string(count) + " elements of the input [" + in_shape + "]"),
           productIs(slots, count));
  lowerRunTimeView(ctx, 0, 0);
  return Status::ok();
}

Status lowerReshape(LowerContext& ctx) {
  if (ctx.opset() >= 5 && !ctx.constantInput(1)) return lowerRunTimeReshape(ctx);
  return lowerViewCopy(ctx);
}

// ---- Flatten -------------------------------------------------------------------
// [d0 .. d(axis-1)] x [d(axis) ..]: axis in [-rank, rank] (negative since opset 11).

Status inferFlatten(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 1));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "input", DTypeClass::kAnyData));
  KILN_ASSIGN_OR_RETURN(ir::Shape in, inputShape(ctx, 0, "input"));
  int64_t rank = static_cast<int64_t>(in.size());
  int64_t axis = ctx.attrInt("axis", 1);
  if (axis < -rank || axis > rank)
    return ctx.error("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  if (axis < 0) axis += rank;
  size_t split = static_cast<size_t>(axis);
  ctx.setOutputType(0, {ctx.inputType(0).dtype, ir::Shape{productDim(in, 0, split), productDim(in, split, in.size())}});
  return Status::ok();
}

// ---- Transpose -----------------------------------------------------------------
//   Y[o0, o1, ...] = X[i] with i[perm[k]] = o[k]; perm defaults to reversing the dims.

Expected<std::vector<int64_t>> permutation(const NodeView& ctx, size_t rank) {
  std::vector<int64_t> reversed(rank);
  std::iota(reversed.rbegin(), reversed.rend(), 0);
  std::vector<int64_t> perm = ctx.attrInts("perm", reversed);
  std::vector<int64_t> sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> identity(rank);
  std::iota(identity.begin(), identity.end(), 0);
  if (sorted != identity)
    return ctx.error("perm has " + std::to_string(perm.size()) + " entries that are not a permutation of the " +
                     std::to_string(rank) + " dims of the input");
  return perm;
}

Status inferTranspose(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 1));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "data", DTypeClass::kAnyData));
  KILN_ASSIGN_OR_RETURN(ir::Shape in, inputShape(ctx, 0, "data"));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> perm, permutation(ctx, in.size()));
  ir::Shape out;
  for (int64_t p : perm) out.push_back(in[static_cast<size_t>(p)]);
  ctx.setOutputType(0, {ctx.inputType(0).dtype, out});
  return Status::ok();
}

Status lowerTranspose(LowerContext& ctx) {
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> perm, permutation(ctx, ctx.inputDims(0).size()));
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(0);
  LowerContext::Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(y.shape());
  std::vector<Expr> index(perm.size());
  for (size_t k = 0; k < perm.size(); ++k) index[static_cast<size_t>(perm[k])] = axes[k];
  kb.compute(y, axes, x.load(index));
  return Status::ok();
}

// ---- Concat --------------------------------------------------------------------
// One stage per input, each writing its slab of the output at its offset
// along `axis`. `axis` is required since opset 4 (default 1 before) and may
// be negative since opset 11.

Expected<int64_t> concatAxis(const NodeView& ctx, int64_t rank) {
  if (ctx.opset() >= 4 && !ctx.hasAttr("axis")) return ctx.error("missing required attribute 'axis'");
  return normalizeAxis(ctx, ctx.attrInt("axis", 1), rank);
}

Status inferConcat(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, SIZE_MAX));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "input 0", DTypeClass::kAnyData));
  KILN_ASSIGN_OR_RETURN(ir::Shape out, inputShapeOfMinRank(ctx, 0, "input 0", 1));
  KILN_ASSIGN_OR_RETURN(int64_t axis, concatAxis(ctx, static_cast<int64_t>(out.size())));
  size_t a = static_cast<size_t>(axis);
  for (size_t i = 1; i < ctx.numInputs(); ++i) {
    std::string role = "input " + std::to_string(i);
    KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, i, role));
    KILN_ASSIGN_OR_RETURN(ir::Shape in, inputShapeOfRank(ctx, i, role, out.size()));
    for (size_t d = 0; d < in.size(); ++d)
      if (d != a && conflictingDims(in[d], out[d]))
        return ctx.error(role + " " + ir::toString(in) + " differs from input 0 in dim " + std::to_string(d) +
                         " (only the concat axis " + std::to_string(axis) + " may differ)");
    out[a] = out[a].isKnown() && in[a].isKnown() ? ir::Dim::known(out[a].value + in[a].value) : ir::Dim{};
  }
  ctx.setOutputType(0, {ctx.inputType(0).dtype, out});
  return Status::ok();
}

Status lowerConcat(LowerContext& ctx) {
  KILN_ASSIGN_OR_RETURN(int64_t axis, concatAxis(ctx, static_cast<int64_t>(ctx.outputDims(0).size())));
  size_t a = static_cast<size_t>(axis);
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer y = ctx.output(0);
  int64_t offset = 0;
  for (size_t i = 0; i < ctx.numInputs(); ++i) {
    std::vector<int64_t> dims = ctx.inputDims(i);
    if (dims[a] == 0) continue;  // contributes nothing
    LowerContext::Buffer x = ctx.input(i);
    std::vector<kir::IterVar> axes = kb.vars(dims);
    std::vector<Expr> store = asExprs(axes);
    if (offset != 0) store[a] = store[a] + static_cast<double>(offset);
    kb.computeAt(y, axes, store, x.load(asExprs(axes)));
    offset += dims[a];
  }
  return Status::ok();
}

// ---- Constant ------------------------------------------------------------------
// The value is one of several attributes (value since opset 1, value_float(s)
// and value_int(s) since 12). Inference records the value on the output, so
// the lowering driver binds it as a program constant and later ops see it
// through constantInput().

struct ConstantForm {
  const char* attribute;
  Kind kind;
};
constexpr ConstantForm kConstantForms[] = {
    {"value", Kind::kTensor},        {"value_float", Kind::kFloat},     {"value_floats", Kind::kFloats},
    {"value_int", Kind::kInt},       {"value_ints", Kind::kInts},       {"value_string", Kind::kString},
    {"value_strings", Kind::kStrings}, {"sparse_value", Kind::kTensor}};

std::vector<AttrSpec> constantAttributes() {
  std::vector<AttrSpec> specs;
  for (const ConstantForm& form : kConstantForms) specs.push_back({form.attribute, form.kind});
  return specs;
}

Expected<ir::Tensor> constantValue(const NodeView& ctx) {
  const ConstantForm* given = nullptr;
  for (const ConstantForm& form : kConstantForms) {
    if (!ctx.hasAttr(form.attribute)) continue;
    if (given) return ctx.error(std::string("has both '") + given->attribute + "' and '" + form.attribute + "'");
    given = &form;
  }
  if (!given) return ctx.error("has no value attribute (value, value_float(s), value_int(s))");
  std::string_view name = given->attribute;
  const ir::Attribute& attr = *ctx.node().attribute(given->attribute);
  if (name == "value") return attr.t;
  if (name == "value_float") return ir::Tensor::fromValues<float>(ir::DType::kFloat32, {}, std::span(&attr.f, 1));
  if (name == "value_floats")
    return ir::Tensor::fromValues<float>(ir::DType::kFloat32, {static_cast<int64_t>(attr.floats.size())}, attr.floats);
  if (name == "value_int") return ir::Tensor::fromValues<int64_t>(ir::DType::kInt64, {}, std::span(&attr.i, 1));
  if (name == "value_ints")
    return ir::Tensor::fromValues<int64_t>(ir::DType::kInt64, {static_cast<int64_t>(attr.ints.size())}, attr.ints);
  return ctx.unsupportedError("'" + std::string(name) + "' constants are not supported");
}

Status inferConstant(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 0, 0));
  KILN_ASSIGN_OR_RETURN(ir::Tensor value, constantValue(ctx));
  if (value.dtype() == ir::DType::kString) return ctx.unsupportedError("string constants are not supported");
  ctx.setOutputConstant(0, std::move(value));
  return Status::ok();
}

// Normally never called: the driver makes a constant output a program
// constant. Should a Constant's output need a kernel anyway, small values are
// written element by element.
constexpr int64_t kMaxConstantKernelElems = 256;

Status lowerConstant(LowerContext& ctx) {
  KILN_ASSIGN_OR_RETURN(ir::Tensor value, constantValue(ctx));
  if (value.elementCount() > kMaxConstantKernelElems)
    return internalError(ctx.node().describe() + ": a constant of " + std::to_string(value.elementCount()) +
                         " elements must be bound as a program constant, not computed by a kernel");
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer y = ctx.output(0);
  ir::DType dtype = computeDType(value.dtype());
  const std::vector<int64_t>& dims = value.dims();
  for (int64_t flat = 0; flat < value.elementCount(); ++flat) {
    std::vector<Expr> index(dims.size());
    int64_t rest = flat;
    for (size_t d = dims.size(); d-- > 0;) {
      index[d] = Expr::index(rest % dims[d]);
      rest /= dims[d];
    }
    Expr element = tensorElement(value, flat, dtype);
    kb.computeAt(y, {}, index, kir::cast(y.dtype(), element));
  }
  return Status::ok();
}

}  // namespace

void registerShapeOps(OpRegistry& registry) {
  registry.add(OpSchema{"", "Reshape", {1, 5, 13, 14},
                        {{"shape", Kind::kInts}, {"allowzero", Kind::kInt}, {"consumed_inputs", Kind::kInts}},
                        inferReshape, lowerReshape});
  registry.add(OpSchema{"", "Flatten", {1, 9, 11, 13}, {{"axis", Kind::kInt}}, inferFlatten, lowerViewCopy});
  registry.add(OpSchema{"", "Transpose", {1, 13}, {{"perm", Kind::kInts}}, inferTranspose, lowerTranspose});
  registry.add(OpSchema{"", "Concat", {1, 4, 11, 13}, {{"axis", Kind::kInt}}, inferConcat, lowerConcat});
  registry.add(OpSchema{"", "Constant", {1, 9, 11, 12, 13}, constantAttributes(), inferConstant, lowerConstant});
}

}  // namespace kiln::ops
