// Normalizations over groups of elements: LayerNormalization,
// InstanceNormalization, MeanVarianceNormalization, LRN and Hardmax.
//
// The statistics of each group (a "row": the elements that share the indices
// of the dims not normalized) are computed once, by their own stages into
// temporaries of the statistics' shape (the input's dims with the normalized
// ones set to 1), and the last stage reads them per element. This is the
// pattern of Softmax in normalization.cpp.
#include "compiler/lower/lower_context.h"
#include "compiler/ops/axes.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using ir::DType;
using kir::Expr;
using kir::IterVar;
using kir::ReduceOp;
using Buffer = LowerContext::Buffer;

// The normalized dims from `axis` on (LayerNormalization, Softmax-style ops).
std::vector<bool> dimsFrom(size_t rank, int64_t axis) {
  std::vector<bool> reduced(rank, false);
  for (size_t i = static_cast<size_t>(axis); i < rank; ++i) reduced[i] = true;
  return reduced;
}

// ---- Mean and inverse standard deviation per row --------------------------------
// Two passes (mean, then the mean of squared deviations) rather than
// E[x^2] - E[x]^2, which cancels catastrophically when |mean| >> std.

enum class EpsilonOn { kVariance, kStdDev };  // 1/sqrt(var + eps) or 1/(sqrt(var) + eps)

struct RowStats {
  Buffer mean;
  Buffer inv_std;
};

RowStats computeRowStats(LowerContext& ctx, const Buffer& x, const std::vector<bool>& reduced, DType dtype,
                         double epsilon, EpsilonOn epsilon_on) {
  kir::KernelBuilder& kb = ctx.builder();
  RowShape shape = rowShape(x.shape(), reduced);
  double count = static_cast<double>(shape.count);
  RowStats stats{ctx.temp("mean", dtype, shape.stat), ctx.temp("inv_std", dtype, shape.stat)};

  std::vector<IterVar> mean_axes = kb.vars(shape.stat, "m");
  std::vector<IterVar> mean_row = kb.vars(shape.row, "r");
  Expr sum = reduceOver(ReduceOp::kSum, mean_row, kir::cast(dtype, x.load(rowIndex(reduced, mean_axes, mean_row))));
  kb.compute(stats.mean, mean_axes, sum / count);

  std::vector<IterVar> var_axes = kb.vars(shape.stat, "v");
  std::vector<IterVar> var_row = kb.vars(shape.row, "r");
  Expr deviation = kir::cast(dtype, x.load(rowIndex(reduced, var_axes, var_row))) - stats.mean.load(asExprs(var_axes));
  Expr variance = reduceOver(ReduceOp::kSum, var_row, deviation * deviation) / count;
  Expr inv_std =
      epsilon_on == EpsilonOn::kVariance ? 1.0 / kir::sqrt(variance + epsilon) : 1.0 / (kir::sqrt(variance) + epsilon);
  kb.compute(stats.inv_std, var_axes, inv_std);
  return stats;
}

// out[stat] = stat buffer, for the optional statistics outputs.
void copyStat(LowerContext& ctx, const Buffer& from, size_t output) {
  kir::KernelBuilder& kb = ctx.builder();
  Buffer to = ctx.output(output);
  std::vector<IterVar> axes = kb.vars(to.shape(), "o");
  kb.compute(to, axes, kir::cast(to.dtype(), from.load(asExprs(axes))));
}

// ---- LayerNormalization (opset 17) ------------------------------------------------
//   Y = (X - mean) * inv_std * Scale + B over the dims from `axis` on, computed
// in stash_type (float32 by default). Scale and B broadcast to X's shape
// (right-aligned). Mean and InvStdDev, when asked for, have X's shape with the
// normalized dims set to 1 and the stash type.

Expected<DType> stashDType(const NodeView& ctx) {
  int64_t code = ctx.attrInt("stash_type", 1);
  std::optional<DType> dtype = ir::dtypeFromOnnx(static_cast<int32_t>(code));
  if (!dtype || !ir::isFloat(*dtype))
    return ctx.error("stash_type " + std::to_string(code) + " is not a floating-point type");
  return *dtype;
}

Status expectBroadcastsTo(const NodeView& ctx, size_t i, std::string_view role, const ir::Shape& x) {
  KILN_ASSIGN_OR_RETURN(ir::Shape param, inputShape(ctx, i, role));
  bool fits = param.size() <= x.size();
  for (size_t k = 0; fits && k < param.size(); ++k) {
    const ir::Dim& p = param[param.size() - 1 - k];
    const ir::Dim& d = x[x.size() - 1 - k];
    fits = (p.isKnown() && p.value == 1) || !conflictingDims(p, d);
  }
  if (!fits)
    return ctx.error(std::string(role) + " " + ir::toString(param) + " does not broadcast to X " + ir::toString(x) +
                     " (input " + std::to_string(i) + ")");
  return Status::ok();
}

Status inferLayerNorm(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 2, 3));
  KILN_RETURN_IF_ERROR(expectOutputCount(ctx, 3));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "X", DTypeClass::kFloat));
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShapeOfMinRank(ctx, 0, "X", 1));
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalizeAxis(ctx, ctx.attrInt("axis", -1), static_cast<int64_t>(x.size())));
  KILN_ASSIGN_OR_RETURN(DType stash, stashDType(ctx));
  KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, 1, "Scale"));
  KILN_RETURN_IF_ERROR(expectBroadcastsTo(ctx, 1, "Scale", x));
  if (ctx.numInputs() > 2 && ctx.hasInput(2)) {
    KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, 2, "B"));
    KILN_RETURN_IF_ERROR(expectBroadcastsTo(ctx, 2, "B", x));
  }
  ctx.setOutputType(0, {ctx.inputType(0).dtype, x});
  ir::Shape stat = x;
  for (size_t i = static_cast<size_t>(axis); i < stat.size(); ++i) stat[i] = ir::Dim::known(1);
  for (size_t i = 1; i < 3; ++i) ctx.setOutputType(i, {stash, stat});
  return Status::ok();
}

// A parameter broadcast (right-aligned) to X's element `axes`.
Expr broadcastLoad(const Buffer& param, const std::vector<IterVar>& axes) {
  std::vector<Expr> index;
  size_t offset = axes.size() - param.rank();
  for (size_t k = 0; k < param.rank(); ++k)
    index.push_back(param.dim(k) == 1 ? Expr::index(0) : Expr(axes[offset + k]));
  return param.load(index);
}

Status lowerLayerNorm(LowerContext& ctx) {
  std::vector<int64_t> dims = ctx.inputDims(0);
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalizeAxis(ctx, ctx.attrInt("axis", -1), static_cast<int64_t>(dims.size())));
  KILN_ASSIGN_OR_RETURN(DType stash, stashDType(ctx));
  DType dtype = computeDType(stash);
  std::vector<bool> reduced = dimsFrom(dims.size(), axis);

  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer x = ctx.input(0);
  Buffer scale = ctx.input(1);
  bool has_bias = ctx.numInputs() > 2 && ctx.hasInput(2);
  Buffer bias = has_bias ? ctx.input(2) : Buffer();
  Buffer y = ctx.output(0);
  RowStats stats = computeRowStats(ctx, x, reduced, dtype, ctx.attrFloat("epsilon", 1e-5f), EpsilonOn::kVariance);

  std::vector<IterVar> axes = kb.vars(dims);
  std::vector<Expr> stat = statIndex(reduced, axes);
  Expr normalized = (kir::cast(dtype, x.load(asExprs(axes))) - stats.mean.load(stat)) * stats.inv_std.load(stat);
  Expr value = normalized * kir::cast(dtype, broadcastLoad(scale, axes));
  if (has_bias) value = value + kir::cast(dtype, broadcastLoad(bias, axes));
  kb.compute(y, axes, kir::cast(y.dtype(), value));
  if (ctx.hasOutput(1)) copyStat(ctx, stats.mean, 1);
  if (ctx.hasOutput(2)) copyStat(ctx, stats.inv_std, 2);
  return Status::ok();
}

// ---- InstanceNormalization --------------------------------------------------------
//   Y[n, c, ...] = (X - mean[n, c]) / sqrt(var[n, c] + epsilon) * scale[c] + B[c]
// with the statistics over the spatial dims of each (n, c).

constexpr const char* kInstanceNormParams[] = {"scale", "B"};

Status inferInstanceNorm(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 3, 3));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "input", DTypeClass::kFloat));
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShapeOfMinRank(ctx, 0, "input", 3));
  for (size_t i = 1; i < 3; ++i) {
    const char* role = kInstanceNormParams[i - 1];
    KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, i, role));
    KILN_ASSIGN_OR_RETURN(ir::Shape param, inputShapeOfRank(ctx, i, role, 1));
    if (conflictingDims(param[0], x[1]))
      return ctx.error(std::string(role) + " has " + std::to_string(param[0].value) + " elements, expected " +
                       std::to_string(x[1].value) + " (one per channel of input " + ir::toString(x) + ", input " +
                       std::to_string(i) + ")");
  }
  ctx.setOutputType(0, {ctx.inputType(0).dtype, x});
  return Status::ok();
}

Status lowerInstanceNorm(LowerContext& ctx) {
  std::vector<int64_t> dims = ctx.inputDims(0);
  std::vector<bool> reduced = dimsFrom(dims.size(), 2);
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer x = ctx.input(0);
  Buffer scale = ctx.input(1);
  Buffer bias = ctx.input(2);
  Buffer y = ctx.output(0);
  DType dtype = computeDType(x.dtype());
  RowStats stats = computeRowStats(ctx, x, reduced, dtype, ctx.attrFloat("epsilon", 1e-5f), EpsilonOn::kVariance);

  std::vector<IterVar> axes = kb.vars(dims);
  std::vector<Expr> stat = statIndex(reduced, axes);
  Expr c = axes[1];
  Expr normalized = (kir::cast(dtype, x.load(asExprs(axes))) - stats.mean.load(stat)) * stats.inv_std.load(stat);
  Expr value = normalized * kir::cast(dtype, scale(c)) + kir::cast(dtype, bias(c));
  kb.compute(y, axes, kir::cast(y.dtype(), value));
  return Status::ok();
}

// ---- MeanVarianceNormalization ------------------------------------------------------
//   Y = (X - mean) / (sqrt(var) + 1e-9) over `axes` (default [0, 2, 3]), as
// the op's ONNX function body computes it (epsilon on the std dev).

Expected<std::vector<bool>> mvnDims(const NodeView& ctx, size_t rank) {
  std::vector<bool> reduced(rank, false);
  for (int64_t axis : ctx.attrInts("axes", {0, 2, 3})) {
    KILN_ASSIGN_OR_RETURN(int64_t a, normalizeAxis(ctx, axis, static_cast<int64_t>(rank), "axes entry"));
    if (reduced[static_cast<size_t>(a)]) return ctx.error("axes lists dim " + std::to_string(a) + " twice");
    reduced[static_cast<size_t>(a)] = true;
  }
  return reduced;
}

Status inferMvn(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 1));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "X", DTypeClass::kFloat));
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShape(ctx, 0, "X"));
  Expected<std::vector<bool>> reduced = mvnDims(ctx, x.size());
  if (!reduced) return reduced.status();
  ctx.setOutputType(0, {ctx.inputType(0).dtype, x});
  return Status::ok();
}

Status lowerMvn(LowerContext& ctx) {
  std::vector<int64_t> dims = ctx.inputDims(0);
  KILN_ASSIGN_OR_RETURN(std::vector<bool> reduced, mvnDims(ctx, dims.size()));
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer x = ctx.input(0);
  Buffer y = ctx.output(0);
  DType dtype = computeDType(x.dtype());
  RowStats stats = computeRowStats(ctx, x, reduced, dtype, 1e-9, EpsilonOn::kStdDev);
  std::vector<IterVar> axes = kb.vars(dims);
  std::vector<Expr> stat = statIndex(reduced, axes);
  Expr value = (kir::cast(dtype, x.load(asExprs(axes))) - stats.mean.load(stat)) * stats.inv_std.load(stat);
  kb.compute(y, axes, kir::cast(y.dtype(), value));
  return Status::ok();
}

// ---- LRN -------------------------------------------------------------------------
//   Y[n, c, ...] = X[n, c, ...] / (bias + alpha / size * sum of X[n, j, ...]^2)^beta
// over channels j in [c - floor((size-1)/2), c + ceil((size-1)/2)] that exist.

Status inferLrn(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 1));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "X", DTypeClass::kFloat));
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShapeOfMinRank(ctx, 0, "X", 2));
  int64_t size = ctx.attrInt("size", 0);
  if (size <= 0) return ctx.error("size must be positive, got " + std::to_string(size));
  ctx.setOutputType(0, {ctx.inputType(0).dtype, x});
  return Status::ok();
}

Status lowerLrn(LowerContext& ctx) {
  std::vector<int64_t> dims = ctx.inputDims(0);
  int64_t size = ctx.attrInt("size", 1);
  double alpha = ctx.attrFloat("alpha", 1e-4f);
  double beta = ctx.attrFloat("beta", 0.75f);
  double bias = ctx.attrFloat("bias", 1.0f);
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer x = ctx.input(0);
  Buffer y = ctx.output(0);
  DType dtype = computeDType(x.dtype());
  std::vector<IterVar> axes = kb.vars(dims);
  IterVar r = kb.var("r", size);
  Expr channel = Expr(axes[1]) + Expr(r) - static_cast<double>((size - 1) / 2);
  std::vector<Expr> index = asExprs(axes);
  index[1] = channel;
  Expr neighbour = kir::cast(dtype, x.load(index));
  Expr square = kir::select(kir::inRange(channel, dims[1]), neighbour * neighbour, Expr::constant(dtype, 0));
  Expr base = kir::reduce(ReduceOp::kSum, {r}, square) * (alpha / static_cast<double>(size)) + bias;
  Expr value =
      kir::cast(dtype, x.load(asExprs(axes))) / kir::binary(kir::BinaryOp::kPow, base, Expr::constant(dtype, beta));
  kb.compute(y, axes, kir::cast(y.dtype(), value));
  return Status::ok();
}

// ---- Hardmax -----------------------------------------------------------------------
// 1 at the first maximum of each row, 0 elsewhere. Rows as in Softmax:
// opsets 1 and 11 flatten at `axis` (default 1) and take everything from
// `axis` on as one row, in row-major order; opset 13 takes the one dim `axis`
// (default -1). A NaN counts as the maximum, like numpy's argmax.

int64_t defaultHardmaxAxis(const NodeView& ctx) { return ctx.opset() >= 13 ? -1 : 1; }

std::vector<bool> hardmaxDims(const NodeView& ctx, size_t rank, int64_t axis) {
  if (ctx.opset() < 13) return dimsFrom(rank, axis);
  std::vector<bool> reduced(rank, false);
  reduced[static_cast<size_t>(axis)] = true;
  return reduced;
}

Status inferHardmax(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 1));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "input", DTypeClass::kFloat));
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShapeOfMinRank(ctx, 0, "input", 1));
  Expected<int64_t> axis =
      normalizeAxis(ctx, ctx.attrInt("axis", defaultHardmaxAxis(ctx)), static_cast<int64_t>(x.size()));
  if (!axis) return axis.status();
  ctx.setOutputType(0, {ctx.inputType(0).dtype, x});
  return Status::ok();
}

// Row-major position within its row of the element whose normalized dims are
// at `position` (one expression per normalized dim).
Expr positionInRow(const std::vector<Expr>& position, const std::vector<int64_t>& row) {
  Expr flat = Expr::index(0);
  for (size_t k = 0; k < row.size(); ++k) flat = flat * static_cast<double>(row[k]) + position[k];
  return flat;
}

Status lowerHardmax(LowerContext& ctx) {
  std::vector<int64_t> dims = ctx.inputDims(0);
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalizeAxis(ctx, ctx.attrInt("axis", defaultHardmaxAxis(ctx)),
                                                    static_cast<int64_t>(dims.size())));
  std::vector<bool> reduced = hardmaxDims(ctx, dims.size(), axis);
  RowShape shape = rowShape(dims, reduced);

  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer x = ctx.input(0);
  Buffer y = ctx.output(0);
  DType dtype = computeDType(x.dtype());
  Buffer row_max = ctx.temp("row_max", dtype, shape.stat);
  Buffer first = ctx.temp("first_max", DType::kInt64, shape.stat);

  std::vector<IterVar> max_axes = kb.vars(shape.stat, "m");
  std::vector<IterVar> max_row = kb.vars(shape.row, "r");
  Expr in_row = kir::cast(dtype, x.load(rowIndex(reduced, max_axes, max_row)));
  kb.compute(row_max, max_axes, reduceOver(ReduceOp::kMax, max_row, in_row));

  std::vector<IterVar> first_axes = kb.vars(shape.stat, "f");
  std::vector<IterVar> first_row = kb.vars(shape.row, "r");
  Expr v = kir::cast(dtype, x.load(rowIndex(reduced, first_axes, first_row)));
  Expr m = row_max.load(asExprs(first_axes));
  Expr is_nan_v = kir::binary(kir::BinaryOp::kNe, v, v);
  Expr is_nan_m = kir::binary(kir::BinaryOp::kNe, m, m);
  Expr match = kir::eq(v, m) || (is_nan_v && is_nan_m);
  Expr position = kir::select(match, positionInRow(asExprs(first_row), shape.row), Expr::index(shape.count));
  kb.compute(first, first_axes, reduceOver(ReduceOp::kMin, first_row, position));

  std::vector<IterVar> axes = kb.vars(dims);
  std::vector<Expr> in_row_position;
  for (size_t i = 0; i < dims.size(); ++i)
    if (reduced[i]) in_row_position.push_back(axes[i]);
  Expr is_first = kir::eq(positionInRow(in_row_position, shape.row), first.load(statIndex(reduced, axes)));
  kb.compute(y, axes, kir::cast(y.dtype(), kir::cast(dtype, is_first)));
  return Status::ok();
}

}  // namespace

void registerNormOps(OpRegistry& registry) {
  const std::vector<AttrSpec> layer_norm_attrs = {
      {"axis", Kind::kInt}, {"epsilon", Kind::kFloat}, {"stash_type", Kind::kInt}};
  registry.add(OpSchema{"", "LayerNormalization", {17}, layer_norm_attrs, inferLayerNorm, lowerLayerNorm});
  // The same op for models whose opset predates 17: what the
  // recognize-layer-norm pass writes there.
  registry.add(OpSchema{kKilnDomain, "LayerNormalization", {1}, layer_norm_attrs, inferLayerNorm, lowerLayerNorm});
  registry.add(OpSchema{"",
                        "InstanceNormalization",
                        {1, 6},
                        // Opset 1 only; an optimization hint with no effect on the result.
                        {{"epsilon", Kind::kFloat}, {"consumed_inputs", Kind::kInts}},
                        inferInstanceNorm,
                        lowerInstanceNorm});
  registry.add(OpSchema{"", "MeanVarianceNormalization", {9, 13}, {{"axes", Kind::kInts}}, inferMvn, lowerMvn});
  registry.add(
      OpSchema{"",
               "LRN",
               {1, 13},
               {{"size", Kind::kInt, true}, {"alpha", Kind::kFloat}, {"beta", Kind::kFloat}, {"bias", Kind::kFloat}},
               inferLrn,
               lowerLrn});
  registry.add(OpSchema{"", "Hardmax", {1, 11, 13}, {{"axis", Kind::kInt}}, inferHardmax, lowerHardmax});
}

}  // namespace kiln::ops
