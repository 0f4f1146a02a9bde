// Building blocks for ops whose output shape is computed at run time from
// input data (Reshape with a computed target, Expand, Tile, Range,
// ConstantOfShape, ...). Such an op emits a kernel of shape steps first:
// it reads the small integer inputs that decide the shape, stores the
// output dims in dim slots (LowerContext::newSlot) and checks them; its
// element kernels then iterate over those slots. See docs/architecture.md,
// "Run-time shapes".
#pragma once

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
Status lowerRunTimeConstantOfShape(LowerContext& ctx, double fill);
Status inferRunTimeRange(InferContext& ctx);
Status lowerRunTimeRange(LowerContext& ctx);
Status inferRunTimeSqueeze(InferContext& ctx, const ir::Shape& in, bool squeeze);  // false: Unsqueeze
Status lowerRunTimeSqueeze(LowerContext& ctx, bool squeeze);
// Slice's (run_time_slicing.cpp): `rank` is the data's.
Status inferRunTimeSlice(InferContext& ctx, size_t rank);
Status lowerRunTimeSlice(LowerContext& ctx);

}  // namespace kiln::ops
