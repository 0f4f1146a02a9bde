// Block-sparse float32 contractions (codegen/cpu/sparse_contraction.h):
// MatMul/Gemm whose constant weight, viewed as [K][N], is mostly all-zero 1x16
// blocks. Each case compiles the model with --sparse-kernels auto (or always)
// and checks
//   - which kernel the threshold picked, from the LLVM IR (the sparse plan's
//     weight arrays are globals named sparse_values_*), so a silent fallback
//     to the dense kernel, or a sparse kernel above the threshold, fails;
//   - the outputs against the reference evaluator and against the same model
//     compiled with --sparse-kernels off (the dense kernel).
// Shapes cover a row tail (M not a multiple of the 16-row tile), N not a
// multiple of 16 (a ragged last block), Gemm with transB, bias and Relu
// fused, a batched MatMul (outer axes), M = 1, weights whose whole k rows are
// zero, an all-zero weight, and densities just under and over the threshold.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "codegen/cpu/sparse_contraction.h"
#include "compiler/kir/evaluator.h"
#include "compiler/onnx/writer.h"
#include "kiln_runtime.hpp"
#include "tests/passes/model_check.h"
#include "tests/testing/artifact_fixture.h"
#include "tools/common/run_artifact.h"

namespace kiln::testing {
namespace {

using codegen::cpu::kSparseBlockLanes;
using codegen::cpu::kSparseDensityThreshold;

enum class Pattern { kBlocks, kZeroKRows, kAllZero };

struct SparseCase {
  std::string name;
  std::vector<int64_t> a_dims;  // [..., M, K]
  int64_t n;
  double density;  // of nonzero 1x16 blocks (kBlocks), of nonzero k rows (kZeroKRows)
  Pattern pattern = Pattern::kBlocks;
  bool gemm = false;  // Gemm, transB, bias, then Relu; else MatMul
  std::string mode = "auto";
  bool expect_sparse = true;
};

std::ostream& operator<<(std::ostream& os, const SparseCase& c) { return os << c.name; }

int64_t depthOf(const SparseCase& c) { return c.a_dims.back(); }

// W as [K][N] with exactly round(density * blocks) nonzero 1x16 blocks (or
// k rows), at seeded random places; a few elements inside kept blocks are
// zero too (a block is nonzero when any of its elements is).
std::vector<float> sparseWeight(const SparseCase& c) {
  const int64_t k = depthOf(c), n = c.n, blocks = (n + kSparseBlockLanes - 1) / kSparseBlockLanes;
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> magnitude(0.25f, 1.0f);
  std::vector<float> w(static_cast<size_t>(k * n), 0.0f);
  if (c.pattern == Pattern::kAllZero) return w;
  const int64_t units = c.pattern == Pattern::kBlocks ? k * blocks : k;
  std::vector<int64_t> order(static_cast<size_t>(units));
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  const auto kept = static_cast<size_t>(std::llround(c.density * static_cast<double>(units)));
  for (size_t i = 0; i < kept; ++i) {
    const int64_t unit = order[i];
    const int64_t row = c.pattern == Pattern::kBlocks ? unit / blocks : unit;
    const int64_t first = c.pattern == Pattern::kBlocks ? unit % blocks * kSparseBlockLanes : 0;
    const int64_t last = c.pattern == Pattern::kBlocks ? std::min(n, first + kSparseBlockLanes) : n;
    for (int64_t col = first; col < last; ++col) {
      float value = (rng() % 2 ? 1.0f : -1.0f) * magnitude(rng);
      if (col != first && rng() % 5 == 0) value = 0.0f;
      w[static_cast<size_t>(row * n + col)] = value;
    }
  }
  return w;
}

std::unique_ptr<ir::Model> sparseModel(const SparseCase& c) {
  TestGraph g;
  ir::Value* a = g.input("a", c.a_dims);
  const int64_t k = depthOf(c);
  std::vector<float> w = sparseWeight(c);
  if (!c.gemm) {
    g.output(g.op("MatMul", {a, g.constant("w", {k, c.n}, w)}, "y"));
    return g.take();
  }
  std::vector<float> wt(w.size());  // transB: stored [N][K]
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < c.n; ++j) wt[static_cast<size_t>(j * k + i)] = w[static_cast<size_t>(i * c.n + j)];
  ir::Node* gemm = g.node("Gemm", {a, g.constant("w", {c.n, k}, wt), g.randomConstant("bias", {c.n})}, "z");
  setInt(gemm, "transB", 1);
  g.output(g.op("Relu", {gemm->outputs[0]}, "y"));
  return g.take();
}

driver::CompileOptions options(const std::string& mode, driver::Stage emit = driver::Stage::kArtifact) {
  driver::CompileOptions o;
  o.codegen.sparse_kernels = mode;
  o.emit = emit;
  return o;
}

std::string fileText(const std::string& path) {
  std::vector<char> bytes = readBytes(path);
  return std::string(bytes.begin(), bytes.end());
}

Expected<std::vector<ir::Tensor>> runFile(const std::string& path, const ir::Tensor& input) {
  kiln::Model artifact(path);
  kiln::Session session(artifact, 2);
  return tools::runArtifact(artifact, session, {input});
}

class SparseContraction : public ::testing::TestWithParam<SparseCase> {};

TEST_P(SparseContraction, PicksKernelAndMatchesDense) {
  const SparseCase& c = GetParam();
  TempDir tmp;
  ASSERT_TRUE(frontend::writeOnnxFile(*sparseModel(c), tmp.file("m.onnx")).isOk());
  compileOrFail(tmp.file("m.onnx"), tmp.file("m.ll"), options(c.mode, driver::Stage::kLlvm));
  // The dense kernel reads packed panels (@panels_*). The sparse one reads
  // @sparse_values_*, except for an all-zero weight, whose empty block lists
  // LLVM folds away with the arrays.
  const std::string ir = fileText(tmp.file("m.ll"));
  const bool dense_panels = ir.find("@panels_") != std::string::npos;
  const bool sparse_values = ir.find("@sparse_values_") != std::string::npos;
  EXPECT_EQ(!dense_panels, c.expect_sparse) << "--sparse-kernels " << c.mode << " at density " << c.density
                                            << " (threshold " << kSparseDensityThreshold << ")";
  if (c.pattern != Pattern::kAllZero) {
    EXPECT_EQ(sparse_values, c.expect_sparse);
  }

  auto program = compileProgram([&] { return sparseModel(c); }, {});
  ASSERT_TRUE(program.isOk()) << program.status().message();
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> dist(-1, 1);
  std::vector<float> a(static_cast<size_t>(std::accumulate(c.a_dims.begin(), c.a_dims.end(), int64_t{1},
                                                           std::multiplies<>())));
  for (float& f : a) f = dist(rng);
  ir::Tensor input = ir::Tensor::fromValues<float>(ir::DType::kFloat32, c.a_dims, a);
  auto want = lower::evaluateProgram(*program, std::vector<ir::Tensor>{input});
  ASSERT_TRUE(want.isOk()) << want.status().message();

  compileOrFail(tmp.file("m.onnx"), tmp.file("sparse.so"), options(c.mode));
  compileOrFail(tmp.file("m.onnx"), tmp.file("dense.so"), options("off"));
  auto got = runFile(tmp.file("sparse.so"), input);
  ASSERT_TRUE(got.isOk()) << got.status().message();
  auto dense = runFile(tmp.file("dense.so"), input);
  ASSERT_TRUE(dense.isOk()) << dense.status().message();
  auto diff = tools::compareTensors((*got)[0], (*want)[0], {1e-4, 1e-5});
  EXPECT_FALSE(diff.has_value()) << "against the reference: " << *diff;
  diff = tools::compareTensors((*got)[0], (*dense)[0], {1e-5, 1e-6});
  EXPECT_FALSE(diff.has_value()) << "against the dense kernel: " << *diff;
  if (c.pattern == Pattern::kAllZero && !c.gemm) {
    const auto* y = reinterpret_cast<const float*>((*got)[0].bytes().data());
    for (int64_t i = 0; i < (*got)[0].elementCount(); ++i) ASSERT_EQ(y[i], 0.0f) << "y[" << i << "]";
  }
}

// Densities a step of 1/64 blocks around the threshold (K 64, N 64: 256 blocks).
const double kUnder = kSparseDensityThreshold - 0.02;
const double kOver = kSparseDensityThreshold + 0.02;

INSTANTIATE_TEST_SUITE_P(
    Shapes, SparseContraction,
    ::testing::Values(SparseCase{"matmul_row_tail", {37, 64}, 96, 0.2},
                      SparseCase{"matmul_ragged_n", {20, 48}, 70, 0.2},
                      SparseCase{"gemm_transb_bias_relu", {19, 80}, 70, 0.15, Pattern::kBlocks, true},
                      SparseCase{"matmul_batched", {2, 9, 32}, 48, 0.25},
                      SparseCase{"matmul_one_row", {1, 128}, 64, 0.1},
                      // Activations past kSparseActivationL2Bytes: row tiles
                      // outermost; 12 KB rows: 8-row tiles (a 5-row tail).
                      SparseCase{"rows_outer_row_tail", {45, 3072}, 40, 0.2},
                      SparseCase{"rows_outer_batched", {2, 48, 3072}, 32, 0.2},
                      SparseCase{"zero_k_rows", {24, 96}, 64, 0.3, Pattern::kZeroKRows},
                      SparseCase{"all_zero", {17, 40}, 50, 0.0, Pattern::kAllZero},
                      SparseCase{"all_zero_gemm", {17, 40}, 50, 0.0, Pattern::kAllZero, true},
                      SparseCase{"just_under_threshold", {32, 64}, 64, kUnder},
                      SparseCase{"just_over_threshold", {32, 64}, 64, kOver, Pattern::kBlocks, false, "auto", false},
                      SparseCase{"dense_forced_sparse", {16, 64}, 40, 1.0, Pattern::kBlocks, false, "always", true},
                      SparseCase{"sparse_kernels_off", {16, 64}, 64, 0.1, Pattern::kBlocks, false, "off", false}),
    [](const ::testing::TestParamInfo<SparseCase>& info) { return info.param.name; });

TEST(SparseContractionOptions, UnknownModeIsRefused) {
  SparseCase c{"refused", {4, 16}, 16, 0.5};
  TempDir tmp;
  ASSERT_TRUE(frontend::writeOnnxFile(*sparseModel(c), tmp.file("m.onnx")).isOk());
  std::ostringstream log;
  auto summary = driver::compileFile(tmp.file("m.onnx"), tmp.file("m.so"), options("sometimes"), log);
  ASSERT_FALSE(summary.isOk());
  EXPECT_NE(summary.status().message().find("--sparse-kernels 'sometimes'"), std::string::npos)
      << summary.status().message();
}

// A non-default mode is one of the options that shaped the code.
TEST(SparseContractionOptions, ModeIsRecorded) {
  SparseCase c{"recorded", {4, 16}, 16, 0.5};
  TempDir tmp;
  ASSERT_TRUE(frontend::writeOnnxFile(*sparseModel(c), tmp.file("m.onnx")).isOk());
  compileOrFail(tmp.file("m.onnx"), tmp.file("m.so"), options("always"));
  kiln::Model artifact(tmp.file("m.so"));
  EXPECT_NE(artifact.metadata("options").find("sparse_kernels=always"), std::string::npos)
      << artifact.metadata("options");
}

}  // namespace
}  // namespace kiln::testing
