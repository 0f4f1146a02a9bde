// Building blocks for ops whose output shape is computed at run time from
// input data (Reshape with a computed target, Expand, Tile, Range,
// ConstantOfShape, ...). Such an op emits a kernel of shape steps first:
// it reads the small integer inputs that decide the shape, stores the
// output dims in dim slots (LowerContext::newSlot) and checks them; its
// element kernels then iterate over those slots. See docs/architecture.md,
// "Run-time shapes".
#pragma once

#include <functional>
#include <span>
#include <string>
#include <vector>

#include "compiler/lower/lower_context.h"

namespace kiln::ops {

// Element k of an integer input buffer (1-D, or 0-D for k == 0) as int64.
kir::Expr indexAt(const LowerContext::Buffer& b, int64_t k);

// In the current kernel: stores `sizes` as output `out`'s dims. A dim the
// graph left unknown takes the new slot; one it knows is checked against
// it. The run stops with an error naming the node when a size is negative
// or the output would be too large. Returns the slot of each dim.
std::vector<int> setOutputDims(LowerContext& ctx, size_t out, const std::vector<kir::Expr>& sizes);

// "[{$3}x{$4}]": the dims in `slots`, for a check's message.
std::string slotsShape(const std::vector<int>& slots);

// The product of slots' values equals `count` (and did not overflow).
kir::Expr productIs(const std::vector<int>& slots, int64_t count);

// A kernel copying input `in` to output `out` element by element in
// row-major order (a view: same element count, run-time dims).
void lowerRunTimeView(LowerContext& ctx, size_t in, size_t out);

// Output dims all unknown (rank `rank`), for shape inference when the
// input that decides them is computed at run time.
ir::Shape unknownDims(size_t rank);

// In the current kernel: a new slot per element of integer buffer `b`
// (its first `count`), holding that element.
std::vector<int> readIntoSlots(LowerContext& ctx, const LowerContext::Buffer& b, int64_t count);

// Run-time variants of reshaping.cpp's ops (run_time_reshaping.cpp); each
// infer function is called with the input's shape where it has one.
Status inferRunTimeExpand(InferContext& ctx, const ir::Shape& in);
Status lowerRunTimeExpand(LowerContext& ctx);
Status inferRunTimeTile(InferContext& ctx, const ir::Shape& in);
Status lowerRunTimeTile(LowerContext& ctx);
Status inferRunTimeConstantOfShape(InferContext& ctx, ir::DType dtype);
Status lowerRunTimeConstantOfShape(LowerContext& ctx);
// ConstantOfShape's `value` (0 when absent) as an expression of `dtype`.
kir::Expr constantOfShapeFill(const NodeView& ctx, ir::DType dtype);
Status inferRunTimeRange(InferContext& ctx);
Status lowerRunTimeRange(LowerContext& ctx);
Status inferRunTimeSqueeze(InferContext& ctx, const ir::Shape& in, bool squeeze);  // false: Unsqueeze
Status lowerRunTimeSqueeze(LowerContext& ctx, bool squeeze);
// Slice's (run_time_slicing.cpp): `rank` is the data's.
Status inferRunTimeSlice(InferContext& ctx, size_t rank);
Status lowerRunTimeSlice(LowerContext& ctx);

// ---- Data-dependent sizes (NonZero, Compress, Unique, NonMaxSuppression) ----
// Such an op's output size is a count over its data. Its first kernel
// computes the count into a dim slot; the output, sized by that slot, is
// allocated when the next kernel starts, and that kernel recomputes the
// scratch it needs (a kernel's scratch buffers are its own) and writes the
// output. Both sequential steps below are scatters (their store index is
// not the bare axis), which every backend runs serially and in order.

// A predicate or position of element i, as an expression of i (int64).
using IndexFn = std::function<kir::Expr(kir::Expr)>;

// In the current kernel: scratch pos (int64 [n + 1]) with pos[i] the number
// of i' < i for which `flag(i')` holds; pos[n] is the total.
LowerContext::Buffer prefixCount(LowerContext& ctx, const std::string& name, int64_t n, const IndexFn& flag);

// In the current kernel: scratch src (int64 [n + 1]) with src[position(i)] = i
// for each i in [0, n) where `flag(i)` holds. The positions of flagged
// elements must be distinct and in [0, n); entry n absorbs the others' writes.
LowerContext::Buffer scatterIndices(LowerContext& ctx, const std::string& name, int64_t n, const IndexFn& flag,
                                    const IndexFn& position);

// `value` != 0 as a bool (NaN counts as nonzero; bool passes through).
kir::Expr isNonZero(kir::Expr value);

// Elementwise ops whose inputs or outputs have run-time dims
// (run_time_elementwise.cpp). Whether the node has any:
bool hasRunTimeShape(const LowerContext& ctx);
// One value per output from the node inputs `inputs` (numpy-broadcast, the
// broadcasting checked at run time where the dims are run-time ones), each
// loaded in its compute dtype; results are cast to the outputs' dtypes.
// Outputs [0, num_outputs) take the broadcast shape.
using RunTimeElementFn = std::function<std::vector<kir::Expr>(std::span<const kir::Expr> x)>;
Status lowerRunTimeElementwise(LowerContext& ctx, const std::vector<size_t>& inputs, size_t num_outputs,
                               const RunTimeElementFn& fn);

}  // namespace kiln::ops
