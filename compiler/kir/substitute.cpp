#include "compiler/kir/substitute.h"

#include <algorithm>
#include <unordered_map>

namespace kiln::kir {
namespace {

class Rewriter {
 public:
  explicit Rewriter(const std::function<Expr(const Expr&)>& fn) : fn_(fn) {}

  Expr operator()(const Expr& e) {
    // A node with one owner is reached once: only shared ones are memoized
    // (the memo's allocations dominated fusing long elementwise chains).
    const bool shared = e.node().use_count() > 1;
    if (shared) {
      auto it = done_.find(e.node().get());
      if (it != done_.end()) return it->second;
    }
    std::vector<Expr> operands;
    operands.reserve(e->operands.size());
    bool same = true;
    for (const Expr& operand : e->operands) {
      operands.push_back((*this)(operand));
      same = same && operands.back().node() == operand.node();
    }
    Expr rebuilt = e;
    if (!same) {
      ExprNode node = *e;
      node.operands = std::move(operands);
      rebuilt = Expr(std::make_shared<const ExprNode>(std::move(node)));
    }
    Expr result = fn_(rebuilt);
    if (shared) done_.emplace(e.node().get(), result);
    return result;
  }

 private:
  const std::function<Expr(const Expr&)>& fn_;
  std::unordered_map<const ExprNode*, Expr> done_;
};

Expr withNode(const Expr& e, const std::function<void(ExprNode&)>& edit) {
  ExprNode node = *e;
  edit(node);
  return Expr(std::make_shared<const ExprNode>(std::move(node)));
}

}  // namespace

Expr rewrite(const Expr& e, const std::function<Expr(const Expr&)>& fn) { return Rewriter(fn)(e); }

Expr substitute(const Expr& e, const std::map<int, Expr>& vars) {
  return rewrite(e, [&](const Expr& n) {
    if (n->kind != ExprNode::Kind::kVar) return n;
    auto it = vars.find(n->var_id);
    return it == vars.end() ? n : it->second;
  });
}

Expr shiftVarIds(const Expr& e, int offset) {
  if (offset == 0) return e;
  return rewrite(e, [&](const Expr& n) {
    if (n->kind == ExprNode::Kind::kVar) return withNode(n, [&](ExprNode& m) { m.var_id += offset; });
    if (n->kind == ExprNode::Kind::kReduce)
      return withNode(n, [&](ExprNode& m) {
        for (IterVar& v : m.reduce_vars) v.id += offset;
      });
    return n;
  });
}

Expr remapParams(const Expr& e, const std::vector<int>& param_map) {
  return rewrite(e, [&](const Expr& n) {
    if (n->kind != ExprNode::Kind::kLoad || param_map[n->buffer] == n->buffer) return n;
    return withNode(n, [&](ExprNode& m) { m.buffer = param_map[m.buffer]; });
  });
}

int maxVarId(const Expr& e) {
  int best = -1;
  rewrite(e, [&](const Expr& n) {
    if (n->kind == ExprNode::Kind::kVar) best = std::max(best, n->var_id);
    for (const IterVar& v : n->reduce_vars) best = std::max(best, v.id);
    return n;
  });
  return best;
}

int maxVarId(const Kernel& kernel) {
  int best = -1;
  for (const Stage& stage : kernel.stages) {
    for (const IterVar& v : stage.axes) best = std::max(best, v.id);
    for (const Expr& index : stage.store_index) best = std::max(best, maxVarId(index));
    best = std::max(best, maxVarId(stage.value));
  }
  return best;
}

int64_t treeSize(const Expr& e, int64_t limit) {
  int64_t size = 1;
  for (const Expr& operand : e->operands) {
    if (size >= limit) break;
    size += treeSize(operand, limit - size);
  }
  return std::min(size, limit);
}

}  // namespace kiln::kir
