// Compile-time evaluation of one node: lower it into a one-node Program whose
// inputs are constants, and run that through the reference evaluator.
#include "compiler/kir/evaluator.h"
#include "compiler/lower/lower_context.h"
#include "compiler/lower/lower_graph.h"

namespace kiln::lower {

std::optional<std::vector<ir::Tensor>> evaluateNode(const ir::Node& node, int64_t opset, const FoldLimits& limits) {
  auto schema = ops::OpRegistry::global().resolve(node, opset);
  if (!schema) return std::nullopt;
  Program program;
  std::map<const ir::Value*, int> buffers;
  for (const ir::Value* in : node.inputs) {
    if (!in || buffers.count(in)) continue;
    if (!in->isConstant() || in->constant->dtype() == ir::DType::kString) return std::nullopt;
    const ir::Tensor& t = *in->constant;
    buffers[in] = program.addBuffer(ProgramBuffer{in->name, t.dtype(), t.dims(), ProgramBuffer::Kind::kConstant, -1, t, -1, {}});
  }
  int64_t output_bytes = 0;
  for (const ir::Value* out : node.outputs) {
    if (!out) continue;
    if (!out->type.shape || out->type.dtype == ir::DType::kString) return std::nullopt;
    auto dims = ir::knownDims(*out->type.shape);
    if (!dims) return std::nullopt;
    auto count = ir::elementCount(*dims);
    if (!count) return std::nullopt;
    output_bytes += *count * ir::byteSize(out->type.dtype);
    if (output_bytes > limits.max_output_bytes) return std::nullopt;
    int index = static_cast<int>(program.output_buffers.size());
    int b = program.addBuffer(ProgramBuffer{out->name, out->type.dtype, *dims, ProgramBuffer::Kind::kOutput, index, {}, -1, {}});
    program.output_buffers.push_back(b);
    buffers[out] = b;
  }
  ops::LowerContext ctx(node, static_cast<int>(opset), program, buffers, "fold");
  if (!(*schema)->lower(ctx).isOk()) return std::nullopt;
  ctx.flush();
  int64_t flops = 0;
  for (const KernelCall& call : program.calls) flops += kir::countFlops(call.kernel);
  if (flops > limits.max_flops) return std::nullopt;
  planArena(program);
  if (!program.verify().isOk()) return std::nullopt;

  std::vector<std::vector<std::byte>> storage;
  std::vector<void*> outputs;
  for (int b : program.output_buffers) {
    storage.emplace_back(static_cast<size_t>(program.buffers[b].byteSize()));
    outputs.push_back(storage.back().data());
  }
  if (!evaluateProgram(program, {}, outputs).isOk()) return std::nullopt;
  std::vector<ir::Tensor> results;
  for (size_t i = 0; i < program.output_buffers.size(); ++i) {
    const ProgramBuffer& b = program.buffers[program.output_buffers[i]];
    results.push_back(ir::Tensor::fromBytes(b.dtype, b.dims, std::move(storage[i])));
  }
  return results;
}

}  // namespace kiln::lower
