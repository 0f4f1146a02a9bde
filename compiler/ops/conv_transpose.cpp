// ConvTranspose, 1-D to 3-D, grouped (versions 1 and 11). W is
// [C_in, C_out/group, k...]; one output element is
//   Y[n, m, y...] = B[m] + sum_{c, k...} X[n, g*C_in/group + c, (y + pad - k*d) / s ...]
//                                        * W[g*C_in/group + c, m % (C_out/group), k...]
// over the kernel offsets k where every (y + pad - k*d) is a multiple of the
// stride s whose quotient lies inside X; g = m / (C_out/group).
//
// Geometry (per spatial dim, as the ONNX reference implementation): the full
// output has s*(in-1) + output_padding + (K-1)*d + 1 positions. output_shape,
// when given, overrides pads: total = full - output_shape is split with the odd
// one at the end for SAME_UPPER, at the beginning otherwise (floor division, so
// a negative total makes the output reach past the full one, where it is zero
// plus bias). SAME_UPPER/SAME_LOWER without output_shape aim at in*s; VALID is
// no padding; NOTSET uses pads.
#include <algorithm>
#include <optional>
#include <string>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"
#include "compiler/ops/window.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using kir::Expr;

struct Geometry {
  std::vector<int64_t> kernel;
  std::vector<int64_t> strides;
  std::vector<int64_t> dilations;
  std::vector<int64_t> pads_begin;  // may be negative when output_shape is larger than the full output
  std::vector<int64_t> out;         // -1 where the input size is unknown
};

int64_t floorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0)) ? 1 : 0); }


// kernel_shape may be omitted: it is W's spatial dims. When given it must agree.
Expected<std::vector<int64_t>> kernelShape(const NodeView& node, const ir::Shape& w) {
  std::vector<int64_t> from_weight = spatialSizes(w);
  if (!node.hasAttr("kernel_shape")) {
    for (int64_t k : from_weight)
      if (k < 0) return node.unsupportedError("weight " + ir::toString(w) + " has unknown spatial dims (input 1)");
    return from_weight;
  }
  std::vector<int64_t> kernel = node.attrInts("kernel_shape");
  if (kernel.size() != from_weight.size())
    return node.error("kernel_shape has " + std::to_string(kernel.size()) + " values, expected " +
                      std::to_string(from_weight.size()));
  for (size_t i = 0; i < kernel.size(); ++i) {
    if (from_weight[i] >= 0 && from_weight[i] != kernel[i])
      return node.error("kernel_shape does not match weight " + ir::toString(w) + " (input 1)");
    if (kernel[i] < 1) return node.error("kernel size " + std::to_string(kernel[i]) + " must be positive");
  }
  return kernel;
}

Expected<Geometry> resolveGeometry(const NodeView& node, std::span<const int64_t> in, std::vector<int64_t> kernel) {
  Geometry g;
  size_t n = kernel.size();
  g.kernel = std::move(kernel);
  KILN_ASSIGN_OR_RETURN(g.strides, perDim(node, "strides", n, 1, 1));
  KILN_ASSIGN_OR_RETURN(g.dilations, perDim(node, "dilations", n, 1, 1));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> output_padding, perDim(node, "output_padding", n, 0, 0));
  for (size_t i = 0; i < n; ++i)
    if (output_padding[i] >= std::max(g.strides[i], g.dilations[i]))
      return node.error("output_padding " + std::to_string(output_padding[i]) + " of spatial dim " + std::to_string(i) +
                        " must be smaller than its stride or dilation");
  std::string auto_pad = node.attrString("auto_pad", "NOTSET");
  bool same_upper = auto_pad == "SAME_UPPER";
  bool same = same_upper || auto_pad == "SAME_LOWER";
  if (!same && auto_pad != "NOTSET" && auto_pad != "VALID")
    return node.error("auto_pad '" + auto_pad + "' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID");

  std::vector<int64_t> target;  // requested output sizes, empty when none
  if (node.hasAttr("output_shape")) {
    target = node.attrInts("output_shape");
    if (target.size() == n + 2) target.erase(target.begin(), target.begin() + 2);  // N and C listed too
    if (target.size() != n)
      return node.error("output_shape has " + std::to_string(target.size()) + " values, expected " + std::to_string(n) +
                        " (one per spatial dim)");
    for (int64_t t : target)
      if (t < 1) return node.error("output_shape value " + std::to_string(t) + " must be positive");
  }
  // pads count only without output_shape and auto_pad; they are still validated.
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> pads, perDim(node, "pads", 2 * n, 0, 0));
  if (!target.empty() || auto_pad != "NOTSET") pads.assign(2 * n, 0);

  for (size_t i = 0; i < n; ++i) {
    if (in[i] < 0) {
      g.pads_begin.push_back(0);
      g.out.push_back(-1);
      continue;
    }
    int64_t full = g.strides[i] * (in[i] - 1) + output_padding[i] + (g.kernel[i] - 1) * g.dilations[i] + 1;
    if (!target.empty() || same) {
      int64_t wanted = target.empty() ? in[i] * g.strides[i] : target[i];
      int64_t total = full - wanted;
      g.pads_begin.push_back(same_upper ? floorDiv(total, 2) : total - floorDiv(total, 2));
      g.out.push_back(wanted);
      continue;
    }
    int64_t out = full - pads[i] - pads[n + i];
    if (out < 1)
      return node.error("spatial dim " + std::to_string(i) + " has no output positions: pads " +
                        std::to_string(pads[i]) + "+" + std::to_string(pads[n + i]) + " remove all " +
                        std::to_string(full));
    g.pads_begin.push_back(pads[i]);
    g.out.push_back(out);
  }
  return g;
}

Status inferConvTranspose(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 2, 3));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "X", DTypeClass::kFloat));
  KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, 1, "weight"));
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShapeOfMinRank(ctx, 0, "X", 3));
  if (x.size() > 5)
    return ctx.unsupportedError("X has rank " + std::to_string(x.size()) + "; Kiln supports 1-D to 3-D ConvTranspose");
  KILN_ASSIGN_OR_RETURN(ir::Shape w, inputShapeOfRank(ctx, 1, "weight", x.size()));
  int64_t group = ctx.attrInt("group", 1);
  if (group < 1) return ctx.error("group " + std::to_string(group) + " must be positive");
  if (x[1].isKnown() && x[1].value % group != 0)
    return ctx.error("input channels " + std::to_string(x[1].value) + " are not divisible by group " +
                     std::to_string(group));
  if (conflictingDims(x[1], w[0]))
    return ctx.error("weight " + ir::toString(w) + " expects " + std::to_string(w[0].value) + " input channels, X " +
                     ir::toString(x) + " has " + std::to_string(x[1].value) + " (input 1)");
  ir::Dim channels = w[1].isKnown() ? ir::Dim::known(w[1].value * group) : ir::Dim{};
  if (ctx.hasInput(2)) {
    KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, 2, "bias"));
    KILN_ASSIGN_OR_RETURN(ir::Shape b, inputShapeOfRank(ctx, 2, "bias", 1));
    if (conflictingDims(b[0], channels))
      return ctx.error("bias has " + std::to_string(b[0].value) + " elements, expected " +
                       std::to_string(channels.value) + " (input 2)");
  }
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> kernel, kernelShape(ctx, w));
  KILN_ASSIGN_OR_RETURN(Geometry geometry, resolveGeometry(ctx, spatialSizes(x), kernel));
  ir::Shape out = {x[0], channels};
  for (int64_t size : geometry.out) out.push_back(size < 0 ? ir::Dim{} : ir::Dim::known(size));
  ctx.setOutputType(0, {ctx.inputType(0).dtype, out});
  return Status::ok();
}

Status lowerConvTranspose(LowerContext& ctx) {
  std::vector<int64_t> x_dims = ctx.inputDims(0);
  std::vector<int64_t> w_dims = ctx.inputDims(1);
  std::vector<int64_t> in_sizes(x_dims.begin() + 2, x_dims.end());
  std::vector<int64_t> kernel(w_dims.begin() + 2, w_dims.end());
  KILN_ASSIGN_OR_RETURN(Geometry geometry, resolveGeometry(ctx, in_sizes, kernel));
  int64_t group = ctx.attrInt("group", 1);
  int64_t in_per_group = w_dims[0] / group;
  int64_t out_per_group = w_dims[1];

  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(0);
  LowerContext::Buffer w = ctx.input(1);
  LowerContext::Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(y.shape(), "o");
  kir::IterVar c = kb.var("c", in_per_group);
  std::vector<kir::IterVar> offsets = kb.vars(kernel, "k");

  Expr n = axes[0];
  Expr m = axes[1];
  Expr channel = group == 1 ? Expr(c) : m / Expr::index(out_per_group) * Expr::index(in_per_group) + c;
  Expr filter = group == 1 ? m : m % Expr::index(out_per_group);
  std::vector<Expr> x_index = {n, channel};
  std::vector<Expr> w_index = {channel, filter};
  std::optional<Expr> guard;
  auto require = [&guard](Expr cond) { guard = guard ? *guard && cond : cond; };
  for (size_t i = 0; i < geometry.kernel.size(); ++i) {
    // t = y + pad - k*d is the position in the stride-dilated input.
    Expr t = axes[2 + i];
    if (geometry.pads_begin[i] != 0) t = t + static_cast<double>(geometry.pads_begin[i]);
    Expr k = offsets[i];
    t = t - (geometry.dilations[i] == 1 ? k : k * static_cast<double>(geometry.dilations[i]));
    int64_t s = geometry.strides[i];
    if (s == 1) {
      require(kir::inRange(t, in_sizes[i]));
      x_index.push_back(t);
      continue;
    }
    // Negative t never passes: 0 <= t is checked before the quotient is used.
    require(Expr::index(0) <= t);
    require(eq(t % Expr::index(s), Expr::index(0)));
    Expr q = t / Expr::index(s);
    require(q < Expr::index(in_sizes[i]));
    x_index.push_back(q);
  }
  w_index.insert(w_index.end(), offsets.begin(), offsets.end());

  Expr product = toCompute(x.load(x_index)) * toCompute(w.load(w_index));
  Expr term = kir::select(*guard, product, Expr::constant(product.dtype(), 0));
  std::vector<kir::IterVar> reduced = {c};
  reduced.insert(reduced.end(), offsets.begin(), offsets.end());
  Expr value = kir::reduce(kir::ReduceOp::kSum, reduced, term);
  if (ctx.hasInput(2)) {
    LowerContext::Buffer bias = ctx.input(2);
    value = value + toCompute(bias(m));
  }
  kb.compute(y, axes, kir::cast(y.dtype(), value));
  return Status::ok();
}

}  // namespace

void registerConvTransposeOps(OpRegistry& registry) {
  registry.add(OpSchema{"",
                        "ConvTranspose",
                        {1, 11},
                        {{"auto_pad", Kind::kString},
                         {"dilations", Kind::kInts},
                         {"group", Kind::kInt},
                         {"kernel_shape", Kind::kInts},
                         {"output_padding", Kind::kInts},
                         {"output_shape", Kind::kInts},
                         {"pads", Kind::kInts},
                         {"strides", Kind::kInts}},
                        inferConvTranspose,
                        lowerConvTranspose});
}

}  // namespace kiln::ops
