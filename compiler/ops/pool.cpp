// Pooling: one output element is the max or mean of one window of X,
//   Y[n, c, o...] = pool_{r...} X[n, c, o*s + r*d - pad...]
// where padding never wins a max and, for the mean, counts only when
// count_include_pad says so. Each pool also comes channels-last, in Kiln's
// own domain (kiln.MaxPoolNhwc...: X and Y [N, spatial..., C], the same
// attributes), for the chains of kiln.ConvNhwc that the channels-last pass
// writes: the same window, the channel innermost.
#include <optional>
#include <utility>
#include <vector>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"
#include "compiler/ops/window.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using kir::Expr;

// Where X's channel axis is: after the batch (ONNX's pools) or last (the
// kiln.*Nhwc pools).
enum class Layout { kChannelsFirst, kChannelsLast };

// The spatial part of X's dims or shape in `layout`.
template <typename Dims>
Dims spatialPart(const Dims& dims, Layout layout) {
  return layout == Layout::kChannelsFirst ? Dims(dims.begin() + 2, dims.end()) : Dims(dims.begin() + 1, dims.end() - 1);
}

// The channel of X's dims, shape or axes in `layout`.
template <typename Dims>
typename Dims::value_type channelOf(const Dims& dims, Layout layout) {
  return layout == Layout::kChannelsFirst ? dims[1] : dims.back();
}

// A shape or an index in `layout`: the batch, then the channel and the
// spatial part in their places.
template <typename T>
std::vector<T> arrange(T batch, T channel, const std::vector<T>& spatial, Layout layout) {
  std::vector<T> out = {std::move(batch)};
  if (layout == Layout::kChannelsFirst) out.push_back(channel);
  out.insert(out.end(), spatial.begin(), spatial.end());
  if (layout == Layout::kChannelsLast) out.push_back(std::move(channel));
  return out;
}

// ceil_mode arrived in opset 10 (MaxPool, AveragePool).
bool ceilMode(const NodeView& ctx) { return ctx.attrInt("ceil_mode", 0) != 0; }

Expected<Window> poolWindow(const NodeView& ctx, std::span<const int64_t> in_sizes) {
  std::vector<int64_t> kernel = ctx.attrInts("kernel_shape");
  if (kernel.size() != in_sizes.size())
    return ctx.error("kernel_shape has " + std::to_string(kernel.size()) + " values, expected " +
                     std::to_string(in_sizes.size()) + " (one per spatial dim of X)");
  return resolveWindow(ctx, in_sizes, kernel, ceilMode(ctx));
}

Status inferPool(InferContext& ctx, DTypeClass dtypes, size_t max_outputs, Layout layout = Layout::kChannelsFirst) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 1));
  KILN_RETURN_IF_ERROR(expectOutputCount(ctx, max_outputs));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "X", dtypes));
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShapeOfMinRank(ctx, 0, "X", 3));
  std::vector<int64_t> in_sizes;
  for (const ir::Dim& d : spatialPart(x, layout)) in_sizes.push_back(d.value);  // -1 when unknown
  KILN_ASSIGN_OR_RETURN(Window window, poolWindow(ctx, in_sizes));
  ir::Shape spatial;
  for (int64_t size : window.out) spatial.push_back(size < 0 ? ir::Dim{} : ir::Dim::known(size));
  ir::Shape out = arrange(x[0], channelOf(x, layout), spatial, layout);
  ctx.setOutputType(0, {ctx.inputType(0).dtype, out});
  if (ctx.hasOutput(1)) ctx.setOutputType(1, {ir::DType::kInt64, out});
  return Status::ok();
}

Status inferMaxPool(InferContext& ctx) {
  int64_t order = ctx.attrInt("storage_order", 0);
  if (order != 0 && order != 1) return ctx.error("storage_order " + std::to_string(order) + " must be 0 or 1");
  // The Indices output exists since opset 8; int8/uint8 inputs since opset 12.
  return inferPool(ctx, ctx.opset() >= 12 ? DTypeClass::kNumeric : DTypeClass::kFloat, ctx.opset() >= 8 ? 2 : 1);
}

Status inferAveragePool(InferContext& ctx) { return inferPool(ctx, DTypeClass::kFloat, 1); }

// The kiln.*PoolNhwc ops: float (kiln.MaxPoolNhwc any numeric type, as
// MaxPool since opset 12), one output (no Indices).
Status inferPoolNhwc(InferContext& ctx) { return inferPool(ctx, DTypeClass::kFloat, 1, Layout::kChannelsLast); }
Status inferMaxPoolNhwc(InferContext& ctx) { return inferPool(ctx, DTypeClass::kNumeric, 1, Layout::kChannelsLast); }

// The pieces every windowed pool kernel shares.
struct PoolLoops {
  Window window;
  std::vector<int64_t> in_sizes;
  std::vector<kir::IterVar> axes;     // over Y
  std::vector<kir::IterVar> spatial;  // Y's spatial axes, a part of `axes`
  std::vector<kir::IterVar> offsets;  // over the kernel
  std::vector<Expr> positions;        // input position per spatial dim
  std::vector<Expr> x_index;          // n, c and the positions, in the layout's order
  std::optional<Expr> inside;
};

Expected<PoolLoops> poolLoops(LowerContext& ctx, kir::KernelBuilder& kb, const std::vector<int64_t>& out_dims,
                              Layout layout) {
  PoolLoops loops;
  loops.in_sizes = spatialPart(ctx.inputDims(0), layout);
  KILN_ASSIGN_OR_RETURN(loops.window, poolWindow(ctx, loops.in_sizes));
  loops.axes = kb.vars(out_dims, "o");
  loops.spatial = spatialPart(loops.axes, layout);
  loops.offsets = kb.vars(loops.window.kernel, "r");
  for (size_t i = 0; i < loops.window.rank(); ++i)
    loops.positions.push_back(inputPosition(loops.window, i, loops.spatial[i], loops.offsets[i]));
  loops.x_index = arrange<Expr>(loops.axes[0], channelOf(loops.axes, layout), loops.positions, layout);
  loops.inside = insideInput(loops.window, loops.positions, loops.in_sizes);
  return loops;
}

Expr guarded(const std::optional<Expr>& inside, Expr value, Expr outside) {
  return inside ? kir::select(*inside, std::move(value), std::move(outside)) : value;
}

// Indices (opset 8+): the position of the max in X flattened row-major with
// batch and channel, or with the spatial dims column-major when
// storage_order=1. Ties pick the first position.
Expr flatIndex(const LowerContext& ctx, const PoolLoops& loops) {
  std::vector<int64_t> x_dims = ctx.inputDims(0);
  bool column_major = ctx.attrInt("storage_order", 0) == 1;
  int64_t spatial_elems = 1;
  for (int64_t s : loops.in_sizes) spatial_elems *= s;
  Expr flat = (Expr(loops.axes[0]) * static_cast<double>(x_dims[1]) + loops.axes[1]) * static_cast<double>(spatial_elems);
  int64_t stride = 1;
  size_t n = loops.in_sizes.size();
  for (size_t step = 0; step < n; ++step) {
    size_t i = column_major ? step : n - 1 - step;
    flat = flat + loops.positions[i] * static_cast<double>(stride);
    stride *= loops.in_sizes[i];
  }
  return flat;
}

Status lowerMaxPool(LowerContext& ctx, Layout layout) {
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(0);
  LowerContext::Buffer y = ctx.output(0);
  KILN_ASSIGN_OR_RETURN(PoolLoops loops, poolLoops(ctx, kb, y.shape(), layout));
  Expr x_elem = toCompute(x.load(loops.x_index));
  Expr value = guarded(loops.inside, x_elem, lowestValue(x_elem.dtype()));
  kb.compute(y, loops.axes, kir::cast(y.dtype(), kir::reduce(kir::ReduceOp::kMax, loops.offsets, value)));
  if (!ctx.hasOutput(1)) return Status::ok();

  LowerContext::Buffer indices = ctx.output(1);
  int64_t x_elems = 1;
  for (int64_t d : x.shape()) x_elems *= d;
  Expr none = Expr::index(x_elems);  // past every valid index: loses every min
  Expr is_max = kir::eq(x_elem, toCompute(y.load(asExprs(loops.axes))));
  // Nested selects: the load in the comparison runs only inside the input.
  Expr candidate = guarded(loops.inside, kir::select(is_max, flatIndex(ctx, loops), none), none);
  kb.compute(indices, loops.axes, kir::reduce(kir::ReduceOp::kMin, loops.offsets, candidate));
  return Status::ok();
}

// The divisor of one window: the kernel size, less the positions outside X
// (count_include_pad=0) or outside X and its padding (count_include_pad=1).
Expr windowCount(const LowerContext& ctx, const PoolLoops& loops, ir::DType dtype) {
  bool include_pad = ctx.attrInt("count_include_pad", 0) != 0;
  const Window& w = loops.window;
  Expr count = Expr::index(1);
  for (size_t i = 0; i < w.rank(); ++i) {
    if (!mayLeaveInput(w, i, loops.in_sizes[i])) {
      count = count * static_cast<double>(w.kernel[i]);
      continue;
    }
    Expr start = Expr(loops.spatial[i]) * static_cast<double>(w.strides[i]) - static_cast<double>(w.pads_begin[i]);
    int64_t limit = include_pad ? loops.in_sizes[i] + w.pads_end[i] : loops.in_sizes[i];
    Expr end = kir::min(start + static_cast<double>(w.kernel[i]), Expr::index(limit));
    if (!include_pad) start = kir::max(start, Expr::index(0));
    count = count * (end - start);
  }
  return kir::cast(dtype, count);
}

Status lowerAveragePool(LowerContext& ctx, Layout layout) {
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(0);
  LowerContext::Buffer y = ctx.output(0);
  KILN_ASSIGN_OR_RETURN(PoolLoops loops, poolLoops(ctx, kb, y.shape(), layout));
  Expr x_elem = toCompute(x.load(loops.x_index));
  Expr sum = kir::reduce(kir::ReduceOp::kSum, loops.offsets,
                         guarded(loops.inside, x_elem, Expr::constant(x_elem.dtype(), 0)));
  kb.compute(y, loops.axes, kir::cast(y.dtype(), sum / windowCount(ctx, loops, x_elem.dtype())));
  return Status::ok();
}

// ---- Global pools: the window is all of X's spatial dims -------------------------

Status inferGlobalPool(InferContext& ctx, Layout layout) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 1));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "X", DTypeClass::kFloat));
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShapeOfMinRank(ctx, 0, "X", 3));
  ir::Shape out = arrange(x[0], channelOf(x, layout), ir::Shape(x.size() - 2, ir::Dim::known(1)), layout);
  ctx.setOutputType(0, {ctx.inputType(0).dtype, out});
  return Status::ok();
}

Status lowerGlobalPool(LowerContext& ctx, bool average, Layout layout) {
  std::vector<int64_t> spatial = spatialPart(ctx.inputDims(0), layout);
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(0);
  LowerContext::Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(y.shape(), "o");
  std::vector<kir::IterVar> window = kb.vars(spatial, "r");
  Expr x_elem = toCompute(
      x.load(arrange<Expr>(axes[0], channelOf(axes, layout), std::vector<Expr>(window.begin(), window.end()), layout)));
  int64_t count = 1;
  for (int64_t s : spatial) count *= s;
  Expr value;
  if (!average) {
    value = kir::reduce(kir::ReduceOp::kMax, window, x_elem);
  } else if (layout == Layout::kChannelsLast && x_elem.dtype() == ir::DType::kFloat32) {
    // sum(x * 1/count): a product under the sum, which the CPU backend
    // tiles as a contraction vectorized along the channel (X is contiguous
    // there); a plain sum would reduce each channel alone, at a stride.
    value = kir::reduce(kir::ReduceOp::kSum, window, x_elem * (1.0 / static_cast<double>(count)));
  } else {
    value = kir::reduce(kir::ReduceOp::kSum, window, x_elem) / static_cast<double>(count);
  }
  kb.compute(y, axes, kir::cast(y.dtype(), value));
  return Status::ok();
}

const std::vector<AttrSpec> kWindowAttrs = {{"auto_pad", Kind::kString}, {"kernel_shape", Kind::kInts, true},
                                            {"pads", Kind::kInts},       {"strides", Kind::kInts},
                                            {"ceil_mode", Kind::kInt}};

std::vector<AttrSpec> withWindowAttrs(std::vector<AttrSpec> extra) {
  extra.insert(extra.begin(), kWindowAttrs.begin(), kWindowAttrs.end());
  return extra;
}

}  // namespace

void registerPoolOps(OpRegistry& registry) {
  const std::vector<AttrSpec> max_attrs = withWindowAttrs({{"dilations", Kind::kInts}, {"storage_order", Kind::kInt}});
  const std::vector<AttrSpec> average_attrs = withWindowAttrs({{"count_include_pad", Kind::kInt}});
  for (Layout layout : {Layout::kChannelsFirst, Layout::kChannelsLast}) {
    const bool last = layout == Layout::kChannelsLast;
    const std::string_view domain = last ? kKilnDomain : "";
    const std::vector<int> opsets = {1};
    auto global = [layout](InferContext& ctx) { return inferGlobalPool(ctx, layout); };
    registry.add(OpSchema{domain, last ? "MaxPoolNhwc" : "MaxPool", last ? opsets : std::vector<int>{1, 8, 10, 11, 12},
                          max_attrs, last ? InferFn(inferMaxPoolNhwc) : InferFn(inferMaxPool),
                          [layout](LowerContext& ctx) { return lowerMaxPool(ctx, layout); }});
    registry.add(OpSchema{domain, last ? "AveragePoolNhwc" : "AveragePool", last ? opsets : std::vector<int>{1, 7, 10, 11},
                          average_attrs, last ? InferFn(inferPoolNhwc) : InferFn(inferAveragePool),
                          [layout](LowerContext& ctx) { return lowerAveragePool(ctx, layout); }});
    registry.add(OpSchema{domain, last ? "GlobalAveragePoolNhwc" : "GlobalAveragePool", opsets, {}, global,
                          [layout](LowerContext& ctx) { return lowerGlobalPool(ctx, true, layout); }});
    registry.add(OpSchema{domain, last ? "GlobalMaxPoolNhwc" : "GlobalMaxPool", opsets, {}, global,
                          [layout](LowerContext& ctx) { return lowerGlobalPool(ctx, false, layout); }});
  }
}

}  // namespace kiln::ops
