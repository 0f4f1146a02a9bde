#include "passes/subgraph_match.h"

#include "compiler/ops/op_registry.h"
#include "passes/value_uses.h"

namespace kiln::passes {

ir::Node* producerOf(const ir::Value* v, const char* op) {
  if (!v || !v->producer || !v->producer->domain.empty() || v->producer->op_type != op) return nullptr;
  return v->producer;
}

std::optional<double> scalarConstant(const ir::Value* v) {
  if (!v || !v->isConstant() || v->constant->elementCount() != 1) return std::nullopt;
  ir::DType dtype = v->constant->dtype();
  if (!ir::isFloat(dtype) && !ir::isInteger(dtype)) return std::nullopt;
  return v->constant->floatAt(0);
}

bool innerValue(const ir::Graph& graph, const ir::Value* value, size_t readers,
                const std::unordered_set<const ir::Value*>& captured) {
  return value && !isGraphOutput(graph, value) && !captured.count(value) && graph.usersOf(value).size() == readers;
}

std::string domainFor(ir::Model& model, int64_t since_version) {
  if (model.opsetFor("") >= since_version) return "";
  model.opset_imports[std::string(ops::kKilnDomain)] = 1;
  return std::string(ops::kKilnDomain);
}

bool rewriteEach(ir::Graph& graph, const char* op, const std::function<bool(ir::Node&)>& rewrite_at) {
  std::vector<ir::Node*> nodes;
  for (const auto& node : graph.nodes())
    if (node->domain.empty() && node->op_type == op) nodes.push_back(node.get());
  bool changed = false;
  for (ir::Node* node : nodes) changed = rewrite_at(*node) || changed;
  if (changed) graph.removeUnusedValues();
  return changed;
}

void replaceMatch(ir::Graph& graph, const SubgraphMatch& match, const std::string& op, const std::string& domain,
                  std::vector<ir::Value*> inputs, std::map<std::string, ir::Attribute> attributes) {
  ir::Node& root = *match.root;
  root.op_type = op;
  root.domain = domain;
  root.inputs = std::move(inputs);
  root.attributes = std::move(attributes);
  root.outputs.resize(1);
  for (ir::Node* node : match.inner) graph.eraseNode(node);
}

}  // namespace kiln::passes
