// float32 MatMul/Gemm under --precision bf16 (codegen/cpu/contraction.h, dot
// group 2: AVX512-BF16 vdpbf16ps) against the exact float32 reference.
//
// Tolerance, derived from bfloat16's 8-bit significand: rounding to nearest
// even changes a value by at most a relative u = 2^-9, so a product of two
// rounded values is off by at most (1 + u)^2 - 1 < 2^-8 + 2^-18 of |a*b|; the
// float32 accumulation of K terms adds at most about K * 2^-24 of sum |a*b|.
// Each output element must lie within
//   (2^-8 + 2^-18 + K * 2^-23) * sum_k |a_k * b_k| + 1e-6
// of the reference. Shapes cover ragged K (odd, and not a multiple of the
// 32-value conversion chunk), a partial vector block, a row tail and a
// product stored through a fused head-split Reshape; the IR
// must show the bf16 instructions (so a silent fallback to float32 fails);
// the artifact records precision=bf16 and needs avx512bf16; a target without
// the feature is refused at compile time with the feature named.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "compiler/kir/evaluator.h"
#include "compiler/onnx/writer.h"
#include "cpu_features.h"
#include "kiln_runtime.hpp"
#include "tests/passes/model_check.h"
#include "tests/testing/artifact_fixture.h"
#include "tools/common/run_artifact.h"

namespace kiln::testing {
namespace {

struct Bf16Case {
  std::string name;
  int64_t m, k, n;
  bool gemm = false;  // Gemm with transB and a bias, else MatMul
  int64_t heads = 0;  // MatMul only, > 0: y reshaped to [m, heads, n / heads] (a fused head split)
};

std::ostream& operator<<(std::ostream& os, const Bf16Case& c) { return os << c.name; }

std::vector<float> randomFloats(int64_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-2, 2);
  std::vector<float> v(static_cast<size_t>(count));
  for (float& f : v) f = dist(rng);
  return v;
}

// B as the contraction reads it: [K][N] (MatMul) or [N][K] (Gemm, transB).
std::unique_ptr<ir::Model> bf16Model(const Bf16Case& c) {
  TestGraph g;
  ir::Value* a = g.input("a", {c.m, c.k});
  std::vector<int64_t> b_dims = c.gemm ? std::vector<int64_t>{c.n, c.k} : std::vector<int64_t>{c.k, c.n};
  ir::Value* b = g.constant("b", b_dims, randomFloats(c.k * c.n, 3));
  if (!c.gemm) {
    ir::Value* y = g.op("MatMul", {a, b}, c.heads > 0 ? "product" : "y");
    if (c.heads > 0) y = g.op("Reshape", {y, g.int64s("heads", {c.m, c.heads, c.n / c.heads})}, "y");
    g.output(y);
    return g.take();
  }
  ir::Value* bias = g.constant("bias", {c.n}, randomFloats(c.n, 4));
  ir::Node* gemm = g.node("Gemm", {a, b, bias}, "y");
  setInt(gemm, "transB", 1);
  g.output(gemm->outputs[0]);
  return g.take();
}

bool hostHasBf16() { return kiln::cpu::hostHas("avx512bf16"); }

driver::CompileOptions bf16Options(driver::Stage emit = driver::Stage::kArtifact) {
  driver::CompileOptions options;
  options.codegen.precision = "bf16";
  options.emit = emit;
  return options;
}

std::string irText(const std::string& path) {
  std::vector<char> bytes = readBytes(path);
  return std::string(bytes.begin(), bytes.end());
}

class Bf16Contraction : public ::testing::TestWithParam<Bf16Case> {};

TEST_P(Bf16Contraction, WithinBf16Tolerance) {
  const Bf16Case& c = GetParam();
  if (!hostHasBf16()) GTEST_SKIP() << "this CPU lacks AVX512-BF16, which --precision bf16 needs";
  TempDir tmp;
  ASSERT_TRUE(frontend::writeOnnxFile(*bf16Model(c), tmp.file("m.onnx")).isOk());
  compileOrFail(tmp.file("m.onnx"), tmp.file("m.ll"), bf16Options(driver::Stage::kLlvm));
  EXPECT_NE(irText(tmp.file("m.ll")).find("dpbf16ps"), std::string::npos) << "the bf16 plan did not apply";
  EXPECT_NE(irText(tmp.file("m.ll")).find("cvtne2ps2bf16"), std::string::npos);

  auto program = compileProgram([&] { return bf16Model(c); }, {});
  ASSERT_TRUE(program.isOk()) << program.status().message();
  std::vector<float> a = randomFloats(c.m * c.k, 9);
  ir::Tensor input = ir::Tensor::fromValues<float>(ir::DType::kFloat32, {c.m, c.k}, a);
  auto want = lower::evaluateProgram(*program, std::vector<ir::Tensor>{input});
  ASSERT_TRUE(want.isOk()) << want.status().message();

  compileOrFail(tmp.file("m.onnx"), tmp.file("m.so"), bf16Options());
  kiln::Model artifact(tmp.file("m.so"));
  EXPECT_NE(artifact.metadata("options").find("precision=bf16"), std::string::npos) << artifact.metadata("options");
  EXPECT_NE(artifact.metadata("cpu_features").find("avx512bf16"), std::string::npos);
  kiln::Session session(artifact, 2);
  auto got = tools::runArtifact(artifact, session, {input});
  ASSERT_TRUE(got.isOk()) << got.status().message();
  const auto* y = reinterpret_cast<const float*>((*got)[0].bytes().data());
  const auto* ref = reinterpret_cast<const float*>((*want)[0].bytes().data());
  std::vector<float> b = randomFloats(c.k * c.n, 3);
  const double relative = std::ldexp(1.0, -8) + std::ldexp(1.0, -18) + static_cast<double>(c.k) * std::ldexp(1.0, -23);
  int64_t inexact = 0;
  for (int64_t i = 0; i < c.m; ++i)
    for (int64_t j = 0; j < c.n; ++j) {
      double magnitude = 0;
      for (int64_t k = 0; k < c.k; ++k) {
        float w = c.gemm ? b[static_cast<size_t>(j * c.k + k)] : b[static_cast<size_t>(k * c.n + j)];
        magnitude += std::fabs(static_cast<double>(a[static_cast<size_t>(i * c.k + k)]) * w);
      }
      size_t at = static_cast<size_t>(i * c.n + j);
      double error = std::fabs(static_cast<double>(y[at]) - ref[at]);
      ASSERT_LE(error, relative * magnitude + 1e-6) << "y[" << i << "," << j << "] = " << y[at] << ", reference "
                                                   << ref[at];
      inexact += error > 0;
    }
  // Random float32 operands are almost never bf16 values: some error must show.
  EXPECT_GT(inexact, 0) << "no rounding visible: were the operands really rounded to bf16?";
}

INSTANTIATE_TEST_SUITE_P(Shapes, Bf16Contraction,
                         ::testing::Values(Bf16Case{"matmul_aligned", 16, 64, 64},
                                           Bf16Case{"matmul_ragged", 13, 37, 70},
                                           Bf16Case{"matmul_short_k", 7, 3, 40},
                                           Bf16Case{"gemm_bias_transb", 9, 101, 48, true},
                                           // Two output axes merged into one packed vector index.
                                           Bf16Case{"matmul_head_split", 13, 37, 96, false, 3}),
                         [](const ::testing::TestParamInfo<Bf16Case>& info) { return info.param.name; });

TEST(Bf16ContractionTarget, Fp32PrecisionKeepsFloat32Arithmetic) {
  Bf16Case c{"fp32", 13, 37, 70};
  TempDir tmp;
  ASSERT_TRUE(frontend::writeOnnxFile(*bf16Model(c), tmp.file("m.onnx")).isOk());
  driver::CompileOptions options;
  options.emit = driver::Stage::kLlvm;
  compileOrFail(tmp.file("m.onnx"), tmp.file("m.ll"), options);
  EXPECT_EQ(irText(tmp.file("m.ll")).find("dpbf16ps"), std::string::npos);
}

// A target without AVX512-BF16 cannot honour --precision bf16: a clear
// error naming the feature, not a silent float32 artifact.
TEST(Bf16ContractionTarget, TargetWithoutBf16IsRefused) {
  Bf16Case c{"refused", 4, 8, 16};
  TempDir tmp;
  ASSERT_TRUE(frontend::writeOnnxFile(*bf16Model(c), tmp.file("m.onnx")).isOk());
  driver::CompileOptions options = bf16Options();
  options.codegen.features = "-avx512bf16";
  std::ostringstream log;
  auto summary = driver::compileFile(tmp.file("m.onnx"), tmp.file("m.so"), options, log);
  ASSERT_FALSE(summary.isOk());
  EXPECT_NE(summary.status().message().find("--precision bf16 needs the avx512bf16 CPU feature"), std::string::npos)
      << summary.status().message();
}

}  // namespace
}  // namespace kiln::testing
