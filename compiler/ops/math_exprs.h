// Broadcasting elementwise ops with any number of inputs, shared by the math
// and logic families (Pow, Mod, PRelu, Max/Min/Sum/Mean, comparisons, Where,
// bitwise ops): shape inference of the broadcast output, and the lowering of
// "one output element is f(the inputs' elements at the same broadcast
// position)". Also the pre-opset-7 `broadcast`/`axis` attributes of the
// binary ops that had them.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <vector>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/broadcast.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"
#include "compiler/ops/run_time_shapes.h"

namespace kiln::ops {

// The attributes of the opset-1 binary ops (Pow, Equal, Greater, Less, And,
// Or, Xor) that opset 7 replaced with numpy broadcasting.
inline std::vector<AttrSpec> legacyBroadcastAttributes() {
  return {{"broadcast", ir::Attribute::Kind::kInt}, {"axis", ir::Attribute::Kind::kInt}};
}

// Before opset 7, broadcasting was opt-in (`broadcast=1`) and one-directional:
// B's dims line up with A's starting at `axis` (default: B is a suffix of A).
// Padding B with trailing 1s turns that into ordinary numpy broadcasting.
inline Expected<ir::Shape> legacyViewOfB(const NodeView& ctx, const ir::Shape& a, const ir::Shape& b) {
  if (ctx.attrInt("broadcast", 0) == 0) {
    bool same = a.size() == b.size();
    for (size_t i = 0; same && i < a.size(); ++i) same = !conflictingDims(a[i], b[i]);
    if (!same)
      return ctx.error("shapes " + ir::toString(a) + " and " + ir::toString(b) + " differ and broadcast=0 (opset " +
                       std::to_string(ctx.opset()) + ")");
    return b;
  }
  int64_t rank_a = static_cast<int64_t>(a.size());
  int64_t rank_b = static_cast<int64_t>(b.size());
  int64_t axis = ctx.attrInt("axis", rank_a - rank_b);
  if (axis < 0 || axis + rank_b > rank_a)
    return ctx.error("B of rank " + std::to_string(rank_b) + " does not fit into A of rank " + std::to_string(rank_a) +
                     " at axis " + std::to_string(axis));
  ir::Shape view = b;
  view.resize(static_cast<size_t>(rank_a - axis), ir::Dim::known(1));
  if (!broadcastsTo(view, a))
    return ctx.error("B " + ir::toString(b) + " does not broadcast to A " + ir::toString(a) + " at axis " +
                     std::to_string(axis));
  return view;
}

// How an op broadcasts its inputs, by opset.
enum class BroadcastRule {
  kNumpy,            // multidirectional at every opset
  kLegacyBefore7,    // broadcast/axis attributes before opset 7, numpy after
  kSameBefore8,      // variadic Max/Min/Sum/Mean: equal shapes before opset 8, numpy after
  kChannelsBefore7,  // PRelu: a 1-D slope of C > 1 values runs along X's dim 1 before opset 7
};

// PRelu before opset 7 (Caffe2's PRelu): a slope of C values is per channel,
// X's dim 1, which is the numpy view [C, 1, ..., 1].
inline ir::Shape channelViewOfSlope(const ir::Shape& x, const ir::Shape& slope) {
  bool per_channel = slope.size() == 1 && x.size() >= 2 && !(slope[0].isKnown() && slope[0].value == 1);
  if (!per_channel) return slope;
  ir::Shape view = slope;
  view.resize(x.size() - 1, ir::Dim::known(1));
  return view;
}

// The input shapes as the broadcast sees them (B's legacy view applied).
inline Expected<std::vector<ir::Shape>> broadcastOperandShapes(const NodeView& ctx, std::span<const ir::Shape> shapes,
                                                               BroadcastRule rule) {
  std::vector<ir::Shape> out(shapes.begin(), shapes.end());
  if (rule == BroadcastRule::kLegacyBefore7 && ctx.opset() < 7 && out.size() == 2) {
    KILN_ASSIGN_OR_RETURN(out[1], legacyViewOfB(ctx, out[0], out[1]));
  }
  if (rule == BroadcastRule::kChannelsBefore7 && ctx.opset() < 7 && out.size() == 2)
    out[1] = channelViewOfSlope(out[0], out[1]);
  if (rule == BroadcastRule::kSameBefore8 && ctx.opset() < 8) {
    for (size_t i = 1; i < out.size(); ++i) {
      bool same = out[i].size() == out[0].size();
      for (size_t d = 0; same && d < out[0].size(); ++d) same = !conflictingDims(out[0][d], out[i][d]);
      if (!same)
        return ctx.error("input " + std::to_string(i) + " has shape " + ir::toString(out[i]) + ", expected " +
                         ir::toString(out[0]) + " like input 0 (no broadcasting before opset 8)");
    }
  }
  return out;
}

// The shapes of inputs [0, count), each of which must be present.
inline Expected<std::vector<ir::Shape>> presentInputShapes(const NodeView& ctx, size_t count) {
  std::vector<ir::Shape> shapes;
  for (size_t i = 0; i < count; ++i) {
    KILN_ASSIGN_OR_RETURN(ir::Shape shape, inputShape(ctx, i, "input " + std::to_string(i)));
    shapes.push_back(std::move(shape));
  }
  return shapes;
}

// Sets output 0 to `dtype` with the broadcast of inputs [0, numInputs()).
inline Status inferBroadcastOutput(InferContext& ctx, ir::DType dtype, BroadcastRule rule) {
  KILN_ASSIGN_OR_RETURN(std::vector<ir::Shape> inputs, presentInputShapes(ctx, ctx.numInputs()));
  KILN_ASSIGN_OR_RETURN(std::vector<ir::Shape> shapes, broadcastOperandShapes(ctx, inputs, rule));
  Expected<ir::Shape> out = broadcastShapes(shapes);
  if (!out) return ctx.error(out.status().message());
  ctx.setOutputType(0, {dtype, out.take()});
  return Status::ok();
}

// One output element from the inputs' elements, loaded and widened to their
// compute dtype (half precision computes in float32). The lowering narrows the
// result to the output's dtype.
using ElementFn = std::function<kir::Expr(std::span<const kir::Expr> x, const NodeView& node)>;

// Inputs with run-time dims take numpy broadcasting (checked at run time);
// the opset-dependent views are refused there.
inline Status lowerRunTimeBroadcastElementwise(LowerContext& ctx, const ElementFn& fn, BroadcastRule rule) {
  bool numpy = rule == BroadcastRule::kNumpy || (rule == BroadcastRule::kLegacyBefore7 && ctx.opset() >= 7) ||
               (rule == BroadcastRule::kChannelsBefore7 && ctx.opset() >= 7) ||
               (rule == BroadcastRule::kSameBefore8 && ctx.opset() >= 8);
  if (!numpy && ctx.numInputs() > 1)
    return ctx.unsupportedError("inputs with shapes computed at run time take numpy broadcasting only (opset " +
                                std::to_string(ctx.opset()) + " broadcasts differently)");
  std::vector<size_t> inputs;
  for (size_t i = 0; i < ctx.numInputs(); ++i) inputs.push_back(i);
  const NodeView& node = ctx;
  return lowerRunTimeElementwise(ctx, inputs, 1, [&](std::span<const kir::Expr> x) {
    return std::vector<kir::Expr>{fn(x, node)};
  });
}

inline Status lowerBroadcastElementwise(LowerContext& ctx, const ElementFn& fn, BroadcastRule rule) {
  if (hasRunTimeShape(ctx)) return lowerRunTimeBroadcastElementwise(ctx, fn, rule);
  std::vector<ir::Shape> inputs;
  for (size_t i = 0; i < ctx.numInputs(); ++i) inputs.push_back(ir::makeShape(ctx.inputDims(i)));
  KILN_ASSIGN_OR_RETURN(std::vector<ir::Shape> views, broadcastOperandShapes(ctx, inputs, rule));
  kir::KernelBuilder& kb = ctx.newKernel();
  std::vector<LowerContext::Buffer> buffers;
  for (size_t i = 0; i < views.size(); ++i) buffers.push_back(ctx.input(i, *ir::knownDims(views[i])));
  LowerContext::Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(y.shape());
  std::vector<kir::Expr> index = asExprs(axes);
  std::vector<kir::Expr> values;
  for (const LowerContext::Buffer& buffer : buffers)
    values.push_back(toCompute(buffer.load(broadcastIndex(index, buffer.shape()))));
  kb.compute(y, axes, kir::cast(y.dtype(), fn(values, ctx)));
  return Status::ok();
}

inline bool isUnsignedInteger(ir::DType dtype) { return ir::isInteger(dtype) && !ir::info(dtype).is_signed; }

}  // namespace kiln::ops
