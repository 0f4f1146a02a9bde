// Ops that cut or extend a tensor along its axes: Slice, Pad, Split.
//
// As in reshaping.cpp, an input whose VALUE decides the output's SHAPE
// (starts/ends/axes/steps, pads, split) must be a compile-time constant; Pad's
// constant_value only changes elements and may be computed at run time.
#include <algorithm>
#include <limits>
#include <numeric>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"
#include "compiler/ops/pads.h"
#include "compiler/ops/run_time_shapes.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using kir::Expr;
using Buffer = LowerContext::Buffer;

// The known dims of input i: Slice's output shape is computed from them.
Expected<std::vector<int64_t>> knownInputDims(const NodeView& ctx, size_t i, std::string_view role) {
  KILN_ASSIGN_OR_RETURN(ir::Shape shape, inputShape(ctx, i, role));
  std::optional<std::vector<int64_t>> dims = ir::knownDims(shape);
  if (!dims)
    return ctx.unsupportedError("the shape " + ir::toString(shape) + " of " + std::string(role) + " (input " +
                                std::to_string(i) + ") is not static");
  return *dims;
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
    // Unsigned: -INT64_MIN and span + magnitude would overflow int64.
    uint64_t magnitude = step > 0 ? static_cast<uint64_t>(step) : 0 - static_cast<uint64_t>(step);
    int64_t count = span <= 0 ? 0 : static_cast<int64_t>(1 + static_cast<uint64_t>(span - 1) / magnitude);
    // One element or none: the step is never applied, and kernel IR constants
    // (doubles) could not hold a step like INT64_MAX exactly.
    if (count <= 1) step = 1;
    result[static_cast<size_t>(axes[k])] = {start, step, count};
  }
  return result;
}

// From opset 10, any of starts/ends/axes/steps may be computed at run time
// (run_time_slicing.cpp).
bool runTimeSlice(const NodeView& ctx) {
  if (ctx.opset() < 10) return false;
  for (size_t i = 1; i < 5 && i < ctx.numInputs(); ++i)
    if (ctx.hasInput(i) && !ctx.constantInput(i)) return true;
  return false;
}

Status inferSlice(InferContext& ctx) {
  bool inputs = ctx.opset() >= 10;
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, inputs ? 3 : 1, inputs ? 5 : 1));
  KILN_RETURN_IF_ERROR(rejectMovedAttributes(ctx, 10, {"starts", "ends", "axes"}));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "data", DTypeClass::kAnyKernel));
  if (!inputs && (!ctx.hasAttr("starts") || !ctx.hasAttr("ends")))
    return ctx.error("attributes 'starts' and 'ends' are required before opset 10");
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dims, knownInputDims(ctx, 0, "data"));
  if (runTimeSlice(ctx)) return inferRunTimeSlice(ctx, dims.size());
  KILN_ASSIGN_OR_RETURN(std::vector<SliceAxis> axes, sliceAxes(ctx, dims));
  ir::Shape out;
  for (const SliceAxis& a : axes) out.push_back(ir::Dim::known(a.count));
  ctx.setOutputType(0, {ctx.inputType(0).dtype, out});
  return Status::ok();
}

Status lowerSlice(LowerContext& ctx) {
  if (runTimeSlice(ctx)) return lowerRunTimeSlice(ctx);
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

// ---- Pad -----------------------------------------------------------------------
// pads is [begin_0, begin_1, ..., end_0, end_1, ...]; negative pads crop.
// Opset 1 names it 'paddings', 2 'pads'; from 11 it is input 1 (a constant),
// with constant_value input 2 (may be run-time) and from 18 axes input 3.

}  // namespace

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
  // No tensor has a dim of 2^48 elements (ir::kMaxTensorBytes), so no pad or
  // crop of real use goes past it; bounding them keeps dim + begin + end and
  // the kernels' index offsets far from overflow.
  for (int64_t pad : pads)
    if (pad < -ir::kMaxTensorBytes || pad > ir::kMaxTensorBytes)
      return ctx.error("pads value " + std::to_string(pad) + " is beyond any tensor's size");
  for (size_t k = 0; k < axes.size(); ++k) {
    spec.begin[static_cast<size_t>(axes[k])] = pads[k];
    spec.end[static_cast<size_t>(axes[k])] = pads[k + axes.size()];
  }
  if (spec.mode != "constant" && spec.mode != "reflect" && spec.mode != "edge" &&
      !(spec.mode == "wrap" && ctx.opset() >= 19))
    return ctx.error("unknown mode '" + spec.mode + "' (opset " + std::to_string(ctx.opset()) + ")");
  return spec;
}

namespace {

// From opset 11, pads may be computed at run time; the axes (opset 18)
// must then be constants.
bool runTimePads(const NodeView& ctx) { return ctx.opset() >= 11 && !ctx.constantInput(1); }

Expected<std::vector<int64_t>> runTimePadAxes(const NodeView& ctx, size_t rank) {
  std::vector<int64_t> axes(rank);
  std::iota(axes.begin(), axes.end(), 0);
  if (ctx.numInputs() > 3 && ctx.hasInput(3)) {
    KILN_ASSIGN_OR_RETURN(axes, constantInts(ctx, 3, "axes"));
    KILN_ASSIGN_OR_RETURN(axes, normalizeAxes(ctx, axes, static_cast<int64_t>(rank)));
  }
  KILN_ASSIGN_OR_RETURN(ir::Shape pads, inputShapeOfRank(ctx, 1, "pads", 1));
  if (!pads[0].isKnown() || pads[0].value != static_cast<int64_t>(2 * axes.size()))
    return ctx.error("pads (input 1) has shape " + ir::toString(pads) + ", expected [" + std::to_string(2 * axes.size()) +
                     "] (two per padded axis)");
  std::string mode = ctx.attrString("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge" && !(mode == "wrap" && ctx.opset() >= 19))
    return ctx.error("unknown mode '" + mode + "' (opset " + std::to_string(ctx.opset()) + ")");
  return axes;
}

// Pads read at run time: a kernel of shape steps stores them in slots and
// sets the output dims; returns each dim's begin pad.
Expected<std::vector<Expr>> lowerRunTimePads(LowerContext& ctx) {
  if (ctx.isDynamicInput(0)) return ctx.unsupportedError("data (input 0) has a run-time shape as well");
  std::vector<int64_t> dims = ctx.inputDims(0);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> axes, runTimePadAxes(ctx, dims.size()));
  ctx.newKernel("shape");
  std::vector<int> pads = readIntoSlots(ctx, ctx.input(1), static_cast<int64_t>(2 * axes.size()));
  std::vector<Expr> begin(dims.size(), Expr::index(0)), sizes;
  std::vector<Expr> end(dims.size(), Expr::index(0));
  for (size_t k = 0; k < axes.size(); ++k) {
    begin[static_cast<size_t>(axes[k])] = kir::slotValue(pads[k]);
    end[static_cast<size_t>(axes[k])] = kir::slotValue(pads[k + axes.size()]);
  }
  for (size_t d = 0; d < dims.size(); ++d) sizes.push_back(Expr::index(dims[d]) + begin[d] + end[d]);
  std::vector<int> out = setOutputDims(ctx, 0, sizes);
  std::string mode = ctx.attrString("mode", "constant");
  for (size_t d = 0; d < dims.size(); ++d)
    if (mode != "constant" && dims[d] == 0)
      ctx.builder().check(ctx.addCheck("mode '" + mode + "' cannot pad the empty dim " + std::to_string(d)),
                          kir::eq(kir::slotValue(out[d]), Expr::index(0)));
  return begin;
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
  if (runTimePads(ctx)) {
    KILN_RETURN_IF_ERROR(runTimePadAxes(ctx, in.size()).status());
    ctx.setOutputType(0, {ctx.inputType(0).dtype, ir::Shape(in.size(), ir::Dim{})});
    return Status::ok();
  }
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
  std::string mode = ctx.attrString("mode", "constant");
  std::vector<Expr> begin;
  if (runTimePads(ctx)) {
    KILN_ASSIGN_OR_RETURN(begin, lowerRunTimePads(ctx));
  } else {
    KILN_ASSIGN_OR_RETURN(PadSpec spec, padSpec(ctx, ctx.inputDims(0).size()));
    for (int64_t b : spec.begin) begin.push_back(Expr::index(b));
  }
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer x = ctx.input(0);
  Buffer y = ctx.output(0);
  ir::DType dtype = computeDType(x.dtype());
  Expr fill = Expr::constant(dtype, ctx.opset() < 11 ? ctx.attrFloat("value", 0) : 0);
  if (ctx.opset() >= 11 && ctx.hasInput(2)) {
    Buffer value = ctx.input(2);
    fill = toCompute(value.load(std::vector<Expr>(value.rank(), Expr::index(0))));
  }
  std::vector<kir::IterVar> axes = ctx.outputVars(0);
  std::vector<Expr> index;
  Expr inside = Expr::constant(ir::DType::kBool, 1);
  for (size_t d = 0; d < axes.size(); ++d) {
    bool none = begin[d]->kind == kir::ExprNode::Kind::kConst && begin[d]->value == 0;
    Expr src = none ? Expr(axes[d]) : Expr(axes[d]) - begin[d];
    if (mode == "constant" || x.dim(d) == 0) {
      inside = inside && kir::inRange(src, x.dim(d));
      index.push_back(src);
    } else {
      index.push_back(padSource(mode, src, x.dim(d)));
    }
  }
  Expr value = toCompute(x.load(index));
  if (mode == "constant") value = kir::select(inside, value, fill);
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

bool runTimeSplit(const NodeView& ctx) { return ctx.opset() >= 13 && ctx.hasInput(1) && !ctx.constantInput(1); }

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
  if (runTimeSplit(ctx)) {
    KILN_ASSIGN_OR_RETURN(ir::Shape split, inputShapeOfRank(ctx, 1, "split", 1));
    if (!split[0].isKnown() || static_cast<size_t>(split[0].value) != ctx.numOutputs())
      return ctx.error("split (input 1) has shape " + ir::toString(split) + " for " + std::to_string(ctx.numOutputs()) +
                       " outputs");
    for (size_t i = 0; i < ctx.numOutputs(); ++i) {
      ir::Shape out = in;
      out[static_cast<size_t>(axis)] = ir::Dim{};
      ctx.setOutputType(i, {ctx.inputType(0).dtype, out});
    }
    return Status::ok();
  }
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> sizes, splitSizes(ctx, d.value));
  for (size_t i = 0; i < sizes.size(); ++i) {
    ir::Shape out = in;
    out[static_cast<size_t>(axis)] = ir::Dim::known(sizes[i]);
    ctx.setOutputType(i, {ctx.inputType(0).dtype, out});
  }
  return Status::ok();
}

// Split sizes read at run time: a kernel of shape steps stores them as the
// outputs' dims along the axis, checks they add up to the dim, and keeps
// each part's offset in a slot.
Expected<std::vector<Expr>> lowerRunTimeSplitOffsets(LowerContext& ctx, size_t axis) {
  if (ctx.isDynamicInput(0)) return ctx.unsupportedError("input 0 has a run-time shape as well");
  std::vector<int64_t> dims = ctx.inputDims(0);
  ctx.newKernel("shape");
  std::vector<int> sizes = readIntoSlots(ctx, ctx.input(1), static_cast<int64_t>(ctx.numOutputs()));
  std::vector<Expr> offsets;
  Expr total = Expr::index(0), valid = Expr::constant(ir::DType::kBool, 1);
  for (size_t i = 0; i < sizes.size(); ++i) {
    offsets.push_back(total);
    Expr size = kir::slotValue(sizes[i]);
    valid = valid && (size >= Expr::index(0)) && (size <= Expr::index(dims[axis]));
    total = total + size;
    if (!ctx.hasOutput(i)) continue;
    std::vector<Expr> out_dims;
    for (size_t d = 0; d < dims.size(); ++d) out_dims.push_back(d == axis ? size : Expr::index(dims[d]));
    setOutputDims(ctx, i, out_dims);
  }
  ctx.builder().check(ctx.addCheck("split " + slotsShape(sizes) + " (input 1) has a negative size or does not add up "
                                   "to the size " + std::to_string(dims[axis]) + " of axis " + std::to_string(axis)),
                      valid && kir::eq(total, Expr::index(dims[axis])));
  for (Expr& offset : offsets) {  // sums of slots, kept in slots for the part kernels
    int slot = ctx.newSlot();
    ctx.builder().setSlot(slot, offset);
    offset = kir::slotValue(slot);
  }
  return offsets;
}

Status lowerSplit(LowerContext& ctx) {
  std::vector<int64_t> dims = ctx.inputDims(0);
  KILN_ASSIGN_OR_RETURN(int64_t axis, splitAxis(ctx, static_cast<int64_t>(dims.size())));
  size_t a = static_cast<size_t>(axis);
  std::vector<Expr> offsets;
  if (runTimeSplit(ctx)) {
    KILN_ASSIGN_OR_RETURN(offsets, lowerRunTimeSplitOffsets(ctx, a));
  } else {
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> sizes, splitSizes(ctx, dims[a]));
    int64_t offset = 0;
    for (int64_t size : sizes) {
      offsets.push_back(Expr::index(offset));
      offset += size;
    }
  }
  for (size_t i = 0; i < offsets.size(); ++i) {
    if (!ctx.hasOutput(i)) continue;
    kir::KernelBuilder& kb = ctx.newKernel("part" + std::to_string(i));
    Buffer x = ctx.input(0);
    Buffer y = ctx.output(i);
    std::vector<kir::IterVar> axes = ctx.outputVars(i);
    std::vector<Expr> index = asExprs(axes);
    bool zero = offsets[i]->kind == kir::ExprNode::Kind::kConst && offsets[i]->value == 0;
    if (!zero) index[a] = index[a] + offsets[i];
    kb.compute(y, axes, x.load(index));
  }
  return Status::ok();
}

}  // namespace

void registerSlicingOps(OpRegistry& registry) {
  registry.add(OpSchema{"",
                        "Slice",
                        {1, 10, 11, 13},
                        {{"starts", Kind::kInts}, {"ends", Kind::kInts}, {"axes", Kind::kInts}},
                        inferSlice,
                        lowerSlice});
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
}

}  // namespace kiln::ops
