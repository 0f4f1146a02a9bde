#include "compiler/lower/lower_graph.h"

#include <algorithm>
#include <map>
#include <set>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/containers.h"
#include "compiler/ops/op_registry.h"

namespace kiln::lower {
namespace {

std::string symbolName(const std::string& text) {
  std::string out;
  for (char c : text) out += (std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
  return out;
}

// Tensor buffers: an optional tensor is one (with a present slot); a
// sequence gets a container buffer (bindContainer) and never comes here.
Status expectTensor(const ir::Value& value, const std::string& role) {
  if (value.type.isTensor() || value.type.kind == ir::ValueKind::kOptionalTensor) return Status::ok();
  return unsupported(role + " '" + value.name + "' is " + (value.type.kind == ir::ValueKind::kSequence ? "a " : "an ") +
                     ir::kindName(value.type.kind) + "; compiled programs take and return tensors only");
}

// The runtime's tensors hold at most KILN_MAX_RANK dims: a model with a
// higher-rank input or output would compile to an artifact no one can load.
Status expectInterfaceRank(const ir::Value& value, const std::string& role) {
  size_t rank = value.type.shape ? value.type.shape->size() : 0;
  if (rank <= static_cast<size_t>(ir::kMaxRank)) return Status::ok();
  return unsupported(role + " '" + value.name + "' has rank " + std::to_string(rank) +
                     "; a compiled model's inputs and outputs have rank at most " + std::to_string(ir::kMaxRank));
}

Expected<std::vector<int64_t>> staticDims(const ir::Value& value, const std::string& role) {
  KILN_RETURN_IF_ERROR(expectTensor(value, role));
  if (!value.type.shape) return unsupported(role + " '" + value.name + "' has an unknown rank");
  for (const ir::Dim& d : *value.type.shape)
    if (!d.isKnown())
      return unsupported(role + " '" + value.name + "' has symbolic dimension '" +
                         (d.symbol.empty() ? "?" : d.symbol) + "' (shape " + ir::toString(*value.type.shape) +
                         "); pin it with --shape " + value.name + "=...");
  std::vector<int64_t> dims = *ir::knownDims(*value.type.shape);
  auto count = ir::elementCount(dims);
  if (!count) return count.status().withContext(role + " '" + value.name + "'");
  return dims;
}

// A value whose rank is known and whose dims may not all be: the known dims,
// 0 in place of the others, and the slots marking them pending (to be set by
// the producing op's lowering); `slots` stays empty when all dims are known.
Expected<std::vector<int64_t>> dimsOrPending(const ir::Value& value, const std::string& role, std::vector<int>& slots) {
  KILN_RETURN_IF_ERROR(expectTensor(value, role));
  if (!value.type.shape) return unsupported(role + " '" + value.name + "' has an unknown rank");
  const ir::Shape& shape = *value.type.shape;
  bool all_known = std::all_of(shape.begin(), shape.end(), [](const ir::Dim& d) { return d.isKnown(); });
  if (all_known) return staticDims(value, role);
  std::vector<int64_t> dims;
  slots.assign(shape.size(), -1);
  for (size_t d = 0; d < shape.size(); ++d) {
    dims.push_back(shape[d].isKnown() ? shape[d].value : 0);
    if (!shape[d].isKnown()) slots[d] = kPendingDim;
  }
  return dims;
}

bool hasPendingDims(const ProgramBuffer& b) {
  return std::count(b.dim_slots.begin(), b.dim_slots.end(), kPendingDim) > 0;
}

class GraphLowering final : public ops::SubgraphLowering {
 public:
  explicit GraphLowering(const ir::Model& model) : model_(model), graph_(model.graph) {}

  Expected<Program> run() {
    KILN_RETURN_IF_ERROR(bindInputs());
    KILN_RETURN_IF_ERROR(bindOutputs());
    KILN_RETURN_IF_ERROR(lowerNodes(graph_));
    KILN_RETURN_IF_ERROR(copyAliasedOutputs());
    for (int b : program_.output_buffers) {
      const ProgramBuffer& out = program_.buffers[b];
      bool optional = out.container == ir::ValueKind::kOptionalTensor || out.container == ir::ValueKind::kOptionalSequence;
      if (optional && out.present_slot < 0)
        return unsupported("graph output '" + out.name + "' is an optional whose presence its producer does not give");
    }
    planArena(program_);
    KILN_RETURN_IF_ERROR(program_.verify());
    return std::move(program_);
  }

  // Subgraph nodes (If/Loop/Scan bodies) come here too, through their op's
  // lowering: their values get buffers of the same program.
  Status lowerNodes(const ir::Graph& graph) override {
    const auto& registry = ops::OpRegistry::global();
    for (const auto& node : graph.nodes()) {
      int index = ++node_count_;
      if (std::all_of(node->outputs.begin(), node->outputs.end(),
                      [](const ir::Value* v) { return !v || v->isConstant(); }))
        continue;  // folded (e.g. Constant): its values become program constants where read
      int64_t opset = model_.opsetFor(node->domain);
      KILN_ASSIGN_OR_RETURN(const ops::OpSchema* schema, registry.resolve(*node, opset));
      for (const ir::Value* in : node->inputs)
        if (in) KILN_RETURN_IF_ERROR(bindRead(*in, *node));
      for (const ir::Value* out : node->outputs)
        if (out) KILN_RETURN_IF_ERROR(bindIntermediate(*out));
      ops::LowerContext ctx(*node, static_cast<int>(opset), program_, buffers_,
                            "k" + std::to_string(index) + "_" + symbolName(node->op_type));
      ctx.setSubgraphs(this);
      std::string dynamic = runTimeShaped(*node);
      Status lowered = ops::isContainerIdentity(*node) ? ops::lowerContainerIdentity(ctx) : schema->lower(ctx);
      if (!lowered.isOk()) return lowered;
      if (!dynamic.empty() && !ctx.handlesDynamicShapes())
        return unsupported(node->describe() + ": " + dynamic +
                           " has a shape computed at run time; this op is compiled for static shapes only");
      for (const ir::Value* out : node->outputs)
        if (out && hasPendingDims(program_.buffers[buffers_.at(out)]))
          return internalError(node->describe() + ": lowering left the shape of '" + out->name + "' undecided");
      ctx.flush();
    }
    return Status::ok();
  }

  Expected<int> bufferOf(const ir::Value& value) override {
    if (!buffers_.count(&value)) {
      if (value.isConstant()) KILN_RETURN_IF_ERROR(bindRead(value, ir::Node{}));
      else KILN_RETURN_IF_ERROR(bindIntermediate(value));
    }
    return buffers_.at(&value);
  }

  void bind(const ir::Value& value, int buffer) override { buffers_[&value] = buffer; }

 private:
  static bool isSequence(const ir::Value& v) {
    return v.type.kind == ir::ValueKind::kSequence || v.type.kind == ir::ValueKind::kOptionalSequence;
  }

  // A sequence's buffer holds a kiln_sequence pointer, not tensor data (see
  // ProgramBuffer::container); an input optional's presence is a slot the
  // runtime fills, any other optional's is the slot its producer names.
  int bindContainer(const ir::Value& v, ProgramBuffer::Kind kind, int io_index) {
    ProgramBuffer buffer{v.name, v.type.dtype, {}, kind, io_index, {}, -1, {}};
    buffer.container = v.type.kind;
    bool optional = v.type.kind == ir::ValueKind::kOptionalSequence || v.type.kind == ir::ValueKind::kOptionalTensor;
    if (optional && kind == ProgramBuffer::Kind::kInput) buffer.present_slot = program_.addSlot();
    int b = program_.addBuffer(std::move(buffer));
    buffers_[&v] = b;
    return b;
  }

  // Whether a graph input or output is a sequence or an optional: such a
  // model is not lowered once per sample size (driver/compile.cpp), so a
  // symbolic dim of a tensor input is a dim slot the runtime fills from the
  // input (symbolSlots).
  bool hasContainerBoundary() const {
    for (const auto* list : {&graph_.inputs, &graph_.outputs})
      for (const ir::Value* v : *list)
        if (!v->type.isTensor()) return true;
    return false;
  }

  // A tensor input's dims, each symbolic one a dim slot: one per symbol, so
  // inputs that share a symbol must agree at run time (the runtime checks).
  Expected<std::vector<int64_t>> symbolSlots(const ir::Value& v, std::vector<int>& slots) {
    KILN_RETURN_IF_ERROR(expectTensor(v, "input"));
    if (!v.type.shape) return unsupported("input '" + v.name + "' has an unknown rank");
    std::vector<int64_t> dims;
    for (size_t d = 0; d < v.type.shape->size(); ++d) {
      const ir::Dim& dim = (*v.type.shape)[d];
      dims.push_back(dim.isKnown() ? dim.value : 0);
      if (dim.isKnown()) continue;
      slots.resize(v.type.shape->size(), -1);
      std::string symbol = dim.symbol.empty() ? v.name + ":" + std::to_string(d) : dim.symbol;
      auto [at, added] = symbol_slots_.try_emplace(symbol, -1);
      if (added) at->second = program_.addSlot();
      slots[d] = at->second;
    }
    return dims;
  }

  Status bindInputs() {
    for (size_t i = 0; i < graph_.inputs.size(); ++i) {
      const ir::Value& v = *graph_.inputs[i];
      if (isSequence(v)) {
        program_.inputs.push_back(TensorSignature{v.name, v.type.dtype, v.type.shape.value_or(ir::Shape{}), v.type.kind});
        program_.input_buffers.push_back(bindContainer(v, ProgramBuffer::Kind::kInput, static_cast<int>(i)));
        continue;
      }
      KILN_RETURN_IF_ERROR(expectInterfaceRank(v, "input"));
      std::vector<int> slots;
      KILN_ASSIGN_OR_RETURN(auto dims, hasContainerBoundary() ? symbolSlots(v, slots) : staticDims(v, "input"));
      program_.inputs.push_back(TensorSignature{v.name, v.type.dtype, *v.type.shape, v.type.kind});
      ProgramBuffer buffer{v.name, v.type.dtype, dims, ProgramBuffer::Kind::kInput, static_cast<int>(i), {}, -1, slots};
      buffer.container = v.type.kind;
      if (v.type.kind == ir::ValueKind::kOptionalTensor) buffer.present_slot = program_.addSlot();
      int b = program_.addBuffer(std::move(buffer));
      program_.input_buffers.push_back(b);
      buffers_[&v] = b;
    }
    return Status::ok();
  }

  // A graph output produced by a node is written in place by that node. One
  // that is a graph input, a constant, or listed twice gets a copy kernel.
  Status bindOutputs() {
    for (size_t i = 0; i < graph_.outputs.size(); ++i) {
      const ir::Value& v = *graph_.outputs[i];
      if (isSequence(v)) {
        program_.outputs.push_back(TensorSignature{v.name, v.type.dtype, v.type.shape.value_or(ir::Shape{}), v.type.kind});
        bool direct = v.producer && !buffers_.count(&v);
        int b = direct ? bindContainer(v, ProgramBuffer::Kind::kOutput, static_cast<int>(i))
                       : program_.addBuffer(ProgramBuffer{v.name, v.type.dtype, {}, ProgramBuffer::Kind::kOutput,
                                                          static_cast<int>(i), {}, -1, {}});
        program_.buffers[b].container = v.type.kind;
        program_.output_buffers.push_back(b);
        if (!direct) copies_.push_back({&v, b});
        continue;
      }
      KILN_RETURN_IF_ERROR(expectInterfaceRank(v, "output"));
      std::vector<int> slots;
      KILN_ASSIGN_OR_RETURN(auto dims, dimsOrPending(v, "output", slots));
      program_.outputs.push_back(TensorSignature{v.name, v.type.dtype, *v.type.shape, v.type.kind});
      ProgramBuffer buffer{v.name, v.type.dtype, dims, ProgramBuffer::Kind::kOutput, static_cast<int>(i), {}, -1, slots};
      buffer.container = v.type.kind;
      int b = program_.addBuffer(std::move(buffer));
      program_.output_buffers.push_back(b);
      bool direct = v.producer && !v.isConstant() && !buffers_.count(&v);
      if (direct) buffers_[&v] = b;
      else copies_.push_back({&v, b});
    }
    return Status::ok();
  }

  Status bindRead(const ir::Value& value, const ir::Node& reader) {
    if (buffers_.count(&value)) return Status::ok();
    if (!value.isConstant())
      return internalError(reader.describe() + " reads '" + value.name + "' before it is produced");
    const ir::Tensor& t = *value.constant;  // a string tensor's buffer is its pointer array (codegen builds it)
    ProgramBuffer buffer{value.name, t.dtype(), t.dims(), ProgramBuffer::Kind::kConstant, -1, t, -1, {}};
    buffers_[&value] = program_.addBuffer(std::move(buffer));
    return Status::ok();
  }

  Status bindIntermediate(const ir::Value& value) {
    if (buffers_.count(&value)) return Status::ok();
    if (isSequence(value)) {
      bindContainer(value, ProgramBuffer::Kind::kIntermediate, -1);
      return Status::ok();
    }
    std::vector<int> slots;
    KILN_ASSIGN_OR_RETURN(auto dims, dimsOrPending(value, "value", slots));
    ProgramBuffer buffer{value.name, value.type.dtype, dims, ProgramBuffer::Kind::kIntermediate, -1, {}, -1, slots};
    buffer.container = value.type.kind;
    buffers_[&value] = program_.addBuffer(std::move(buffer));
    return Status::ok();
  }

  // Names the first input or output of `node` whose shape is known only at
  // run time, or "" when all are static.
  std::string runTimeShaped(const ir::Node& node) const {
    for (size_t i = 0; i < node.inputs.size(); ++i)
      if (node.inputs[i] && program_.buffers[buffers_.at(node.inputs[i])].isDynamic())
        return "input " + std::to_string(i) + " '" + node.inputs[i]->name + "'";
    for (size_t i = 0; i < node.outputs.size(); ++i)
      if (node.outputs[i] && hasPendingDims(program_.buffers[buffers_.at(node.outputs[i])]))
        return "output " + std::to_string(i) + " '" + node.outputs[i]->name + "'";
    return "";
  }

  Status copyAliasedOutputs() {
    for (auto [value, out] : copies_) {
      KILN_RETURN_IF_ERROR(bindRead(*value, ir::Node{}));
      int src = buffers_.at(value);
      ProgramBuffer& dst = program_.buffers[out];
      if (dst.container != ir::ValueKind::kTensor) dst.present_slot = program_.buffers[src].present_slot;
      if (dst.container == ir::ValueKind::kSequence || dst.container == ir::ValueKind::kOptionalSequence) {
        ContainerStep alias;
        alias.before_call = static_cast<int>(program_.calls.size());
        alias.result = out;
        alias.sequence = src;
        alias.origin = "graph output '" + dst.name + "'";
        program_.container_steps.push_back(std::move(alias));
        continue;
      }
      if (hasPendingDims(dst)) {  // the copy of a run-time-shaped value has its shape
        dst.dims = program_.buffers[src].dims;
        dst.dim_slots = program_.buffers[src].dim_slots;
      }
      kir::KernelBuilder b("copy_output_" + std::to_string(dst.io_index), "graph output '" + dst.name + "'");
      if (dst.isDynamic()) {
        auto in = b.input(value->name, dst.dtype, dst.dims);
        auto o = b.output(dst.name, dst.dtype, dst.dims);
        b.kernel().params[0].dim_slots = b.kernel().params[1].dim_slots = dst.dim_slots;
        std::vector<kir::IterVar> axes = b.vars(dst.dims);
        for (size_t d = 0; d < axes.size(); ++d) axes[d].extent_slot = dst.dim_slots[d];
        b.compute(o, axes, in.load(std::vector<kir::Expr>(axes.begin(), axes.end())));
      } else {
        std::vector<int64_t> flat = {dst.elementCount()};
        auto in = b.input(value->name, dst.dtype, flat);
        auto o = b.output(dst.name, dst.dtype, flat);
        auto i = b.var("i", flat[0]);
        b.compute(o, {i}, in(i));
      }
      program_.calls.push_back(KernelCall{b.finish(), {src, out}});
    }
    return Status::ok();
  }

  const ir::Model& model_;
  const ir::Graph& graph_;
  Program program_;
  std::map<const ir::Value*, int> buffers_;
  std::vector<std::pair<const ir::Value*, int>> copies_;
  std::map<std::string, int> symbol_slots_;  // symbolSlots: one dim slot per input symbol
  int node_count_ = 0;
};

}  // namespace

Expected<Program> lowerGraph(const ir::Model& model) { return GraphLowering(model).run(); }

namespace {

// Whether every load of params `reads` in `e` indexes exactly `axes`.
bool loadsAtAxes(const kir::Expr& e, const std::vector<int>& reads, const std::vector<kir::IterVar>& axes) {
  if (e->kind == kir::ExprNode::Kind::kLoad && std::count(reads.begin(), reads.end(), e->buffer)) {
    if (e->operands.size() != axes.size()) return false;
    for (size_t i = 0; i < axes.size(); ++i)
      if (!kir::indexesAxis(e->operands[i], axes[i])) return false;
  }
  return std::all_of(e->operands.begin(), e->operands.end(),
                     [&](const kir::Expr& o) { return loadsAtAxes(o, reads, axes); });
}

bool hasReduce(const kir::Expr& e) {
  if (e->kind == kir::ExprNode::Kind::kReduce) return true;
  return std::any_of(e->operands.begin(), e->operands.end(), [](const kir::Expr& o) { return hasReduce(o); });
}

bool readsAny(const kir::Expr& e, const std::vector<int>& params) {
  if (e->kind == kir::ExprNode::Kind::kLoad && std::count(params.begin(), params.end(), e->buffer)) return true;
  return std::any_of(e->operands.begin(), e->operands.end(), [&](const kir::Expr& o) { return readsAny(o, params); });
}

// Whether `call` may write buffer `out` over buffer `in` (which dies there):
// one stage writes `out`, element by element over its whole view
// (store index == axes), and every read of `in` in the kernel is in that stage
// at the same element. Each element is then read before it is overwritten,
// and never again. The stage must be reduction-free: a contraction template
// may accumulate partial sums in its output before the epilogue reads.
bool canWriteInPlace(const Program& program, const KernelCall& call, int in, int out) {
  const ProgramBuffer& a = program.buffers[in];
  const ProgramBuffer& b = program.buffers[out];
  if (ir::byteSize(a.dtype) != ir::byteSize(b.dtype) || a.elementCount() != b.elementCount()) return false;
  std::vector<int> reads, writes;
  for (size_t i = 0; i < call.args.size(); ++i) {
    if (call.args[i] == in) {
      if (call.kernel.params[i].written) return false;
      reads.push_back(static_cast<int>(i));
    }
    if (call.args[i] == out) writes.push_back(static_cast<int>(i));
  }
  if (writes.size() != 1) return false;
  const kir::Stage* writer = nullptr;
  for (const kir::Stage& stage : call.kernel.stages) {
    if (stage.buffer == writes[0]) {
      if (writer) return false;
      writer = &stage;
    } else if (readsAny(stage.value, reads)) {
      return false;
    }
    for (const kir::Expr& index : stage.store_index)
      if (readsAny(index, reads)) return false;
  }
  if (!writer || hasReduce(writer->value)) return false;
  const std::vector<int64_t>& shape = call.kernel.params[writes[0]].shape;
  if (writer->axes.size() != shape.size()) return false;
  for (size_t i = 0; i < shape.size(); ++i)
    if (writer->axes[i].extent != shape[i] || !kir::indexesAxis(writer->store_index[i], writer->axes[i])) return false;
  for (int r : reads)
    if (call.kernel.params[r].shape != shape) return false;
  return loadsAtAxes(writer->value, reads, writer->axes);
}

}  // namespace

void planArena(Program& program, bool in_place) {
  constexpr int64_t kAlign = 64;
  const int n = static_cast<int>(program.buffers.size());
  std::vector<int> first(n, -1), last(n, -1);
  for (int c = 0; c < static_cast<int>(program.calls.size()); ++c)
    for (int b : program.calls[c].args) {
      if (first[b] < 0) first[b] = c;
      last[b] = c;
    }
  // Container steps run before call `before_call`; a tensor put into a
  // sequence is referenced until the run ends (the runtime copies sequence
  // outputs after the last kernel).
  const int end_of_run = static_cast<int>(program.calls.size());
  for (const ContainerStep& step : program.container_steps)
    for (int b : {step.result, step.position, step.tensor}) {
      if (b < 0) continue;
      int at = std::min(step.before_call, end_of_run - 1);
      if (first[b] < 0 || first[b] > at) first[b] = std::max(at, 0);
      last[b] = std::max(last[b], b == step.tensor ? end_of_run : at);
    }
  // A buffer used inside a loop and outside it lives through the whole
  // loop: every iteration reads it (an outer value a body captures) or
  // carries it to the next (loop state).
  for (const CallRegion& r : program.regions) {
    if (!r.repeat) continue;
    for (int b = 0; b < n; ++b) {
      bool inside = first[b] >= 0 && first[b] < r.end && last[b] >= r.first;
      if (!inside || (first[b] >= r.first && last[b] < r.end)) continue;
      first[b] = std::min(first[b], r.first);
      last[b] = std::max(last[b], r.end - 1);
    }
  }
  struct Placed { int64_t offset, bytes; int last; int buffer; };
  std::vector<Placed> live;
  int64_t arena = 0;
  auto isIntermediate = [&](int b) { return program.buffers[b].kind == ProgramBuffer::Kind::kIntermediate; };
  // Buffers in order of first use; each takes the slot of an input that dies
  // in the same elementwise kernel (in place), or else the lowest gap among
  // the buffers still alive at that point.
  std::vector<int> order;
  for (int b = 0; b < n; ++b) {
    if (!isIntermediate(b)) continue;
    if (program.buffers[b].isDynamic()) program.buffers[b].workspace_offset = -1;  // allocated at run time
    else order.push_back(b);
  }
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return first[a] < first[b]; });
  for (int b : order) {
    ProgramBuffer& buffer = program.buffers[b];
    int64_t bytes = std::max<int64_t>((buffer.byteSize() + kAlign - 1) / kAlign * kAlign, kAlign);
    int end = last[b] < 0 ? first[b] : last[b];
    std::erase_if(live, [&](const Placed& p) { return p.last < first[b]; });
    auto donor = std::find_if(live.begin(), live.end(), [&](const Placed& p) {
      return in_place && first[b] >= 0 && p.last == first[b] && last[p.buffer] == first[b] && p.bytes == bytes &&
             canWriteInPlace(program, program.calls[first[b]], p.buffer, b);
    });
    if (donor != live.end()) {
      buffer.workspace_offset = donor->offset;
      donor->buffer = b;  // the slot now holds b, which may in turn hand it on
      donor->last = end;
      continue;
    }
    std::sort(live.begin(), live.end(), [](const Placed& a, const Placed& b) { return a.offset < b.offset; });
    int64_t offset = 0;
    for (const Placed& p : live) {
      if (p.offset - offset >= bytes) break;
      offset = std::max(offset, p.offset + p.bytes);
    }
    buffer.workspace_offset = offset;
    live.push_back({offset, bytes, end, b});
    arena = std::max(arena, offset + bytes);
  }
  program.workspace_bytes = arena;
}

}  // namespace kiln::lower
