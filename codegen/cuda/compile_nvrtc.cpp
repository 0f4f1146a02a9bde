#include "codegen/cuda/compile_nvrtc.h"

#include <memory>
#include <type_traits>

#include "codegen/cuda/nvrtc_api.h"

namespace kiln::codegen::cuda {
namespace {

struct ProgramDeleter {
  const NvrtcApi* api;
  void operator()(nvrtcProgram p) const { api->destroyProgram(&p); }
};
using ProgramHandle = std::unique_ptr<std::remove_pointer_t<nvrtcProgram>, ProgramDeleter>;

Expected<ProgramHandle> compile(const NvrtcApi& api, const std::string& source, const std::string& arch_option,
                                std::string& log) {
  nvrtcProgram raw = nullptr;
  // A fixed program name: it is the only name NVRTC may record, so the
  // output stays the same from run to run and machine to machine.
  nvrtcResult r = api.createProgram(&raw, source.c_str(), "kiln_model.cu", 0, nullptr, nullptr);
  if (r != NVRTC_SUCCESS) return internalError(std::string("NVRTC: ") + api.getErrorString(r));
  ProgramHandle program(raw, ProgramDeleter{&api});
  const char* options[] = {arch_option.c_str(), "--std=c++17", "--device-as-default-execution-space"};
  r = api.compileProgram(raw, 3, options);
  size_t log_size = 0;
  if (api.getProgramLogSize(raw, &log_size) == NVRTC_SUCCESS && log_size > 1) {
    log.resize(log_size);
    api.getProgramLog(raw, log.data());
    log.resize(log_size - 1);
  }
  if (r != NVRTC_SUCCESS) {
    constexpr size_t kMaxLog = 2000;
    return internalError("NVRTC rejected the generated CUDA C (" + std::string(api.getErrorString(r)) +
                         "): " + (log.size() > kMaxLog ? log.substr(0, kMaxLog) + "..." : log));
  }
  return program;
}

}  // namespace

Expected<CompiledKernels> compileWithNvrtc(const std::string& source, const CudaTarget& target) {
  KILN_ASSIGN_OR_RETURN(const NvrtcApi* api, nvrtc());
  std::string log;
  CompiledKernels out;
  // One compile gives both: the cubin for the exact arch, and the PTX it was
  // built from (`.target sm_XX`; a later driver could JIT it for newer GPUs).
  KILN_ASSIGN_OR_RETURN(ProgramHandle program, compile(*api, source, "--gpu-architecture=" + target.arch, log));
  size_t size = 0;
  if (api->getCubinSize(program.get(), &size) != NVRTC_SUCCESS || size == 0)
    return internalError("NVRTC produced no cubin for " + target.arch);
  out.cubin.resize(size);
  api->getCubin(program.get(), reinterpret_cast<char*>(out.cubin.data()));
  if (api->getPtxSize(program.get(), &size) != NVRTC_SUCCESS || size == 0)
    return internalError("NVRTC produced no PTX for " + target.arch);
  out.ptx.resize(size);
  api->getPtx(program.get(), out.ptx.data());
  if (!out.ptx.empty() && out.ptx.back() == '\0') out.ptx.pop_back();
  return out;
}

}  // namespace kiln::codegen::cuda
