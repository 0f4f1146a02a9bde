#include "codegen/cpu/target.h"

#include <llvm/ADT/StringExtras.h>
#include <llvm/ADT/StringMap.h>
#include <llvm/MC/MCSubtargetInfo.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/TargetParser/Host.h>
#include <llvm/TargetParser/Triple.h>

#include <mutex>

#include "cpu_features.h"

namespace kiln::codegen::cpu {
namespace {

void initializeLlvm() {
  static std::once_flag once;
  std::call_once(once, [] {
    LLVMInitializeX86TargetInfo();
    LLVMInitializeX86Target();
    LLVMInitializeX86TargetMC();
    LLVMInitializeX86AsmPrinter();
  });
}

std::string hostFeatureString() {
  std::string out;
  for (const auto& [name, enabled] : llvm::sys::getHostCPUFeatures()) {
    if (!out.empty()) out += ',';
    out += (enabled ? "+" : "-") + name.str();
  }
  return out;
}

// LLVM's host name for the machine; hosts that show AMX are at least
// Sapphire Rapids whatever name the hypervisor makes LLVM guess.
std::string hostCpuName() {
  std::string name = llvm::sys::getHostCPUName().str();
  if (kiln::cpu::hostHas("amx-tile") && kiln::cpu::hostHas("avx512fp16") &&
      (name == "rocketlake" || name == "icelake-server" || name == "skylake-avx512" || name == "generic"))
    return "sapphirerapids";
  return name;
}

}  // namespace

Expected<CpuTarget> resolveTarget(const TargetOptions& options) {
  initializeLlvm();
  CpuTarget target;
  target.triple = "x86_64-pc-linux-gnu";
  std::string error;
  const llvm::Target* llvm_target = llvm::TargetRegistry::lookupTarget(target.triple, error);
  if (!llvm_target) return internalError("LLVM has no x86-64 target: " + error);

  bool host = options.cpu.empty() || options.cpu == "native" || options.cpu == "host";
  target.cpu = host ? hostCpuName() : options.cpu;
  target.features = host ? hostFeatureString() : std::string();
  if (!options.features.empty()) target.features += (target.features.empty() ? "" : ",") + options.features;

  // Checked before LLVM sees them: it would warn on stderr and carry on.
  std::unique_ptr<llvm::MCSubtargetInfo> probe(llvm_target->createMCSubtargetInfo(target.triple, "", ""));
  if (!probe->isCPUStringValid(target.cpu))
    return invalidInput("--cpu '" + target.cpu + "' is not a CPU LLVM knows (try 'sapphirerapids', 'skylake-avx512', 'x86-64-v3')");
  for (llvm::StringRef token : llvm::split(options.features, ',')) {
    llvm::StringRef name = token.trim().ltrim("+-");
    if (name.empty()) continue;
    bool known = false;
    for (const llvm::SubtargetFeatureKV& kv : probe->getAllProcessorFeatures()) known |= name == kv.Key;
    if (!known) return invalidInput("--features: '" + name.str() + "' is not an x86 feature LLVM knows");
  }

  llvm::TargetOptions target_options;
  auto level = options.opt_level >= 3 ? llvm::CodeGenOptLevel::Aggressive
               : options.opt_level == 0 ? llvm::CodeGenOptLevel::None
                                        : llvm::CodeGenOptLevel::Default;
  target.machine.reset(llvm_target->createTargetMachine(target.triple, target.cpu, target.features, target_options,
                                                        llvm::Reloc::PIC_, std::nullopt, level));
  if (!target.machine) return internalError("cannot create an LLVM target machine for " + target.cpu);
  const llvm::MCSubtargetInfo* sti = target.machine->getMCSubtargetInfo();
  for (std::string_view f : kiln::cpu::knownFeatures())
    if (sti->checkFeatures("+" + std::string(f))) target.required.emplace_back(f);
  return target;
}

Expected<bool> runsOnThisHost(const TargetOptions& options) {
  KILN_ASSIGN_OR_RETURN(CpuTarget target, resolveTarget(options));
  for (const std::string& feature : target.required)
    if (!kiln::cpu::hostHas(feature)) return false;
  return true;
}

}  // namespace kiln::codegen::cpu
