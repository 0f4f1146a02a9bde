// cuBLASLt, opened at run time like the driver (cuda_driver.h): only an
// artifact whose plan has GEMM launches needs it, and libkiln_rt links no
// CUDA library. Only the calls and constants the runtime uses are declared,
// with cuBLASLt's own ABI (its headers are not needed to build the runtime).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "cuda_driver.h"

namespace kiln::runtime::cuda {

using cublasStatus = int;
using cublasLtHandle = struct cublasLtContext*;
using cublasLtMatmulDesc = struct cublasLtMatmulDescOpaque*;
using cublasLtMatrixLayout = struct cublasLtMatrixLayoutOpaque*;
using cublasLtMatmulPreference = struct cublasLtMatmulPreferenceOpaque*;

struct cublasLtMatmulAlgo {
  uint64_t data[8];
};
struct cublasLtMatmulHeuristicResult {
  cublasLtMatmulAlgo algo;
  size_t workspaceSize;
  cublasStatus state;
  float wavesCount;
  int reserved[4];
};

inline constexpr cublasStatus CUBLAS_STATUS_SUCCESS = 0;
inline constexpr int CUDA_R_32F = 0;
inline constexpr int CUDA_R_16F = 2;
inline constexpr int CUDA_R_16BF = 14;
inline constexpr int CUBLAS_COMPUTE_32F = 68;
inline constexpr int CUBLAS_COMPUTE_32F_FAST_16F = 74;
inline constexpr int CUBLAS_COMPUTE_32F_FAST_16BF = 75;
inline constexpr int CUBLAS_COMPUTE_32F_FAST_TF32 = 77;
inline constexpr int CUBLASLT_MATMUL_DESC_TRANSA = 3;
inline constexpr int CUBLASLT_MATMUL_DESC_TRANSB = 4;
inline constexpr int CUBLASLT_MATMUL_DESC_EPILOGUE = 7;      // int32 (cublasLtEpilogue_t)
inline constexpr int CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8;  // const void*
inline constexpr int CUBLASLT_EPILOGUE_DEFAULT = 1;
inline constexpr int CUBLASLT_EPILOGUE_RELU = 2;
inline constexpr int CUBLASLT_EPILOGUE_BIAS = 4;
inline constexpr int CUBLASLT_EPILOGUE_RELU_BIAS = 6;
inline constexpr int CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT = 5;            // int32
inline constexpr int CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET = 6;   // int64
inline constexpr int CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1;      // uint64
inline constexpr int CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES = 5;    // uint32, then B, C, D

struct Blas {
  cublasStatus (*cublasLtCreate)(cublasLtHandle*);
  cublasStatus (*cublasLtDestroy)(cublasLtHandle);
  cublasStatus (*cublasLtMatmulDescCreate)(cublasLtMatmulDesc*, int compute, int scale_type);
  cublasStatus (*cublasLtMatmulDescDestroy)(cublasLtMatmulDesc);
  cublasStatus (*cublasLtMatmulDescSetAttribute)(cublasLtMatmulDesc, int, const void*, size_t);
  cublasStatus (*cublasLtMatrixLayoutCreate)(cublasLtMatrixLayout*, int type, uint64_t rows, uint64_t cols, int64_t ld);
  cublasStatus (*cublasLtMatrixLayoutDestroy)(cublasLtMatrixLayout);
  cublasStatus (*cublasLtMatrixLayoutSetAttribute)(cublasLtMatrixLayout, int, const void*, size_t);
  cublasStatus (*cublasLtMatmulPreferenceCreate)(cublasLtMatmulPreference*);
  cublasStatus (*cublasLtMatmulPreferenceDestroy)(cublasLtMatmulPreference);
  cublasStatus (*cublasLtMatmulPreferenceSetAttribute)(cublasLtMatmulPreference, int, const void*, size_t);
  cublasStatus (*cublasLtMatmulAlgoGetHeuristic)(cublasLtHandle, cublasLtMatmulDesc, cublasLtMatrixLayout,
                                                 cublasLtMatrixLayout, cublasLtMatrixLayout, cublasLtMatrixLayout,
                                                 cublasLtMatmulPreference, int, cublasLtMatmulHeuristicResult*, int*);
  cublasStatus (*cublasLtMatmul)(cublasLtHandle, cublasLtMatmulDesc, const void* alpha, const void* a,
                                 cublasLtMatrixLayout, const void* b, cublasLtMatrixLayout, const void* beta,
                                 const void* c, cublasLtMatrixLayout, void* d, cublasLtMatrixLayout,
                                 const cublasLtMatmulAlgo*, void* workspace, size_t workspace_bytes, CUstream);
  const char* (*cublasLtGetStatusName)(cublasStatus);
  const char* (*cublasLtGetStatusString)(cublasStatus);

  // "CUBLAS_STATUS_NOT_SUPPORTED (the functionality requested is not supported)"
  std::string describe(cublasStatus s) const;
};

// cuBLASLt, opened once per process (libcublasLt.so.13, else .so.12);
// nullptr with `message` set when it is not there.
const Blas* openBlas(std::string& message);

}  // namespace kiln::runtime::cuda
