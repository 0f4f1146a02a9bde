// Cast and CastLike between the numeric dtypes and bool, float16 and
// bfloat16 included. Conversions follow the kernel IR's cast:
//   - float -> integer truncates toward zero (ONNX). Out-of-range values are
//     implementation-defined in ONNX; Kiln saturates to the target's range
//     and maps NaN to 0 (llvm.fpto[su]i.sat), so no input can trap.
//   - integer -> narrower integer wraps (two's complement), like numpy.
//   - anything -> bool is `x != 0` (NaN is true); bool -> number is 0 or 1.
//   - float narrowing rounds to nearest even; float16 <-> bfloat16 goes
//     through float32.
// Strings: string -> number parses decimal or scientific text ("1e-5",
// "+INF", "NaN" in any case; integers truncate a fraction) and
// float32/float64/integer -> string formats as numpy's str() does (the
// shortest text that reads back as the same value: "0.9767611", "1e-05"),
// both through the run's string functions (kir::StringFn). bool and
// float16/bfloat16 to or from string are refused.
// The float8 and 4-bit types (opsets 19 and 21) are not supported;
// `saturate` (opset 19) only concerns float8, so it is accepted and has no
// effect on the supported types.
#include <string>

#include "compiler/ops/math_exprs.h"
#include "compiler/ops/run_time_shapes.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;

// ONNX TensorProto codes Kiln does not compute with, named for the message.
struct UnsupportedCode {
  int64_t code;
  const char* name;
};
constexpr UnsupportedCode kUnsupportedCodes[] = {
    {14, "complex64"},  {15, "complex128"}, {17, "float8e4m3fn"}, {18, "float8e4m3fnuz"},
    {19, "float8e5m2"}, {20, "float8e5m2fnuz"}, {21, "uint4"},    {22, "int4"},         {23, "float4e2m1"},
};

Expected<ir::DType> castTarget(const NodeView& ctx) {
  int64_t code = ctx.attrInt("to", 0);
  for (const UnsupportedCode& entry : kUnsupportedCodes)
    if (entry.code == code)
      return ctx.unsupportedError(std::string("casting to ") + entry.name + " (to=" + std::to_string(code) +
                                  ") is not supported; Kiln casts between numeric types and bool");
  std::optional<ir::DType> dtype = ir::dtypeFromOnnx(static_cast<int32_t>(code));
  if (!dtype) return ctx.error("attribute to=" + std::to_string(code) + " is not an ONNX data type");
  return *dtype;
}

// Strings convert to and from float32, float64 and the integers.
bool castsWithStrings(ir::DType dtype) {
  return dtype == ir::DType::kString || dtype == ir::DType::kFloat32 || dtype == ir::DType::kFloat64 ||
         ir::isInteger(dtype);
}

Status expectCastable(const NodeView& ctx, ir::DType from, ir::DType to) {
  if ((from == ir::DType::kString || to == ir::DType::kString) && !(castsWithStrings(from) && castsWithStrings(to)))
    return ctx.unsupportedError("casting " + std::string(ir::name(from)) + " to " + std::string(ir::name(to)) +
                                " is not supported; strings convert to and from float32, float64 and integers");
  return Status::ok();
}

Status inferCast(InferContext& ctx, bool like) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, like ? 2 : 1, like ? 2 : 1));
  KILN_ASSIGN_OR_RETURN(ir::Shape shape, inputShape(ctx, 0, "input"));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "input", DTypeClass::kAnyData));
  ir::DType target;
  if (like) {
    KILN_RETURN_IF_ERROR(expectDType(ctx, 1, "target_type", DTypeClass::kAnyData));
    target = ctx.inputType(1).dtype;
  } else {
    KILN_ASSIGN_OR_RETURN(target, castTarget(ctx));
  }
  KILN_RETURN_IF_ERROR(expectCastable(ctx, ctx.inputType(0).dtype, target));
  ctx.setOutputType(0, {target, shape});
  return Status::ok();
}

// One element converted; strings go through the string functions.
kir::Expr castElement(ir::DType target, kir::Expr x) {
  ir::DType from = x.dtype();
  auto flag = [](bool on) { return kir::Expr::index(on ? 1 : 0); };
  if (from == target || (from != ir::DType::kString && target != ir::DType::kString)) return kir::cast(target, x);
  if (from == ir::DType::kString) {
    if (ir::isInteger(target))
      return kir::cast(target, kir::stringCall(kir::StringFn::kParseInt, {x, flag(ir::isUnsigned(target))}));
    kir::Expr bits = kir::Expr::index(target == ir::DType::kFloat32 ? 32 : 64);
    return kir::cast(target, kir::stringCall(kir::StringFn::kParseFloat, {x, bits}));
  }
  if (ir::isInteger(from))
    return kir::stringCall(kir::StringFn::kFormatInt, {kir::cast(ir::DType::kInt64, x), flag(ir::isUnsigned(from))});
  kir::Expr bits = kir::Expr::index(from == ir::DType::kFloat32 ? 32 : 64);
  return kir::stringCall(kir::StringFn::kFormatFloat, {kir::cast(ir::DType::kFloat64, x), bits});
}

Status lowerCast(LowerContext& ctx) {
  if (hasRunTimeShape(ctx)) {
    ir::DType target = ctx.outputDType(0);
    return lowerRunTimeElementwise(ctx, {0}, 1, [target](std::span<const kir::Expr> v) {
      return std::vector<kir::Expr>{castElement(target, v[0])};
    });
  }
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(0);
  LowerContext::Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(y.shape());
  kb.compute(y, axes, castElement(y.dtype(), x.load(asExprs(axes))));
  return Status::ok();
}

}  // namespace

void registerCastOps(OpRegistry& registry) {
  // Cast-1 spelled `to` as a string ("FLOAT"); Kiln reads the integer form
  // of opset 6 on, so an opset-1 model's string `to` is reported as an
  // attribute of the wrong kind.
  registry.add(OpSchema{"",
                        "Cast",
                        {1, 6, 9, 13, 19, 21},
                        {{"to", Kind::kInt, true}, {"saturate", Kind::kInt}},
                        [](InferContext& ctx) { return inferCast(ctx, false); },
                        lowerCast});
  registry.add(OpSchema{"",
                        "CastLike",
                        {15, 19, 21},
                        {{"saturate", Kind::kInt}},
                        [](InferContext& ctx) { return inferCast(ctx, true); },
                        lowerCast,
                        /*dtype_only_inputs=*/{1}});
}

}  // namespace kiln::ops
