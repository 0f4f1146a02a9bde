// Quantization arithmetic shared by the quantize family (quantize.cpp) and the
// quantized linear ops (quantized_linear.cpp):
//   quantize(v) = clamp(round_half_even(v) + zero_point, qmin, qmax)
// and the lookup of a scale or zero point that is per tensor, per axis or
// per block.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"

namespace kiln::ops {

struct QuantRange {
  double lo;
  double hi;
};

// The integer types a quantized tensor may have, with their ranges.
inline std::optional<QuantRange> quantRange(ir::DType dtype) {
  using ir::DType;
  switch (dtype) {
    case DType::kInt8: return QuantRange{-128.0, 127.0};
    case DType::kUInt8: return QuantRange{0.0, 255.0};
    case DType::kInt16: return QuantRange{-32768.0, 32767.0};
    case DType::kUInt16: return QuantRange{0.0, 65535.0};
    case DType::kInt32: return QuantRange{-2147483648.0, 2147483647.0};
    default: return std::nullopt;
  }
}

// `scaled` (a float: the real value divided by the scale) rounded half to
// even, plus the zero point (invalid Expr: none), saturated to `out`'s range.
// For 8- and 16-bit results the sum is formed in float32: it is exact while
// |round(scaled)| < 2^24, and beyond that any rounding of the sum lies far
// outside the range and saturates the same (vectors of float32 are twice
// as wide as of float64). int32 results sum in float64, where every int32
// is exact.
inline kir::Expr quantizeTo(ir::DType out, kir::Expr scaled, kir::Expr zero_point) {
  QuantRange range = *quantRange(out);
  const ir::DType sum_type = ir::byteSize(out) <= 2 ? ir::DType::kFloat32 : ir::DType::kFloat64;
  kir::Expr q = kir::cast(sum_type, kir::unary(kir::UnaryOp::kRound, std::move(scaled)));
  if (zero_point.valid()) q = q + kir::cast(sum_type, std::move(zero_point));
  q = kir::max(kir::min(q, range.hi), range.lo);
  return kir::cast(out, q);
}

// How a scale or zero point lines up with the tensor it describes.
struct QuantParamLayout {
  enum class Kind { kTensor, kAxis, kBlocked } kind = Kind::kTensor;
  size_t axis = 0;
  int64_t block_size = 0;
};

// The element of `param` (a scale or zero point laid out as `layout`) that
// applies to the tensor element at `index`.
inline kir::Expr quantParamAt(const LowerContext::Buffer& param, const QuantParamLayout& layout,
                              const std::vector<kir::Expr>& index) {
  switch (layout.kind) {
    case QuantParamLayout::Kind::kTensor:
      return param.load(std::vector<kir::Expr>(param.rank(), kir::Expr::index(0)));
    case QuantParamLayout::Kind::kAxis: return param.load({index[layout.axis]});
    case QuantParamLayout::Kind::kBlocked: {
      std::vector<kir::Expr> at = index;
      at[layout.axis] = at[layout.axis] / kir::Expr::index(layout.block_size);
      return param.load(at);
    }
  }
  return {};
}

// A scalar or one-element parameter: per tensor.
inline bool isPerTensor(const ir::Shape& shape) {
  if (shape.empty()) return true;
  return shape.size() == 1 && shape[0].isKnown() && shape[0].value == 1;
}

// An attribute that a later opset introduced is an error before it.
inline Status expectAttrSince(const NodeView& ctx, const char* name, int since) {
  if (ctx.opset() >= since || !ctx.hasAttr(name)) return Status::ok();
  return ctx.error(std::string("attribute '") + name + "' needs opset " + std::to_string(since) + " (model has " +
                   std::to_string(ctx.opset()) + ")");
}

}  // namespace kiln::ops
