#include "compiler/ir/graph.h"

#include <algorithm>
#include <set>
#include <unordered_map>
#include <unordered_set>

namespace kiln::ir {

const char* Attribute::kindName(Kind kind) {
  static constexpr const char* kNames[] = {"int",  "float",  "string",  "tensor",  "graph",
                                           "ints", "floats", "strings", "tensors", "graphs"};
  return kNames[static_cast<int>(kind)];
}

std::string Node::describe() const {
  std::string out = domain.empty() ? op_type : domain + "." + op_type;
  out += " '" + name + "'";
  return out;
}

const Attribute* Node::attribute(const std::string& key) const {
  auto it = attributes.find(key);
  return it == attributes.end() ? nullptr : &it->second;
}

Value* Graph::addValue(std::string value_name, TensorType type) {
  auto value = std::make_unique<Value>();
  value->name = std::move(value_name);
  value->type = std::move(type);
  Value* raw = value.get();
  if (!raw->name.empty()) by_name_[raw->name] = raw;
  values_.push_back(std::move(value));
  return raw;
}

Node* Graph::addNode(std::string op_type, std::string node_name) {
  auto node = std::make_unique<Node>();
  node->op_type = std::move(op_type);
  node->name = std::move(node_name);
  nodes_.push_back(std::move(node));
  return nodes_.back().get();
}

Value* Graph::findValue(const std::string& value_name) const {
  auto it = by_name_.find(value_name);
  return it == by_name_.end() ? nullptr : it->second;
}

std::vector<Value*> Graph::outerReads() const {
  std::unordered_set<const Value*> own;
  for (const auto& v : values_) own.insert(v.get());
  std::vector<Value*> reads;
  std::unordered_set<const Value*> seen;
  auto note = [&](Value* v) {
    if (v && !own.count(v) && seen.insert(v).second) reads.push_back(v);
  };
  for (const auto& node : nodes_) {
    for (Value* in : node->inputs) note(in);
    for (const auto& [key, attr] : node->attributes)
      for (const auto& sub : attr.graphs)
        for (Value* v : sub->outerReads()) note(v);
  }
  return reads;
}

// Everything `node` needs before it runs: its inputs and its subgraphs' captures.
static std::vector<Value*> dependencies(const Node& node) {
  std::vector<Value*> deps = node.inputs;
  for (const auto& [key, attr] : node.attributes)
    for (const auto& sub : attr.graphs)
      for (Value* v : sub->outerReads()) deps.push_back(v);
  return deps;
}

Status Graph::sortTopologically() {
  std::unordered_map<const Node*, size_t> pending;  // unresolved producer count
  std::unordered_map<const Value*, std::vector<Node*>> readers;
  std::unordered_set<const Node*> in_graph;
  for (const auto& node : nodes_) in_graph.insert(node.get());
  for (const auto& node : nodes_) {
    size_t count = 0;
    for (Value* in : dependencies(*node)) {
      if (in && in->producer && in_graph.count(in->producer)) {
        ++count;
        readers[in].push_back(node.get());
      }
    }
    pending[node.get()] = count;
  }
  std::vector<Node*> ready;
  for (const auto& node : nodes_)
    if (pending[node.get()] == 0) ready.push_back(node.get());
  std::vector<Node*> order;
  order.reserve(nodes_.size());
  // Process in original order where possible so a sorted graph stays as it was.
  std::reverse(ready.begin(), ready.end());
  while (!ready.empty()) {
    Node* node = ready.back();
    ready.pop_back();
    order.push_back(node);
    std::vector<Node*> unlocked;
    for (Value* out : node->outputs) {
      if (!out) continue;
      for (Node* reader : readers[out])
        if (--pending[reader] == 0) unlocked.push_back(reader);
    }
    for (auto it = unlocked.rbegin(); it != unlocked.rend(); ++it) ready.push_back(*it);
  }
  if (order.size() != nodes_.size()) {
    for (const auto& node : nodes_)
      if (pending[node.get()] != 0)
        return invalidInput("graph '" + name + "' has a cycle through node " + node->describe());
  }
  std::unordered_map<const Node*, size_t> position;
  for (size_t i = 0; i < order.size(); ++i) position[order[i]] = i;
  std::sort(nodes_.begin(), nodes_.end(),
            [&](const auto& a, const auto& b) { return position[a.get()] < position[b.get()]; });
  return Status::ok();
}

std::vector<Node*> Graph::usersOf(const Value* value) const {
  std::vector<Node*> users;
  for (const auto& node : nodes_)
    if (std::find(node->inputs.begin(), node->inputs.end(), value) != node->inputs.end())
      users.push_back(node.get());
  return users;
}

void Graph::eraseNode(Node* node) {
  for (Value* out : node->outputs)
    if (out && out->producer == node) out->producer = nullptr;
  std::erase_if(nodes_, [&](const auto& n) { return n.get() == node; });
}

void Graph::replaceAllUses(Value* from, Value* to) {
  for (const auto& node : nodes_)
    for (Value*& in : node->inputs)
      if (in == from) in = to;
  for (Value*& out : outputs)
    if (out == from) out = to;
}

size_t Graph::removeDeadNodes() {
  std::unordered_set<const Value*> live(outputs.begin(), outputs.end());
  std::vector<bool> keep(nodes_.size(), false);
  for (size_t i = nodes_.size(); i-- > 0;) {
    const Node& node = *nodes_[i];
    bool used = std::any_of(node.outputs.begin(), node.outputs.end(),
                            [&](const Value* v) { return v && live.count(v); });
    if (!used) continue;
    keep[i] = true;
    for (const Value* in : dependencies(node)) live.insert(in);  // subgraph captures keep their producers
  }
  size_t removed = 0;
  std::vector<std::unique_ptr<Node>> kept;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (keep[i]) {
      kept.push_back(std::move(nodes_[i]));
    } else {
      for (Value* out : nodes_[i]->outputs)
        if (out) out->producer = nullptr;
      ++removed;
    }
  }
  nodes_ = std::move(kept);
  return removed;
}

void Graph::removeUnusedValues() {
  std::unordered_set<const Value*> used(inputs.begin(), inputs.end());
  used.insert(outputs.begin(), outputs.end());
  for (const auto& node : nodes_) {
    std::vector<Value*> deps = dependencies(*node);  // inputs and subgraph captures
    used.insert(deps.begin(), deps.end());
    used.insert(node->outputs.begin(), node->outputs.end());
  }
  std::erase_if(values_, [&](const auto& v) {
    if (used.count(v.get())) return false;
    auto it = by_name_.find(v->name);
    if (it != by_name_.end() && it->second == v.get()) by_name_.erase(it);
    return true;
  });
}

Status Graph::verify() const {
  std::unordered_set<const Value*> defined(inputs.begin(), inputs.end());
  std::unordered_set<const Value*> own;
  for (const auto& v : values_) {
    own.insert(v.get());
    if (v->isConstant()) defined.insert(v.get());
  }
  for (const auto& node : nodes_) {
    for (size_t i = 0; i < node->inputs.size(); ++i) {
      const Value* in = node->inputs[i];
      if (!in) continue;
      // Values of enclosing graphs are visible inside subgraphs.
      if (!own.count(in)) continue;
      if (!defined.count(in))
        return internalError(node->describe() + " reads '" + in->name + "' (input " + std::to_string(i) +
                             ") before it is produced");
    }
    for (const Value* out : node->outputs) {
      if (!out) continue;
      if (out->producer != node.get())
        return internalError(node->describe() + ": output '" + out->name + "' has a different producer");
      defined.insert(out);
    }
  }
  for (const Value* out : outputs)
    if (!defined.count(out) && own.count(out))
      return invalidInput("graph output '" + out->name + "' is not produced by any node");
  return Status::ok();
}

int64_t Model::opsetFor(const std::string& domain_name) const {
  auto it = opset_imports.find(domain_name);
  if (it == opset_imports.end() && domain_name == "ai.onnx") it = opset_imports.find("");
  return it == opset_imports.end() ? 0 : it->second;
}

}  // namespace kiln::ir
