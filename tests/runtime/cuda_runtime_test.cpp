// Running CUDA artifacts on a GPU: outputs against the CPU artifact and the
// ONNX test data, profiling, and the arch check. Every test skips, printing
// why, where there is no usable NVIDIA GPU (CI).
#include <dlfcn.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <type_traits>

#include <gtest/gtest.h>

#include "kiln_runtime.hpp"
#include "tests/codegen/cuda_test_models.h"
#include "tests/testing/artifact_fixture.h"
#include "tools/common/run_artifact.h"
#include "tools/common/test_case.h"

namespace kiln {
namespace {

using testing::TempDir;

driver::CompileOptions target(const std::string& name, const std::string& arch = "") {
  driver::CompileOptions options;
  options.target = name;
  options.codegen.cuda_arch = arch;
  return options;
}

// Loads a CUDA artifact, or says why this machine cannot run one.
std::unique_ptr<Model> loadOrSkipReason(const std::string& path, std::string& skip) {
  try {
    return std::make_unique<Model>(path);
  } catch (const Error& e) {
    if (e.status() != KILN_ERROR_UNSUPPORTED) throw;
    skip = std::string("no usable NVIDIA GPU: ") + e.what();
    return nullptr;
  }
}

#define LOAD_CUDA_OR_SKIP(var, path)                  \
  std::string skip_reason;                            \
  auto var = loadOrSkipReason(path, skip_reason);     \
  if (!var) GTEST_SKIP() << skip_reason;

std::vector<ir::Tensor> randomInputs(const Model& model, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<ir::Tensor> inputs;
  for (size_t i = 0; i < model.numInputs(); ++i) {
    kiln_tensor_info info = model.input(i);
    std::vector<int64_t> dims(info.dims, info.dims + info.rank);
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    std::vector<float> values(static_cast<size_t>(n));
    for (float& v : values) v = dist(rng);
    std::vector<std::byte> bytes(values.size() * 4);
    std::memcpy(bytes.data(), values.data(), bytes.size());
    inputs.push_back(ir::Tensor::fromBytes(ir::DType::kFloat32, dims, std::move(bytes)));
  }
  return inputs;
}

TEST(CudaRuntime, TinyCnnMatchesTheCpuArtifact) {
  TempDir dir;
  testing::compileOrFail(testing::exampleModel(), dir.file("gpu.so"), target("cuda"));
  LOAD_CUDA_OR_SKIP(gpu, dir.file("gpu.so"));
  testing::compileOrFail(testing::exampleModel(), dir.file("cpu.so"), target("cpu"));
  Model cpu(dir.file("cpu.so"));
  EXPECT_EQ(gpu->metadata("target"), "cuda");
  EXPECT_EQ(gpu->metadata("cuda_arch"), "sm_90");
  Session cpu_session(cpu, 1), gpu_session(*gpu);
  std::vector<ir::Tensor> inputs = randomInputs(cpu, 7);
  auto want = tools::runArtifact(cpu, cpu_session, inputs);
  ASSERT_TRUE(want.isOk()) << want.status().message();
  // Twice: the second run reuses the session's uploaded weights and arena.
  for (int run = 0; run < 2; ++run) {
    auto got = tools::runArtifact(*gpu, gpu_session, inputs);
    ASSERT_TRUE(got.isOk()) << got.status().message();
    ASSERT_EQ(got->size(), want->size());
    for (size_t i = 0; i < want->size(); ++i) {
      auto mismatch = tools::compareTensors((*got)[i], (*want)[i], {1e-4, 1e-5});
      EXPECT_FALSE(mismatch.has_value()) << *mismatch;
    }
  }
}

void expectOutputsMatch(const std::vector<ir::Tensor>& got, const std::vector<ir::Tensor>& want, tools::Tolerance tol,
                        const std::vector<testing::ContractionCase>* cases = nullptr) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    auto mismatch = tools::compareTensors(got[i], want[i], tol);
    EXPECT_FALSE(mismatch.has_value()) << (cases ? std::string((*cases)[i].name) + " (" + (*cases)[i].what + "): "
                                                 : "output " + std::to_string(i) + ": ")
                                       << *mismatch;
  }
}

using Modes = std::vector<std::pair<const char*, tools::Tolerance>>;

// Compiles `onnx` for the CPU and for CUDA in each precision of `modes` and
// checks the GPU's outputs on random inputs against the fp32 CPU artifact's
// at that precision's tolerance (outputs named after `cases` when given).
void expectCudaMatchesCpu(const std::string& onnx, const TempDir& dir, uint32_t seed, const Modes& modes,
                          const std::vector<testing::ContractionCase>* cases = nullptr) {
  testing::compileOrFail(onnx, dir.file("cpu.so"), target("cpu"));
  Model cpu(dir.file("cpu.so"));
  Session cpu_session(cpu, 1);
  std::vector<ir::Tensor> inputs = randomInputs(cpu, seed);
  auto want = tools::runArtifact(cpu, cpu_session, inputs);
  ASSERT_TRUE(want.isOk()) << want.status().message();
  for (const auto& [precision, tol] : modes) {
    SCOPED_TRACE(precision);
    driver::CompileOptions options = target("cuda");
    options.codegen.cuda_precision = precision;
    std::string path = dir.file(std::string(precision) + ".so");
    testing::compileOrFail(onnx, path, options);
    LOAD_CUDA_OR_SKIP(gpu, path);
    Session session(*gpu);
    auto got = tools::runArtifact(*gpu, session, inputs);
    ASSERT_TRUE(got.isOk()) << got.status().message();
    expectOutputsMatch(*got, *want, tol, cases);
  }
}

// The GEMM path (cuBLASLt, packing and epilogue kernels) in each precision,
// against the fp32 CPU artifact. Tolerances follow the inputs' rounding:
// tf32 and fp16 keep 10 mantissa bits, bf16 7; sums run over <= 200 terms.
TEST(CudaRuntime, ContractionsMatchTheCpuArtifactInEveryPrecision) {
  TempDir dir;
  ASSERT_TRUE(testing::writeContractionModel(dir.file("m.onnx")));
  expectCudaMatchesCpu(dir.file("m.onnx"), dir, 11,
                       {{"fp32", {1e-4, 1e-5}}, {"tf32", {1e-2, 2e-2}}, {"fp16", {1e-2, 2e-2}}, {"bf16", {4e-2, 1e-1}}},
                       &testing::contractionCases());
}

// GEMMs that read activations through their 16-bit copies (a LayerNorm
// row group's, a Tanh epilogue's) and weights converted at compile time
// agree with the fp32 CPU artifact at each 16-bit precision's tolerance.
TEST(CudaRuntime, SixteenBitOperandsMatchTheCpuArtifact) {
  TempDir dir;
  ASSERT_TRUE(testing::writeHalfChainModel(dir.file("m.onnx")));
  expectCudaMatchesCpu(dir.file("m.onnx"), dir, 17, {{"fp16", {1e-2, 2e-2}}, {"bf16", {4e-2, 1e-1}}});
}

// A channels-last convolution block at batch 8 (the wide schedules: packing
// several points per thread, cuBLASLt's bias, residual and Relu epilogue,
// the depthwise convolution as a generated kernel, 16-bit residuals in
// fp16) against the fp32 CPU artifact, in fp32 and fp16.
TEST(CudaRuntime, ConvolutionBlockMatchesTheCpuArtifact) {
  TempDir dir;
  ASSERT_TRUE(testing::writeConvBlockModel(dir.file("m.onnx")));
  expectCudaMatchesCpu(dir.file("m.onnx"), dir, 23, {{"fp32", {1e-4, 1e-5}}, {"fp16", {1e-2, 2e-2}}});
}

// A 7x7 stem convolution over 3 channels, its inner dimension padded with
// zeros (147 -> 148 or 152; the weight's padded matrix computed at compile
// time) against the fp32 CPU artifact in every precision.
TEST(CudaRuntime, PaddedStemConvolutionMatchesTheCpuArtifact) {
  TempDir dir;
  ASSERT_TRUE(testing::writeStemModel(dir.file("m.onnx")));
  expectCudaMatchesCpu(dir.file("m.onnx"), dir, 24,
                       {{"fp32", {1e-4, 1e-5}}, {"fp16", {1e-2, 2e-2}}, {"bf16", {4e-2, 1e-1}}});
}

// The wide GELU epilogue (vector loads of D and the bias, 16 bytes of points
// per thread) against the fp32 CPU artifact.
TEST(CudaRuntime, WideGeluEpilogueMatchesTheCpuArtifact) {
  TempDir dir;
  ASSERT_TRUE(testing::writeWideGeluModel(dir.file("m.onnx")));
  expectCudaMatchesCpu(dir.file("m.onnx"), dir, 25, {{"fp32", {1e-4, 1e-5}}, {"fp16", {1e-2, 2e-2}}});
}

// A session captures its launches once and replays the graph on every run:
// new inputs give new, correct outputs, the same as launching one by one.
TEST(CudaRuntime, GraphReplayFollowsNewInputs) {
  TempDir dir;
  ASSERT_TRUE(testing::writeContractionModel(dir.file("m.onnx")));
  testing::compileOrFail(dir.file("m.onnx"), dir.file("gpu.so"), target("cuda"));
  LOAD_CUDA_OR_SKIP(gpu, dir.file("gpu.so"));
  testing::compileOrFail(dir.file("m.onnx"), dir.file("cpu.so"), target("cpu"));
  Model cpu(dir.file("cpu.so"));
  // Both sessions take cuBLASLt's first algorithm: each session times its
  // candidates and may keep another one, whose sums round differently.
  setenv("KILN_CUDA_GEMM_TUNE", "0", 1);
  Session cpu_session(cpu, 1), graphed(*gpu);
  setenv("KILN_CUDA_GRAPHS", "0", 1);
  Session one_by_one(*gpu);
  unsetenv("KILN_CUDA_GRAPHS");
  for (uint32_t seed : {21u, 22u, 23u}) {
    SCOPED_TRACE(seed);
    std::vector<ir::Tensor> inputs = randomInputs(cpu, seed);
    auto want = tools::runArtifact(cpu, cpu_session, inputs);
    auto replayed = tools::runArtifact(*gpu, graphed, inputs);
    auto launched = tools::runArtifact(*gpu, one_by_one, inputs);
    ASSERT_TRUE(want.isOk() && replayed.isOk() && launched.isOk());
    expectOutputsMatch(*replayed, *want, {1e-4, 1e-5}, &testing::contractionCases());
    expectOutputsMatch(*launched, *replayed, {1e-5, 1e-6}, &testing::contractionCases());
  }
  unsetenv("KILN_CUDA_GEMM_TUNE");
}

// LayerNorm and Softmax as row groups (a block per row here, one launch each)
// against the fp32 CPU artifact.
TEST(CudaRuntime, RowGroupsMatchTheCpuArtifact) {
  TempDir dir;
  ASSERT_TRUE(testing::writeRowGroupModel(dir.file("m.onnx")));
  testing::compileOrFail(dir.file("m.onnx"), dir.file("gpu.so"), target("cuda"));
  LOAD_CUDA_OR_SKIP(gpu, dir.file("gpu.so"));
  testing::compileOrFail(dir.file("m.onnx"), dir.file("cpu.so"), target("cpu"));
  Model cpu(dir.file("cpu.so"));
  Session cpu_session(cpu, 1), gpu_session(*gpu);
  std::vector<ir::Tensor> inputs = randomInputs(cpu, 9);
  auto want = tools::runArtifact(cpu, cpu_session, inputs);
  auto got = tools::runArtifact(*gpu, gpu_session, inputs);
  ASSERT_TRUE(want.isOk() && got.isOk());
  auto mismatch = tools::compareTensors((*got)[0], (*want)[0], {1e-4, 1e-6});
  EXPECT_FALSE(mismatch.has_value()) << *mismatch;
}

// Attention whose head transposes are the GEMMs' operand layouts (batch 1:
// read in place, in fp16 from projections their GEMMs store in 16 bits;
// batch 2: packed) against the fp32 CPU artifact.
TEST(CudaRuntime, AttentionWithFoldedTransposesMatchesTheCpuArtifact) {
  TempDir dir;
  for (int64_t batch : {1, 2}) {
    std::string onnx = dir.file("attention" + std::to_string(batch) + ".onnx");
    ASSERT_TRUE(testing::writeAttentionModel(onnx, batch));
    testing::compileOrFail(onnx, dir.file("cpu.so"), target("cpu"));
    Model cpu(dir.file("cpu.so"));
    Session cpu_session(cpu, 1);
    std::vector<ir::Tensor> inputs = randomInputs(cpu, 17);
    auto want = tools::runArtifact(cpu, cpu_session, inputs);
    ASSERT_TRUE(want.isOk()) << want.status().message();
    // The last mode is kiln.Attention, which CUDA's -O pipeline leaves out
    // but --passes can ask for: its six stages as launches (scores and
    // context as GEMMs, the row statistics and exponentials generated).
    struct Mode {
      const char* precision;
      tools::Tolerance tol;
      bool one_kernel = false;
    };
    const Mode modes[] = {{"fp32", {1e-4, 1e-4}},
                          {"tf32", {1e-2, 2e-2}},
                          {"fp16", {1e-2, 2e-2}},
                          {"bf16", {4e-2, 1e-1}},
                          {"fp32", {1e-4, 1e-4}, true}};
    for (const auto& [precision, tol, one_kernel] : modes) {
      SCOPED_TRACE("batch " + std::to_string(batch) + ", " + precision + (one_kernel ? ", kiln.Attention" : ""));
      driver::CompileOptions options = target("cuda");
      options.codegen.cuda_precision = precision;
      if (one_kernel)
        options.pipeline.passes = {"fold-constants", "remove-no-ops", "recognize-attention", "fuse-kernels"};
      std::string path = dir.file("gpu_" + std::to_string(batch) + precision + (one_kernel ? "_one" : "") + ".so");
      testing::compileOrFail(onnx, path, options);
      LOAD_CUDA_OR_SKIP(gpu, path);
      Session session(*gpu);
      auto got = tools::runArtifact(*gpu, session, inputs);
      ASSERT_TRUE(got.isOk()) << got.status().message();
      ASSERT_EQ(got->size(), 1u);
      auto mismatch = tools::compareTensors((*got)[0], (*want)[0], tol);
      EXPECT_FALSE(mismatch.has_value()) << *mismatch;
    }
  }
}

// A small BERT encoder layer (tests/passes/bert_block.onnx, hidden 32: the
// thread-per-element path, LayerNorm written as ReduceMean/Pow/Sqrt nodes)
// against the fp32 CPU artifact.
TEST(CudaRuntime, BertBlockMatchesTheCpuArtifact) {
  TempDir dir;
  std::string onnx = std::string(KILN_SOURCE_DIR) + "/tests/passes/bert_block.onnx";
  testing::compileOrFail(onnx, dir.file("gpu.so"), target("cuda"));
  LOAD_CUDA_OR_SKIP(gpu, dir.file("gpu.so"));
  testing::compileOrFail(onnx, dir.file("cpu.so"), target("cpu"));
  Model cpu(dir.file("cpu.so"));
  Session cpu_session(cpu, 1), gpu_session(*gpu);
  std::vector<ir::Tensor> inputs = randomInputs(cpu, 5);
  auto want = tools::runArtifact(cpu, cpu_session, inputs);
  auto got = tools::runArtifact(*gpu, gpu_session, inputs);
  ASSERT_TRUE(want.isOk() && got.isOk());
  for (size_t i = 0; i < want->size(); ++i) {
    auto mismatch = tools::compareTensors((*got)[i], (*want)[i], {1e-4, 1e-4});
    EXPECT_FALSE(mismatch.has_value()) << *mismatch;
  }
}

// The few driver calls the device-memory tests make themselves (the test,
// like the runtime, links no CUDA library).
struct TestDriver {
  using CUdeviceptr = unsigned long long;
  int (*cuDeviceGet)(int*, int);
  int (*cuDevicePrimaryCtxRetain)(void**, int);
  int (*cuCtxPushCurrent)(void*);
  int (*cuMemAlloc)(CUdeviceptr*, size_t);
  int (*cuMemFree)(CUdeviceptr);
  int (*cuMemcpyHtoD)(CUdeviceptr, const void*, size_t);
  int (*cuMemcpyDtoH)(void*, CUdeviceptr, size_t);
  int (*cuStreamCreate)(void**, unsigned);
  int (*cuStreamSynchronize)(void*);
  int (*cuStreamDestroy)(void*);

  // After a CUDA artifact loaded (the runtime initialized the driver).
  static std::unique_ptr<TestDriver> open() {
    void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return nullptr;
    auto d = std::make_unique<TestDriver>();
    bool ok = true;
    auto bind = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
      ok = ok && fn;
    };
    bind(d->cuDeviceGet, "cuDeviceGet");
    bind(d->cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    bind(d->cuCtxPushCurrent, "cuCtxPushCurrent_v2");
    bind(d->cuMemAlloc, "cuMemAlloc_v2");
    bind(d->cuMemFree, "cuMemFree_v2");
    bind(d->cuMemcpyHtoD, "cuMemcpyHtoD_v2");
    bind(d->cuMemcpyDtoH, "cuMemcpyDtoH_v2");
    bind(d->cuStreamCreate, "cuStreamCreate");
    bind(d->cuStreamSynchronize, "cuStreamSynchronize");
    bind(d->cuStreamDestroy, "cuStreamDestroy_v2");
    int device = 0;
    void* context = nullptr;
    if (!ok || d->cuDeviceGet(&device, 0) != 0 || d->cuDevicePrimaryCtxRetain(&context, device) != 0 ||
        d->cuCtxPushCurrent(context) != 0)
      return nullptr;
    return d;
  }
};

// One device buffer per tensor, freed at the end.
struct DeviceBuffers {
  const TestDriver& d;
  std::vector<TestDriver::CUdeviceptr> ptrs;
  ~DeviceBuffers() {
    for (auto p : ptrs) d.cuMemFree(p);
  }
  void* alloc(size_t bytes) {
    TestDriver::CUdeviceptr p = 0;
    EXPECT_EQ(d.cuMemAlloc(&p, bytes), 0);
    ptrs.push_back(p);
    return reinterpret_cast<void*>(p);
  }
};

kiln_tensor tensorOf(const ir::Tensor& t, void* data) {
  kiln_tensor k{};
  k.dtype = static_cast<kiln_dtype>(t.dtype());
  k.rank = static_cast<int32_t>(t.dims().size());
  std::copy(t.dims().begin(), t.dims().end(), k.dims);
  k.data = data;
  k.bytes = t.bytes().size();
  return k;
}

// Inputs and outputs in device memory (synchronous, and queued on the
// caller's stream), and host inputs with device outputs, give the host run's
// outputs; bad device pointers are refused naming the tensor.
TEST(CudaRuntime, DeviceMemoryRunsMatchHostRuns) {
  TempDir dir;
  ASSERT_TRUE(testing::writeContractionModel(dir.file("m.onnx")));
  testing::compileOrFail(dir.file("m.onnx"), dir.file("gpu.so"), target("cuda"));
  LOAD_CUDA_OR_SKIP(gpu, dir.file("gpu.so"));
  auto driver = TestDriver::open();
  ASSERT_TRUE(driver) << "a CUDA artifact loaded, but the test cannot open libcuda.so.1 itself";
  const TestDriver& d = *driver;
  Session session(*gpu);
  std::vector<ir::Tensor> inputs = randomInputs(*gpu, 31);
  auto want = tools::runArtifact(*gpu, session, inputs);
  ASSERT_TRUE(want.isOk()) << want.status().message();

  DeviceBuffers buffers{d, {}};
  std::vector<kiln_tensor> host_in, device_in, device_out;
  for (const ir::Tensor& t : inputs) {
    void* p = buffers.alloc(t.bytes().size());
    ASSERT_EQ(d.cuMemcpyHtoD(reinterpret_cast<TestDriver::CUdeviceptr>(p), t.bytes().data(), t.bytes().size()), 0);
    device_in.push_back(tensorOf(t, p));
    host_in.push_back(tensorOf(t, const_cast<std::byte*>(t.bytes().data())));
  }
  for (const ir::Tensor& t : *want) device_out.push_back(tensorOf(t, buffers.alloc(t.bytes().size())));
  auto expectOutputs = [&](const char* how) {
    SCOPED_TRACE(how);
    for (size_t i = 0; i < want->size(); ++i) {
      std::vector<std::byte> bytes((*want)[i].bytes().size());
      ASSERT_EQ(d.cuMemcpyDtoH(bytes.data(), reinterpret_cast<TestDriver::CUdeviceptr>(device_out[i].data), bytes.size()), 0);
      EXPECT_EQ(std::memcmp(bytes.data(), (*want)[i].bytes().data(), bytes.size()), 0) << "output " << i;
    }
  };
  kiln_run_options device{KILN_MEMORY_DEVICE, KILN_MEMORY_DEVICE, nullptr, 0};
  session.runWith(device_in, device_out, device);
  expectOutputs("device memory, synchronous");

  void* stream = nullptr;
  ASSERT_EQ(d.cuStreamCreate(&stream, 0), 0);
  for (kiln_tensor& t : device_out) ASSERT_EQ(d.cuMemcpyHtoD(reinterpret_cast<TestDriver::CUdeviceptr>(t.data),
                                                             std::vector<std::byte>(t.bytes).data(), t.bytes), 0);
  kiln_run_options queued{KILN_MEMORY_DEVICE, KILN_MEMORY_DEVICE, stream, 1};
  session.runWith(device_in, device_out, queued);
  ASSERT_EQ(d.cuStreamSynchronize(stream), 0);
  expectOutputs("device memory, queued on the caller's stream");
  d.cuStreamDestroy(stream);

  kiln_run_options mixed{KILN_MEMORY_HOST, KILN_MEMORY_DEVICE, nullptr, 0};
  session.runWith(host_in, device_out, mixed);
  expectOutputs("host inputs, device outputs");

  auto refused = [&](std::vector<kiln_tensor> in, std::vector<kiln_tensor> out, const kiln_run_options& options,
                     const std::string& expected) {
    SCOPED_TRACE(expected);
    try {
      session.runWith(in, out, options);
      ADD_FAILURE() << "the run was not refused";
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), KILN_ERROR_INVALID_ARGUMENT);
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  };
  refused(host_in, device_out, device, "input 0 'x0': data is ");  // unknown to the driver, or host memory
  std::vector<kiln_tensor> short_out = device_out;
  short_out[0].data = static_cast<char*>(short_out[0].data) + short_out[0].bytes - 4;
  refused(device_in, short_out, device, "the device allocation holds");
  std::vector<kiln_tensor> null_out = device_out;
  null_out[0].data = nullptr;
  refused(device_in, null_out, device, "device-memory outputs need a buffer");
}

TEST(CudaRuntime, NodeCasesMatchTheirExpectedOutputs) {
  for (const char* name : {"test_relu", "test_conv_with_strides_padding", "test_matmul_2d", "test_softmax_axis_1",
                           "test_layer_normalization_2d_axis1",
                           "test_gather_0", "test_cast_FLOAT_to_FLOAT16", "test_argmax_default_axis_example",
                           "test_maxpool_2d_pads", "test_where_example", "test_bitshift_right_uint16"}) {
    SCOPED_TRACE(name);
    TempDir dir;
    testing::compileOrFail(testing::nodeCase(name) + "/model.onnx", dir.file("case.so"), target("cuda"));
    LOAD_CUDA_OR_SKIP(model, dir.file("case.so"));
    Session session(*model);
    auto checked = tools::checkTestCase(*model, session, testing::nodeCase(name), {});
    ASSERT_TRUE(checked.isOk()) << checked.status().message();
    EXPECT_FALSE(checked->has_value()) << **checked;
  }
}

TEST(CudaRuntime, ProfiledRunTimesEveryKernel) {
  TempDir dir;
  testing::compileOrFail(testing::exampleModel(), dir.file("gpu.so"), target("cuda"));
  LOAD_CUDA_OR_SKIP(gpu, dir.file("gpu.so"));
  Session session(*gpu);
  std::vector<ir::Tensor> inputs = randomInputs(*gpu, 3);
  std::vector<kiln_tensor> in(1), out(gpu->numOutputs());
  in[0].dtype = KILN_FLOAT32;
  in[0].rank = static_cast<int32_t>(inputs[0].dims().size());
  std::copy(inputs[0].dims().begin(), inputs[0].dims().end(), in[0].dims);
  in[0].data = const_cast<std::byte*>(inputs[0].bytes().data());
  in[0].bytes = inputs[0].bytes().size();
  for (kiln_tensor& o : out) o.data = nullptr;
  std::vector<uint64_t> kernel_ns;
  session.runProfiled(in, out, kernel_ns);
  for (kiln_tensor& o : out) kiln_free(o.data);
  ASSERT_EQ(kernel_ns.size(), gpu->numKernels());
  for (size_t k = 0; k < kernel_ns.size(); ++k) EXPECT_GT(kernel_ns[k], 0u) << gpu->kernel(k).name;
}

TEST(CudaRuntime, AnotherArchIsRefusedNamingTheFix) {
  TempDir dir;
  testing::compileOrFail(testing::exampleModel(), dir.file("native.so"), target("cuda"));
  LOAD_CUDA_OR_SKIP(native, dir.file("native.so"));
  // sm_90 runs here; a cubin of another major version must be refused.
  testing::compileOrFail(testing::exampleModel(), dir.file("other.so"), target("cuda", "sm_80"));
  try {
    Model other(dir.file("other.so"));
    FAIL() << "an sm_80 artifact loaded on an sm_90 GPU";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), KILN_ERROR_UNSUPPORTED);
    EXPECT_NE(std::string(e.what()).find("compiled for sm_80"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kiln
