// Winograd's minimal filtering F(2x2, 3x3) over channels-last data, in the
// two forms the winograd-conv pass (passes/winograd_conv.cpp) writes in
// place of a 3x3, stride-1 kiln.ConvNhwc. The output is cut into 2x2 tiles;
// tile t reads the 4x4 input patch d at (2*th - pad_top, 2*tw - pad_left).
// In three steps, three kernels:
//
//   kiln.WinogradInput:   U[4a+b, t, c] = (Bt d B)[a, b]       X [N, H, W, C] -> U [16, T, C]
//   kiln.WinogradMatMul:  M[x, t, k]    = sum_c U[x, t, c] * G[x, c, k]       G [16, C, K], (G g Gt) per (c, k)
//   kiln.WinogradOutput:  Y[n, h, w, k] = (At m A)[h % 2, w % 2] (+ B[k])    M [16, T, K] -> Y [N, OH, OW, K]
//
// with T = N * ceil(OH/2) * ceil(OW/2), tiles in (n, th, tw) order. The
// point x is outermost so that the product's rows (tiles) are contiguous:
// with [T, 16, C] they were 16 * C floats apart, a multiple of 4 KiB that
// put every row of the register tile in one L1 set (measured slower).
// Banded, one kernel of the same three steps as stages, every intermediate
// indexed by (n, th) first:
//
//   kiln.WinogradConv:  X [N, H, W, C], G, bias -> Z [N, 2 * TH, 2 * TW, K]
//     U [N, TH, 4, 4, TW, C] -> M [N, TH, 4, 4, TW, K] -> Z, whole tiles
//   kiln.WinogradCrop:  Z -> Y [N, OH, OW, K], the valid rows and columns
//
// so the CPU backend runs the three stages as one stage group (codegen/cpu/
// stage_groups.h), tile row by tile row: a row's U and M are written and
// read back in L2, and only Z leaves it. Z holds whole tiles because a
// stage stores every point of its axes; the crop, a copy, fuses into the
// Relu or Concat that reads the convolution.
//
// Each step is written per element so that the c (or k) axis stays innermost and
// contiguous: the input transform is four clamped loads times signs and
// in-range masks (no select, so the channel loop vectorizes without
// branches; padding reads contribute 0 * x), the output transform nine loads
// with the tile position's signs, and the product is a plain contraction the
// CPU backend tiles. The output transform has no reduction, so fuse-kernels
// inlines it into the bias/Relu/residual consumers after it.
//
// Bt = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], At = [1 1 1 0; 0 1 -1 -1].
// Row a of Bt is sp(a) * d[p(a)] + sq(a) * d[q(a)] with p = min(a, 1),
// q = 2 + a / 3, sp = (a == 2 ? -1 : 1), sq = (a == 1 || a == 2 ? 1 : -1);
// row r of At is m[r] + s(r) * (m[r + 1] + m[r + 2]) with s = 1 - 2r.
#include <algorithm>
#include <array>
#include <functional>
#include <utility>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"
#include "compiler/ops/window.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using kir::Expr;

constexpr int64_t kTile = 2;    // output positions per tile side
constexpr int64_t kPatch = 4;   // input positions per tile side (tile + 3 - 1)
constexpr int64_t kPoints = kPatch * kPatch;

int64_t tilesAlong(int64_t size) { return (size + kTile - 1) / kTile; }

Expr fromBool(Expr condition) { return kir::cast(ir::DType::kFloat32, condition); }

// ---- kiln.WinogradInput -------------------------------------------------------

struct InputGeometry {
  int64_t n, h, w, c, out_h, out_w;
  std::vector<int64_t> pads;  // top, left, bottom, right (ONNX order)
};

Expected<InputGeometry> inputGeometry(const NodeView& ctx, const std::vector<int64_t>& x) {
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> pads, perDim(ctx, "pads", 4, 0, 0));  // top, left, bottom, right
  InputGeometry g{x[0], x[1], x[2], x[3], x[1] + pads[0] + pads[2] - 2, x[2] + pads[1] + pads[3] - 2, pads};
  if (g.out_h < 1 || g.out_w < 1)
    return ctx.error("a 3x3 window does not fit X [" + std::to_string(g.n) + ", " + std::to_string(g.h) + ", " +
                     std::to_string(g.w) + ", " + std::to_string(g.c) + "] with these pads");
  return g;
}

Status inferWinogradInput(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 1));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "X", DTypeClass::kFloat));
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShapeOfRank(ctx, 0, "X", 4));
  std::optional<std::vector<int64_t>> xd = ir::knownDims(x);
  if (!xd) return ctx.unsupportedError("WinogradInput needs a known shape, got X " + ir::toString(x));
  KILN_ASSIGN_OR_RETURN(InputGeometry g, inputGeometry(ctx, *xd));
  const int64_t tiles = g.n * tilesAlong(g.out_h) * tilesAlong(g.out_w);
  ctx.setOutputType(0, {ctx.inputType(0).dtype, ir::makeShape(std::vector<int64_t>{kPoints, tiles, g.c})});
  return Status::ok();
}

// One side of the patch: the input position of patch row `i` for tile
// position `tile`, clamped into [0, size), and 1 where it was inside, 0 where
// it was padding.
struct PatchRead {
  Expr position;
  Expr inside;
};

PatchRead patchRead(Expr tile, Expr i, int64_t pad, int64_t size) {
  Expr at = tile * Expr::index(kTile) + i - Expr::index(pad);
  Expr inside = fromBool(at >= Expr::index(0) && at < Expr::index(size));
  return {kir::max(kir::min(at, Expr::index(size - 1)), Expr::index(0)), inside};
}

// (Bt d B)[a, b] of the patch of tile (th, tw) of image n, channel c.
Expr inputTransform(const LowerContext::Buffer& x, const InputGeometry& g, Expr n, Expr th, Expr tw, Expr a, Expr b,
                    Expr c) {
  // Bt's row as its two taps: patch position and sign.
  auto taps = [](Expr row) {
    Expr p = kir::min(row, Expr::index(1));
    Expr q = Expr::index(2) + row / Expr::index(3);
    Expr sp = 1.0f - 2.0f * fromBool(kir::eq(row, Expr::index(2)));
    Expr sq = 2.0f * fromBool(kir::eq(row, Expr::index(1)) || kir::eq(row, Expr::index(2))) - 1.0f;
    return std::pair<std::array<Expr, 2>, std::array<Expr, 2>>{{p, q}, {sp, sq}};
  };
  auto [rows, row_signs] = taps(a);
  auto [cols, col_signs] = taps(b);
  Expr value;
  for (int i = 0; i < 2; ++i) {
    PatchRead r = patchRead(th, rows[i], g.pads[0], g.h);
    for (int j = 0; j < 2; ++j) {
      PatchRead s = patchRead(tw, cols[j], g.pads[1], g.w);
      // A scalar per (tile, a, b): the channel loop only loads and multiplies.
      Expr weight = row_signs[i] * col_signs[j] * r.inside * s.inside;
      Expr term = weight * toCompute(x(n, r.position, s.position, c));
      value = value.valid() ? value + term : term;
    }
  }
  return value;
}

// (At m A)[r, s] of one tile, `at(i, j)` loading m[i, j].
Expr outputTransform(const std::function<Expr(int64_t, int64_t)>& at, Expr r, Expr s) {
  Expr sign_r = 1.0f - 2.0f * kir::cast(ir::DType::kFloat32, r);
  Expr sign_s = 1.0f - 2.0f * kir::cast(ir::DType::kFloat32, s);
  // At's row s applied along the columns, then row r along the rows.
  auto row = [&](int64_t i) { return at(i, 0) + sign_s * (at(i, 1) + at(i, 2)); };
  return row(0) + sign_r * (row(1) + row(2));
}

Status lowerWinogradInput(LowerContext& ctx) {
  KILN_ASSIGN_OR_RETURN(InputGeometry g, inputGeometry(ctx, ctx.inputDims(0)));
  const int64_t th = tilesAlong(g.out_h), tw = tilesAlong(g.out_w);
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(0);
  LowerContext::Buffer u = ctx.output(0, {kPatch, kPatch, g.n, th, tw, g.c});
  // Loops over the tiles outside the patch points, so each tile's patch is
  // read from L1 for all 16 points; stored point-major.
  std::vector<kir::IterVar> axes = kb.vars({g.n, th, tw, kPatch, kPatch, g.c}, "u");
  Expr n = axes[0], a = axes[3], b = axes[4], c = axes[5];
  Expr value = inputTransform(x, g, n, axes[1], axes[2], a, b, c);
  kb.computeAt(u, axes, {a, b, n, axes[1], axes[2], c}, kir::cast(u.dtype(), value));
  return Status::ok();
}

// ---- kiln.WinogradMatMul ------------------------------------------------------

Status inferWinogradMatMul(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 2, 2));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "U", DTypeClass::kFloat));
  KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, 1, "G"));
  KILN_ASSIGN_OR_RETURN(ir::Shape u, inputShapeOfRank(ctx, 0, "U", 3));
  KILN_ASSIGN_OR_RETURN(ir::Shape w, inputShapeOfRank(ctx, 1, "G", 3));
  std::optional<std::vector<int64_t>> ud = ir::knownDims(u), wd = ir::knownDims(w);
  if (!ud || !wd || (*ud)[0] != kPoints || (*wd)[0] != kPoints || (*ud)[2] != (*wd)[1])
    return ctx.error("expected U [16, T, C] and G [16, C, K], got " + ir::toString(u) + " and " + ir::toString(w));
  ctx.setOutputType(0, {ctx.inputType(0).dtype, ir::makeShape(std::vector<int64_t>{kPoints, (*ud)[1], (*wd)[2]})});
  return Status::ok();
}

Status lowerWinogradMatMul(LowerContext& ctx) {
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer u = ctx.input(0);
  LowerContext::Buffer w = ctx.input(1);
  LowerContext::Buffer m = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(m.shape(), "m");
  kir::IterVar c = kb.var("c", u.dim(2));
  Expr product = toCompute(u(axes[0], axes[1], c)) * toCompute(w(axes[0], c, axes[2]));
  kb.compute(m, axes, kir::cast(m.dtype(), kir::reduce(kir::ReduceOp::kSum, {c}, product)));
  return Status::ok();
}

// ---- kiln.WinogradOutput ------------------------------------------------------

Expected<std::vector<int64_t>> outputShapeAttr(const NodeView& ctx) {
  std::vector<int64_t> shape = ctx.attrInts("output_shape");
  if (shape.size() != 3 || std::any_of(shape.begin(), shape.end(), [](int64_t d) { return d < 1; }))
    return ctx.error("output_shape must be 3 positive values (N, OH, OW)");
  return shape;
}

Status inferWinogradOutput(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 2));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "M", DTypeClass::kFloat));
  KILN_ASSIGN_OR_RETURN(ir::Shape m, inputShapeOfRank(ctx, 0, "M", 3));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> out, outputShapeAttr(ctx));
  std::optional<std::vector<int64_t>> md = ir::knownDims(m);
  const int64_t tiles = out[0] * tilesAlong(out[1]) * tilesAlong(out[2]);
  if (!md || (*md)[0] != kPoints || (*md)[1] != tiles)
    return ctx.error("M " + ir::toString(m) + " does not hold the 2x2 tiles of output_shape [" +
                     std::to_string(out[0]) + ", " + std::to_string(out[1]) + ", " + std::to_string(out[2]) +
                     "]: expected [16, " + std::to_string(tiles) + ", K]");
  if (ctx.hasInput(1)) KILN_RETURN_IF_ERROR(expectBias(ctx, 1, (*md)[2]));
  ctx.setOutputType(0, {ctx.inputType(0).dtype, ir::makeShape(std::vector<int64_t>{out[0], out[1], out[2], (*md)[2]})});
  return Status::ok();
}

Status lowerWinogradOutput(LowerContext& ctx) {
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> out, outputShapeAttr(ctx));
  const int64_t k_extent = ctx.inputDims(0)[2];
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer m = ctx.input(0, {kPatch, kPatch, out[0], tilesAlong(out[1]), tilesAlong(out[2]), k_extent});
  LowerContext::Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(y.shape(), "y");
  Expr n = axes[0], h = axes[1], w = axes[2], k = axes[3];
  Expr tile_h = h / Expr::index(kTile), r = h % Expr::index(kTile);
  Expr tile_w = w / Expr::index(kTile), s = w % Expr::index(kTile);
  Expr value = outputTransform(
      [&](int64_t i, int64_t j) { return toCompute(m(r + Expr::index(i), s + Expr::index(j), n, tile_h, tile_w, k)); },
      r, s);
  if (ctx.hasInput(1)) value = value + toCompute(ctx.input(1)(k));
  kb.compute(y, axes, kir::cast(y.dtype(), value));
  return Status::ok();
}

// ---- kiln.WinogradConv --------------------------------------------------------

Status inferWinogradConv(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 2, 3));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "X", DTypeClass::kFloat));
  KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, 1, "G"));
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShapeOfRank(ctx, 0, "X", 4));
  KILN_ASSIGN_OR_RETURN(ir::Shape w, inputShapeOfRank(ctx, 1, "G", 3));
  std::optional<std::vector<int64_t>> xd = ir::knownDims(x), wd = ir::knownDims(w);
  if (!xd || !wd) return ctx.unsupportedError("WinogradConv needs known shapes, got X " + ir::toString(x));
  if ((*wd)[0] != kPoints || (*wd)[1] != (*xd)[3])
    return ctx.error("expected G [16, " + std::to_string((*xd)[3]) + ", K], got " + ir::toString(w));
  KILN_ASSIGN_OR_RETURN(InputGeometry g, inputGeometry(ctx, *xd));
  if (ctx.hasInput(2)) KILN_RETURN_IF_ERROR(expectBias(ctx, 2, (*wd)[2]));
  ctx.setOutputType(
      0, {ctx.inputType(0).dtype, ir::makeShape(std::vector<int64_t>{g.n, kTile * tilesAlong(g.out_h),
                                                                     kTile * tilesAlong(g.out_w), (*wd)[2]})});
  return Status::ok();
}

Status lowerWinogradConv(LowerContext& ctx) {
  KILN_ASSIGN_OR_RETURN(InputGeometry g, inputGeometry(ctx, ctx.inputDims(0)));
  const int64_t th = tilesAlong(g.out_h), tw = tilesAlong(g.out_w), k_extent = ctx.inputDims(1)[2];
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(0);
  LowerContext::Buffer weight = ctx.input(1, {kPatch, kPatch, g.c, k_extent});
  LowerContext::Buffer z = ctx.output(0, {g.n, th, kTile, tw, kTile, k_extent});
  const ir::DType dtype = computeDType(x.dtype());
  // Indexed by (n, th) first: the stages group by tile row (stage_groups.h),
  // so each row's U and M stay in cache between the three steps.
  LowerContext::Buffer u = ctx.temp("u", dtype, {g.n, th, kPatch, kPatch, tw, g.c});
  LowerContext::Buffer m = ctx.temp("m", dtype, {g.n, th, kPatch, kPatch, tw, k_extent});
  {  // U: each tile's patch read once for its 16 points
    std::vector<kir::IterVar> a = kb.vars({g.n, th, tw, kPatch, kPatch, g.c}, "u");
    kb.computeAt(u, a, {a[0], a[1], a[3], a[4], a[2], a[5]}, inputTransform(x, g, a[0], a[1], a[2], a[3], a[4], a[5]));
  }
  {  // M: per point, tiles by filters
    std::vector<kir::IterVar> a = kb.vars(m.shape(), "m");
    kir::IterVar c = kb.var("c", g.c);
    Expr product = u(a[0], a[1], a[2], a[3], a[4], c) * toCompute(weight(a[2], a[3], c, a[5]));
    kb.compute(m, a, kir::reduce(kir::ReduceOp::kSum, {c}, product));
  }
  {  // Z: every tile's 2x2 outputs, the bias added
    std::vector<kir::IterVar> a = kb.vars(z.shape(), "z");
    Expr n = a[0], tile_h = a[1], r = a[2], tile_w = a[3], s = a[4], k = a[5];
    Expr value = outputTransform(
        [&](int64_t i, int64_t j) { return m(n, tile_h, r + Expr::index(i), s + Expr::index(j), tile_w, k); }, r, s);
    if (ctx.hasInput(2)) value = value + toCompute(ctx.input(2)(k));
    kb.compute(z, a, kir::cast(z.dtype(), value));
  }
  return Status::ok();
}

// ---- kiln.WinogradCrop --------------------------------------------------------

Status inferWinogradCrop(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 1));
  KILN_ASSIGN_OR_RETURN(ir::Shape z, inputShapeOfRank(ctx, 0, "Z", 4));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> out, outputShapeAttr(ctx));
  std::optional<std::vector<int64_t>> zd = ir::knownDims(z);
  if (!zd || (*zd)[0] != out[0] || (*zd)[1] < out[1] || (*zd)[2] < out[2])
    return ctx.error("Z " + ir::toString(z) + " does not hold output_shape [" + std::to_string(out[0]) + ", " +
                     std::to_string(out[1]) + ", " + std::to_string(out[2]) + "]");
  ctx.setOutputType(0, {ctx.inputType(0).dtype, ir::makeShape(std::vector<int64_t>{out[0], out[1], out[2], (*zd)[3]})});
  return Status::ok();
}

Status lowerWinogradCrop(LowerContext& ctx) {
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer z = ctx.input(0);
  LowerContext::Buffer y = ctx.output(0);
  std::vector<kir::IterVar> a = kb.vars(y.shape(), "y");
  kb.compute(y, a, z(a[0], a[1], a[2], a[3]));
  return Status::ok();
}

}  // namespace

void registerWinogradOps(OpRegistry& registry) {
  registry.add(OpSchema{kKilnDomain, "WinogradInput", {1}, {{"pads", Kind::kInts}}, inferWinogradInput,
                        lowerWinogradInput});
  registry.add(OpSchema{kKilnDomain, "WinogradMatMul", {1}, {}, inferWinogradMatMul, lowerWinogradMatMul});
  registry.add(OpSchema{kKilnDomain, "WinogradOutput", {1}, {{"output_shape", Kind::kInts, true}},
                        inferWinogradOutput, lowerWinogradOutput});
  registry.add(
      OpSchema{kKilnDomain, "WinogradConv", {1}, {{"pads", Kind::kInts}}, inferWinogradConv, lowerWinogradConv});
  registry.add(OpSchema{
      kKilnDomain, "WinogradCrop", {1}, {{"output_shape", Kind::kInts, true}}, inferWinogradCrop, lowerWinogradCrop});
}

}  // namespace kiln::ops
