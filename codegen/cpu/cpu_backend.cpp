// The CPU backend: Program -> LLVM IR -> object -> linked, sealed artifact.
#include <llvm/Support/raw_ostream.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "codegen/backend.h"
#include "codegen/cpu/compile_object.h"
#include "codegen/cpu/emit_module.h"
#include "codegen/cpu/target.h"

namespace kiln::codegen {
namespace {

class CpuBackend final : public Backend {
 public:
  CpuBackend(cpu::CpuTarget target, int opt_level, bool bf16, cpu::SparseMode sparse)
      : target_(std::move(target)), opt_level_(opt_level), bf16_(bf16), sparse_(sparse) {}

  std::string_view target() const override { return "cpu"; }

  std::string describeTarget() const override {
    std::string features;
    for (const std::string& f : target_.required) features += (features.empty() ? "" : ",") + f;
    return "cpu " + target_.cpu + " (" + features + ")";
  }

  Status emit(lower::Program program, artifact::ModelDesc desc, EmitKind kind, const std::string& path) override {
    desc.target = "cpu";
    desc.cpu_name = target_.cpu;
    desc.cpu_features = target_.required;
    desc.entry_symbol = cpu::kEntrySymbol;
    desc.kernel_count = program.calls.size();
    for (const lower::KernelCall& call : program.calls)
      desc.kernels.push_back({call.kernel.name, call.kernel.origin, static_cast<uint64_t>(kir::countFlops(call.kernel))});
    desc.workspace_bytes = static_cast<uint64_t>(program.workspace_bytes);
    llvm::LLVMContext context;
    const uint64_t blob_min_bytes = kind == EmitKind::kArtifact ? cpu::kBlobMinBytes : UINT64_MAX;
    // The blob waits beside the output, on the disk that will hold the artifact.
    std::string folder = std::filesystem::path(path).parent_path().string();
    cpu::EmittedModule emitted =
        cpu::emitModule(context, std::move(program), std::move(desc), cpu::WeightBlob(folder.empty() ? "." : folder),
                        contractionIsa(), sparse_, blob_min_bytes);
    KILN_RETURN_IF_ERROR(emitted.weights.status());
    llvm::Module& module = *emitted.module;
    KILN_RETURN_IF_ERROR(cpu::optimizeModule(module, *target_.machine, opt_level_));
    if (kind == EmitKind::kLlvmIr) {
      std::error_code ec;
      llvm::raw_fd_ostream out(path, ec);
      if (ec) return ioError("cannot write '" + path + "': " + ec.message());
      module.print(out, nullptr);
      return Status::ok();
    }
    KILN_ASSIGN_OR_RETURN(std::vector<char> object, cpu::emitObject(module, *target_.machine));
    if (kind == EmitKind::kObject) {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out.write(object.data(), static_cast<std::streamsize>(object.size()));
      return out ? Status::ok() : ioError("cannot write '" + path + "'");
    }
    emitted.module.reset();  // the code is in `object` now; free LLVM's copy before linking
    KILN_RETURN_IF_ERROR(cpu::linkSharedObject(object, path));
    object = {};
    return cpu::sealArtifact(path, &emitted.weights);
  }

 private:
  // Dot-product instructions the contraction microkernels may use: those the
  // target has (an artifact records the target's features, so a CPU without
  // them refuses it).
  cpu::ContractionIsa contractionIsa() const {
    auto has = [&](std::string_view f) {
      return std::find(target_.required.begin(), target_.required.end(), f) != target_.required.end();
    };
    cpu::ContractionIsa isa;
    isa.int8_dot = has("avx512vnni") && has("avx512bw");
    isa.amx_int8 = isa.int8_dot && has("amx-tile") && has("amx-int8");
    isa.bf16_dot = bf16_;
    isa.amx_bf16 = bf16_ && has("amx-tile") && has("amx-bf16");
    return isa;
  }

  cpu::CpuTarget target_;
  int opt_level_;
  bool bf16_;  // --precision bf16
  cpu::SparseMode sparse_;  // --sparse-kernels
};

}  // namespace

Expected<std::unique_ptr<Backend>> createCpuBackend(const TargetOptions& options) {
  if (!options.precision.empty() && options.precision != "fp32" && options.precision != "bf16")
    return invalidInput("--precision '" + options.precision + "' is not one of fp32, bf16");
  KILN_ASSIGN_OR_RETURN(cpu::CpuTarget target, cpu::resolveTarget(options));
  bool bf16 = options.precision == "bf16";
  if (bf16 && std::find(target.required.begin(), target.required.end(), "avx512bf16") == target.required.end())
    return invalidInput("--precision bf16 needs the avx512bf16 CPU feature, which the target CPU '" + target.cpu +
                        "' lacks; target a CPU that has it (--cpu, --features=+avx512bf16) or use --precision fp32");
  std::optional<cpu::SparseMode> sparse = cpu::parseSparseMode(options.sparse_kernels);
  if (!sparse)
    return invalidInput("--sparse-kernels '" + options.sparse_kernels + "' is not one of auto, off, always");
  return std::unique_ptr<Backend>(
      std::make_unique<CpuBackend>(std::move(target), options.opt_level, bf16, *sparse));
}

}  // namespace kiln::codegen
