#include "compiler/onnx/writer.h"

#include "compiler/ir/type_attribute.h"

#include <onnx/onnx_pb.h>

#include <climits>
#include <fstream>
#include <optional>
#include <unordered_map>
#include <unordered_set>

namespace kiln::frontend {
namespace {

// The IR version written when the model does not say (ONNX 1.12's).
constexpr int64_t kDefaultIrVersion = 8;

class OnnxWriter {
 public:
  explicit OnnxWriter(int64_t ir_version) : ir_version_(ir_version) {}

  void writeGraph(const ir::Graph& graph, onnx::GraphProto& proto, bool is_main);

 private:
  const std::string& nameOf(const ir::Value* value);
  void writeNode(const ir::Node& node, onnx::NodeProto& proto);
  void writeAttribute(const std::string& key, const ir::Attribute& attr, onnx::AttributeProto& proto);
  void writeValueInfo(const ir::Value* value, onnx::ValueInfoProto& proto);

  int64_t ir_version_;
  // Names are unique across the whole model: subgraphs name outer values too.
  std::unordered_map<const ir::Value*, std::string> names_;
  std::unordered_set<std::string> taken_;
};

// Values keep their names; unnamed values and clashes (passes may create
// either) get a fresh unique one.
const std::string& OnnxWriter::nameOf(const ir::Value* value) {
  auto it = names_.find(value);
  if (it != names_.end()) return it->second;
  std::string base = value->name.empty() ? "_kiln_value" : value->name;
  std::string name = base;
  for (int suffix = 1; value->name.empty() || taken_.count(name); ++suffix) {
    name = base + "_" + std::to_string(suffix);
    if (!taken_.count(name)) break;
  }
  taken_.insert(name);
  return names_.emplace(value, name).first->second;
}

void writeTensor(const ir::Tensor& tensor, const std::string& name, onnx::TensorProto& proto) {
  proto.set_name(name);
  proto.set_data_type(static_cast<int32_t>(tensor.dtype()));
  for (int64_t d : tensor.dims()) proto.add_dims(d);
  if (tensor.dtype() == ir::DType::kString) {
    for (const auto& s : tensor.strings()) proto.add_string_data(s);
    return;
  }
  auto bytes = tensor.bytes();
  proto.set_raw_data(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

void writeType(const ir::TensorType& type, onnx::TypeProto& proto) {
  onnx::TypeProto* inner = &proto;  // containers wrap the tensor type
  if (type.kind == ir::ValueKind::kOptionalTensor || type.kind == ir::ValueKind::kOptionalSequence)
    inner = inner->mutable_optional_type()->mutable_elem_type();
  if (type.kind == ir::ValueKind::kSequence || type.kind == ir::ValueKind::kOptionalSequence)
    inner = inner->mutable_sequence_type()->mutable_elem_type();
  auto* tensor = inner->mutable_tensor_type();
  tensor->set_elem_type(static_cast<int32_t>(type.dtype));
  if (!type.shape) return;
  auto* shape = tensor->mutable_shape();
  for (const ir::Dim& dim : *type.shape) {
    auto* out = shape->add_dim();
    if (dim.isKnown()) {
      out->set_dim_value(dim.value);
    } else if (!dim.symbol.empty()) {
      out->set_dim_param(dim.symbol);
    }
  }
}

void OnnxWriter::writeValueInfo(const ir::Value* value, onnx::ValueInfoProto& proto) {
  proto.set_name(nameOf(value));
  if (value->type.dtype != ir::DType::kUndefined || value->type.shape) writeType(value->type, *proto.mutable_type());
}

void OnnxWriter::writeAttribute(const std::string& key, const ir::Attribute& attr, onnx::AttributeProto& proto) {
  using Kind = ir::Attribute::Kind;
  proto.set_name(key);
  switch (attr.kind) {
    case Kind::kInt:
      proto.set_type(onnx::AttributeProto::INT);
      proto.set_i(attr.i);
      break;
    case Kind::kFloat:
      proto.set_type(onnx::AttributeProto::FLOAT);
      proto.set_f(attr.f);
      break;
    case Kind::kString:
      proto.set_type(onnx::AttributeProto::STRING);
      proto.set_s(attr.s);
      break;
    case Kind::kTensor:
      proto.set_type(onnx::AttributeProto::TENSOR);
      writeTensor(attr.t, "", *proto.mutable_t());
      break;
    case Kind::kGraph:
      proto.set_type(onnx::AttributeProto::GRAPH);
      if (!attr.graphs.empty()) writeGraph(*attr.graphs[0], *proto.mutable_g(), false);
      break;
    case Kind::kInts:
      proto.set_type(onnx::AttributeProto::INTS);
      for (int64_t v : attr.ints) proto.add_ints(v);
      break;
    case Kind::kFloats:
      proto.set_type(onnx::AttributeProto::FLOATS);
      for (float v : attr.floats) proto.add_floats(v);
      break;
    case Kind::kStrings:
      proto.set_type(onnx::AttributeProto::STRINGS);
      for (const auto& v : attr.strings) proto.add_strings(v);
      break;
    case Kind::kTensors:
      proto.set_type(onnx::AttributeProto::TENSORS);
      for (const auto& t : attr.tensors) writeTensor(t, "", *proto.add_tensors());
      break;
    case Kind::kGraphs:
      proto.set_type(onnx::AttributeProto::GRAPHS);
      for (const auto& g : attr.graphs) writeGraph(*g, *proto.add_graphs(), false);
      break;
  }
}

void OnnxWriter::writeNode(const ir::Node& node, onnx::NodeProto& proto) {
  proto.set_name(node.name);
  proto.set_op_type(node.op_type);
  if (!node.domain.empty()) proto.set_domain(node.domain);
  for (const ir::Value* in : node.inputs) proto.add_input(in ? nameOf(in) : std::string());
  for (const ir::Value* out : node.outputs) proto.add_output(out ? nameOf(out) : std::string());
  for (const auto& [key, attr] : node.attributes) {
    onnx::AttributeProto& out = *proto.add_attribute();
    // Optional's `type` was a TYPE_PROTO attribute, kept as ints in the IR
    // (compiler/ir/type_attribute.h): it goes back out as the type it was.
    std::optional<ir::TensorType> type;
    if (node.op_type == "Optional" && key == "type" && attr.kind == ir::Attribute::Kind::kInts &&
        (type = ir::decodeTypeAttribute(attr.ints))) {
      out.set_name(key);
      out.set_type(onnx::AttributeProto::TYPE_PROTO);
      writeType(*type, *out.mutable_tp());
      continue;
    }
    writeAttribute(key, attr, out);
  }
}

void OnnxWriter::writeGraph(const ir::Graph& graph, onnx::GraphProto& proto, bool is_main) {
  proto.set_name(graph.name);
  std::unordered_set<const ir::Value*> listed(graph.inputs.begin(), graph.inputs.end());
  listed.insert(graph.outputs.begin(), graph.outputs.end());
  for (const ir::Value* in : graph.inputs) writeValueInfo(in, *proto.add_input());
  for (const auto& value : graph.values()) {
    // A node's output that inference evaluated stays the node's output.
    if (!value->isConstant() || value->producer) continue;
    writeTensor(*value->constant, nameOf(value.get()), *proto.add_initializer());
    // Before IR version 4 an initializer had to be a graph input as well (only
    // in the main graph: subgraph inputs are positional).
    if (is_main && ir_version_ < 4 && !listed.count(value.get())) writeValueInfo(value.get(), *proto.add_input());
  }
  for (const auto& node : graph.nodes()) writeNode(*node, *proto.add_node());
  for (const ir::Value* out : graph.outputs) writeValueInfo(out, *proto.add_output());
  for (const auto& value : graph.values()) {
    bool typed = value->type.dtype != ir::DType::kUndefined;
    if (typed && value->producer && !value->isConstant() && !listed.count(value.get()))
      writeValueInfo(value.get(), *proto.add_value_info());
  }
}

}  // namespace

Expected<std::string> serializeOnnx(const ir::Model& model) {
  onnx::ModelProto proto;
  int64_t ir_version = model.ir_version > 0 ? model.ir_version : kDefaultIrVersion;
  proto.set_ir_version(ir_version);
  for (const auto& [domain, version] : model.opset_imports) {
    auto* opset = proto.add_opset_import();
    opset->set_domain(domain);
    opset->set_version(version);
  }
  if (!model.producer_name.empty()) proto.set_producer_name(model.producer_name);
  if (!model.producer_version.empty()) proto.set_producer_version(model.producer_version);
  if (!model.domain.empty()) proto.set_domain(model.domain);
  if (model.model_version) proto.set_model_version(model.model_version);
  if (!model.doc_string.empty()) proto.set_doc_string(model.doc_string);
  for (const auto& [key, value] : model.metadata) {
    auto* entry = proto.add_metadata_props();
    entry->set_key(key);
    entry->set_value(value);
  }
  OnnxWriter(ir_version).writeGraph(model.graph, *proto.mutable_graph(), true);
  size_t bytes = proto.ByteSizeLong();
  if (bytes > static_cast<size_t>(INT_MAX))
    return unsupported("the model is " + std::to_string(bytes) +
                       " bytes; a protobuf message cannot exceed 2 GiB and Kiln does not write external data yet");
  std::string out;
  if (!proto.SerializeToString(&out)) return internalError("protobuf could not serialize the model");
  return out;
}

Status writeOnnxFile(const ir::Model& model, const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::string bytes, serializeOnnx(model));
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) return ioError("cannot create '" + path + "'");
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  file.close();
  if (!file) return ioError("cannot write '" + path + "'");
  return Status::ok();
}

}  // namespace kiln::frontend
