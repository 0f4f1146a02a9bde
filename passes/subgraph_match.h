// What the recognition passes (recognize-layer-norm, recognize-gelu) share:
// reading the pieces of a matched subgraph, and replacing the subgraph by the
// one op it computes.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "compiler/ir/graph.h"

namespace kiln::passes {

// The producer of `v` when it is the ONNX op `op`, else nullptr.
ir::Node* producerOf(const ir::Value* v, const char* op);

// The value of a constant of one element (a scalar, [1], [1, 1]...), of any
// numeric dtype; nullopt for anything else.
std::optional<double> scalarConstant(const ir::Value* v);

// Whether `value` can disappear with the subgraph it is inside: `readers`
// nodes read it (each counted once), it is no graph output and no subgraph
// captures it.
bool innerValue(const ir::Graph& graph, const ir::Value* value, size_t readers,
                const std::unordered_set<const ir::Value*>& captured);

// The domain to write ONNX op `op`, which came in at opset `since_version`,
// in: ONNX's own when the model's opset has the op, else Kiln's twin of it
// (same name and meaning, domain kiln), whose import the model then gets.
std::string domainFor(ir::Model& model, int64_t since_version);

// The recognition passes' loop: `rewrite_at` is tried on every node of the
// ONNX op `op` (collected first, since rewriting erases nodes) and says
// whether it rewrote the graph there; values left unread go at the end.
// Returns whether anything was rewritten.
bool rewriteEach(ir::Graph& graph, const char* op, const std::function<bool(ir::Node&)>& rewrite_at);

// A matched subgraph: `root` produces its result, `inner` are its other nodes.
struct SubgraphMatch {
  ir::Node* root = nullptr;
  std::vector<ir::Node*> inner;
};

// Turns the match's root into `op` (in `domain`) over `inputs`, keeping its
// output value (name, readers, graph output) and its place in the order, which
// comes after every node of the match; the inner nodes are erased (their
// values stay until Graph::removeUnusedValues).
void replaceMatch(ir::Graph& graph, const SubgraphMatch& match, const std::string& op, const std::string& domain,
                  std::vector<ir::Value*> inputs, std::map<std::string, ir::Attribute> attributes);

}  // namespace kiln::passes
