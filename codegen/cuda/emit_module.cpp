#include "codegen/cuda/emit_module.h"

#include <algorithm>
#include <functional>
#include <sstream>

#include "codegen/cuda/emit_expr.h"
#include "codegen/cuda/schedule.h"

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

class ModuleEmitter {
 public:
  explicit ModuleEmitter(const lower::Program& program) : program_(program) {}

  Expected<CudaModule> run() {
    for (const lower::KernelCall& call : program_.calls) KILN_RETURN_IF_ERROR(checkStatic(call));
    out_ << cudaPrelude();
    placeBuffers();
    for (size_t c = 0; c < program_.calls.size(); ++c) KILN_RETURN_IF_ERROR(emitCall(c));
    module_.source = out_.str();
    return std::move(module_);
  }

 private:
  void placeBuffers() {
    for (const lower::ProgramBuffer& b : program_.buffers) {
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
          auto bytes = b.constant->bytes();
          std::vector<uint8_t>& w = module_.weights;
          w.resize((w.size() + artifact::kCudaWeightAlignment - 1) / artifact::kCudaWeightAlignment *
                   artifact::kCudaWeightAlignment);
          cb.offset = w.size();
          cb.bytes = bytes.size();
          auto data = reinterpret_cast<const uint8_t*>(bytes.data());
          w.insert(w.end(), data, data + bytes.size());
          break;
        }
      }
      module_.plan.buffers.push_back(cb);
    }
    module_.plan.weights_bytes = module_.weights.size();
  }

  Status emitCall(size_t call_index) {
    const lower::KernelCall& call = program_.calls[call_index];
    const kir::Kernel& kernel = call.kernel;
    std::string params;
    for (size_t i = 0; i < kernel.params.size(); ++i) {
      const kir::BufferParam& p = kernel.params[i];
      KILN_ASSIGN_OR_RETURN(std::string type, memoryType(p.dtype));
      // Read-only and bound to no buffer that this kernel writes: the
      // compiler may read it through the non-coherent cache.
      bool read_only = !p.written;
      for (size_t j = 0; j < kernel.params.size() && read_only; ++j)
        if (kernel.params[j].written && call.args[j] == call.args[i]) read_only = false;
      params += (i ? ", " : "") + (read_only ? "const " + type + "* __restrict__ p" : type + "* p") + std::to_string(i);
    }
    for (size_t s = 0; s < kernel.stages.size(); ++s) {
      std::string function = kernel.name + "_s" + std::to_string(s);
      LaunchSchedule schedule = scheduleStage(kernel.stages[s]);
      Status emitted = emitStage(kernel, s, function, params, schedule);
      if (!emitted) return emitted.withContext("kernel '" + kernel.name + "' (from " + kernel.origin + ")");
      if (stagePoints(kernel.stages[s]) == 0) continue;  // nothing to compute: no launch
      artifact::CudaLaunch launch{function, static_cast<uint32_t>(call_index), schedule.grid, schedule.block, {}};
      for (int arg : call.args) launch.args.push_back(static_cast<uint32_t>(arg));
      module_.plan.launches.push_back(std::move(launch));
    }
    return Status::ok();
  }

  // The stage's threads: a grid-stride loop over the flat index of its
  // parallel axes, split back into axis values innermost first; serial axes
  // become loops inside the thread.
  Status emitStage(const kir::Kernel& kernel, size_t s, const std::string& function, const std::string& params,
                   const LaunchSchedule& schedule) {
    const kir::Stage& stage = kernel.stages[s];
    out_ << "\nextern \"C\" __global__ void __launch_bounds__(" << std::max<uint32_t>(schedule.block, 1) << ") "
         << function << "(" << params << ") {\n";
    ExprEmitter emitter(kernel, out_, 2);
    std::string index = schedule.index32 ? "int" : "long long";
    if (schedule.parallel_axes > 0) {
      out_ << "  for (" << index << " flat = (" << index << ")blockIdx.x * blockDim.x + threadIdx.x; flat < "
           << schedule.threads << (schedule.index32 ? "" : "LL") << "; flat += (" << index
           << ")gridDim.x * blockDim.x) {\n";
      out_ << "    " << index << " rest = flat;\n";
      for (int d = schedule.parallel_axes - 1; d >= 0; --d) {
        const kir::IterVar& axis = stage.axes[static_cast<size_t>(d)];
        std::string name = "a" + std::to_string(axis.id);
        if (d == 0) {
          out_ << "    const long long " << name << " = rest;\n";
        } else {
          out_ << "    const long long " << name << " = rest % " << axis.extent << "; rest /= " << axis.extent << ";\n";
        }
        emitter.bind(axis.id, name);
      }
    } else {
      out_ << "  if (blockIdx.x == 0 && threadIdx.x == 0) {\n";
    }
    std::function<void(size_t)> nest = [&](size_t d) {
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
  std::ostringstream out_;
  CudaModule module_;
};

}  // namespace

Expected<CudaModule> emitModule(const lower::Program& program) { return ModuleEmitter(program).run(); }

}  // namespace kiln::codegen::cuda
