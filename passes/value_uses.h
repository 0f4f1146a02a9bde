// What the rewriting passes ask about a value before replacing it: who reads
// it (nodes, graph outputs, subgraphs capturing it), and a replacement that
// keeps graph outputs' names.
#pragma once

#include <unordered_set>

#include "compiler/ir/graph.h"

namespace kiln::passes {

// Values of `graph` that nested subgraphs (If/Loop/Scan bodies) read: such a
// value is referenced from places replaceAllUses does not reach.
std::unordered_set<const ir::Value*> capturedBySubgraphs(const ir::Graph& graph);

bool isGraphOutput(const ir::Graph& graph, const ir::Value* value);

// Drops the data of the constant `value` when nothing reads it any more (no
// node, graph output or subgraph): a pass that replaces weights (folded,
// transposed) then holds each weight once, not twice, until the pipeline
// removes the value itself.
void releaseIfUnread(ir::Graph& graph, ir::Value* value);

// Makes every reader of `value` (produced by a node that is about to be
// dropped) read `source` instead, which holds the same data. A graph output
// keeps its name: when `value` is one, `source`'s producer is made to produce
// `value` itself. Returns false, changing nothing, when that is impossible
// (`source` is a graph input, a constant, another graph output, or captured)
// or when `value` is captured by a subgraph.
bool forwardValue(ir::Graph& graph, ir::Value* value, ir::Value* source,
                  const std::unordered_set<const ir::Value*>& captured);

}  // namespace kiln::passes
