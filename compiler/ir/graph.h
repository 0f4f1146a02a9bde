// The Graph IR: SSA values with a TensorType, nodes with typed attributes, and
// subgraphs (If/Loop/Scan bodies) carried as nested graphs.
//
// Node order in a Graph is always a valid topological order; passes that add
// nodes use insertion helpers that keep it so, and verify() checks it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "compiler/ir/tensor.h"

namespace kiln::ir {

class Graph;
struct Node;

struct Value {
  std::string name;
  TensorType type;
  Node* producer = nullptr;  // null for graph inputs and constants
  int producer_output = 0;
  std::optional<Tensor> constant;  // initializers and folded values

  bool isConstant() const { return constant.has_value(); }
};

struct Attribute {
  enum class Kind { kInt, kFloat, kString, kTensor, kGraph, kInts, kFloats, kStrings, kTensors, kGraphs };
  Kind kind = Kind::kInt;
  int64_t i = 0;
  float f = 0;
  std::string s;
  Tensor t;
  std::vector<int64_t> ints;
  std::vector<float> floats;
  std::vector<std::string> strings;
  std::vector<Tensor> tensors;
  std::vector<std::shared_ptr<Graph>> graphs;  // one entry for kGraph

  static const char* kindName(Kind kind);
};

// The most inputs, and the most outputs, one node may have. ONNX leaves the
// variadic ops unbounded (Sum, Max, Min, Mean, Concat, Einsum,
// SequenceConstruct, Loop's carried values, Split's outputs...); exporters
// write tens to hundreds. Compile time grows faster than the count (a Concat
// is one stage per input, a Split one kernel per output), so the op table
// refuses larger nodes before inference (ops::OpRegistry::resolve). Measured
// at 1024 [2x3] inputs: Sum 1.3 s, Concat 3 s, Split (outputs) 4 s, each
// under 260 MB; at 4096, 9 s, 23 s and 27 s.
constexpr size_t kMaxNodeInputs = 1024;
constexpr size_t kMaxNodeOutputs = kMaxNodeInputs;

struct Node {
  std::string name;
  std::string op_type;
  std::string domain;                 // "" is the default ONNX domain
  std::vector<Value*> inputs;         // nullptr marks an omitted optional input
  std::vector<Value*> outputs;        // nullptr marks an omitted optional output
  std::map<std::string, Attribute> attributes;  // ordered: printing is deterministic

  // "Conv 'layer1/conv'" for error messages.
  std::string describe() const;
  const Attribute* attribute(const std::string& key) const;
  Value* input(size_t i) const { return i < inputs.size() ? inputs[i] : nullptr; }
};

class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  std::string name;
  std::vector<Value*> inputs;
  std::vector<Value*> outputs;
  Graph* parent = nullptr;  // enclosing graph, for subgraphs reading outer values

  Value* addValue(std::string name, TensorType type = {});
  Node* addNode(std::string op_type, std::string name = {});
  Value* findValue(const std::string& name) const;  // this graph only

  const std::vector<std::unique_ptr<Node>>& nodes() const { return nodes_; }
  const std::vector<std::unique_ptr<Value>>& values() const { return values_; }

  // Reorders nodes topologically; fails naming a node on a cycle or one that
  // reads a value nothing produces.
  Status sortTopologically();
  // Removes nodes whose outputs nobody reads (graph outputs count as read);
  // returns how many were removed.
  size_t removeDeadNodes();
  // Removes values that are neither produced, read, nor graph inputs/outputs.
  void removeUnusedValues();
  // Structural checks: producers consistent, order topological, outputs produced.
  Status verify() const;

  // Values this graph's nodes (or their nested subgraphs) read that belong to
  // an enclosing graph: what a subgraph captures.
  std::vector<Value*> outerReads() const;

  std::vector<Node*> usersOf(const Value* value) const;
  void eraseNode(Node* node);
  // Every use of `from` (node inputs and graph outputs) now reads `to`.
  void replaceAllUses(Value* from, Value* to);

 private:
  std::vector<std::unique_ptr<Value>> values_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::map<std::string, Value*> by_name_;
};

struct Model {
  int64_t ir_version = 0;
  std::map<std::string, int64_t> opset_imports;  // domain -> version ("" is ai.onnx)
  std::string producer_name;
  std::string producer_version;
  std::string domain;
  int64_t model_version = 0;
  std::string doc_string;
  std::map<std::string, std::string> metadata;
  Graph graph;

  int64_t opsetFor(const std::string& domain) const;
};

}  // namespace kiln::ir
