#include "passes/value_uses.h"

#include <algorithm>

namespace kiln::passes {

std::unordered_set<const ir::Value*> capturedBySubgraphs(const ir::Graph& graph) {
  std::unordered_set<const ir::Value*> captured;
  for (const auto& node : graph.nodes())
    for (const auto& [key, attribute] : node->attributes)
      for (const auto& subgraph : attribute.graphs)
        if (subgraph)
          for (const ir::Value* v : subgraph->outerReads()) captured.insert(v);
  return captured;
}

bool isGraphOutput(const ir::Graph& graph, const ir::Value* value) {
  return std::find(graph.outputs.begin(), graph.outputs.end(), value) != graph.outputs.end();
}

void releaseIfUnread(ir::Graph& graph, ir::Value* value) {
  if (!value || !value->isConstant() || isGraphOutput(graph, value) || !graph.usersOf(value).empty() ||
      capturedBySubgraphs(graph).count(value))
    return;
  value->constant.reset();
}

bool forwardValue(ir::Graph& graph, ir::Value* value, ir::Value* source,
                  const std::unordered_set<const ir::Value*>& captured) {
  if (value == source || captured.count(value)) return false;
  if (!isGraphOutput(graph, value)) {
    graph.replaceAllUses(value, source);
    return true;
  }
  ir::Node* producer = source->producer;
  bool own = producer && std::any_of(graph.nodes().begin(), graph.nodes().end(),
                                     [&](const auto& n) { return n.get() == producer; });
  if (!own || source->isConstant() || captured.count(source) || isGraphOutput(graph, source)) return false;
  // `value` takes `source`'s place as the producer's result; `source`'s
  // readers (which all come after the producer) read `value`.
  graph.replaceAllUses(source, value);
  ir::Node* old_producer = value->producer;
  if (old_producer)
    for (ir::Value*& out : old_producer->outputs)
      if (out == value) out = nullptr;
  producer->outputs[source->producer_output] = value;
  value->producer = producer;
  value->producer_output = source->producer_output;
  value->type = source->type;
  source->producer = nullptr;
  return true;
}

}  // namespace kiln::passes
