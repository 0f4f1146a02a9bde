// Small building blocks shared by the ops' lowerings.
#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "compiler/ir/dtype.h"
#include "compiler/ir/tensor.h"
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

// An integer constant of `dtype` (`bits` read as that dtype), exact for any
// int64 or uint64: kernel IR constants are doubles, exact only up to 2^53, so
// a larger value is written hi * 2^32 + lo from two exact halves (no step of
// which overflows), and the backends fold it back into one immediate.
inline kir::Expr integerConstant(ir::DType dtype, int64_t bits) {
  constexpr int64_t kExact = int64_t{1} << 53;
  bool is_unsigned = ir::isUnsigned(dtype);
  if ((bits >= 0 || !is_unsigned) && bits >= -kExact && bits <= kExact)
    return kir::Expr::constant(dtype, static_cast<double>(bits));
  uint64_t u = static_cast<uint64_t>(bits);
  double hi = is_unsigned ? static_cast<double>(u >> 32) : static_cast<double>(bits >> 32);
  double lo = static_cast<double>(u & 0xffffffffu);
  return kir::Expr::constant(dtype, hi) * kir::Expr::constant(dtype, 4294967296.0) + kir::Expr::constant(dtype, lo);
}

// Element `i` of a constant tensor as an expression of `dtype` (the dtype its
// kernel computes in), exact for integers of any size.
inline kir::Expr tensorElement(const ir::Tensor& tensor, int64_t i, ir::DType dtype) {
  if (ir::isFloat(tensor.dtype())) return kir::Expr::constant(dtype, tensor.floatAt(i));
  return integerConstant(dtype, tensor.intAt(i));
}

inline std::vector<kir::Expr> asExprs(std::span<const kir::IterVar> vars) {
  return std::vector<kir::Expr>(vars.begin(), vars.end());
}

// `terms` (at least one) combined by `op` pairwise, level by level:
// ((t0 op t1) op (t2 op t3)) op t4... The expression is log2(n) deep rather
// than the n of a left fold, so a variadic op of ir::kMaxNodeInputs inputs
// keeps every recursive walk over kernel IR shallow. Up to three terms this
// is the left-to-right order.
inline kir::Expr combinePairwise(kir::BinaryOp op, std::vector<kir::Expr> terms) {
  while (terms.size() > 1) {
    std::vector<kir::Expr> next;
    next.reserve((terms.size() + 1) / 2);
    for (size_t i = 0; i + 1 < terms.size(); i += 2) next.push_back(kir::binary(op, terms[i], terms[i + 1]));
    if (terms.size() % 2 == 1) next.push_back(terms.back());
    terms = std::move(next);
  }
  return terms.front();
}

}  // namespace kiln::ops
