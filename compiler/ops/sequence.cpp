// Sequence ops: SequenceEmpty, SequenceConstruct, SequenceInsert,
// SequenceErase, SequenceAt, SequenceLength, SplitToSequence,
// ConcatFromSequence, SequenceMap.
//
// A sequence is a list of tensors of one dtype. Kiln expands sequences at
// compile time (passes/expand_containers.cpp): when the list's length and
// every position used are constants, each element is an ordinary tensor
// value, SequenceAt is that value, ConcatFromSequence a Concat and
// SequenceLength a constant. The inference here follows a sequence back to
// its elements (staticSequence) so that those values have exact types before
// the expansion runs. A sequence known only at run time (a graph input, a
// loop-carried value, an If result) is compiled over its run-time table
// (run_time_containers.cpp: Identity, SequenceEmpty, SequenceConstruct,
// SequenceInsert, SequenceAt, SequenceErase, SequenceLength, in loop bodies
// too); ConcatFromSequence and SplitToSequence over one are refused at
// lowering naming the node.
#include <algorithm>
#include <string>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/containers.h"
#include "compiler/ops/infer_checks.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using ir::DType;
using ir::ValueKind;

std::string str(int64_t v) { return std::to_string(v); }

bool isDefaultDomain(const ir::Node& node) { return node.domain.empty() || node.domain == "ai.onnx"; }

// ---- Following a sequence back to its elements ---------------------------------

// The pieces SplitToSequence makes of its input, when their count is known:
// from the size along the axis (no split: pieces of 1; a scalar split: pieces
// of that size, the last one shorter) or from the length of a 1-D split
// (whose values may be computed at run time: the pieces' sizes are then
// unknown). Errors name the node.
Expected<std::optional<std::vector<ir::TensorType>>> splitPieceTypes(const ir::Node& node) {
  NodeView view(node, 0);
  const ir::Value* x = node.input(0);
  if (!x || !x->type.isTensor() || !x->type.shape) return std::optional<std::vector<ir::TensorType>>();
  ir::Shape shape = *x->type.shape;
  const int64_t rank = static_cast<int64_t>(shape.size());
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalizeAxis(view, view.attrInt("axis", 0), rank));
  const ir::Dim along = shape[static_cast<size_t>(axis)];
  std::vector<ir::TensorType> pieces;
  auto too_many = [&](int64_t count) {
    return view.unsupportedError("makes " + str(count) + " pieces; Kiln expands sequences at compile time, up to " +
                                 str(kMaxStaticElements) + " elements");
  };
  auto piece = [&](ir::Dim size) {
    ir::Shape s = shape;
    s[static_cast<size_t>(axis)] = size;
    pieces.push_back({x->type.dtype, std::move(s)});
  };
  const ir::Value* split = node.input(1);
  if (!split) {
    if (!along.isKnown()) return std::optional<std::vector<ir::TensorType>>();
    if (along.value > kMaxStaticElements) return too_many(along.value);
    const bool keepdims = view.attrInt("keepdims", 1) != 0;
    for (int64_t i = 0; i < along.value; ++i) {
      piece(ir::Dim::known(1));
      if (!keepdims) pieces.back().shape->erase(pieces.back().shape->begin() + axis);
    }
    return std::optional(std::move(pieces));
  }
  if (!split->type.shape || split->type.shape->size() > 1) return std::optional<std::vector<ir::TensorType>>();
  if (split->type.shape->empty()) {  // one size for every piece
    if (!split->constant || !along.isKnown()) return std::optional<std::vector<ir::TensorType>>();
    const int64_t size = split->constant->intAt(0);
    if (size <= 0) return view.error("split size " + str(size) + " must be positive (input 1)");
    if ((along.value + size - 1) / size > kMaxStaticElements) return too_many((along.value + size - 1) / size);
    for (int64_t begin = 0; begin < along.value; begin += size)
      piece(ir::Dim::known(std::min(size, along.value - begin)));
    return std::optional(std::move(pieces));
  }
  const ir::Dim count = (*split->type.shape)[0];
  if (!count.isKnown()) return std::optional<std::vector<ir::TensorType>>();
  if (count.value > kMaxStaticElements) return too_many(count.value);
  int64_t total = 0;
  for (int64_t i = 0; i < count.value; ++i) {
    if (!split->constant) {
      piece(ir::Dim{});
      continue;
    }
    const int64_t size = split->constant->intAt(i);
    if (size < 0) return view.error("split size " + str(size) + " is negative (input 1)");
    total += size;
    piece(ir::Dim::known(size));
  }
  if (split->constant && along.isKnown() && total != along.value)
    return view.error("split sizes add up to " + str(total) + ", but the input has " + str(along.value) +
                      " along axis " + str(axis));
  return std::optional(std::move(pieces));
}

// Applies SequenceInsert / SequenceErase `node` at its constant position.
Status applyEdit(const ir::Node& node, std::vector<StaticElement>& elements) {
  const int64_t n = static_cast<int64_t>(elements.size());
  const bool insert = node.op_type == "SequenceInsert";
  const ir::Value* position = node.input(insert ? 2 : 1);
  int64_t pos = insert ? n : n - 1;  // defaults: insert at the back, erase the last
  if (position) pos = *constantPosition(position);
  const int64_t limit = insert ? n : n - 1;  // the highest valid position
  if (pos < -n || pos > limit)
    return invalidInput(node.describe() + ": position " + str(pos) + " is outside [" + str(-n) + ", " +
                        str(limit) + "] for a sequence of " + str(n) + " elements");
  if (pos < 0) pos += n;
  if (insert) {
    const ir::Value* tensor = node.input(1);
    elements.insert(elements.begin() + pos, StaticElement{const_cast<ir::Value*>(tensor), tensor->type});
  } else {
    elements.erase(elements.begin() + pos);
  }
  return Status::ok();
}

}  // namespace

std::string withArticle(ValueKind kind) {
  std::string name = ir::kindName(kind);
  return (name[0] == 'o' ? "an " : "a ") + name;
}

std::optional<int64_t> constantPosition(const ir::Value* position) {
  if (!position || !position->constant || position->constant->elementCount() != 1) return std::nullopt;
  return position->constant->intAt(0);
}

Expected<std::optional<std::vector<StaticElement>>> staticSequence(const ir::Value* sequence) {
  using Result = std::optional<std::vector<StaticElement>>;
  // Walk back to the op that starts the list (iteratively: a hostile model may
  // chain many inserts), then replay the inserts and erases forward.
  std::vector<const ir::Node*> edits;
  std::vector<StaticElement> elements;
  for (const ir::Value* v = sequence;;) {
    const ir::Node* p = v ? v->producer : nullptr;
    if (!p || !isDefaultDomain(*p)) return Result();
    const std::string& op = p->op_type;
    if (op == "SequenceInsert" || op == "SequenceErase") {
      const ir::Value* position = p->input(op == "SequenceInsert" ? 2 : 1);
      if (position && !constantPosition(position)) return Result();
      edits.push_back(p);
      v = p->input(0);
    } else if (op == "Identity") {
      v = p->input(0);
    } else if (op == "OptionalGetElement") {
      const ir::Value* opt = p->input(0);
      const ir::Node* maker = opt ? opt->producer : nullptr;
      if (opt && opt->type.kind == ValueKind::kSequence) {
        v = opt;  // opset 18: OptionalGetElement of a sequence is that sequence
      } else if (maker && maker->op_type == "Optional" && maker->input(0)) {
        v = maker->input(0);
      } else {
        return Result();
      }
    } else if (op == "SequenceEmpty") {
      break;
    } else if (op == "SequenceConstruct") {
      for (ir::Value* in : p->inputs)
        if (in) elements.push_back({in, in->type});
      break;
    } else if (op == "SplitToSequence") {
      KILN_ASSIGN_OR_RETURN(auto pieces, splitPieceTypes(*p));
      if (!pieces) return Result();
      for (ir::TensorType& t : *pieces) elements.push_back({nullptr, std::move(t)});
      break;
    } else {
      return Result();
    }
  }
  for (auto it = edits.rbegin(); it != edits.rend(); ++it) KILN_RETURN_IF_ERROR(applyEdit(**it, elements));
  return Result(std::move(elements));
}

ir::TensorType sequenceTypeOf(DType dtype, const std::vector<ir::TensorType>& elements) {
  ir::TensorType type{dtype, std::nullopt, ValueKind::kSequence};
  for (size_t i = 0; i < elements.size(); ++i) {
    const auto& shape = elements[i].shape;
    if (!shape || (i > 0 && (!type.shape || type.shape->size() != shape->size()))) {
      type.shape.reset();
      break;
    }
    if (i == 0) {
      type.shape = shape;
      continue;
    }
    for (size_t d = 0; d < shape->size(); ++d)
      if (!((*type.shape)[d] == (*shape)[d])) (*type.shape)[d] = ir::Dim{};
  }
  return type;
}

bool isContainerOp(const ir::Node& node) {
  static constexpr std::string_view kOps[] = {
      "SequenceEmpty",      "SequenceConstruct", "SequenceInsert", "SequenceErase",      "SequenceAt",
      "SequenceLength",     "SplitToSequence",   "ConcatFromSequence", "SequenceMap",     "Optional",
      "OptionalHasElement", "OptionalGetElement"};
  return isDefaultDomain(node) && std::find(std::begin(kOps), std::end(kOps), node.op_type) != std::end(kOps);
}

Expected<bool> inferContainerPassThrough(InferContext& ctx) {
  const ir::Node& node = ctx.node();
  size_t container = node.inputs.size();
  for (size_t i = 0; i < node.inputs.size() && container == node.inputs.size(); ++i)
    if (node.inputs[i] && !node.inputs[i]->type.isTensor()) container = i;
  if (container == node.inputs.size() || isContainerOp(node)) return false;
  // Control flow carries containers into its bodies; its own inference and
  // the expand-containers pass decide what happens to them.
  static constexpr std::string_view kControlFlow[] = {"If", "Loop", "Scan"};
  if (isDefaultDomain(node) &&
      std::find(std::begin(kControlFlow), std::end(kControlFlow), node.op_type) != std::end(kControlFlow))
    return false;
  if (isDefaultDomain(node) && node.op_type == "Identity" && ctx.opset() >= 14) {
    ctx.setOutputType(0, ctx.inputType(0));
    return true;
  }
  const ir::Value* in = node.inputs[container];
  return ctx.error("input " + str(static_cast<int64_t>(container)) + " '" + in->name + "' is " +
                   withArticle(in->type.kind) + ", but " + node.op_type + " takes tensors only");
}

namespace {

// ---- Inference -------------------------------------------------------------------

Status expectSequence(const NodeView& ctx, size_t i, std::string_view role) {
  if (!ctx.hasInput(i)) return ctx.error(std::string(role) + " is missing (input " + str(static_cast<int64_t>(i)) + ")");
  if (ctx.inputType(i).kind != ValueKind::kSequence)
    return ctx.error(std::string(role) + " is " + withArticle(ctx.inputType(i).kind) + ", expected a sequence (input " +
                     str(static_cast<int64_t>(i)) + ")");
  return Status::ok();
}

Status expectTensor(const NodeView& ctx, size_t i, std::string_view role) {
  if (!ctx.hasInput(i)) return ctx.error(std::string(role) + " is missing (input " + str(static_cast<int64_t>(i)) + ")");
  if (!ctx.inputType(i).isTensor())
    return ctx.error(std::string(role) + " is " + withArticle(ctx.inputType(i).kind) + ", expected a tensor (input " +
                     str(static_cast<int64_t>(i)) + ")");
  return Status::ok();
}

// An optional position input: an int32/int64 scalar.
Status expectPosition(const NodeView& ctx, size_t i) {
  if (!ctx.hasInput(i)) return Status::ok();
  KILN_RETURN_IF_ERROR(expectTensor(ctx, i, "position"));
  const ir::TensorType& t = ctx.inputType(i);
  if (t.dtype != DType::kInt32 && t.dtype != DType::kInt64)
    return ctx.error("position has dtype " + std::string(ir::name(t.dtype)) + ", expected int32 or int64 (input " +
                     str(static_cast<int64_t>(i)) + ")");
  if (t.shape && !t.shape->empty() && !(t.shape->size() == 1 && (*t.shape)[0] == ir::Dim::known(1)))
    return ctx.error("position has shape " + ir::toString(*t.shape) + ", expected a scalar (input " +
                     str(static_cast<int64_t>(i)) + ")");
  return Status::ok();
}

// Sets output 0 to the sequence the node makes: exact when its elements are
// known at compile time, else `fallback`.
Status setSequenceOutput(InferContext& ctx, ir::TensorType fallback) {
  KILN_ASSIGN_OR_RETURN(auto elements, staticSequence(ctx.node().outputs[0]));
  if (!elements) {
    ctx.setOutputType(0, std::move(fallback));
    return Status::ok();
  }
  std::vector<ir::TensorType> types;
  for (const StaticElement& e : *elements) types.push_back(e.type);
  ctx.setOutputType(0, sequenceTypeOf(fallback.dtype, types));
  return Status::ok();
}

Status inferSequenceEmpty(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 0, 0));
  const int64_t code = ctx.attrInt("dtype", static_cast<int64_t>(DType::kFloat32));
  std::optional<DType> dtype = ir::dtypeFromOnnx(static_cast<int32_t>(code));
  if (!dtype || *dtype == DType::kUndefined) return ctx.error("attribute 'dtype' " + str(code) + " is not a known data type");
  ctx.setOutputType(0, {*dtype, std::nullopt, ValueKind::kSequence});
  return Status::ok();
}

Status inferSequenceConstruct(InferContext& ctx) {
  if (ctx.numInputs() == 0) return ctx.error("needs at least one input");
  std::vector<ir::TensorType> types;
  for (size_t i = 0; i < ctx.numInputs(); ++i) {
    KILN_RETURN_IF_ERROR(expectTensor(ctx, i, "element"));
    KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, i, "element"));
    types.push_back(ctx.inputType(i));
  }
  ctx.setOutputType(0, sequenceTypeOf(ctx.inputType(0).dtype, types));
  return Status::ok();
}

Status inferSequenceInsert(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 2, 3));
  KILN_RETURN_IF_ERROR(expectSequence(ctx, 0, "input_sequence"));
  KILN_RETURN_IF_ERROR(expectTensor(ctx, 1, "tensor"));
  KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, 1, "tensor"));
  KILN_RETURN_IF_ERROR(expectPosition(ctx, 2));
  ir::TensorType fallback = sequenceTypeOf(ctx.inputType(0).dtype, {ctx.inputType(0), ctx.inputType(1)});
  return setSequenceOutput(ctx, std::move(fallback));
}

Status inferSequenceErase(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 2));
  KILN_RETURN_IF_ERROR(expectSequence(ctx, 0, "input_sequence"));
  KILN_RETURN_IF_ERROR(expectPosition(ctx, 1));
  return setSequenceOutput(ctx, ctx.inputType(0));
}

Status inferSequenceAt(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 2, 2));
  KILN_RETURN_IF_ERROR(expectSequence(ctx, 0, "input_sequence"));
  KILN_RETURN_IF_ERROR(expectPosition(ctx, 1));
  KILN_ASSIGN_OR_RETURN(auto elements, staticSequence(ctx.node().inputs[0]));
  std::optional<int64_t> pos = constantPosition(ctx.node().inputs[1]);
  if (!elements || !pos) {
    ctx.setOutputType(0, {ctx.inputType(0).dtype, ctx.inputType(0).shape});
    return Status::ok();
  }
  const int64_t n = static_cast<int64_t>(elements->size());
  if (*pos < -n || *pos >= n)
    return ctx.error("position " + str(*pos) + " is outside [" + str(-n) + ", " + str(n - 1) + "] for a sequence of " +
                     str(n) + " elements");
  ctx.setOutputType(0, (*elements)[static_cast<size_t>(*pos < 0 ? *pos + n : *pos)].type);
  return Status::ok();
}

Status inferSequenceLength(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 1));
  KILN_RETURN_IF_ERROR(expectSequence(ctx, 0, "input_sequence"));
  KILN_ASSIGN_OR_RETURN(auto elements, staticSequence(ctx.node().inputs[0]));
  if (!elements) {
    ctx.setOutputType(0, {DType::kInt64, ir::Shape{}});
    return Status::ok();
  }
  const int64_t n = static_cast<int64_t>(elements->size());
  ctx.setOutputConstant(0, ir::Tensor::fromValues<int64_t>(DType::kInt64, {}, std::span<const int64_t>(&n, 1)));
  return Status::ok();
}

Status inferSplitToSequence(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 2));
  KILN_RETURN_IF_ERROR(expectTensor(ctx, 0, "input"));
  KILN_ASSIGN_OR_RETURN(ir::Shape shape, inputShapeOfMinRank(ctx, 0, "input", 1));
  KILN_ASSIGN_OR_RETURN(int64_t axis,
                        normalizeAxis(ctx, ctx.attrInt("axis", 0), static_cast<int64_t>(shape.size())));
  if (ctx.hasInput(1)) {
    KILN_RETURN_IF_ERROR(expectTensor(ctx, 1, "split"));
    const ir::TensorType& split = ctx.inputType(1);
    if (split.dtype != DType::kInt32 && split.dtype != DType::kInt64)
      return ctx.error("split has dtype " + std::string(ir::name(split.dtype)) + ", expected int32 or int64 (input 1)");
    if (split.shape && split.shape->size() > 1)
      return ctx.error("split has rank " + str(static_cast<int64_t>(split.shape->size())) +
                       ", expected a scalar or a 1-D tensor (input 1)");
  }
  // Without knowing the pieces: each has the input's dims but the split one.
  shape[static_cast<size_t>(axis)] = ir::Dim{};
  if (!ctx.hasInput(1) && ctx.attrInt("keepdims", 1) == 0) shape.erase(shape.begin() + axis);
  return setSequenceOutput(ctx, {ctx.inputType(0).dtype, shape, ValueKind::kSequence});
}

// ConcatFromSequence's result: the elements joined along `axis`, or stacked
// along a new `axis` (new_axis=1).
Expected<ir::TensorType> concatType(const NodeView& ctx, const ir::TensorType& sequence,
                                    const std::optional<std::vector<StaticElement>>& elements) {
  const bool new_axis = ctx.attrInt("new_axis", 0) != 0;
  if (elements && elements->empty()) return ctx.error("the sequence is empty; there is nothing to concatenate");
  const std::optional<ir::Shape>& known = elements ? (*elements)[0].type.shape : sequence.shape;
  if (!known) return ctx.error("the elements' rank is unknown");
  const int64_t rank = static_cast<int64_t>(known->size()) + (new_axis ? 1 : 0);
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalizeAxis(ctx, ctx.attrInt("axis", 0), rank));
  ir::Shape out = *known;
  if (new_axis) out.insert(out.begin() + axis, ir::Dim{});
  if (!elements) return ir::TensorType{sequence.dtype, std::move(out)};
  int64_t total = 0;
  bool total_known = true;
  for (const StaticElement& e : *elements) {
    if (!e.type.shape || static_cast<int64_t>(e.type.shape->size()) + (new_axis ? 1 : 0) != rank)
      return ctx.error("the elements' ranks differ (" + e.type.toString() + " and " + (*elements)[0].type.toString() + ")");
    for (int64_t d = 0; d < rank; ++d) {
      if (d == axis) continue;
      const ir::Dim& dim = (*e.type.shape)[static_cast<size_t>(new_axis && d > axis ? d - 1 : d)];
      ir::Dim& o = out[static_cast<size_t>(d)];
      if (conflictingDims(o, dim))
        return ctx.error("the elements' shapes differ outside axis " + str(axis) + " (" + e.type.toString() + " and " +
                         (*elements)[0].type.toString() + ")");
      if (!sameDim(o, dim)) o = ir::Dim{};
    }
    if (new_axis) {
      total += 1;
    } else {
      const ir::Dim& along = (*e.type.shape)[static_cast<size_t>(axis)];
      total_known = total_known && along.isKnown();
      total += along.isKnown() ? along.value : 0;
    }
  }
  out[static_cast<size_t>(axis)] = total_known ? ir::Dim::known(total) : ir::Dim{};
  return ir::TensorType{sequence.dtype, std::move(out)};
}

Status inferConcatFromSequence(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 1));
  KILN_RETURN_IF_ERROR(expectSequence(ctx, 0, "input_sequence"));
  KILN_ASSIGN_OR_RETURN(auto elements, staticSequence(ctx.node().inputs[0]));
  KILN_ASSIGN_OR_RETURN(ir::TensorType type, concatType(ctx, ctx.inputType(0), elements));
  ctx.setOutputType(0, std::move(type));
  return Status::ok();
}

// SequenceMap: each output is a sequence of what the body returns.
Status inferSequenceMap(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectSequence(ctx, 0, "input_sequence"));
  const ir::Attribute* body = ctx.node().attribute("body");
  if (!body || body->graphs.empty()) return ctx.error("missing attribute 'body'");
  const ir::Graph& graph = *body->graphs[0];
  if (graph.inputs.size() != ctx.numInputs())
    return ctx.error("the body takes " + str(static_cast<int64_t>(graph.inputs.size())) + " inputs, the node has " +
                     str(static_cast<int64_t>(ctx.numInputs())));
  if (graph.outputs.size() != ctx.numOutputs())
    return ctx.error("the body returns " + str(static_cast<int64_t>(graph.outputs.size())) + " values, the node has " +
                     str(static_cast<int64_t>(ctx.numOutputs())) + " outputs");
  for (size_t i = 0; i < graph.outputs.size(); ++i) {
    ir::TensorType type = graph.outputs[i]->type;
    type.kind = ValueKind::kSequence;
    ctx.setOutputType(i, std::move(type));
  }
  return Status::ok();
}

// ---- Lowering --------------------------------------------------------------------

// What is left of a sequence op after expand-containers is one whose list or
// position is known only at run time.
Status refuseRunTimeSequence(LowerContext& ctx) {
  return ctx.unsupportedError(
      "the sequence's length or a position is known only at run time; over such sequences Kiln compiles Identity, "
      "SequenceEmpty, SequenceConstruct, SequenceInsert, SequenceErase, SequenceAt and SequenceLength, "
      "and expands the other sequence ops at compile time (constant lengths and positions)");
}

}  // namespace

void registerSequenceOps(OpRegistry& registry) {
  registry.add(OpSchema{"", "SequenceEmpty", {11}, {{"dtype", Kind::kInt}}, inferSequenceEmpty, lowerSequenceEmpty});
  registry.add(OpSchema{"", "SequenceConstruct", {11}, {}, inferSequenceConstruct, lowerSequenceConstruct});
  registry.add(OpSchema{"", "SequenceInsert", {11}, {}, inferSequenceInsert, lowerSequenceInsert});
  registry.add(OpSchema{"", "SequenceErase", {11}, {}, inferSequenceErase, lowerSequenceErase});
  registry.add(OpSchema{"", "SequenceAt", {11}, {}, inferSequenceAt, lowerSequenceAt});
  registry.add(OpSchema{"", "SequenceLength", {11}, {}, inferSequenceLength, lowerSequenceLength});
  registry.add(OpSchema{"",
                        "SplitToSequence",
                        {11},
                        {{"axis", Kind::kInt}, {"keepdims", Kind::kInt}},
                        inferSplitToSequence,
                        refuseRunTimeSequence});
  registry.add(OpSchema{"",
                        "ConcatFromSequence",
                        {11},
                        {{"axis", Kind::kInt, true}, {"new_axis", Kind::kInt}},
                        inferConcatFromSequence,
                        refuseRunTimeSequence});
  registry.add(OpSchema{"", "SequenceMap", {17}, {{"body", Kind::kGraph, true}}, inferSequenceMap,
                        refuseRunTimeSequence});
}

}  // namespace kiln::ops
