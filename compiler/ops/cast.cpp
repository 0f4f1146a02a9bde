// Cast and CastLike between the numeric dtypes and bool, float16 and
// bfloat16 included. Conversions follow the kernel IR's cast:
//   - float -> integer truncates toward zero (ONNX). Out-of-range values are
//     implementation-defined in ONNX; Kiln saturates to the target's range
//     and maps NaN to 0 (llvm.fpto[su]i.sat), so no input can trap.
//   - integer -> narrower integer wraps (two's complement), like numpy.
//   - anything -> bool is `x != 0` (NaN is true); bool -> number is 0 or 1.
//   - float narrowing rounds to nearest even; float16 <-> bfloat16 goes
//     through float32.
// The float8 and 4-bit types (opsets 19 and 21) and strings are not
// supported; `saturate` (opset 19) only concerns float8, so it is accepted
// and has no effect on the supported types.
#include <string>

#include "compiler/ops/math_exprs.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;

// ONNX TensorProto codes Kiln does not compute with, named for the message.
struct UnsupportedCode {
  int64_t code;
  const char* name;
};
constexpr UnsupportedCode kUnsupportedCodes[] = {
    {8, "string"},      {14, "complex64"},      {15, "complex128"}, {17, "float8e4m3fn"}, {18, "float8e4m3fnuz"},
    {19, "float8e5m2"}, {20, "float8e5m2fnuz"}, {21, "uint4"},      {22, "int4"},         {23, "float4e2m1"},
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

// `direction` is "from" for the input, "to" for CastLike's target_type.
Status expectCastable(const NodeView& ctx, size_t i, std::string_view role, std::string_view direction) {
  ir::DType dtype = ctx.inputType(i).dtype;
  if (dtype == ir::DType::kString)
    return ctx.unsupportedError("casting " + std::string(direction) + " string is not supported (input " +
                                std::to_string(i) + "); Kiln casts between numeric types and bool");
  return expectDType(ctx, i, role, DTypeClass::kAnyKernel);
}

Status inferCast(InferContext& ctx, bool like) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, like ? 2 : 1, like ? 2 : 1));
  KILN_ASSIGN_OR_RETURN(ir::Shape shape, inputShape(ctx, 0, "input"));
  KILN_RETURN_IF_ERROR(expectCastable(ctx, 0, "input", "from"));
  ir::DType target;
  if (like) {
    KILN_RETURN_IF_ERROR(expectCastable(ctx, 1, "target_type", "to"));
    target = ctx.inputType(1).dtype;
  } else {
    KILN_ASSIGN_OR_RETURN(target, castTarget(ctx));
  }
  ctx.setOutputType(0, {target, shape});
  return Status::ok();
}

Status lowerCast(LowerContext& ctx) {
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(0);
  LowerContext::Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(y.shape());
  kb.compute(y, axes, kir::cast(y.dtype(), x.load(asExprs(axes))));
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
                        lowerCast});
}

}  // namespace kiln::ops
