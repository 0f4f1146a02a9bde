#include "codegen/cpu/compile_object.h"

#include <llvm/Analysis/CGSCCPassManager.h>
#include <llvm/Analysis/LoopAnalysisManager.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/PassManager.h>
#include <llvm/IR/Verifier.h>
#include <llvm/MC/MCSubtargetInfo.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/raw_ostream.h>

namespace kiln::codegen::cpu {

Status optimizeModule(llvm::Module& module, llvm::TargetMachine& machine, int opt_level) {
  module.setDataLayout(machine.createDataLayout());
  module.setTargetTriple(machine.getTargetTriple().str());
  std::string problems;
  llvm::raw_string_ostream os(problems);
  if (llvm::verifyModule(module, &os)) return internalError("generated LLVM IR is invalid: " + os.str());
  if (opt_level <= 0) return Status::ok();
  // LLVM's tuning for several AVX-512 CPUs (znver4/5, Intel server parts)
  // prefers 256-bit vectors, and splits the kernels' 16-lane vectors into
  // two halves unless told otherwise; the generated kernels are throughput
  // loops where full-width registers halve the instruction count, so ask
  // for 512 bits wherever the target has them. The CPU's own features
  // count, not only the feature string: `--cpu sapphirerapids` has an empty
  // one, and its kernels came out in ymm registers (10110 ymm against 2890
  // zmm instructions for SqueezeNet).
  if (machine.getMCSubtargetInfo()->checkFeatures("+avx512f"))
    for (llvm::Function& f : module)
      if (!f.isDeclaration()) f.addFnAttr("prefer-vector-width", "512");

  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PipelineTuningOptions tuning;
  tuning.LoopVectorization = true;
  tuning.SLPVectorization = true;
  llvm::PassBuilder builder(&machine, tuning);
  builder.registerModuleAnalyses(mam);
  builder.registerCGSCCAnalyses(cgam);
  builder.registerFunctionAnalyses(fam);
  builder.registerLoopAnalyses(lam);
  builder.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::OptimizationLevel level = opt_level == 1 ? llvm::OptimizationLevel::O1
                                  : opt_level == 2 ? llvm::OptimizationLevel::O2
                                                   : llvm::OptimizationLevel::O3;
  llvm::ModulePassManager passes = builder.buildPerModuleDefaultPipeline(level);
  passes.run(module, mam);
  return Status::ok();
}

Expected<std::vector<char>> emitObject(llvm::Module& module, llvm::TargetMachine& machine) {
  llvm::SmallVector<char, 0> buffer;
  llvm::raw_svector_ostream os(buffer);
  llvm::legacy::PassManager codegen;
  if (machine.addPassesToEmitFile(codegen, os, nullptr, llvm::CodeGenFileType::ObjectFile))
    return internalError("LLVM cannot emit an object file for this target");
  codegen.run(module);
  return std::vector<char>(buffer.begin(), buffer.end());
}

}  // namespace kiln::codegen::cpu
