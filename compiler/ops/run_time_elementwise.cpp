// Elementwise ops over values whose dims are known only at run time (a
// Range's length, a Reshape's computed target, ...). Each output dim is the
// numpy broadcast of the inputs' dims at that position:
//   - sizes known at compile time decide it when one of them is not 1; an
//     input's run-time dim there must then be 1 or that size (checked);
//   - otherwise the run-time dims decide it: one slot is the size as it is,
//     several distinct slots give the first that is not 1, with a check
//     that every other is 1 or equal to it. An input read twice (x * x) has
//     one slot per dim and needs no check.
// An output dim left to the run gets a slot of its own holding that size.
// The checks name the node and print the shapes with their run-time values.
// A run-time dim that may be 1 where the output's is not is read at
// min(i, dim - 1), which is 0 when it broadcasts and i when it does not; the
// dim that decided the output's size is read at i.
#include <algorithm>

#include "compiler/ops/kernel_exprs.h"
#include "compiler/ops/run_time_shapes.h"

namespace kiln::ops {
namespace {

using kir::Expr;

// One dim of the broadcast result: a compile-time size, or a slot.
struct DimSize {
  int64_t value = 1;
  int slot = -1;
};

// "[{$3}x4]": input i's dims, run-time ones as their slots.
std::string inputShape(const LowerContext& ctx, size_t i) {
  std::vector<int64_t> dims = ctx.inputDims(i);
  std::string s = "[";
  for (size_t d = 0; d < dims.size(); ++d) {
    int slot = ctx.inputDimSlot(i, d);
    s += (d ? "x" : "") + (slot >= 0 ? "{$" + std::to_string(slot) + "}" : std::to_string(dims[d]));
  }
  return s + "]";
}

std::string describeInputs(const LowerContext& ctx, const std::vector<size_t>& inputs) {
  std::string list;
  for (size_t i : inputs) {
    const std::string& name = ctx.node().inputs[i]->name;
    list += (list.empty() ? "" : ", ") + std::string("input ") + std::to_string(i) + " '" + name + "' " +
            inputShape(ctx, i);
  }
  return list;
}

class BroadcastPlan {
 public:
  BroadcastPlan(LowerContext& ctx, std::vector<size_t> inputs) : ctx_(ctx), inputs_(std::move(inputs)) {}

  Expected<std::vector<DimSize>> dims(size_t rank) {
    std::vector<DimSize> out(rank);
    for (size_t d = 0; d < rank; ++d) {
      int64_t fixed = 1;
      std::vector<int> slots;
      for (size_t i : inputs_) {
        std::vector<int64_t> in = ctx_.inputDims(i);
        if (in.size() > rank) return internalError(ctx_.node().describe() + ": input rank exceeds the output's");
        size_t offset = rank - in.size();
        if (d < offset) continue;
        int slot = ctx_.inputDimSlot(i, d - offset);
        if (slot >= 0) {
          if (std::find(slots.begin(), slots.end(), slot) == slots.end()) slots.push_back(slot);
          continue;
        }
        int64_t v = in[d - offset];
        if (v == 1) continue;
        if (fixed != 1 && fixed != v)
          return ctx_.error(describeInputs(ctx_, inputs_) + " do not broadcast (dim " + std::to_string(d) + ")");
        fixed = v;
      }
      if (slots.empty()) {
        out[d] = {fixed, -1};
      } else if (fixed != 1) {
        out[d] = {fixed, -1};
        Expr ok = Expr::constant(ir::DType::kBool, 1);
        for (int s : slots)
          ok = ok && (kir::eq(kir::slotValue(s), Expr::index(1)) || kir::eq(kir::slotValue(s), Expr::index(fixed)));
        check(d, ok);
      } else if (slots.size() == 1) {
        out[d] = {0, slots[0]};
      } else {
        Expr size = kir::slotValue(slots[0]);
        for (size_t k = 1; k < slots.size(); ++k)
          size = kir::select(kir::eq(size, Expr::index(1)), kir::slotValue(slots[k]), size);
        int slot = ctx_.newSlot();
        shapeKernel().setSlot(slot, size);
        Expr ok = Expr::constant(ir::DType::kBool, 1);
        for (int s : slots)
          ok = ok && (kir::eq(kir::slotValue(s), Expr::index(1)) || kir::eq(kir::slotValue(s), kir::slotValue(slot)));
        check(d, ok);
        out[d] = {0, slot};
      }
    }
    return out;
  }

  // Output `o` takes the broadcast dims: a pending dim their slot (a new
  // one holding the size where it is known at compile time), a dim the
  // graph knows is checked against it.
  Status bindOutput(size_t o, const std::vector<DimSize>& sizes) {
    std::vector<int64_t> known = ctx_.outputDims(o);
    if (known.size() != sizes.size())
      return internalError(ctx_.node().describe() + ": output rank differs from the broadcast's");
    for (size_t d = 0; d < sizes.size(); ++d) {
      const DimSize& size = sizes[d];
      if (ctx_.outputDimPending(o, d)) {  // each value has slots of its own
        int slot = ctx_.newSlot();
        shapeKernel().setSlot(slot, size.slot >= 0 ? kir::slotValue(size.slot) : Expr::index(size.value));
        ctx_.setOutputDimSlot(o, d, slot);
        continue;
      }
      if (size.slot < 0) {
        if (size.value != known[d])
          return internalError(ctx_.node().describe() + ": output dim " + std::to_string(d) + " is " +
                               std::to_string(size.value) + " by broadcasting but " + std::to_string(known[d]) +
                               " by inference");
        continue;
      }
      shapeKernel().check(
          ctx_.addCheck("output '" + ctx_.node().outputs[o]->name + "' dim " + std::to_string(d) + " is {$" +
                        std::to_string(size.slot) + "} at run time, but was inferred as " + std::to_string(known[d])),
          kir::eq(kir::slotValue(size.slot), Expr::index(known[d])));
    }
    return Status::ok();
  }

 private:
  kir::KernelBuilder& shapeKernel() {
    if (!shape_kernel_) shape_kernel_ = &ctx_.newKernel("shape");
    return *shape_kernel_;
  }

  void check(size_t d, Expr ok) {
    shapeKernel().check(
        ctx_.addCheck(describeInputs(ctx_, inputs_) + " do not broadcast at run time (dim " + std::to_string(d) + ")"),
        std::move(ok));
  }

  LowerContext& ctx_;
  std::vector<size_t> inputs_;
  kir::KernelBuilder* shape_kernel_ = nullptr;
};

}  // namespace

bool hasRunTimeShape(const LowerContext& ctx) {
  for (size_t i = 0; i < ctx.numInputs(); ++i)
    if (ctx.hasInput(i) && ctx.isDynamicInput(i)) return true;
  for (size_t o = 0; o < ctx.numOutputs(); ++o) {
    if (!ctx.hasOutput(o)) continue;
    for (size_t d = 0; d < ctx.outputDims(o).size(); ++d)
      if (ctx.outputDimPending(o, d) || ctx.outputDimSlot(o, d) >= 0) return true;
  }
  return false;
}

Status lowerRunTimeElementwise(LowerContext& ctx, const std::vector<size_t>& inputs, size_t num_outputs,
                               const RunTimeElementFn& fn) {
  size_t rank = ctx.outputDims(0).size();
  BroadcastPlan plan(ctx, inputs);
  KILN_ASSIGN_OR_RETURN(std::vector<DimSize> sizes, plan.dims(rank));
  for (size_t o = 0; o < num_outputs; ++o)
    if (ctx.hasOutput(o)) KILN_RETURN_IF_ERROR(plan.bindOutput(o, sizes));
  kir::KernelBuilder& kb = ctx.newKernel();
  std::vector<kir::IterVar> axes = ctx.outputVars(0);
  std::vector<Expr> values;
  for (size_t i : inputs) {
    LowerContext::Buffer x = ctx.input(i);
    size_t offset = rank - x.rank();
    std::vector<Expr> index;
    for (size_t d = 0; d < x.rank(); ++d) {
      const kir::IterVar& axis = axes[offset + d];
      int slot = ctx.inputDimSlot(i, d);
      bool same = slot == axis.extent_slot || slot == sizes[offset + d].slot;  // the output's size: no broadcast
      if (slot >= 0)
        index.push_back(same ? Expr(axis) : kir::min(Expr(axis), kir::slotValue(slot) - Expr::index(1)));
      else
        index.push_back(x.dim(d) == 1 ? Expr::index(0) : Expr(axis));
    }
    values.push_back(toCompute(x.load(index)));
  }
  std::vector<Expr> results = fn(values);
  for (size_t o = 0; o < num_outputs && o < results.size(); ++o) {
    if (!ctx.hasOutput(o)) continue;
    LowerContext::Buffer y = ctx.output(o);
    kb.compute(y, axes, kir::cast(y.dtype(), results[o]));
  }
  return Status::ok();
}

}  // namespace kiln::ops
