// Sliding-window geometry shared by Conv and the pooling ops: kernel,
// strides, dilations, pads (explicit or from auto_pad) and output sizes.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "compiler/kir/kir.h"
#include "compiler/ops/op_registry.h"

namespace kiln::ops {

// A channels-last convolution over at most this many input channels (a
// network's stem: 3), unpadded, of group 1 and width dilation 1, reduces
// over its window's rows of KW * C contiguous floats (kiln.ConvNhwc's
// lowering); the channels-last pass pads such a convolution's input
// explicitly (kiln.PadNhwc) so that it can.
inline constexpr int64_t kMaxContiguousRowChannels = 4;

struct Window {
  std::vector<int64_t> kernel;
  std::vector<int64_t> strides;
  std::vector<int64_t> dilations;
  std::vector<int64_t> pads_begin;
  std::vector<int64_t> pads_end;
  std::vector<int64_t> out;  // -1 where the input size is unknown

  size_t rank() const { return kernel.size(); }
  // Input positions one window covers, first to last.
  int64_t span(size_t i) const { return (kernel[i] - 1) * dilations[i] + 1; }
};

// The sizes of the spatial dims (2 onward) of an N x C x spatial... shape;
// -1 where a dim is unknown.
std::vector<int64_t> spatialSizes(const ir::Shape& shape);

// A per-spatial-dim attribute (strides, dilations, pads...): `count` values,
// each at least `min_value`, `fallback` for every dim when absent.
Expected<std::vector<int64_t>> perDim(const NodeView& node, const char* name, size_t count, int64_t fallback,
                                      int64_t min_value);

// Reads auto_pad, pads, strides and dilations of `node` (ONNX defaults: no
// padding, stride 1, dilation 1) for spatial input sizes `in` (-1: unknown).
// `ceil_mode` rounds the output size up, but a window never starts in the
// right padding (it would see no input at all).
Expected<Window> resolveWindow(const NodeView& node, std::span<const int64_t> in, std::vector<int64_t> kernel,
                               bool ceil_mode);

// The input position read in spatial dim i by output position `out` at kernel
// offset `offset`: out * stride + offset * dilation - pad_begin.
kir::Expr inputPosition(const Window& window, size_t i, kir::Expr out, kir::Expr offset);

// Whether some window of dim i reaches outside [0, in): reads there need a guard.
bool mayLeaveInput(const Window& window, size_t i, int64_t in);

// The guard "every position is inside the input" over the dims that need it;
// nullopt when no window leaves the input.
std::optional<kir::Expr> insideInput(const Window& window, std::span<const kir::Expr> positions,
                                     std::span<const int64_t> in);

}  // namespace kiln::ops
