#include "codegen/cuda/nvrtc_api.h"

#include <dlfcn.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace kiln::codegen::cuda {
namespace {

struct Loaded {
  NvrtcApi api;
  std::string error;  // empty when loaded
};

template <typename Fn>
void bind(void* library, const char* name, Fn& fn, std::string& missing) {
  fn = reinterpret_cast<Fn>(dlsym(library, name));
  if (!fn) missing += (missing.empty() ? "" : ", ") + std::string(name);
}

Loaded load() {
  Loaded l;
  std::vector<std::string> names;
  if (const char* env = std::getenv("KILN_NVRTC_LIBRARY"); env && *env) {
    names.push_back(env);  // the user's choice only
  } else {
    names.push_back(KILN_NVRTC_DEFAULT_PATH);
    names.push_back(KILN_NVRTC_SONAME);
  }
  void* library = nullptr;
  std::string tried;
  for (const std::string& name : names) {
    if ((library = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL))) break;
    tried += (tried.empty() ? "" : "; ") + std::string(dlerror());
  }
  if (!library) {
    l.error = "--target cuda needs NVRTC, which could not be opened (" + tried +
              "); install the CUDA toolkit, or name its libnvrtc in KILN_NVRTC_LIBRARY";
    return l;
  }
  NvrtcApi& a = l.api;
  std::string missing;
  bind(library, "nvrtcCreateProgram", a.createProgram, missing);
  bind(library, "nvrtcCompileProgram", a.compileProgram, missing);
  bind(library, "nvrtcDestroyProgram", a.destroyProgram, missing);
  bind(library, "nvrtcGetProgramLogSize", a.getProgramLogSize, missing);
  bind(library, "nvrtcGetProgramLog", a.getProgramLog, missing);
  bind(library, "nvrtcGetCUBINSize", a.getCubinSize, missing);
  bind(library, "nvrtcGetCUBIN", a.getCubin, missing);
  bind(library, "nvrtcGetPTXSize", a.getPtxSize, missing);
  bind(library, "nvrtcGetPTX", a.getPtx, missing);
  bind(library, "nvrtcGetErrorString", a.getErrorString, missing);
  bind(library, "nvrtcGetNumSupportedArchs", a.getNumSupportedArchs, missing);
  bind(library, "nvrtcGetSupportedArchs", a.getSupportedArchs, missing);
  if (!missing.empty()) {
    dlclose(library);
    l.error = "the NVRTC library that was opened lacks " + missing + "; --target cuda needs CUDA 12 or later";
  }
  return l;
}

}  // namespace

Expected<const NvrtcApi*> nvrtc() {
  static const Loaded loaded = load();
  if (!loaded.error.empty()) return unsupported(loaded.error);
  return &loaded.api;
}

}  // namespace kiln::codegen::cuda
