// ONNX ModelProto -> ir::Model. In each graph the values are created first
// (graph inputs, initializers, node outputs) and node inputs resolved after,
// so every name can be checked against all the graph defines, and subgraphs
// can read any value of their enclosing graphs by name.
#include "compiler/onnx/importer.h"

#include <filesystem>
#include <unordered_map>
#include <unordered_set>

#include "compiler/onnx/attributes.h"
#include "compiler/onnx/import_detail.h"

namespace kiln::frontend {
namespace {

using detail::TensorSource;

std::string inQuotes(const std::string& name) { return "'" + name + "'"; }

ir::Value* lookupInScope(const ir::Graph* graph, const std::string& name) {
  for (; graph; graph = graph->parent)
    if (ir::Value* value = graph->findValue(name)) return value;
  return nullptr;
}

// Every value a node reads, including those its subgraphs read from outside.
void collectReads(const ir::Node& node, std::vector<const ir::Value*>& reads) {
  for (const ir::Value* in : node.inputs)
    if (in) reads.push_back(in);
  for (const auto& [key, attr] : node.attributes)
    for (const auto& sub : attr.graphs)
      for (const auto& inner : sub->nodes()) collectReads(*inner, reads);
}

// The first node that reads a value of `graph` before the value is defined,
// and that value; {nullptr, nullptr} when the order is topological.
std::pair<const ir::Node*, const ir::Value*> firstOutOfOrder(const ir::Graph& graph) {
  std::unordered_set<const ir::Value*> own, defined(graph.inputs.begin(), graph.inputs.end());
  for (const auto& value : graph.values()) {
    own.insert(value.get());
    if (value->isConstant()) defined.insert(value.get());
  }
  std::vector<const ir::Value*> reads;
  for (const auto& node : graph.nodes()) {
    reads.clear();
    collectReads(*node, reads);
    for (const ir::Value* read : reads)
      if (own.count(read) && !defined.count(read)) return {node.get(), read};
    defined.insert(node->outputs.begin(), node->outputs.end());
  }
  return {nullptr, nullptr};
}

class GraphImporter {
 public:
  explicit GraphImporter(TensorSource& source) : source_(source) {}

  Status importGraph(const onnx::GraphProto& proto, ir::Graph& graph);

 private:
  Expected<ir::Value*> define(ir::Graph& graph, const std::string& name, const std::string& definer);
  Status addInputs(const onnx::GraphProto& proto, ir::Graph& graph);
  Status addInitializers(const onnx::GraphProto& proto, ir::Graph& graph);
  Status addNodeOutputs(const onnx::NodeProto& proto, ir::Node& node, ir::Graph& graph);
  Status resolveNode(const onnx::NodeProto& proto, ir::Node& node, ir::Graph& graph);
  Status addOutputs(const onnx::GraphProto& proto, ir::Graph& graph);
  void applyValueInfo(const onnx::GraphProto& proto, ir::Graph& graph);
  Status checkOrder(ir::Graph& graph);

  TensorSource& source_;
  // Per graph being imported: who defined each name, for duplicate errors.
  std::unordered_map<const ir::Graph*, std::unordered_map<std::string, std::string>> definers_;
};

Expected<ir::Value*> GraphImporter::define(ir::Graph& graph, const std::string& name, const std::string& definer) {
  auto& definers = definers_[&graph];
  auto [it, inserted] = definers.emplace(name, definer);
  if (!inserted)
    return invalidInput("graph " + inQuotes(graph.name) + " defines value " + inQuotes(name) + " twice: as " +
                        it->second + " and as " + definer);
  return graph.addValue(name);
}

Status GraphImporter::addInputs(const onnx::GraphProto& proto, ir::Graph& graph) {
  std::unordered_set<std::string> initializers;
  for (const auto& t : proto.initializer()) initializers.insert(t.name());
  for (const auto& t : proto.sparse_initializer()) initializers.insert(t.values().name());
  for (int i = 0; i < proto.input_size(); ++i) {
    const auto& input = proto.input(i);
    if (input.name().empty()) return invalidInput("graph input #" + std::to_string(i) + " has no name");
    // Before IR version 4 every initializer was also listed as an input; those
    // (and any input with an initializer) are constants, not runtime inputs.
    if (initializers.count(input.name())) continue;
    std::string what = "graph input " + inQuotes(input.name());
    KILN_ASSIGN_OR_RETURN(ir::Value * value, define(graph, input.name(), what));
    KILN_ASSIGN_OR_RETURN(value->type, detail::convertType(input.type(), what));
    graph.inputs.push_back(value);
  }
  return Status::ok();
}

Status GraphImporter::addInitializers(const onnx::GraphProto& proto, ir::Graph& graph) {
  auto add = [&](const std::string& name, Expected<ir::Tensor> tensor, const std::string& what) -> Status {
    if (!tensor) return tensor.status();
    if (name.empty()) return invalidInput("graph " + inQuotes(graph.name) + " has an initializer without a name");
    KILN_ASSIGN_OR_RETURN(ir::Value * value, define(graph, name, what));
    value->type = tensor->type();
    value->constant = tensor.take();
    return Status::ok();
  };
  for (const auto& t : proto.initializer()) {
    std::string what = "initializer " + inQuotes(t.name());
    KILN_RETURN_IF_ERROR(add(t.name(), detail::convertTensor(t, source_, what), what));
  }
  for (const auto& t : proto.sparse_initializer()) {
    std::string what = "sparse initializer " + inQuotes(t.values().name());
    KILN_RETURN_IF_ERROR(add(t.values().name(), detail::convertSparseTensor(t, source_, what), what));
  }
  return Status::ok();
}

Status GraphImporter::addNodeOutputs(const onnx::NodeProto& proto, ir::Node& node, ir::Graph& graph) {
  for (int i = 0; i < proto.output_size(); ++i) {
    const std::string& name = proto.output(i);
    if (name.empty()) {  // an omitted optional output
      node.outputs.push_back(nullptr);
      continue;
    }
    KILN_ASSIGN_OR_RETURN(ir::Value * value, define(graph, name, "output of node " + node.describe()));
    value->producer = &node;
    value->producer_output = i;
    node.outputs.push_back(value);
  }
  return Status::ok();
}

Status GraphImporter::resolveNode(const onnx::NodeProto& proto, ir::Node& node, ir::Graph& graph) {
  for (int i = 0; i < proto.input_size(); ++i) {
    const std::string& name = proto.input(i);
    if (name.empty()) {  // an omitted optional input
      node.inputs.push_back(nullptr);
      continue;
    }
    ir::Value* value = lookupInScope(&graph, name);
    if (!value)
      return invalidInput("node " + node.describe() + " reads " + inQuotes(name) + ", which nothing produces (input " +
                          std::to_string(i) + ")");
    node.inputs.push_back(value);
  }
  auto import_subgraph = [&](const onnx::GraphProto& sub_proto, ir::Graph& sub) {
    sub.parent = &graph;
    return importGraph(sub_proto, sub);
  };
  for (const auto& attr : proto.attribute()) {
    if (node.attributes.count(attr.name()))
      return invalidInput("node " + node.describe() + " has attribute " + inQuotes(attr.name()) + " twice");
    auto converted = convertAttribute(attr, source_, import_subgraph);
    if (!converted) return converted.status().withContext("node " + node.describe());
    node.attributes.emplace(attr.name(), converted.take());
  }
  return Status::ok();
}

Status GraphImporter::addOutputs(const onnx::GraphProto& proto, ir::Graph& graph) {
  for (int i = 0; i < proto.output_size(); ++i) {
    const auto& output = proto.output(i);
    ir::Value* value = lookupInScope(&graph, output.name());
    if (!value)
      return invalidInput("graph " + inQuotes(graph.name) + " output " + inQuotes(output.name()) +
                          " is produced by nothing");
    std::string what = "graph output " + inQuotes(output.name());
    KILN_ASSIGN_OR_RETURN(ir::TensorType type, detail::convertType(output.type(), what));
    // Only a value of this graph takes the declared type; constants keep their tensor's.
    if (graph.findValue(output.name()) == value && !value->isConstant() && type.dtype != ir::DType::kUndefined)
      value->type = type;
    graph.outputs.push_back(value);
  }
  return Status::ok();
}

// value_info is advisory (and often stale after tools edit a model): types
// apply to values the graph has; unknown names and non-tensor types are skipped.
void GraphImporter::applyValueInfo(const onnx::GraphProto& proto, ir::Graph& graph) {
  for (const auto& info : proto.value_info()) {
    ir::Value* value = graph.findValue(info.name());
    if (!value || value->isConstant()) continue;
    auto type = detail::convertType(info.type(), "value_info " + inQuotes(info.name()));
    if (type && type->dtype != ir::DType::kUndefined) value->type = type.take();
  }
}

// ONNX requires nodes in topological order, and the IR's order must be one.
// The file's order is kept when it already is one; otherwise the graph is
// sorted (counting what subgraphs capture) and a cycle is reported.
Status GraphImporter::checkOrder(ir::Graph& graph) {
  if (!firstOutOfOrder(graph).first) return Status::ok();
  KILN_RETURN_IF_ERROR(graph.sortTopologically());
  auto [node, value] = firstOutOfOrder(graph);
  if (node)
    return unsupported("node " + node->describe() + " reads " + inQuotes(value->name) +
                       " inside a subgraph but comes before the value's producer; re-export the model with its "
                       "nodes in topological order");
  return Status::ok();
}

Status GraphImporter::importGraph(const onnx::GraphProto& proto, ir::Graph& graph) {
  graph.name = proto.name();
  KILN_RETURN_IF_ERROR(addInputs(proto, graph));
  KILN_RETURN_IF_ERROR(addInitializers(proto, graph));
  std::vector<ir::Node*> nodes;
  for (int i = 0; i < proto.node_size(); ++i) {
    const auto& node_proto = proto.node(i);
    // Unnamed nodes get a stable name so that errors and passes can refer to them.
    std::string name = node_proto.name().empty() ? node_proto.op_type() + "_" + std::to_string(i) : node_proto.name();
    if (node_proto.op_type().empty())
      return invalidInput("node #" + std::to_string(i) + " " + inQuotes(name) + " of graph " + inQuotes(graph.name) +
                          " has no op_type");
    ir::Node* node = graph.addNode(node_proto.op_type(), name);
    node->domain = node_proto.domain() == "ai.onnx" ? std::string() : node_proto.domain();
    KILN_RETURN_IF_ERROR(addNodeOutputs(node_proto, *node, graph));
    nodes.push_back(node);
  }
  for (int i = 0; i < proto.node_size(); ++i) KILN_RETURN_IF_ERROR(resolveNode(proto.node(i), *nodes[i], graph));
  applyValueInfo(proto, graph);
  KILN_RETURN_IF_ERROR(addOutputs(proto, graph));
  definers_.erase(&graph);
  return checkOrder(graph);
}

Status importOpsets(const onnx::ModelProto& proto, ir::Model& model) {
  for (const auto& opset : proto.opset_import()) {
    std::string domain = opset.domain() == "ai.onnx" ? std::string() : opset.domain();
    auto [it, inserted] = model.opset_imports.emplace(domain, opset.version());
    if (!inserted && it->second != opset.version())
      return invalidInput("opset_import lists domain '" + (domain.empty() ? "ai.onnx" : domain) +
                          "' twice, with versions " + std::to_string(it->second) + " and " +
                          std::to_string(opset.version()));
  }
  return Status::ok();
}

Expected<std::unique_ptr<ir::Model>> importModel(const onnx::ModelProto& proto, TensorSource& source) {
  auto model = std::make_unique<ir::Model>();
  model->ir_version = proto.ir_version();
  KILN_RETURN_IF_ERROR(importOpsets(proto, *model));
  model->producer_name = proto.producer_name();
  model->producer_version = proto.producer_version();
  model->domain = proto.domain();
  model->model_version = proto.model_version();
  model->doc_string = proto.doc_string();
  for (const auto& entry : proto.metadata_props()) model->metadata[entry.key()] = entry.value();
  if (!proto.has_graph()) return invalidInput("the model has no graph");
  GraphImporter importer(source);
  KILN_RETURN_IF_ERROR(importer.importGraph(proto.graph(), model->graph));
  return model;
}

Expected<std::unique_ptr<ir::Model>> importParsed(std::span<const std::byte> bytes, TensorSource& source,
                                                  const std::string& display_name) {
  auto parsed = detail::parseModel(bytes);
  if (!parsed) return invalidInput(inQuotes(display_name) + " is not a valid ONNX model: " + parsed.status().message());
  source.raw_spans = &(*parsed)->raw_data;
  auto model = importModel((*parsed)->proto, source);
  if (!model) return model.status().withContext(inQuotes(display_name));
  return model;
}

}  // namespace

Expected<std::unique_ptr<ir::Model>> importOnnxFile(const std::string& path) {
  auto file = MappedFile::open(path);
  if (!file) return file.status();
  TensorSource source;
  std::string dir = std::filesystem::path(path).parent_path().string();
  source.base_dir = dir.empty() ? "." : dir;
  source.model_owner = *file;
  return importParsed((*file)->bytes(), source, path);
}

Expected<std::unique_ptr<ir::Model>> importOnnxBytes(std::span<const std::byte> bytes, const std::string& base_dir,
                                                     const std::string& display_name) {
  TensorSource source;
  source.base_dir = base_dir;
  return importParsed(bytes, source, display_name);
}

}  // namespace kiln::frontend
