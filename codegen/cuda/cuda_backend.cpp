// The CUDA backend: Program -> CUDA C -> NVRTC (cubin + PTX) -> the artifact
// container with the launch plan and the weights.
#include <fstream>

#include "codegen/backend.h"
#include "codegen/cuda/compile_nvrtc.h"
#include "codegen/cuda/emit_module.h"
#include "codegen/cuda/package_artifact.h"
#include "codegen/cuda/target.h"

namespace kiln::codegen {
namespace {

Status writeFile(const std::string& path, const void* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  return out ? Status::ok() : ioError("cannot write '" + path + "'");
}

Status checkStaticSignature(const artifact::ModelDesc& desc) {
  for (const auto* list : {&desc.inputs, &desc.outputs})
    for (const artifact::TensorDesc& t : *list)
      for (size_t d = 0; d < t.dims.size(); ++d)
        if (t.dims[d] < 0)
          return unsupported(std::string(list == &desc.inputs ? "input" : "output") + " '" + t.name + "' has run-time dimension '" +
                             t.dim_names[d] + "'; --target cuda needs static shapes (pin it with --shape " + t.name + "=...)");
  return Status::ok();
}

// String tensors live in host memory as pointers and go through the run's
// string functions, which only the CPU runtime provides.
Status checkNoStrings(const lower::Program& program) {
  for (const lower::ProgramBuffer& b : program.buffers)
    if (b.dtype == ir::DType::kString)
      return unsupported("'" + b.name + "' is a string tensor; --target cuda computes numbers only (compile models "
                         "with strings for --target cpu)");
  return Status::ok();
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(cuda::CudaTarget target) : target_(std::move(target)) {}

  std::string_view target() const override { return "cuda"; }
  std::string describeTarget() const override { return "cuda " + target_.arch + " " + target_.precision_name; }

  Status emit(lower::Program program, artifact::ModelDesc desc, EmitKind kind, const std::string& path) override {
    KILN_RETURN_IF_ERROR(checkStaticSignature(desc));
    KILN_RETURN_IF_ERROR(checkNoStrings(program));
    desc.target = "cuda";
    desc.cuda_arch = target_.arch;
    desc.entry_symbol.clear();  // no host code: the runtime launches from the plan
    desc.kernel_count = program.calls.size();
    for (const lower::KernelCall& call : program.calls)
      desc.kernels.push_back({call.kernel.name, call.kernel.origin, static_cast<uint64_t>(kir::countFlops(call.kernel))});
    KILN_ASSIGN_OR_RETURN(cuda::CudaModule module, cuda::emitModule(program, target_.precision));
    desc.workspace_bytes = module.workspace_bytes;
    // --emit llvm|obj stop before the container: CUDA C and PTX are their
    // counterparts here.
    if (kind == EmitKind::kLlvmIr) return writeFile(path, module.source.data(), module.source.size());
    KILN_ASSIGN_OR_RETURN(cuda::CompiledKernels kernels, cuda::compileWithNvrtc(module.source, target_));
    if (kind == EmitKind::kObject) return writeFile(path, kernels.cubin.data(), kernels.cubin.size());
    return cuda::packageArtifact(desc, module, kernels, path);
  }

 private:
  cuda::CudaTarget target_;
};

}  // namespace

Expected<std::unique_ptr<Backend>> createCudaBackend(const TargetOptions& options) {
  KILN_ASSIGN_OR_RETURN(cuda::CudaTarget target, cuda::resolveTarget(options));
  return std::unique_ptr<Backend>(std::make_unique<CudaBackend>(std::move(target)));
}

}  // namespace kiln::codegen
