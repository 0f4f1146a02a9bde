#include "codegen/cuda/package_artifact.h"

#include <llvm/IR/Constants.h>
#include <llvm/IR/GlobalVariable.h>
#include <llvm/IR/Module.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/Transforms/Utils/ModuleUtils.h>

#include "codegen/cpu/compile_object.h"
#include "codegen/cpu/target.h"

namespace kiln::codegen::cuda {
namespace {

void addSection(llvm::Module& module, const char* section, const std::string& name, const std::vector<uint8_t>& bytes,
                unsigned alignment) {
  llvm::LLVMContext& c = module.getContext();
  // An empty section still exists (a model without weights), one zero byte long.
  llvm::Constant* init = bytes.empty() ? llvm::ConstantAggregateZero::get(llvm::ArrayType::get(llvm::Type::getInt8Ty(c), 1))
                                       : llvm::ConstantDataArray::get(c, llvm::ArrayRef<uint8_t>(bytes));
  auto* g = new llvm::GlobalVariable(module, init->getType(), true, llvm::GlobalValue::InternalLinkage, init, name);
  g->setSection(section);
  g->setAlignment(llvm::Align(alignment));
  llvm::appendToUsed(module, {g});
}

}  // namespace

Status packageArtifact(const artifact::ModelDesc& desc, const CudaModule& module, const CompiledKernels& kernels,
                       const std::string& path) {
  // The container is host-independent data: a generic x86-64 machine, so the
  // same model gives the same bytes on any build host.
  TargetOptions generic;
  generic.cpu = "x86-64";
  generic.opt_level = 0;
  KILN_ASSIGN_OR_RETURN(cpu::CpuTarget host, cpu::resolveTarget(generic));
  llvm::LLVMContext context;
  llvm::Module m("kiln_model", context);
  m.setSourceFileName("kiln_model");
  addSection(m, artifact::kDescSection, "kiln_description", artifact::serialize(desc), 8);
  addSection(m, artifact::kCudaPlanSection, "kiln_cuda_plan", artifact::serializeCudaPlan(module.plan), 8);
  addSection(m, artifact::kCubinSection, "kiln_cubin", kernels.cubin, 8);
  addSection(m, artifact::kPtxSection, "kiln_ptx", std::vector<uint8_t>(kernels.ptx.begin(), kernels.ptx.end()), 8);
  addSection(m, artifact::kWeightsSection, "kiln_weights", module.weights,
             static_cast<unsigned>(artifact::kCudaWeightAlignment));
  KILN_RETURN_IF_ERROR(cpu::optimizeModule(m, *host.machine, 0));
  KILN_ASSIGN_OR_RETURN(std::vector<char> object, cpu::emitObject(m, *host.machine));
  KILN_RETURN_IF_ERROR(cpu::linkSharedObject(object, path));
  return cpu::sealArtifact(path);
}

}  // namespace kiln::codegen::cuda
