// Conv, 1-D to 3-D, grouped: one output element is
//   Y[n, m, o...] = B[m] + sum_{c, r...} X[n, g*C/group + c, o*s + r*d - pad...] * W[m, c, r...]
// where g = m / (M/group) is the group of output channel m, and reads outside
// X are zero.
#include <algorithm>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"
#include "compiler/ops/window.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using kir::Expr;

// kernel_shape may be omitted: it is W's spatial dims. When given it must agree.
Expected<std::vector<int64_t>> kernelShape(const NodeView& ctx, const ir::Shape& w) {
  std::vector<int64_t> from_weight = spatialSizes(w);
  if (!ctx.hasAttr("kernel_shape")) {
    for (int64_t k : from_weight)
      if (k < 0) return ctx.unsupportedError("weight " + ir::toString(w) + " has unknown spatial dims (input 1)");
    return from_weight;
  }
  std::vector<int64_t> kernel = ctx.attrInts("kernel_shape");
  for (size_t i = 0; i < kernel.size() && kernel.size() == from_weight.size(); ++i)
    if (from_weight[i] >= 0 && from_weight[i] != kernel[i])
      return ctx.error("kernel_shape does not match weight " + ir::toString(w) + " (input 1)");
  if (kernel.size() != from_weight.size())
    return ctx.error("kernel_shape has " + std::to_string(kernel.size()) + " values, expected " +
                     std::to_string(from_weight.size()));
  return kernel;
}

Status checkChannels(const NodeView& ctx, const ir::Shape& x, const ir::Shape& w, int64_t group) {
  if (group < 1) return ctx.error("group " + std::to_string(group) + " must be positive");
  const ir::Dim& channels = x[1];
  const ir::Dim& filters = w[0];
  if (channels.isKnown() && channels.value % group != 0)
    return ctx.error("input channels " + std::to_string(channels.value) + " are not divisible by group " +
                     std::to_string(group));
  if (filters.isKnown() && filters.value % group != 0)
    return ctx.error("output channels " + std::to_string(filters.value) + " (weight dim 0) are not divisible by group " +
                     std::to_string(group));
  if (channels.isKnown() && w[1].isKnown() && channels.value / group != w[1].value)
    return ctx.error("weight " + ir::toString(w) + " expects " + std::to_string(w[1].value * group) +
                     " input channels, X " + ir::toString(x) + " has " + std::to_string(channels.value));
  return Status::ok();
}

Status checkBias(const NodeView& ctx, const ir::Shape& w) {
  if (!ctx.hasInput(2)) return Status::ok();
  KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, 2, "bias"));
  KILN_ASSIGN_OR_RETURN(ir::Shape b, inputShapeOfRank(ctx, 2, "bias", 1));
  if (conflictingDims(b[0], w[0]))
    return ctx.error("bias has " + std::to_string(b[0].value) + " elements, expected " +
                     std::to_string(w[0].value) + " (input 2)");
  return Status::ok();
}

Status inferConv(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 2, 3));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "X", DTypeClass::kFloat));
  KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, 1, "weight"));
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShapeOfMinRank(ctx, 0, "X", 3));
  if (x.size() > 5) return ctx.unsupportedError("X has rank " + std::to_string(x.size()) + "; Kiln supports 1-D to 3-D Conv");
  KILN_ASSIGN_OR_RETURN(ir::Shape w, inputShapeOfRank(ctx, 1, "weight", x.size()));
  KILN_RETURN_IF_ERROR(checkChannels(ctx, x, w, ctx.attrInt("group", 1)));
  KILN_RETURN_IF_ERROR(checkBias(ctx, w));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> kernel, kernelShape(ctx, w));
  KILN_ASSIGN_OR_RETURN(Window window, resolveWindow(ctx, spatialSizes(x), kernel, false));
  ir::Shape out = {x[0], w[0]};
  for (int64_t size : window.out) out.push_back(size < 0 ? ir::Dim{} : ir::Dim::known(size));
  ctx.setOutputType(0, {ctx.inputType(0).dtype, out});
  return Status::ok();
}

Status lowerConv(LowerContext& ctx) {
  std::vector<int64_t> x_dims = ctx.inputDims(0);
  std::vector<int64_t> w_dims = ctx.inputDims(1);
  std::vector<int64_t> in_sizes(x_dims.begin() + 2, x_dims.end());
  std::vector<int64_t> kernel(w_dims.begin() + 2, w_dims.end());
  KILN_ASSIGN_OR_RETURN(Window window, resolveWindow(ctx, in_sizes, kernel, false));
  int64_t group = ctx.attrInt("group", 1);
  int64_t filters_per_group = w_dims[0] / group;

  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(0);
  LowerContext::Buffer w = ctx.input(1);
  LowerContext::Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(y.shape(), "o");
  kir::IterVar c = kb.var("c", w_dims[1]);
  std::vector<kir::IterVar> offsets = kb.vars(kernel, "r");

  Expr n = axes[0];
  Expr m = axes[1];
  Expr channel = group == 1 ? Expr(c) : m / Expr::index(filters_per_group) * Expr::index(w_dims[1]) + c;
  std::vector<Expr> positions;
  for (size_t i = 0; i < window.rank(); ++i) positions.push_back(inputPosition(window, i, axes[2 + i], offsets[i]));
  std::vector<Expr> x_index = {n, channel};
  std::vector<Expr> w_index = {m, c};
  x_index.insert(x_index.end(), positions.begin(), positions.end());
  w_index.insert(w_index.end(), offsets.begin(), offsets.end());

  Expr x_elem = toCompute(x.load(x_index));
  if (std::optional<Expr> inside = insideInput(window, positions, in_sizes))
    x_elem = kir::select(*inside, x_elem, Expr::constant(x_elem.dtype(), 0));
  std::vector<kir::IterVar> reduced = {c};
  reduced.insert(reduced.end(), offsets.begin(), offsets.end());
  Expr value = kir::reduce(kir::ReduceOp::kSum, reduced, x_elem * toCompute(w.load(w_index)));
  if (ctx.hasInput(2)) {
    LowerContext::Buffer bias = ctx.input(2);
    value = value + toCompute(bias(m));
  }
  kb.compute(y, axes, kir::cast(y.dtype(), value));
  return Status::ok();
}

// kiln.ConvNhwc: a 2-D Conv over channels-last data, written by the
// channels-last pass (passes/channels_last.cpp) for the CPU backend:
//   Y[n, h, w, m] = B[m] + sum_{r0, r1, c} X[n, h*s0 + r0*d0 - p0, w*s1 + r1*d1 - p1, g*C/group + c] * W[r0, r1, c, m]
// X is [N, H, W, C], W [KH, KW, C/group, M] (HWIO), Y [N, OH, OW, M]. With the
// output channel innermost in Y and in W, the contraction's vector axis is m
// and W is packed into panels like a MatMul's weight; X is broadcast, one row
// of the register tile per output column. Depthwise (group == C == M) reads X
// and W both as vectors along the channel. Other groups split the output
// channel into (group, filter) axes, every index affine in them.
Status inferConvNhwc(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 2, 3));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "X", DTypeClass::kFloat));
  KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, 1, "weight"));
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShapeOfRank(ctx, 0, "X", 4));
  KILN_ASSIGN_OR_RETURN(ir::Shape w, inputShapeOfRank(ctx, 1, "weight", 4));
  std::optional<std::vector<int64_t>> xd = ir::knownDims(x), wd = ir::knownDims(w);
  if (!xd || !wd) return ctx.unsupportedError("ConvNhwc needs known shapes, got X " + ir::toString(x) + " and weight " + ir::toString(w));
  const int64_t group = ctx.attrInt("group", 1);
  if (group < 1 || (*xd)[3] % group != 0 || (*wd)[3] % group != 0 || (*xd)[3] / group != (*wd)[2])
    return ctx.error("weight " + ir::toString(w) + " (HWIO) and group " + std::to_string(group) +
                     " do not fit X " + ir::toString(x) + " (NHWC)");
  if (ctx.hasInput(2)) KILN_RETURN_IF_ERROR(expectBias(ctx, 2, (*wd)[3]));
  const std::vector<int64_t> in = {(*xd)[1], (*xd)[2]};
  KILN_ASSIGN_OR_RETURN(Window window, resolveWindow(ctx, in, {(*wd)[0], (*wd)[1]}, false));
  ir::Shape out = {x[0], ir::Dim::known(window.out[0]), ir::Dim::known(window.out[1]), w[3]};
  ctx.setOutputType(0, {ctx.inputType(0).dtype, out});
  return Status::ok();
}

// A convolution over few input channels (a network's stem: 3), unpadded,
// group 1, dilation 1 along the width: a window's row of KW pixels is KW * C
// contiguous floats of X, and of the HWIO weight. Reduced over (kh, kw * C + c)
// as one variable, with X viewed [N, H, W * C] and W [KH, KW * C, M], the
// innermost reduction variable runs KW * C values (21 for a 7x7 stem)
// instead of C (3).
bool rowsAreContiguous(const Window& window, const std::vector<int64_t>& w_dims, int64_t group) {
  auto zero = [](const std::vector<int64_t>& pads) {
    return std::all_of(pads.begin(), pads.end(), [](int64_t p) { return p == 0; });
  };
  return group == 1 && zero(window.pads_begin) && zero(window.pads_end) && window.dilations[1] == 1 &&
         w_dims[2] <= kMaxContiguousRowChannels && w_dims[1] > 1;
}

Status lowerConvNhwcRows(LowerContext& ctx, const Window& window) {
  const std::vector<int64_t> x_dims = ctx.inputDims(0), w_dims = ctx.inputDims(1);
  const int64_t channels = x_dims[3], row = w_dims[1] * w_dims[2];
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(0, {x_dims[0], x_dims[1], x_dims[2] * channels});
  LowerContext::Buffer w = ctx.input(1, {w_dims[0], row, w_dims[3]});
  LowerContext::Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(y.shape(), "o");
  kir::IterVar kh = kb.var("r", w_dims[0]);
  kir::IterVar kwc = kb.var("rc", row);
  Expr h = axes[1] * Expr::index(window.strides[0]) + Expr(kh) * Expr::index(window.dilations[0]);
  Expr at = axes[2] * Expr::index(window.strides[1] * channels) + kwc;
  Expr value = kir::reduce(kir::ReduceOp::kSum, {kh, kwc},
                           toCompute(x(axes[0], h, at)) * toCompute(w(Expr(kh), Expr(kwc), axes[3])));
  if (ctx.hasInput(2)) value = value + toCompute(ctx.input(2)(axes[3]));
  kb.compute(y, axes, kir::cast(y.dtype(), value));
  return Status::ok();
}

Status lowerConvNhwc(LowerContext& ctx) {
  std::vector<int64_t> x_dims = ctx.inputDims(0);
  std::vector<int64_t> w_dims = ctx.inputDims(1);
  const std::vector<int64_t> in_sizes = {x_dims[1], x_dims[2]};
  KILN_ASSIGN_OR_RETURN(Window window, resolveWindow(ctx, in_sizes, {w_dims[0], w_dims[1]}, false));
  const int64_t group = ctx.attrInt("group", 1);
  const int64_t filters_per_group = w_dims[3] / group;

  if (rowsAreContiguous(window, w_dims, group)) return lowerConvNhwcRows(ctx, window);
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(0);
  LowerContext::Buffer w = ctx.input(1);
  LowerContext::Buffer y = ctx.output(0);
  // Y is indexed [n, h, w, m] even for a pointwise convolution, which is a
  // MatMul over the pixels: as [N, H*W, M] its tiles would run across image
  // rows, but the elementwise kernels after it read Y in four dims and fuse
  // into it as its epilogue only when it writes in those same axes.
  std::vector<kir::IterVar> axes = kb.vars(y.shape(), "o");
  // A 1x1 kernel reduces over the channel alone (one reduction variable: a
  // packed plan that can take the bf16 dot product).
  const bool pointwise = w_dims[0] == 1 && w_dims[1] == 1;
  std::vector<kir::IterVar> offsets = pointwise ? std::vector<kir::IterVar>{} : kb.vars({w_dims[0], w_dims[1]}, "r");
  std::vector<Expr> offset_exprs = {Expr::index(0), Expr::index(0)};
  if (!pointwise) offset_exprs = {offsets[0], offsets[1]};
  kir::IterVar c = kb.var("c", w_dims[2]);
  std::vector<kir::IterVar> reduce_vars = offsets;
  reduce_vars.push_back(c);
  // Grouped (neither group 1 nor depthwise): the output channel split into
  // (group, filter in group) axes, so that every index is affine: X's
  // channel is g * C/group + c and Y's and W's g * M/group + k.
  const bool split = group > 1 && !(w_dims[2] == 1 && filters_per_group == 1);
  if (split) {
    axes.pop_back();
    axes.push_back(kb.var("g", group));
    axes.push_back(kb.var("k", filters_per_group));
  }
  Expr m = split ? axes[3] * Expr::index(filters_per_group) + axes[4] : Expr(axes[3]);
  Expr channel = group == 1 ? Expr(c)
                 : split    ? axes[3] * Expr::index(w_dims[2]) + c
                            : m / Expr::index(filters_per_group) * Expr::index(w_dims[2]) + c;
  std::vector<Expr> positions = {inputPosition(window, 0, axes[1], offset_exprs[0]),
                                 inputPosition(window, 1, axes[2], offset_exprs[1])};
  Expr x_elem = toCompute(x.load({axes[0], positions[0], positions[1], channel}));
  if (std::optional<Expr> inside = insideInput(window, positions, in_sizes))
    x_elem = kir::select(*inside, x_elem, Expr::constant(x_elem.dtype(), 0));
  Expr value = kir::reduce(kir::ReduceOp::kSum, reduce_vars,
                           x_elem * toCompute(w.load({offset_exprs[0], offset_exprs[1], c, m})));
  if (ctx.hasInput(2)) value = value + toCompute(ctx.input(2)(m));
  if (split)
    kb.computeAt(y, axes, {axes[0], axes[1], axes[2], m}, kir::cast(y.dtype(), value));
  else
    kb.compute(y, axes, kir::cast(y.dtype(), value));
  return Status::ok();
}

// ---- kiln.PadNhwc --------------------------------------------------------------
// X [N, H, W, C] with `pads` (top, left, bottom, right) rows and columns of
// zeros around it: the explicit padding of a stem convolution (see
// rowsAreContiguous), written by the channels-last pass.

Status inferPadNhwc(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 1));
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShapeOfRank(ctx, 0, "X", 4));
  std::optional<std::vector<int64_t>> xd = ir::knownDims(x);
  if (!xd) return ctx.unsupportedError("PadNhwc needs a known shape, got X " + ir::toString(x));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> pads, perDim(ctx, "pads", 4, 0, 0));
  const std::vector<int64_t> out = {(*xd)[0], (*xd)[1] + pads[0] + pads[2], (*xd)[2] + pads[1] + pads[3], (*xd)[3]};
  ctx.setOutputType(0, {ctx.inputType(0).dtype, ir::makeShape(out)});
  return Status::ok();
}

Status lowerPadNhwc(LowerContext& ctx) {
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> pads, perDim(ctx, "pads", 4, 0, 0));
  const std::vector<int64_t> x_dims = ctx.inputDims(0);
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(0);
  LowerContext::Buffer y = ctx.output(0);
  std::vector<kir::IterVar> a = kb.vars(y.shape(), "p");
  Expr h = a[1] - Expr::index(pads[0]), w = a[2] - Expr::index(pads[1]);
  Expr inside = h >= Expr::index(0) && h < Expr::index(x_dims[1]) && w >= Expr::index(0) && w < Expr::index(x_dims[2]);
  Expr value = x(a[0], h, w, a[3]);
  kb.compute(y, a, kir::select(inside, value, Expr::constant(value.dtype(), 0)));
  return Status::ok();
}

}  // namespace

void registerConvOps(OpRegistry& registry) {
  const std::vector<AttrSpec> attributes = {{"auto_pad", Kind::kString}, {"dilations", Kind::kInts},
                                            {"group", Kind::kInt},       {"kernel_shape", Kind::kInts},
                                            {"pads", Kind::kInts},       {"strides", Kind::kInts}};
  registry.add(OpSchema{kKilnDomain, "ConvNhwc", {1}, attributes, inferConvNhwc, lowerConvNhwc});
  registry.add(OpSchema{kKilnDomain, "PadNhwc", {1}, {{"pads", Kind::kInts, true}}, inferPadNhwc, lowerPadNhwc});
  registry.add(OpSchema{"", "Conv", {1, 11}, attributes, inferConv, lowerConv});
}

}  // namespace kiln::ops
