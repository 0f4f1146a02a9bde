#include "codegen/cuda/compile_nvrtc.h"

#include <memory>
#include <type_traits>

#include <nvrtc.h>

namespace kiln::codegen::cuda {
namespace {

struct ProgramDeleter {
  void operator()(nvrtcProgram p) const { nvrtcDestroyProgram(&p); }
};
using ProgramHandle = std::unique_ptr<std::remove_pointer_t<nvrtcProgram>, ProgramDeleter>;

Expected<ProgramHandle> compile(const std::string& source, const std::string& arch_option, std::string& log) {
  nvrtcProgram raw = nullptr;
  // A fixed program name: it is the only name NVRTC may record, so the
  // output stays the same from run to run and machine to machine.
  nvrtcResult r = nvrtcCreateProgram(&raw, source.c_str(), "kiln_model.cu", 0, nullptr, nullptr);
  if (r != NVRTC_SUCCESS) return internalError(std::string("NVRTC: ") + nvrtcGetErrorString(r));
  ProgramHandle program(raw);
  const char* options[] = {arch_option.c_str(), "--std=c++17", "--device-as-default-execution-space"};
  r = nvrtcCompileProgram(raw, 3, options);
  size_t log_size = 0;
  if (nvrtcGetProgramLogSize(raw, &log_size) == NVRTC_SUCCESS && log_size > 1) {
    log.resize(log_size);
    nvrtcGetProgramLog(raw, log.data());
    log.resize(log_size - 1);
  }
  if (r != NVRTC_SUCCESS) {
    constexpr size_t kMaxLog = 2000;
    return internalError("NVRTC rejected the generated CUDA C (" + std::string(nvrtcGetErrorString(r)) + "): " +
                         (log.size() > kMaxLog ? log.substr(0, kMaxLog) + "..." : log));
  }
  return program;
}

}  // namespace

Expected<CompiledKernels> compileWithNvrtc(const std::string& source, const CudaTarget& target) {
  std::string log;
  CompiledKernels out;
  // One compile gives both: the cubin for the exact arch, and the PTX it was
  // built from (`.target sm_XX`; a later driver could JIT it for newer GPUs).
  KILN_ASSIGN_OR_RETURN(ProgramHandle program, compile(source, "--gpu-architecture=" + target.arch, log));
  size_t size = 0;
  if (nvrtcGetCUBINSize(program.get(), &size) != NVRTC_SUCCESS || size == 0)
    return internalError("NVRTC produced no cubin for " + target.arch);
  out.cubin.resize(size);
  nvrtcGetCUBIN(program.get(), reinterpret_cast<char*>(out.cubin.data()));
  if (nvrtcGetPTXSize(program.get(), &size) != NVRTC_SUCCESS || size == 0)
    return internalError("NVRTC produced no PTX for " + target.arch);
  out.ptx.resize(size);
  nvrtcGetPTX(program.get(), out.ptx.data());
  if (!out.ptx.empty() && out.ptx.back() == '\0') out.ptx.pop_back();
  return out;
}

}  // namespace kiln::codegen::cuda
