#include "compiler/onnx/attributes.h"

#include "compiler/ir/type_attribute.h"

namespace kiln::frontend {
namespace {

using AttrType = onnx::AttributeProto::AttributeType;
using Kind = ir::Attribute::Kind;

// Models from before IR version 2 carry no attribute type; it follows from
// which field holds the value.
AttrType inferType(const onnx::AttributeProto& proto) {
  if (proto.has_f()) return onnx::AttributeProto::FLOAT;
  if (proto.has_i()) return onnx::AttributeProto::INT;
  if (proto.has_s()) return onnx::AttributeProto::STRING;
  if (proto.has_t()) return onnx::AttributeProto::TENSOR;
  if (proto.has_g()) return onnx::AttributeProto::GRAPH;
  if (proto.has_tp()) return onnx::AttributeProto::TYPE_PROTO;
  if (proto.has_sparse_tensor()) return onnx::AttributeProto::SPARSE_TENSOR;
  if (proto.floats_size()) return onnx::AttributeProto::FLOATS;
  if (proto.ints_size()) return onnx::AttributeProto::INTS;
  if (proto.strings_size()) return onnx::AttributeProto::STRINGS;
  if (proto.tensors_size()) return onnx::AttributeProto::TENSORS;
  if (proto.graphs_size()) return onnx::AttributeProto::GRAPHS;
  return onnx::AttributeProto::UNDEFINED;
}

Status importGraph(const onnx::GraphProto& proto, const std::string& what, const SubgraphImporter& import_subgraph,
                   ir::Attribute& attr) {
  auto graph = std::make_shared<ir::Graph>();
  Status status = import_subgraph(proto, *graph);
  if (!status.isOk()) return status.withContext("in subgraph " + what);
  attr.graphs.push_back(std::move(graph));
  return Status::ok();
}

}  // namespace

Expected<ir::Attribute> convertAttribute(const onnx::AttributeProto& proto, detail::TensorSource& source,
                                         const SubgraphImporter& import_subgraph) {
  std::string what = "attribute '" + proto.name() + "'";
  if (proto.name().empty()) return invalidInput("an attribute has no name");
  if (!proto.ref_attr_name().empty())
    return unsupported(what + " refers to function attribute '" + proto.ref_attr_name() +
                       "', which only exists inside ONNX functions");
  AttrType type = proto.type() == onnx::AttributeProto::UNDEFINED ? inferType(proto) : proto.type();
  ir::Attribute attr;
  switch (type) {
    case onnx::AttributeProto::FLOAT:
      attr.kind = Kind::kFloat;
      attr.f = proto.f();
      break;
    case onnx::AttributeProto::INT:
      attr.kind = Kind::kInt;
      attr.i = proto.i();
      break;
    case onnx::AttributeProto::STRING:
      attr.kind = Kind::kString;
      attr.s = proto.s();
      break;
    case onnx::AttributeProto::FLOATS:
      attr.kind = Kind::kFloats;
      attr.floats.assign(proto.floats().begin(), proto.floats().end());
      break;
    case onnx::AttributeProto::INTS:
      attr.kind = Kind::kInts;
      attr.ints.assign(proto.ints().begin(), proto.ints().end());
      break;
    case onnx::AttributeProto::STRINGS:
      attr.kind = Kind::kStrings;
      attr.strings.assign(proto.strings().begin(), proto.strings().end());
      break;
    case onnx::AttributeProto::TENSOR: {
      attr.kind = Kind::kTensor;
      KILN_ASSIGN_OR_RETURN(attr.t, detail::convertTensor(proto.t(), source, what));
      break;
    }
    case onnx::AttributeProto::SPARSE_TENSOR: {
      attr.kind = Kind::kTensor;
      KILN_ASSIGN_OR_RETURN(attr.t, detail::convertSparseTensor(proto.sparse_tensor(), source, what));
      break;
    }
    case onnx::AttributeProto::TENSORS:
      attr.kind = Kind::kTensors;
      for (int i = 0; i < proto.tensors_size(); ++i) {
        KILN_ASSIGN_OR_RETURN(ir::Tensor t,
                              detail::convertTensor(proto.tensors(i), source, what + " tensor #" + std::to_string(i)));
        attr.tensors.push_back(std::move(t));
      }
      break;
    case onnx::AttributeProto::GRAPH:
      attr.kind = Kind::kGraph;
      KILN_RETURN_IF_ERROR(importGraph(proto.g(), "'" + proto.name() + "'", import_subgraph, attr));
      break;
    case onnx::AttributeProto::GRAPHS:
      attr.kind = Kind::kGraphs;
      for (int i = 0; i < proto.graphs_size(); ++i)
        KILN_RETURN_IF_ERROR(
            importGraph(proto.graphs(i), "'" + proto.name() + "' #" + std::to_string(i), import_subgraph, attr));
      break;
    case onnx::AttributeProto::TYPE_PROTO: {
      if (!proto.has_tp()) return invalidInput(what + " has type TYPE_PROTO but no type");
      KILN_ASSIGN_OR_RETURN(ir::TensorType t, detail::convertType(proto.tp(), what));
      attr.kind = Kind::kInts;
      attr.ints = ir::encodeTypeAttribute(t);
      break;
    }
    case onnx::AttributeProto::UNDEFINED: return invalidInput(what + " has no type and no value");
    default:
      return unsupported(what + " has type " + onnx::AttributeProto::AttributeType_Name(type) +
                         ", which Kiln does not support");
  }
  return attr;
}

}  // namespace kiln::frontend
