// NonZero and Compress: outputs that list the elements a condition selects,
// so their size is a count over run-time data.
//
// Both lower to two kernels (see "Data-dependent sizes" in
// run_time_shapes.h): the first counts the selected elements with a serial
// prefix count pos[i] (the number selected before i) and stores pos[n] in
// the output's dim slot; the second recomputes pos, scatters each selected
// i to src[pos[i]], and writes output element k from src[k]:
//   NonZero:  y[d, k] = (src[k] / stride[d]) % dims[d]    (row-major order)
//   Compress: y[.., k, ..] = x[.., src[k], ..]             (along axis)
// Both are O(n) per run.
#include <optional>
#include <string>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"
#include "compiler/ops/run_time_shapes.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using ir::DType;
using kir::Expr;
using Buffer = LowerContext::Buffer;

int64_t elementCount(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

Status refuseRunTimeInput(LowerContext& ctx, size_t i) {
  if (ctx.isDynamicInput(i))
    return ctx.unsupportedError("input " + std::to_string(i) + " has a run-time shape; Kiln needs its shape static");
  return Status::ok();
}

// ---- NonZero -------------------------------------------------------------------

Status inferNonZero(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 1));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "X", DTypeClass::kAnyKernel));
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShape(ctx, 0, "X"));
  ctx.setOutputType(0, {DType::kInt64, ir::Shape{ir::Dim::known(static_cast<int64_t>(x.size())), ir::Dim{}}});
  return Status::ok();
}

Status lowerNonZero(LowerContext& ctx) {
  KILN_RETURN_IF_ERROR(refuseRunTimeInput(ctx, 0));
  std::vector<int64_t> dims = ctx.inputDims(0);
  int64_t n = elementCount(dims);
  auto rank = static_cast<int64_t>(dims.size());

  ctx.newKernel("count");
  Buffer x = ctx.input(0, {n});
  auto nonzero = [&x](Expr i) { return isNonZero(x(i)); };
  Buffer pos = prefixCount(ctx, "pos", n, nonzero);
  setOutputDims(ctx, 0, {Expr::index(rank), pos(Expr::index(n))});

  kir::KernelBuilder& kb = ctx.newKernel();
  x = ctx.input(0, {n});
  pos = prefixCount(ctx, "pos", n, nonzero);
  Buffer src = scatterIndices(ctx, "src", n, nonzero, [&pos](Expr i) { return pos(i); });
  Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = ctx.outputVars(0);
  Expr flat = src(axes[1]);
  Expr value = Expr::index(0);
  int64_t stride = 1;
  for (int64_t d = rank; d-- > 0;) {
    Expr coordinate = (flat / Expr::index(stride)) % Expr::index(dims[static_cast<size_t>(d)]);
    value = d == rank - 1 ? coordinate : kir::select(kir::eq(Expr(axes[0]), Expr::index(d)), coordinate, value);
    stride *= dims[static_cast<size_t>(d)];
  }
  kb.compute(y, axes, value);
  return Status::ok();
}

// ---- Compress ------------------------------------------------------------------

// The axis compressed, or nullopt for the flattened input.
Expected<std::optional<int64_t>> compressAxis(const NodeView& ctx, int64_t rank) {
  if (!ctx.hasAttr("axis")) return std::optional<int64_t>{};
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalizeAxis(ctx, ctx.attrInt("axis", 0), rank));
  return std::optional<int64_t>{axis};
}

Status inferCompress(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 2, 2));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "input", DTypeClass::kAnyKernel));
  if (ctx.inputType(1).dtype != DType::kBool)
    return ctx.error("condition has dtype " + std::string(ir::name(ctx.inputType(1).dtype)) +
                     ", expected bool (input 1)");
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShape(ctx, 0, "input"));
  KILN_ASSIGN_OR_RETURN(ir::Shape condition, inputShapeOfRank(ctx, 1, "condition", 1));
  KILN_ASSIGN_OR_RETURN(std::optional<int64_t> axis, compressAxis(ctx, static_cast<int64_t>(x.size())));
  ir::Dim along = axis ? x[static_cast<size_t>(*axis)] : productDim(x, 0, x.size());
  if (condition[0].isKnown() && along.isKnown() && condition[0].value > along.value)
    return ctx.error("condition has " + std::to_string(condition[0].value) + " entries for " +
                     std::to_string(along.value) + (axis ? " slices along axis " + std::to_string(*axis) : " elements") +
                     " (input 1)");
  ir::Shape out = axis ? x : ir::Shape(1, ir::Dim{});
  if (axis) out[static_cast<size_t>(*axis)] = ir::Dim{};
  ctx.setOutputType(0, {ctx.inputType(0).dtype, out});
  return Status::ok();
}

Status lowerCompress(LowerContext& ctx) {
  KILN_RETURN_IF_ERROR(refuseRunTimeInput(ctx, 0));
  KILN_RETURN_IF_ERROR(refuseRunTimeInput(ctx, 1));
  std::vector<int64_t> dims = ctx.inputDims(0);
  KILN_ASSIGN_OR_RETURN(std::optional<int64_t> axis, compressAxis(ctx, static_cast<int64_t>(dims.size())));
  std::vector<int64_t> view = axis ? dims : std::vector<int64_t>{elementCount(dims)};
  size_t a = axis ? static_cast<size_t>(*axis) : 0;
  int64_t c = ctx.inputDims(1)[0];

  ctx.newKernel("count");
  Buffer condition = ctx.input(1);
  auto selected = [&condition](Expr i) { return condition(i); };
  Buffer pos = prefixCount(ctx, "pos", c, selected);
  std::vector<Expr> sizes;
  for (int64_t d : view) sizes.push_back(Expr::index(d));
  sizes[a] = pos(Expr::index(c));
  setOutputDims(ctx, 0, sizes);

  kir::KernelBuilder& kb = ctx.newKernel();
  condition = ctx.input(1);
  pos = prefixCount(ctx, "pos", c, selected);
  Buffer src = scatterIndices(ctx, "src", c, selected, [&pos](Expr i) { return pos(i); });
  Buffer x = ctx.input(0, view);
  Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = ctx.outputVars(0);
  std::vector<Expr> source = asExprs(axes);
  source[a] = src(axes[a]);
  kb.compute(y, axes, x.load(source));
  return Status::ok();
}

}  // namespace

void registerNonZeroOps(OpRegistry& registry) {
  registry.add(OpSchema{"", "NonZero", {9, 13}, {}, inferNonZero, lowerNonZero});
  registry.add(OpSchema{"", "Compress", {9, 11}, {{"axis", Kind::kInt}}, inferCompress, lowerCompress});
}

}  // namespace kiln::ops
