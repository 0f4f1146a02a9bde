#include "passes/infer_shapes.h"

#include <algorithm>
#include <string_view>

#include "compiler/lower/lower_graph.h"
#include "compiler/ops/containers.h"
#include "compiler/ops/op_registry.h"

namespace kiln::passes {
namespace {

// Ops whose result is not a function of their inputs: never folded.
bool isNondeterministic(const ir::Node& node) {
  static constexpr std::string_view kRandom[] = {"RandomUniformLike", "RandomNormalLike", "Bernoulli", "Multinomial"};
  return std::find(std::begin(kRandom), std::end(kRandom), node.op_type) != std::end(kRandom);
}

bool canFold(const ir::Node& node) {
  bool any_input = false;
  for (const ir::Value* in : node.inputs) {
    if (!in) continue;
    if (!in->isConstant()) return false;
    any_input = true;
  }
  for (const ir::Value* out : node.outputs)
    if (out && out->isConstant()) return false;  // inference already knows the values
  for (const auto& [key, attr] : node.attributes)
    if (!attr.graphs.empty()) return false;
  return any_input && !isNondeterministic(node);
}

// Gives the node's outputs their values when every input is known, so that
// shape computations (Shape -> Gather -> Concat -> Reshape) become constants
// that later nodes' inference can read.
void propagateConstants(ir::Node& node, int64_t opset) {
  if (!canFold(node)) return;
  auto values = lower::evaluateNode(node, opset, lower::FoldLimits{});
  if (!values) return;
  size_t next = 0;
  for (ir::Value* out : node.outputs)
    if (out) out->constant = std::move((*values)[next++]);
}

// The element type a graph output declares and the one its nodes compute
// must agree: a model that declares int64 for what its nodes compute as
// float32 is malformed (ONNX Runtime refuses it too), and compiling it as
// inferred would answer in a type the caller did not ask for. Shapes are not
// compared: exporters declare placeholders (a scalar, a stale batch size),
// and the computed shape wins, as in ONNX Runtime.
Status checkDeclaredOutput(const ir::Value& out, const ir::TensorType& declared) {
  const ir::TensorType& inferred = out.type;
  if (declared.kind != inferred.kind || declared.dtype == ir::DType::kUndefined ||
      inferred.dtype == ir::DType::kUndefined || declared.dtype == inferred.dtype)
    return Status::ok();
  std::string by = out.producer ? " by " + out.producer->describe() : "";
  return invalidInput("graph output '" + out.name + "' is declared " + std::string(ir::name(declared.dtype)) +
                      ", but it is computed" + by + " as " + inferred.toString());
}

}  // namespace

Status inferShapes(ir::Model& model) {
  const auto& registry = ops::OpRegistry::global();
  std::vector<ir::TensorType> declared;
  for (const ir::Value* out : model.graph.outputs) declared.push_back(out->type);
  for (const auto& node : model.graph.nodes()) {
    int64_t opset = model.opsetFor(node->domain);
    KILN_ASSIGN_OR_RETURN(const ops::OpSchema* schema, registry.resolve(*node, opset));
    for (size_t i = 0; i < node->inputs.size(); ++i) {
      const ir::Value* in = node->inputs[i];
      if (in && in->type.dtype == ir::DType::kUndefined)
        return invalidInput(node->describe() + ": input " + std::to_string(i) + " '" + in->name +
                            "' has no known type");
    }
    ops::InferContext ctx(*node, static_cast<int>(opset));
    KILN_ASSIGN_OR_RETURN(bool passed_through, ops::inferContainerPassThrough(ctx));
    KILN_RETURN_IF_ERROR(passed_through ? ctx.outputStatus() : ops::inferNode(*schema, ctx));
    propagateConstants(*node, opset);
  }
  for (size_t i = 0; i < declared.size(); ++i)
    KILN_RETURN_IF_ERROR(checkDeclaredOutput(*model.graph.outputs[i], declared[i]));
  return Status::ok();
}

Status pinInputShapes(ir::Model& model, const std::map<std::string, std::vector<int64_t>>& shapes) {
  for (const auto& [name, dims] : shapes) {
    ir::Value* input = nullptr;
    for (ir::Value* v : model.graph.inputs)
      if (v->name == name) input = v;
    if (!input) {
      std::string known;
      for (ir::Value* v : model.graph.inputs) known += (known.empty() ? "" : ", ") + v->name;
      return invalidInput("--shape names input '" + name + "', but the model's inputs are: " + known);
    }
    if (input->type.shape && input->type.shape->size() != dims.size())
      return invalidInput("--shape " + name + "=" + ir::toString(ir::makeShape(dims)) + " has rank " +
                          std::to_string(dims.size()) + ", but input '" + name + "' has rank " +
                          std::to_string(input->type.shape->size()));
    if (input->type.shape) {
      for (size_t d = 0; d < dims.size(); ++d) {
        const ir::Dim& known = (*input->type.shape)[d];
        if (known.isKnown() && known.value != dims[d])
          return invalidInput("--shape " + name + ": dimension " + std::to_string(d) + " is fixed to " +
                              std::to_string(known.value) + " by the model");
      }
    }
    input->type.shape = ir::makeShape(dims);
  }
  return Status::ok();
}

}  // namespace kiln::passes
