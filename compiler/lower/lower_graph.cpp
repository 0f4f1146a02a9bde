#include "compiler/lower/lower_graph.h"

#include <algorithm>
#include <map>
#include <set>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/op_registry.h"

namespace kiln::lower {
namespace {

std::string symbolName(const std::string& text) {
  std::string out;
  for (char c : text) out += (std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
  return out;
}

Expected<std::vector<int64_t>> staticDims(const ir::Value& value, const std::string& role) {
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

class GraphLowering {
 public:
  explicit GraphLowering(const ir::Model& model) : model_(model), graph_(model.graph) {}

  Expected<Program> run() {
    KILN_RETURN_IF_ERROR(bindInputs());
    KILN_RETURN_IF_ERROR(bindOutputs());
    const auto& registry = ops::OpRegistry::global();
    int index = 0;
    for (const auto& node : graph_.nodes()) {
      ++index;
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
      Status lowered = schema->lower(ctx);
      if (!lowered.isOk()) return lowered;
      ctx.flush();
    }
    KILN_RETURN_IF_ERROR(copyAliasedOutputs());
    planArena(program_);
    KILN_RETURN_IF_ERROR(program_.verify());
    return std::move(program_);
  }

 private:
  Status bindInputs() {
    for (size_t i = 0; i < graph_.inputs.size(); ++i) {
      const ir::Value& v = *graph_.inputs[i];
      KILN_ASSIGN_OR_RETURN(auto dims, staticDims(v, "input"));
      program_.inputs.push_back(TensorSignature{v.name, v.type.dtype, *v.type.shape});
      ProgramBuffer buffer{v.name, v.type.dtype, dims, ProgramBuffer::Kind::kInput, static_cast<int>(i), {}, -1};
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
      KILN_ASSIGN_OR_RETURN(auto dims, staticDims(v, "output"));
      program_.outputs.push_back(TensorSignature{v.name, v.type.dtype, *v.type.shape});
      ProgramBuffer buffer{v.name, v.type.dtype, dims, ProgramBuffer::Kind::kOutput, static_cast<int>(i), {}, -1};
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
    const ir::Tensor& t = *value.constant;
    if (t.dtype() == ir::DType::kString)
      return unsupported(reader.describe() + ": string tensors are not supported ('" + value.name + "')");
    ProgramBuffer buffer{value.name, t.dtype(), t.dims(), ProgramBuffer::Kind::kConstant, -1, t, -1};
    buffers_[&value] = program_.addBuffer(std::move(buffer));
    return Status::ok();
  }

  Status bindIntermediate(const ir::Value& value) {
    if (buffers_.count(&value)) return Status::ok();
    KILN_ASSIGN_OR_RETURN(auto dims, staticDims(value, "value"));
    ProgramBuffer buffer{value.name, value.type.dtype, dims, ProgramBuffer::Kind::kIntermediate, -1, {}, -1};
    buffers_[&value] = program_.addBuffer(std::move(buffer));
    return Status::ok();
  }

  Status copyAliasedOutputs() {
    for (auto [value, out] : copies_) {
      KILN_RETURN_IF_ERROR(bindRead(*value, ir::Node{}));
      int src = buffers_.at(value);
      const ProgramBuffer& dst = program_.buffers[out];
      kir::KernelBuilder b("copy_output_" + std::to_string(dst.io_index), "graph output '" + dst.name + "'");
      std::vector<int64_t> flat = {dst.elementCount()};
      auto in = b.input(value->name, dst.dtype, flat);
      auto o = b.output(dst.name, dst.dtype, flat);
      auto i = b.var("i", flat[0]);
      b.compute(o, {i}, in(i));
      program_.calls.push_back(KernelCall{b.finish(), {src, out}});
    }
    return Status::ok();
  }

  const ir::Model& model_;
  const ir::Graph& graph_;
  Program program_;
  std::map<const ir::Value*, int> buffers_;
  std::vector<std::pair<const ir::Value*, int>> copies_;
};

}  // namespace

Expected<Program> lowerGraph(const ir::Model& model) { return GraphLowering(model).run(); }

void planArena(Program& program) {
  constexpr int64_t kAlign = 64;
  const int n = static_cast<int>(program.buffers.size());
  std::vector<int> first(n, -1), last(n, -1);
  for (int c = 0; c < static_cast<int>(program.calls.size()); ++c)
    for (int b : program.calls[c].args) {
      if (first[b] < 0) first[b] = c;
      last[b] = c;
    }
  struct Placed { int64_t offset, bytes; int last; };
  std::vector<Placed> live;
  int64_t arena = 0;
  // Buffers in order of first use; each takes the lowest gap among the
  // buffers still alive at that point.
  std::vector<int> order;
  for (int b = 0; b < n; ++b)
    if (program.buffers[b].kind == ProgramBuffer::Kind::kIntermediate) order.push_back(b);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return first[a] < first[b]; });
  for (int b : order) {
    ProgramBuffer& buffer = program.buffers[b];
    int64_t bytes = std::max<int64_t>((buffer.byteSize() + kAlign - 1) / kAlign * kAlign, kAlign);
    std::erase_if(live, [&](const Placed& p) { return p.last < first[b]; });
    std::sort(live.begin(), live.end(), [](const Placed& a, const Placed& b) { return a.offset < b.offset; });
    int64_t offset = 0;
    for (const Placed& p : live) {
      if (p.offset - offset >= bytes) break;
      offset = std::max(offset, p.offset + p.bytes);
    }
    buffer.workspace_offset = offset;
    live.push_back({offset, bytes, last[b] < 0 ? first[b] : last[b]});
    arena = std::max(arena, offset + bytes);
  }
  program.workspace_bytes = arena;
}

}  // namespace kiln::lower
