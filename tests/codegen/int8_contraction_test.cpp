// Integer matrix products through the CPU's int8 dot-product microkernel
// (codegen/cpu/contraction.h, dot group 4) against the reference evaluator,
// exactly, on both of its instruction sets: AVX512-VNNI (vpdpbusd) and AMX
// tiles (tdpbusd, tdpbssd; compiled for sapphirerapids). Cases cover ragged
// K (not a multiple of 4, or of a tile's 64 bytes), ragged N (a partial
// vector block), row tails, uint8 and int8 activations (for VNNI through
// the +128 offset), zero and nonzero zero points on either side, and
// requantized QLinearMatMul outputs. Each case also checks which path the
// code took, from the LLVM IR: the instruction set's dot product where the
// plan applies, the generic loops where it must not (uint8 weights of 128
// and above, a target without VNNI), so a silent fallback fails. AMX
// artifacts run only on a CPU with AMX-INT8; elsewhere their IR is checked,
// they are built, their load must be refused naming AMX, and the run is
// skipped, saying so. QLinearConv runs channels-last
// (kiln.QLinearConvNhwc) through the same microkernel with the kernel
// offsets as outer reduction variables; it is checked against the NCHW
// QLinearConv lowering (channels-last disabled), exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "compiler/kir/evaluator.h"
#include "compiler/onnx/writer.h"
#include "cpu_features.h"
#include "tests/passes/model_check.h"
#include "tests/testing/artifact_fixture.h"
#include "tools/common/run_artifact.h"

namespace kiln::testing {
namespace {

using ir::DType;

struct Int8Case {
  std::string name;
  std::string op;  // MatMulInteger or QLinearMatMul
  int64_t m, k, n;
  DType a_type, b_type;
  int a_zero_point = 0, b_zero_point = 0;  // 0: the zero-point input is absent
  int b_max = 127;                         // largest weight value drawn
  bool vnni = true;                        // whether the int8 plan must apply
  int64_t heads = 0;  // > 0: the result reshaped to [m, heads, n / heads] (a fused head split)
};

std::ostream& operator<<(std::ostream& os, const Int8Case& c) { return os << c.name; }

ir::Tensor randomBytes(DType dtype, std::vector<int64_t> dims, int lo, int hi, uint32_t seed) {
  int64_t count = 1;
  for (int64_t d : dims) count *= d;
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(lo, hi);
  std::vector<std::byte> bytes(static_cast<size_t>(count));
  for (std::byte& b : bytes) b = static_cast<std::byte>(static_cast<uint8_t>(dist(rng)));
  return ir::Tensor::fromBytes(dtype, std::move(dims), std::move(bytes));
}

ir::Value* tensorConstant(TestGraph& g, const std::string& name, ir::Tensor value) {
  ir::Value* v = g.model().graph.addValue(name);
  v->constant = std::move(value);
  v->type = v->constant->type();
  return v;
}

ir::Value* byteScalar(TestGraph& g, const std::string& name, DType dtype, int value) {
  return tensorConstant(g, name, ir::Tensor::fromBytes(dtype, {}, {static_cast<std::byte>(static_cast<uint8_t>(value))}));
}

int lowest(DType dtype) { return dtype == DType::kInt8 ? -128 : 0; }
int highest(DType dtype) { return dtype == DType::kInt8 ? 127 : 255; }

std::unique_ptr<ir::Model> int8Model(const Int8Case& c) {
  TestGraph g(13);
  ir::Value* a = g.input("a", {c.m, c.k}, c.a_type);
  ir::Value* b = tensorConstant(g, "b", randomBytes(c.b_type, {c.k, c.n}, lowest(c.b_type), c.b_max, 11));
  ir::Value* a_zp = byteScalar(g, "a_zp", c.a_type, c.a_zero_point);
  ir::Value* b_zp = byteScalar(g, "b_zp", c.b_type, c.b_zero_point);
  if (c.op == "MatMulInteger") {
    std::vector<ir::Value*> inputs = {a, b};
    if (c.a_zero_point != 0 || c.b_zero_point != 0) inputs.push_back(a_zp);
    if (c.b_zero_point != 0) inputs.push_back(b_zp);
    ir::Value* y = g.op("MatMulInteger", inputs, c.heads > 0 ? "product" : "y");
    if (c.heads > 0) y = g.op("Reshape", {y, g.int64s("heads", {c.m, c.heads, c.n / c.heads})}, "y");
    g.output(y);
    return g.take();
  }
  ir::Value* a_scale = g.constant("a_scale", {}, {0.02f});
  ir::Value* b_scale = g.constant("b_scale", {}, {0.01f});
  ir::Value* y_scale = g.constant("y_scale", {}, {0.5f});
  ir::Value* y_zp = byteScalar(g, "y_zp", DType::kUInt8, 100);
  g.output(g.op("QLinearMatMul", {a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp}, "y"));
  return g.take();
}

bool hostHasVnni() { return kiln::cpu::hostHas("avx512vnni") && kiln::cpu::hostHas("avx512bw"); }

// The int8 plan's two instruction sets. VNNI compiles for the host with AMX
// turned off; AMX compiles for sapphirerapids, whose artifact runs only
// where the CPU has AMX-INT8 (and Linux grants the tile state).
enum class Isa { kVnni, kAmx };

std::string isaName(Isa isa) { return isa == Isa::kAmx ? "amx" : "vnni"; }

bool hostRuns(Isa isa) {
  if (!hostHasVnni()) return false;
  return isa == Isa::kVnni ||
         (kiln::cpu::hostHas("amx-tile") && kiln::cpu::hostHas("amx-int8") && kiln::cpu::enableAmx());
}

driver::CompileOptions isaOptions(Isa isa) {
  driver::CompileOptions options;
  if (isa == Isa::kAmx)
    options.codegen.cpu = "sapphirerapids";
  else
    options.codegen.features = "-amx-int8";
  return options;
}

// Which dot product the IR must hold: `plan` (the int8 plan applies) and
// `tiles` (it runs on AMX tiles; only with Isa::kAmx) as the test expects.
void expectDotProducts(const std::string& ir_text, bool plan, bool tiles) {
  const bool vpdpbusd = ir_text.find("vpdpbusd") != std::string::npos;
  const bool tdp = ir_text.find("llvm.x86.tdpb") != std::string::npos;
  EXPECT_EQ(tdp, tiles) << (tiles ? "the int8 plan did not run on AMX tiles"
                                  : "AMX tiles where the plan must not use them");
  EXPECT_EQ(vpdpbusd || tdp, plan) << (plan ? "the int8 plan did not apply"
                                            : "the int8 plan applied where it must not");
}

// The model's output on `input` from the reference evaluator (its program
// compiled with `reference`) and from the artifact (compiled for `isa`; 2
// threads), same dtype and dims. The artifact's LLVM IR must hold the dot
// products expectDotProducts asks for, so a silent fallback fails. Returns
// nullopt, after the IR checks, where this CPU cannot run the artifact.
struct Outputs {
  ir::Tensor got, want;
};
Expected<std::optional<Outputs>> referenceAndArtifact(const ModelFactory& make, const driver::CompileOptions& reference,
                                                      const ir::Tensor& input, Isa isa, bool plan, bool tiles) {
  // Compiled for the host, whose VNNI the IR check needs.
  if (isa == Isa::kVnni && !hostHasVnni()) return std::optional<Outputs>();
  TempDir tmp;
  KILN_RETURN_IF_ERROR(frontend::writeOnnxFile(*make(), tmp.file("m.onnx")));
  driver::CompileOptions options = isaOptions(isa);
  driver::CompileOptions llvm_ir = options;
  llvm_ir.emit = driver::Stage::kLlvm;
  compileOrFail(tmp.file("m.onnx"), tmp.file("m.ll"), llvm_ir);
  std::vector<char> ir_text = readBytes(tmp.file("m.ll"));
  expectDotProducts(std::string(ir_text.begin(), ir_text.end()), plan, tiles);
  // Built on every machine: LLVM's backend (tile configuration and
  // register allocation) runs even where the artifact cannot.
  compileOrFail(tmp.file("m.onnx"), tmp.file("m.so"), options);
  if (!hostRuns(isa)) {
    if (isa == Isa::kAmx) expectAmxRefused(tmp.file("m.so"));
    return std::optional<Outputs>();
  }
  KILN_ASSIGN_OR_RETURN(lower::Program program, compileProgram(make, reference));
  KILN_ASSIGN_OR_RETURN(std::vector<ir::Tensor> want, lower::evaluateProgram(program, std::vector<ir::Tensor>{input}));
  kiln::Model artifact(tmp.file("m.so"));
  kiln::Session session(artifact, 2);
  KILN_ASSIGN_OR_RETURN(std::vector<ir::Tensor> got, tools::runArtifact(artifact, session, {input}));
  if (got.size() != 1 || want.size() != 1) return internalError("expected one output");
  if (got[0].dtype() != want[0].dtype() || got[0].dims() != want[0].dims())
    return internalError("the artifact's output is " + got[0].type().toString() + ", the reference's " +
                         want[0].type().toString());
  return std::optional<Outputs>(Outputs{std::move(got[0]), std::move(want[0])});
}

// The skip message for an ISA this CPU cannot run (after the IR checks).
std::string cannotRun(Isa isa) {
  return isa == Isa::kAmx ? "this CPU lacks AMX-INT8 (or Linux refused the tile state): checked the IR only"
                          : "this CPU lacks AVX512-VNNI, which the int8 microkernel needs";
}

// AMX takes an int8 plan with at least 4 output rows and a multiple of 4,
// at least 64, k along the innermost reduction variable (contraction.cpp,
// useAmxTiles).
bool amxApplies(Isa isa, bool plan, int64_t rows, int64_t depth) {
  return isa == Isa::kAmx && plan && rows >= 4 && depth % 4 == 0 && depth >= 64;
}

template <typename Case>
std::string caseName(const ::testing::TestParamInfo<std::tuple<Case, Isa>>& info) {
  return std::get<0>(info.param).name + "_" + isaName(std::get<1>(info.param));
}

class Int8Contraction : public ::testing::TestWithParam<std::tuple<Int8Case, Isa>> {};

TEST_P(Int8Contraction, MatchesReferenceExactly) {
  // Not a structured binding: clang 14 (the sanitizer builds) cannot capture one in a lambda.
  const Int8Case& c = std::get<0>(GetParam());
  const Isa isa = std::get<1>(GetParam());
  ir::Tensor input = randomBytes(c.a_type, {c.m, c.k}, lowest(c.a_type), highest(c.a_type), 5);
  auto out =
      referenceAndArtifact([&] { return int8Model(c); }, {}, input, isa, c.vnni, amxApplies(isa, c.vnni, c.m, c.k));
  ASSERT_TRUE(out.isOk()) << out.status().message();
  if (!out->has_value()) GTEST_SKIP() << cannotRun(isa);
  const ir::Tensor& g = (*out)->got;
  const ir::Tensor& w = (*out)->want;
  size_t element = c.op == "MatMulInteger" ? 4 : 1;
  for (size_t i = 0; i < g.bytes().size(); i += element)
    ASSERT_EQ(std::memcmp(g.bytes().data() + i, w.bytes().data() + i, element), 0) << "element " << i / element;
}

// K 37 and 5: a ragged group of k; N 70: a full 64-lane block and a 6-lane
// tail block; N 40: one block of three vectors; M 13: a row tail.
INSTANTIATE_TEST_SUITE_P(
    Shapes, Int8Contraction,
    ::testing::Combine(
        ::testing::Values(
            Int8Case{"u8_s8_symmetric", "MatMulInteger", 13, 64, 70, DType::kUInt8, DType::kInt8},
            Int8Case{"u8_s8_ragged_k", "MatMulInteger", 13, 37, 70, DType::kUInt8, DType::kInt8, 3},
            Int8Case{"u8_s8_short_k", "MatMulInteger", 7, 5, 40, DType::kUInt8, DType::kInt8, 200},
            Int8Case{"s8_s8_both_zero_points", "MatMulInteger", 13, 37, 70, DType::kInt8, DType::kInt8, -5, 3},
            Int8Case{"s8_s8_symmetric", "MatMulInteger", 9, 96, 33, DType::kInt8, DType::kInt8},
            Int8Case{"u8_small_u8_weights", "MatMulInteger", 6, 20, 48, DType::kUInt8, DType::kUInt8, 128, 7, 127},
            Int8Case{"u8_large_u8_weights_generic", "MatMulInteger", 6, 20, 48, DType::kUInt8, DType::kUInt8, 128, 7,
                     255, false},
            Int8Case{"qlinear_u8_s8", "QLinearMatMul", 13, 37, 70, DType::kUInt8, DType::kInt8, 128},
            Int8Case{"qlinear_s8_s8", "QLinearMatMul", 13, 64, 70, DType::kInt8, DType::kInt8, 1, 0},
            Int8Case{"narrow_n_generic", "MatMulInteger", 4, 16, 4, DType::kUInt8, DType::kInt8, 0, 0, 127, false},
            // The output stored as [m, heads, n / heads]: two output axes that
            // V reads as one run, merged into one vector index (96 = a 64-lane
            // block and a partial one).
            Int8Case{"head_split", "MatMulInteger", 13, 37, 96, DType::kUInt8, DType::kInt8, 3, 0, 127, true, 3},
            Int8Case{"head_split_s8", "MatMulInteger", 9, 64, 128, DType::kInt8, DType::kInt8, -3, 0, 127, true, 4},
            // AMX: 70 rows in three tiles (24, 24, 22: two row tiles each, the
            // last ones partial), K 200 as three 64-byte steps and 8 bytes.
            Int8Case{"tiles_ragged", "MatMulInteger", 70, 200, 70, DType::kUInt8, DType::kInt8, 7, 2},
            Int8Case{"tiles_s8_qlinear", "QLinearMatMul", 37, 100, 40, DType::kInt8, DType::kInt8, -2, 0},
            // 80 KiB of panels: packed into the weights blob while the
            // artifact is written, read through the context.
            Int8Case{"blob_panels", "MatMulInteger", 20, 512, 160, DType::kUInt8, DType::kInt8, 3}),
        ::testing::Values(Isa::kVnni, Isa::kAmx)),
    caseName<Int8Case>);

struct ConvCase {
  std::string name;
  int64_t channels, filters, size, kernel, stride;
  std::vector<int64_t> pads;  // top, left, bottom, right
  int64_t dilation = 1;
  DType x_type = DType::kUInt8;
  int x_zero_point = 128;
  int w_zero_point = 0;  // nonzero: an asymmetric weight, the generic loops
  bool vnni = true;
};

std::ostream& operator<<(std::ostream& os, const ConvCase& c) { return os << c.name; }

std::unique_ptr<ir::Model> qlinearConvModel(const ConvCase& c) {
  TestGraph g(13);
  ir::Value* x = g.input("x", {1, c.channels, c.size, c.size}, c.x_type);
  ir::Value* w =
      tensorConstant(g, "w", randomBytes(DType::kInt8, {c.filters, c.channels, c.kernel, c.kernel}, -127, 127, 3));
  std::vector<int32_t> bias(static_cast<size_t>(c.filters));
  for (size_t i = 0; i < bias.size(); ++i) bias[i] = static_cast<int32_t>(i * 37 % 500) - 250;
  ir::Value* b = tensorConstant(g, "b", ir::Tensor::fromValues<int32_t>(DType::kInt32, {c.filters}, bias));
  std::vector<float> w_scales(static_cast<size_t>(c.filters));
  for (size_t i = 0; i < w_scales.size(); ++i) w_scales[i] = 0.002f + 0.0001f * static_cast<float>(i % 7);
  // y_scale spreads the outputs over the uint8 range (sum_k of K products of
  // about 74 * 73 in magnitude), so saturation does not hide a wrong sum.
  const float k_terms = static_cast<float>(c.channels * c.kernel * c.kernel);
  const float y_scale = 0.03f * 0.0023f * std::sqrt(k_terms) * 74 * 73 / 40;
  ir::Node* conv = g.node("QLinearConv",
                          {x, g.constant("x_scale", {}, {0.03f}), byteScalar(g, "x_zp", c.x_type, c.x_zero_point), w,
                           g.constant("w_scale", {c.filters}, w_scales), byteScalar(g, "w_zp", DType::kInt8, c.w_zero_point),
                           g.constant("y_scale", {}, {y_scale}), byteScalar(g, "y_zp", DType::kUInt8, 128), b},
                          "y");
  setInts(conv, "strides", {c.stride, c.stride});
  setInts(conv, "pads", c.pads);
  setInts(conv, "dilations", {c.dilation, c.dilation});
  g.output(conv->outputs[0]);
  return g.take();
}

class Int8Conv : public ::testing::TestWithParam<std::tuple<ConvCase, Isa>> {};

TEST_P(Int8Conv, ChannelsLastMatchesNchwExactly) {
  // Not a structured binding: clang 14 (the sanitizer builds) cannot capture one in a lambda.
  const ConvCase& c = std::get<0>(GetParam());
  const Isa isa = std::get<1>(GetParam());
  driver::CompileOptions nchw;
  nchw.pipeline.disabled = {"channels-last"};
  ir::Tensor input = randomBytes(c.x_type, {1, c.channels, c.size, c.size}, lowest(c.x_type), highest(c.x_type), 5);
  // Rows run along the output's width; k along the channels, padded to a multiple of 4.
  const int64_t width = (c.size + c.pads[1] + c.pads[3] - c.dilation * (c.kernel - 1) - 1) / c.stride + 1;
  auto out = referenceAndArtifact([&] { return qlinearConvModel(c); }, nchw, input, isa, c.vnni,
                                  amxApplies(isa, c.vnni, width, (c.channels + 3) / 4 * 4));
  ASSERT_TRUE(out.isOk()) << out.status().message();
  if (!out->has_value()) GTEST_SKIP() << cannotRun(isa);
  const ir::Tensor& g = (*out)->got;
  const ir::Tensor& w = (*out)->want;
  size_t saturated = 0;
  for (size_t i = 0; i < g.bytes().size(); ++i) {
    ASSERT_EQ(g.bytes()[i], w.bytes()[i]) << "element " << i;
    saturated += g.bytes()[i] == std::byte{0} || g.bytes()[i] == std::byte{255};
  }
  EXPECT_LT(saturated * 10, g.bytes().size()) << "most outputs saturate: the comparison says little";
}

// C 3, 6 and 20: channels padded to a multiple of 4 (with and without
// spatial padding) or a ragged group at every kernel offset; M 48 and
// 70: partial vector blocks; pads on one side only and dilation: windows
// that start inside and end in the padding.
INSTANTIATE_TEST_SUITE_P(
    Shapes, Int8Conv,
    ::testing::Combine(
        ::testing::Values(
            ConvCase{"k3_same", 64, 64, 14, 3, 1, {1, 1, 1, 1}}, ConvCase{"k3_stride2", 32, 48, 15, 3, 2, {1, 1, 1, 1}},
            ConvCase{"stem_k7_c3", 3, 64, 23, 7, 2, {3, 3, 3, 3}}, ConvCase{"pointwise", 64, 70, 9, 1, 1, {0, 0, 0, 0}},
            ConvCase{"pointwise_stride2", 20, 32, 9, 1, 2, {0, 0, 0, 0}},
            ConvCase{"one_sided_dilated", 20, 32, 12, 3, 1, {0, 2, 2, 0}, 2},
            ConvCase{"s8_activations", 64, 32, 10, 3, 1, {1, 1, 1, 1}, 1, DType::kInt8, -3},
            ConvCase{"pointwise_ragged_channels", 6, 32, 9, 1, 1, {0, 0, 0, 0}},
            ConvCase{"asymmetric_weights_generic", 16, 32, 8, 3, 1, {1, 1, 1, 1}, 1, DType::kUInt8, 128, 5, false},
            ConvCase{
                "asymmetric_ragged_channels_generic", 6, 32, 8, 3, 1, {1, 1, 1, 1}, 1, DType::kUInt8, 128, 5, false},
            // AMX: 128 channels, two 64-byte steps per kernel offset.
            ConvCase{"k3_wide", 128, 24, 10, 3, 1, {1, 1, 1, 1}}),
        ::testing::Values(Isa::kVnni, Isa::kAmx)),
    caseName<ConvCase>);

// A target without VNNI (--features=-avx512vnni) keeps the generic loops and
// still computes the same numbers.
TEST(Int8ContractionTarget, WithoutVnniUsesGenericLoops) {
  if (!hostHasVnni()) GTEST_SKIP() << "this CPU lacks AVX512-VNNI; nothing to turn off";
  Int8Case c{"no_vnni", "MatMulInteger", 13, 37, 70, DType::kUInt8, DType::kInt8, 3};
  TempDir tmp;
  ASSERT_TRUE(frontend::writeOnnxFile(*int8Model(c), tmp.file("m.onnx")).isOk());
  driver::CompileOptions options;
  options.codegen.features = "-avx512vnni";
  options.emit = driver::Stage::kLlvm;
  compileOrFail(tmp.file("m.onnx"), tmp.file("m.ll"), options);
  std::vector<char> ir_text = readBytes(tmp.file("m.ll"));
  EXPECT_EQ(std::string(ir_text.begin(), ir_text.end()).find("vpdpbusd"), std::string::npos);
}

}  // namespace
}  // namespace kiln::testing
