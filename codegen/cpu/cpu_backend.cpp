// The CPU backend: Program -> LLVM IR -> object -> linked, sealed artifact.
#include <fstream>

#include <llvm/Support/raw_ostream.h>

#include "codegen/backend.h"
#include "codegen/cpu/compile_object.h"
#include "codegen/cpu/emit_module.h"
#include "codegen/cpu/target.h"

namespace kiln::codegen {
namespace {

class CpuBackend final : public Backend {
 public:
  CpuBackend(cpu::CpuTarget target, int opt_level) : target_(std::move(target)), opt_level_(opt_level) {}

  std::string_view target() const override { return "cpu"; }

  std::string describeTarget() const override {
    std::string features;
    for (const std::string& f : target_.required) features += (features.empty() ? "" : ",") + f;
    return "cpu " + target_.cpu + " (" + features + ")";
  }

  Status emit(const lower::Program& program, artifact::ModelDesc desc, EmitKind kind, const std::string& path) override {
    desc.target = "cpu";
    desc.cpu_name = target_.cpu;
    desc.cpu_features = target_.required;
    desc.entry_symbol = cpu::kEntrySymbol;
    desc.kernel_count = program.calls.size();
    for (const lower::KernelCall& call : program.calls)
      desc.kernels.push_back({call.kernel.name, call.kernel.origin, static_cast<uint64_t>(kir::countFlops(call.kernel))});
    desc.workspace_bytes = static_cast<uint64_t>(program.workspace_bytes);
    llvm::LLVMContext context;
    std::unique_ptr<llvm::Module> module = cpu::emitModule(context, program, artifact::serialize(desc));
    KILN_RETURN_IF_ERROR(cpu::optimizeModule(*module, *target_.machine, opt_level_));
    if (kind == EmitKind::kLlvmIr) {
      std::error_code ec;
      llvm::raw_fd_ostream out(path, ec);
      if (ec) return ioError("cannot write '" + path + "': " + ec.message());
      module->print(out, nullptr);
      return Status::ok();
    }
    KILN_ASSIGN_OR_RETURN(std::vector<char> object, cpu::emitObject(*module, *target_.machine));
    if (kind == EmitKind::kObject) {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out.write(object.data(), static_cast<std::streamsize>(object.size()));
      return out ? Status::ok() : ioError("cannot write '" + path + "'");
    }
    KILN_RETURN_IF_ERROR(cpu::linkSharedObject(object, path));
    return cpu::sealArtifact(path);
  }

 private:
  cpu::CpuTarget target_;
  int opt_level_;
};

}  // namespace

Expected<std::unique_ptr<Backend>> createCpuBackend(const TargetOptions& options) {
  KILN_ASSIGN_OR_RETURN(cpu::CpuTarget target, cpu::resolveTarget(options));
  return std::unique_ptr<Backend>(std::make_unique<CpuBackend>(std::move(target), options.opt_level));
}

}  // namespace kiln::codegen
