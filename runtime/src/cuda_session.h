// Running CUDA artifacts: the checks on the file's bytes, the loaded module
// (cubin on the GPU, arch checked), and per-session device memory.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "artifact_format.h"
#include "cuda_blas.h"
#include "cuda_driver.h"
#include "cuda_plan.h"
#include "exec_context.h"
#include "kiln_runtime.h"

namespace kiln::runtime {

// Every check of a CUDA artifact's GPU sections that needs no GPU: the launch
// plan parses, and each buffer, weight range and launch lies inside what the
// description and the sections allow. Part of checkArtifact.
kiln_status checkCudaArtifact(std::span<const uint8_t> bytes, const artifact::ModelDesc& desc, std::string& message);

// A CUDA artifact loaded on this process's GPU: the driver opened, the GPU's
// compute capability checked against the artifact's arch, the cubin loaded.
class CudaModel {
 public:
  static kiln_status load(std::span<const uint8_t> bytes, const artifact::ModelDesc& desc,
                          std::unique_ptr<CudaModel>& model, std::string& message);
  ~CudaModel();

  const cuda::Driver* driver = nullptr;
  const cuda::Blas* blas = nullptr;  // opened when the plan has GEMMs
  cuda::CUdevice device = 0;
  int ordinal = 0;  // the GPU's number among the driver's (KILN_CUDA_DEVICE)
  cuda::CUcontext context = nullptr;
  cuda::CUmodule module = nullptr;
  std::string device_name;
  artifact::CudaPlan plan;
  std::vector<cuda::CUfunction> functions;  // per launch
  std::vector<uint8_t> weights;             // uploaded by each session
  std::vector<artifact::KernelDesc> kernels;
  std::vector<uint64_t> input_bytes, output_bytes;
  std::vector<std::string> input_names, output_names;
  uint64_t workspace_bytes = 0;
};

// A session's device state: one allocation holding the weights (uploaded
// once), the inputs and outputs, and the workspace arena; one stream. Runs of
// one session are serialized (they share the arena); sessions run in parallel.
class CudaSession {
 public:
  static kiln_status create(const CudaModel& model, std::unique_ptr<CudaSession>& session, std::string& message);
  ~CudaSession();

  // Copies the inputs in, runs the plan, copies the outputs back. The
  // first run captures the plan's launches as a CUDA graph and every run
  // replays it (KILN_CUDA_GRAPHS=0: launch one by one). With `kernel_done`,
  // launches one by one, synchronizes after each kernel and reports it
  // (kiln_session_run_profiled). `options` (NULL: host memory) says where
  // the caller's buffers are; device pointers are checked first, and device
  // runs are ordered on the caller's stream (kiln_session_run_with).
  kiln_status run(void* const* inputs, void* const* outputs, kiln_kernel_done_fn kernel_done, void* profiler,
                  std::string& message, const kiln_run_options* options = nullptr);

 private:
  // A GEMM launch's cuBLASLt objects, made once per session (the algorithm
  // depends on the operands' addresses' alignment, fixed per session).
  struct Gemm {
    cuda::cublasLtMatmulDesc desc = nullptr;
    cuda::cublasLtMatrixLayout a = nullptr, b = nullptr, c = nullptr;
    cuda::cublasLtMatmulAlgo algo{};
  };

  explicit CudaSession(const CudaModel& model) : model_(model) {}
  cuda::CUdeviceptr address(uint32_t buffer) const;
  // A GEMM's A and B operands, its D, and its C: the accumulated input, or
  // D itself (read with beta 0).
  cuda::CUdeviceptr operandA(const artifact::CudaLaunch& l) const;
  cuda::CUdeviceptr operandB(const artifact::CudaLaunch& l) const;
  cuda::CUdeviceptr outputD(const artifact::CudaLaunch& l) const;
  cuda::CUdeviceptr inputC(const artifact::CudaLaunch& l) const;
  kiln_status prepareGemms(std::string& message);
  // Enqueues launch `i` (a GEMM) with `algo` on the session's stream.
  cuda::cublasStatus matmul(size_t i, const cuda::cublasLtMatmulAlgo& algo);
  // Of cuBLASLt's candidates for GEMM `i`, the one that runs fastest here,
  // timed on the session's own buffers (KILN_CUDA_GEMM_TUNE=0: the first).
  const cuda::cublasLtMatmulAlgo& fastest(size_t i, const std::vector<cuda::cublasLtMatmulHeuristicResult>& candidates);
  // Enqueues every launch of the plan on the session's stream.
  kiln_status enqueue(kiln_kernel_done_fn kernel_done, void* profiler, std::string& message);
  kiln_status replayGraph(std::string& message);
  // Whether the caller's `bytes` at `p` are device memory this session's GPU
  // can use; `message` says why not ("input 0 'x': ...").
  bool checkDevicePointer(const void* p, uint64_t bytes, const std::string& what, std::string& message) const;
  kiln_status copyIn(void* const* inputs, bool device, std::string& message);
  kiln_status copyOut(void* const* outputs, bool device, std::string& message);

  const CudaModel& model_;
  std::mutex mutex_;
  cuda::CUstream stream_ = nullptr;
  cuda::CUdeviceptr memory_ = 0;
  uint64_t weights_at_ = 0, workspace_at_ = 0, gemm_workspace_at_ = 0, gemm_workspace_bytes_ = 0;
  std::vector<uint64_t> input_at_, output_at_;
  cuda::cublasLtHandle blas_ = nullptr;
  std::vector<Gemm> gemms_;  // per launch; empty for kernels
  cuda::CUgraphExec graph_ = nullptr;
  // Order device-memory runs after the caller's stream and it after them.
  cuda::CUevent caller_ready_ = nullptr, run_done_ = nullptr;
  bool use_graph_ = true;
  bool launch_blocking_ = false;
};

}  // namespace kiln::runtime
