#include "codegen/cpu/emit_module.h"

#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/MDBuilder.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Transforms/Utils/ModuleUtils.h>

#include <map>
#include <optional>
#include <set>

#include "codegen/cpu/emit_contraction.h"
#include "codegen/cpu/emit_expr.h"
#include "codegen/cpu/emit_sparse_contraction.h"
#include "codegen/cpu/schedule.h"
#include "codegen/cpu/stage_groups.h"

namespace kiln::codegen::cpu {
namespace {

// kiln_exec_context as runtime/src/exec_context.h lays it out.
struct ContextLayout {
  static constexpr unsigned kPool = 2;
  static constexpr unsigned kParallelFor = 3;
  static constexpr unsigned kKernelDone = 4;
  static constexpr unsigned kProfiler = 5;
  static constexpr unsigned kSlots = 6;
  static constexpr unsigned kAlloc = 7;
  static constexpr unsigned kAllocator = 8;
  static constexpr unsigned kStrings = 9;
  static constexpr unsigned kStringPool = 10;
  static constexpr unsigned kWeights = 11;
};

// Where a weight is: a global of the module, or an offset in the weights blob.
struct WeightRef {
  llvm::Constant* global = nullptr;
  uint64_t offset = 0;
};

// A run-time-sized buffer, as locals of the entry point: its address, the
// bytes it holds (-1 before the first allocation), the dims passed to alloc.
struct RunTimeBuffer {
  llvm::Value* address;
  llvm::Value* bytes;
  llvm::Value* dims;
};

bool callsStringFunctions(const kir::Expr& e) {
  if (!e.valid()) return false;
  if (e->kind == kir::ExprNode::Kind::kStringCall) return true;
  for (const kir::Expr& operand : e->operands)
    if (callsStringFunctions(operand)) return true;
  return false;
}

bool callsStringFunctions(const kir::Stage& stage) {
  if (callsStringFunctions(stage.value)) return true;
  for (const kir::Expr& e : stage.store_index)
    if (callsStringFunctions(e)) return true;
  return false;
}

void addLoadedParams(const kir::Expr& e, std::set<int>& params) {
  if (!e.valid()) return;
  if (e->kind == kir::ExprNode::Kind::kLoad) params.insert(e->buffer);
  for (const kir::Expr& operand : e->operands) addLoadedParams(operand, params);
}

// The kernel params a stage reads or writes, ascending: its function takes
// only these. A kernel of many params and stages (a Concat of n inputs: n
// stages of two params each) would otherwise pass every param to every
// stage, and inlining n calls of n noalias arguments is quadratic in LLVM.
std::vector<int> stageParams(const kir::Stage& stage) {
  std::set<int> params;
  if (stage.kind == kir::Stage::Kind::kStore) params.insert(stage.buffer);
  addLoadedParams(stage.value, params);
  for (const kir::Expr& e : stage.store_index) addLoadedParams(e, params);
  return {params.begin(), params.end()};
}

// A stage function is inlined into its kernel's unless the kernel has more
// stages, or the stage more params, than these. Inlining turns each noalias
// param into alias-scope metadata on every memory access (quadratic in the
// params) and merges the stages into one block, whose machine scheduling is
// quadratic when small loops unroll: a Concat of 1024 [2x3] inputs took 9.5 s
// to compile inlined, 2.4 s not; a Sum of 1024, 3.2 s against 0.5 s.
constexpr size_t kMaxInlinedStages = 64;
constexpr size_t kMaxInlinedStageParams = 64;
// Likewise kernels into the entry point: with every kernel inlined, its one
// block is quadratic in LLVM's machine scheduler (1000 Identity outputs took
// 15 s to compile, 2000 more than 30 s). A call per kernel costs nothing
// measurable.
constexpr size_t kMaxInlinedKernels = 64;

// Contractions below this much work run on the calling thread.
constexpr int64_t kMinParallelFlops = 1 << 17;

class ModuleEmitter {
 public:
  ModuleEmitter(llvm::LLVMContext& c, lower::Program program, const ContractionIsa& isa, SparseMode sparse_mode,
                uint64_t blob_min_bytes, WeightBlob weights)
      : c_(c),
        program_(std::move(program)),
        isa_(isa),
        sparse_mode_(sparse_mode),
        blob_min_bytes_(blob_min_bytes),
        module_(std::make_unique<llvm::Module>("kiln_model", c)),
        ptr_(llvm::PointerType::get(c, 0)),
        weights_(std::move(weights)) {
    llvm::Type* i32 = llvm::Type::getInt32Ty(c);
    context_type_ = llvm::StructType::create(
        c, {i32, i32, ptr_, ptr_, ptr_, ptr_, ptr_, ptr_, ptr_, ptr_, ptr_, ptr_}, "kiln_exec_context");
    module_->setSourceFileName("kiln_model");
    for (const lower::KernelCall& call : program_.calls)
      for (const kir::Stage& stage : call.kernel.stages) calls_string_functions_ |= callsStringFunctions(stage);
  }

  EmittedModule run(artifact::ModelDesc desc) {
    planContractions();
    emitWeights();
    std::vector<llvm::Function*> kernels;
    for (size_t k = 0; k < program_.calls.size(); ++k) kernels.push_back(emitKernel(k));
    emitEntry(kernels);
    desc.weights_bytes = weights_.bytes();
    emitDescription(artifact::serialize(desc));
    return {std::move(module_), std::move(weights_)};
  }

 private:
  void emitDescription(const std::vector<uint8_t>& bytes) {
    auto* init = llvm::ConstantDataArray::get(c_, llvm::ArrayRef<uint8_t>(bytes));
    auto* g = new llvm::GlobalVariable(*module_, init->getType(), true, llvm::GlobalValue::InternalLinkage, init,
                                       "kiln_description");
    g->setSection(artifact::kDescSection);
    g->setAlignment(llvm::Align(8));
    llvm::appendToUsed(*module_, {g});
  }

  // Contraction plans per call and stage, and the weights that only packed
  // panels read (their original layout need not ship).
  void planContractions() {
    std::vector<int> other_uses(program_.buffers.size(), 0);
    for (const lower::KernelCall& call : program_.calls) {
      const kir::Kernel& kernel = call.kernel;
      auto constant_of = [&](int param) -> const ir::Tensor* {
        const lower::ProgramBuffer& pb = program_.buffers[call.args[param]];
        return pb.kind == lower::ProgramBuffer::Kind::kConstant ? &*pb.constant : nullptr;
      };
      std::vector<std::optional<ContractionPlan>> plans;
      for (const kir::Stage& stage : kernel.stages)
        plans.push_back(kir::isDynamic(kernel, stage) ? std::nullopt : planContraction(kernel, stage, constant_of, isa_));
      // A param is still needed unless its only load is a packed plan's V.
      std::vector<int64_t> loads(kernel.params.size(), 0), packed(kernel.params.size(), 0);
      for (size_t s = 0; s < kernel.stages.size(); ++s) {
        std::set<const kir::ExprNode*> seen;
        countLoads(kernel.stages[s].value, loads, seen);
        if (plans[s] && plans[s]->packed) ++packed[plans[s]->vector->buffer];
      }
      for (size_t p = 0; p < kernel.params.size(); ++p)
        if (loads[p] != packed[p] || packed[p] == 0) ++other_uses[call.args[p]];
      // Packed weights that are mostly zero blocks take the block-sparse kernel.
      std::vector<std::optional<SparsePlan>> sparse(plans.size());
      for (size_t s = 0; s < plans.size(); ++s)
        if (plans[s] && plans[s]->packed)
          sparse[s] = planSparseContraction(*plans[s], kernel.stages[s], *constant_of(plans[s]->vector->buffer), sparse_mode_);
      sparse_plans_.push_back(std::move(sparse));
      plans_.push_back(std::move(plans));
    }
    // A constant a container step reads (an element, a position) ships as it is.
    for (const lower::ContainerStep& step : program_.container_steps)
      for (int buffer : {step.tensor, step.position})
        if (buffer >= 0) ++other_uses[buffer];
    for (size_t i = 0; i < program_.buffers.size(); ++i)
      if (program_.buffers[i].kind == lower::ProgramBuffer::Kind::kConstant && other_uses[i] == 0)
        packed_only_.insert(static_cast<int>(i));
  }

  // Adds the loads of each param in `e` to `loads`, a node shared by several
  // parents once: fusion shares one sum between the two reads of a product
  // (GELU's x * erf(x)), and the contraction computes it once, so its weight
  // is still read only by the packed panels.
  static void countLoads(const kir::Expr& e, std::vector<int64_t>& loads, std::set<const kir::ExprNode*>& seen) {
    if (!seen.insert(e.operator->()).second) return;
    if (e->kind == kir::ExprNode::Kind::kLoad) ++loads[e->buffer];
    for (const kir::Expr& op : e->operands) countLoads(op, loads, seen);
  }

  // Weights already in kernel layout, all placed before any code is
  // emitted: each constant (but those only read as packed panels) in buffer
  // order, a large one written into the blob, the rest 64-byte-aligned
  // .rodata globals; then the large packed panels of each contraction, in
  // the order of the calls (small ones become globals with their kernel).
  // Every constant is then let go but the weights of small panels, so
  // LLVM's code generation runs with the weights out of memory (sparse
  // plans hold their own copy).
  void emitWeights() {
    constants_.assign(program_.buffers.size(), WeightRef{});
    for (size_t i = 0; i < program_.buffers.size(); ++i) {
      const lower::ProgramBuffer& b = program_.buffers[i];
      if (b.kind != lower::ProgramBuffer::Kind::kConstant) continue;
      if (packed_only_.count(static_cast<int>(i))) {
        constants_[i].global = llvm::ConstantPointerNull::get(ptr_);
        continue;
      }
      if (b.dtype == ir::DType::kString) {
        constants_[i].global = emitStringConstant(*b.constant, i);
        continue;
      }
      auto bytes = b.constant->bytes();
      if (bytes.size() >= blob_min_bytes_) {
        constants_[i].offset = weights_.add(bytes.size(), [&](const WeightBlob::Sink& sink) {
          sink({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
        });
        continue;
      }
      llvm::ArrayRef<uint8_t> data(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
      llvm::Constant* init = data.empty()
                                 ? llvm::ConstantAggregateZero::get(llvm::ArrayType::get(llvm::Type::getInt8Ty(c_), 1))
                                 : llvm::ConstantDataArray::get(c_, data);
      auto* g = new llvm::GlobalVariable(*module_, init->getType(), true, llvm::GlobalValue::PrivateLinkage, init,
                                         "weight_" + std::to_string(i));
      g->setAlignment(llvm::Align(64));
      constants_[i].global = g;
    }
    std::vector<bool> packed_later(program_.buffers.size(), false);
    panel_offsets_.resize(program_.calls.size());
    for (size_t c = 0; c < program_.calls.size(); ++c) {
      const lower::KernelCall& call = program_.calls[c];
      panel_offsets_[c].assign(call.kernel.stages.size(), std::nullopt);
      for (size_t s = 0; s < call.kernel.stages.size(); ++s) {
        const std::optional<ContractionPlan>& plan = plans_[c][s];
        if (sparse_plans_[c][s] || !plan || !plan->packed) continue;
        const kir::Stage& stage = call.kernel.stages[s];
        const auto bytes = static_cast<uint64_t>(packedPanelsBytes(*plan, stage));
        const int buffer = call.args[plan->vector->buffer];
        if (bytes < blob_min_bytes_) {
          packed_later[buffer] = true;
          continue;
        }
        const ir::Tensor& weights = *program_.buffers[buffer].constant;
        panel_offsets_[c][s] = weights_.add(bytes, [&](const WeightBlob::Sink& sink) {
          if (plan->dot_group > 1) {
            sink(packDotPanels(*plan, stage, weights));
            return;
          }
          packPanels(*plan, stage, weights, [&](std::span<const float> panel) {
            sink({reinterpret_cast<const uint8_t*>(panel.data()), panel.size_bytes()});
          });
        });
      }
    }
    for (size_t i = 0; i < program_.buffers.size(); ++i)
      if (program_.buffers[i].kind == lower::ProgramBuffer::Kind::kConstant && !packed_later[i])
        program_.buffers[i].constant = ir::Tensor();
  }

  // A weight's address in a function whose first argument is the context.
  llvm::Value* weightAddress(llvm::IRBuilder<>& b, llvm::Value* ctx, const WeightRef& weight) {
    if (weight.global) return weight.global;
    llvm::LoadInst* base =
        b.CreateLoad(ptr_, b.CreateStructGEP(context_type_, ctx, ContextLayout::kWeights), "weights");
    // The blob is page-aligned and does not change while the model is loaded.
    base->setMetadata(llvm::LLVMContext::MD_invariant_load, llvm::MDNode::get(c_, {}));
    base->setMetadata(llvm::LLVMContext::MD_align,
                      llvm::MDNode::get(c_, {llvm::ConstantAsMetadata::get(b.getInt64(artifact::kWeightsAlignment))}));
    base->setMetadata(llvm::LLVMContext::MD_nonnull, llvm::MDNode::get(c_, {}));
    return b.CreateConstInBoundsGEP1_64(b.getInt8Ty(), base, weight.offset);
  }

  // A string tensor: an array of pointers to NUL-terminated constants, which
  // the linker relocates.
  llvm::GlobalVariable* emitStringConstant(const ir::Tensor& t, size_t index) {
    std::vector<llvm::Constant*> pointers;
    for (size_t k = 0; k < t.strings().size(); ++k) {
      llvm::Constant* text = llvm::ConstantDataArray::getString(c_, t.strings()[k], true);
      auto* g = new llvm::GlobalVariable(*module_, text->getType(), true, llvm::GlobalValue::PrivateLinkage, text,
                                         "string_" + std::to_string(index) + "_" + std::to_string(k));
      pointers.push_back(g);
    }
    auto* type = llvm::ArrayType::get(ptr_, std::max<size_t>(pointers.size(), 1));
    llvm::Constant* init = pointers.empty() ? llvm::ConstantAggregateZero::get(type) : llvm::ConstantArray::get(type, pointers);
    auto* g = new llvm::GlobalVariable(*module_, type, true, llvm::GlobalValue::PrivateLinkage, init,
                                       "weight_" + std::to_string(index));
    g->setAlignment(llvm::Align(64));
    return g;
  }

  llvm::Function* makeFunction(const std::string& name, llvm::Type* ret, std::vector<llvm::Type*> params) {
    auto* type = llvm::FunctionType::get(ret, params, false);
    auto* f = llvm::Function::Create(type, llvm::GlobalValue::InternalLinkage, name, module_.get());
    f->addFnAttr(llvm::Attribute::NoUnwind);
    // The string functions allocate and lock: a model that calls them is free of neither.
    if (!calls_string_functions_) {
      f->addFnAttr(llvm::Attribute::NoFree);
      f->addFnAttr(llvm::Attribute::NoSync);
    }
    return f;
  }

  // void stage(ctx, p..., begin, end), p... the params `stageParams` lists:
  // the stage's loops, the collapsed parallel axes restricted to [begin, end).
  llvm::Function* emitStage(const kir::Kernel& kernel, size_t s, const StageSchedule& schedule,
                            const ContractionPlan* contraction, const WeightRef* panel_weights,
                            const SparsePlan* sparse = nullptr, const SparseWeights* sparse_weights = nullptr) {
    const kir::Stage& stage = kernel.stages[s];
    const std::vector<int> used = stageParams(stage);
    std::vector<llvm::Type*> params(used.size() + 1, ptr_);
    params.push_back(llvm::Type::getInt64Ty(c_));
    params.push_back(llvm::Type::getInt64Ty(c_));
    llvm::Function* f = makeFunction(kernel.name + "_stage" + std::to_string(s), llvm::Type::getVoidTy(c_), params);
    if (kernel.stages.size() > kMaxInlinedStages || used.size() > kMaxInlinedStageParams)
      f->addFnAttr(llvm::Attribute::NoInline);
    std::vector<llvm::Value*> buffers(kernel.params.size(), nullptr);
    for (size_t i = 0; i < used.size(); ++i) {
      f->addParamAttr(static_cast<unsigned>(i + 1), llvm::Attribute::NoAlias);
      f->addParamAttr(static_cast<unsigned>(i + 1), llvm::Attribute::getWithAlignment(c_, llvm::Align(16)));
      buffers[used[i]] = f->getArg(static_cast<unsigned>(i + 1));
    }
    llvm::Value* begin = f->getArg(static_cast<unsigned>(used.size() + 1));
    llvm::Value* end = f->getArg(static_cast<unsigned>(used.size() + 2));
    llvm::IRBuilder<> b(llvm::BasicBlock::Create(c_, "entry", f));
    ExprEmitter emitter(b, kernel, buffers);
    if (contraction) {
      llvm::Value* panels = panel_weights ? weightAddress(b, f->getArg(0), *panel_weights) : nullptr;
      if (sparse) emitSparseContraction(b, emitter, stage, *contraction, *sparse, *sparse_weights, begin, end);
      else emitContraction(b, emitter, stage, *contraction, panels, begin, end);
      b.CreateRetVoid();
      return f;
    }
    if (kir::isDynamic(kernel, stage)) {
      llvm::Value* ctx = f->getArg(0);
      emitter.setSlots(b.CreateLoad(ptr_, b.CreateStructGEP(context_type_, ctx, ContextLayout::kSlots), "slots"));
    }
    if (callsStringFunctions(stage)) {
      llvm::Value* ctx = f->getArg(0);
      emitter.setStrings(b.CreateLoad(ptr_, b.CreateStructGEP(context_type_, ctx, ContextLayout::kStrings), "strings"),
                         b.CreateLoad(ptr_, b.CreateStructGEP(context_type_, ctx, ContextLayout::kStringPool), "pool"));
    }
    if (stage.kind != kir::Stage::Kind::kStore) {
      emitShapeStep(b, emitter, stage);
      return f;
    }
    auto body = [&] { emitter.store(stage.buffer, stage.store_index, emitter.emit(stage.value)); };
    std::function<void(size_t)> nest = [&](size_t d) {
      if (d == stage.axes.size()) return body();
      if (schedule.reduce_outside_inner_axis && d + 1 == stage.axes.size())
        return emitReduceOutsideInnerAxis(b, emitter, stage, *schedule.reduce_outside_inner_axis, body);
      emitter.loop(stage.axes[d].id, b.getInt64(0), emitter.extent(stage.axes[d]), [&](llvm::Value*) { nest(d + 1); });
    };
    int outer = schedule.parallel_axes;
    if (outer == 0) {
      nest(0);
    } else {
      // One flat loop over the collapsed outer axes, split back into indices.
      emitter.loop(-1, begin, end, [&](llvm::Value* flat) {
        for (int d = outer - 1; d >= 0; --d) {
          llvm::Value* extent = b.getInt64(stage.axes[d].extent);
          emitter.bind(stage.axes[d].id, d == 0 ? flat : b.CreateURem(flat, extent));
          if (d > 0) flat = b.CreateUDiv(flat, extent);
        }
        nest(static_cast<size_t>(outer));
      });
    }
    b.CreateRetVoid();
    return f;
  }

  // The innermost axis of `stage` with `reduce`'s loops outside it (see
  // StageSchedule::reduce_outside_inner_axis):
  //   acc[i] = init for each i; for each reduce point: acc[i] = acc[i] op term(i);
  //   then the stage's value with acc[i] standing in for the reduction.
  void emitReduceOutsideInnerAxis(llvm::IRBuilder<>& b, ExprEmitter& emitter, const kir::Stage& stage,
                                  const kir::ExprNode& reduce, const std::function<void()>& body) {
    const kir::IterVar& inner = stage.axes.back();
    llvm::Type* t = emitter.valueType(reduce.dtype);
    llvm::Function* f = b.GetInsertBlock()->getParent();
    llvm::IRBuilder<> entry(&f->getEntryBlock(), f->getEntryBlock().begin());
    llvm::AllocaInst* acc = entry.CreateAlloca(t, b.getInt64(inner.extent), "acc");
    acc->setAlignment(llvm::Align(64));
    auto element = [&](llvm::Value* i) { return b.CreateInBoundsGEP(t, acc, i); };
    llvm::Value* extent = b.getInt64(inner.extent);
    emitter.loop(inner.id, b.getInt64(0), extent, [&](llvm::Value* i) { b.CreateStore(emitter.reduceInit(reduce), element(i)); });
    std::function<void(size_t)> terms = [&](size_t d) {
      if (d == reduce.reduce_vars.size()) {
        emitter.loop(inner.id, b.getInt64(0), extent, [&](llvm::Value* i) {
          b.CreateStore(emitter.reduceStep(reduce, b.CreateLoad(t, element(i))), element(i));
        });
        return;
      }
      const kir::IterVar& v = reduce.reduce_vars[d];
      emitter.loop(v.id, b.getInt64(0), emitter.extent(v), [&](llvm::Value*) { terms(d + 1); });
    };
    terms(0);
    emitter.loop(inner.id, b.getInt64(0), extent, [&](llvm::Value* i) {
      emitter.substitute(&reduce, b.CreateLoad(t, element(i)));
      body();
    });
  }

  // slot = value, or: unless value, the error slot = check + 1 (the first
  // failure wins; the entry point returns it after the kernel).
  void emitShapeStep(llvm::IRBuilder<>& b, ExprEmitter& emitter, const kir::Stage& stage) {
    llvm::Value* value = emitter.emit(stage.value);
    llvm::Function* f = b.GetInsertBlock()->getParent();
    if (stage.kind == kir::Stage::Kind::kSetSlot) {
      b.CreateStore(value, b.CreateConstGEP1_64(b.getInt64Ty(), slotsOf(b, f), static_cast<uint64_t>(stage.target)));
      b.CreateRetVoid();
      return;
    }
    llvm::Value* error_slot = b.CreateConstGEP1_64(b.getInt64Ty(), slotsOf(b, f), kir::kErrorSlot);
    llvm::Value* first = b.CreateICmpEQ(b.CreateLoad(b.getInt64Ty(), error_slot), b.getInt64(0));
    auto* fail = llvm::BasicBlock::Create(c_, "check_failed", f);
    auto* done = llvm::BasicBlock::Create(c_, "done", f);
    b.CreateCondBr(b.CreateAnd(b.CreateNot(value), first), fail, done);
    b.SetInsertPoint(fail);
    b.CreateStore(b.getInt64(stage.target + 1), error_slot);
    b.CreateBr(done);
    b.SetInsertPoint(done);
    b.CreateRetVoid();
  }

  llvm::Value* slotsOf(llvm::IRBuilder<>& b, llvm::Function* f) {
    return b.CreateLoad(ptr_, b.CreateStructGEP(context_type_, f->getArg(0), ContextLayout::kSlots));
  }

  // void task(closure, begin, end) with closure = {ctx, p...}, the stage
  // function's pointer arguments: the signature the thread pool calls.
  llvm::Function* emitTask(llvm::Function* stage_fn, size_t num_params) {
    llvm::Type* i64 = llvm::Type::getInt64Ty(c_);
    llvm::Function* f = makeFunction(stage_fn->getName().str() + "_task", llvm::Type::getVoidTy(c_), {ptr_, i64, i64});
    llvm::IRBuilder<> b(llvm::BasicBlock::Create(c_, "entry", f));
    std::vector<llvm::Value*> args;
    for (size_t i = 0; i < num_params + 1; ++i)
      args.push_back(b.CreateLoad(ptr_, b.CreateConstGEP1_64(ptr_, f->getArg(0), i)));
    args.push_back(f->getArg(1));
    args.push_back(f->getArg(2));
    b.CreateCall(stage_fn, args);
    b.CreateRetVoid();
    return f;
  }

  // Packed weight panels of a contraction: in the blob when large (written
  // by emitWeights), else a private global.
  WeightRef emitPanels(size_t call_index, size_t stage_index, const ContractionPlan& plan) {
    if (const std::optional<uint64_t>& offset = panel_offsets_[call_index][stage_index]) return {nullptr, *offset};
    const lower::KernelCall& call = program_.calls[call_index];
    const kir::Stage& stage = call.kernel.stages[stage_index];
    const ir::Tensor& weights = *program_.buffers[call.args[plan.vector->buffer]].constant;
    llvm::Constant* init = nullptr;
    if (plan.dot_group > 1) {
      init = llvm::ConstantDataArray::get(c_, llvm::ArrayRef<uint8_t>(packDotPanels(plan, stage, weights)));
    } else {
      std::vector<float> panels = packPanels(plan, stage, weights);
      init = llvm::ConstantDataArray::get(c_, llvm::ArrayRef<float>(panels));
    }
    auto* g = new llvm::GlobalVariable(*module_, init->getType(), true, llvm::GlobalValue::PrivateLinkage, init,
                                       "panels_" + std::to_string(panel_count_++));
    g->setAlignment(llvm::Align(64));
    return {g};
  }

  llvm::Function* emitKernel(size_t call_index) {
    const lower::KernelCall& call = program_.calls[call_index];
    const kir::Kernel& kernel = call.kernel;
    std::vector<llvm::Type*> params(kernel.params.size() + 1, ptr_);
    llvm::Function* f = makeFunction(kernel.name, llvm::Type::getVoidTy(c_), params);
    if (program_.calls.size() > kMaxInlinedKernels) f->addFnAttr(llvm::Attribute::NoInline);
    const size_t n = kernel.stages.size();
    std::vector<const ContractionPlan*> stage_plans(n, nullptr);
    std::vector<bool> sparse_stage(n, false);
    for (size_t s = 0; s < n; ++s) {
      if (plans_[call_index][s]) stage_plans[s] = &*plans_[call_index][s];
      sparse_stage[s] = sparse_plans_[call_index][s].has_value();
    }
    const std::vector<StageGroup> groups = planStageGroups(kernel, stage_plans, sparse_stage);
    std::vector<const StageGroup*> group_of(n, nullptr);
    for (const StageGroup& g : groups)
      for (size_t s = g.first; s < g.end; ++s) group_of[s] = &g;

    std::vector<llvm::Function*> stages;
    std::vector<int64_t> tasks;  // parallel task count per stage; -n: n tasks run serially
    for (size_t s = 0; s < n; ++s) {
      const kir::Stage& stage = kernel.stages[s];
      const std::optional<ContractionPlan>& plan = plans_[call_index][s];
      if (const std::optional<SparsePlan>& sparse = sparse_plans_[call_index][s]) {
        SparseWeights weights = emitSparseWeights(*module_, *sparse, panel_count_++);
        stages.push_back(emitStage(kernel, s, StageSchedule{}, &*plan, nullptr, &*sparse, &weights));
        int64_t tasks_n = sparseContractionTasks(stage, *plan, *sparse);
        tasks.push_back(tasks_n >= 2 && kir::countFlops(kernel) * sparse->density >= kMinParallelFlops ? tasks_n
                                                                                                       : -tasks_n);
        continue;
      }
      if (plan) {
        std::optional<WeightRef> panels;
        if (plan->packed) panels = emitPanels(call_index, s, *plan);
        stages.push_back(emitStage(kernel, s, StageSchedule{}, &*plan, panels ? &*panels : nullptr));
        int64_t tasks_n = contractionTasks(stage, *plan);
        tasks.push_back(tasks_n >= 2 && kir::countFlops(kernel) >= kMinParallelFlops ? tasks_n : -tasks_n);
        continue;
      }
      // Run-time extents and shape steps: plain serial loops for now.
      StageSchedule schedule = kir::isDynamic(kernel, stage) ? StageSchedule{} : scheduleStage(stage);
      // In a group, the stage runs one point's range of its collapsed outer axes at a time.
      if (group_of[s]) schedule.parallel_axes = std::max(schedule.parallel_axes, group_of[s]->axes);
      stages.push_back(emitStage(kernel, s, schedule, nullptr, nullptr));
      int64_t outer = 1;
      for (int d = 0; d < schedule.parallel_axes; ++d) outer *= stage.axes[d].extent;
      tasks.push_back(schedule.parallel_axes == 0 ? -1 : outer);
    }
    llvm::IRBuilder<> b(llvm::BasicBlock::Create(c_, "entry", f));
    std::vector<llvm::Value*> args;
    for (llvm::Argument& arg : f->args()) args.push_back(&arg);
    for (size_t s = 0; s < n;) {
      if (const StageGroup* g = group_of[s]) {
        llvm::Function* group = emitGroup(kernel, *g, stages, tasks);
        const bool parallel =
            std::any_of(tasks.begin() + static_cast<std::ptrdiff_t>(g->first),
                        tasks.begin() + static_cast<std::ptrdiff_t>(g->end), [](int64_t t) { return t > 0; });
        const int64_t group_tasks = (g->points + g->points_per_task - 1) / g->points_per_task;
        emitRange(b, group, args, parallel ? group_tasks : -group_tasks);
        s = g->end;
        continue;
      }
      std::vector<llvm::Value*> stage_args = {args[0]};
      for (int p : stageParams(kernel.stages[s])) stage_args.push_back(args[static_cast<size_t>(p) + 1]);
      emitRange(b, stages[s], stage_args, tasks[s]);
      ++s;
    }
    b.CreateRetVoid();
    return f;
  }

  // Calls `fn(args..., begin, end)` over [0, |tasks|): through the thread
  // pool's parallel_for when `tasks` > 0, else on this thread.
  void emitRange(llvm::IRBuilder<>& b, llvm::Function* fn, const std::vector<llvm::Value*>& fn_args, int64_t tasks) {
    if (tasks <= 0) {
      std::vector<llvm::Value*> call_args = fn_args;
      call_args.push_back(b.getInt64(0));
      call_args.push_back(b.getInt64(-tasks));
      b.CreateCall(fn, call_args);
      return;
    }
    llvm::Function* task = emitTask(fn, fn_args.size() - 1);
    llvm::Value* closure = b.CreateAlloca(ptr_, b.getInt64(static_cast<int64_t>(fn_args.size())));
    for (size_t i = 0; i < fn_args.size(); ++i) b.CreateStore(fn_args[i], b.CreateConstGEP1_64(ptr_, closure, i));
    llvm::Value* ctx = fn_args[0];
    llvm::Value* pool = b.CreateLoad(ptr_, b.CreateStructGEP(context_type_, ctx, ContextLayout::kPool));
    llvm::Value* pfor = b.CreateLoad(ptr_, b.CreateStructGEP(context_type_, ctx, ContextLayout::kParallelFor));
    auto* pfor_type = llvm::FunctionType::get(llvm::Type::getVoidTy(c_), {ptr_, b.getInt64Ty(), ptr_, ptr_}, false);
    b.CreateCall(pfor_type, pfor, {pool, b.getInt64(tasks), task, closure});
  }

  // void group(ctx, params..., begin, end): for each task in [begin, end),
  // every stage of `g` on the share of its own tasks that the task's points
  // hold (stage_groups.h): a stage of T tasks (|tasks|) over P points has
  // T / P per point, since its task index puts the group axes outermost.
  llvm::Function* emitGroup(const kir::Kernel& kernel, const StageGroup& g, const std::vector<llvm::Function*>& stages,
                            const std::vector<int64_t>& tasks) {
    llvm::Type* i64 = llvm::Type::getInt64Ty(c_);
    std::vector<llvm::Type*> params(kernel.params.size() + 1, ptr_);
    params.push_back(i64);
    params.push_back(i64);
    llvm::Function* f =
        makeFunction(kernel.name + "_group" + std::to_string(g.first), llvm::Type::getVoidTy(c_), params);
    const auto arg = [&](size_t i) { return f->getArg(static_cast<unsigned>(i)); };
    llvm::Value* begin = arg(kernel.params.size() + 1);
    llvm::Value* end = arg(kernel.params.size() + 2);
    auto* entry = llvm::BasicBlock::Create(c_, "entry", f);
    auto* body = llvm::BasicBlock::Create(c_, "task", f);
    auto* exit = llvm::BasicBlock::Create(c_, "exit", f);
    llvm::IRBuilder<> b(entry);
    b.CreateCondBr(b.CreateICmpSLT(begin, end), body, exit);
    b.SetInsertPoint(body);
    llvm::PHINode* task = b.CreatePHI(i64, 2, "task");
    task->addIncoming(begin, entry);
    llvm::Value* point0 = b.CreateMul(task, b.getInt64(g.points_per_task), "", true, true);
    llvm::Value* point1 = b.CreateAdd(point0, b.getInt64(g.points_per_task), "", true, true);
    point1 = b.CreateSelect(b.CreateICmpSLT(point1, b.getInt64(g.points)), point1, b.getInt64(g.points));
    for (size_t s = g.first; s < g.end; ++s) {
      const int64_t per_point = std::abs(tasks[s]) / g.points;
      std::vector<llvm::Value*> call_args = {arg(0)};
      for (int p : stageParams(kernel.stages[s])) call_args.push_back(arg(static_cast<size_t>(p) + 1));
      call_args.push_back(b.CreateMul(point0, b.getInt64(per_point), "", true, true));
      call_args.push_back(b.CreateMul(point1, b.getInt64(per_point), "", true, true));
      b.CreateCall(stages[s], call_args);
    }
    llvm::Value* next = b.CreateAdd(task, b.getInt64(1), "", true, true);
    task->addIncoming(next, b.GetInsertBlock());
    b.CreateCondBr(b.CreateICmpSLT(next, end), body, exit);
    b.SetInsertPoint(exit);
    b.CreateRetVoid();
    return f;
  }

  // i32 kiln_model_run(ctx, inputs, outputs, workspace)
  void emitEntry(const std::vector<llvm::Function*>& kernels) {
    auto* type = llvm::FunctionType::get(llvm::Type::getInt32Ty(c_), {ptr_, ptr_, ptr_, ptr_}, false);
    auto* f = llvm::Function::Create(type, llvm::GlobalValue::ExternalLinkage, kEntrySymbol, module_.get());
    f->setVisibility(llvm::GlobalValue::DefaultVisibility);
    f->addFnAttr(llvm::Attribute::NoUnwind);
    llvm::IRBuilder<> b(llvm::BasicBlock::Create(c_, "entry", f));
    // The profiling hook, read once: when set, it is called after every kernel.
    llvm::Value* ctx = f->getArg(0);
    kernel_done_ = b.CreateLoad(ptr_, b.CreateStructGEP(context_type_, ctx, ContextLayout::kKernelDone));
    profiler_ = b.CreateLoad(ptr_, b.CreateStructGEP(context_type_, ctx, ContextLayout::kProfiler));
    profiling_ = b.CreateIsNotNull(kernel_done_, "profiling");
    // Run-time-sized buffers: their address and the bytes it holds, in
    // locals, since control flow may reach a use from several places.
    run_time_buffers_.clear();
    std::vector<int> used;  // by kernels, and the tensors container steps read or write
    for (const lower::KernelCall& call : program_.calls) used.insert(used.end(), call.args.begin(), call.args.end());
    for (const lower::ContainerStep& step : program_.container_steps)
      for (int buffer : {step.tensor, step.kind == lower::ContainerStep::Kind::kAt ? step.result : -1})
        if (buffer >= 0) used.push_back(buffer);
    for (int buffer : used) {
      const lower::ProgramBuffer& pb = program_.buffers[buffer];
      if (!pb.isDynamic() || pb.kind == lower::ProgramBuffer::Kind::kInput || run_time_buffers_.count(buffer))
        continue;
      llvm::Value* address = b.CreateAlloca(ptr_, nullptr, "buffer_" + std::to_string(buffer));
      llvm::Value* bytes = b.CreateAlloca(b.getInt64Ty(), nullptr, "bytes_" + std::to_string(buffer));
      b.CreateStore(llvm::ConstantPointerNull::get(ptr_), address);
      b.CreateStore(b.getInt64(-1), bytes);
      llvm::Value* dims = b.CreateAlloca(b.getInt64Ty(), b.getInt64(std::max<int64_t>(pb.dims.size(), 1)));
      run_time_buffers_[buffer] = {address, bytes, dims};
    }
    emitSequenceLocals(b, f);
    next_step_ = 0;
    size_t next_region = 0;
    emitCalls(b, f, kernels, 0, static_cast<int>(kernels.size()), next_region);
    emitStepsBefore(b, f, static_cast<int>(kernels.size()));
    emitSequenceResults(b, f);
    b.CreateRet(b.getInt32(0));
  }

  // Calls [first, end), the control-flow regions among them as branches
  // and loops on their dim slot (see lower::CallRegion).
  void emitCalls(llvm::IRBuilder<>& b, llvm::Function* f, const std::vector<llvm::Function*>& kernels, int first,
                 int end, size_t& next) {
    const std::vector<lower::CallRegion>& regions = program_.regions;
    for (int k = first; k < end;) {
      emitStepsBefore(b, f, k);
      if (next < regions.size() && regions[next].first == k) {
        const lower::CallRegion& region = regions[next++];
        auto* test = llvm::BasicBlock::Create(c_, region.repeat ? "loop" : "if", f);
        auto* body = llvm::BasicBlock::Create(c_, region.repeat ? "loop_body" : "then", f);
        auto* after = llvm::BasicBlock::Create(c_, region.repeat ? "loop_end" : "end_if", f);
        b.CreateBr(test);
        b.SetInsertPoint(test);
        llvm::Value* slot = b.CreateLoad(b.getInt64Ty(), b.CreateConstGEP1_64(b.getInt64Ty(), slotsOf(b, f), region.cond_slot));
        b.CreateCondBr(b.CreateICmpNE(slot, b.getInt64(0)), body, after);
        b.SetInsertPoint(body);
        emitCalls(b, f, kernels, region.first, region.end, next);
        b.CreateBr(region.repeat ? test : after);
        b.SetInsertPoint(after);
        k = region.end;
        continue;
      }
      emitCall(b, f, kernels, static_cast<size_t>(k));
      ++k;
    }
  }

  // Where program buffer `buffer` is in this run (allocating a
  // run-time-sized one first if it needs more room).
  llvm::Value* bufferAddress(llvm::IRBuilder<>& b, llvm::Function* f, int buffer) {
    auto pointerAt = [&](llvm::Value* array, int index) {
      return b.CreateLoad(ptr_, b.CreateConstGEP1_64(ptr_, array, static_cast<uint64_t>(index)));
    };
    const lower::ProgramBuffer& pb = program_.buffers[buffer];
    if (run_time_buffers_.count(buffer)) return emitAllocation(b, f, pb, run_time_buffers_[buffer]);
    switch (pb.kind) {
      case lower::ProgramBuffer::Kind::kInput: return pointerAt(f->getArg(1), pb.io_index);
      case lower::ProgramBuffer::Kind::kOutput: return pointerAt(f->getArg(2), pb.io_index);
      case lower::ProgramBuffer::Kind::kConstant: return weightAddress(b, f->getArg(0), constants_[buffer]);
      case lower::ProgramBuffer::Kind::kIntermediate: break;
    }
    return b.CreateConstInBoundsGEP1_64(b.getInt8Ty(), f->getArg(3), static_cast<uint64_t>(pb.workspace_offset));
  }

  void emitCall(llvm::IRBuilder<>& b, llvm::Function* f, const std::vector<llvm::Function*>& kernels, size_t k) {
    std::vector<llvm::Value*> args = {f->getArg(0)};
    for (int buffer : program_.calls[k].args) args.push_back(bufferAddress(b, f, buffer));
    b.CreateCall(kernels[k], args);
    if (hasChecks(program_.calls[k].kernel)) emitCheckReturn(b, f);
    auto* done_type = llvm::FunctionType::get(llvm::Type::getVoidTy(c_), {ptr_, b.getInt32Ty()}, false);
    llvm::MDNode* rarely = llvm::MDBuilder(c_).createBranchWeights(1, 1000);
    auto* report = llvm::BasicBlock::Create(c_, "kernel_done", f);
    auto* next = llvm::BasicBlock::Create(c_, "next", f);
    b.CreateCondBr(profiling_, report, next, rarely);
    b.SetInsertPoint(report);
    b.CreateCall(done_type, kernel_done_, {profiler_, b.getInt32(static_cast<int32_t>(k))});
    b.CreateBr(next);
    b.SetInsertPoint(next);
  }

  static bool hasChecks(const kir::Kernel& kernel) {
    for (const kir::Stage& stage : kernel.stages)
      if (stage.kind == kir::Stage::Kind::kCheck) return true;
    return false;
  }

  // After a kernel with run-time checks: return the failed check's code.
  void emitCheckReturn(llvm::IRBuilder<>& b, llvm::Function* f) {
    llvm::Value* slots = b.CreateLoad(ptr_, b.CreateStructGEP(context_type_, f->getArg(0), ContextLayout::kSlots));
    llvm::Value* code = b.CreateLoad(b.getInt64Ty(), slots);
    auto* failed = llvm::BasicBlock::Create(c_, "check_failed", f);
    auto* next = llvm::BasicBlock::Create(c_, "checked", f);
    b.CreateCondBr(b.CreateICmpNE(code, b.getInt64(0)), failed, next);
    b.SetInsertPoint(failed);
    b.CreateRet(b.CreateTrunc(code, b.getInt32Ty()));
    b.SetInsertPoint(next);
  }

  // A buffer whose dims are slots: ctx->alloc(allocator, output index or -1,
  // dims, rank, element bytes, name) when a kernel is about to use it and its
  // size in this run (from the slots) is more than it holds — the first use,
  // or a loop iteration where it grew. The runtime checks the size and
  // returns NULL (with its message kept) when it is refused; the entry point
  // then returns -1.
  llvm::Value* emitAllocation(llvm::IRBuilder<>& b, llvm::Function* f, const lower::ProgramBuffer& pb,
                              const RunTimeBuffer& local) {
    llvm::Value* ctx = f->getArg(0);
    llvm::Value* slots = b.CreateLoad(ptr_, b.CreateStructGEP(context_type_, ctx, ContextLayout::kSlots));
    const auto rank = static_cast<int64_t>(pb.dims.size());
    llvm::Value* dims = local.dims;
    llvm::Value* bytes = b.getInt64(ir::byteSize(pb.dtype));
    for (int64_t d = 0; d < rank; ++d) {
      int slot = static_cast<size_t>(d) < pb.dim_slots.size() ? pb.dim_slots[d] : -1;
      llvm::Value* value = b.getInt64(pb.dims[d]);
      if (slot >= 0) value = b.CreateLoad(b.getInt64Ty(), b.CreateConstGEP1_64(b.getInt64Ty(), slots, slot));
      b.CreateStore(value, b.CreateConstGEP1_64(b.getInt64Ty(), dims, static_cast<uint64_t>(d)));
      bytes = b.CreateMul(bytes, value);  // a wrapped or negative size reallocates; the runtime refuses it
    }
    auto* grow = llvm::BasicBlock::Create(c_, "alloc", f);
    auto* refused = llvm::BasicBlock::Create(c_, "alloc_refused", f);
    auto* next = llvm::BasicBlock::Create(c_, "allocated", f);
    llvm::Value* held = b.CreateLoad(b.getInt64Ty(), local.bytes);
    b.CreateCondBr(b.CreateOr(b.CreateICmpSLT(bytes, b.getInt64(0)), b.CreateICmpSGT(bytes, held)), grow, next);
    b.SetInsertPoint(grow);
    llvm::Value* alloc = b.CreateLoad(ptr_, b.CreateStructGEP(context_type_, ctx, ContextLayout::kAlloc));
    llvm::Value* allocator = b.CreateLoad(ptr_, b.CreateStructGEP(context_type_, ctx, ContextLayout::kAllocator));
    auto* type = llvm::FunctionType::get(ptr_, {ptr_, b.getInt32Ty(), ptr_, b.getInt32Ty(), b.getInt32Ty(), ptr_}, false);
    int32_t io = pb.kind == lower::ProgramBuffer::Kind::kOutput ? pb.io_index : -1;
    llvm::Value* name = b.CreateGlobalStringPtr(pb.name, "buffer_name");
    llvm::Value* p = b.CreateCall(type, alloc,
                                  {allocator, b.getInt32(io), dims, b.getInt32(static_cast<int32_t>(rank)),
                                   b.getInt32(static_cast<int32_t>(ir::byteSize(pb.dtype))), name});
    b.CreateStore(p, local.address);
    b.CreateStore(bytes, local.bytes);
    b.CreateCondBr(b.CreateIsNull(p), refused, next);
    b.SetInsertPoint(refused);
    b.CreateRet(b.getInt32(-1));
    b.SetInsertPoint(next);
    return b.CreateLoad(ptr_, local.address);
  }


  // ---- Containers at the graph boundary (lower::ContainerStep) ----
  // kiln_sequence_element {ptr data; ptr dims; i64 rank} and kiln_sequence
  // {i64 count; ptr elements}, as runtime/src/exec_context.h lays them out.
  static constexpr uint64_t kElementBytes = 24;
  static constexpr uint64_t kSequenceBytes = 16;

  static bool isSequence(const lower::ProgramBuffer& pb) {
    return pb.container == ir::ValueKind::kSequence || pb.container == ir::ValueKind::kOptionalSequence;
  }

  // A local per sequence buffer holding its kiln_sequence pointer: an
  // input's from `inputs`, the others NULL until a step sets them.
  void emitSequenceLocals(llvm::IRBuilder<>& b, llvm::Function* f) {
    sequences_.clear();
    for (size_t i = 0; i < program_.buffers.size(); ++i) {
      const lower::ProgramBuffer& pb = program_.buffers[i];
      if (!isSequence(pb)) continue;
      llvm::Value* local = b.CreateAlloca(ptr_, nullptr, "sequence_" + std::to_string(i));
      llvm::Value* init = llvm::ConstantPointerNull::get(ptr_);
      if (pb.kind == lower::ProgramBuffer::Kind::kInput)
        init = b.CreateLoad(ptr_, b.CreateConstGEP1_64(ptr_, f->getArg(1), static_cast<uint64_t>(pb.io_index)));
      b.CreateStore(init, local);
      sequences_[static_cast<int>(i)] = local;
    }
  }

  // A sequence output's `outputs` entry points to where its table goes.
  void emitSequenceResults(llvm::IRBuilder<>& b, llvm::Function* f) {
    for (auto [buffer, local] : sequences_) {
      const lower::ProgramBuffer& pb = program_.buffers[buffer];
      if (pb.kind != lower::ProgramBuffer::Kind::kOutput) continue;
      llvm::Value* slot = b.CreateLoad(ptr_, b.CreateConstGEP1_64(ptr_, f->getArg(2), static_cast<uint64_t>(pb.io_index)));
      b.CreateStore(b.CreateLoad(ptr_, local), slot);
    }
  }

  void emitStepsBefore(llvm::IRBuilder<>& b, llvm::Function* f, int call) {
    const std::vector<lower::ContainerStep>& steps = program_.container_steps;
    for (; next_step_ < steps.size() && steps[next_step_].before_call <= call; ++next_step_) {
      const lower::ContainerStep& step = steps[next_step_];
      llvm::Value* table = b.CreateLoad(ptr_, sequences_.at(step.sequence));
      switch (step.kind) {
        case lower::ContainerStep::Kind::kAlias: b.CreateStore(table, sequences_.at(step.result)); break;
        case lower::ContainerStep::Kind::kLength:
          b.CreateStore(emitCount(b, table), bufferAddress(b, f, step.result));
          break;
        case lower::ContainerStep::Kind::kInsert: emitInsert(b, f, step, table); break;
        case lower::ContainerStep::Kind::kAt: emitAt(b, f, step, table); break;
        case lower::ContainerStep::Kind::kErase: emitErase(b, f, step, table); break;
      }
    }
  }

  // A NULL table (the empty sequence) read as a zeroed one: loads stay
  // unconditional, and a select of a load from NULL would be undefined.
  llvm::Value* readableTable(llvm::IRBuilder<>& b, llvm::Value* table) {
    if (!empty_table_) {
      auto* type = llvm::ArrayType::get(b.getInt64Ty(), 2);
      empty_table_ = new llvm::GlobalVariable(*module_, type, true, llvm::GlobalValue::PrivateLinkage,
                                              llvm::ConstantAggregateZero::get(type), "kiln_empty_sequence");
      empty_table_->setAlignment(llvm::Align(8));
    }
    return b.CreateSelect(b.CreateIsNull(table), empty_table_, table);
  }

  llvm::Value* emitCount(llvm::IRBuilder<>& b, llvm::Value* table) {
    return b.CreateLoad(b.getInt64Ty(), readableTable(b, table));
  }

  // Stops the run with run-time check `check` unless `ok`, first storing
  // `values` into their slots for the message.
  void emitCheck(llvm::IRBuilder<>& b, llvm::Function* f, llvm::Value* ok, int check,
                 const std::vector<std::pair<int, llvm::Value*>>& values) {
    auto* bad = llvm::BasicBlock::Create(c_, "container_check_failed", f);
    auto* good = llvm::BasicBlock::Create(c_, "container_check_ok", f);
    b.CreateCondBr(ok, good, bad);
    b.SetInsertPoint(bad);
    llvm::Value* slots = slotsOf(b, f);
    for (auto [slot, value] : values)
      if (slot >= 0) b.CreateStore(value, b.CreateConstGEP1_64(b.getInt64Ty(), slots, static_cast<uint64_t>(slot)));
    b.CreateStore(b.getInt64(check + 1), slots);
    b.CreateRet(b.getInt32(check + 1));
    b.SetInsertPoint(good);
  }

  // The step's position in [0, count] (an insertion) or [0, count) (the
  // others), negative values counting from the end; without a position
  // input, the end (an insertion) or the last element.
  llvm::Value* emitPosition(llvm::IRBuilder<>& b, llvm::Function* f, const lower::ContainerStep& step,
                            llvm::Value* count) {
    llvm::Type* i64 = b.getInt64Ty();
    bool insert = step.kind == lower::ContainerStep::Kind::kInsert;
    llvm::Value* raw = insert ? count : b.CreateSub(count, b.getInt64(1));
    if (step.position >= 0) {
      const lower::ProgramBuffer& pb = program_.buffers[step.position];
      llvm::Type* type = ir::byteSize(pb.dtype) == 4 ? b.getInt32Ty() : i64;
      raw = b.CreateSExt(b.CreateLoad(type, bufferAddress(b, f, step.position)), i64);
    }
    llvm::Value* position = b.CreateSelect(b.CreateICmpSLT(raw, b.getInt64(0)), b.CreateAdd(raw, count), raw);
    if (step.check < 0) return position;
    llvm::Value* below_end = insert ? b.CreateICmpSLE(position, count) : b.CreateICmpSLT(position, count);
    emitCheck(b, f, b.CreateAnd(b.CreateICmpSGE(position, b.getInt64(0)), below_end), step.check,
              {{step.position_slot, raw}, {step.count_slot, count}});
    return position;
  }

  llvm::Value* elementsOf(llvm::IRBuilder<>& b, llvm::Value* table) {
    return b.CreateLoad(ptr_, b.CreateConstGEP1_64(b.getInt8Ty(), readableTable(b, table), 8));
  }

  // The element at the position copied into the result tensor: its rank
  // and static dims checked against the result's, its dims into the
  // result's dim slots (which size the result's allocation).
  void emitAt(llvm::IRBuilder<>& b, llvm::Function* f, const lower::ContainerStep& step, llvm::Value* table) {
    llvm::Type* i64 = b.getInt64Ty();
    llvm::Value* count = emitCount(b, table);
    llvm::Value* position = emitPosition(b, f, step, count);
    llvm::Value* element = b.CreateGEP(b.getInt8Ty(), elementsOf(b, table), b.CreateMul(position, b.getInt64(kElementBytes)));
    llvm::Value* data = b.CreateLoad(ptr_, element);
    llvm::Value* dims = b.CreateLoad(ptr_, b.CreateConstGEP1_64(b.getInt8Ty(), element, 8));
    llvm::Value* rank = b.CreateLoad(i64, b.CreateConstGEP1_64(b.getInt8Ty(), element, 16));
    const lower::ProgramBuffer& result = program_.buffers[step.result];
    const auto result_rank = static_cast<uint64_t>(result.dims.size());
    std::vector<std::pair<int, llvm::Value*>> report = {{step.position_slot, position}};
    emitCheck(b, f, b.CreateICmpEQ(rank, b.getInt64(static_cast<int64_t>(result_rank))), step.shape_check, report);
    llvm::Value* same = b.getTrue();
    llvm::Value* bytes = b.getInt64(ir::byteSize(result.dtype));
    for (uint64_t d = 0; d < result_rank; ++d) {
      llvm::Value* size = b.CreateLoad(i64, b.CreateConstGEP1_64(i64, dims, d));
      int slot = d < result.dim_slots.size() ? result.dim_slots[d] : -1;
      if (slot >= 0) b.CreateStore(size, b.CreateConstGEP1_64(i64, slotsOf(b, f), static_cast<uint64_t>(slot)));
      else same = b.CreateAnd(same, b.CreateICmpEQ(size, b.getInt64(result.dims[d])));
      bytes = b.CreateMul(bytes, size);
    }
    emitCheck(b, f, same, step.shape_check, report);
    b.CreateMemCpy(bufferAddress(b, f, step.result), llvm::MaybeAlign(1), data, llvm::MaybeAlign(1), bytes);
  }

  // A new table without the element at the position.
  void emitErase(llvm::IRBuilder<>& b, llvm::Function* f, const lower::ContainerStep& step, llvm::Value* table) {
    llvm::Value* count = emitCount(b, table);
    llvm::Value* position = emitPosition(b, f, step, count);
    llvm::Value* new_count = b.CreateSub(count, b.getInt64(1));
    llvm::Value* front = b.CreateMul(position, b.getInt64(kElementBytes));
    llvm::Value* block = emitScratch(b, f, b.CreateAdd(b.getInt64(kSequenceBytes), b.CreateMul(new_count, b.getInt64(kElementBytes))),
                                     step.origin);
    llvm::Value* elements = b.CreateConstGEP1_64(b.getInt8Ty(), block, kSequenceBytes);
    llvm::Value* old_elements = elementsOf(b, table);
    b.CreateMemCpy(elements, llvm::MaybeAlign(8), old_elements, llvm::MaybeAlign(8), front);
    b.CreateMemCpy(b.CreateGEP(b.getInt8Ty(), elements, front), llvm::MaybeAlign(8),
                   b.CreateGEP(b.getInt8Ty(), old_elements, b.CreateAdd(front, b.getInt64(kElementBytes))),
                   llvm::MaybeAlign(8), b.CreateMul(b.CreateSub(new_count, position), b.getInt64(kElementBytes)));
    b.CreateStore(new_count, block);
    b.CreateStore(elements, b.CreateConstGEP1_64(b.getInt8Ty(), block, 8));
    b.CreateStore(block, sequences_.at(step.result));
  }

  // A new table: the old elements with `tensor` at the position (checked
  // against the count), then the tensor's dims, in one block from `alloc`;
  // with `copy_data`, the tensor's data copied into memory of its own.
  void emitInsert(llvm::IRBuilder<>& b, llvm::Function* f, const lower::ContainerStep& step, llvm::Value* table) {
    llvm::Type* i64 = b.getInt64Ty();
    llvm::Value* count = emitCount(b, table);
    llvm::Value* position = emitPosition(b, f, step, count);
    const lower::ProgramBuffer& tensor = program_.buffers[step.tensor];
    const auto rank = static_cast<uint64_t>(tensor.dims.size());
    llvm::Value* new_count = b.CreateAdd(count, b.getInt64(1));
    llvm::Value* elements_bytes = b.CreateMul(new_count, b.getInt64(kElementBytes));
    llvm::Value* bytes = b.CreateAdd(elements_bytes, b.getInt64(kSequenceBytes + rank * 8));
    llvm::Value* block = emitScratch(b, f, bytes, step.origin);
    llvm::Value* elements = b.CreateConstGEP1_64(b.getInt8Ty(), block, kSequenceBytes);
    llvm::Value* dims = b.CreateGEP(b.getInt8Ty(), elements, elements_bytes);
    for (uint64_t d = 0; d < rank; ++d) {
      int slot = d < tensor.dim_slots.size() ? tensor.dim_slots[d] : -1;
      llvm::Value* value = b.getInt64(tensor.dims[d]);
      if (slot >= 0) value = b.CreateLoad(i64, b.CreateConstGEP1_64(i64, slotsOf(b, f), static_cast<uint64_t>(slot)));
      b.CreateStore(value, b.CreateConstGEP1_64(i64, dims, d));
    }
    llvm::Value* old_elements = elementsOf(b, table);
    llvm::Value* front = b.CreateMul(position, b.getInt64(kElementBytes));
    b.CreateMemCpy(elements, llvm::MaybeAlign(8), old_elements, llvm::MaybeAlign(8), front);
    llvm::Value* inserted = b.CreateGEP(b.getInt8Ty(), elements, front);
    llvm::Value* data = bufferAddress(b, f, step.tensor);
    if (step.copy_data) {
      llvm::Value* data_bytes = b.getInt64(ir::byteSize(tensor.dtype));
      for (uint64_t d = 0; d < rank; ++d) data_bytes = b.CreateMul(data_bytes, b.CreateLoad(i64, b.CreateConstGEP1_64(i64, dims, d)));
      llvm::Value* copy = emitScratch(b, f, b.CreateAdd(data_bytes, b.getInt64(1)), step.origin);  // never 0 bytes
      b.CreateMemCpy(copy, llvm::MaybeAlign(1), data, llvm::MaybeAlign(1), data_bytes);
      data = copy;
    }
    b.CreateStore(data, inserted);
    b.CreateStore(dims, b.CreateConstGEP1_64(b.getInt8Ty(), inserted, 8));
    b.CreateStore(b.getInt64(static_cast<int64_t>(rank)), b.CreateConstGEP1_64(b.getInt8Ty(), inserted, 16));
    b.CreateMemCpy(b.CreateConstGEP1_64(b.getInt8Ty(), inserted, kElementBytes), llvm::MaybeAlign(8),
                   b.CreateGEP(b.getInt8Ty(), old_elements, front), llvm::MaybeAlign(8),
                   b.CreateMul(b.CreateSub(count, position), b.getInt64(kElementBytes)));
    b.CreateStore(new_count, block);
    b.CreateStore(elements, b.CreateConstGEP1_64(b.getInt8Ty(), block, 8));
    b.CreateStore(block, sequences_.at(step.result));
  }

  // `bytes` of memory alive until the run ends (ctx->alloc for an
  // intermediate); the entry point returns -1 when it is refused.
  llvm::Value* emitScratch(llvm::IRBuilder<>& b, llvm::Function* f, llvm::Value* bytes, const std::string& name) {
    llvm::Value* ctx = f->getArg(0);
    llvm::Value* dims = b.CreateAlloca(b.getInt64Ty());
    b.CreateStore(bytes, dims);
    llvm::Value* alloc = b.CreateLoad(ptr_, b.CreateStructGEP(context_type_, ctx, ContextLayout::kAlloc));
    llvm::Value* allocator = b.CreateLoad(ptr_, b.CreateStructGEP(context_type_, ctx, ContextLayout::kAllocator));
    auto* type = llvm::FunctionType::get(ptr_, {ptr_, b.getInt32Ty(), ptr_, b.getInt32Ty(), b.getInt32Ty(), ptr_}, false);
    llvm::Value* p = b.CreateCall(type, alloc, {allocator, b.getInt32(-1), dims, b.getInt32(1), b.getInt32(1),
                                                b.CreateGlobalStringPtr(name, "sequence_name")});
    auto* refused = llvm::BasicBlock::Create(c_, "alloc_refused", f);
    auto* next = llvm::BasicBlock::Create(c_, "allocated", f);
    b.CreateCondBr(b.CreateIsNull(p), refused, next);
    b.SetInsertPoint(refused);
    b.CreateRet(b.getInt32(-1));
    b.SetInsertPoint(next);
    return p;
  }

  llvm::LLVMContext& c_;
  lower::Program program_;  // owned: emitWeights lets its weights go
  ContractionIsa isa_;
  SparseMode sparse_mode_;
  uint64_t blob_min_bytes_;
  std::unique_ptr<llvm::Module> module_;
  llvm::PointerType* ptr_;
  bool calls_string_functions_ = false;
  llvm::StructType* context_type_;
  WeightBlob weights_;
  std::vector<WeightRef> constants_;
  std::vector<std::vector<std::optional<uint64_t>>> panel_offsets_;  // per call, per stage: panels in the blob
  std::vector<std::vector<std::optional<ContractionPlan>>> plans_;  // per call, per stage
  std::vector<std::vector<std::optional<SparsePlan>>> sparse_plans_;  // per call, per stage
  std::set<int> packed_only_;
  int panel_count_ = 0;
  std::map<int, RunTimeBuffer> run_time_buffers_;
  std::map<int, llvm::Value*> sequences_;  // sequence buffer -> local holding its kiln_sequence*
  llvm::GlobalVariable* empty_table_ = nullptr;
  size_t next_step_ = 0;
  llvm::Value* kernel_done_ = nullptr;
  llvm::Value* profiler_ = nullptr;
  llvm::Value* profiling_ = nullptr;
};

}  // namespace

EmittedModule emitModule(llvm::LLVMContext& context, lower::Program program, artifact::ModelDesc desc,
                         WeightBlob weights, const ContractionIsa& isa, SparseMode sparse_mode,
                         uint64_t blob_min_bytes) {
  return ModuleEmitter(context, std::move(program), isa, sparse_mode, blob_min_bytes, std::move(weights))
      .run(std::move(desc));
}

}  // namespace kiln::codegen::cpu
