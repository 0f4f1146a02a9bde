// float32 MatMul/Gemm under --precision bf16 (codegen/cpu/contraction.h, dot
// group 2) against the exact float32 reference, on both instruction sets:
// AVX512-BF16 (vdpbf16ps; the host with AMX turned off) and AMX-BF16 tiles
// (tdpbf16ps; compiled for sapphirerapids, run only on a CPU with AMX-BF16,
// elsewhere IR-checked, built, its load refused naming AMX, and the run
// skipped saying so).
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
// channels-last convolutions (padded, strided, unpadded, pointwise) meet
// the same bound with K = C * kernel^2; the artifact records precision=bf16 and needs avx512bf16; a target without
// the feature is refused at compile time with the feature named.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
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

// AVX512-BF16 compiles for the host with AMX turned off; AMX for
// sapphirerapids, whose artifact runs only where the CPU has AMX-BF16.
enum class Isa { kAvx512, kAmx };

driver::CompileOptions bf16Options(driver::Stage emit = driver::Stage::kArtifact, Isa isa = Isa::kAvx512) {
  driver::CompileOptions options;
  options.codegen.precision = "bf16";
  options.emit = emit;
  if (isa == Isa::kAmx)
    options.codegen.cpu = "sapphirerapids";
  else
    options.codegen.features = "-amx-bf16";
  return options;
}

bool hostRuns(Isa isa) {
  return hostHasBf16() && (isa == Isa::kAvx512 || (kiln::cpu::hostHas("amx-tile") && kiln::cpu::hostHas("amx-bf16") &&
                                                   kiln::cpu::enableAmx()));
}

std::string cannotRun(Isa isa) {
  return isa == Isa::kAmx ? "this CPU lacks AMX-BF16 (or Linux refused the tile state): checked the IR and built only"
                          : "this CPU lacks AVX512-BF16, which --precision bf16 needs";
}

// AMX takes a bf16 plan with at least 4 output rows and a multiple of 32
// k along the innermost reduction variable (contraction.cpp, useAmxBf16).
bool amxApplies(Isa isa, int64_t rows, int64_t depth) { return isa == Isa::kAmx && rows >= 4 && depth % 32 == 0; }

std::string irText(const std::string& path) {
  std::vector<char> bytes = readBytes(path);
  return std::string(bytes.begin(), bytes.end());
}

// Compiles m.onnx in `tmp` to LLVM IR and checks the bf16 plan applied, on
// tiles exactly when `tiles`; then builds the artifact. False when this CPU
// cannot run it.
bool compileChecked(TempDir& tmp, Isa isa, bool tiles) {
  if (isa == Isa::kAvx512 && !hostHasBf16()) return false;  // compiled for the host
  compileOrFail(tmp.file("m.onnx"), tmp.file("m.ll"), bf16Options(driver::Stage::kLlvm, isa));
  const std::string ir_text = irText(tmp.file("m.ll"));
  EXPECT_NE(ir_text.find("dpbf16ps"), std::string::npos) << "the bf16 plan did not apply";
  EXPECT_NE(ir_text.find("cvtne2ps2bf16"), std::string::npos);
  EXPECT_EQ(ir_text.find("tdpbf16ps") != std::string::npos, tiles)
      << (tiles ? "the bf16 plan did not run on AMX tiles" : "AMX tiles where the plan must not use them");
  compileOrFail(tmp.file("m.onnx"), tmp.file("m.so"), bf16Options(driver::Stage::kArtifact, isa));
  if (hostRuns(isa)) return true;
  if (isa == Isa::kAmx) expectAmxRefused(tmp.file("m.so"));
  return false;
}

template <typename Case>
std::string caseName(const ::testing::TestParamInfo<std::tuple<Case, Isa>>& info) {
  return std::get<0>(info.param).name + (std::get<1>(info.param) == Isa::kAmx ? "_amx" : "_avx512");
}

class Bf16Contraction : public ::testing::TestWithParam<std::tuple<Bf16Case, Isa>> {};

TEST_P(Bf16Contraction, WithinBf16Tolerance) {
  // Not a structured binding: clang 14 (the sanitizer builds) cannot capture one in a lambda.
  const Bf16Case& c = std::get<0>(GetParam());
  const Isa isa = std::get<1>(GetParam());
  TempDir tmp;
  ASSERT_TRUE(frontend::writeOnnxFile(*bf16Model(c), tmp.file("m.onnx")).isOk());
  if (!compileChecked(tmp, isa, amxApplies(isa, c.m, c.k))) GTEST_SKIP() << cannotRun(isa);

  auto program = compileProgram([&] { return bf16Model(c); }, {});
  ASSERT_TRUE(program.isOk()) << program.status().message();
  std::vector<float> a = randomFloats(c.m * c.k, 9);
  ir::Tensor input = ir::Tensor::fromValues<float>(ir::DType::kFloat32, {c.m, c.k}, a);
  auto want = lower::evaluateProgram(*program, std::vector<ir::Tensor>{input});
  ASSERT_TRUE(want.isOk()) << want.status().message();

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
                         ::testing::Combine(::testing::Values(Bf16Case{"matmul_aligned", 16, 64, 64},
                                                              Bf16Case{"matmul_ragged", 13, 37, 70},
                                                              Bf16Case{"matmul_short_k", 7, 17, 40},
                                                              Bf16Case{"gemm_bias_transb", 9, 101, 48, true},
                                                              // Two output axes merged into one packed vector index.
                                                              Bf16Case{"matmul_head_split", 13, 37, 96, false, 3},
                                                              // AMX: 70 rows (three tiles of 24, 24, 22), 5 steps of 32
                                                              // k, a partial block; and a head split on tiles.
                                                              Bf16Case{"tiles_ragged_rows", 70, 160, 70},
                                                              Bf16Case{"tiles_head_split", 37, 64, 96, false, 3},
                                                              Bf16Case{"tiles_gemm", 33, 96, 40, true},
                                                              // 80 KiB of bf16 panels: in the weights blob.
                                                              Bf16Case{"blob_panels", 16, 256, 160}),
                                            ::testing::Values(Isa::kAvx512, Isa::kAmx)),
                         caseName<Bf16Case>);

struct Bf16ConvCase {
  std::string name;
  int64_t channels, filters, size, kernel, stride, pad;
};

std::ostream& operator<<(std::ostream& os, const Bf16ConvCase& c) { return os << c.name; }

// Conv (no bias) of x[1, C, size, size], channels-last under the -O
// pipeline; with `magnitudes` the weight is |W|, so the model run on |x|
// gives sum_k |x_k * w_k| per output, the scale of the error bound.
std::unique_ptr<ir::Model> bf16ConvModel(const Bf16ConvCase& c, bool magnitudes) {
  TestGraph g;
  ir::Value* x = g.input("x", {1, c.channels, c.size, c.size});
  std::vector<float> w = randomFloats(c.filters * c.channels * c.kernel * c.kernel, 5);
  if (magnitudes)
    for (float& v : w) v = std::fabs(v);
  ir::Node* conv = g.node("Conv", {x, g.constant("w", {c.filters, c.channels, c.kernel, c.kernel}, w)}, "y");
  setInts(conv, "strides", {c.stride, c.stride});
  setInts(conv, "pads", {c.pad, c.pad, c.pad, c.pad});
  g.output(conv->outputs[0]);
  return g.take();
}

class Bf16Conv : public ::testing::TestWithParam<std::tuple<Bf16ConvCase, Isa>> {};

// Channels-last convolutions take the bf16 dot product too, the kernel
// offsets looping outside the channel pairs (with the padding guard hoisted
// per offset): within the same bound, K = C * kernel^2.
TEST_P(Bf16Conv, WithinBf16Tolerance) {
  // Not a structured binding: clang 14 (the sanitizer builds) cannot capture one in a lambda.
  const Bf16ConvCase& c = std::get<0>(GetParam());
  const Isa isa = std::get<1>(GetParam());
  TempDir tmp;
  ASSERT_TRUE(frontend::writeOnnxFile(*bf16ConvModel(c, false), tmp.file("m.onnx")).isOk());
  // Rows run along the output's width, k along the channels.
  const int64_t width = (c.size + 2 * c.pad - c.kernel) / c.stride + 1;
  if (!compileChecked(tmp, isa, amxApplies(isa, width, c.channels))) GTEST_SKIP() << cannotRun(isa);

  const std::vector<int64_t> dims = {1, c.channels, c.size, c.size};
  std::vector<float> x = randomFloats(c.channels * c.size * c.size, 9), x_abs = x;
  for (float& v : x_abs) v = std::fabs(v);
  auto reference = compileProgram([&] { return bf16ConvModel(c, false); }, {});
  auto magnitude = compileProgram([&] { return bf16ConvModel(c, true); }, {});
  ASSERT_TRUE(reference.isOk() && magnitude.isOk());
  auto want = lower::evaluateProgram(*reference, std::vector<ir::Tensor>{ir::Tensor::fromValues<float>(ir::DType::kFloat32, dims, x)});
  auto scale = lower::evaluateProgram(*magnitude, std::vector<ir::Tensor>{ir::Tensor::fromValues<float>(ir::DType::kFloat32, dims, x_abs)});
  ASSERT_TRUE(want.isOk() && scale.isOk());

  kiln::Model artifact(tmp.file("m.so"));
  kiln::Session session(artifact, 2);
  auto got = tools::runArtifact(artifact, session, {ir::Tensor::fromValues<float>(ir::DType::kFloat32, dims, x)});
  ASSERT_TRUE(got.isOk()) << got.status().message();
  const int64_t k = c.channels * c.kernel * c.kernel;
  const double relative = std::ldexp(1.0, -8) + std::ldexp(1.0, -18) + static_cast<double>(k) * std::ldexp(1.0, -23);
  const auto* y = reinterpret_cast<const float*>((*got)[0].bytes().data());
  const auto* ref = reinterpret_cast<const float*>((*want)[0].bytes().data());
  const auto* mag = reinterpret_cast<const float*>((*scale)[0].bytes().data());
  int64_t inexact = 0;
  for (int64_t i = 0; i < (*want)[0].elementCount(); ++i) {
    double error = std::fabs(static_cast<double>(y[i]) - ref[i]);
    ASSERT_LE(error, relative * mag[i] + 1e-6) << "y[" << i << "] = " << y[i] << ", reference " << ref[i];
    inexact += error > 0;
  }
  EXPECT_GT(inexact, 0) << "no rounding visible: were the operands really rounded to bf16?";
}

// C 20: a partial 32-value chunk and an odd pair count per offset; C 40: a
// full chunk and a partial one; padding on every side, stride 2, 1x1; a
// 7x7 stem over 3 channels, reduced over whole window rows.
// AMX: C 64 with padding on every side (zeros where the hoisted guard
// fails, converted with the rows), and C 32 at stride 2.
INSTANTIATE_TEST_SUITE_P(Shapes, Bf16Conv,
                         ::testing::Combine(::testing::Values(Bf16ConvCase{"k3_pad1", 20, 40, 9, 3, 1, 1},
                                                              Bf16ConvCase{"k3_stride2", 40, 24, 11, 3, 2, 1},
                                                              Bf16ConvCase{"k5_unpadded", 17, 32, 9, 5, 1, 0},
                                                              Bf16ConvCase{"pointwise", 48, 32, 6, 1, 1, 0},
                                                              Bf16ConvCase{"tiles_k3_pad1", 64, 40, 10, 3, 1, 1},
                                                              Bf16ConvCase{"tiles_stride2", 32, 24, 13, 3, 2, 1},
                                                              // A 7x7 RGB stem: its input padded explicitly, 21
                                                              // contiguous values (kw and c) per kernel row.
                                                              Bf16ConvCase{"stem_k7", 3, 32, 15, 7, 2, 3}),
                                            ::testing::Values(Isa::kAvx512, Isa::kAmx)),
                         caseName<Bf16ConvCase>);

// Under --precision bf16, a contraction whose innermost reduction runs
// fewer than 16 values (a 3x3 RGB stem convolution: 9 values, 3 channels
// of each of 3 kernel columns, per kernel row; a MatMul with K = 3) keeps
// its float32 plan, exact: its bf16 plan converted a 32-value chunk per few
// products (contraction.cpp, kMinBf16DotDepth).
TEST(Bf16ContractionTarget, ShortInnermostReductionsKeepFloat32) {
  if (!hostHasBf16()) GTEST_SKIP() << cannotRun(Isa::kAvx512);
  auto stem = [] { return bf16ConvModel({"stem", 3, 32, 15, 3, 2, 1}, false); };
  auto short_k = [] { return bf16Model({"short_k", 7, 3, 40}); };
  for (const auto& make : std::vector<std::function<std::unique_ptr<ir::Model>()>>{stem, short_k}) {
    TempDir tmp;
    std::unique_ptr<ir::Model> model = make();
    ASSERT_TRUE(frontend::writeOnnxFile(*model, tmp.file("m.onnx")).isOk());
    compileOrFail(tmp.file("m.onnx"), tmp.file("m.ll"), bf16Options(driver::Stage::kLlvm));
    EXPECT_EQ(irText(tmp.file("m.ll")).find("dpbf16ps"), std::string::npos) << model->graph.nodes()[0]->op_type;
    compileOrFail(tmp.file("m.onnx"), tmp.file("m.so"), bf16Options());
    const ir::Value* input = model->graph.inputs[0];
    std::vector<int64_t> dims = ir::knownDims(*input->type.shape).value();
    int64_t count = 1;
    for (int64_t d : dims) count *= d;
    ir::Tensor x = ir::Tensor::fromValues<float>(ir::DType::kFloat32, dims, randomFloats(count, 11));
    auto reference = compileProgram(make, {});
    ASSERT_TRUE(reference.isOk());
    auto want = lower::evaluateProgram(*reference, std::vector<ir::Tensor>{x});
    ASSERT_TRUE(want.isOk());
    kiln::Model artifact(tmp.file("m.so"));
    kiln::Session session(artifact, 2);
    auto got = tools::runArtifact(artifact, session, {x});
    ASSERT_TRUE(got.isOk()) << got.status().message();
    // float32 products summed in another order: far inside bf16's 2^-8.
    auto diff = tools::compareTensors((*got)[0], (*want)[0], {1e-4, 1e-4});
    EXPECT_FALSE(diff.has_value()) << *diff;
  }
}

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
