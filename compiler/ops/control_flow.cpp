// Control flow: If, Loop and Scan — their type inference (this file) and
// lowering (control_flow_lower.cpp).
//
// A subgraph is lowered once, into the same program as the node that owns
// it, and its calls form a region (lower::CallRegion) that runs while a dim
// slot is nonzero:
//   If:   a kernel reads the condition into two slots (cond, !cond); the
//         then-branch's calls run when the first is set, the else-branch's
//         when the second is; each branch ends by copying its results into
//         the If's outputs (and, for a dim the branches disagree on, by
//         setting the output's dim slot).
//   Loop: slots for the trip count, the iteration number and "run again";
//         the body's calls then a kernel that copies the loop-carried
//         values back into the state buffers (the Loop's own outputs),
//         writes the scan outputs at row `iteration`, and recomputes the
//         slots. Scan outputs accumulate in a buffer of `trip count` rows
//         and are copied out after the loop, sized by the iterations run.
//   Scan: a Loop of static length whose body inputs are slices of the scan
//         inputs along their axes (reversed on request) and whose scan
//         outputs are written straight into the outputs.
// Subgraph nodes read outer values through the same buffers as any node,
// so captures need nothing. Shape inference runs over the subgraphs here,
// giving each subgraph input the type the node passes it.
#include <algorithm>

#include "compiler/ops/control_flow.h"

#include "compiler/lower/lower_graph.h"
#include "compiler/ops/containers.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;

const ir::Graph& subgraph(const NodeView& node, const std::string& name) {
  return *node.node().attribute(name)->graphs.at(0);
}

ir::Graph& mutableSubgraph(const NodeView& node, const std::string& name) {
  return *node.node().attribute(name)->graphs.at(0);
}

// ---------------------------------------------------------------- inference

// Gives the subgraph's inputs `types` (a declared input must agree in dtype)
// and infers its nodes, folding those whose inputs are all constant.
Status inferSubgraph(const NodeView& owner, const std::string& attr, const std::vector<ir::TensorType>& types) {
  ir::Graph& graph = mutableSubgraph(owner, attr);
  std::string where = "subgraph '" + attr + "'";
  if (graph.inputs.size() != types.size())
    return owner.error(where + " has " + std::to_string(graph.inputs.size()) + " inputs, expected " +
                       std::to_string(types.size()));
  for (size_t i = 0; i < types.size(); ++i) {
    ir::Value& in = *graph.inputs[i];
    if (types[i].isTensor() && !in.type.isTensor() && in.type.dtype != ir::DType::kUndefined)
      return owner.error(where + " input " + std::to_string(i) + " '" + in.name + "' is " +
                         withArticle(in.type.kind) + ", but the node passes a tensor");
    if (in.type.dtype != ir::DType::kUndefined && in.type.dtype != types[i].dtype)
      return owner.error(where + " input " + std::to_string(i) + " '" + in.name + "' is " +
                         std::string(ir::name(in.type.dtype)) + ", but the node passes " +
                         std::string(ir::name(types[i].dtype)));
    in.type = types[i];
  }
  const auto& registry = OpRegistry::global();
  for (const auto& node : graph.nodes()) {
    if (node->domain != owner.node().domain)
      return owner.unsupportedError(where + ": node " + node->describe() + " is in domain '" + node->domain +
                                    "'; subgraphs may use the default domain only");
    KILN_ASSIGN_OR_RETURN(const OpSchema* schema, registry.resolve(*node, owner.opset()));
    for (size_t i = 0; i < node->inputs.size(); ++i)
      if (node->inputs[i] && node->inputs[i]->type.dtype == ir::DType::kUndefined)
        return owner.error(where + ": " + node->describe() + " input " + std::to_string(i) + " '" +
                           node->inputs[i]->name + "' has no known type");
    InferContext ctx(*node, owner.opset());
    KILN_RETURN_IF_ERROR(inferNode(*schema, ctx).withContext(owner.node().describe() + " " + where));
    bool foldable = !node->inputs.empty();
    for (const ir::Value* in : node->inputs) foldable = foldable && in && in->isConstant();
    for (const ir::Value* out : node->outputs) foldable = foldable && out && !out->isConstant();
    for (const auto& [key, a] : node->attributes) foldable = foldable && a.graphs.empty();
    if (!foldable) continue;
    if (auto values = lower::evaluateNode(*node, owner.opset(), lower::FoldLimits{}))
      for (size_t i = 0; i < node->outputs.size(); ++i) node->outputs[i]->constant = std::move((*values)[i]);
  }
  for (const ir::Value* out : graph.outputs) {
    if (out->type.dtype == ir::DType::kUndefined)
      return owner.error(where + " output '" + out->name + "' has no known type");
  }
  return Status::ok();
}

ir::TensorType scalarType(ir::DType dtype) { return ir::TensorType{dtype, ir::Shape{}}; }

// One input holding a single element (a condition or a trip count).
Status checkScalarInput(const InferContext& ctx, size_t i, ir::DType dtype, const std::string& what) {
  if (!ctx.hasInput(i)) return Status::ok();
  const ir::TensorType& t = ctx.inputType(i);
  if (t.dtype != dtype)
    return ctx.error(what + " (input " + std::to_string(i) + ") is " + std::string(ir::name(t.dtype)) + ", expected " +
                     std::string(ir::name(dtype)));
  if (t.shape) {
    auto dims = ir::knownDims(*t.shape);
    if (dims && ir::elementCount(*dims).isOk() && *ir::elementCount(*dims) != 1)
      return ctx.error(what + " (input " + std::to_string(i) + ") has shape " + ir::toString(*t.shape) +
                       ", expected one element");
  }
  return Status::ok();
}

bool isOptionalKind(ir::ValueKind kind) {
  return kind == ir::ValueKind::kOptionalTensor || kind == ir::ValueKind::kOptionalSequence;
}

// The kind two values of one container slot share: a sequence and an
// optional sequence make an optional sequence; nullopt when they differ
// otherwise (a tensor and a sequence).
std::optional<ir::ValueKind> mergedKind(ir::ValueKind a, ir::ValueKind b) {
  auto base = [](ir::ValueKind k) {
    return k == ir::ValueKind::kOptionalSequence ? ir::ValueKind::kSequence
           : k == ir::ValueKind::kOptionalTensor ? ir::ValueKind::kTensor
                                                 : k;
  };
  if (base(a) != base(b)) return std::nullopt;
  return isOptionalKind(a) ? a : b;
}

// The element type two containers share: equal dims stay, others become
// unknown, the rank unknown where the ranks differ.
ir::TensorType mergeContainerTypes(const ir::TensorType& a, const ir::TensorType& b, ir::ValueKind kind) {
  ir::TensorType merged = a;
  merged.kind = kind;
  if (!a.shape || !b.shape || a.shape->size() != b.shape->size()) {
    merged.shape.reset();
    return merged;
  }
  for (size_t d = 0; d < a.shape->size(); ++d)
    if ((*a.shape)[d] != (*b.shape)[d]) (*merged.shape)[d] = ir::Dim{};
  return merged;
}

// The shape both branches agree on: equal dims stay, others become unknown.
Expected<ir::TensorType> mergeBranchTypes(const InferContext& ctx, size_t i, const ir::TensorType& a,
                                          const ir::TensorType& b) {
  if (a.dtype != b.dtype)
    return ctx.error("output " + std::to_string(i) + " is " + std::string(ir::name(a.dtype)) +
                     " in then_branch but " + std::string(ir::name(b.dtype)) + " in else_branch");
  if (!a.isTensor() || !b.isTensor()) {
    std::optional<ir::ValueKind> kind = mergedKind(a.kind, b.kind);
    if (!kind)
      return ctx.error("output " + std::to_string(i) + " is " + withArticle(a.kind) + " in then_branch but " +
                       withArticle(b.kind) + " in else_branch");
    return mergeContainerTypes(a, b, *kind);
  }
  if (!a.shape || !b.shape || a.shape->size() != b.shape->size())
    return ctx.unsupportedError("output " + std::to_string(i) + " has a different rank in each branch");
  ir::TensorType merged = a;
  for (size_t d = 0; d < a.shape->size(); ++d)
    if ((*a.shape)[d] != (*b.shape)[d]) (*merged.shape)[d] = ir::Dim{};
  return merged;
}

Status inferIf(InferContext& ctx) {
  if (!ctx.hasInput(0)) return ctx.missingInputError(0);
  KILN_RETURN_IF_ERROR(checkScalarInput(ctx, 0, ir::DType::kBool, "condition"));
  KILN_RETURN_IF_ERROR(inferSubgraph(ctx, "then_branch", {}));
  KILN_RETURN_IF_ERROR(inferSubgraph(ctx, "else_branch", {}));
  const ir::Graph& then_graph = subgraph(ctx, "then_branch");
  const ir::Graph& else_graph = subgraph(ctx, "else_branch");
  for (const ir::Graph* g : {&then_graph, &else_graph})
    if (g->outputs.size() != ctx.numOutputs())
      return ctx.error("subgraph '" + g->name + "' has " + std::to_string(g->outputs.size()) +
                       " outputs, but the node has " + std::to_string(ctx.numOutputs()));
  for (size_t i = 0; i < ctx.numOutputs(); ++i) {
    KILN_ASSIGN_OR_RETURN(ir::TensorType type,
                          mergeBranchTypes(ctx, i, then_graph.outputs[i]->type, else_graph.outputs[i]->type));
    ctx.setOutputType(i, type);
  }
  return Status::ok();
}

// Body outputs after the condition: `carried` loop-carried values (same
// dtype and shape as the state), then per-iteration values to scan out.
Status checkCarried(const InferContext& ctx, const ir::Graph& body, size_t first_out,
                    const std::vector<ir::TensorType>& state) {
  for (size_t k = 0; k < state.size(); ++k) {
    const ir::Value& out = *body.outputs[first_out + k];
    if (out.type.dtype != state[k].dtype)
      return ctx.error("loop-carried value " + std::to_string(k) + " enters the body as " +
                       std::string(ir::name(state[k].dtype)) + " but leaves it as '" + out.name + "' of type " +
                       std::string(ir::name(out.type.dtype)));
    if (!state[k].hasKnownShape() || out.type.shape != state[k].shape)
      return ctx.unsupportedError("loop-carried value " + std::to_string(k) + " has shape " +
                                  (state[k].shape ? ir::toString(*state[k].shape) : "?") + " on entry and " +
                                  (out.type.shape ? ir::toString(*out.type.shape) : "?") +
                                  " after an iteration; only static shapes that stay the same are supported");
  }
  return Status::ok();
}

// Whether the body's condition output is its condition input (or true), so
// that only the trip count ends the loop.
bool conditionStaysTrue(const ir::Graph& body) {
  const ir::Value* out = body.outputs[0];
  if (out->isConstant()) return out->constant->elementCount() == 1 && out->constant->intAt(0) != 0;
  while (out->producer && out->producer->op_type == "Identity") out = out->producer->inputs[0];
  return out == body.inputs[1];
}

// A loop-carried value may change shape between iterations (an
// accumulator that broadcasts to a larger shape in the first iteration, a
// slice whose bounds depend on the iteration): the state's type is what entry and every
// iteration agree on, dims that differ unknown (dim slots at run time, set
// on entry and after each iteration). The body is inferred again with the
// merged types until they stop changing; each round only forgets dims, so
// it ends. The rank and dtype must stay.
Status inferLoopBody(InferContext& ctx, std::vector<ir::TensorType>& state) {
  const ir::Graph& body = subgraph(ctx, "body");
  size_t max_rounds = 2;
  for (const ir::TensorType& t : state) max_rounds += (t.shape ? t.shape->size() : 0) + (t.isTensor() ? 0 : 2);
  for (size_t round = 0; round < max_rounds; ++round) {
    std::vector<ir::TensorType> body_inputs = {scalarType(ir::DType::kInt64), scalarType(ir::DType::kBool)};
    body_inputs.insert(body_inputs.end(), state.begin(), state.end());
    KILN_RETURN_IF_ERROR(inferSubgraph(ctx, "body", body_inputs));
    if (body.outputs.size() < 1 + state.size())
      return ctx.error("body has " + std::to_string(body.outputs.size()) + " outputs, expected the condition, " +
                       std::to_string(state.size()) + " loop-carried values and any scan outputs");
    bool changed = false;
    for (size_t k = 0; k < state.size(); ++k) {
      const ir::Value& out = *body.outputs[1 + k];
      if (out.type.dtype != state[k].dtype)
        return ctx.error("loop-carried value " + std::to_string(k) + " enters the body as " +
                         std::string(ir::name(state[k].dtype)) + " but leaves it as '" + out.name + "' of type " +
                         std::string(ir::name(out.type.dtype)));
      if (!state[k].isTensor() || !out.type.isTensor()) {
        std::optional<ir::ValueKind> kind = mergedKind(state[k].kind, out.type.kind);
        if (!kind)
          return ctx.error("loop-carried value " + std::to_string(k) + " enters the body as " +
                           withArticle(state[k].kind) + " but leaves it as " + withArticle(out.type.kind) + " '" +
                           out.name + "'");
        ir::TensorType merged = mergeContainerTypes(state[k], out.type, *kind);
        changed = changed || merged != state[k];
        state[k] = std::move(merged);
        continue;
      }
      if (!state[k].shape || !out.type.shape || state[k].shape->size() != out.type.shape->size())
        return ctx.unsupportedError("loop-carried value " + std::to_string(k) + " has shape " +
                                    (state[k].shape ? ir::toString(*state[k].shape) : "of unknown rank") +
                                    " on entry and " +
                                    (out.type.shape ? ir::toString(*out.type.shape) : "of unknown rank") +
                                    " after an iteration; its rank must be known and stay the same");
      for (size_t d = 0; d < state[k].shape->size(); ++d) {
        ir::Dim& dim = (*state[k].shape)[d];
        if (dim != (*out.type.shape)[d] && dim != ir::Dim{}) {
          dim = ir::Dim{};
          changed = true;
        }
      }
    }
    if (!changed) return Status::ok();
  }
  return internalError(ctx.node().describe() + ": loop-carried shapes did not settle");
}

Status inferLoop(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(checkScalarInput(ctx, 0, ir::DType::kInt64, "trip count M"));
  KILN_RETURN_IF_ERROR(checkScalarInput(ctx, 1, ir::DType::kBool, "condition"));
  if (ctx.numInputs() < 2) return ctx.error("needs inputs M and cond (either may be empty), then the loop-carried values");
  size_t carried = ctx.numInputs() - 2;
  std::vector<ir::TensorType> state;
  for (size_t k = 0; k < carried; ++k) {
    if (!ctx.hasInput(k + 2)) return ctx.error("loop-carried input " + std::to_string(k + 2) + " is missing");
    state.push_back(ctx.inputType(k + 2));
  }
  KILN_RETURN_IF_ERROR(inferLoopBody(ctx, state));
  const ir::Graph& body = subgraph(ctx, "body");
  if (body.outputs.size() - 1 != ctx.numOutputs())
    return ctx.error("body has " + std::to_string(body.outputs.size() - 1) +
                     " outputs after the condition, but the node has " + std::to_string(ctx.numOutputs()));
  if (body.outputs[0]->type.dtype != ir::DType::kBool)
    return ctx.error("body's first output '" + body.outputs[0]->name + "' (the condition) is not bool");
  for (size_t k = 0; k < carried; ++k) {
    // ONNX types a loop-carried output as the body's result: an optional
    // sequence that every iteration replaces by a sequence is one after the
    // loop (the loop checks that it holds one when no iteration ran).
    ir::TensorType type = state[k];
    if (type.kind == ir::ValueKind::kOptionalSequence && body.outputs[1 + k]->type.kind == ir::ValueKind::kSequence)
      type.kind = ir::ValueKind::kSequence;
    ctx.setOutputType(k, type);
  }
  // Scan outputs stack one value per iteration: their count is the trip
  // count when nothing else can end the loop, else known at run time.
  const ir::Tensor* m = ctx.hasInput(0) ? ctx.constantInput(0) : nullptr;
  const ir::Tensor* cond = ctx.hasInput(1) ? ctx.constantInput(1) : nullptr;
  bool counted = m && (!ctx.hasInput(1) || (cond && cond->intAt(0) != 0)) && conditionStaysTrue(body);
  for (size_t k = carried; k < ctx.numOutputs(); ++k) {
    // Dims known only at run time must be the same in every iteration
    // (checked when the loop runs).
    const ir::TensorType& per_iteration = body.outputs[1 + k]->type;
    if (!per_iteration.shape)
      return ctx.unsupportedError("scan output " + std::to_string(k - carried) + " ('" + body.outputs[1 + k]->name +
                                  "') has an unknown rank");
    ir::TensorType type = per_iteration;
    type.shape->insert(type.shape->begin(), counted ? ir::Dim::known(std::max<int64_t>(m->intAt(0), 0)) : ir::Dim{});
    ctx.setOutputType(k, type);
  }
  return Status::ok();
}

}  // namespace

int64_t normalizedAxis(int64_t axis, size_t rank) { return axis < 0 ? axis + static_cast<int64_t>(rank) : axis; }

Expected<ScanLayout> scanLayout(const NodeView& ctx) {
  ScanLayout s;
  bool v8 = ctx.opset() < 9;
  s.first_input = v8 ? 1 : 0;
  if (v8 && ctx.hasInput(0)) return ctx.unsupportedError("sequence_lens (input 0) is not supported");
  s.scan_inputs = static_cast<size_t>(ctx.attrInt("num_scan_inputs", 0));
  if (ctx.numInputs() < s.first_input + s.scan_inputs || s.scan_inputs == 0)
    return ctx.error("num_scan_inputs = " + std::to_string(s.scan_inputs) + " does not fit the " +
                     std::to_string(ctx.numInputs()) + " inputs");
  s.state = ctx.numInputs() - s.first_input - s.scan_inputs;
  if (ctx.numOutputs() < s.state) return ctx.error("fewer outputs than loop-carried values");
  s.scan_outputs = ctx.numOutputs() - s.state;
  size_t lead = v8 ? 1 : 0;
  s.input_axes.assign(s.scan_inputs, static_cast<int64_t>(lead));
  s.output_axes.assign(s.scan_outputs, static_cast<int64_t>(lead));
  s.input_reverse = ctx.attrInts(v8 ? "directions" : "scan_input_directions", std::vector<int64_t>(s.scan_inputs, 0));
  s.output_reverse = ctx.attrInts("scan_output_directions", std::vector<int64_t>(s.scan_outputs, 0));
  if (!v8) {
    s.input_axes = ctx.attrInts("scan_input_axes", s.input_axes);
    s.output_axes = ctx.attrInts("scan_output_axes", s.output_axes);
  }
  if (s.input_reverse.size() != s.scan_inputs || s.input_axes.size() != s.scan_inputs ||
      s.output_reverse.size() != s.scan_outputs || s.output_axes.size() != s.scan_outputs)
    return ctx.error("scan axes/directions attributes need one entry per scan input and per scan output");
  for (size_t j = 0; j < s.scan_inputs; ++j) {
    const ir::TensorType& t = ctx.inputType(s.first_input + s.state + j);
    if (!t.hasKnownShape())
      return ctx.unsupportedError("scan input " + std::to_string(j) + " has a shape known only at run time");
    std::vector<int64_t> dims = *ir::knownDims(*t.shape);
    int64_t axis = normalizedAxis(s.input_axes[j], dims.size());
    if (axis < static_cast<int64_t>(lead) || axis >= static_cast<int64_t>(dims.size()))
      return ctx.error("scan_input_axes[" + std::to_string(j) + "] = " + std::to_string(s.input_axes[j]) +
                       " is out of range for rank " + std::to_string(dims.size()));
    s.input_axes[j] = axis;
    if (v8) s.batch = dims[0];
    if (j == 0) s.length = dims[axis];
    if (dims[axis] != s.length)
      return ctx.error("scan input " + std::to_string(j) + " has " + std::to_string(dims[axis]) +
                       " steps, scan input 0 has " + std::to_string(s.length));
  }
  return s;
}

namespace {

// The type of one step of a tensor of type `t`: the scan axis (and the
// batch axis in opset 8) removed.
ir::TensorType dropAxes(ir::TensorType t, int64_t axis, bool batch) {
  t.shape->erase(t.shape->begin() + axis);
  if (batch) t.shape->erase(t.shape->begin());
  return t;
}

Status inferScan(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(ScanLayout s, scanLayout(ctx));
  bool v8 = ctx.opset() < 9;
  std::vector<ir::TensorType> state, body_inputs;
  for (size_t k = 0; k < s.state; ++k) {
    ir::TensorType t = ctx.inputType(s.first_input + k);
    if (v8 && t.shape && !t.shape->empty()) t.shape->erase(t.shape->begin());
    state.push_back(t);
  }
  body_inputs = state;
  for (size_t j = 0; j < s.scan_inputs; ++j)
    body_inputs.push_back(dropAxes(ctx.inputType(s.first_input + s.state + j), s.input_axes[j], v8));
  KILN_RETURN_IF_ERROR(inferSubgraph(ctx, "body", body_inputs));
  const ir::Graph& body = subgraph(ctx, "body");
  if (body.outputs.size() != ctx.numOutputs())
    return ctx.error("body has " + std::to_string(body.outputs.size()) + " outputs, but the node has " +
                     std::to_string(ctx.numOutputs()));
  KILN_RETURN_IF_ERROR(checkCarried(ctx, body, 0, state));
  for (size_t k = 0; k < s.state; ++k) ctx.setOutputType(k, ctx.inputType(s.first_input + k));
  for (size_t k = 0; k < s.scan_outputs; ++k) {
    ir::TensorType t = body.outputs[s.state + k]->type;
    if (!t.hasKnownShape())
      return ctx.unsupportedError("scan output " + std::to_string(k) + " has a shape known only at run time");
    int64_t rank = static_cast<int64_t>(t.shape->size()) + 1 + (v8 ? 1 : 0);
    int64_t axis = normalizedAxis(s.output_axes[k], static_cast<size_t>(rank));
    if (axis < (v8 ? 1 : 0) || axis >= rank)
      return ctx.error("scan_output_axes[" + std::to_string(k) + "] = " + std::to_string(s.output_axes[k]) +
                       " is out of range for rank " + std::to_string(rank));
    if (v8) t.shape->insert(t.shape->begin(), ir::Dim::known(s.batch));
    t.shape->insert(t.shape->begin() + axis, ir::Dim::known(s.length));
    ctx.setOutputType(s.state + k, t);
  }
  return Status::ok();
}

}  // namespace

void registerControlFlowOps(OpRegistry& registry) {
  registry.add(OpSchema{"", "If", {1, 11, 13, 16, 19, 21}, {{"then_branch", Kind::kGraph, true},
                                                           {"else_branch", Kind::kGraph, true}},
                        inferIf, lowerIf});
  registry.add(OpSchema{"", "Loop", {1, 11, 13, 16, 19, 21}, {{"body", Kind::kGraph, true}}, inferLoop, lowerLoop});
  registry.add(OpSchema{"",
                        "Scan",
                        {8, 9, 11, 16, 19, 21},
                        {{"body", Kind::kGraph, true},
                         {"num_scan_inputs", Kind::kInt, true},
                         {"directions", Kind::kInts},
                         {"scan_input_axes", Kind::kInts},
                         {"scan_input_directions", Kind::kInts},
                         {"scan_output_axes", Kind::kInts},
                         {"scan_output_directions", Kind::kInts}},
                        inferScan,
                        lowerScan});
}

}  // namespace kiln::ops
