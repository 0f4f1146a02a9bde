// Rewriting kernel IR expressions: substituting iteration variables by
// expressions, renumbering variables and parameters, and the small queries
// that fusion needs (variable ids in use, tree size).
#pragma once

#include <functional>
#include <map>
#include <vector>

#include "compiler/kir/kir.h"

namespace kiln::kir {

// Rebuilds `e` bottom-up. `fn` sees each node with its operands already
// rewritten and returns its replacement (or the node itself). Shared subtrees
// are rewritten once, so a DAG stays a DAG.
Expr rewrite(const Expr& e, const std::function<Expr(const Expr&)>& fn);

// Every kVar whose id is a key of `vars` becomes the mapped expression. The
// replacements are inserted as they are (not rewritten again).
Expr substitute(const Expr& e, const std::map<int, Expr>& vars);

// Adds `offset` to the id of every variable that `e` reads or reduces over.
Expr shiftVarIds(const Expr& e, int offset);

// Every load of parameter p reads parameter param_map[p] instead.
Expr remapParams(const Expr& e, const std::vector<int>& param_map);

// The largest variable id a kernel uses (axes, reduce variables, reads), or -1.
int maxVarId(const Kernel& kernel);
int maxVarId(const Expr& e);

// Nodes of `e` counted as a tree (a shared subtree counts once per use), up
// to `limit`: a bound on the work of evaluating `e` once, cut off early.
int64_t treeSize(const Expr& e, int64_t limit);

}  // namespace kiln::kir
