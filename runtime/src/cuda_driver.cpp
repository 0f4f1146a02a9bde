#include "cuda_driver.h"

#include <dlfcn.h>

#include <mutex>

namespace kiln::runtime::cuda {
namespace {

struct Loaded {
  Driver driver{};
  bool ok = false;
  std::string message;
};

template <typename Fn>
bool bind(void* library, const char* name, Fn& fn, std::string& missing) {
  fn = reinterpret_cast<Fn>(dlsym(library, name));
  if (!fn) missing += (missing.empty() ? "" : ", ") + std::string(name);
  return fn != nullptr;
}

Loaded load() {
  Loaded l;
  void* library = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!library) {
    const char* why = dlerror();
    l.message = std::string("no NVIDIA driver: libcuda.so.1 could not be opened (") + (why ? why : "not found") + ")";
    return l;
  }
  Driver& d = l.driver;
  std::string missing;
  // The versioned names are the current ABI of each call.
  bind(library, "cuInit", d.cuInit, missing);
  bind(library, "cuDeviceGetCount", d.cuDeviceGetCount, missing);
  bind(library, "cuDeviceGet", d.cuDeviceGet, missing);
  bind(library, "cuDeviceGetAttribute", d.cuDeviceGetAttribute, missing);
  bind(library, "cuDeviceGetName", d.cuDeviceGetName, missing);
  bind(library, "cuDevicePrimaryCtxRetain", d.cuDevicePrimaryCtxRetain, missing);
  bind(library, "cuDevicePrimaryCtxRelease_v2", d.cuDevicePrimaryCtxRelease, missing);
  bind(library, "cuCtxPushCurrent_v2", d.cuCtxPushCurrent, missing);
  bind(library, "cuCtxPopCurrent_v2", d.cuCtxPopCurrent, missing);
  bind(library, "cuModuleLoadData", d.cuModuleLoadData, missing);
  bind(library, "cuModuleUnload", d.cuModuleUnload, missing);
  bind(library, "cuModuleGetFunction", d.cuModuleGetFunction, missing);
  bind(library, "cuMemAlloc_v2", d.cuMemAlloc, missing);
  bind(library, "cuMemFree_v2", d.cuMemFree, missing);
  bind(library, "cuMemcpyHtoDAsync_v2", d.cuMemcpyHtoDAsync, missing);
  bind(library, "cuMemcpyDtoHAsync_v2", d.cuMemcpyDtoHAsync, missing);
  bind(library, "cuMemcpyDtoDAsync_v2", d.cuMemcpyDtoDAsync, missing);
  bind(library, "cuPointerGetAttribute", d.cuPointerGetAttribute, missing);
  bind(library, "cuEventCreate", d.cuEventCreate, missing);
  bind(library, "cuEventRecord", d.cuEventRecord, missing);
  bind(library, "cuEventDestroy_v2", d.cuEventDestroy, missing);
  bind(library, "cuEventSynchronize", d.cuEventSynchronize, missing);
  bind(library, "cuStreamWaitEvent", d.cuStreamWaitEvent, missing);
  bind(library, "cuStreamCreate", d.cuStreamCreate, missing);
  bind(library, "cuStreamDestroy_v2", d.cuStreamDestroy, missing);
  bind(library, "cuStreamSynchronize", d.cuStreamSynchronize, missing);
  bind(library, "cuLaunchKernel", d.cuLaunchKernel, missing);
  bind(library, "cuStreamBeginCapture_v2", d.cuStreamBeginCapture, missing);
  bind(library, "cuStreamEndCapture", d.cuStreamEndCapture, missing);
  bind(library, "cuGraphInstantiateWithFlags", d.cuGraphInstantiateWithFlags, missing);
  bind(library, "cuGraphLaunch", d.cuGraphLaunch, missing);
  bind(library, "cuGraphExecDestroy", d.cuGraphExecDestroy, missing);
  bind(library, "cuGraphDestroy", d.cuGraphDestroy, missing);
  bind(library, "cuGetErrorName", d.cuGetErrorName, missing);
  bind(library, "cuGetErrorString", d.cuGetErrorString, missing);
  // Optional: timing GEMM candidates (a driver without it keeps cuBLASLt's first choice).
  d.cuEventElapsedTime = reinterpret_cast<decltype(d.cuEventElapsedTime)>(dlsym(library, "cuEventElapsedTime_v2"));
  if (!d.cuEventElapsedTime)
    d.cuEventElapsedTime = reinterpret_cast<decltype(d.cuEventElapsedTime)>(dlsym(library, "cuEventElapsedTime"));
  if (!missing.empty()) {
    l.message = "the NVIDIA driver (libcuda.so.1) is too old: it lacks " + missing;
    return l;
  }
  if (CUresult r = d.cuInit(0); r != CUDA_SUCCESS) {
    l.message = "the NVIDIA driver failed to initialize: " + d.describe(r);
    return l;
  }
  l.ok = true;
  return l;
}

}  // namespace

std::string Driver::describe(CUresult r) const {
  const char* name = nullptr;
  const char* text = nullptr;
  if (cuGetErrorName) cuGetErrorName(r, &name);
  if (cuGetErrorString) cuGetErrorString(r, &text);
  std::string s = name ? name : "CUDA error " + std::to_string(r);
  if (text) s += std::string(" (") + text + ")";
  return s;
}

const Driver* openDriver(std::string& message) {
  static std::once_flag once;
  static Loaded loaded;
  std::call_once(once, [] { loaded = load(); });
  if (!loaded.ok) message = loaded.message;
  return loaded.ok ? &loaded.driver : nullptr;
}

}  // namespace kiln::runtime::cuda
