#include "cuda_blas.h"

#include <dlfcn.h>

#include <mutex>

namespace kiln::runtime::cuda {
namespace {

struct Loaded {
  Blas blas{};
  bool ok = false;
  std::string message;
};

template <typename Fn>
void bind(void* library, const char* name, Fn& fn, std::string& missing) {
  fn = reinterpret_cast<Fn>(dlsym(library, name));
  if (!fn) missing += (missing.empty() ? "" : ", ") + std::string(name);
}

Loaded load() {
  Loaded l;
  void* library = nullptr;
  std::string tried;
  for (const char* name : {"libcublasLt.so.13", "libcublasLt.so.12"}) {
    if ((library = dlopen(name, RTLD_NOW | RTLD_LOCAL))) break;
    tried += (tried.empty() ? "" : ", ") + std::string(name);
  }
  if (!library) {
    l.message = "this artifact's matrix products need cuBLASLt, which could not be opened (tried " + tried +
                "; install the CUDA toolkit's cuBLAS or add its lib folder to LD_LIBRARY_PATH)";
    return l;
  }
  Blas& b = l.blas;
  std::string missing;
  bind(library, "cublasLtCreate", b.cublasLtCreate, missing);
  bind(library, "cublasLtDestroy", b.cublasLtDestroy, missing);
  bind(library, "cublasLtMatmulDescCreate", b.cublasLtMatmulDescCreate, missing);
  bind(library, "cublasLtMatmulDescDestroy", b.cublasLtMatmulDescDestroy, missing);
  bind(library, "cublasLtMatmulDescSetAttribute", b.cublasLtMatmulDescSetAttribute, missing);
  bind(library, "cublasLtMatrixLayoutCreate", b.cublasLtMatrixLayoutCreate, missing);
  bind(library, "cublasLtMatrixLayoutDestroy", b.cublasLtMatrixLayoutDestroy, missing);
  bind(library, "cublasLtMatrixLayoutSetAttribute", b.cublasLtMatrixLayoutSetAttribute, missing);
  bind(library, "cublasLtMatmulPreferenceCreate", b.cublasLtMatmulPreferenceCreate, missing);
  bind(library, "cublasLtMatmulPreferenceDestroy", b.cublasLtMatmulPreferenceDestroy, missing);
  bind(library, "cublasLtMatmulPreferenceSetAttribute", b.cublasLtMatmulPreferenceSetAttribute, missing);
  bind(library, "cublasLtMatmulAlgoGetHeuristic", b.cublasLtMatmulAlgoGetHeuristic, missing);
  bind(library, "cublasLtMatmul", b.cublasLtMatmul, missing);
  bind(library, "cublasLtGetStatusName", b.cublasLtGetStatusName, missing);
  bind(library, "cublasLtGetStatusString", b.cublasLtGetStatusString, missing);
  if (!missing.empty()) {
    l.message = "cuBLASLt is too old: it lacks " + missing;
    return l;
  }
  l.ok = true;
  return l;
}

}  // namespace

std::string Blas::describe(cublasStatus s) const {
  const char* name = cublasLtGetStatusName ? cublasLtGetStatusName(s) : nullptr;
  const char* text = cublasLtGetStatusString ? cublasLtGetStatusString(s) : nullptr;
  std::string out = name ? name : "cuBLAS status " + std::to_string(s);
  if (text) out += std::string(" (") + text + ")";
  return out;
}

const Blas* openBlas(std::string& message) {
  static std::once_flag once;
  static Loaded loaded;
  std::call_once(once, [] { loaded = load(); });
  if (!loaded.ok) message = loaded.message;
  return loaded.ok ? &loaded.blas : nullptr;
}

}  // namespace kiln::runtime::cuda
