// Sampling at fractional, data-given positions: GridSample and RoiAlign.
// Both read X at positions computed from run-time data, so every read index
// is clamped into X and positions outside it are handled by the op's own
// padding rule, never by reading past a buffer.
#include <algorithm>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using kir::Expr;
using Buffer = LowerContext::Buffer;

Expr clampIndex(Expr i, int64_t size) {
  return kir::min(kir::max(std::move(i), Expr::index(0)), Expr::index(std::max<int64_t>(size - 1, 0)));
}

// ---- GridSample ------------------------------------------------------------------
// Y[n, c, o..] = interpolate X[n, c] at grid[n, o..] (the last grid component
// is the innermost dim, x), denormalized to pixel coordinates by
// align_corners. Out-of-range coordinates and taps follow padding_mode:
// zeros reads 0, border clamps, reflection mirrors at the borders.

enum class GridMode { kNearest, kLinear, kCubic };
enum class Padding { kZeros, kBorder, kReflection };

struct GridSpec {
  GridMode mode = GridMode::kLinear;
  Padding padding = Padding::kZeros;
  bool align_corners = false;
};

Expected<GridSpec> gridSpec(const NodeView& ctx) {
  GridSpec spec;
  std::string mode = ctx.attrString("mode", ctx.opset() >= 20 ? "linear" : "bilinear");
  // Opset 20 renamed bilinear/bicubic to linear/cubic.
  bool v20 = ctx.opset() >= 20;
  if (mode == "nearest") spec.mode = GridMode::kNearest;
  else if (mode == (v20 ? "linear" : "bilinear")) spec.mode = GridMode::kLinear;
  else if (mode == (v20 ? "cubic" : "bicubic")) spec.mode = GridMode::kCubic;
  else
    return ctx.error("unknown mode '" + mode + "' (expected " +
                     (v20 ? "linear, nearest or cubic" : "bilinear, nearest or bicubic") + ")");
  std::string padding = ctx.attrString("padding_mode", "zeros");
  if (padding == "zeros") spec.padding = Padding::kZeros;
  else if (padding == "border") spec.padding = Padding::kBorder;
  else if (padding == "reflection") spec.padding = Padding::kReflection;
  else return ctx.error("unknown padding_mode '" + padding + "' (expected zeros, border or reflection)");
  spec.align_corners = ctx.attrInt("align_corners", 0) != 0;
  return spec;
}

Status inferGridSample(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 2, 2));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "X", DTypeClass::kFloat));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 1, "grid", DTypeClass::kFloat));
  KILN_ASSIGN_OR_RETURN(GridSpec spec, gridSpec(ctx));
  KILN_ASSIGN_OR_RETURN(ir::Shape x, ctx.opset() >= 20 ? inputShapeOfMinRank(ctx, 0, "X", 3)
                                                        : inputShapeOfRank(ctx, 0, "X", 4));
  KILN_ASSIGN_OR_RETURN(ir::Shape grid, inputShapeOfRank(ctx, 1, "grid", x.size()));
  size_t r = x.size() - 2;
  if (spec.mode == GridMode::kCubic && r != 2) return ctx.error("cubic mode needs a 4-D X, got rank " + std::to_string(x.size()));
  if (conflictingDims(grid.back(), ir::Dim::known(static_cast<int64_t>(r))) || conflictingDims(grid[0], x[0]))
    return ctx.error("grid " + ir::toString(grid) + " must have shape N x out... x " + std::to_string(r) +
                     " for X " + ir::toString(x) + " (input 1)");
  ir::Shape out = {x[0], x[1]};
  out.insert(out.end(), grid.begin() + 1, grid.end() - 1);
  ctx.setOutputType(0, {ctx.inputType(0).dtype, out});
  return Status::ok();
}

// x mirrored into [lo, hi] (a float expression), as often as it takes.
Expr reflect(Expr x, double lo, double hi) {
  ir::DType t = x.dtype();
  double range = hi - lo;
  if (range <= 0) return Expr::constant(t, lo);
  auto fold = [&](Expr dx, bool from_low) {
    Expr n = kir::unary(kir::UnaryOp::kFloor, dx / range);
    Expr rest = dx - n * range;
    Expr even = kir::eq(n - kir::unary(kir::UnaryOp::kFloor, n / 2.0) * 2.0, Expr::constant(t, 0));
    Expr near = from_low ? lo + rest : hi - rest;
    Expr far = from_low ? hi - rest : lo + rest;
    return kir::select(even, near, far);
  };
  Expr below = x < Expr::constant(t, lo);
  Expr above = x > Expr::constant(t, hi);
  return kir::select(below, fold(lo - x, true), kir::select(above, fold(x - hi, false), x));
}

struct GridAxis {
  int64_t size = 0;
  double lo = 0, hi = 0;  // the borders reflection mirrors at
};

// The pixel index read for integer tap `i` of one axis and whether it is inside X.
std::pair<Expr, Expr> tapIndex(const GridSpec& spec, const GridAxis& axis, Expr i) {
  Expr inside = kir::inRange(i, axis.size);
  if (spec.padding == Padding::kReflection)
    i = kir::cast(ir::DType::kInt64, reflect(kir::cast(ir::DType::kFloat64, i), axis.lo, axis.hi));
  if (spec.padding != Padding::kZeros) inside = Expr::constant(ir::DType::kBool, 1);
  return {clampIndex(i, axis.size), inside};
}

Expr cubicWeight(Expr d, double a) {  // Keys' kernel at distance |d| < 2
  Expr s = kir::abs(d);
  Expr near = ((a + 2.0) * s - (a + 3.0)) * s * s + 1.0;
  Expr far = ((a * s - 5.0 * a) * s + 8.0 * a) * s - 4.0 * a;
  return kir::select(s <= Expr::constant(s.dtype(), 1), near, far);
}

Status lowerGridSample(LowerContext& ctx) {
  KILN_ASSIGN_OR_RETURN(GridSpec spec, gridSpec(ctx));
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer x = ctx.input(0);
  Buffer grid = ctx.input(1);
  Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(y.shape(), "o");
  size_t r = x.rank() - 2;
  ir::DType ct = computeDType(grid.dtype());
  ir::DType vt = computeDType(x.dtype());
  std::vector<GridAxis> info(r);
  std::vector<Expr> coords(r);
  for (size_t d = 0; d < r; ++d) {
    GridAxis& a = info[d];
    a.size = x.dim(2 + d);
    a.lo = spec.align_corners ? 0.0 : -0.5;
    a.hi = spec.align_corners ? static_cast<double>(a.size - 1) : static_cast<double>(a.size) - 0.5;
    std::vector<Expr> at = {axes[0]};
    for (size_t k = 0; k < r; ++k) at.push_back(axes[2 + k]);
    at.push_back(Expr::index(static_cast<int64_t>(r - 1 - d)));
    Expr g = toCompute(grid.load(at));
    double size = static_cast<double>(a.size);
    Expr c = spec.align_corners ? (g + 1.0) / 2.0 * (size - 1.0) : ((g + 1.0) * size - 1.0) / 2.0;
    Expr outside = c < Expr::constant(ct, a.lo) || c > Expr::constant(ct, a.hi);
    if (spec.padding == Padding::kBorder)
      c = kir::select(outside, kir::min(kir::max(c, 0.0), size - 1.0), c);
    else if (spec.padding == Padding::kReflection)
      c = reflect(c, a.lo, a.hi);
    coords[d] = c;
  }
  auto pixel = [&](const std::vector<Expr>& taps) {
    std::vector<Expr> index = {axes[0], axes[1]};
    Expr inside = Expr::constant(ir::DType::kBool, 1);
    for (size_t d = 0; d < r; ++d) {
      auto [i, ok] = tapIndex(spec, info[d], taps[d]);
      index.push_back(i);
      inside = inside && ok;
    }
    return kir::select(inside, toCompute(x.load(index)), Expr::constant(vt, 0));
  };
  Expr value;
  if (spec.mode == GridMode::kNearest) {
    std::vector<Expr> taps;
    for (size_t d = 0; d < r; ++d) {
      Expr c = coords[d];
      // 2-D rounds half to even; 3-D (and more) half away from zero.
      Expr rounded = r == 2 ? kir::unary(kir::UnaryOp::kRound, c)
                            : kir::select(c >= Expr::constant(ct, 0), kir::unary(kir::UnaryOp::kFloor, c + 0.5),
                                          kir::unary(kir::UnaryOp::kCeil, c - 0.5));
      taps.push_back(kir::cast(ir::DType::kInt64, rounded));
    }
    value = pixel(taps);
  } else {
    bool cubic = spec.mode == GridMode::kCubic;
    int64_t count = cubic ? 4 : 2;
    std::vector<kir::IterVar> tvars;
    std::vector<Expr> taps;
    Expr weight;
    for (size_t d = 0; d < r; ++d) {
      kir::IterVar t = kb.var("t", count);
      tvars.push_back(t);
      Expr base = kir::unary(kir::UnaryOp::kFloor, coords[d]);
      Expr offset = cubic ? Expr(t) - 1.0 : Expr(t);
      taps.push_back(kir::cast(ir::DType::kInt64, base) + offset);
      Expr dist = coords[d] - base - kir::cast(ct, offset);  // position minus tap
      Expr w = cubic ? cubicWeight(dist, -0.75) : 1.0 - kir::abs(dist);
      weight = weight.valid() ? weight * w : w;
    }
    value = kir::reduce(kir::ReduceOp::kSum, tvars, kir::cast(vt, weight) * pixel(taps));
  }
  kb.compute(y, axes, kir::cast(y.dtype(), value));
  return Status::ok();
}

// ---- RoiAlign --------------------------------------------------------------------
// Y[r, c, ph, pw] pools a sampling_ratio x sampling_ratio grid of bilinear
// samples of X[batch_indices[r], c] over bin (ph, pw) of roi r, by mean or
// by max (of the four weighted corner values, as the reference does).

Expected<int64_t> samplingRatio(const NodeView& ctx) {
  int64_t ratio = ctx.attrInt("sampling_ratio", 0);
  if (ratio < 0) return ctx.error("sampling_ratio must not be negative, got " + std::to_string(ratio));
  if (ratio == 0)
    return ctx.unsupportedError(
        "sampling_ratio 0 (adaptive) takes its sample count from the run-time roi sizes; Kiln needs a fixed "
        "sampling_ratio");
  return ratio;
}

Status inferRoiAlign(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 3, 3));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "X", DTypeClass::kFloat));
  KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, 1, "rois"));
  ir::DType bi = ctx.inputType(2).dtype;
  if (bi != ir::DType::kInt64)
    return ctx.error("batch_indices has dtype " + std::string(ir::name(bi)) + ", expected int64 (input 2)");
  std::string mode = ctx.attrString("mode", "avg");
  if (mode != "avg" && mode != "max") return ctx.error("unknown mode '" + mode + "' (expected avg or max)");
  if (ctx.opset() < 16 && ctx.hasAttr("coordinate_transformation_mode"))
    return ctx.error("attribute 'coordinate_transformation_mode' needs RoiAlign at opset 16 or later");
  std::string transform = ctx.attrString("coordinate_transformation_mode", "half_pixel");
  if (transform != "half_pixel" && transform != "output_half_pixel")
    return ctx.error("unknown coordinate_transformation_mode '" + transform +
                     "' (expected half_pixel or output_half_pixel)");
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShapeOfRank(ctx, 0, "X", 4));
  KILN_ASSIGN_OR_RETURN(ir::Shape rois, inputShapeOfRank(ctx, 1, "rois", 2));
  KILN_ASSIGN_OR_RETURN(ir::Shape indices, inputShapeOfRank(ctx, 2, "batch_indices", 1));
  if (conflictingDims(rois[1], ir::Dim::known(4))) return ctx.error("rois must have shape num_rois x 4 (input 1)");
  if (conflictingDims(rois[0], indices[0]))
    return ctx.error("batch_indices " + ir::toString(indices) + " must have one value per roi (input 2)");
  int64_t oh = ctx.attrInt("output_height", 1), ow = ctx.attrInt("output_width", 1);
  if (oh < 1 || ow < 1) return ctx.error("output_height and output_width must be positive");
  KILN_RETURN_IF_ERROR(samplingRatio(ctx).status());
  ctx.setOutputType(0, {ctx.inputType(0).dtype, ir::Shape{rois[0], x[1], ir::Dim::known(oh), ir::Dim::known(ow)}});
  return Status::ok();
}

Status lowerRoiAlign(LowerContext& ctx) {
  KILN_ASSIGN_OR_RETURN(int64_t ratio, samplingRatio(ctx));
  // Opset 10 has no coordinate_transformation_mode and behaves as output_half_pixel.
  bool half_pixel = ctx.opset() >= 16 &&
                    ctx.attrString("coordinate_transformation_mode", "half_pixel") == "half_pixel";
  bool average = ctx.attrString("mode", "avg") == "avg";
  double scale = ctx.attrFloat("spatial_scale", 1.0f);
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer x = ctx.input(0);
  Buffer rois = ctx.input(1);
  Buffer batch = ctx.input(2);
  Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(y.shape(), "o");
  ir::DType ct = computeDType(x.dtype());
  int64_t height = x.dim(2), width = x.dim(3);
  double offset = half_pixel ? 0.5 : 0.0;
  auto roi = [&](int64_t k) { return toCompute(rois(axes[0], Expr::index(k))) * scale - offset; };
  Expr n = clampIndex(batch(axes[0]), x.dim(0));
  kir::IterVar iy = kb.var("iy", ratio), ix = kb.var("ix", ratio);
  // One axis of a sample: its position, and the two taps with their weights.
  struct Taps { Expr low, high, frac, invalid; };
  auto sample = [&](Expr start, Expr end, int64_t bins, const kir::IterVar& bin, const kir::IterVar& step,
                    int64_t size) {
    Expr extent = end - start;
    if (!half_pixel) extent = kir::max(extent, 1.0);
    Expr bin_size = extent / static_cast<double>(bins);
    Expr pos = start + kir::cast(ct, Expr(bin)) * bin_size +
               (kir::cast(ct, Expr(step)) + 0.5) * bin_size / static_cast<double>(ratio);
    Expr invalid = pos < Expr::constant(ct, -1) || pos > Expr::constant(ct, static_cast<double>(size));
    Expr p = kir::max(pos, 0.0);
    Expr floor = kir::unary(kir::UnaryOp::kFloor, p);
    Expr edge = floor >= Expr::constant(ct, static_cast<double>(size - 1));
    Expr low = kir::select(edge, Expr::index(size - 1), kir::cast(ir::DType::kInt64, floor));
    Expr high = kir::select(edge, Expr::index(size - 1), low + 1.0);
    Expr frac = kir::select(edge, Expr::constant(ct, 0), p - floor);
    return Taps{clampIndex(low, size), clampIndex(high, size), frac, invalid};
  };
  Taps ty = sample(roi(1), roi(3), y.dim(2), axes[2], iy, height);
  Taps tx = sample(roi(0), roi(2), y.dim(3), axes[3], ix, width);
  auto at = [&](const Expr& row, const Expr& col) { return toCompute(x.load({n, axes[1], row, col})); };
  Expr hy = 1.0 - ty.frac, hx = 1.0 - tx.frac;
  Expr v1 = hy * hx * at(ty.low, tx.low), v2 = hy * tx.frac * at(ty.low, tx.high);
  Expr v3 = ty.frac * hx * at(ty.high, tx.low), v4 = ty.frac * tx.frac * at(ty.high, tx.high);
  Expr zero = Expr::constant(ct, 0);
  Expr value;
  if (average) {
    Expr sum = kir::reduce(kir::ReduceOp::kSum, {iy, ix}, kir::select(ty.invalid || tx.invalid, zero, v1 + v2 + v3 + v4));
    value = sum / static_cast<double>(ratio * ratio);
  } else {
    Expr peak = kir::max(kir::max(v1, v2), kir::max(v3, v4));
    value = kir::reduce(kir::ReduceOp::kMax, {iy, ix}, kir::select(ty.invalid || tx.invalid, zero, peak));
  }
  kb.compute(y, axes, kir::cast(y.dtype(), value));
  return Status::ok();
}

}  // namespace

void registerSamplingOps(OpRegistry& registry) {
  registry.add(OpSchema{"", "GridSample", {16, 20},
                        {{"align_corners", Kind::kInt}, {"mode", Kind::kString}, {"padding_mode", Kind::kString}},
                        inferGridSample, lowerGridSample});
  registry.add(OpSchema{"", "RoiAlign", {10, 16},
                        {{"coordinate_transformation_mode", Kind::kString}, {"mode", Kind::kString},
                         {"output_height", Kind::kInt}, {"output_width", Kind::kInt},
                         {"sampling_ratio", Kind::kInt}, {"spatial_scale", Kind::kFloat}},
                        inferRoiAlign, lowerRoiAlign});
}

}  // namespace kiln::ops
