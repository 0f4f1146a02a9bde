// Small building blocks shared by the ops' lowerings.
#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "compiler/ir/dtype.h"
#include "compiler/kir/kir.h"

namespace kiln::ops {

// The dtype arithmetic runs in: half-precision values are widened to float32
// on load and narrowed on store, like every CPU without native fp16 math.
inline ir::DType computeDType(ir::DType dtype) {
  return dtype == ir::DType::kFloat16 || dtype == ir::DType::kBFloat16 ? ir::DType::kFloat32 : dtype;
}
inline kir::Expr toCompute(kir::Expr value) {
  ir::DType dtype = computeDType(value.dtype());  // before the move: argument order is unspecified
  return kir::cast(dtype, std::move(value));
}

// The identity of max: -inf for floats, the smallest value for integers.
inline kir::Expr lowestValue(ir::DType dtype) {
  using ir::DType;
  if (ir::isFloat(dtype)) return kir::Expr::constant(dtype, -std::numeric_limits<double>::infinity());
  struct Lowest { DType dtype; double value; };
  static constexpr Lowest kLowest[] = {
      {DType::kInt8, -128.0}, {DType::kInt16, -32768.0}, {DType::kInt32, -2147483648.0},
      {DType::kInt64, -9223372036854775808.0}};
  for (const Lowest& entry : kLowest)
    if (entry.dtype == dtype) return kir::Expr::constant(dtype, entry.value);
  return kir::Expr::constant(dtype, 0);  // unsigned and bool
}

inline std::vector<kir::Expr> asExprs(std::span<const kir::IterVar> vars) {
  return std::vector<kir::Expr>(vars.begin(), vars.end());
}

}  // namespace kiln::ops
