// expand-containers: turns sequences and optionals whose content is known at
// compile time into the tensor values they hold, so that lowering sees
// tensors only.
//
// Rewrites:
//   SplitToSequence with pieces of known sizes -> one Slice (+ Squeeze for
//     keepdims=0) per piece, and a SequenceConstruct of the pieces;
//   SequenceAt at a constant position          -> Identity of that element;
//   ConcatFromSequence                         -> Concat (of Unsqueezed
//     elements for new_axis=1);
//   OptionalGetElement of a known tensor       -> Identity of it;
//   SequenceLength, OptionalHasElement whose result inference knows -> Constant;
//   SequenceMap over sequences of known length -> its body, once per element
//     (bodies without nested subgraphs); over others -> the Loop of its
//     ONNX function (sequenceMapAsLoop).
// Then the container ops nobody reads any more are removed.
//
// Requires: shapes inferred (ops/containers.h follows each sequence back to
// its elements). Runs at every -O level after infer-shapes, whenever the
// model has a container. What is left reading a container afterwards is
// compiled over run-time values (ops/run_time_containers.cpp, in subgraphs
// too) or refused at lowering naming the node.
#include "passes/expand_containers.h"

#include <unordered_set>

#include "compiler/ops/containers.h"
#include "passes/infer_shapes.h"
#include "passes/value_uses.h"

namespace kiln::passes {
namespace {

using ir::ValueKind;

std::string uniqueName(const ir::Graph& graph, const std::string& base) {
  std::string name = base;
  for (int i = 1; graph.findValue(name); ++i) name = base + "_" + std::to_string(i);
  return name;
}

ir::Value* int64Constant(ir::Graph& graph, const std::string& base, std::vector<int64_t> values) {
  ir::Value* value = graph.addValue(uniqueName(graph, base));
  value->constant = ir::Tensor::fromValues<int64_t>(ir::DType::kInt64, {static_cast<int64_t>(values.size())},
                                                    std::span<const int64_t>(values));
  value->type = value->constant->type();
  return value;
}

ir::Value* addNodeWithOutput(ir::Graph& graph, const std::string& op, const std::string& node_name,
                             std::vector<ir::Value*> inputs, const std::string& output_name,
                             ir::TensorType type = {}) {
  ir::Node* node = graph.addNode(op, node_name);
  node->inputs = std::move(inputs);
  ir::Value* out = graph.addValue(uniqueName(graph, output_name), std::move(type));
  out->producer = node;
  out->producer_output = 0;
  node->outputs = {out};
  return out;
}

// Squeeze / Unsqueeze of one axis: the axes are an attribute before opset 13
// and an input from 13.
ir::Value* addAxisOp(ir::Graph& graph, int64_t opset, const std::string& op, ir::Value* x, int64_t axis,
                     const std::string& name, ir::TensorType type = {}) {
  if (opset >= 13)
    return addNodeWithOutput(graph, op, name, {x, int64Constant(graph, name + "_axes", {axis})}, name, type);
  ir::Value* out = addNodeWithOutput(graph, op, name, {x}, name, type);
  ir::Attribute axes;
  axes.kind = ir::Attribute::Kind::kInts;
  axes.ints = {axis};
  out->producer->attributes.emplace("axes", std::move(axes));
  return out;
}

void becomeIdentity(ir::Node& node, ir::Value* source) {
  node.op_type = "Identity";
  node.inputs = {source};
  node.attributes.clear();
}

// SplitToSequence whose pieces all have a known size along the axis.
Expected<bool> expandSplit(ir::Graph& graph, ir::Node& node, int64_t opset) {
  ir::Value* seq = node.outputs.empty() ? nullptr : node.outputs[0];
  KILN_ASSIGN_OR_RETURN(auto pieces, ops::staticSequence(seq));
  if (!pieces) return false;
  ir::Value* x = node.inputs[0];
  const int64_t rank = static_cast<int64_t>(x->type.shape->size());
  int64_t axis = node.attribute("axis") ? node.attribute("axis")->i : 0;
  if (axis < 0) axis += rank;
  const bool squeeze = !node.input(1) && node.attribute("keepdims") && node.attribute("keepdims")->i == 0;
  std::vector<int64_t> sizes;
  for (const ops::StaticElement& piece : *pieces) {
    if (squeeze) {
      sizes.push_back(1);
      continue;
    }
    const ir::Dim& size = (*piece.type.shape)[static_cast<size_t>(axis)];
    if (!size.isKnown()) return false;  // split sizes computed at run time
    sizes.push_back(size.value);
  }
  std::vector<ir::Value*> values;
  int64_t begin = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    const std::string name = seq->name + "_" + std::to_string(i);
    ir::TensorType sliced = (*pieces)[i].type;
    if (squeeze) sliced.shape->insert(sliced.shape->begin() + axis, ir::Dim::known(1));
    ir::Value* piece = addNodeWithOutput(graph, "Slice", name,
                                         {x, int64Constant(graph, name + "_starts", {begin}),
                                          int64Constant(graph, name + "_ends", {begin + sizes[i]}),
                                          int64Constant(graph, name + "_axes", {axis})},
                                         name, sliced);
    if (squeeze) piece = addAxisOp(graph, opset, "Squeeze", piece, axis, name + "_squeezed", (*pieces)[i].type);
    values.push_back(piece);
    begin += sizes[i];
  }
  node.attributes.clear();
  if (values.empty()) {
    node.op_type = "SequenceEmpty";
    ir::Attribute dtype;
    dtype.kind = ir::Attribute::Kind::kInt;
    dtype.i = static_cast<int64_t>(x->type.dtype);
    node.attributes.emplace("dtype", std::move(dtype));
  } else {
    node.op_type = "SequenceConstruct";
  }
  node.inputs = std::move(values);
  return true;
}

// The element values of a sequence known at compile time, when each one is a
// value of the graph already.
Expected<std::optional<std::vector<ir::Value*>>> elementValues(const ir::Value* sequence) {
  KILN_ASSIGN_OR_RETURN(auto elements, ops::staticSequence(sequence));
  if (!elements) return std::optional<std::vector<ir::Value*>>();
  std::vector<ir::Value*> values;
  for (const ops::StaticElement& e : *elements) {
    if (!e.value) return std::optional<std::vector<ir::Value*>>();
    values.push_back(e.value);
  }
  return std::optional(std::move(values));
}

Expected<bool> expandSequenceAt(ir::Node& node) {
  KILN_ASSIGN_OR_RETURN(auto elements, elementValues(node.inputs[0]));
  std::optional<int64_t> pos = ops::constantPosition(node.input(1));
  if (!elements || !pos) return false;
  const int64_t n = static_cast<int64_t>(elements->size());
  if (*pos < -n || *pos >= n) return false;  // inference reported it
  becomeIdentity(node, (*elements)[static_cast<size_t>(*pos < 0 ? *pos + n : *pos)]);
  return true;
}

Expected<bool> expandConcat(ir::Graph& graph, ir::Node& node, int64_t opset) {
  KILN_ASSIGN_OR_RETURN(auto elements, elementValues(node.inputs[0]));
  if (!elements || elements->empty()) return false;
  const ir::Attribute* new_axis = node.attribute("new_axis");
  if (new_axis && new_axis->i != 0) {
    const ir::Value* first = (*elements)[0];
    if (!first->type.shape) return false;
    const int64_t rank = static_cast<int64_t>(first->type.shape->size()) + 1;
    int64_t axis = node.attribute("axis")->i;
    if (axis < 0) axis += rank;
    for (size_t i = 0; i < elements->size(); ++i)
      (*elements)[i] = addAxisOp(graph, opset, "Unsqueeze", (*elements)[i], axis,
                                 node.outputs[0]->name + "_part" + std::to_string(i));
    node.attributes.erase("new_axis");
    node.attributes["axis"].i = axis;
  }
  node.op_type = "Concat";
  node.inputs = std::move(*elements);
  return true;
}

Expected<bool> expandGetElement(ir::Node& node) {
  ir::Value* in = node.inputs[0];
  if (in->type.kind == ValueKind::kTensor) {  // opset 18: a tensor is returned as it is
    becomeIdentity(node, in);
    return true;
  }
  if (in->type.kind != ValueKind::kOptionalTensor || ops::staticPresence(in) != true) return false;
  const ir::Value* v = in;
  while (v->producer->op_type == "Identity") v = v->producer->inputs[0];
  becomeIdentity(node, v->producer->inputs[0]);
  return true;
}

// A node whose one output inference made a constant (SequenceLength,
// OptionalHasElement) becomes a Constant, so the container it read can go.
bool becomeConstant(ir::Node& node) {
  if (node.outputs.size() != 1 || !node.outputs[0] || !node.outputs[0]->isConstant()) return false;
  node.op_type = "Constant";
  node.inputs.clear();
  node.attributes.clear();
  ir::Attribute value;
  value.kind = ir::Attribute::Kind::kTensor;
  value.t = *node.outputs[0]->constant;
  node.attributes.emplace("value", std::move(value));
  return true;
}

// SequenceMap over sequences of known length: the body once per element,
// its outputs gathered by a SequenceConstruct per output.
Expected<bool> inlineSequenceMap(ir::Graph& graph, ir::Node& node) {
  const ir::Graph& body = *node.attribute("body")->graphs[0];
  for (const auto& inner : body.nodes())
    for (const auto& [key, attr] : inner->attributes)
      if (!attr.graphs.empty()) return false;
  std::vector<std::optional<std::vector<ir::Value*>>> inputs;
  std::optional<size_t> length;
  for (ir::Value* in : node.inputs) {
    if (!in || in->type.kind != ValueKind::kSequence) {
      inputs.emplace_back();
      continue;
    }
    KILN_ASSIGN_OR_RETURN(auto elements, elementValues(in));
    if (!elements || (length && *length != elements->size())) return false;
    length = elements->size();
    inputs.push_back(std::move(elements));
  }
  if (!length) return false;
  std::vector<std::vector<ir::Value*>> results(node.outputs.size());
  for (size_t e = 0; e < *length; ++e) {
    std::unordered_map<const ir::Value*, ir::Value*> mapped;
    for (size_t i = 0; i < body.inputs.size() && i < node.inputs.size(); ++i)
      mapped[body.inputs[i]] = inputs[i] ? (*inputs[i])[e] : node.inputs[i];
    auto map = [&](ir::Value* v) -> ir::Value* {
      if (!v) return nullptr;
      auto it = mapped.find(v);
      if (it != mapped.end()) return it->second;
      if (!v->isConstant()) return v;  // read from an enclosing graph
      ir::Value* copy = graph.addValue(uniqueName(graph, v->name), v->type);
      copy->constant = v->constant;
      return mapped[v] = copy;
    };
    for (const auto& inner : body.nodes()) {
      ir::Node* clone = graph.addNode(inner->op_type, inner->name + "_" + std::to_string(e));
      clone->domain = inner->domain;
      clone->attributes = inner->attributes;
      for (ir::Value* in : inner->inputs) clone->inputs.push_back(map(in));
      for (size_t o = 0; o < inner->outputs.size(); ++o) {
        const ir::Value* out = inner->outputs[o];
        if (!out) {
          clone->outputs.push_back(nullptr);
          continue;
        }
        ir::Value* copy = graph.addValue(uniqueName(graph, out->name + "_" + std::to_string(e)), out->type);
        copy->producer = clone;
        copy->producer_output = static_cast<int>(o);
        clone->outputs.push_back(copy);
        mapped[out] = copy;
      }
    }
    for (size_t o = 0; o < body.outputs.size() && o < results.size(); ++o) results[o].push_back(map(body.outputs[o]));
  }
  for (size_t o = 0; o < node.outputs.size(); ++o) {
    ir::Value* out = node.outputs[o];
    if (!out) continue;
    ir::Node* construct = graph.addNode(results[o].empty() ? "SequenceEmpty" : "SequenceConstruct", node.name);
    construct->inputs = results[o];
    if (results[o].empty()) {
      ir::Attribute dtype;
      dtype.kind = ir::Attribute::Kind::kInt;
      dtype.i = static_cast<int64_t>(out->type.dtype);
      construct->attributes.emplace("dtype", std::move(dtype));
    }
    construct->outputs = {out};
    out->producer = construct;
    out->producer_output = 0;
  }
  node.outputs.clear();
  graph.eraseNode(&node);
  return true;
}

// SequenceMap over sequences known only at run time: the Loop the ONNX
// function defines, rewritten in place, so one mechanism runs it.
//   Loop(SequenceLength(s0), "", SequenceEmpty per output) with a body that
//   takes element `iteration` of each sequence input (SequenceAt), reads the
//   tensor inputs from outside, runs the original body and appends each
//   result to its loop-carried sequence (SequenceInsert).
// The original body graph becomes the Loop's body: its inputs become values
// that the new nodes produce, so nested subgraphs that read them still do.
Expected<bool> sequenceMapAsLoop(ir::Graph& graph, ir::Node& node) {
  std::shared_ptr<ir::Graph> body = node.attribute("body")->graphs[0];
  ir::Value* first_sequence = nullptr;
  for (ir::Value* in : node.inputs) {
    if (!in) return false;  // inference reports an omitted input
    if (in->type.kind == ValueKind::kSequence && !first_sequence) first_sequence = in;
  }
  if (!first_sequence || body->inputs.size() != node.inputs.size() || body->outputs.size() != node.outputs.size())
    return false;  // inference reports these
  const std::string& base = node.name.empty() ? std::string("SequenceMap") : node.name;
  ir::Graph& b = *body;
  ir::Value* iteration = b.addValue(uniqueName(b, base + "/iteration"), {ir::DType::kInt64, ir::Shape{}});
  ir::Value* cond = b.addValue(uniqueName(b, base + "/cond"), {ir::DType::kBool, ir::Shape{}});
  std::vector<ir::Value*> new_inputs = {iteration, cond};
  for (size_t i = 0; i < body->inputs.size(); ++i) {
    ir::Value* inner = body->inputs[i];
    bool sequence = node.inputs[i]->type.kind == ValueKind::kSequence;
    ir::Node* take = b.addNode(sequence ? "SequenceAt" : "Identity", base + "/input" + std::to_string(i));
    take->inputs = sequence ? std::vector<ir::Value*>{node.inputs[i], iteration} : std::vector<ir::Value*>{node.inputs[i]};
    take->outputs = {inner};
    inner->producer = take;
    inner->producer_output = 0;
  }
  std::vector<ir::Value*> new_outputs = {
      addNodeWithOutput(b, "Identity", base + "/cond_out", {cond}, base + "/cond_out", cond->type)};
  std::vector<ir::Value*> initial = {addNodeWithOutput(graph, "SequenceLength", base + "/length", {first_sequence},
                                                       base + "/length", {ir::DType::kInt64, ir::Shape{}}),
                                     nullptr};
  for (size_t k = 0; k < body->outputs.size(); ++k) {
    ir::TensorType type{body->outputs[k]->type.dtype, std::nullopt, ValueKind::kSequence};
    std::string suffix = "/out" + std::to_string(k);
    ir::Value* carried = b.addValue(uniqueName(b, base + suffix + "_in"), type);
    new_inputs.push_back(carried);
    new_outputs.push_back(addNodeWithOutput(b, "SequenceInsert", base + suffix + "_insert",
                                            {carried, body->outputs[k]}, base + suffix + "_out", type));
    ir::Value* empty = addNodeWithOutput(graph, "SequenceEmpty", base + suffix + "_empty", {}, base + suffix + "_empty", type);
    ir::Attribute dtype;
    dtype.kind = ir::Attribute::Kind::kInt;
    dtype.i = static_cast<int64_t>(type.dtype);
    empty->producer->attributes.emplace("dtype", std::move(dtype));
    initial.push_back(empty);
  }
  b.inputs = std::move(new_inputs);
  b.outputs = std::move(new_outputs);
  KILN_RETURN_IF_ERROR(b.sortTopologically());
  ir::Node* loop = graph.addNode("Loop", base);
  loop->inputs = std::move(initial);
  loop->outputs = node.outputs;
  for (size_t k = 0; k < loop->outputs.size(); ++k)
    if (ir::Value* out = loop->outputs[k]) {
      out->producer = loop;
      out->producer_output = static_cast<int>(k);
    }
  ir::Attribute attr;
  attr.kind = ir::Attribute::Kind::kGraph;
  attr.graphs = {body};
  loop->attributes.emplace("body", std::move(attr));
  node.outputs.clear();
  graph.eraseNode(&node);
  return true;
}

bool readsContainer(const ir::Node& node) {
  for (const ir::Value* in : node.inputs)
    if (in && !in->type.isTensor()) return true;
  return false;
}

// Removes container ops, Identities of containers and the nodes this round
// added (those not in `original`) whose results nobody reads: one backward
// sweep, since readers come after what they read.
void removeDeadContainers(ir::Graph& graph, const std::unordered_set<const ir::Node*>& original) {
  std::unordered_set<const ir::Value*> read = capturedBySubgraphs(graph);
  read.insert(graph.outputs.begin(), graph.outputs.end());
  std::vector<ir::Node*> dead;
  for (auto it = graph.nodes().rbegin(); it != graph.nodes().rend(); ++it) {
    ir::Node& node = **it;
    bool removable = ops::isContainerOp(node) || (node.op_type == "Identity" && readsContainer(node)) ||
                     !original.count(&node);
    bool used = false;
    for (const ir::Value* out : node.outputs) used = used || (out && read.count(out));
    if (removable && !used) {
      dead.push_back(&node);
      continue;
    }
    for (const ir::Value* in : node.inputs) read.insert(in);
  }
  for (ir::Node* node : dead) graph.eraseNode(node);
  if (!dead.empty()) graph.removeUnusedValues();
}


// One round over `graph`, its subgraphs (If/Loop/Scan bodies) first.
Expected<bool> expandGraph(ir::Graph& graph, int64_t opset) {
  bool changed = false;
  for (const auto& node : graph.nodes())
    for (auto& [key, attr] : node->attributes)
      for (const auto& sub : attr.graphs)
        if (sub) {
          KILN_ASSIGN_OR_RETURN(bool sub_changed, expandGraph(*sub, opset));
          changed = changed || sub_changed;
        }
  std::vector<ir::Node*> nodes;
  for (const auto& node : graph.nodes()) nodes.push_back(node.get());
  for (ir::Node* node : nodes) {
    if (!ops::isContainerOp(*node)) continue;
    const std::string& op = node->op_type;
    bool rewritten = false;
    if (op == "SplitToSequence") {
      KILN_ASSIGN_OR_RETURN(rewritten, expandSplit(graph, *node, opset));
    } else if (op == "SequenceAt") {
      KILN_ASSIGN_OR_RETURN(rewritten, expandSequenceAt(*node));
    } else if (op == "ConcatFromSequence") {
      KILN_ASSIGN_OR_RETURN(rewritten, expandConcat(graph, *node, opset));
    } else if (op == "OptionalGetElement") {
      KILN_ASSIGN_OR_RETURN(rewritten, expandGetElement(*node));
    } else if (op == "SequenceMap") {
      KILN_ASSIGN_OR_RETURN(rewritten, inlineSequenceMap(graph, *node));
      if (!rewritten) {
        KILN_ASSIGN_OR_RETURN(rewritten, sequenceMapAsLoop(graph, *node));
      }
    } else if (op == "SequenceLength" || op == "OptionalHasElement") {
      rewritten = becomeConstant(*node);
    }
    changed = changed || rewritten;
  }
  if (changed) KILN_RETURN_IF_ERROR(graph.sortTopologically());
  const size_t before = graph.nodes().size();
  removeDeadContainers(graph, std::unordered_set<const ir::Node*>(nodes.begin(), nodes.end()));
  return changed || graph.nodes().size() != before;
}

bool graphHasContainers(const ir::Graph& graph) {
  for (const auto& value : graph.values())
    if (!value->type.isTensor()) return true;
  for (const auto& node : graph.nodes()) {
    if (ops::isContainerOp(*node)) return true;
    for (const auto& [key, attr] : node->attributes)
      for (const auto& sub : attr.graphs)
        if (sub && graphHasContainers(*sub)) return true;
  }
  return false;
}

}  // namespace

bool hasContainers(const ir::Graph& graph) { return graphHasContainers(graph); }

Expected<bool> expandContainersOnce(ir::Model& model) { return expandGraph(model.graph, model.opsetFor("")); }

Status expandContainers(ir::Model& model) {
  // An inlined SequenceMap body may hold container ops of its own: a few rounds.
  constexpr int kMaxRounds = 4;
  for (int round = 0; round < kMaxRounds; ++round) {
    KILN_ASSIGN_OR_RETURN(bool changed, expandContainersOnce(model));
    if (!changed) break;
    KILN_RETURN_IF_ERROR(inferShapes(model));
  }
  return Status::ok();
}

}  // namespace kiln::passes
