// Index helpers for ops that reduce over a subset of their input's dims (the
// Reduce* ops, ArgMax/ArgMin, Softmax, the norms): `reduced[i]` says whether
// dim i is reduced. A "statistic" has the input's shape with the reduced dims
// set to 1; a "row" is the set of input elements one statistic covers.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "compiler/kir/kir.h"

namespace kiln::ops {

// kir::reduce over no variables is the body itself (a reduction over no axes).
inline kir::Expr reduceOver(kir::ReduceOp op, const std::vector<kir::IterVar>& vars, kir::Expr body) {
  return vars.empty() ? body : kir::reduce(op, vars, std::move(body));
}

// The input's index for a stage over the statistics' shape: reduced dims walk
// the reduction vars `row`, the others the stage's axes.
inline std::vector<kir::Expr> rowIndex(const std::vector<bool>& reduced, const std::vector<kir::IterVar>& axes,
                                       const std::vector<kir::IterVar>& row) {
  std::vector<kir::Expr> index;
  size_t next = 0;
  for (size_t i = 0; i < reduced.size(); ++i) index.push_back(reduced[i] ? kir::Expr(row[next++]) : kir::Expr(axes[i]));
  return index;
}

// The statistics' index for the input's element `axes`.
inline std::vector<kir::Expr> statIndex(const std::vector<bool>& reduced, const std::vector<kir::IterVar>& axes) {
  std::vector<kir::Expr> index;
  for (size_t i = 0; i < reduced.size(); ++i) index.push_back(reduced[i] ? kir::Expr::index(0) : kir::Expr(axes[i]));
  return index;
}

struct RowShape {
  std::vector<int64_t> stat;  // the input's dims with the reduced ones set to 1
  std::vector<int64_t> row;   // the reduced dims' extents
  int64_t count = 1;          // elements per row
};

inline RowShape rowShape(const std::vector<int64_t>& dims, const std::vector<bool>& reduced) {
  RowShape shape{dims, {}, 1};
  for (size_t i = 0; i < dims.size(); ++i) {
    if (!reduced[i]) continue;
    shape.row.push_back(dims[i]);
    shape.count *= dims[i];
    shape.stat[i] = 1;
  }
  return shape;
}

}  // namespace kiln::ops
