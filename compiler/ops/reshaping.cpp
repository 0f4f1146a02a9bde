// Ops that rearrange, repeat or generate elements: Shape, Size, Squeeze,
// Unsqueeze, Expand, Tile, DepthToSpace, SpaceToDepth, ConstantOfShape, Range,
// EyeLike, Trilu. Slice, Pad and Split are in slicing.cpp.
//
// Where an output's SHAPE depends on an input's VALUE (a target shape,
// repeats, Range's bounds) and that input is computed at run time, the
// run-time variant in run_time_reshaping.cpp computes the shape in the
// artifact (for Squeeze/Unsqueeze: which dims are 1).
// Values that only change elements (Trilu's k) may be run-time.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/broadcast.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"
#include "compiler/ops/run_time_shapes.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using kir::Expr;
using Buffer = LowerContext::Buffer;

// ---- Shared helpers ------------------------------------------------------------

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

// The dims of input 0 in [start, end) into output 0: a run-time dim read
// from its slot (the input is never read, so its data need not exist yet).
Status lowerRunTimeShape(LowerContext& ctx, size_t start, size_t end) {
  ctx.newSlot();  // taking a slot is how a lowering says it handles run-time shapes
  std::vector<int64_t> dims = ctx.inputDims(0);
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer y = ctx.output(0);
  for (size_t d = start; d < end; ++d) {
    int slot = ctx.inputDimSlot(0, d);
    Expr size = slot >= 0 ? kir::cast(ir::DType::kInt64, kir::slotValue(slot))
                          : Expr::constant(ir::DType::kInt64, static_cast<double>(dims[d]));
    kb.computeAt(y, {}, {Expr::index(static_cast<int64_t>(d - start))}, size);
  }
  return Status::ok();
}

Status lowerShape(LowerContext& ctx) {
  std::vector<int64_t> dims = ctx.inputDims(0);
  auto [start, end] = shapeRange(ctx, static_cast<int64_t>(dims.size()));
  if (ctx.isDynamicInput(0)) return lowerRunTimeShape(ctx, start, end);
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
// axes is an attribute before opset 13 and input 1 from 13 (a constant, or
// read at run time by run_time_reshaping.cpp).

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

bool runTimeAxes(const NodeView& ctx) { return ctx.opset() >= 13 && ctx.hasInput(1) && !ctx.constantInput(1); }

Status lowerSqueeze(LowerContext& ctx) {
  return runTimeAxes(ctx) ? lowerRunTimeSqueeze(ctx, true) : lowerViewCopy(ctx);
}

Status lowerUnsqueeze(LowerContext& ctx) {
  return runTimeAxes(ctx) ? lowerRunTimeSqueeze(ctx, false) : lowerViewCopy(ctx);
}

Status inferSqueeze(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, ctx.opset() < 13 ? 1 : 2));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "data", DTypeClass::kAnyData));
  KILN_ASSIGN_OR_RETURN(ir::Shape in, inputShape(ctx, 0, "data"));
  if (runTimeAxes(ctx)) return inferRunTimeSqueeze(ctx, in, true);
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
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "data", DTypeClass::kAnyData));
  KILN_ASSIGN_OR_RETURN(ir::Shape in, inputShape(ctx, 0, "data"));
  if (runTimeAxes(ctx)) return inferRunTimeSqueeze(ctx, in, false);
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

// ---- Expand, Tile --------------------------------------------------------------

Status inferExpand(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 2, 2));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "input", DTypeClass::kAnyKernel));
  KILN_ASSIGN_OR_RETURN(ir::Shape in, inputShape(ctx, 0, "input"));
  if (!ctx.constantInput(1)) return inferRunTimeExpand(ctx, in);
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
  if (!ctx.constantInput(1)) return lowerRunTimeExpand(ctx);
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
  if (!ctx.constantInput(1)) return inferRunTimeTile(ctx, in);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> repeats, constantInts(ctx, 1, "repeats"));
  if (repeats.size() != in.size())
    return ctx.error("repeats has " + std::to_string(repeats.size()) + " entries for input of rank " +
                     std::to_string(in.size()) + " (input 1)");
  ir::Shape out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (repeats[i] < 0) return ctx.error("repeats has negative entry " + std::to_string(repeats[i]) + " (input 1)");
    int64_t tiled = 0;
    if (in[i].isKnown() && __builtin_mul_overflow(in[i].value, repeats[i], &tiled))
      return ctx.error("repeats[" + std::to_string(i) + "] = " + std::to_string(repeats[i]) +
                       " makes the output dimension overflow 64 bits (input 1)");
    out.push_back(in[i].isKnown() ? ir::Dim::known(tiled) : (repeats[i] == 1 ? in[i] : ir::Dim{}));
  }
  ctx.setOutputType(0, {ctx.inputType(0).dtype, out});
  return Status::ok();
}

Status lowerTile(LowerContext& ctx) {
  if (!ctx.constantInput(1)) return lowerRunTimeTile(ctx);
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
  ir::DType dtype = ir::DType::kFloat32;
  if (const ir::Tensor* value = ctx.attrTensor("value")) {
    if (value->elementCount() != 1) return ctx.error("value must hold exactly one element");
    if (value->dtype() == ir::DType::kString) return ctx.unsupportedError("string values are not supported");
    dtype = value->dtype();
  }
  if (!ctx.constantInput(0)) return inferRunTimeConstantOfShape(ctx, dtype);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> shape, constantInts(ctx, 0, "input"));
  for (int64_t d : shape)
    if (d < 0) return ctx.error("shape has negative dim " + std::to_string(d) + " (input 0)");
  ctx.setOutputType(0, {dtype, ir::makeShape(shape)});
  return Status::ok();
}

Status lowerConstantOfShape(LowerContext& ctx) {
  if (!ctx.constantInput(0)) return lowerRunTimeConstantOfShape(ctx);
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(y.shape());
  kb.compute(y, axes, constantOfShapeFill(ctx, computeDType(y.dtype())));
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
  if (!ctx.constantInput(0) || !ctx.constantInput(1) || !ctx.constantInput(2)) return inferRunTimeRange(ctx);
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
  if (!is_float) {
    // Exactly, in 128 bits: doubles round int64 bounds, and limit - start or
    // i * delta may leave int64 although every element lies between the bounds.
    __int128 span = static_cast<__int128>(in[1]->intAt(0)) - in[0]->intAt(0);
    __int128 step = in[2]->intAt(0);
    if (step < 0) span = -span, step = -step;
    count_real = span <= 0 ? 0.0 : static_cast<double>((span + step - 1) / step);
  }
  if (!(count_real <= static_cast<double>(kMaxRangeElems)))
    return ctx.unsupportedError("the range has more than " + std::to_string(kMaxRangeElems) + " elements");
  int64_t count = count_real > 0 ? static_cast<int64_t>(count_real) : 0;
  auto intElement = [&](int64_t i) { return static_cast<__int128>(in[0]->intAt(0)) + __int128{i} * in[2]->intAt(0); };
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
        put(static_cast<int16_t>(intElement(i)));
        break;
      case ir::DType::kInt32:
        put(static_cast<int32_t>(intElement(i)));
        break;
      default:
        put(static_cast<int64_t>(intElement(i)));
        break;
    }
  }
  ctx.setOutputConstant(0, ir::Tensor::fromBytes(dtype, {count}, std::move(bytes)));
  return Status::ok();
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
    k = integerConstant(ir::DType::kInt64, value->intAt(0));
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
  registry.add(OpSchema{"", "Squeeze", {1, 11, 13, 21}, {{"axes", Kind::kInts}}, inferSqueeze, lowerSqueeze});
  registry.add(OpSchema{"", "Unsqueeze", {1, 11, 13, 21}, {{"axes", Kind::kInts}}, inferUnsqueeze, lowerUnsqueeze});
  registry.add(OpSchema{"", "Expand", {8, 13}, {}, inferExpand, lowerExpand});
  registry.add(OpSchema{"", "Tile", {1, 6, 13}, {}, inferTile, lowerTile});
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
  registry.add(OpSchema{"", "Range", {11}, {}, inferRange, lowerRunTimeRange});
  registry.add(OpSchema{"", "EyeLike", {9}, {{"dtype", Kind::kInt}, {"k", Kind::kInt}}, inferEyeLike, lowerEyeLike});
  registry.add(OpSchema{"", "Trilu", {14}, {{"upper", Kind::kInt}}, inferTrilu, lowerTrilu});
}

}  // namespace kiln::ops
