// ONNX AttributeProto -> ir::Attribute; part of the importer.
#pragma once

#include <functional>

#include "compiler/ir/graph.h"
#include "compiler/onnx/import_detail.h"

namespace kiln::frontend {

// Imports a subgraph attribute's body into `graph` (whose parent is set by
// the callee), so that it can read the values of its enclosing graphs.
using SubgraphImporter = std::function<Status(const onnx::GraphProto&, ir::Graph&)>;

// Sparse tensor attributes become dense kTensor attributes, TYPE_PROTO
// attributes kInts in the layout of ir/type_attribute.h. Errors name the
// attribute; the caller adds the node.
Expected<ir::Attribute> convertAttribute(const onnx::AttributeProto& proto, detail::TensorSource& source,
                                         const SubgraphImporter& import_subgraph);

}  // namespace kiln::frontend
