// Lowering of If, Loop and Scan to regions of the program (lower::CallRegion):
// see control_flow.cpp for the scheme. The kernels built here are appended
// to the program directly, between the subgraphs' calls.
#include <algorithm>
#include <set>

#include "compiler/ops/containers.h"
#include "compiler/ops/control_flow.h"

namespace kiln::ops {
namespace {

using kir::Expr;
using lower::Program;
using lower::ProgramBuffer;

// Loops without a trip count run "forever": until the condition ends them.
constexpr int64_t kUnboundedTrips = int64_t{1} << 62;

// A kernel appended to the program: parameters bound to program buffers
// with their dims and dim slots.
class CallBuilder {
 public:
  CallBuilder(Program& program, const std::string& suffix, const std::string& origin)
      : program_(program),
        builder_("cf" + std::to_string(program.calls.size()) + "_" + suffix, origin) {}

  kir::KernelBuilder::Buffer in(int buffer) { return bind(buffer, false); }
  kir::KernelBuilder::Buffer out(int buffer) { return bind(buffer, true); }
  kir::KernelBuilder& b() { return builder_; }
  void finish() { program_.calls.push_back(lower::KernelCall{builder_.finish(), std::move(args_)}); }

  // One iteration variable per dim of `buffer` (a slot's value where dynamic).
  std::vector<kir::IterVar> vars(int buffer) {
    const ProgramBuffer& pb = program_.buffers[buffer];
    std::vector<kir::IterVar> axes = builder_.vars(pb.dims);
    for (size_t d = 0; d < axes.size() && d < pb.dim_slots.size(); ++d) axes[d].extent_slot = pb.dim_slots[d];
    return axes;
  }

 private:
  kir::KernelBuilder::Buffer bind(int buffer, bool written) {
    const ProgramBuffer& pb = program_.buffers[buffer];
    std::string name = "b" + std::to_string(args_.size());
    auto param = written ? builder_.output(name, pb.dtype, pb.dims) : builder_.input(name, pb.dtype, pb.dims);
    builder_.kernel().params.back().dim_slots = pb.dim_slots;
    args_.push_back(buffer);
    return param;
  }

  Program& program_;
  kir::KernelBuilder builder_;
  std::vector<int> args_;
};

int addTemp(Program& program, const std::string& name, ir::DType dtype, std::vector<int64_t> dims,
            std::vector<int> dim_slots = {}) {
  ProgramBuffer b;
  b.name = name;
  b.dtype = dtype;
  b.dims = std::move(dims);
  b.dim_slots = std::move(dim_slots);
  return program.addBuffer(std::move(b));
}

// Regions are kept in order of their first call, an enclosing region before
// the ones inside it (which the subgraph's lowering added already).
void addRegion(Program& program, lower::CallRegion region) {
  if (region.first == region.end) return;
  auto at = std::find_if(program.regions.begin(), program.regions.end(),
                         [&](const lower::CallRegion& r) { return r.first >= region.first; });
  program.regions.insert(at, std::move(region));
}

// Element 0 of a one-element buffer as an int64 (a condition or a count).
Expr firstElement(const kir::KernelBuilder::Buffer& b) {
  return kir::cast(ir::DType::kInt64, b.load(std::vector<Expr>(b.rank(), Expr::index(0))));
}

// dst = src element by element over dst's dims (run-time ones included);
// src has the same dims in this run, perhaps through other slots, or more
// rows (a scan accumulator read for the iterations that ran).
void copyWhole(Program& program, int src, int dst, const std::string& origin) {
  if (src == dst) return;
  CallBuilder cb(program, "copy", origin);
  auto in = cb.in(src);
  auto out = cb.out(dst);
  std::vector<kir::IterVar> axes = cb.vars(dst);
  cb.b().compute(out, axes, in.load(std::vector<Expr>(axes.begin(), axes.end())));
  cb.finish();
}

// Sets the dim slots of `dst` to the dims `src` has in this run (a slot's
// value or a static size), before a copy into `dst` allocates it.
void copyDims(Program& program, int src, int dst, const std::string& origin) {
  const ProgramBuffer& to = program.buffers[dst];
  const ProgramBuffer& from = program.buffers[src];
  if (src == dst || !to.isDynamic()) return;
  CallBuilder cb(program, "dims", origin);
  for (size_t d = 0; d < to.dims.size(); ++d) {
    int slot = to.dim_slots[d];
    int from_slot = d < from.dim_slots.size() ? from.dim_slots[d] : -1;
    if (slot < 0 || slot == from_slot) continue;
    cb.b().setSlot(slot, from_slot >= 0 ? kir::slotValue(from_slot) : Expr::index(from.dims[d]));
  }
  cb.finish();
}

// One step of a scan: `step`[i...] and `whole`[i... with `fixed` indices
// inserted at their axes] (ascending axes), copied into the step or out
// of it.
void copyStep(Program& program, int step, int whole, const std::vector<std::pair<int64_t, Expr>>& fixed,
              bool into_whole, const std::string& origin) {
  CallBuilder cb(program, into_whole ? "scan_out" : "scan_in", origin);
  auto s = into_whole ? cb.in(step) : cb.out(step);
  auto w = into_whole ? cb.out(whole) : cb.in(whole);
  std::vector<kir::IterVar> axes = cb.vars(step);
  std::vector<Expr> index(axes.begin(), axes.end());
  for (const auto& [axis, e] : fixed) index.insert(index.begin() + axis, e);
  std::vector<Expr> own(axes.begin(), axes.end());
  if (into_whole) cb.b().computeAt(w, axes, index, s.load(own));
  else cb.b().compute(s, axes, w.load(index));
  cb.finish();
}

// The buffer a subgraph output reads, through the graph lowering.
Expected<int> bufferOf(LowerContext& ctx, const ir::Value& value) { return ctx.subgraphs()->bufferOf(value); }

Status needSubgraphs(LowerContext& ctx) {
  if (!ctx.subgraphs())
    return ctx.unsupportedError("control flow is lowered only as part of a whole graph");
  return Status::ok();
}

// ---------------------------------------------------------------- If

// Whether a branch reads or makes a sequence or optional: its container
// steps then need kernels of the branch around them, since a step runs
// before a call and a region is a range of calls.
bool touchesContainers(const ir::Graph& graph) {
  for (const ir::Value* v : graph.outputs)
    if (!v->type.isTensor()) return true;
  for (const auto& node : graph.nodes()) {
    for (const ir::Value* v : node->inputs)
      if (v && !v->type.isTensor()) return true;
    for (const ir::Value* v : node->outputs)
      if (v && !v->type.isTensor()) return true;
  }
  return false;
}

// A kernel that only keeps `slot` as it is: the first or last call of a
// branch whose container steps must stay inside its region.
void addRegionMarker(Program& program, int slot, const std::string& origin) {
  CallBuilder cb(program, "branch", origin);
  cb.b().setSlot(slot, kir::slotValue(slot));
  cb.finish();
}

// Branch output `src` into the If's output `dst`: a tensor copied (with the
// dims the branches disagree on), a sequence's table passed on, an
// optional's presence set.
void emitBranchResult(LowerContext& ctx, int src, int dst, const std::string& origin) {
  Program& program = ctx.program();
  if (isSequenceBuffer(program.buffers[dst])) appendSequenceAlias(program, dst, src, origin);
  else {
    copyDims(program, src, dst, origin);
    copyWhole(program, src, dst, origin);
  }
}

void setPresence(Program& program, const std::vector<std::pair<int, int>>& dst_src, const std::string& origin) {
  if (dst_src.empty()) return;
  CallBuilder cb(program, "presence", origin);
  for (auto [dst, src] : dst_src) {
    int from = program.buffers[src].present_slot;
    cb.b().setSlot(program.buffers[dst].present_slot, from >= 0 ? kir::slotValue(from) : Expr::index(1));
  }
  cb.finish();
}

std::vector<std::pair<int, int>> optionalPairs(const Program& program, const std::vector<int>& dst,
                                               const std::vector<int>& src) {
  std::vector<std::pair<int, int>> pairs;
  for (size_t k = 0; k < dst.size(); ++k)
    if (program.buffers[dst[k]].present_slot >= 0) pairs.push_back({dst[k], src[k]});
  return pairs;
}

// One branch: its calls, then its results copied into the If's outputs
// (setting the dims the branches disagree on), guarded by `slot`.
Status lowerBranch(LowerContext& ctx, const std::string& attr, int slot) {
  Program& program = ctx.program();
  const ir::Graph& branch = *ctx.node().attribute(attr)->graphs.at(0);
  const std::string origin = ctx.node().describe() + " " + attr;
  int first = static_cast<int>(program.calls.size());
  bool containers = touchesContainers(branch);
  if (containers) addRegionMarker(program, slot, origin);
  KILN_RETURN_IF_ERROR(ctx.subgraphs()->lowerNodes(branch));
  std::vector<int> dst, src;
  for (size_t i = 0; i < ctx.numOutputs(); ++i) {
    if (!ctx.hasOutput(i)) continue;
    KILN_ASSIGN_OR_RETURN(int from, bufferOf(ctx, *branch.outputs[i]));
    dst.push_back(ctx.outputBuffer(i));
    src.push_back(from);
    emitBranchResult(ctx, from, dst.back(), origin);
  }
  setPresence(program, optionalPairs(program, dst, src), origin);
  if (containers) addRegionMarker(program, slot, origin);
  addRegion(program, {first, static_cast<int>(program.calls.size()), slot, false, origin});
  return Status::ok();
}

}  // namespace

Status lowerIf(LowerContext& ctx) {
  KILN_RETURN_IF_ERROR(needSubgraphs(ctx));
  int then_slot = ctx.newSlot(), else_slot = ctx.newSlot();
  // Outputs whose dims the branches disagree on take them from slots that
  // the branch taken sets.
  for (size_t i = 0; i < ctx.numOutputs(); ++i) {
    if (!ctx.hasOutput(i)) continue;
    const ir::TensorType& type = ctx.node().outputs[i]->type;
    if (!type.isTensor()) {
      if (type.kind == ir::ValueKind::kOptionalTensor)
        return ctx.unsupportedError("output " + std::to_string(i) + " is an optional tensor; If passes on tensors, "
                                    "sequences and optional sequences");
      if (type.kind == ir::ValueKind::kOptionalSequence)
        ctx.program().buffers[ctx.outputBuffer(i)].present_slot = ctx.newSlot();
      continue;
    }
    for (size_t d = 0; d < ctx.outputDims(i).size(); ++d)
      if (ctx.outputDimPending(i, d)) ctx.setOutputDimSlot(i, d, ctx.newSlot());
  }
  auto& b = ctx.newKernel("cond");
  Expr cond = kir::binary(kir::BinaryOp::kNe, firstElement(ctx.input(0, {1})), Expr::index(0));
  b.setSlot(then_slot, kir::cast(ir::DType::kInt64, cond));
  b.setSlot(else_slot, Expr::index(1) - kir::slotValue(then_slot));
  ctx.flush();
  KILN_RETURN_IF_ERROR(lowerBranch(ctx, "then_branch", then_slot));
  return lowerBranch(ctx, "else_branch", else_slot);
}

namespace {

// ---------------------------------------------------------------- Loop and Scan

// What Loop and Scan share: the state buffers, the slots and the kernels
// around the body.
struct LoopFrame {
  int trip_slot = -1, iter_slot = -1, run_slot = -1;
  std::vector<int> state;  // one buffer per loop-carried value
  std::string origin;
};

// Before the loop: the trip count (`trip`, or a constant), iteration 0, and
// whether to run at all (`cond` and 0 < trip).
void emitLoopStart(LowerContext& ctx, LoopFrame& f, std::optional<size_t> trip_input, std::optional<int64_t> trips,
                   std::optional<size_t> cond_input) {
  f.trip_slot = ctx.newSlot();
  f.iter_slot = ctx.newSlot();
  f.run_slot = ctx.newSlot();
  auto& b = ctx.newKernel("loop_start");
  Expr trip = trip_input ? firstElement(ctx.input(*trip_input, {1})) : Expr::index(*trips);
  b.setSlot(f.trip_slot, kir::max(trip, Expr::index(0)));  // a negative M runs no iteration
  b.setSlot(f.iter_slot, Expr::index(0));
  Expr run = kir::slotValue(f.trip_slot) > Expr::index(0);
  if (cond_input) run = run && kir::binary(kir::BinaryOp::kNe, firstElement(ctx.input(*cond_input, {1})), Expr::index(0));
  b.setSlot(f.run_slot, kir::cast(ir::DType::kInt64, run));
  ctx.flush();
}

// End of an iteration: loop-carried results into the state (through a
// temporary where a result is another state value, so swaps work), then
// the next iteration number and whether to go on.
Status emitLoopEnd(LowerContext& ctx, LoopFrame& f, const std::vector<int>& carried, std::optional<int> cond_buffer) {
  Program& program = ctx.program();
  std::set<int> state_slots;  // dims of states whose shape changes between iterations
  for (int state : f.state)
    for (int slot : program.buffers[state].dim_slots)
      if (slot >= 0) state_slots.insert(slot);
  // A result read from another state, or sized by a state's dim slot, is
  // copied aside first (with slots of its own), so that updating one state
  // does not change what another reads.
  std::vector<int> sources = carried;
  for (size_t k = 0; k < carried.size(); ++k) {
    if (carried[k] == f.state[k]) continue;
    if (isSequenceBuffer(program.buffers[f.state[k]])) {
      // A table read from another state is passed on through one of its own.
      if (std::count(f.state.begin(), f.state.end(), carried[k])) {
        sources[k] = addSequenceBuffer(program, ctx.node().name + "/carried" + std::to_string(k), program.buffers[carried[k]]);
        appendSequenceAlias(program, sources[k], carried[k], f.origin);
      }
      continue;
    }
    ProgramBuffer s = program.buffers[carried[k]];
    bool reads_state = std::count(f.state.begin(), f.state.end(), carried[k]) > 0;
    bool sized_by_state = std::any_of(s.dim_slots.begin(), s.dim_slots.end(),
                                      [&](int slot) { return state_slots.count(slot) > 0; });
    if (!reads_state && !sized_by_state) continue;
    std::vector<int> slots = s.dim_slots;
    for (int& slot : slots)
      if (slot >= 0) slot = ctx.newSlot();
    sources[k] = addTemp(program, ctx.node().name + "/carried" + std::to_string(k), s.dtype, s.dims, slots);
    copyDims(program, carried[k], sources[k], f.origin);
    copyWhole(program, carried[k], sources[k], f.origin);
  }
  for (size_t k = 0; k < carried.size(); ++k) {
    if (isSequenceBuffer(program.buffers[f.state[k]])) {
      appendSequenceAlias(program, f.state[k], sources[k], f.origin);
      continue;
    }
    copyDims(program, sources[k], f.state[k], f.origin);
    copyWhole(program, sources[k], f.state[k], f.origin);
  }
  setPresence(program, optionalPairs(program, f.state, sources), f.origin);
  CallBuilder cb(program, "loop_next", f.origin);
  cb.b().setSlot(f.iter_slot, kir::slotValue(f.iter_slot) + Expr::index(1));
  Expr go_on = kir::slotValue(f.iter_slot) < kir::slotValue(f.trip_slot);
  if (cond_buffer)
    go_on = go_on && kir::binary(kir::BinaryOp::kNe, firstElement(cb.in(*cond_buffer)), Expr::index(0));
  cb.b().setSlot(f.run_slot, kir::cast(ir::DType::kInt64, go_on));
  cb.finish();
  return Status::ok();
}

// State buffers: the node's outputs (a temporary where one is omitted),
// holding the initial values before the loop.
// A state whose shape changes between iterations (`state_types`, the types
// the body's inputs got) has a dim slot per changing dim, set from the
// initial value here and from the body's result after each iteration.
// A sequence state is a table passed on by container steps, and an
// optional sequence's presence a slot of its own, set like its table.
Status bindState(LowerContext& ctx, LoopFrame& f, size_t count, size_t first_input,
                 const std::vector<ir::TensorType>& state_types) {
  Program& program = ctx.program();
  std::vector<int> inits;
  for (size_t k = 0; k < count; ++k) {
    int init = ctx.inputBuffer(first_input + k);
    inits.push_back(init);
    if (!state_types[k].isTensor()) {
      if (state_types[k].kind == ir::ValueKind::kOptionalTensor)
        return ctx.unsupportedError("loop-carried value " + std::to_string(k) +
                                    " is an optional tensor; loops carry tensors, sequences and optional sequences");
      ir::ValueKind out_kind = ctx.hasOutput(k) ? ctx.node().outputs[k]->type.kind : state_types[k].kind;
      // An optional sequence state whose output is a sequence (see
      // inferLoop) is a state of its own, unwrapped after the loop.
      bool unwrapped = out_kind == ir::ValueKind::kSequence && state_types[k].kind == ir::ValueKind::kOptionalSequence;
      if (out_kind != state_types[k].kind && !unwrapped)
        return ctx.unsupportedError("loop-carried value " + std::to_string(k) + " is " +
                                    withArticle(state_types[k].kind) + " in the body but output " + std::to_string(k) +
                                    " is declared " + withArticle(out_kind));
      ProgramBuffer like = program.buffers[init];
      like.container = state_types[k].kind;
      int state = ctx.hasOutput(k) && !unwrapped
                      ? ctx.outputBuffer(k)
                      : addSequenceBuffer(program, ctx.node().name + "/state" + std::to_string(k), like);
      program.buffers[state].container = state_types[k].kind;
      if (state_types[k].kind == ir::ValueKind::kOptionalSequence) program.buffers[state].present_slot = ctx.newSlot();
      f.state.push_back(state);
      appendSequenceAlias(program, state, init, f.origin);
      continue;
    }
    const ir::Shape& shape = *state_types[k].shape;
    std::vector<int> slots;
    for (size_t d = 0; d < shape.size(); ++d)
      if (!shape[d].isKnown()) {
        slots.resize(shape.size(), -1);
        slots[d] = ctx.newSlot();
      }
    int state;
    if (ctx.hasOutput(k)) {
      state = ctx.outputBuffer(k);
      for (size_t d = 0; d < slots.size(); ++d)
        if (slots[d] >= 0) ctx.setOutputDimSlot(k, d, slots[d]);
    } else {
      std::vector<int64_t> dims;
      for (const ir::Dim& dim : shape) dims.push_back(dim.isKnown() ? dim.value : 0);
      state = addTemp(program, ctx.node().name + "/state" + std::to_string(k), program.buffers[init].dtype, dims,
                      slots);
    }
    f.state.push_back(state);
    copyDims(program, init, state, f.origin);
    copyWhole(program, init, state, f.origin);
  }
  setPresence(program, optionalPairs(program, f.state, inits), f.origin);
  return Status::ok();
}

std::vector<ir::TensorType> inputTypes(const ir::Graph& body, size_t first, size_t count) {
  std::vector<ir::TensorType> types;
  for (size_t k = 0; k < count; ++k) types.push_back(body.inputs[first + k]->type);
  return types;
}

// Scan outputs of a Loop accumulate one row per iteration, in a buffer of
// `trip count` rows. A dim of the per-iteration value known only at run
// time takes its size in the first iteration, and every later iteration
// is checked to agree (the rows must stack).
struct ScanAccumulator {
  int buffer = -1;
  std::vector<int> step_slots;  // per dim of one row: the slot holding its size, or -1
};

ScanAccumulator addScanAccumulator(LowerContext& ctx, const LoopFrame& f, const ir::Value& step, size_t k,
                                   const ir::Tensor* m) {
  ScanAccumulator acc;
  std::vector<int64_t> dims{m ? std::max<int64_t>(m->intAt(0), 0) : 0};
  std::vector<int> slots{m ? -1 : f.trip_slot};
  for (const ir::Dim& dim : *step.type.shape) {
    dims.push_back(dim.isKnown() ? dim.value : 0);
    slots.push_back(dim.isKnown() ? -1 : ctx.newSlot());
    acc.step_slots.push_back(slots.back());
  }
  bool dynamic = std::any_of(slots.begin(), slots.end(), [](int slot) { return slot >= 0; });
  acc.buffer = addTemp(ctx.program(), ctx.node().name + "/scan" + std::to_string(k), step.type.dtype, dims,
                       dynamic ? slots : std::vector<int>{});
  return acc;
}

// In the body's region, before row `iteration` is written: the row's run-time
// dims, taken in iteration 0 and checked in the others.
void emitScanRowDims(LowerContext& ctx, const LoopFrame& f, const ScanAccumulator& acc, int step, size_t k) {
  Program& program = ctx.program();
  if (std::none_of(acc.step_slots.begin(), acc.step_slots.end(), [](int slot) { return slot >= 0; })) return;
  const ProgramBuffer row = program.buffers[step];
  std::vector<std::pair<int, Expr>> checks;
  for (size_t d = 0; d < acc.step_slots.size(); ++d) {
    if (acc.step_slots[d] < 0) continue;
    int row_slot = d < row.dim_slots.size() ? row.dim_slots[d] : -1;
    Expr size = row_slot >= 0 ? kir::slotValue(row_slot) : Expr::index(row.dims[d]);
    std::string now = row_slot >= 0 ? "{$" + std::to_string(row_slot) + "}" : std::to_string(row.dims[d]);
    int check = ctx.addCheck("scan output " + std::to_string(k) + " has dim " + std::to_string(d) + " = " + now +
                             " in iteration {$" + std::to_string(f.iter_slot) + "} but {$" +
                             std::to_string(acc.step_slots[d]) +
                             "} in the first; the values of a scan output must have the same shape in every iteration");
    checks.push_back({check, kir::eq(size, kir::slotValue(acc.step_slots[d]))});
  }
  CallBuilder cb(program, "scan_row_dims", f.origin);
  Expr first = kir::eq(kir::slotValue(f.iter_slot), Expr::index(0));
  for (size_t d = 0; d < acc.step_slots.size(); ++d) {
    if (acc.step_slots[d] < 0) continue;
    int row_slot = d < row.dim_slots.size() ? row.dim_slots[d] : -1;
    Expr size = row_slot >= 0 ? kir::slotValue(row_slot) : Expr::index(row.dims[d]);
    cb.b().setSlot(acc.step_slots[d], kir::select(first, size, kir::slotValue(acc.step_slots[d])));
  }
  for (auto& [check, ok] : checks) cb.b().check(check, ok);
  cb.finish();
}

// After the loop: an optional sequence state whose output is a sequence
// (bindState) must hold one, which it does once an iteration ran; its
// table is then the output's.
void unwrapOptionalStates(LowerContext& ctx, const LoopFrame& f) {
  Program& program = ctx.program();
  for (size_t k = 0; k < f.state.size(); ++k) {
    if (!ctx.hasOutput(k) || f.state[k] == ctx.outputBuffer(k)) continue;
    if (program.buffers[f.state[k]].container != ir::ValueKind::kOptionalSequence) continue;
    CallBuilder cb(program, "unwrap", f.origin);
    int check = ctx.addCheck("loop-carried value " + std::to_string(k) + " is an empty optional after the loop (no " +
                             "iteration ran), but output " + std::to_string(k) + " '" + ctx.node().outputs[k]->name +
                             "' is a sequence");
    cb.b().check(check, Expr::index(0) < kir::slotValue(program.buffers[f.state[k]].present_slot));
    cb.finish();
    appendSequenceAlias(program, ctx.outputBuffer(k), f.state[k], f.origin);
  }
}

}  // namespace

Status lowerLoop(LowerContext& ctx) {
  KILN_RETURN_IF_ERROR(needSubgraphs(ctx));
  Program& program = ctx.program();
  const ir::Graph& body = *ctx.node().attribute("body")->graphs.at(0);
  size_t carried = ctx.numInputs() - 2;
  size_t scans = ctx.numOutputs() - carried;
  const ir::Tensor* m = ctx.hasInput(0) ? ctx.constantInput(0) : nullptr;
  if (!ctx.hasInput(0) && scans > 0)
    return ctx.unsupportedError("scan outputs need a trip count (input 0 'M') to size them");
  LoopFrame f;
  f.origin = ctx.node().describe();
  std::optional<size_t> trip_input = ctx.hasInput(0) && !m ? std::optional<size_t>(0) : std::nullopt;
  std::optional<int64_t> trips = m ? m->intAt(0) : kUnboundedTrips;
  emitLoopStart(ctx, f, trip_input, trips, ctx.hasInput(1) ? std::optional<size_t>(1) : std::nullopt);
  KILN_RETURN_IF_ERROR(bindState(ctx, f, carried, 2, inputTypes(body, 2, carried)));
  // Scan outputs accumulate `trip count` rows (static when M is constant).
  std::vector<ScanAccumulator> accumulators;
  for (size_t k = 0; k < scans; ++k)
    accumulators.push_back(addScanAccumulator(ctx, f, *body.outputs[1 + carried + k], k, m));
  // The body: the iteration number and the condition (true whenever the
  // body runs) as its first inputs, the state as the others.
  int first = static_cast<int>(program.calls.size());
  int iter = addTemp(program, ctx.node().name + "/iteration", ir::DType::kInt64, {});
  int cond_in = addTemp(program, ctx.node().name + "/cond_in", ir::DType::kBool, {});
  {
    CallBuilder cb(program, "loop_iteration", f.origin);
    cb.b().compute(cb.out(iter), {}, kir::slotValue(f.iter_slot));
    cb.b().compute(cb.out(cond_in), {}, Expr::constant(ir::DType::kBool, 1));
    cb.finish();
  }
  ctx.subgraphs()->bind(*body.inputs[0], iter);
  ctx.subgraphs()->bind(*body.inputs[1], cond_in);
  for (size_t k = 0; k < carried; ++k) ctx.subgraphs()->bind(*body.inputs[2 + k], f.state[k]);
  KILN_RETURN_IF_ERROR(ctx.subgraphs()->lowerNodes(body));
  copyInsertedData(program, first);  // the body's buffers are overwritten by the next iteration
  KILN_ASSIGN_OR_RETURN(int cond_out, bufferOf(ctx, *body.outputs[0]));
  for (size_t k = 0; k < scans; ++k) {
    KILN_ASSIGN_OR_RETURN(int step, bufferOf(ctx, *body.outputs[1 + carried + k]));
    emitScanRowDims(ctx, f, accumulators[k], step, k);
    copyStep(program, step, accumulators[k].buffer, {{0, kir::slotValue(f.iter_slot)}}, true, f.origin);
  }
  std::vector<int> results;
  for (size_t k = 0; k < carried; ++k) {
    KILN_ASSIGN_OR_RETURN(int r, bufferOf(ctx, *body.outputs[1 + k]));
    results.push_back(r);
  }
  KILN_RETURN_IF_ERROR(emitLoopEnd(ctx, f, results, cond_out));
  addRegion(program, {first, static_cast<int>(program.calls.size()), f.run_slot, true, f.origin});
  unwrapOptionalStates(ctx, f);
  // After the loop: the rows of the iterations that ran.
  for (size_t k = 0; k < scans; ++k) {
    if (!ctx.hasOutput(carried + k)) continue;
    if (ctx.outputDimPending(carried + k, 0)) ctx.setOutputDimSlot(carried + k, 0, f.iter_slot);
    const std::vector<int>& row_slots = accumulators[k].step_slots;
    for (size_t d = 0; d < row_slots.size(); ++d)
      if (row_slots[d] >= 0) ctx.setOutputDimSlot(carried + k, d + 1, row_slots[d]);
    copyWhole(program, accumulators[k].buffer, ctx.outputBuffer(carried + k), f.origin);
  }
  return Status::ok();
}

Status lowerScan(LowerContext& ctx) {
  KILN_RETURN_IF_ERROR(needSubgraphs(ctx));
  KILN_ASSIGN_OR_RETURN(ScanLayout s, scanLayout(ctx));
  Program& program = ctx.program();
  const ir::Graph& body = *ctx.node().attribute("body")->graphs.at(0);
  bool batched = ctx.opset() < 9;
  LoopFrame f;
  f.origin = ctx.node().describe();
  // Opset 8 runs batch x length iterations: b = i / length, t = i % length,
  // the state of batch b copied in and out of the body around each step.
  emitLoopStart(ctx, f, std::nullopt, s.batch * s.length, std::nullopt);
  std::vector<ir::TensorType> state_types;
  for (size_t k = 0; k < s.state; ++k) state_types.push_back(ctx.inputType(s.first_input + k));
  KILN_RETURN_IF_ERROR(bindState(ctx, f, s.state, s.first_input, state_types));
  int first = static_cast<int>(program.calls.size());
  Expr i = kir::slotValue(f.iter_slot);
  Expr batch = batched ? i / Expr::index(s.length) : Expr::index(0);
  Expr t = batched ? i % Expr::index(s.length) : i;
  auto step = [&](bool reverse) { return reverse ? Expr::index(s.length - 1) - t : t; };
  std::vector<int> body_state = f.state;
  if (batched) {
    for (size_t k = 0; k < s.state; ++k) {
      const ProgramBuffer& st = program.buffers[f.state[k]];
      std::vector<int64_t> dims(st.dims.begin() + 1, st.dims.end());
      body_state[k] = addTemp(program, ctx.node().name + "/batch_state" + std::to_string(k), st.dtype, dims);
      copyStep(program, body_state[k], f.state[k], {{0, batch}}, false, f.origin);
    }
  }
  for (size_t k = 0; k < s.state; ++k) ctx.subgraphs()->bind(*body.inputs[k], body_state[k]);
  for (size_t j = 0; j < s.scan_inputs; ++j) {
    int whole = ctx.inputBuffer(s.first_input + s.state + j);
    const ProgramBuffer& w = program.buffers[whole];
    std::vector<int64_t> dims = w.dims;
    dims.erase(dims.begin() + s.input_axes[j]);
    std::vector<std::pair<int64_t, Expr>> fixed;
    if (batched) {
      dims.erase(dims.begin());
      fixed.push_back({0, batch});
    }
    fixed.push_back({s.input_axes[j], step(s.input_reverse[j] != 0)});
    int slice = addTemp(program, ctx.node().name + "/scan_in" + std::to_string(j), w.dtype, dims);
    copyStep(program, slice, whole, fixed, false, f.origin);
    ctx.subgraphs()->bind(*body.inputs[s.state + j], slice);
  }
  KILN_RETURN_IF_ERROR(ctx.subgraphs()->lowerNodes(body));
  for (size_t k = 0; k < s.scan_outputs; ++k) {
    if (!ctx.hasOutput(s.state + k)) continue;
    KILN_ASSIGN_OR_RETURN(int value, bufferOf(ctx, *body.outputs[s.state + k]));
    int out = ctx.outputBuffer(s.state + k);
    int64_t axis = normalizedAxis(s.output_axes[k], ctx.outputDims(s.state + k).size());
    std::vector<std::pair<int64_t, Expr>> fixed;
    if (batched) fixed.push_back({0, batch});
    fixed.push_back({axis, step(s.output_reverse[k] != 0)});
    copyStep(program, value, out, fixed, true, f.origin);
  }
  std::vector<int> results;
  for (size_t k = 0; k < s.state; ++k) {
    KILN_ASSIGN_OR_RETURN(int r, bufferOf(ctx, *body.outputs[k]));
    results.push_back(r);
  }
  if (batched) {
    // Results go to this batch's row of the state; a result that is a
    // state input of the body is copied first.
    for (size_t k = 0; k < s.state; ++k) {
      int src = results[k];
      if (std::count(body_state.begin(), body_state.end(), src)) {
        const ProgramBuffer& r = program.buffers[src];
        int tmp = addTemp(program, ctx.node().name + "/carried" + std::to_string(k), r.dtype, r.dims);
        copyWhole(program, src, tmp, f.origin);
        results[k] = tmp;
      }
    }
    for (size_t k = 0; k < s.state; ++k) copyStep(program, results[k], f.state[k], {{0, batch}}, true, f.origin);
    results = f.state;  // nothing left to carry: the rows are written
  }
  KILN_RETURN_IF_ERROR(emitLoopEnd(ctx, f, results, std::nullopt));
  addRegion(program, {first, static_cast<int>(program.calls.size()), f.run_slot, true, f.origin});
  return Status::ok();
}

}  // namespace kiln::ops
