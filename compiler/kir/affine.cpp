#include "compiler/kir/affine.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace kiln::kir {

std::optional<Affine> affine(const Expr& e) {
  const ExprNode& n = *e;
  if (ir::isFloat(n.dtype) || n.dtype == ir::DType::kBool) return std::nullopt;
  switch (n.kind) {
    case ExprNode::Kind::kConst: return Affine{static_cast<int64_t>(n.value), {}};
    case ExprNode::Kind::kVar: return Affine{0, {{n.var_id, 1}}};
    case ExprNode::Kind::kCast: return affine(n.operands[0]);
    case ExprNode::Kind::kBinary: {
      auto op = static_cast<BinaryOp>(n.op);
      std::optional<Affine> a = affine(n.operands[0]);
      std::optional<Affine> b = affine(n.operands[1]);
      if (!a || !b) return std::nullopt;
      if (op == BinaryOp::kAdd || op == BinaryOp::kSub) {
        int64_t sign = op == BinaryOp::kAdd ? 1 : -1;
        a->offset += sign * b->offset;
        for (auto [var, c] : b->coeff) a->coeff[var] += sign * c;
        return a;
      }
      if (op == BinaryOp::kDiv && b->coeff.empty() && b->offset == 1) return a;
      if (op == BinaryOp::kMul) {
        if (!a->coeff.empty() && !b->coeff.empty()) return std::nullopt;
        if (a->coeff.empty()) std::swap(a, b);
        for (auto& [var, c] : a->coeff) c *= b->offset;
        a->offset *= b->offset;
        return a;
      }
      return std::nullopt;
    }
    default: return std::nullopt;
  }
}

namespace {

// The row-major flat index of `index` into a buffer of `shape`, when affine.
std::optional<Affine> flatten(const std::vector<int64_t>& shape, const std::vector<Expr>& index) {
  if (index.size() != shape.size()) return std::nullopt;
  Affine flat;
  int64_t stride = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    std::optional<Affine> i = affine(index[d]);
    if (!i) return std::nullopt;
    flat.offset += i->offset * stride;
    for (auto [var, c] : i->coeff) flat.coeff[var] += c * stride;
    stride *= shape[d];
  }
  return flat;
}

}  // namespace

std::optional<Affine> flatIndex(const Kernel& kernel, const ExprNode& load) {
  return flatten(kernel.params[static_cast<size_t>(load.buffer)].shape, load.operands);
}

std::optional<Affine> flatStoreIndex(const Kernel& kernel, const Stage& stage) {
  return flatten(kernel.params[static_cast<size_t>(stage.buffer)].shape, stage.store_index);
}

bool storesDistinctAffine(const Stage& stage) {
  if (writesDistinctElements(stage)) return true;
  std::map<int, int64_t> extents;
  for (const IterVar& v : stage.axes) extents[v.id] = v.extent;
  std::map<int, bool> used;
  for (const Expr& index : stage.store_index) {
    std::optional<Affine> a = affine(index);
    if (!a) return false;
    std::vector<std::pair<int64_t, int64_t>> terms;  // |coefficient|, extent
    for (auto [var, c] : a->coeff) {
      if (c == 0) continue;
      auto extent = extents.find(var);
      if (extent == extents.end() || used[var]) return false;
      used[var] = true;
      terms.emplace_back(c < 0 ? -c : c, extent->second);
    }
    std::sort(terms.begin(), terms.end());
    int64_t span = 0;  // the largest sum the smaller terms reach
    for (auto [c, extent] : terms) {
      if (extent == 1) continue;
      if (c <= span) return false;
      span += c * (extent - 1);
    }
  }
  for (const IterVar& v : stage.axes)
    if (v.extent > 1 && !used[v.id]) return false;
  return true;
}

bool dependsOn(const Expr& e, int var_id) {
  const ExprNode& n = *e;
  if (n.kind == ExprNode::Kind::kVar) return n.var_id == var_id;
  for (const Expr& op : n.operands)
    if (dependsOn(op, var_id)) return true;
  return false;
}

}  // namespace kiln::kir
