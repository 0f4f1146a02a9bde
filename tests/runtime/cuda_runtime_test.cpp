// Running CUDA artifacts on a GPU: outputs against the CPU artifact and the
// ONNX test data, profiling, and the arch check. Every test skips, printing
// why, where there is no usable NVIDIA GPU (CI).
#include <cmath>
#include <cstdlib>
#include <random>

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

void expectOutputsMatch(const std::vector<ir::Tensor>& got, const std::vector<ir::Tensor>& want, tools::Tolerance tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    auto mismatch = tools::compareTensors(got[i], want[i], tol);
    EXPECT_FALSE(mismatch.has_value()) << testing::contractionCases()[i].name << " ("
                                       << testing::contractionCases()[i].what << "): " << *mismatch;
  }
}

// The GEMM path (cuBLASLt, packing and epilogue kernels) in each precision,
// against the fp32 CPU artifact. Tolerances follow the inputs' rounding:
// tf32 and fp16 keep 10 mantissa bits, bf16 7; sums run over <= 200 terms.
TEST(CudaRuntime, ContractionsMatchTheCpuArtifactInEveryPrecision) {
  TempDir dir;
  ASSERT_TRUE(testing::writeContractionModel(dir.file("m.onnx")));
  testing::compileOrFail(dir.file("m.onnx"), dir.file("cpu.so"), target("cpu"));
  Model cpu(dir.file("cpu.so"));
  Session cpu_session(cpu, 1);
  std::vector<ir::Tensor> inputs = randomInputs(cpu, 11);
  auto want = tools::runArtifact(cpu, cpu_session, inputs);
  ASSERT_TRUE(want.isOk()) << want.status().message();
  const std::pair<const char*, tools::Tolerance> modes[] = {
      {"fp32", {1e-4, 1e-5}}, {"tf32", {1e-2, 2e-2}}, {"fp16", {1e-2, 2e-2}}, {"bf16", {4e-2, 1e-1}}};
  for (const auto& [precision, tol] : modes) {
    SCOPED_TRACE(precision);
    driver::CompileOptions options = target("cuda");
    options.codegen.cuda_precision = precision;
    std::string path = dir.file(std::string(precision) + ".so");
    testing::compileOrFail(dir.file("m.onnx"), path, options);
    LOAD_CUDA_OR_SKIP(gpu, path);
    Session session(*gpu);
    auto got = tools::runArtifact(*gpu, session, inputs);
    ASSERT_TRUE(got.isOk()) << got.status().message();
    expectOutputsMatch(*got, *want, tol);
  }
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
    expectOutputsMatch(*replayed, *want, {1e-4, 1e-5});
    expectOutputsMatch(*launched, *replayed, {1e-5, 1e-6});
  }
}

TEST(CudaRuntime, NodeCasesMatchTheirExpectedOutputs) {
  for (const char* name : {"test_relu", "test_conv_with_strides_padding", "test_matmul_2d", "test_softmax_axis_1",
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
