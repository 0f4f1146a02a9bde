#include "cuda_session.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>

namespace kiln::runtime {
namespace {

using artifact::CudaBuffer;

uint64_t dtypeBytes(int32_t dtype) { return kiln_dtype_size(static_cast<kiln_dtype>(dtype)); }

uint64_t tensorBytes(const artifact::TensorDesc& t) {
  uint64_t bytes = dtypeBytes(t.dtype);
  for (int64_t d : t.dims) bytes *= static_cast<uint64_t>(d < 0 ? 0 : d);
  return bytes;
}

// Sections of a checked file: findElfSection verified they lie inside it.
std::span<const uint8_t> section(std::span<const uint8_t> bytes, const char* name, std::string& message) {
  auto ref = artifact::findElfSection(bytes, name, &message);
  if (!ref) return {};
  return bytes.subspan(ref->offset, ref->size);
}

bool inside(uint64_t offset, uint64_t size, uint64_t limit) { return offset <= limit && size <= limit - offset; }

uint64_t alignUp(uint64_t v) { return (v + 255) / 256 * 256; }

// Makes the model's context current on this thread for a scope.
class ContextScope {
 public:
  ContextScope(const cuda::Driver& d, cuda::CUcontext c) : d_(d), ok_(d.cuCtxPushCurrent(c) == cuda::CUDA_SUCCESS) {}
  ~ContextScope() {
    cuda::CUcontext popped;
    if (ok_) d_.cuCtxPopCurrent(&popped);
  }
  bool ok() const { return ok_; }

 private:
  const cuda::Driver& d_;
  bool ok_;
};

// What is wrong with a GEMM launch, or "" when it reads and writes only
// inside its buffers (A and B of their operand type, the rest float32).
std::string checkGemm(const artifact::CudaLaunch& l, const std::vector<CudaBuffer>& buffers) {
  const artifact::CudaGemm& g = l.gemm;
  if (static_cast<uint32_t>(g.epilogue) > 3 || g.accumulate > 1 || !std::isfinite(g.alpha))
    return "has an unknown epilogue";
  if (l.args.size() != g.bufferCount())
    return "has " + std::to_string(l.args.size()) + " buffers, not " + std::to_string(g.bufferCount());
  for (uint32_t a : l.args)
    if (a >= buffers.size()) return "names buffer " + std::to_string(a);
  if (g.m == 0 || g.n == 0 || g.k == 0 || g.batch == 0 || g.m > INT32_MAX || g.n > INT32_MAX || g.k > INT32_MAX)
    return "has an empty or oversized shape";
  if (g.trans_a > 1 || g.trans_b > 1 || static_cast<uint32_t>(g.precision) > 3 || static_cast<uint32_t>(g.type_a) > 2 ||
      static_cast<uint32_t>(g.type_b) > 2 || static_cast<uint32_t>(g.type_d) > 2)
    return "has an unknown mode";
  if (g.lda < static_cast<int64_t>(g.trans_a ? g.k : g.m) || g.ldb < static_cast<int64_t>(g.trans_b ? g.n : g.k) ||
      g.ldc < static_cast<int64_t>(g.m))
    return "has a leading dimension below its rows";
  const CudaBuffer& d = buffers[l.args[2]];
  if (d.kind == CudaBuffer::kConstant || d.kind == CudaBuffer::kInput) return "writes a constant or an input";
  artifact::GemmExtents e = artifact::gemmExtents(g);
  std::vector<uint64_t> ends = {e.a, e.b, e.c};
  const uint64_t d_bytes = artifact::operandBytes(g.type_d);
  std::vector<uint64_t> sizes = {artifact::operandBytes(g.type_a), artifact::operandBytes(g.type_b), d_bytes};
  if (artifact::hasBias(g.epilogue)) ends.push_back(e.bias), sizes.push_back(d_bytes);
  if (g.accumulate) ends.push_back(e.cin), sizes.push_back(d_bytes);  // C has D's type
  for (size_t i = 0; i < ends.size(); ++i)
    if (ends[i] > buffers[l.args[i]].bytes / sizes[i]) return "reaches past buffer " + std::to_string(l.args[i]);
  return "";
}

// 16-bit operands multiply exactly on tensor cores and accumulate in fp32;
// float32 operands are rounded on the fly in the fast modes.
int computeType(const artifact::CudaGemm& g) {
  if (g.type_a != artifact::GemmOperand::kFloat32) return cuda::CUBLAS_COMPUTE_32F;
  switch (g.precision) {
    case artifact::CudaPrecision::kTf32: return cuda::CUBLAS_COMPUTE_32F_FAST_TF32;
    case artifact::CudaPrecision::kFp16: return cuda::CUBLAS_COMPUTE_32F_FAST_16F;
    case artifact::CudaPrecision::kBf16: return cuda::CUBLAS_COMPUTE_32F_FAST_16BF;
    default: return cuda::CUBLAS_COMPUTE_32F;
  }
}

int dataType(artifact::GemmOperand t) {
  switch (t) {
    case artifact::GemmOperand::kFloat16: return cuda::CUDA_R_16F;
    case artifact::GemmOperand::kBFloat16: return cuda::CUDA_R_16BF;
    default: return cuda::CUDA_R_32F;
  }
}

// The alignment of a device address, as cuBLASLt's preferences count it.
uint32_t alignmentOf(cuda::CUdeviceptr p) {
  uint32_t a = 256;
  while (a > 4 && p % a != 0) a /= 2;
  return a;
}

bool envOff(const char* name) {
  const char* v = std::getenv(name);
  return v && std::strcmp(v, "0") == 0;
}

// cuBLASLt's workspace per session, when the plan has GEMMs: what its
// fastest Hopper kernels ask for.
constexpr uint64_t kGemmWorkspaceBytes = 32ull << 20;

// cuBLASLt's candidates per GEMM that a session times, and the runs each.
// Each distinct GEMM is timed once per session (BERT-base has 72 GEMMs of
// 6 kinds), so the search can afford to be wide: with 8 candidates of 5
// runs, BERT-base's 4096x768x768 projections ran a 64x384 tile at 0.87-0.91
// of torch.addmm's rate on the H200, where PyTorch's heuristic picks
// 192x128.
constexpr int kGemmCandidates = 16;
constexpr int kGemmTuneRuns = 10;

}  // namespace

kiln_status checkCudaArtifact(std::span<const uint8_t> bytes, const artifact::ModelDesc& desc, std::string& message) {
  if (desc.cuda_arch.size() < 5 || desc.cuda_arch.rfind("sm_", 0) != 0 ||
      desc.cuda_arch.find_first_not_of("0123456789", 3) != std::string::npos) {
    message = "the model description names no CUDA architecture (cuda_arch '" + desc.cuda_arch + "')";
    return KILN_ERROR_INVALID_ARTIFACT;
  }
  std::span<const uint8_t> plan_bytes = section(bytes, artifact::kCudaPlanSection, message);
  if (plan_bytes.empty()) return KILN_ERROR_INVALID_ARTIFACT;
  auto plan = artifact::parseCudaPlan(plan_bytes, &message);
  if (!plan) return message.find("version") != std::string::npos ? KILN_ERROR_UNSUPPORTED : KILN_ERROR_INVALID_ARTIFACT;
  std::span<const uint8_t> weights = section(bytes, artifact::kWeightsSection, message);
  std::span<const uint8_t> cubin = section(bytes, artifact::kCubinSection, message);
  if (weights.empty() || cubin.empty()) return KILN_ERROR_INVALID_ARTIFACT;
  auto bad = [&](const std::string& what) {
    message = "the CUDA launch plan is inconsistent: " + what;
    return KILN_ERROR_INVALID_ARTIFACT;
  };
  if (plan->weights_bytes > weights.size()) return bad("its weights lie past the weights section");
  for (size_t i = 0; i < plan->buffers.size(); ++i) {
    const CudaBuffer& b = plan->buffers[i];
    std::string where = "buffer " + std::to_string(i);
    switch (b.kind) {
      case CudaBuffer::kInput:
      case CudaBuffer::kOutput: {
        const auto& list = b.kind == CudaBuffer::kInput ? desc.inputs : desc.outputs;
        if (b.io_index >= list.size() || b.bytes != tensorBytes(list[b.io_index]))
          return bad(where + " does not match the description's inputs/outputs");
        break;
      }
      case CudaBuffer::kConstant:
        if (!inside(b.offset, b.bytes, plan->weights_bytes)) return bad(where + " lies past the weights");
        break;
      case CudaBuffer::kWorkspace:
        if (!inside(b.offset, b.bytes, desc.workspace_bytes)) return bad(where + " lies past the workspace");
        break;
      default: return bad(where + " has unknown kind " + std::to_string(b.kind));
    }
  }
  for (const artifact::CudaLaunch& l : plan->launches) {
    if (l.function.empty() || l.kernel >= desc.kernels.size()) return bad("a launch names no kernel");
    if (l.kind == artifact::CudaLaunch::kGemm) {
      if (std::string why = checkGemm(l, plan->buffers); !why.empty()) return bad("GEMM '" + l.function + "' " + why);
      continue;
    }
    if (l.kind != artifact::CudaLaunch::kKernel) return bad("launch '" + l.function + "' has unknown kind " + std::to_string(l.kind));
    if (l.block == 0 || l.block > 1024 || l.grid == 0 || l.grid > 0x7fffffffu)
      return bad("launch '" + l.function + "' has a grid of " + std::to_string(l.grid) + " x " + std::to_string(l.block));
    for (uint32_t a : l.args)
      if (a >= plan->buffers.size()) return bad("launch '" + l.function + "' names buffer " + std::to_string(a));
  }
  return KILN_OK;
}

kiln_status CudaModel::load(std::span<const uint8_t> bytes, const artifact::ModelDesc& desc,
                            std::unique_ptr<CudaModel>& model, std::string& message) {
  auto m = std::make_unique<CudaModel>();
  std::string why;
  m->driver = cuda::openDriver(why);
  std::string needs = "this artifact runs on an NVIDIA GPU (" + desc.cuda_arch + "), but ";
  if (!m->driver) {
    message = needs + why;
    return KILN_ERROR_UNSUPPORTED;
  }
  const cuda::Driver& d = *m->driver;
  int count = 0;
  if (d.cuDeviceGetCount(&count) != cuda::CUDA_SUCCESS || count == 0) {
    message = needs + "the driver sees no GPU";
    return KILN_ERROR_UNSUPPORTED;
  }
  int ordinal = 0;
  if (const char* env = std::getenv("KILN_CUDA_DEVICE")) ordinal = std::atoi(env);
  if (ordinal < 0 || ordinal >= count) {
    message = "KILN_CUDA_DEVICE=" + std::to_string(ordinal) + " is out of range: the driver sees " +
              std::to_string(count) + " GPU(s)";
    return KILN_ERROR_INVALID_ARGUMENT;
  }
  int major = 0, minor = 0;
  char name[256] = {};
  if (cuda::CUresult r = d.cuDeviceGet(&m->device, ordinal); r != cuda::CUDA_SUCCESS) {
    message = "cannot open GPU " + std::to_string(ordinal) + ": " + d.describe(r);
    return KILN_ERROR_RUNTIME;
  }
  d.cuDeviceGetAttribute(&major, cuda::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, m->device);
  d.cuDeviceGetAttribute(&minor, cuda::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, m->device);
  d.cuDeviceGetName(name, sizeof name - 1, m->device);
  m->device_name = name;
  m->ordinal = ordinal;
  // A cubin runs on its own major version at an equal or newer minor.
  int arch = std::atoi(desc.cuda_arch.c_str() + 3);
  int want_major = arch / 10, want_minor = arch % 10;
  if (major != want_major || minor < want_minor) {
    message = "artifact was compiled for " + desc.cuda_arch + ", but GPU " + std::to_string(ordinal) + " ('" + name +
              "') has compute capability " + std::to_string(major) + "." + std::to_string(minor) +
              "; recompile with --cuda-arch sm_" + std::to_string(major) + std::to_string(minor);
    return KILN_ERROR_UNSUPPORTED;
  }
  if (cuda::CUresult r = d.cuDevicePrimaryCtxRetain(&m->context, m->device); r != cuda::CUDA_SUCCESS) {
    m->context = nullptr;
    message = "cannot create a CUDA context on '" + m->device_name + "': " + d.describe(r);
    return KILN_ERROR_RUNTIME;
  }
  std::string error;
  m->plan = *artifact::parseCudaPlan(section(bytes, artifact::kCudaPlanSection, error), &error);
  std::span<const uint8_t> weights = section(bytes, artifact::kWeightsSection, error);
  m->weights.assign(weights.begin(), weights.begin() + static_cast<std::ptrdiff_t>(m->plan.weights_bytes));
  std::span<const uint8_t> cubin = section(bytes, artifact::kCubinSection, error);
  // cuModuleLoadData reads the ELF image from an aligned buffer.
  std::vector<uint64_t> image((cubin.size() + 7) / 8);
  std::memcpy(image.data(), cubin.data(), cubin.size());
  ContextScope scope(d, m->context);
  if (cuda::CUresult r = d.cuModuleLoadData(&m->module, image.data()); r != cuda::CUDA_SUCCESS) {
    m->module = nullptr;
    message = "the GPU driver refused the artifact's kernels: " + d.describe(r);
    return KILN_ERROR_INVALID_ARTIFACT;
  }
  for (const artifact::CudaLaunch& l : m->plan.launches) {
    cuda::CUfunction f = nullptr;
    if (l.kind == artifact::CudaLaunch::kGemm) {
      m->functions.push_back(nullptr);
      continue;
    }
    if (cuda::CUresult r = d.cuModuleGetFunction(&f, m->module, l.function.c_str()); r != cuda::CUDA_SUCCESS) {
      message = "kernel '" + l.function + "' is missing from the artifact's cubin: " + d.describe(r);
      return KILN_ERROR_INVALID_ARTIFACT;
    }
    m->functions.push_back(f);
  }
  bool has_gemm = std::any_of(m->plan.launches.begin(), m->plan.launches.end(),
                              [](const artifact::CudaLaunch& l) { return l.kind == artifact::CudaLaunch::kGemm; });
  if (has_gemm && !(m->blas = cuda::openBlas(why))) {
    message = why;
    return KILN_ERROR_UNSUPPORTED;
  }
  m->kernels = desc.kernels;
  for (const auto& t : desc.inputs) m->input_bytes.push_back(tensorBytes(t)), m->input_names.push_back(t.name);
  for (const auto& t : desc.outputs) m->output_bytes.push_back(tensorBytes(t)), m->output_names.push_back(t.name);
  m->workspace_bytes = desc.workspace_bytes;
  model = std::move(m);
  return KILN_OK;
}

CudaModel::~CudaModel() {
  if (!driver || !context) return;
  if (module) {
    ContextScope scope(*driver, context);
    driver->cuModuleUnload(module);
  }
  driver->cuDevicePrimaryCtxRelease(device);
}

kiln_status CudaSession::create(const CudaModel& model, std::unique_ptr<CudaSession>& session, std::string& message) {
  const cuda::Driver& d = *model.driver;
  std::unique_ptr<CudaSession> s(new CudaSession(model));
  const char* blocking = std::getenv("KILN_CUDA_LAUNCH_BLOCKING");
  s->launch_blocking_ = blocking && *blocking && std::strcmp(blocking, "0") != 0;
  // The session's one device allocation: weights, inputs, outputs, workspace.
  uint64_t total = alignUp(model.weights.size());
  for (uint64_t b : model.input_bytes) s->input_at_.push_back(total), total += alignUp(b);
  for (uint64_t b : model.output_bytes) s->output_at_.push_back(total), total += alignUp(b);
  s->workspace_at_ = total;
  total += alignUp(model.workspace_bytes);
  s->gemm_workspace_at_ = total;
  s->gemm_workspace_bytes_ = model.blas ? kGemmWorkspaceBytes : 0;
  total += s->gemm_workspace_bytes_;
  s->use_graph_ = !envOff("KILN_CUDA_GRAPHS");
  ContextScope scope(d, model.context);
  if (!scope.ok()) {
    message = "cannot make the CUDA context current";
    return KILN_ERROR_RUNTIME;
  }
  if (cuda::CUresult r = d.cuStreamCreate(&s->stream_, cuda::CU_STREAM_NON_BLOCKING); r != cuda::CUDA_SUCCESS) {
    s->stream_ = nullptr;
    message = "cannot create a CUDA stream: " + d.describe(r);
    return KILN_ERROR_RUNTIME;
  }
  for (cuda::CUevent* e : {&s->caller_ready_, &s->run_done_}) {
    if (cuda::CUresult r = d.cuEventCreate(e, cuda::CU_EVENT_DISABLE_TIMING); r != cuda::CUDA_SUCCESS) {
      *e = nullptr;
      message = "cannot create a CUDA event: " + d.describe(r);
      return KILN_ERROR_RUNTIME;
    }
  }
  if (cuda::CUresult r = d.cuMemAlloc(&s->memory_, std::max<uint64_t>(total, 256)); r != cuda::CUDA_SUCCESS) {
    s->memory_ = 0;
    message = "cannot allocate " + std::to_string(total) + " bytes on '" + model.device_name + "': " + d.describe(r);
    return KILN_ERROR_RUNTIME;
  }
  if (!model.weights.empty()) {
    cuda::CUresult r = d.cuMemcpyHtoDAsync(s->memory_ + s->weights_at_, model.weights.data(), model.weights.size(), s->stream_);
    if (r == cuda::CUDA_SUCCESS) r = d.cuStreamSynchronize(s->stream_);
    if (r != cuda::CUDA_SUCCESS) {
      message = "uploading the weights failed: " + d.describe(r);
      return KILN_ERROR_RUNTIME;
    }
  }
  if (kiln_status status = s->prepareGemms(message); status != KILN_OK) return status;
  session = std::move(s);
  return KILN_OK;
}

kiln_status CudaSession::prepareGemms(std::string& message) {
  const cuda::Blas* blas = model_.blas;
  if (!blas) return KILN_OK;
  if (cuda::cublasStatus r = blas->cublasLtCreate(&blas_); r != cuda::CUBLAS_STATUS_SUCCESS) {
    blas_ = nullptr;
    message = "cannot start cuBLASLt: " + blas->describe(r);
    return KILN_ERROR_RUNTIME;
  }
  const auto& launches = model_.plan.launches;
  gemms_.resize(launches.size());
  // The algorithm chosen for each distinct GEMM: shape, layouts, types,
  // epilogue and the operands' alignments (what cuBLASLt's choice depends
  // on), so equal GEMMs are timed once.
  std::map<std::vector<int64_t>, cuda::cublasLtMatmulAlgo> chosen;
  for (size_t i = 0; i < launches.size(); ++i) {
    const artifact::CudaLaunch& l = launches[i];
    if (l.kind != artifact::CudaLaunch::kGemm) continue;
    const artifact::CudaGemm& g = l.gemm;
    Gemm& call = gemms_[i];
    const cuda::CUdeviceptr bias =
        artifact::hasBias(g.epilogue) ? address(l.args[3]) + g.offset_bias * artifact::operandBytes(g.type_d) : 0;
    std::string failed;
    auto check = [&](cuda::cublasStatus r, const char* what) {
      if (r != cuda::CUBLAS_STATUS_SUCCESS && failed.empty()) failed = std::string(what) + ": " + blas->describe(r);
    };
    check(blas->cublasLtMatmulDescCreate(&call.desc, computeType(g), cuda::CUDA_R_32F), "creating the GEMM");
    if (failed.empty()) {
      int32_t ta = static_cast<int32_t>(g.trans_a), tb = static_cast<int32_t>(g.trans_b);
      check(blas->cublasLtMatmulDescSetAttribute(call.desc, cuda::CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta), "setting transa");
      check(blas->cublasLtMatmulDescSetAttribute(call.desc, cuda::CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb), "setting transb");
    }
    if (failed.empty() && g.epilogue != artifact::GemmEpilogue::kNone) {
      static constexpr int32_t kEpilogues[4] = {cuda::CUBLASLT_EPILOGUE_DEFAULT, cuda::CUBLASLT_EPILOGUE_BIAS,
                                                cuda::CUBLASLT_EPILOGUE_RELU, cuda::CUBLASLT_EPILOGUE_RELU_BIAS};
      int32_t epilogue = kEpilogues[static_cast<uint32_t>(g.epilogue)];
      check(blas->cublasLtMatmulDescSetAttribute(call.desc, cuda::CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue,
                                                 sizeof epilogue),
            "setting the epilogue");
      if (artifact::hasBias(g.epilogue) && failed.empty()) {
        const void* bias_pointer = reinterpret_cast<const void*>(bias);
        check(blas->cublasLtMatmulDescSetAttribute(call.desc, cuda::CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias_pointer,
                                                   sizeof bias_pointer),
              "setting the bias");
      }
    }
    struct Layout {
      cuda::cublasLtMatrixLayout* layout;
      int type;
      uint64_t rows, cols;
      int64_t ld, stride;
    };
    for (const Layout& m : {Layout{&call.a, dataType(g.type_a), g.trans_a ? g.k : g.m, g.trans_a ? g.m : g.k, g.lda, g.stride_a},
                            Layout{&call.b, dataType(g.type_b), g.trans_b ? g.n : g.k, g.trans_b ? g.k : g.n, g.ldb, g.stride_b},
                            Layout{&call.c, dataType(g.type_d), g.m, g.n, g.ldc, g.stride_c}}) {
      if (!failed.empty()) break;
      check(blas->cublasLtMatrixLayoutCreate(m.layout, m.type, m.rows, m.cols, m.ld), "describing a matrix");
      if (!failed.empty() || g.batch == 1) continue;
      int32_t batch = static_cast<int32_t>(g.batch);
      check(blas->cublasLtMatrixLayoutSetAttribute(*m.layout, cuda::CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof batch),
            "setting the batch");
      check(blas->cublasLtMatrixLayoutSetAttribute(*m.layout, cuda::CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &m.stride,
                                                   sizeof m.stride),
            "setting the batch stride");
    }
    if (failed.empty()) {
      cuda::cublasLtMatmulPreference pref = nullptr;
      check(blas->cublasLtMatmulPreferenceCreate(&pref), "creating a preference");
      if (failed.empty()) {
        check(blas->cublasLtMatmulPreferenceSetAttribute(pref, cuda::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                         &gemm_workspace_bytes_, sizeof gemm_workspace_bytes_),
              "setting the workspace");
        const cuda::CUdeviceptr addresses[4] = {operandA(l), operandB(l), inputC(l), outputD(l)};
        std::vector<int64_t> key = {g.trans_a,
                                    g.trans_b,
                                    static_cast<int64_t>(g.precision),
                                    g.batch,
                                    static_cast<int64_t>(g.m),
                                    static_cast<int64_t>(g.n),
                                    static_cast<int64_t>(g.k),
                                    g.lda,
                                    g.ldb,
                                    g.ldc,
                                    g.stride_a,
                                    g.stride_b,
                                    g.stride_c,
                                    static_cast<int64_t>(g.epilogue),
                                    g.accumulate,
                                    static_cast<int64_t>(g.type_a),
                                    static_cast<int64_t>(g.type_b),
                                    static_cast<int64_t>(g.type_d)};
        if (artifact::hasBias(g.epilogue)) key.push_back(alignmentOf(bias));
        for (int m = 0; m < 4; ++m) {
          uint32_t align = alignmentOf(addresses[m]);
          key.push_back(align);
          check(blas->cublasLtMatmulPreferenceSetAttribute(pref, cuda::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES + m, &align,
                                                           sizeof align),
                "setting an alignment");
        }
        if (auto it = chosen.find(key); failed.empty() && it != chosen.end()) {
          call.algo = it->second;
          blas->cublasLtMatmulPreferenceDestroy(pref);
          continue;
        }
        std::vector<cuda::cublasLtMatmulHeuristicResult> results(kGemmCandidates);
        int found = 0;
        check(blas->cublasLtMatmulAlgoGetHeuristic(blas_, call.desc, call.a, call.b, call.c, call.c, pref,
                                                   kGemmCandidates, results.data(), &found),
              "choosing an algorithm");
        if (failed.empty() && found == 0) failed = "cuBLASLt has no algorithm for this shape";
        blas->cublasLtMatmulPreferenceDestroy(pref);
        if (failed.empty()) {
          results.resize(static_cast<size_t>(found));
          call.algo = fastest(i, results);
          chosen[key] = call.algo;
        }
      }
    }
    if (!failed.empty()) {
      message = "GEMM '" + l.function + "' (from " + model_.kernels[l.kernel].origin + "): " + failed;
      return KILN_ERROR_RUNTIME;
    }
  }
  return KILN_OK;
}

cuda::cublasStatus CudaSession::matmul(size_t i, const cuda::cublasLtMatmulAlgo& algo) {
  const artifact::CudaLaunch& l = model_.plan.launches[i];
  const artifact::CudaGemm& g = l.gemm;
  const Gemm& call = gemms_[i];
  const float one = 1.0f, zero = 0.0f;
  const float alpha = static_cast<float>(g.alpha);
  cuda::CUdeviceptr dst = outputD(l);
  return model_.blas->cublasLtMatmul(blas_, call.desc, &alpha, reinterpret_cast<const void*>(operandA(l)), call.a,
                                     reinterpret_cast<const void*>(operandB(l)), call.b, g.accumulate ? &one : &zero,
                                     reinterpret_cast<const void*>(inputC(l)), call.c, reinterpret_cast<void*>(dst),
                                     call.c, &algo, reinterpret_cast<void*>(memory_ + gemm_workspace_at_),
                                     gemm_workspace_bytes_, stream_);
}

// cuBLASLt's heuristic ranks kernels by a model of the GPU; at batch 1 its
// first choice is often a split-K kernel plus a reduction launch that a
// plain kernel beats. Each candidate runs a few times on the session's own
// buffers (their contents do not matter to the timing; the first real run
// overwrites every buffer a GEMM writes) and the fastest is kept.
const cuda::cublasLtMatmulAlgo& CudaSession::fastest(size_t i,
                                                     const std::vector<cuda::cublasLtMatmulHeuristicResult>& candidates) {
  const cuda::Driver& d = *model_.driver;
  if (candidates.size() == 1 || !d.cuEventElapsedTime || envOff("KILN_CUDA_GEMM_TUNE")) return candidates[0].algo;
  cuda::CUevent start = nullptr, stop = nullptr;
  if (d.cuEventCreate(&start, 0) != cuda::CUDA_SUCCESS) return candidates[0].algo;
  if (d.cuEventCreate(&stop, 0) != cuda::CUDA_SUCCESS) {
    d.cuEventDestroy(start);
    return candidates[0].algo;
  }
  size_t best = 0;
  float best_ms = INFINITY;
  for (size_t c = 0; c < candidates.size(); ++c) {
    const cuda::cublasLtMatmulAlgo& algo = candidates[c].algo;
    if (matmul(i, algo) != cuda::CUBLAS_STATUS_SUCCESS) continue;  // warm-up; a refused candidate is skipped
    bool ok = d.cuEventRecord(start, stream_) == cuda::CUDA_SUCCESS;
    for (int r = 0; r < kGemmTuneRuns && ok; ++r) ok = matmul(i, algo) == cuda::CUBLAS_STATUS_SUCCESS;
    ok = ok && d.cuEventRecord(stop, stream_) == cuda::CUDA_SUCCESS && d.cuEventSynchronize(stop) == cuda::CUDA_SUCCESS;
    float ms = 0;
    if (ok && d.cuEventElapsedTime(&ms, start, stop) == cuda::CUDA_SUCCESS && ms < best_ms) {
      best_ms = ms;
      best = c;
    }
  }
  d.cuStreamSynchronize(stream_);
  d.cuEventDestroy(start);
  d.cuEventDestroy(stop);
  return candidates[best].algo;
}

CudaSession::~CudaSession() {
  const cuda::Driver& d = *model_.driver;
  ContextScope scope(d, model_.context);
  if (stream_) d.cuStreamSynchronize(stream_);
  if (graph_) d.cuGraphExecDestroy(graph_);
  if (const cuda::Blas* blas = model_.blas) {
    for (Gemm& g : gemms_) {
      for (cuda::cublasLtMatrixLayout m : {g.a, g.b, g.c})
        if (m) blas->cublasLtMatrixLayoutDestroy(m);
      if (g.desc) blas->cublasLtMatmulDescDestroy(g.desc);
    }
    if (blas_) blas->cublasLtDestroy(blas_);
  }
  for (cuda::CUevent e : {caller_ready_, run_done_})
    if (e) d.cuEventDestroy(e);
  if (stream_) d.cuStreamDestroy(stream_);
  if (memory_) d.cuMemFree(memory_);
}

cuda::CUdeviceptr CudaSession::operandA(const artifact::CudaLaunch& l) const {
  return address(l.args[0]) + l.gemm.offset_a * artifact::operandBytes(l.gemm.type_a);
}

cuda::CUdeviceptr CudaSession::operandB(const artifact::CudaLaunch& l) const {
  return address(l.args[1]) + l.gemm.offset_b * artifact::operandBytes(l.gemm.type_b);
}

cuda::CUdeviceptr CudaSession::inputC(const artifact::CudaLaunch& l) const {
  const artifact::CudaGemm& g = l.gemm;
  return g.accumulate ? address(l.args.back()) + g.offset_cin * artifact::operandBytes(g.type_d) : outputD(l);
}

cuda::CUdeviceptr CudaSession::outputD(const artifact::CudaLaunch& l) const {
  return address(l.args[2]) + l.gemm.offset_c * artifact::operandBytes(l.gemm.type_d);
}

cuda::CUdeviceptr CudaSession::address(uint32_t buffer) const {
  const CudaBuffer& b = model_.plan.buffers[buffer];
  switch (b.kind) {
    case CudaBuffer::kInput: return memory_ + input_at_[b.io_index];
    case CudaBuffer::kOutput: return memory_ + output_at_[b.io_index];
    case CudaBuffer::kConstant: return memory_ + weights_at_ + b.offset;
    default: return memory_ + workspace_at_ + b.offset;
  }
}

kiln_status CudaSession::enqueue(kiln_kernel_done_fn kernel_done, void* profiler, std::string& message) {
  const cuda::Driver& d = *model_.driver;
  std::vector<cuda::CUdeviceptr> args;
  std::vector<void*> arg_ptrs;
  const auto& launches = model_.plan.launches;
  for (size_t i = 0; i < launches.size(); ++i) {
    const artifact::CudaLaunch& l = launches[i];
    args.clear();
    arg_ptrs.clear();
    for (uint32_t a : l.args) args.push_back(address(a));
    const artifact::KernelDesc& k = model_.kernels[l.kernel];
    auto failed = [&](const char* when, cuda::CUresult r) {
      message = std::string("CUDA error ") + when + " kernel '" + l.function + "' (from " + k.origin + "): " + d.describe(r);
      return KILN_ERROR_RUNTIME;
    };
    cuda::CUresult r = cuda::CUDA_SUCCESS;
    if (l.kind == artifact::CudaLaunch::kGemm) {
      cuda::cublasStatus s = matmul(i, gemms_[i].algo);
      if (s != cuda::CUBLAS_STATUS_SUCCESS) {
        message = "cuBLASLt error in GEMM '" + l.function + "' (from " + k.origin + "): " + model_.blas->describe(s);
        return KILN_ERROR_RUNTIME;
      }
    } else {
      for (cuda::CUdeviceptr& p : args) arg_ptrs.push_back(&p);
      r = d.cuLaunchKernel(model_.functions[i], l.grid, 1, 1, l.block, 1, 1, 0, stream_, arg_ptrs.data(), nullptr);
      if (r != cuda::CUDA_SUCCESS) return failed("launching", r);
    }
    bool last_of_kernel = i + 1 == launches.size() || launches[i + 1].kernel != l.kernel;
    if (launch_blocking_ || (kernel_done && last_of_kernel)) {
      if ((r = d.cuStreamSynchronize(stream_)) != cuda::CUDA_SUCCESS) return failed("running", r);
    }
    if (kernel_done && last_of_kernel) kernel_done(profiler, static_cast<int32_t>(l.kernel));
  }
  return KILN_OK;
}

// The first call captures the plan into a graph; every call launches it.
// Where capture fails (an old driver), the session launches one by one.
kiln_status CudaSession::replayGraph(std::string& message) {
  const cuda::Driver& d = *model_.driver;
  if (!graph_) {
    if (d.cuStreamBeginCapture(stream_, cuda::CU_STREAM_CAPTURE_MODE_RELAXED) != cuda::CUDA_SUCCESS) {
      use_graph_ = false;
      return enqueue(nullptr, nullptr, message);
    }
    kiln_status enqueued = enqueue(nullptr, nullptr, message);
    cuda::CUgraph graph = nullptr;
    cuda::CUresult ended = d.cuStreamEndCapture(stream_, &graph);
    if (enqueued != KILN_OK) {
      if (graph) d.cuGraphDestroy(graph);
      return enqueued;
    }
    cuda::CUresult made = ended == cuda::CUDA_SUCCESS ? d.cuGraphInstantiateWithFlags(&graph_, graph, 0) : ended;
    if (graph) d.cuGraphDestroy(graph);
    if (made != cuda::CUDA_SUCCESS) {
      graph_ = nullptr;
      use_graph_ = false;
      return enqueue(nullptr, nullptr, message);
    }
  }
  if (cuda::CUresult r = d.cuGraphLaunch(graph_, stream_); r != cuda::CUDA_SUCCESS) {
    message = "CUDA error launching the model's graph: " + d.describe(r);
    return KILN_ERROR_RUNTIME;
  }
  return KILN_OK;
}

bool CudaSession::checkDevicePointer(const void* p, uint64_t bytes, const std::string& what,
                                     std::string& message) const {
  const cuda::Driver& d = *model_.driver;
  auto ptr = reinterpret_cast<cuda::CUdeviceptr>(p);
  unsigned type = 0;
  if (d.cuPointerGetAttribute(&type, cuda::CU_POINTER_ATTRIBUTE_MEMORY_TYPE, ptr) != cuda::CUDA_SUCCESS) {
    message = what + ": data is not memory the CUDA driver knows (a plain host pointer?), but the run was told it is "
                     "device memory (KILN_MEMORY_DEVICE)";
    return false;
  }
  if (type == cuda::CU_MEMORYTYPE_HOST) {
    message = what + ": data is host memory, not device memory; pass it as KILN_MEMORY_HOST";
    return false;
  }
  if (type != cuda::CU_MEMORYTYPE_DEVICE && type != cuda::CU_MEMORYTYPE_UNIFIED) {
    message = what + ": data has CUDA memory type " + std::to_string(type) + ", not device memory";
    return false;
  }
  int ordinal = -1;
  if (type == cuda::CU_MEMORYTYPE_DEVICE &&
      d.cuPointerGetAttribute(&ordinal, cuda::CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, ptr) == cuda::CUDA_SUCCESS &&
      ordinal != model_.ordinal) {
    message = what + ": data lies on GPU " + std::to_string(ordinal) + ", but the session runs on GPU " +
              std::to_string(model_.ordinal) + " ('" + model_.device_name + "')";
    return false;
  }
  cuda::CUdeviceptr start = 0;
  size_t size = 0;
  if (d.cuPointerGetAttribute(&start, cuda::CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, ptr) == cuda::CUDA_SUCCESS &&
      d.cuPointerGetAttribute(&size, cuda::CU_POINTER_ATTRIBUTE_RANGE_SIZE, ptr) == cuda::CUDA_SUCCESS &&
      (ptr < start || bytes > size - (ptr - start))) {
    message = what + ": the device allocation holds " + std::to_string(size - (ptr - start)) +
              " bytes from data on, the tensor needs " + std::to_string(bytes);
    return false;
  }
  return true;
}

kiln_status CudaSession::copyIn(void* const* inputs, bool device, std::string& message) {
  const cuda::Driver& d = *model_.driver;
  for (size_t i = 0; i < model_.input_bytes.size(); ++i) {
    if (model_.input_bytes[i] == 0) continue;
    cuda::CUdeviceptr to = memory_ + input_at_[i];
    cuda::CUresult r = device ? d.cuMemcpyDtoDAsync(to, reinterpret_cast<cuda::CUdeviceptr>(inputs[i]),
                                                    model_.input_bytes[i], stream_)
                              : d.cuMemcpyHtoDAsync(to, inputs[i], model_.input_bytes[i], stream_);
    if (r != cuda::CUDA_SUCCESS) {
      message = "copying input " + std::to_string(i) + " '" + model_.input_names[i] + "' to the session's buffer failed: " +
                d.describe(r);
      return KILN_ERROR_RUNTIME;
    }
  }
  return KILN_OK;
}

kiln_status CudaSession::copyOut(void* const* outputs, bool device, std::string& message) {
  const cuda::Driver& d = *model_.driver;
  for (size_t i = 0; i < model_.output_bytes.size(); ++i) {
    if (model_.output_bytes[i] == 0) continue;
    cuda::CUdeviceptr from = memory_ + output_at_[i];
    cuda::CUresult r = device ? d.cuMemcpyDtoDAsync(reinterpret_cast<cuda::CUdeviceptr>(outputs[i]), from,
                                                    model_.output_bytes[i], stream_)
                              : d.cuMemcpyDtoHAsync(outputs[i], from, model_.output_bytes[i], stream_);
    if (r != cuda::CUDA_SUCCESS) {
      message = "copying output " + std::to_string(i) + " '" + model_.output_names[i] +
                "' from the session's buffer failed: " + d.describe(r);
      return KILN_ERROR_RUNTIME;
    }
  }
  return KILN_OK;
}

kiln_status CudaSession::run(void* const* inputs, void* const* outputs, kiln_kernel_done_fn kernel_done,
                             void* profiler, std::string& message, const kiln_run_options* options) {
  const cuda::Driver& d = *model_.driver;
  const bool device_in = options && options->input_memory == KILN_MEMORY_DEVICE;
  const bool device_out = options && options->output_memory == KILN_MEMORY_DEVICE;
  const bool ordered = device_in || device_out;  // on the caller's stream
  const bool async = ordered && options->async != 0 && !kernel_done;
  auto caller = static_cast<cuda::CUstream>(ordered ? options->cuda_stream : nullptr);
  std::lock_guard<std::mutex> lock(mutex_);
  ContextScope scope(d, model_.context);
  if (!scope.ok()) {
    message = "cannot make the CUDA context current";
    return KILN_ERROR_RUNTIME;
  }
  for (size_t i = 0; device_in && i < model_.input_bytes.size(); ++i)
    if (model_.input_bytes[i] && !checkDevicePointer(inputs[i], model_.input_bytes[i],
                                                     "input " + std::to_string(i) + " '" + model_.input_names[i] + "'",
                                                     message))
      return KILN_ERROR_INVALID_ARGUMENT;
  for (size_t i = 0; device_out && i < model_.output_bytes.size(); ++i)
    if (model_.output_bytes[i] && !checkDevicePointer(outputs[i], model_.output_bytes[i],
                                                      "output " + std::to_string(i) + " '" + model_.output_names[i] + "'",
                                                      message))
      return KILN_ERROR_INVALID_ARGUMENT;
  if (ordered) {
    cuda::CUresult r = d.cuEventRecord(caller_ready_, caller);
    if (r == cuda::CUDA_SUCCESS) r = d.cuStreamWaitEvent(stream_, caller_ready_, 0);
    if (r != cuda::CUDA_SUCCESS) {
      message = "cannot order the run after the caller's CUDA stream: " + d.describe(r);
      return KILN_ERROR_INVALID_ARGUMENT;
    }
  }
  if (kiln_status s = copyIn(inputs, device_in, message); s != KILN_OK) return s;
  kiln_status launched = KILN_OK;
  if (use_graph_ && !kernel_done && !launch_blocking_) launched = replayGraph(message);
  else launched = enqueue(kernel_done, profiler, message);
  if (launched != KILN_OK) {
    d.cuStreamSynchronize(stream_);
    return launched;
  }
  if (kiln_status s = copyOut(outputs, device_out, message); s != KILN_OK) return s;
  if (ordered) {
    cuda::CUresult r = d.cuEventRecord(run_done_, stream_);
    if (r == cuda::CUDA_SUCCESS) r = d.cuStreamWaitEvent(caller, run_done_, 0);
    if (r != cuda::CUDA_SUCCESS) {
      message = "cannot order the caller's CUDA stream after the run: " + d.describe(r);
      return KILN_ERROR_RUNTIME;
    }
    if (async) return KILN_OK;
  }
  if (cuda::CUresult r = d.cuStreamSynchronize(stream_); r != cuda::CUDA_SUCCESS) {
    message = "CUDA error while running the model: " + d.describe(r) +
              " (kernels run asynchronously; set KILN_CUDA_LAUNCH_BLOCKING=1 to name the failing kernel)";
    return KILN_ERROR_RUNTIME;
  }
  return KILN_OK;
}

}  // namespace kiln::runtime
