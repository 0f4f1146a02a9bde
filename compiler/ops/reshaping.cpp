// Ops that rearrange, cut, repeat or generate elements: Shape, Size, Squeeze,
// Unsqueeze, Slice, Expand, Tile, Pad, Split, DepthToSpace, SpaceToDepth,
// ConstantOfShape, Range, EyeLike, Trilu.
//
// Kiln compiles static shapes: where an output's SHAPE depends on an input's
// VALUE (axes, starts/ends, pads, repeats, a target shape), that input must be
// known at compile time, and a run-time one is reported as unsupported. Values
// that only change elements (Pad's constant_value, Trilu's k) may be run-time.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/broadcast.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using kir::Expr;
using Buffer = LowerContext::Buffer;

// ---- Shared helpers ------------------------------------------------------------

// The integer values of input i, which must be a compile-time constant because
// the output's shape depends on it.
Expected<std::vector<int64_t>> constantInts(const NodeView& ctx, size_t i, std::string_view role) {
  const ir::Tensor* value = ctx.constantInput(i);
  if (!value)
    return ctx.unsupportedError(std::string(role) + " (input " + std::to_string(i) +
                                ") is computed at run time; Kiln needs it to be a constant");
  if (ir::isFloat(value->dtype()) || value->dtype() == ir::DType::kString || value->dims().size() > 1)
    return ctx.error(std::string(role) + " must be a 1-D integer tensor, got " + value->type().toString() + " (input " +
                     std::to_string(i) + ")");
  return value->toInts();
}

// The known dims of input i: needed where an op's output shape is computed
// from them (Squeeze without axes, Slice, DepthToSpace...).
Expected<std::vector<int64_t>> knownInputDims(const NodeView& ctx, size_t i, std::string_view role) {
  KILN_ASSIGN_OR_RETURN(ir::Shape shape, inputShape(ctx, i, role));
  std::optional<std::vector<int64_t>> dims = ir::knownDims(shape);
  if (!dims)
    return ctx.unsupportedError("the shape " + ir::toString(shape) + " of " + std::string(role) + " (input " +
                                std::to_string(i) + ") is not static");
  return *dims;
}

Expected<std::vector<int64_t>> normalizeAxes(const NodeView& ctx, std::vector<int64_t> axes, int64_t rank) {
  for (int64_t& axis : axes) {
    KILN_ASSIGN_OR_RETURN(axis, normalizeAxis(ctx, axis, rank, "axis"));
  }
  std::vector<int64_t> sorted = axes;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) return ctx.error("axes repeat an axis");
  return axes;
}

// An attribute that became an input at opset `since` is an error from then on.
Status rejectMovedAttributes(const NodeView& ctx, int since, std::initializer_list<const char*> names) {
  if (ctx.opset() < since) return Status::ok();
  for (const char* name : names)
    if (ctx.hasAttr(name))
      return ctx.error(std::string("attribute '") + name + "' is an input since opset " + std::to_string(since));
  return Status::ok();
}

ir::Tensor int64Vector(const std::vector<int64_t>& values, std::vector<int64_t> dims) {
  return ir::Tensor::fromValues<int64_t>(ir::DType::kInt64, std::move(dims), std::span<const int64_t>(values));
}

// Output = input read through the output's shape (same element count).
Status lowerViewCopy(LowerContext& ctx) {
  std::vector<int64_t> out_dims = ctx.outputDims(0);
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer x = ctx.input(0, out_dims);
  Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(out_dims);
  kb.compute(y, axes, x.load(asExprs(axes)));
  return Status::ok();
}

// Writes known int64 values into output 0 (Shape/Size when inference could
// not fold them, which happens only if shapes became static after inference).
Status lowerIntConstants(LowerContext& ctx, const std::vector<int64_t>& values) {
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer y = ctx.output(0);
  for (size_t i = 0; i < values.size(); ++i) {
    std::vector<Expr> index(y.rank(), Expr::index(static_cast<int64_t>(i)));
    kb.computeAt(y, {}, index, Expr::constant(ir::DType::kInt64, static_cast<double>(values[i])));
  }
  return Status::ok();
}

// ---- Shape, Size ---------------------------------------------------------------
// Shape's start/end (opset 15) select dims like a Python slice without step.

std::pair<size_t, size_t> shapeRange(const NodeView& ctx, int64_t rank) {
  auto clampEnd = [rank](int64_t v) { return std::clamp(v < 0 ? v + rank : v, int64_t{0}, rank); };
  int64_t start = clampEnd(ctx.attrInt("start", 0));
  int64_t end = clampEnd(ctx.attrInt("end", rank));
  return {static_cast<size_t>(start), static_cast<size_t>(std::max(start, end))};
}

Status inferShape(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 1));
  KILN_ASSIGN_OR_RETURN(ir::Shape in, inputShape(ctx, 0, "data"));
  auto [start, end] = shapeRange(ctx, static_cast<int64_t>(in.size()));
  ir::Shape selected(in.begin() + start, in.begin() + end);
  std::optional<std::vector<int64_t>> dims = ir::knownDims(selected);
  if (dims) {
    ctx.setOutputConstant(0, int64Vector(*dims, {static_cast<int64_t>(dims->size())}));
    return Status::ok();
  }
  ctx.setOutputType(0, {ir::DType::kInt64, ir::Shape{ir::Dim::known(static_cast<int64_t>(end - start))}});
  return Status::ok();
}

Status lowerShape(LowerContext& ctx) {
  std::vector<int64_t> dims = ctx.inputDims(0);
  auto [start, end] = shapeRange(ctx, static_cast<int64_t>(dims.size()));
  return lowerIntConstants(ctx, std::vector<int64_t>(dims.begin() + start, dims.begin() + end));
}

Status inferSize(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 1));
  KILN_ASSIGN_OR_RETURN(ir::Shape in, inputShape(ctx, 0, "data"));
  ir::Dim count = productDim(in, 0, in.size());
  if (count.isKnown()) {
    ctx.setOutputConstant(0, int64Vector({count.value}, {}));
    return Status::ok();
  }
  ctx.setOutputType(0, {ir::DType::kInt64, ir::Shape{}});
  return Status::ok();
}

Status lowerSize(LowerContext& ctx) {
  std::vector<int64_t> dims = ctx.inputDims(0);
  return lowerIntConstants(ctx, {std::accumulate(dims.begin(), dims.end(), int64_t{1}, std::multiplies<>())});
}

// ---- Squeeze, Unsqueeze --------------------------------------------------------
// axes is an attribute before opset 13 and input 1 from 13 (a constant).

Expected<std::optional<std::vector<int64_t>>> axesOperand(const NodeView& ctx) {
  if (ctx.opset() < 13) {
    if (!ctx.hasAttr("axes")) return std::optional<std::vector<int64_t>>();
    return std::optional<std::vector<int64_t>>(ctx.attrInts("axes"));
  }
  if (ctx.hasAttr("axes")) return ctx.error("attribute 'axes' is input 1 since opset 13");
  if (!ctx.hasInput(1)) return std::optional<std::vector<int64_t>>();
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> axes, constantInts(ctx, 1, "axes"));
  return std::optional<std::vector<int64_t>>(std::move(axes));
}

Status inferSqueeze(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, ctx.opset() < 13 ? 1 : 2));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "data", DTypeClass::kAnyKernel));
  KILN_ASSIGN_OR_RETURN(ir::Shape in, inputShape(ctx, 0, "data"));
  KILN_ASSIGN_OR_RETURN(std::optional<std::vector<int64_t>> axes, axesOperand(ctx));
  std::vector<bool> drop(in.size(), false);
  if (axes) {
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> normalized, normalizeAxes(ctx, *axes, static_cast<int64_t>(in.size())));
    for (int64_t a : normalized) {
      const ir::Dim& d = in[static_cast<size_t>(a)];
      if (d.isKnown() && d.value != 1)
        return ctx.error("cannot squeeze axis " + std::to_string(a) + " of size " + std::to_string(d.value) +
                         " in data " + ir::toString(in));
      drop[static_cast<size_t>(a)] = true;
    }
  } else {
    for (size_t i = 0; i < in.size(); ++i) {
      if (!in[i].isKnown())
        return ctx.unsupportedError("without axes, Squeeze needs every dim known; dim " + std::to_string(i) +
                                    " of data " + ir::toString(in) + " is not");
      drop[i] = in[i].value == 1;
    }
  }
  ir::Shape out;
  for (size_t i = 0; i < in.size(); ++i)
    if (!drop[i]) out.push_back(in[i]);
  ctx.setOutputType(0, {ctx.inputType(0).dtype, out});
  return Status::ok();
}

Status inferUnsqueeze(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, ctx.opset() < 13 ? 1 : 2, ctx.opset() < 13 ? 1 : 2));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "data", DTypeClass::kAnyKernel));
  KILN_ASSIGN_OR_RETURN(ir::Shape in, inputShape(ctx, 0, "data"));
  KILN_ASSIGN_OR_RETURN(std::optional<std::vector<int64_t>> axes, axesOperand(ctx));
  if (!axes) return ctx.error("axes are required");
  int64_t out_rank = static_cast<int64_t>(in.size() + axes->size());
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> normalized, normalizeAxes(ctx, *axes, out_rank));
  ir::Shape out;
  auto next = in.begin();
  for (int64_t i = 0; i < out_rank; ++i) {
    bool inserted = std::find(normalized.begin(), normalized.end(), i) != normalized.end();
    out.push_back(inserted ? ir::Dim::known(1) : *next++);
  }
  ctx.setOutputType(0, {ctx.inputType(0).dtype, out});
  return Status::ok();
}

// ---- Slice ---------------------------------------------------------------------
// Per sliced axis: start, step and element count, clamped as the spec says
// (start into [0, d] for positive steps, [0, d-1] for negative; end into
// [0, d] or [-1, d-1]). Opset 1 has starts/ends/axes attributes; from 10 they
// are inputs (with steps) and must be constants.

struct SliceAxis {
  int64_t start = 0;
  int64_t step = 1;
  int64_t count = 0;
};

Expected<std::vector<SliceAxis>> sliceAxes(const NodeView& ctx, const std::vector<int64_t>& dims) {
  std::vector<int64_t> starts, ends, axes, steps;
  if (ctx.opset() < 10) {
    starts = ctx.attrInts("starts");
    ends = ctx.attrInts("ends");
    axes = ctx.attrInts("axes");
  } else {
    KILN_ASSIGN_OR_RETURN(starts, constantInts(ctx, 1, "starts"));
    KILN_ASSIGN_OR_RETURN(ends, constantInts(ctx, 2, "ends"));
    if (ctx.hasInput(3)) {
      KILN_ASSIGN_OR_RETURN(axes, constantInts(ctx, 3, "axes"));
    }
    if (ctx.hasInput(4)) {
      KILN_ASSIGN_OR_RETURN(steps, constantInts(ctx, 4, "steps"));
    }
  }
  int64_t rank = static_cast<int64_t>(dims.size());
  if (axes.empty()) {
    axes.resize(starts.size());
    std::iota(axes.begin(), axes.end(), 0);
  }
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    return ctx.error("starts, ends, axes and steps have different lengths (" + std::to_string(starts.size()) + ", " +
                     std::to_string(ends.size()) + ", " + std::to_string(axes.size()) + ", " +
                     std::to_string(steps.size()) + ")");
  KILN_ASSIGN_OR_RETURN(axes, normalizeAxes(ctx, axes, rank));
  std::vector<SliceAxis> result(dims.size());
  for (size_t d = 0; d < dims.size(); ++d) result[d] = {0, 1, dims[d]};
  for (size_t k = 0; k < axes.size(); ++k) {
    int64_t d = dims[static_cast<size_t>(axes[k])];
    int64_t step = steps[k];
    if (step == 0) return ctx.error("steps must not be 0");
    int64_t start = starts[k] < 0 ? starts[k] + d : starts[k];
    int64_t end = ends[k] < 0 ? std::max(ends[k], std::numeric_limits<int64_t>::min() + d) + d : ends[k];
    if (step > 0) {
      start = std::clamp(start, int64_t{0}, d);
      end = std::clamp(end, int64_t{0}, d);
    } else {
      start = std::clamp(start, int64_t{0}, d - 1);
      end = std::clamp(end, int64_t{-1}, d - 1);
    }
    int64_t span = step > 0 ? end - start : start - end;
    int64_t magnitude = step > 0 ? step : -step;
    int64_t count = span <= 0 ? 0 : (span + magnitude - 1) / magnitude;
    result[static_cast<size_t>(axes[k])] = {start, step, count};
  }
  return result;
}

Status inferSlice(InferContext& ctx) {
  bool inputs = ctx.opset() >= 10;
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, inputs ? 3 : 1, inputs ? 5 : 1));
  KILN_RETURN_IF_ERROR(rejectMovedAttributes(ctx, 10, {"starts", "ends", "axes"}));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "data", DTypeClass::kAnyKernel));
  if (!inputs && (!ctx.hasAttr("starts") || !ctx.hasAttr("ends")))
    return ctx.error("attributes 'starts' and 'ends' are required before opset 10");
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dims, knownInputDims(ctx, 0, "data"));
  KILN_ASSIGN_OR_RETURN(std::vector<SliceAxis> axes, sliceAxes(ctx, dims));
  ir::Shape out;
  for (const SliceAxis& a : axes) out.push_back(ir::Dim::known(a.count));
  ctx.setOutputType(0, {ctx.inputType(0).dtype, out});
  return Status::ok();
}

Status lowerSlice(LowerContext& ctx) {
  KILN_ASSIGN_OR_RETURN(std::vector<SliceAxis> slices, sliceAxes(ctx, ctx.inputDims(0)));
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer x = ctx.input(0);
  Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(y.shape());
  std::vector<Expr> index;
  for (size_t d = 0; d < axes.size(); ++d) {
    const SliceAxis& s = slices[d];
    Expr i = axes[d];
    if (s.step != 1) i = i * static_cast<double>(s.step);
    if (s.start != 0) i = i + static_cast<double>(s.start);
    index.push_back(i);
  }
  kb.compute(y, axes, x.load(index));
  return Status::ok();
}

// ---- Expand, Tile --------------------------------------------------------------

Status inferExpand(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 2, 2));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "input", DTypeClass::kAnyKernel));
  KILN_ASSIGN_OR_RETURN(ir::Shape in, inputShape(ctx, 0, "input"));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> shape, constantInts(ctx, 1, "shape"));
  for (int64_t d : shape)
    if (d < 0) return ctx.error("shape has negative dim " + std::to_string(d) + " (input 1)");
  std::vector<ir::Shape> shapes = {in, ir::makeShape(shape)};
  Expected<ir::Shape> out = broadcastShapes(shapes);
  if (!out) return ctx.error(out.status().message());
  ctx.setOutputType(0, {ctx.inputType(0).dtype, out.take()});
  return Status::ok();
}

Status lowerExpand(LowerContext& ctx) {
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer x = ctx.input(0);
  Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(y.shape());
  std::vector<Expr> index = asExprs(axes);
  kb.compute(y, axes, x.load(broadcastIndex(index, x.shape())));
  return Status::ok();
}

Status inferTile(InferContext& ctx) {
  if (ctx.opset() < 6)
    return ctx.unsupportedError("Tile-1 (tiles and axis inputs) is not supported; use opset 6 or later");
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 2, 2));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "input", DTypeClass::kAnyKernel));
  KILN_ASSIGN_OR_RETURN(ir::Shape in, inputShape(ctx, 0, "input"));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> repeats, constantInts(ctx, 1, "repeats"));
  if (repeats.size() != in.size())
    return ctx.error("repeats has " + std::to_string(repeats.size()) + " entries for input of rank " +
                     std::to_string(in.size()) + " (input 1)");
  ir::Shape out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (repeats[i] < 0) return ctx.error("repeats has negative entry " + std::to_string(repeats[i]) + " (input 1)");
    out.push_back(in[i].isKnown() ? ir::Dim::known(in[i].value * repeats[i]) : (repeats[i] == 1 ? in[i] : ir::Dim{}));
  }
  ctx.setOutputType(0, {ctx.inputType(0).dtype, out});
  return Status::ok();
}

Status lowerTile(LowerContext& ctx) {
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer x = ctx.input(0);
  Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(y.shape());
  std::vector<Expr> index;
  for (size_t d = 0; d < axes.size(); ++d)
    index.push_back(x.dim(d) == y.dim(d) ? Expr(axes[d]) : Expr(axes[d]) % Expr::index(x.dim(d)));
  kb.compute(y, axes, x.load(index));
  return Status::ok();
}

// ---- Pad -----------------------------------------------------------------------
// pads is [begin_0, begin_1, ..., end_0, end_1, ...]; negative pads crop.
// Opset 1 names it 'paddings', 2 'pads'; from 11 it is input 1 (a constant),
// with constant_value input 2 (may be run-time) and from 18 axes input 3.

struct PadSpec {
  std::vector<int64_t> begin;
  std::vector<int64_t> end;
  std::string mode;
};

Expected<PadSpec> padSpec(const NodeView& ctx, size_t rank) {
  std::vector<int64_t> pads;
  std::vector<int64_t> axes(rank);
  std::iota(axes.begin(), axes.end(), 0);
  if (ctx.opset() < 11) {
    pads = ctx.attrInts(ctx.opset() < 2 ? "paddings" : "pads");
  } else {
    KILN_ASSIGN_OR_RETURN(pads, constantInts(ctx, 1, "pads"));
    if (ctx.hasInput(3)) {
      KILN_ASSIGN_OR_RETURN(axes, constantInts(ctx, 3, "axes"));
      KILN_ASSIGN_OR_RETURN(axes, normalizeAxes(ctx, axes, static_cast<int64_t>(rank)));
    }
  }
  if (pads.size() != 2 * axes.size())
    return ctx.error("pads has " + std::to_string(pads.size()) + " entries, expected " +
                     std::to_string(2 * axes.size()) + " (two per padded axis)");
  PadSpec spec{std::vector<int64_t>(rank, 0), std::vector<int64_t>(rank, 0), ctx.attrString("mode", "constant")};
  for (size_t k = 0; k < axes.size(); ++k) {
    spec.begin[static_cast<size_t>(axes[k])] = pads[k];
    spec.end[static_cast<size_t>(axes[k])] = pads[k + axes.size()];
  }
  if (spec.mode != "constant" && spec.mode != "reflect" && spec.mode != "edge" &&
      !(spec.mode == "wrap" && ctx.opset() >= 19))
    return ctx.error("unknown mode '" + spec.mode + "' (opset " + std::to_string(ctx.opset()) + ")");
  return spec;
}

Status inferPad(InferContext& ctx) {
  bool inputs = ctx.opset() >= 11;
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, inputs ? 2 : 1, inputs ? (ctx.opset() >= 18 ? 4 : 3) : 1));
  KILN_RETURN_IF_ERROR(rejectMovedAttributes(ctx, 11, {"pads", "value"}));
  if (ctx.opset() >= 2 && ctx.hasAttr("paddings"))
    return ctx.error("attribute 'paddings' is named 'pads' since opset 2");
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "data", DTypeClass::kAnyKernel));
  KILN_ASSIGN_OR_RETURN(ir::Shape in, inputShape(ctx, 0, "data"));
  if (inputs && ctx.hasInput(2)) KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, 2, "constant_value"));
  KILN_ASSIGN_OR_RETURN(PadSpec spec, padSpec(ctx, in.size()));
  ir::Shape out;
  for (size_t i = 0; i < in.size(); ++i) {
    int64_t extra = spec.begin[i] + spec.end[i];
    if (!in[i].isKnown()) {
      out.push_back(extra == 0 ? in[i] : ir::Dim{});
      continue;
    }
    int64_t size = in[i].value + extra;
    if (size < 0) return ctx.error("pads crop dim " + std::to_string(i) + " below zero");
    if (spec.mode != "constant" && in[i].value == 0 && size > 0)
      return ctx.error("mode '" + spec.mode + "' cannot pad the empty dim " + std::to_string(i));
    out.push_back(ir::Dim::known(size));
  }
  ctx.setOutputType(0, {ctx.inputType(0).dtype, out});
  return Status::ok();
}

// The source index along one axis for `src` = output index - begin pad, in
// the non-constant modes (always in [0, d) for d > 0).
Expr padSource(const std::string& mode, Expr src, int64_t d) {
  if (mode == "edge") return kir::min(kir::max(src, Expr::index(0)), Expr::index(d - 1));
  if (mode == "wrap") return ((src % Expr::index(d)) + Expr::index(d)) % Expr::index(d);
  if (d == 1) return Expr::index(0);  // reflect of a single element
  Expr period = Expr::index(2 * (d - 1));
  Expr m = ((src % period) + period) % period;
  return kir::select(m < Expr::index(d), m, period - m);
}

Status lowerPad(LowerContext& ctx) {
  KILN_ASSIGN_OR_RETURN(PadSpec spec, padSpec(ctx, ctx.inputDims(0).size()));
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer x = ctx.input(0);
  Buffer y = ctx.output(0);
  ir::DType dtype = computeDType(x.dtype());
  Expr fill = Expr::constant(dtype, ctx.opset() < 11 ? ctx.attrFloat("value", 0) : 0);
  if (ctx.opset() >= 11 && ctx.hasInput(2)) {
    Buffer value = ctx.input(2);
    fill = toCompute(value.load(std::vector<Expr>(value.rank(), Expr::index(0))));
  }
  std::vector<kir::IterVar> axes = kb.vars(y.shape());
  std::vector<Expr> index;
  Expr inside = Expr::constant(ir::DType::kBool, 1);
  for (size_t d = 0; d < axes.size(); ++d) {
    Expr src = spec.begin[d] == 0 ? Expr(axes[d]) : Expr(axes[d]) - static_cast<double>(spec.begin[d]);
    if (spec.mode == "constant" || x.dim(d) == 0) {
      inside = inside && kir::inRange(src, x.dim(d));
      index.push_back(src);
    } else {
      index.push_back(padSource(spec.mode, src, x.dim(d)));
    }
  }
  Expr value = toCompute(x.load(index));
  if (spec.mode == "constant") value = kir::select(inside, value, fill);
  kb.compute(y, axes, value);
  return Status::ok();
}

// ---- Split ---------------------------------------------------------------------
// Sizes come from 'split' (attribute before 13, also input 1 in opset 1;
// input 1 from 13), else num_outputs (opset 18: chunks of ceil(d / n), the
// last smaller), else equal parts.

Expected<std::vector<int64_t>> splitSizes(const NodeView& ctx, int64_t dim) {
  std::vector<int64_t> sizes;
  size_t outputs = ctx.numOutputs();
  if (ctx.opset() >= 13 || (ctx.opset() < 2 && ctx.hasInput(1))) {
    if (ctx.hasInput(1)) {
      KILN_ASSIGN_OR_RETURN(sizes, constantInts(ctx, 1, "split"));
    }
  } else {
    sizes = ctx.attrInts("split");
  }
  if (ctx.opset() >= 18 && ctx.hasAttr("num_outputs")) {
    if (!sizes.empty()) return ctx.error("has both split and num_outputs");
    int64_t n = ctx.attrInt("num_outputs", 0);
    if (n <= 0 || static_cast<size_t>(n) != outputs)
      return ctx.error("num_outputs " + std::to_string(n) + " does not match the " + std::to_string(outputs) +
                       " outputs");
    int64_t chunk = (dim + n - 1) / n;
    for (int64_t i = 0; i < n; ++i) sizes.push_back(std::clamp(dim - i * chunk, int64_t{0}, chunk));
    return sizes;
  }
  if (sizes.empty()) {
    int64_t n = static_cast<int64_t>(outputs);
    if (dim % n != 0)
      return ctx.error("cannot split dim of size " + std::to_string(dim) + " into " + std::to_string(n) +
                       " equal parts");
    return std::vector<int64_t>(outputs, dim / n);
  }
  if (sizes.size() != outputs)
    return ctx.error("split has " + std::to_string(sizes.size()) + " entries for " + std::to_string(outputs) +
                     " outputs");
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s < 0) return ctx.error("split has negative size " + std::to_string(s));
    total += s;
  }
  if (total != dim)
    return ctx.error("split sizes sum to " + std::to_string(total) + ", but the dim has size " + std::to_string(dim));
  return sizes;
}

Expected<int64_t> splitAxis(const NodeView& ctx, int64_t rank) {
  return normalizeAxis(ctx, ctx.attrInt("axis", 0), rank);
}

Status inferSplit(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, ctx.opset() >= 13 || ctx.opset() < 2 ? 2 : 1));
  KILN_RETURN_IF_ERROR(rejectMovedAttributes(ctx, 13, {"split"}));
  if (ctx.opset() < 18 && ctx.hasAttr("num_outputs"))
    return ctx.error("attribute 'num_outputs' needs opset 18 (opset " + std::to_string(ctx.opset()) + ")");
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "input", DTypeClass::kAnyKernel));
  KILN_ASSIGN_OR_RETURN(ir::Shape in, inputShapeOfMinRank(ctx, 0, "input", 1));
  KILN_ASSIGN_OR_RETURN(int64_t axis, splitAxis(ctx, static_cast<int64_t>(in.size())));
  const ir::Dim& d = in[static_cast<size_t>(axis)];
  if (!d.isKnown()) return ctx.unsupportedError("the split axis " + std::to_string(axis) + " has no static size");
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> sizes, splitSizes(ctx, d.value));
  for (size_t i = 0; i < sizes.size(); ++i) {
    ir::Shape out = in;
    out[static_cast<size_t>(axis)] = ir::Dim::known(sizes[i]);
    ctx.setOutputType(i, {ctx.inputType(0).dtype, out});
  }
  return Status::ok();
}

Status lowerSplit(LowerContext& ctx) {
  std::vector<int64_t> dims = ctx.inputDims(0);
  KILN_ASSIGN_OR_RETURN(int64_t axis, splitAxis(ctx, static_cast<int64_t>(dims.size())));
  size_t a = static_cast<size_t>(axis);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> sizes, splitSizes(ctx, dims[a]));
  int64_t offset = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (!ctx.hasOutput(i)) {
      offset += sizes[i];
      continue;
    }
    kir::KernelBuilder& kb = ctx.newKernel("part" + std::to_string(i));
    Buffer x = ctx.input(0);
    Buffer y = ctx.output(i);
    std::vector<kir::IterVar> axes = kb.vars(y.shape());
    std::vector<Expr> index = asExprs(axes);
    if (offset != 0) index[a] = index[a] + static_cast<double>(offset);
    kb.compute(y, axes, x.load(index));
    offset += sizes[i];
  }
  return Status::ok();
}

// ---- DepthToSpace, SpaceToDepth ------------------------------------------------
// With b the block size and output position (h*b + i, w*b + j):
//   DCR: y[n, c, h*b+i, w*b+j] = x[n, (i*b + j) * C/b^2 + c, h, w]
//   CRD: y[n, c, h*b+i, w*b+j] = x[n, c * b^2 + i*b + j, h, w]
// SpaceToDepth is the inverse of DCR.

Expected<int64_t> blockSize(const NodeView& ctx) {
  if (!ctx.hasAttr("blocksize")) return ctx.error("missing required attribute 'blocksize'");
  int64_t b = ctx.attrInt("blocksize", 0);
  if (b <= 0) return ctx.error("blocksize must be positive, got " + std::to_string(b));
  return b;
}

Status inferDepthToSpace(InferContext& ctx, bool to_space) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 1));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "input", DTypeClass::kAnyKernel));
  KILN_ASSIGN_OR_RETURN(ir::Shape in, inputShapeOfRank(ctx, 0, "input", 4));
  KILN_ASSIGN_OR_RETURN(int64_t b, blockSize(ctx));
  std::string mode = ctx.attrString("mode", "DCR");
  if (to_space && mode != "DCR" && mode != "CRD") return ctx.error("unknown mode '" + mode + "'");
  auto scaled = [](const ir::Dim& d, int64_t mul, int64_t div) {
    return d.isKnown() ? ir::Dim::known(d.value * mul / div) : ir::Dim{};
  };
  ir::Shape out = in;
  if (to_space) {
    if (in[1].isKnown() && in[1].value % (b * b) != 0)
      return ctx.error("channels " + std::to_string(in[1].value) + " are not a multiple of blocksize^2 " +
                       std::to_string(b * b));
    out = {in[0], scaled(in[1], 1, b * b), scaled(in[2], b, 1), scaled(in[3], b, 1)};
  } else {
    for (size_t d = 2; d < 4; ++d)
      if (in[d].isKnown() && in[d].value % b != 0)
        return ctx.error("spatial dim " + std::to_string(d) + " of size " + std::to_string(in[d].value) +
                         " is not a multiple of blocksize " + std::to_string(b));
    out = {in[0], scaled(in[1], b * b, 1), scaled(in[2], 1, b), scaled(in[3], 1, b)};
  }
  ctx.setOutputType(0, {ctx.inputType(0).dtype, out});
  return Status::ok();
}

Status lowerDepthToSpace(LowerContext& ctx) {
  KILN_ASSIGN_OR_RETURN(int64_t b, blockSize(ctx));
  bool crd = ctx.attrString("mode", "DCR") == "CRD";
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer x = ctx.input(0);
  Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(y.shape());
  Expr block = Expr::index(b);
  Expr c = axes[1];
  Expr i = Expr(axes[2]) % block;
  Expr j = Expr(axes[3]) % block;
  Expr channel = crd ? c * Expr::index(b * b) + i * block + j : (i * block + j) * Expr::index(y.dim(1)) + c;
  kb.compute(y, axes, x(axes[0], channel, Expr(axes[2]) / block, Expr(axes[3]) / block));
  return Status::ok();
}

Status lowerSpaceToDepth(LowerContext& ctx) {
  KILN_ASSIGN_OR_RETURN(int64_t b, blockSize(ctx));
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer x = ctx.input(0);
  Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(y.shape());
  Expr block = Expr::index(b);
  Expr channels = Expr::index(x.dim(1));
  Expr offset = Expr(axes[1]) / channels;  // i*b + j
  Expr c = Expr(axes[1]) % channels;
  kb.compute(y, axes, x(axes[0], c, Expr(axes[2]) * block + offset / block, Expr(axes[3]) * block + offset % block));
  return Status::ok();
}

// ---- ConstantOfShape -----------------------------------------------------------
// The shape is a constant input; the fill value a one-element tensor
// attribute (float32 0 by default). Filled by a kernel, so a large output is
// not materialized at compile time; the folding pass may still fold it.

Status inferConstantOfShape(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 1));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> shape, constantInts(ctx, 0, "input"));
  for (int64_t d : shape)
    if (d < 0) return ctx.error("shape has negative dim " + std::to_string(d) + " (input 0)");
  ir::DType dtype = ir::DType::kFloat32;
  if (const ir::Tensor* value = ctx.attrTensor("value")) {
    if (value->elementCount() != 1) return ctx.error("value must hold exactly one element");
    if (value->dtype() == ir::DType::kString) return ctx.unsupportedError("string values are not supported");
    dtype = value->dtype();
  }
  ctx.setOutputType(0, {dtype, ir::makeShape(shape)});
  return Status::ok();
}

Status lowerConstantOfShape(LowerContext& ctx) {
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer y = ctx.output(0);
  ir::DType dtype = computeDType(y.dtype());
  double fill = 0;
  if (const ir::Tensor* value = ctx.attrTensor("value"))
    fill = ir::isFloat(value->dtype()) ? value->floatAt(0) : static_cast<double>(value->intAt(0));
  std::vector<kir::IterVar> axes = kb.vars(y.shape());
  kb.compute(y, axes, Expr::constant(dtype, fill));
  return Status::ok();
}

// ---- Range ---------------------------------------------------------------------
// count = max(ceil((limit - start) / delta), 0); element i = start + i * delta.
// The count is the output's shape, so all three inputs must be constants, and
// the whole result is computed during inference.

constexpr int64_t kMaxRangeElems = int64_t{1} << 24;

Status inferRange(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 3, 3));
  const char* roles[] = {"start", "limit", "delta"};
  for (size_t i = 0; i < 3; ++i) KILN_RETURN_IF_ERROR(expectDType(ctx, i, roles[i], DTypeClass::kNumeric));
  KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, 1, "limit"));
  KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, 2, "delta"));
  const ir::Tensor* in[3];
  for (size_t i = 0; i < 3; ++i) {
    in[i] = ctx.constantInput(i);
    if (!in[i])
      return ctx.unsupportedError(std::string(roles[i]) + " (input " + std::to_string(i) +
                                  ") is computed at run time; Kiln needs it to be a constant");
    if (in[i]->elementCount() != 1)
      return ctx.error(std::string(roles[i]) + " must be a scalar (input " + std::to_string(i) + ")");
  }
  ir::DType dtype = in[0]->dtype();
  bool is_float = ir::isFloat(dtype);
  if (dtype != ir::DType::kFloat32 && dtype != ir::DType::kFloat64 && dtype != ir::DType::kInt16 &&
      dtype != ir::DType::kInt32 && dtype != ir::DType::kInt64)
    return ctx.error("start has dtype " + std::string(ir::name(dtype)) +
                     ", expected float, double, int16, int32 or int64");
  double start = is_float ? in[0]->floatAt(0) : static_cast<double>(in[0]->intAt(0));
  double limit = is_float ? in[1]->floatAt(0) : static_cast<double>(in[1]->intAt(0));
  double delta = is_float ? in[2]->floatAt(0) : static_cast<double>(in[2]->intAt(0));
  if (delta == 0) return ctx.error("delta must not be 0");
  double count_real = std::ceil((limit - start) / delta);
  if (!(count_real <= static_cast<double>(kMaxRangeElems)))
    return ctx.unsupportedError("the range has more than " + std::to_string(kMaxRangeElems) + " elements");
  int64_t count = std::max<int64_t>(0, static_cast<int64_t>(count_real));
  std::vector<std::byte> bytes(static_cast<size_t>(count * ir::byteSize(dtype)));
  for (int64_t i = 0; i < count; ++i) {
    std::byte* dst = bytes.data() + i * ir::byteSize(dtype);
    auto put = [dst](auto v) { std::memcpy(dst, &v, sizeof(v)); };
    switch (dtype) {
      case ir::DType::kFloat32:
        put(static_cast<float>(start + static_cast<double>(i) * delta));
        break;
      case ir::DType::kFloat64:
        put(start + static_cast<double>(i) * delta);
        break;
      case ir::DType::kInt16:
        put(static_cast<int16_t>(in[0]->intAt(0) + i * in[2]->intAt(0)));
        break;
      case ir::DType::kInt32:
        put(static_cast<int32_t>(in[0]->intAt(0) + i * in[2]->intAt(0)));
        break;
      default:
        put(static_cast<int64_t>(in[0]->intAt(0) + i * in[2]->intAt(0)));
        break;
    }
  }
  ctx.setOutputConstant(0, ir::Tensor::fromBytes(dtype, {count}, std::move(bytes)));
  return Status::ok();
}

Status lowerFolded(LowerContext& ctx) {
  return internalError(ctx.node().describe() + ": its output is computed during inference and needs no kernel");
}

// ---- EyeLike, Trilu ------------------------------------------------------------

Status inferEyeLike(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 1));
  KILN_ASSIGN_OR_RETURN(ir::Shape in, inputShapeOfRank(ctx, 0, "input", 2));
  ir::DType dtype = ctx.inputType(0).dtype;
  if (ctx.hasAttr("dtype")) {
    std::optional<ir::DType> given = ir::dtypeFromOnnx(static_cast<int32_t>(ctx.attrInt("dtype", 0)));
    if (!given || *given == ir::DType::kString)
      return ctx.unsupportedError("dtype " + std::to_string(ctx.attrInt("dtype", 0)) + " is not supported");
    dtype = *given;
  }
  if (dtype == ir::DType::kString) return ctx.unsupportedError("string tensors are not supported");
  ctx.setOutputType(0, {dtype, in});
  return Status::ok();
}

Status lowerEyeLike(LowerContext& ctx) {
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(y.shape());
  ir::DType dtype = computeDType(y.dtype());
  Expr on_diagonal = eq(Expr(axes[1]) - Expr(axes[0]), Expr::index(ctx.attrInt("k", 0)));
  kb.compute(y, axes, kir::select(on_diagonal, Expr::constant(dtype, 1), Expr::constant(dtype, 0)));
  return Status::ok();
}

// Keeps element (i, j) of each matrix when j - i >= k (upper) or <= k (lower);
// k is an optional scalar input, read at run time as it changes no shape.
Status inferTrilu(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 2));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "input", DTypeClass::kAnyKernel));
  KILN_ASSIGN_OR_RETURN(ir::Shape in, inputShapeOfMinRank(ctx, 0, "input", 2));
  if (ctx.hasInput(1) && ctx.inputType(1).dtype != ir::DType::kInt64) return ctx.error("k must be int64 (input 1)");
  ctx.setOutputType(0, {ctx.inputType(0).dtype, in});
  return Status::ok();
}

Status lowerTrilu(LowerContext& ctx) {
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer x = ctx.input(0);
  Expr k = Expr::index(0);
  if (const ir::Tensor* value = ctx.hasInput(1) ? ctx.constantInput(1) : nullptr) {
    k = Expr::index(value->intAt(0));
  } else if (ctx.hasInput(1)) {
    Buffer k_input = ctx.input(1);
    k = k_input.load(std::vector<Expr>(k_input.rank(), Expr::index(0)));
  }
  Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(y.shape());
  size_t r = axes.size();
  Expr diff = Expr(axes[r - 1]) - Expr(axes[r - 2]);
  Expr keep = ctx.attrInt("upper", 1) != 0 ? diff >= k : diff <= k;
  Expr value = toCompute(x.load(asExprs(axes)));
  kb.compute(y, axes, kir::select(keep, value, Expr::constant(value.dtype(), 0)));
  return Status::ok();
}

}  // namespace

void registerReshapingOps(OpRegistry& registry) {
  registry.add(
      OpSchema{"", "Shape", {1, 13, 15, 19, 21}, {{"start", Kind::kInt}, {"end", Kind::kInt}}, inferShape, lowerShape});
  registry.add(OpSchema{"", "Size", {1, 13, 19, 21}, {}, inferSize, lowerSize});
  registry.add(OpSchema{"", "Squeeze", {1, 11, 13, 21}, {{"axes", Kind::kInts}}, inferSqueeze, lowerViewCopy});
  registry.add(OpSchema{"", "Unsqueeze", {1, 11, 13, 21}, {{"axes", Kind::kInts}}, inferUnsqueeze, lowerViewCopy});
  registry.add(OpSchema{"",
                        "Slice",
                        {1, 10, 11, 13},
                        {{"starts", Kind::kInts}, {"ends", Kind::kInts}, {"axes", Kind::kInts}},
                        inferSlice,
                        lowerSlice});
  registry.add(OpSchema{"", "Expand", {8, 13}, {}, inferExpand, lowerExpand});
  registry.add(OpSchema{"", "Tile", {1, 6, 13}, {}, inferTile, lowerTile});
  registry.add(
      OpSchema{"",
               "Pad",
               {1, 2, 11, 13, 18, 19, 21},
               {{"mode", Kind::kString}, {"pads", Kind::kInts}, {"paddings", Kind::kInts}, {"value", Kind::kFloat}},
               inferPad,
               lowerPad});
  registry.add(OpSchema{"",
                        "Split",
                        {1, 2, 11, 13, 18},
                        {{"axis", Kind::kInt}, {"split", Kind::kInts}, {"num_outputs", Kind::kInt}},
                        inferSplit,
                        lowerSplit});
  registry.add(OpSchema{"",
                        "DepthToSpace",
                        {1, 11, 13},
                        {{"blocksize", Kind::kInt}, {"mode", Kind::kString}},
                        [](InferContext& ctx) { return inferDepthToSpace(ctx, true); },
                        lowerDepthToSpace});
  registry.add(OpSchema{"",
                        "SpaceToDepth",
                        {1, 13},
                        {{"blocksize", Kind::kInt}},
                        [](InferContext& ctx) { return inferDepthToSpace(ctx, false); },
                        lowerSpaceToDepth});
  registry.add(OpSchema{
      "", "ConstantOfShape", {9, 20, 21}, {{"value", Kind::kTensor}}, inferConstantOfShape, lowerConstantOfShape});
  registry.add(OpSchema{"", "Range", {11}, {}, inferRange, lowerFolded});
  registry.add(OpSchema{"", "EyeLike", {9}, {{"dtype", Kind::kInt}, {"k", Kind::kInt}}, inferEyeLike, lowerEyeLike});
  registry.add(OpSchema{"", "Trilu", {14}, {{"upper", Kind::kInt}}, inferTrilu, lowerTrilu});
}

}  // namespace kiln::ops
