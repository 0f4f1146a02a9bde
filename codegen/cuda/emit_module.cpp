#include "codegen/cuda/emit_module.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "codegen/cuda/contraction.h"
#include "codegen/cuda/emit_expr.h"
#include "codegen/cuda/schedule.h"
#include "compiler/kir/evaluator.h"
#include "compiler/support/half.h"

namespace kiln::codegen::cuda {
namespace {

using Kind = lower::ProgramBuffer::Kind;

Status checkStatic(const lower::KernelCall& call) {
  const kir::Kernel& k = call.kernel;
  std::string where = "kernel '" + k.name + "' (from " + k.origin + ")";
  if (kir::isDynamic(k))
    return unsupported(where + " has run-time shapes; --target cuda needs static shapes (pin them with --shape)");
  for (const kir::BufferParam& p : k.params)
    for (int64_t d : p.shape)
      if (d < 0) return unsupported(where + ": buffer '" + p.name + "' has a run-time dimension; --target cuda needs static shapes (pin them with --shape)");
  for (const kir::Stage& s : k.stages)
    for (const kir::IterVar& v : s.axes)
      if (v.extent < 0) return unsupported(where + ": a loop of run-time extent; --target cuda needs static shapes (pin them with --shape)");
  return Status::ok();
}

uint64_t alignUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

// How program buffers are used, gathered while emitting (program buffer
// indices).
struct Usage {
  std::set<uint32_t> operands;      // read in place as a GEMM's A or B
  std::set<uint32_t> gemm_written;  // written as a GEMM's D
  // Read in float32: as a GEMM's bias, in a store's index, or (once
  // `settleKernelReads` has run) by generated code other than a packing
  // from a buffer that gets no 16-bit copy.
  std::set<uint32_t> fp32_read;
  // Read by generated code other than a GEMM's packing (the first pass's
  // record; `settleKernelReads` sorts it into copy_readers and fp32_read).
  std::set<uint32_t> kernel_read;
  std::set<uint32_t> kernel_written;  // written by generated code
  // Written as D by a GEMM that could not store 16-bit elements: one that
  // adds a bias that is not a float32 constant (the bias has D's type:
  // constants get a copy).
  std::set<uint32_t> fp32_d;
  // (D, C) of each GEMM that accumulates C: cuBLASLt's C has D's type, so
  // both are 16-bit or both float32.
  std::vector<std::pair<uint32_t, uint32_t>> accumulated;
  std::map<uint32_t, std::set<uint32_t>> biases;  // D -> the constant biases its GEMMs add
  // Read by a GEMM's packing or as its C: such readers take a 16-bit copy
  // where the buffer has one.
  std::set<uint32_t> copy_readers;
};

// The 16-bit copies of GEMM operands in the fp16/bf16 precisions, decided
// from a first pass over the program (which GEMMs read what in place).
struct HalfCopies {
  std::set<uint32_t> weights;      // constants converted at compile time
  std::set<uint32_t> activations;  // intermediates whose every writer also stores a rounded copy
  std::set<uint32_t> dropped;      // converted constants nothing reads as float32: not stored at all
  // Intermediates that GEMMs write as D and only GEMMs read, in place: the
  // GEMMs write D (and add a bias converted like a weight) in 16 bits
  // straight into the copy, and the float32 buffer is never written.
  std::set<uint32_t> gemm_stores;
  // Activations (above) that nothing reads as float32: their writers store
  // only the copy.
  std::set<uint32_t> copy_only;
};

// Buffers that may get a 16-bit copy: those GEMMs read in place, their
// packings read, they accumulate as C, or they write as D.
std::set<uint32_t> copyCandidates(const Usage& usage) {
  std::set<uint32_t> out = usage.operands;
  out.insert(usage.copy_readers.begin(), usage.copy_readers.end());
  out.insert(usage.gemm_written.begin(), usage.gemm_written.end());
  return out;
}

// 16-bit storage of the activations around the GEMMs: a generated kernel
// reads an intermediate's 16-bit copy wherever it has one (computing in
// float32 from the widened value), so an intermediate that is a copy
// candidate for a GEMM's sake gains nothing from its float32 buffer when
// only generated kernels read it. Their reads count as copy readers; reads
// of anything else (inputs, weights, intermediates no GEMM touches) stay
// float32 reads. The LayerNorm after a projection then reads that
// projection's 16-bit D, and the attention scores reach Softmax in 16 bits,
// as PyTorch's fp16 model stores them.
void settleKernelReads(const lower::Program& program, Usage& usage) {
  const std::set<uint32_t> candidates = copyCandidates(usage);
  for (uint32_t b : usage.kernel_read) {
    if (b >= program.buffers.size()) continue;  // a GEMM's scratch matrix
    const lower::ProgramBuffer& buffer = program.buffers[b];
    const bool activation =
        buffer.kind == Kind::kIntermediate && buffer.dtype == ir::DType::kFloat32 && candidates.count(b) > 0;
    (activation ? usage.copy_readers : usage.fp32_read).insert(b);
  }
  usage.kernel_read.clear();
}

// Which intermediates GEMMs write straight into 16-bit copies: those that
// GEMMs write (with no bias or a constant one) and that nothing but GEMMs
// (as A, B or C) and GEMM packings reads. Where a GEMM accumulates C, its D
// and C must both be 16-bit or both float32 (a C that generated kernels
// write qualifies when they store a 16-bit copy of it): candidates that
// break that are dropped until none does (a ResNet stage's residual chain
// stays 16-bit up to a block whose output a pool reads in float32).
std::set<uint32_t> gemmStores(const lower::Program& program, const Usage& usage) {
  std::set<uint32_t> stores, kernel_copies;
  for (uint32_t b : copyCandidates(usage)) {
    const lower::ProgramBuffer& buffer = program.buffers[b];
    if (buffer.dtype != ir::DType::kFloat32 || buffer.kind != Kind::kIntermediate) continue;
    if (!usage.gemm_written.count(b))
      kernel_copies.insert(b);
    else if (!usage.fp32_read.count(b) && !usage.kernel_written.count(b) && !usage.fp32_d.count(b))
      stores.insert(b);
  }
  for (bool changed = true; changed;) {
    changed = false;
    for (auto [d, c] : usage.accumulated) {
      const bool d16 = stores.count(d) > 0, c16 = stores.count(c) > 0 || kernel_copies.count(c) > 0;
      if (d16 && !c16) changed |= stores.erase(d) > 0;
      if (!d16 && stores.count(c)) changed |= stores.erase(c) > 0;
    }
  }
  return stores;
}

class ModuleEmitter {
 public:
  ModuleEmitter(const lower::Program& program, artifact::CudaPrecision precision, const HalfCopies* half)
      : program_(program), precision_(precision), half_(half) {}

  Expected<CudaModule> run() {
    for (const lower::CallRegion& region : program_.regions)
      return unsupported(region.origin + ": control flow (If, Loop, Scan) is compiled for --target cpu only");
    for (const lower::KernelCall& call : program_.calls) KILN_RETURN_IF_ERROR(checkStatic(call));
    out_ << cudaPrelude();
    placeBuffers();
    module_.workspace_bytes = std::max(static_cast<uint64_t>(program_.workspace_bytes), scratch_at_);
    for (size_t c = 0; c < program_.calls.size(); ++c) KILN_RETURN_IF_ERROR(emitCall(c));
    module_.plan.weights_bytes = module_.weights.size();  // with the packings done at compile time
    module_.source = out_.str();
    return std::move(module_);
  }

  const Usage& usage() const { return usage_; }

 private:
  void placeBuffers() {
    for (size_t i = 0; i < program_.buffers.size(); ++i) {
      const lower::ProgramBuffer& b = program_.buffers[i];
      artifact::CudaBuffer cb;
      cb.bytes = static_cast<uint64_t>(b.byteSize());
      switch (b.kind) {
        case Kind::kInput: cb.kind = artifact::CudaBuffer::kInput; cb.io_index = static_cast<uint32_t>(b.io_index); break;
        case Kind::kOutput: cb.kind = artifact::CudaBuffer::kOutput; cb.io_index = static_cast<uint32_t>(b.io_index); break;
        case Kind::kIntermediate:
          cb.kind = artifact::CudaBuffer::kWorkspace;
          cb.offset = static_cast<uint64_t>(b.workspace_offset);
          break;
        case Kind::kConstant: {
          cb.kind = artifact::CudaBuffer::kConstant;
          if (half_ && half_->dropped.count(static_cast<uint32_t>(i))) {
            cb.bytes = 0;  // only its 16-bit copy is read
            break;
          }
          auto bytes = b.constant->bytes();
          cb.offset = appendWeights(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
          cb.bytes = bytes.size();
          break;
        }
      }
      module_.plan.buffers.push_back(cb);
    }
    // The 16-bit copies: weights converted now, activations in the workspace
    // past the program's arena (each its own region), GEMM scratch past them.
    uint64_t at = alignUp(static_cast<uint64_t>(program_.workspace_bytes), artifact::kCudaWeightAlignment);
    if (half_) {
      const ir::DType type = operandType(precision_);
      for (uint32_t i : half_->weights) {
        const lower::ProgramBuffer& b = program_.buffers[i];
        auto bytes = b.constant->bytes();
        std::vector<uint16_t> narrow(bytes.size() / 4);
        for (size_t e = 0; e < narrow.size(); ++e) {
          float f;
          std::memcpy(&f, reinterpret_cast<const uint8_t*>(bytes.data()) + 4 * e, 4);
          narrow[e] = type == ir::DType::kFloat16 ? floatToHalf(f) : floatToBfloat16(f);
        }
        artifact::CudaBuffer cb;
        cb.kind = artifact::CudaBuffer::kConstant;
        cb.bytes = narrow.size() * 2;
        cb.offset = appendWeights(reinterpret_cast<const uint8_t*>(narrow.data()), cb.bytes);
        copy_of_[i] = static_cast<uint32_t>(module_.plan.buffers.size());
        module_.plan.buffers.push_back(cb);
      }
      for (uint32_t i : half_->activations) {
        artifact::CudaBuffer cb;
        cb.kind = artifact::CudaBuffer::kWorkspace;
        cb.offset = at;
        cb.bytes = static_cast<uint64_t>(program_.buffers[i].elementCount()) * 2;
        at = alignUp(at + cb.bytes, artifact::kCudaWeightAlignment);
        copy_of_[i] = static_cast<uint32_t>(module_.plan.buffers.size());
        module_.plan.buffers.push_back(cb);
      }
    }
    scratch_at_ = at;
  }

  uint64_t appendWeights(const uint8_t* data, uint64_t bytes) {
    std::vector<uint8_t>& w = module_.weights;
    w.resize(alignUp(w.size(), artifact::kCudaWeightAlignment));
    uint64_t offset = w.size();
    w.insert(w.end(), data, data + bytes);
    return offset;
  }

  // Program buffers every parameter that `e` loads is bound to.
  void noteLoads(const kir::Expr& e, const std::vector<uint32_t>& args, std::set<uint32_t>& into) {
    if (e->kind == kir::ExprNode::Kind::kLoad && static_cast<size_t>(e->buffer) < args.size())
      into.insert(args[static_cast<size_t>(e->buffer)]);
    for (const kir::Expr& op : e->operands) noteLoads(op, args, into);
  }
  // ...and the buffer the stage writes, as written by generated code.
  void noteLoads(const kir::Stage& stage, const std::vector<uint32_t>& args, bool packing) {
    if (static_cast<size_t>(stage.buffer) < args.size()) usage_.kernel_written.insert(args[static_cast<size_t>(stage.buffer)]);
    if (stage.value.valid()) noteLoads(stage.value, args, packing ? usage_.copy_readers : usage_.kernel_read);
    for (const kir::Expr& i : stage.store_index) noteLoads(i, args, usage_.fp32_read);
  }

  // The parameter list of a __global__ function over `kernel`'s parameters
  // bound to plan buffers `args`.
  Expected<std::string> paramList(const kir::Kernel& kernel, const std::vector<uint32_t>& args) {
    std::string params;
    for (size_t i = 0; i < kernel.params.size(); ++i) {
      const kir::BufferParam& p = kernel.params[i];
      KILN_ASSIGN_OR_RETURN(std::string type, memoryType(p.dtype));
      // Read-only and bound to no buffer that this kernel writes: the
      // compiler may read it through the non-coherent cache.
      bool read_only = !p.written;
      for (size_t j = 0; j < kernel.params.size() && read_only; ++j)
        if (kernel.params[j].written && args[j] == args[i]) read_only = false;
      params += (i ? ", " : "") + (read_only ? "const " + type + "* __restrict__ p" : type + "* p") + std::to_string(i);
    }
    return params;
  }

  // One generated __global__ function computing `stage`, and its launch.
  // `packing`: a GEMM's packing stage, which rounds what it stores to the
  // operand type, so it may load the 16-bit copies of what it reads.
  Status emitLaunch(const kir::Kernel& kernel, const kir::Stage& stage, const std::string& function,
                    const std::vector<uint32_t>& args, size_t call_index, bool packing = false) {
    KILN_ASSIGN_OR_RETURN(std::string params, paramList(kernel, args));
    noteLoads(stage, args, packing);
    LaunchSchedule schedule = scheduleStage(kernel, stage, [&](int param) { return elementBytes(kernel, param); });
    KILN_RETURN_IF_ERROR(emitStage(kernel, stage, function, params, schedule, packing));
    if (stagePoints(stage) == 0) return Status::ok();  // nothing to compute: no launch
    artifact::CudaLaunch launch;
    launch.function = function;
    launch.kernel = static_cast<uint32_t>(call_index);
    launch.grid = schedule.grid;
    launch.block = schedule.block;
    launch.args = args;
    module_.plan.launches.push_back(std::move(launch));
    return Status::ok();
  }

  // What a store to parameter `param` of the current call writes: the
  // bytes of its element (0 when only its 16-bit copy is stored) and of its
  // copy's (0: none).
  std::pair<int, int> elementBytes(const kir::Kernel& kernel, int param) const {
    auto mirror = mirrors_.find(param);
    int copy = mirror == mirrors_.end() ? 0 : static_cast<int>(ir::byteSize(kernel.params[mirror->second].dtype));
    int own = copy_only_.count(param) ? copy : static_cast<int>(ir::byteSize(kernel.params[param].dtype));
    return {own, copy};
  }

  Status emitCall(size_t call_index) {
    const lower::KernelCall& call = program_.calls[call_index];
    // A parameter whose buffer has a 16-bit copy for GEMMs writes the copy
    // too: the kernel gets one more parameter per such buffer, which every
    // store to the original also stores to (rounded).
    kir::Kernel kernel = call.kernel;
    std::vector<uint32_t> args(call.args.begin(), call.args.end());
    mirrors_.clear();
    copy_only_.clear();
    read_copies_.clear();
    activation_reads_.clear();
    for (size_t i = 0; i < call.kernel.params.size(); ++i) {
      const kir::BufferParam& p = call.kernel.params[i];
      auto copy = copy_of_.find(args[i]);
      if (copy == copy_of_.end() || p.dtype != ir::DType::kFloat32) continue;
      // A parameter only read gets its copy for the packing stages to load.
      const bool mirrored = p.written && !half_->weights.count(args[i]);
      if (p.written && !mirrored) continue;
      kir::BufferParam c = p;
      c.name = p.name + "_half";
      c.dtype = operandType(precision_);
      const int copy_param = static_cast<int>(kernel.params.size());
      (mirrored ? mirrors_ : read_copies_)[static_cast<int>(i)] = copy_param;
      if (mirrored && half_->copy_only.count(args[i])) copy_only_.insert(static_cast<int>(i));
      if (half_->activations.count(args[i])) activation_reads_[static_cast<int>(i)] = copy_param;
      kernel.params.push_back(c);
      args.push_back(copy->second);
    }
    const size_t own_params = call.kernel.params.size();
    GemmBindings bindings;
    bindings.aliases = [&](int i, int j) { return args[static_cast<size_t>(i)] == args[static_cast<size_t>(j)]; };
    bindings.scalar = [&](int i) -> std::optional<double> {
      const lower::ProgramBuffer& b = program_.buffers[args[static_cast<size_t>(i)]];
      if (b.kind != Kind::kConstant || !b.constant || b.constant->dtype() != ir::DType::kFloat32 ||
          b.constant->elementCount() != 1)
        return std::nullopt;
      float v = 0;
      std::memcpy(&v, b.constant->bytes().data(), sizeof v);
      return static_cast<double>(v);
    };
    // The first pass (no copies decided yet) asks for every operand in place.
    bindings.half_copy = [&](int i) {
      return !half_ || (static_cast<size_t>(i) < own_params && copy_of_.count(args[static_cast<size_t>(i)]) > 0);
    };
    bindings.constant = [&](int i) {
      return static_cast<size_t>(i) < own_params && constantData(args[static_cast<size_t>(i)]);
    };
    for (size_t s = 0; s < kernel.stages.size(); ++s) {
      std::string function = kernel.name + "_s" + std::to_string(s);
      if (std::optional<RowGroup> rows = planRowGroup(kernel, s, bindings.aliases)) {
        Status emitted = emitRowGroup(kernel, *rows, function + "_rows", args, call_index);
        if (!emitted) return emitted.withContext("kernel '" + kernel.name + "' (from " + kernel.origin + ")");
        s += rows->count - 1;
        continue;
      }
      std::optional<GemmStage> gemm = planGemm(kernel, kernel.stages[s], precision_, bindings);
      Status emitted = gemm ? emitGemm(kernel, *gemm, function, args, call_index)
                            : emitLaunch(kernel, kernel.stages[s], function, args, call_index);
      if (!emitted) return emitted.withContext("kernel '" + kernel.name + "' (from " + kernel.origin + ")");
    }
    return Status::ok();
  }

  // Whether program buffer `b` (of the current call's own parameters) holds
  // compile-time data.
  bool constantData(uint32_t b) const {
    return b < program_.buffers.size() && program_.buffers[b].kind == Kind::kConstant && program_.buffers[b].constant &&
           program_.buffers[b].dtype != ir::DType::kString;
  }

  // A packing that reads only constants (a padded convolution weight), run
  // by the reference evaluator now: its matrix is stored with the weights.
  std::optional<std::vector<uint8_t>> foldPacking(const kir::Kernel& kernel, const kir::Stage& pack,
                                                  const std::vector<uint32_t>& args, size_t own) const {
    auto constant = [&](int i) { return static_cast<size_t>(i) < own && constantData(args[static_cast<size_t>(i)]); };
    if (!readsOnlyConstants(pack.value, constant)) return std::nullopt;
    const kir::BufferParam& out = kernel.params[static_cast<size_t>(pack.buffer)];
    std::vector<uint8_t> bytes(static_cast<size_t>(out.elementCount()) * ir::byteSize(out.dtype));
    kir::Kernel one = kernel;
    one.stages = {pack};
    std::vector<void*> buffers(kernel.params.size(), nullptr);
    for (size_t i = 0; i < own; ++i)
      if (constantData(args[i]))
        buffers[i] = const_cast<std::byte*>(program_.buffers[args[i]].constant->bytes().data());
    buffers[static_cast<size_t>(pack.buffer)] = bytes.data();
    kir::evaluate(one, buffers);
    return bytes;
  }

  // A contraction: packing kernels, the cuBLASLt GEMM, the epilogue kernel.
  // Scratch matrices live past the program's arena; every stage reuses the
  // same region (launches run in order on one stream). A packing of
  // constants is done now, its matrix stored with the weights.
  Status emitGemm(const kir::Kernel& kernel, const GemmStage& gemm, const std::string& function,
                  std::vector<uint32_t> args, size_t call_index) {
    kir::Kernel extended = kernel;
    extended.params.insert(extended.params.end(), gemm.scratch.begin(), gemm.scratch.end());
    uint64_t at = scratch_at_;
    const size_t own = args.size();
    // Per scratch matrix: its contents when its packing was done now.
    std::vector<std::optional<std::vector<uint8_t>>> folded(gemm.scratch.size());
    for (const kir::Stage& pack : gemm.packs)
      folded[static_cast<size_t>(pack.buffer) - own] = foldPacking(extended, pack, args, own);
    for (size_t i = 0; i < gemm.scratch.size(); ++i) {
      const kir::BufferParam& p = gemm.scratch[i];
      artifact::CudaBuffer b;
      b.bytes = static_cast<uint64_t>(p.elementCount()) * ir::byteSize(p.dtype);
      if (const auto& bytes = folded[i]) {
        b.kind = artifact::CudaBuffer::kConstant;
        b.offset = appendWeights(bytes->data(), bytes->size());
      } else {
        b.kind = artifact::CudaBuffer::kWorkspace;
        b.offset = at;
        at = alignUp(at + b.bytes, artifact::kCudaWeightAlignment);
      }
      args.push_back(static_cast<uint32_t>(module_.plan.buffers.size()));
      module_.plan.buffers.push_back(b);
    }
    module_.workspace_bytes = std::max(module_.workspace_bytes, at);
    for (size_t i = 0; i < gemm.packs.size(); ++i)
      if (!folded[static_cast<size_t>(gemm.packs[i].buffer) - own])
        KILN_RETURN_IF_ERROR(
            emitLaunch(extended, gemm.packs[i], function + "_pack" + std::to_string(i), args, call_index, true));
    artifact::CudaLaunch launch;
    launch.function = function + "_gemm";
    launch.kernel = static_cast<uint32_t>(call_index);
    for (int p : {gemm.a, gemm.b, gemm.c, gemm.bias, gemm.cin})
      if (p >= 0) launch.args.push_back(args[static_cast<size_t>(p)]);
    // 16-bit operands read in place are read from their copies.
    for (size_t slot = 0; slot < 2; ++slot) {
      int p = slot == 0 ? gemm.a : gemm.b;
      artifact::GemmOperand type = slot == 0 ? gemm.gemm.type_a : gemm.gemm.type_b;
      if (static_cast<size_t>(p) >= own) continue;  // a scratch matrix
      uint32_t buffer = args[static_cast<size_t>(p)];
      usage_.operands.insert(buffer);
      if (type != artifact::GemmOperand::kFloat32 && half_) launch.args[slot] = copy_of_.at(buffer);
    }
    if (gemm.bias >= 0) usage_.fp32_read.insert(args[static_cast<size_t>(gemm.bias)]);
    launch.kind = artifact::CudaLaunch::kGemm;
    launch.gemm = gemm.gemm;
    if (static_cast<size_t>(gemm.c) < own) noteGemmOutput(gemm, args, own, launch);
    module_.plan.launches.push_back(std::move(launch));
    if (gemm.epilogue) KILN_RETURN_IF_ERROR(emitLaunch(extended, *gemm.epilogue, function + "_epilogue", args, call_index));
    return Status::ok();
  }

  // D written in place of a stage's output: noted for the first pass; in the
  // second, stored in 16 bits into its copy when HalfCopies says so.
  void noteGemmOutput(const GemmStage& gemm, const std::vector<uint32_t>& args, size_t own, artifact::CudaLaunch& launch) {
    const uint32_t d = args[static_cast<size_t>(gemm.c)];
    usage_.gemm_written.insert(d);
    if (gemm.cin >= 0) {
      usage_.accumulated.emplace_back(d, args[static_cast<size_t>(gemm.cin)]);
      usage_.copy_readers.insert(args[static_cast<size_t>(gemm.cin)]);
    }
    if (gemm.bias >= 0) {
      const uint32_t bias = args[static_cast<size_t>(gemm.bias)];
      const bool constant = static_cast<size_t>(gemm.bias) < own && program_.buffers[bias].kind == Kind::kConstant &&
                            program_.buffers[bias].constant && program_.buffers[bias].dtype == ir::DType::kFloat32;
      if (constant) usage_.biases[d].insert(bias);
      else usage_.fp32_d.insert(d);
    }
    if (!half_ || !half_->gemm_stores.count(d)) return;
    launch.args[2] = copy_of_.at(d);
    if (gemm.bias >= 0) launch.args[3] = copy_of_.at(args[static_cast<size_t>(gemm.bias)]);
    if (gemm.cin >= 0) launch.args.back() = copy_of_.at(args[static_cast<size_t>(gemm.cin)]);  // C in D's type
    launch.gemm.type_d = launch.gemm.type_a;
  }

  // A row group (schedule.h): a warp (or, for few rows, a block) per row
  // runs each stage of the group for its row in turn. A reduction stage's
  // threads split the reduction, which leaves the row's value in every
  // thread: the next stages read it there (planRowGroup checked they read
  // only their own row's), and thread 0 stores it for readers outside the
  // group. The last stage's threads stride over the
  // row's inner elements.
  Status emitRowGroup(const kir::Kernel& kernel, const RowGroup& group, const std::string& function,
                      const std::vector<uint32_t>& args, size_t call_index) {
    KILN_ASSIGN_OR_RETURN(std::string params, paramList(kernel, args));
    const bool block = group.block_per_row;
    const int64_t threads = block ? group.block : 32;
    const std::string sync = block ? "__syncthreads();" : "__syncwarp();";
    out_ << "\nextern \"C\" __global__ void __launch_bounds__(" << group.block << ") " << function << "(" << params
         << ") {\n";
    if (block) {
      out_ << "  const int lane = threadIdx.x;\n";
      out_ << "  for (long long row = blockIdx.x; row < " << group.rows << "LL; row += gridDim.x) {\n";
    } else {
      out_ << "  const int lane = threadIdx.x & 31;\n";
      out_ << "  for (long long row = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5; row < " << group.rows
           << "LL; row += ((long long)gridDim.x * blockDim.x) >> 5) {\n";
    }
    ExprEmitter emitter(kernel, out_, 4);
    bindCopies(emitter, false);
    for (size_t i = 0; i < group.count; ++i) {
      const kir::Stage& stage = kernel.stages[group.first + i];
      noteLoads(stage, args, false);
      auto row_axes = static_cast<size_t>(group.row_axes[i]);
      for (size_t d = 0; d < row_axes; ++d) emitter.line("long long a" + std::to_string(stage.axes[d].id) + ";");
      splitInto(emitter, stage.axes, 0, row_axes, "row");
      if (i + 1 < group.count) {
        LaunchSchedule schedule = scheduleStage(kernel, stage, [&](int param) { return elementBytes(kernel, param); });
        emitter.warpReduce(*schedule.warp_reduce, "lane", threads);
        std::string value = emitter.emit(stage.value);
        emitter.line("if (lane == 0) {");
        emitter.store(stage.buffer, stage.store_index, value);
        emitter.line("}");
        emitter.line(sync);
        // The later stages read this row's value from the register.
        emitter.bindValue(stage.buffer, value);
        continue;
      }
      int64_t inner = 1;
      for (size_t d = row_axes; d < stage.axes.size(); ++d) inner *= stage.axes[d].extent;
      emitter.line("#pragma unroll 4");
      emitter.line("for (long long inner = lane; inner < " + std::to_string(inner) + "LL; inner += " +
                   std::to_string(threads) + ") {");
      for (size_t d = row_axes; d < stage.axes.size(); ++d)
        emitter.line("  long long a" + std::to_string(stage.axes[d].id) + ";");
      splitInto(emitter, stage.axes, row_axes, stage.axes.size(), "inner");
      emitter.store(stage.buffer, stage.store_index, emitter.emit(stage.value));
      emitter.line("}");
      if (!block) emitter.line("__syncwarp();");  // a block's next row reads only its own row's values
    }
    out_ << "  }\n}\n";
    KILN_RETURN_IF_ERROR(emitter.status());
    artifact::CudaLaunch launch;
    launch.function = function;
    launch.kernel = static_cast<uint32_t>(call_index);
    launch.grid = group.grid;
    launch.block = group.block;
    launch.args = args;
    module_.plan.launches.push_back(std::move(launch));
    return Status::ok();
  }

  // The current call's 16-bit copies, for an emitter of one of its stages:
  // every store also writes the copy (or only the copy), every stage loads
  // the copies of activations, and a packing stage also those of weights.
  void bindCopies(ExprEmitter& emitter, bool packing) const {
    for (auto [buffer, copy] : mirrors_) emitter.mirror(buffer, copy, copy_only_.count(buffer) > 0);
    for (auto [buffer, copy] : activation_reads_) emitter.readCopy(buffer, copy);
    if (packing)
      for (auto [buffer, copy] : read_copies_) emitter.readCopy(buffer, copy);
  }

  // Assigns the already-declared a<id> of axes [begin, end) from the flat
  // index `flat` (row-major over them).
  static void splitInto(ExprEmitter& emitter, const std::vector<kir::IterVar>& axes, size_t begin, size_t end,
                        const std::string& flat) {
    if (begin == end) return;
    std::string rest = "rest_" + flat + std::to_string(axes[begin].id);
    emitter.line("{ long long " + rest + " = " + flat + ";");
    for (size_t d = end; d-- > begin;) {
      std::string name = "a" + std::to_string(axes[d].id);
      // The outermost axis is what is left (the flat index is in range).
      if (d == begin)
        emitter.line("  " + name + " = " + rest + ";");
      else
        emitter.line("  " + name + " = " + rest + " % " + std::to_string(axes[d].extent) + "LL; " + rest +
                     " /= " + std::to_string(axes[d].extent) + "LL;");
      emitter.bind(axes[d].id, name);
    }
    emitter.line("}");
  }

  // The stage's threads: a grid-stride loop over the flat index of its
  // parallel axes, split back into axis values innermost first; serial axes
  // become loops inside the thread.
  Status emitStage(const kir::Kernel& kernel, const kir::Stage& stage, const std::string& function,
                   const std::string& params, const LaunchSchedule& schedule, bool packing) {
    out_ << "\nextern \"C\" __global__ void __launch_bounds__(" << std::max<uint32_t>(schedule.block, 1) << ") "
         << function << "(" << params << ") {\n";
    ExprEmitter emitter(kernel, out_, 2);
    bindCopies(emitter, packing);
    // Unsigned: splitting it into axes by constant extents is then shifts
    // and multiplications, without the sign corrections.
    std::string index = schedule.index32 ? "unsigned" : "long long";
    // A warp per point: the flat index counts warps, and the whole warp
    // iterates together (the shuffles need every lane).
    const char* per_point = schedule.warp_reduce ? " >> 5" : "";
    if (schedule.warp_reduce) out_ << "  const int lane = threadIdx.x & 31;\n";
    if (schedule.parallel_axes > 0) {
      out_ << "  for (" << index << " flat = ((" << index << ")blockIdx.x * blockDim.x + threadIdx.x)" << per_point
           << "; flat < " << schedule.threads / (schedule.warp_reduce ? 32 : 1) << (schedule.index32 ? "" : "LL")
           << "; flat += ((" << index << ")gridDim.x * blockDim.x)" << per_point << ") {\n";
      out_ << "    " << index << " rest = flat;\n";
      for (int d = schedule.parallel_axes - 1; d >= 0; --d) {
        const kir::IterVar& axis = stage.axes[static_cast<size_t>(d)];
        std::string name = "a" + std::to_string(axis.id);
        // The innermost axis of a vector schedule: the first of the thread's points.
        const bool first_of_vector = schedule.vector > 1 && static_cast<size_t>(d) + 1 == stage.axes.size();
        const int64_t extent = first_of_vector ? axis.extent / schedule.vector : axis.extent;
        if (first_of_vector) name += "v";
        std::string value = d == 0 ? "rest" : "rest % " + std::to_string(extent);
        if (first_of_vector) value = "(" + value + ") * " + std::to_string(schedule.vector);
        out_ << "    const long long " << name << " = " << value << ";";
        if (d > 0) out_ << " rest /= " << extent << ";";
        out_ << "\n";
        if (!first_of_vector) emitter.bind(axis.id, name);
      }
    } else {
      out_ << "  if (blockIdx.x == 0 && threadIdx.x == 0) {\n";
    }
    std::function<void(size_t)> nest = [&](size_t d) {
      if (d == stage.axes.size() && schedule.warp_reduce) {
        emitter.warpReduce(*schedule.warp_reduce, "lane");
        std::string value = emitter.emit(stage.value);
        emitter.line("if (lane == 0) {");
        emitter.store(stage.buffer, stage.store_index, value);
        emitter.line("}");
        return;
      }
      if (d == stage.axes.size() && schedule.vector > 1) {
        const kir::IterVar& inner = stage.axes.back();
        emitter.vectorStore(stage.buffer, stage.store_index, inner.id, "a" + std::to_string(inner.id) + "v",
                            schedule.vector, stage.value);
        return;
      }
      if (d == stage.axes.size()) {
        emitter.store(stage.buffer, stage.store_index, emitter.emit(stage.value));
        return;
      }
      emitter.loop(stage.axes[d].id, stage.axes[d].extent, [&] { nest(d + 1); });
    };
    nest(static_cast<size_t>(schedule.parallel_axes));
    out_ << "  }\n}\n";
    return emitter.status();
  }

  const lower::Program& program_;
  artifact::CudaPrecision precision_;
  const HalfCopies* half_;  // null: float32 operands, or the first pass of a 16-bit precision
  std::map<uint32_t, uint32_t> copy_of_;  // program buffer -> plan buffer of its 16-bit copy
  std::map<int, int> mirrors_;            // the current call's parameter -> its copy's parameter
  std::set<int> copy_only_;               // the current call's parameters whose copy alone is stored
  std::map<int, int> read_copies_;        // the current call's read-only parameter -> its copy's parameter
  // The current call's activation parameter -> its copy's parameter, which every stage reads.
  std::map<int, int> activation_reads_;
  Usage usage_;
  uint64_t scratch_at_ = 0;  // where GEMM scratch matrices start in the workspace
  std::ostringstream out_;
  CudaModule module_;
};

}  // namespace

Expected<CudaModule> emitModule(const lower::Program& program, artifact::CudaPrecision precision) {
  if (operandType(precision) == ir::DType::kFloat32) return ModuleEmitter(program, precision, nullptr).run();
  // 16-bit GEMM operands: a first pass finds what the GEMMs read in place,
  // what their packings read and what they accumulate as C; weights read in
  // place get a converted copy, intermediates that only generated kernels
  // write get a rounded copy stored beside them, those GEMMs write get one
  // written by the GEMMs (gemmStores), and the rest is packed into 16-bit
  // scratch matrices by the second pass.
  ModuleEmitter probe(program, precision, nullptr);
  KILN_RETURN_IF_ERROR(probe.run().status());
  Usage usage = probe.usage();
  settleKernelReads(program, usage);
  HalfCopies half;
  const std::set<uint32_t> stores = gemmStores(program, usage);
  std::set<uint32_t> fp32_c;  // accumulated by a GEMM with a float32 D: read in float32
  for (auto [d, c] : usage.accumulated)
    if (!stores.count(d)) fp32_c.insert(c);
  for (uint32_t b : copyCandidates(usage)) {
    const lower::ProgramBuffer& buffer = program.buffers[b];
    if (buffer.dtype != ir::DType::kFloat32) continue;
    if (buffer.kind == Kind::kConstant && buffer.constant && usage.operands.count(b)) {
      half.weights.insert(b);
      if (!usage.fp32_read.count(b)) half.dropped.insert(b);
    } else if (buffer.kind == Kind::kIntermediate && !usage.gemm_written.count(b)) {
      half.activations.insert(b);
      if (!usage.fp32_read.count(b) && !fp32_c.count(b)) half.copy_only.insert(b);
    } else if (stores.count(b)) {
      half.activations.insert(b);
      half.gemm_stores.insert(b);
      if (auto biases = usage.biases.find(b); biases != usage.biases.end())
        half.weights.insert(biases->second.begin(), biases->second.end());
    }
  }
  return ModuleEmitter(program, precision, &half).run();
}

}  // namespace kiln::codegen::cuda
