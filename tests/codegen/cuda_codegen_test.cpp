// The CUDA backend without a GPU: artifacts compile, carry a cubin for the
// requested arch plus PTX and the weights, describe themselves as CUDA, are
// byte-identical from run to run, and a runtime without a GPU refuses them
// with a clear message instead of crashing.
#include <elf.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <regex>

#include "artifact_format.h"
#include "compiler/support/half.h"
#include "cuda_plan.h"
#include "kiln_runtime.h"
#include "tests/codegen/cuda_test_models.h"
#include "tests/testing/artifact_fixture.h"

namespace kiln {
namespace {

using testing::TempDir;

constexpr uint16_t kElfMachineCuda = 190;  // EM_CUDA

driver::CompileOptions cudaOptions(const std::string& arch = "") {
  driver::CompileOptions options;
  options.target = "cuda";
  options.codegen.cuda_arch = arch;
  return options;
}

struct Sections {
  std::vector<uint8_t> file;
  artifact::ModelDesc desc;
  artifact::CudaPlan plan;
  std::span<const uint8_t> cubin, weights;
  std::string ptx;
};

// Reads an artifact's description and GPU sections, checking each is there.
void readSections(const std::string& path, Sections& s) {
  std::vector<char> bytes = testing::readBytes(path);
  s.file.assign(bytes.begin(), bytes.end());
  std::string error;
  auto find = [&](const char* name) -> std::span<const uint8_t> {
    auto ref = artifact::findElfSection(s.file, name, &error);
    EXPECT_TRUE(ref.has_value()) << name << ": " << error;
    return ref ? std::span<const uint8_t>(s.file).subspan(ref->offset, ref->size) : std::span<const uint8_t>();
  };
  auto desc = artifact::parse(find(artifact::kDescSection), &error);
  ASSERT_TRUE(desc.has_value()) << error;
  s.desc = *desc;
  auto plan = artifact::parseCudaPlan(find(artifact::kCudaPlanSection), &error);
  ASSERT_TRUE(plan.has_value()) << error;
  s.plan = *plan;
  s.cubin = find(artifact::kCubinSection);
  s.weights = find(artifact::kWeightsSection);
  std::span<const uint8_t> ptx = find(artifact::kPtxSection);
  s.ptx.assign(ptx.begin(), ptx.end());
}

void expectCubinFor(const Sections& s, const std::string& arch) {
  EXPECT_EQ(s.desc.target, "cuda");
  EXPECT_EQ(s.desc.cuda_arch, arch);
  ASSERT_GE(s.cubin.size(), sizeof(Elf64_Ehdr));
  Elf64_Ehdr eh;
  std::memcpy(&eh, s.cubin.data(), sizeof eh);
  EXPECT_EQ(std::memcmp(eh.e_ident, ELFMAG, SELFMAG), 0) << "the cubin is not an ELF image";
  EXPECT_EQ(eh.e_machine, kElfMachineCuda) << "the cubin is not CUDA machine code";
  EXPECT_NE(s.ptx.find(".target " + arch), std::string::npos) << "the PTX is not for " << arch;
  // Every launch names a kernel of the PTX (and so of the cubin built from the same source).
  ASSERT_FALSE(s.plan.launches.empty());
  for (const artifact::CudaLaunch& l : s.plan.launches) {
    EXPECT_LT(l.kernel, s.desc.kernels.size());
    if (l.kind == artifact::CudaLaunch::kGemm) continue;  // cuBLASLt, not the cubin
    EXPECT_NE(s.ptx.find(".entry " + l.function), std::string::npos) << l.function;
  }
}

// Compiles `onnx` for sm_90 in `precision` and reads the artifact's sections.
void compileSections(const std::string& onnx, const std::string& so, const std::string& precision, Sections& s) {
  driver::CompileOptions options = cudaOptions();
  options.codegen.cuda_precision = precision;
  testing::compileOrFail(onnx, so, options);
  ASSERT_NO_FATAL_FAILURE(readSections(so, s));
  expectCubinFor(s, "sm_90");
}

// The CUDA C source of `onnx` in `precision` (--emit llvm), written to `cu`.
std::string cudaSource(const std::string& onnx, const std::string& cu, const std::string& precision) {
  driver::CompileOptions options = cudaOptions();
  options.codegen.cuda_precision = precision;
  options.emit = driver::Stage::kLlvm;
  testing::compileOrFail(onnx, cu, options);
  std::vector<char> bytes = testing::readBytes(cu);
  return std::string(bytes.begin(), bytes.end());
}

TEST(CudaCodegen, TinyCnnArtifactCarriesCubinPtxAndWeights) {
  TempDir dir;
  std::string path = dir.file("tiny_cnn_cuda.so");
  testing::compileOrFail(testing::exampleModel(), path, cudaOptions());
  Sections s;
  ASSERT_NO_FATAL_FAILURE(readSections(path, s));
  expectCubinFor(s, "sm_90");
  EXPECT_TRUE(s.desc.entry_symbol.empty()) << "a CUDA artifact has no host entry point";
  EXPECT_NE(s.desc.options.find("cuda_arch=sm_90"), std::string::npos) << s.desc.options;
  // The weights are embedded: the plan's constants lie inside the section and hold the model's bytes.
  uint64_t constant_bytes = 0;
  for (const artifact::CudaBuffer& b : s.plan.buffers)
    if (b.kind == artifact::CudaBuffer::kConstant) {
      constant_bytes += b.bytes;
      EXPECT_LE(b.offset + b.bytes, s.weights.size());
      EXPECT_EQ(b.offset % artifact::kCudaWeightAlignment, 0u);
    }
  EXPECT_GT(constant_bytes, 1000u) << "tiny_cnn's conv weights are missing";
}

TEST(CudaCodegen, NodeCasesCompileForCuda) {
  for (const char* name : {"test_relu", "test_conv_with_strides_padding", "test_matmul_2d", "test_softmax_axis_1",
                           "test_gather_0", "test_gemm_default_matrix_bias", "test_cast_FLOAT_to_FLOAT16",
                           "test_argmax_default_axis_example", "test_maxpool_2d_pads", "test_where_example"}) {
    SCOPED_TRACE(name);
    TempDir dir;
    std::string path = dir.file("case.so");
    testing::compileOrFail(testing::nodeCase(name) + "/model.onnx", path, cudaOptions());
    Sections s;
    ASSERT_NO_FATAL_FAILURE(readSections(path, s));
    expectCubinFor(s, "sm_90");
  }
}

// Each contraction becomes one cuBLASLt GEMM of the model's shape, with
// packing and epilogue kernels only where the operands or the output need them.
TEST(CudaCodegen, ContractionsBecomeGemms) {
  TempDir dir;
  ASSERT_TRUE(testing::writeContractionModel(dir.file("m.onnx")));
  driver::CompileOptions options = cudaOptions();
  options.codegen.cuda_precision = "tf32";
  testing::compileOrFail(dir.file("m.onnx"), dir.file("m.so"), options);
  Sections s;
  ASSERT_NO_FATAL_FAILURE(readSections(dir.file("m.so"), s));
  expectCubinFor(s, "sm_90");
  EXPECT_NE(s.desc.options.find("cuda_precision=tf32"), std::string::npos) << s.desc.options;
  // case output name -> {batch * m * n, k, packs, epilogue kernels, what cuBLASLt's epilogue does}
  using E = artifact::GemmEpilogue;
  struct Want {
    const char* origin;
    uint64_t mn, k;
    int packs, epilogues;
    E fused;
    uint32_t accumulate;
    double alpha;
  };
  const Want wants[] = {{"mm0", 2 * 96 * 80, 128, 0, 0, E::kReluBias, 0, 1.0},
                        {"y1", 4 * 64 * 72, 96, 0, 0, E::kNone, 0, 1.0},
                        // NCHW: the bias runs along D's columns (pixels x channels), not its rows.
                        {"conv2", 2 * 32 * 20 * 20, 16 * 9, 1, 1, E::kNone, 0, 1.0},
                        {"y3", 2 * 48 * 14 * 14, 64, 0, 0, E::kNone, 0, 1.0},
                        {"y4", 64 * 120, 200, 0, 0, E::kBias, 0, 1.0},
                        {"mm5", 64 * 128, 96, 0, 0, E::kBias, 1, 1.0},
                        {"mm6", 4 * 64 * 64, 96, 0, 0, E::kNone, 0, 0.125}};
  for (const Want& want : wants) {
    SCOPED_TRACE(want.origin);
    int gemms = 0, packs = 0, epilogues = 0;
    for (const artifact::CudaLaunch& l : s.plan.launches) {
      if (s.desc.kernels[l.kernel].origin.find(want.origin) == std::string::npos) continue;
      packs += l.function.find("_pack") != std::string::npos;
      epilogues += l.function.find("_epilogue") != std::string::npos;
      if (l.kind != artifact::CudaLaunch::kGemm) continue;
      ++gemms;
      EXPECT_EQ(l.gemm.batch * l.gemm.m * l.gemm.n, want.mn);
      EXPECT_EQ(l.gemm.k, want.k);
      EXPECT_EQ(l.gemm.precision, artifact::CudaPrecision::kTf32);
      EXPECT_EQ(l.gemm.type_a, artifact::GemmOperand::kFloat32) << "tf32 rounds float32 operands on the fly";
      artifact::GemmExtents e = artifact::gemmExtents(l.gemm);
      EXPECT_LE(e.a, s.plan.buffers[l.args[0]].bytes / 4);
      EXPECT_LE(e.b, s.plan.buffers[l.args[1]].bytes / 4);
      EXPECT_LE(e.c, s.plan.buffers[l.args[2]].bytes / 4);
      EXPECT_EQ(l.gemm.epilogue, want.fused);
      EXPECT_EQ(l.gemm.accumulate, want.accumulate);
      EXPECT_EQ(l.gemm.alpha, want.alpha);
      ASSERT_EQ(l.args.size(), l.gemm.bufferCount());
      if (artifact::hasBias(l.gemm.epilogue)) {
        EXPECT_EQ(s.plan.buffers[l.args[3]].kind, artifact::CudaBuffer::kConstant);
        EXPECT_LE(e.bias, s.plan.buffers[l.args[3]].bytes / 4);
      }
      if (l.gemm.accumulate) {
        EXPECT_EQ(s.plan.buffers[l.args.back()].kind, artifact::CudaBuffer::kInput);
        EXPECT_LE(e.cin, s.plan.buffers[l.args.back()].bytes / 4);
      }
    }
    EXPECT_EQ(gemms, 1);
    EXPECT_EQ(packs, want.packs);
    EXPECT_EQ(epilogues, want.epilogues);
  }
}

// The transposes of attention launch no kernel. The head transposes (Q and V
// to [B, H, S, D], K to [B, H, D, S]) become operand layouts: with batch 1
// the scores and context GEMMs read the projections in place, a batch of
// heads 64 elements apart, rows a hidden width apart, K through the
// transpose flag; with batch 2 no single batch stride covers both the batch
// and the heads, so those operands are packed. The context transpose back to
// [B, S, H*D] becomes D's layout: with batch 1 the context GEMM writes it
// (leading dimension 256, heads 64 apart), with batch 2 a generated
// epilogue does. In fp16 the projections and the context, which only GEMMs
// (and, at batch 2, their packings) read, are stored by their GEMMs in 16
// bits (16-bit biases), so nothing converts them either. The runtime test
// checks the numbers.
TEST(CudaCodegen, AttentionTransposesBecomeGemmLayouts) {
  TempDir dir;
  for (int64_t batch : {1, 2}) {
    std::string onnx = dir.file("attention" + std::to_string(batch) + ".onnx");
    ASSERT_TRUE(testing::writeAttentionModel(onnx, batch));
    for (const char* precision : {"fp32", "fp16"}) {
      SCOPED_TRACE("batch " + std::to_string(batch) + ", " + precision);
      const bool half = std::string(precision) == "fp16";
      const bool one = batch == 1;
      const artifact::GemmOperand half_if_one = half && one ? artifact::GemmOperand::kFloat16 : artifact::GemmOperand::kFloat32;
      driver::CompileOptions options = cudaOptions();
      options.codegen.cuda_precision = precision;
      testing::compileOrFail(onnx, dir.file("a.so"), options);
      Sections s;
      ASSERT_NO_FATAL_FAILURE(readSections(dir.file("a.so"), s));
      expectCubinFor(s, "sm_90");
      int gemms = 0, head_projections = 0, attention_packs = 0, context_epilogues = 0;
      bool scores_seen = false, context_seen = false;
      for (const artifact::CudaLaunch& l : s.plan.launches) {
        const std::string& origin = s.desc.kernels[l.kernel].origin;
        if (origin.rfind("Transpose", 0) == 0 && origin.find(" + ") == std::string::npos) ADD_FAILURE() << origin;
        const bool scores = origin.find("scores_mm") != std::string::npos;
        const bool context = origin.find("'context'") != std::string::npos;
        if ((scores || context) && l.function.find("_pack") != std::string::npos) ++attention_packs;
        if (context && l.function.find("_epilogue") != std::string::npos) ++context_epilogues;
        if (l.kind != artifact::CudaLaunch::kGemm) continue;
        ++gemms;
        artifact::GemmExtents e = artifact::gemmExtents(l.gemm);
        EXPECT_LE(e.a, s.plan.buffers[l.args[0]].bytes / artifact::operandBytes(l.gemm.type_a));
        EXPECT_LE(e.b, s.plan.buffers[l.args[1]].bytes / artifact::operandBytes(l.gemm.type_b));
        EXPECT_LE(e.c, s.plan.buffers[l.args[2]].bytes / artifact::operandBytes(l.gemm.type_d));
        if (origin.find("o_mm") != std::string::npos) {
          EXPECT_EQ(l.gemm.type_d, artifact::GemmOperand::kFloat32) << origin << ": the model's output";
          continue;
        }
        if (!scores && !context) {
          // Q, K or V: D is 16-bit in fp16, read by the attention GEMMs in
          // place (batch 1) or by their packings, through the copy (batch 2).
          ++head_projections;
          EXPECT_EQ(l.gemm.type_d, half ? artifact::GemmOperand::kFloat16 : artifact::GemmOperand::kFloat32) << origin;
          ASSERT_TRUE(artifact::hasBias(l.gemm.epilogue)) << origin;
          const artifact::CudaBuffer& bias = s.plan.buffers[l.args[3]];
          EXPECT_EQ(bias.kind, artifact::CudaBuffer::kConstant) << origin;
          EXPECT_EQ(bias.bytes, 256u * artifact::operandBytes(l.gemm.type_d)) << origin;
          EXPECT_LE(e.bias, bias.bytes / artifact::operandBytes(l.gemm.type_d)) << origin;
          continue;
        }
        EXPECT_NE(origin.find("Transpose"), std::string::npos) << origin << ": the transposes were not folded in";
        EXPECT_EQ(l.gemm.k, scores ? 64u : 128u) << origin;
        scores_seen = scores_seen || scores;
        context_seen = context_seen || context;
        if (scores) {
          EXPECT_EQ(l.gemm.type_d, half ? artifact::GemmOperand::kFloat16 : artifact::GemmOperand::kFloat32)
              << origin << ": Softmax reads the scores' 16-bit copy";
        }
        if (!one) continue;
        EXPECT_EQ(l.gemm.batch, 4u) << origin;
        // Both operands in place in the workspace (the projections, or their 16-bit copies).
        for (size_t slot : {0, 1})
          EXPECT_EQ(s.plan.buffers[l.args[slot]].kind, artifact::CudaBuffer::kWorkspace) << origin;
        // D row-major: A is the right factor (K or V), B the left (Q or the probabilities).
        EXPECT_EQ(l.gemm.stride_a, 64) << origin;
        EXPECT_EQ(l.gemm.lda, 256) << origin;
        if (scores) {
          EXPECT_EQ(l.gemm.stride_b, 64) << origin;
          EXPECT_EQ(l.gemm.ldb, 256) << origin;
          EXPECT_EQ(l.gemm.alpha, 0.125) << origin;
        } else {
          // The context written as [S, H*D]: heads 64 apart, rows 256 apart.
          EXPECT_EQ(l.gemm.ldc, 256) << origin;
          EXPECT_EQ(l.gemm.stride_c, 64) << origin;
          EXPECT_EQ(l.gemm.type_d, half_if_one) << origin << ": only the output projection reads it";
        }
      }
      EXPECT_EQ(gemms, 6);
      EXPECT_EQ(head_projections, 3);
      EXPECT_TRUE(scores_seen && context_seen);
      // Batch 2: Q, K and V packed (the probabilities are dense either way),
      // the context written by an epilogue.
      EXPECT_EQ(attention_packs, one ? 0 : 3);
      EXPECT_EQ(context_epilogues, one ? 0 : 1);
    }
  }
}

// In fp16 and bf16 every GEMM multiplies 16-bit operands: weights converted
// at compile time (their float32 bytes no longer stored), activations read
// from the 16-bit copies their producers store, model inputs packed.
TEST(CudaCodegen, SixteenBitPrecisionsStoreSixteenBitOperands) {
  TempDir dir;
  ASSERT_TRUE(testing::writeHalfChainModel(dir.file("chain.onnx")));
  ASSERT_TRUE(testing::writeContractionModel(dir.file("m.onnx")));
  for (const char* precision : {"fp16", "bf16"}) {
    SCOPED_TRACE(precision);
    const artifact::GemmOperand want =
        std::string(precision) == "fp16" ? artifact::GemmOperand::kFloat16 : artifact::GemmOperand::kBFloat16;
    Sections s;
    ASSERT_NO_FATAL_FAILURE(compileSections(dir.file("chain.onnx"), dir.file("chain.so"), precision, s));
    int gemms = 0;
    for (const artifact::CudaLaunch& l : s.plan.launches) {
      EXPECT_EQ(l.function.find("_pack"), std::string::npos) << l.function << ": an activation was packed, not copied";
      if (l.kind != artifact::CudaLaunch::kGemm) continue;
      ++gemms;
      EXPECT_EQ(l.gemm.type_a, want);
      EXPECT_EQ(l.gemm.type_b, want);
      artifact::GemmExtents e = artifact::gemmExtents(l.gemm);
      EXPECT_LE(e.a, s.plan.buffers[l.args[0]].bytes / 2);
      EXPECT_LE(e.b, s.plan.buffers[l.args[1]].bytes / 2);
      // D in the workspace (a scratch matrix the Tanh epilogue reads) is
      // 16-bit too; D written as the model's output is float32.
      const artifact::CudaBuffer& d = s.plan.buffers[l.args[2]];
      EXPECT_EQ(l.gemm.type_d, d.kind == artifact::CudaBuffer::kWorkspace ? want : artifact::GemmOperand::kFloat32);
      EXPECT_LE(e.c, d.bytes / artifact::operandBytes(l.gemm.type_d));
      // One operand is a weight (a 16-bit constant), the other an activation's copy in the workspace.
      int constants = 0, workspace = 0;
      for (int i : {0, 1}) {
        const artifact::CudaBuffer& b = s.plan.buffers[l.args[static_cast<size_t>(i)]];
        constants += b.kind == artifact::CudaBuffer::kConstant;
        workspace += b.kind == artifact::CudaBuffer::kWorkspace;
      }
      EXPECT_EQ(constants, 1);
      EXPECT_EQ(workspace, 1);
    }
    EXPECT_EQ(gemms, 2);
    // Weights: 256x256 and 256x128 at 2 bytes, plus LayerNorm's float32 gamma and beta.
    uint64_t constant_bytes = 0;
    for (const artifact::CudaBuffer& b : s.plan.buffers)
      if (b.kind == artifact::CudaBuffer::kConstant) constant_bytes += b.bytes;
    EXPECT_EQ(constant_bytes, (256u * 256 + 256 * 128) * 2 + 2 * 256 * 4);

    // Model inputs read by GEMMs are packed into 16-bit matrices; every GEMM is 16-bit.
    Sections c;
    ASSERT_NO_FATAL_FAILURE(compileSections(dir.file("m.onnx"), dir.file("m.so"), precision, c));
    for (const artifact::CudaLaunch& l : c.plan.launches) {
      if (l.kind != artifact::CudaLaunch::kGemm) continue;
      EXPECT_EQ(l.gemm.type_a, want) << l.function;
      EXPECT_EQ(l.gemm.type_b, want) << l.function;
    }
  }
}

// Convolutions run channels-last on CUDA too: each full convolution is one
// GEMM whose bias, residual and Relu are cuBLASLt's epilogue (the bias runs
// along D's rows), the padded 3x3 convolution's windows are packed 16
// bytes of channels per thread (one vector store), and the depthwise
// convolution (a batch of 32 one-column products) stays a generated kernel.
// In fp16 the activations that only GEMMs and their packings read are
// 16-bit: the packing reads the depthwise output's copy, and the residual
// GEMM accumulates a 16-bit C into a 16-bit D.
TEST(CudaCodegen, ConvolutionBlockRunsChannelsLast) {
  TempDir dir;
  ASSERT_TRUE(testing::writeConvBlockModel(dir.file("m.onnx")));
  for (const char* precision : {"fp32", "fp16"}) {
    SCOPED_TRACE(precision);
    const bool half = std::string(precision) == "fp16";
    const artifact::GemmOperand operand = half ? artifact::GemmOperand::kFloat16 : artifact::GemmOperand::kFloat32;
    driver::CompileOptions options = cudaOptions();
    options.codegen.cuda_precision = precision;
    testing::compileOrFail(dir.file("m.onnx"), dir.file("m.so"), options);
    Sections s;
    ASSERT_NO_FATAL_FAILURE(readSections(dir.file("m.so"), s));
    using E = artifact::GemmEpilogue;
    std::map<std::string, int> gemms, packs, epilogues;
    for (const artifact::CudaLaunch& l : s.plan.launches) {
      const std::string& origin = s.desc.kernels[l.kernel].origin;
      std::string conv = origin.find("conv_full") != std::string::npos ? "full"
                         : origin.find("conv_dw") != std::string::npos ? "dw"
                         : origin.find("conv_pw") != std::string::npos ? "pw"
                                                                       : "";
      if (conv.empty()) continue;
      packs[conv] += l.function.find("_pack") != std::string::npos;
      epilogues[conv] += l.function.find("_epilogue") != std::string::npos;
      if (conv == "full" && l.function.find("_pack") != std::string::npos) {
        EXPECT_EQ(uint64_t{l.grid} * l.block, 8u * 64 * 64 * 9 * 32 / (half ? 8 : 4))
            << "16 bytes of a window's channels per thread";
      }
      if (l.kind != artifact::CudaLaunch::kGemm) continue;
      ++gemms[conv];
      EXPECT_EQ(l.gemm.batch * l.gemm.m * l.gemm.n, 8u * 64 * 64 * 64) << origin;
      EXPECT_EQ(l.gemm.epilogue, E::kReluBias) << origin;
      EXPECT_EQ(l.gemm.accumulate, conv == "pw" ? 1u : 0u) << origin << ": the residual is C";
      EXPECT_EQ(l.gemm.type_d, operand) << origin;
      artifact::GemmExtents e = artifact::gemmExtents(l.gemm);
      EXPECT_LE(e.c, s.plan.buffers[l.args[2]].bytes / artifact::operandBytes(l.gemm.type_d)) << origin;
      if (l.gemm.accumulate) {
        EXPECT_LE(e.cin, s.plan.buffers[l.args.back()].bytes / artifact::operandBytes(l.gemm.type_d)) << origin;
        EXPECT_EQ(s.plan.buffers[l.args.back()].kind, artifact::CudaBuffer::kWorkspace) << origin;
      }
    }
    EXPECT_EQ(gemms["full"], 1);
    EXPECT_EQ(gemms["pw"], 1);
    EXPECT_EQ(gemms["dw"], 0) << "a depthwise convolution is no GEMM";
    EXPECT_EQ(packs["full"], 1) << "the padded windows";
    EXPECT_EQ(packs["dw"] + packs["pw"], 0);
    EXPECT_EQ(epilogues["full"] + epilogues["pw"], 0) << "cuBLASLt applies bias, residual and Relu";

    if (!half) continue;
    // The packing loads the depthwise output's 16-bit copy, and the
    // depthwise kernel stores nothing else.
    const std::string text = cudaSource(dir.file("m.onnx"), dir.file("m.cu"), precision);
    for (const char* kind : {"_Clip_s0(", "_Relu_s0_pack0("}) {
      size_t begin = text.find(kind);
      ASSERT_NE(begin, std::string::npos) << kind;
      std::string body = text.substr(begin, text.find("\n}\n", begin) - begin);
      if (std::string(kind) == "_Clip_s0(") {
        EXPECT_EQ(body.find("] = v"), std::string::npos) << "a float32 store: " << body;
      } else {
        EXPECT_NE(body.find("kiln_h2f("), std::string::npos) << "the packing reads the copy: " << body;
      }
    }
  }
}

// A 7x7 stem convolution over 3 channels (K = 147) runs with K padded to a
// multiple of 16 bytes: the window packing writes the padded rows (zeros
// past 147) 16 bytes per thread, and the weight's padded matrix is computed
// at compile time and stored with the weights (no packing launch), holding
// every weight once and zeros for the rest.
TEST(CudaCodegen, StemConvolutionPadsItsInnerDimension) {
  TempDir dir;
  ASSERT_TRUE(testing::writeStemModel(dir.file("m.onnx")));
  for (const char* precision : {"fp32", "fp16", "bf16"}) {
    SCOPED_TRACE(precision);
    Sections s;
    ASSERT_NO_FATAL_FAILURE(compileSections(dir.file("m.onnx"), dir.file("m.so"), precision, s));
    const bool fp32 = std::string(precision) == "fp32";
    const uint64_t bytes = fp32 ? 4 : 2, padded_k = fp32 ? 148 : 152;
    int gemms = 0, packs = 0;
    for (const artifact::CudaLaunch& l : s.plan.launches) {
      packs += l.function.find("_pack") != std::string::npos;
      if (l.kind != artifact::CudaLaunch::kGemm) continue;
      ++gemms;
      EXPECT_EQ(l.gemm.k, padded_k);
      EXPECT_EQ(l.gemm.lda * bytes % 16, 0u) << "lda " << l.gemm.lda;
      EXPECT_EQ(l.gemm.ldb * bytes % 16, 0u) << "ldb " << l.gemm.ldb;
      int weights = 0;
      for (size_t slot : {0, 1}) {
        const artifact::CudaBuffer& b = s.plan.buffers[l.args[slot]];
        if (b.kind != artifact::CudaBuffer::kConstant) continue;
        ++weights;
        ASSERT_EQ(b.bytes, 64u * padded_k * bytes);
        ASSERT_LE(b.offset + b.bytes, s.weights.size());
        std::span<const uint8_t> m = s.weights.subspan(b.offset, b.bytes);
        // The padded matrix: 64 x 147 weights and 64 x (K - 147) zeros.
        ir::Tensor w = testing::randomTensor({testing::kStemWeightDims.begin(), testing::kStemWeightDims.end()}, 90);
        double want = 0, got = 0;
        for (size_t e = 0; e < w.bytes().size() / 4; ++e) {
          float v = 0;
          std::memcpy(&v, w.bytes().data() + 4 * e, 4);
          want += std::fabs(v);
        }
        size_t zeros = 0;
        for (size_t e = 0; e < 64 * padded_k; ++e) {
          float v = 0;
          if (fp32) {
            std::memcpy(&v, m.data() + 4 * e, 4);
          } else {
            uint16_t h = 0;
            std::memcpy(&h, m.data() + 2 * e, 2);
            v = std::string(precision) == "fp16" ? halfToFloat(h) : bfloat16ToFloat(h);
          }
          zeros += v == 0.0f;
          got += std::fabs(v);
        }
        EXPECT_EQ(zeros, 64u * (padded_k - 147));
        EXPECT_NEAR(got, want, want * (fp32 ? 1e-6 : 4e-3));
      }
      EXPECT_EQ(weights, 1) << "the weight's padded matrix is a constant";
    }
    EXPECT_EQ(gemms, 1);
    EXPECT_EQ(packs, 1) << "only the windows are packed at run time";
  }
}

// A wide GELU epilogue computes 16 bytes of points per thread and reads
// what it needs of them the same way: the GEMM's scratch D (16-bit in
// fp16) and the bias with vector loads before its unrolled loop.
TEST(CudaCodegen, WideEpiloguesReadWithVectorLoads) {
  TempDir dir;
  ASSERT_TRUE(testing::writeWideGeluModel(dir.file("m.onnx")));
  for (const char* precision : {"fp32", "fp16"}) {
    SCOPED_TRACE(precision);
    const std::string source = cudaSource(dir.file("m.onnx"), dir.file("m.cu"), precision);
    size_t begin = source.find("_epilogue(");
    ASSERT_NE(begin, std::string::npos) << source;
    std::string body = source.substr(begin, source.find("\n}\n", begin) - begin);
    // The output is the model's (float32): 4 points per thread. D: one
    // uint4 of 4 float32 points or one uint2 of 4 fp16 ones; the bias: one uint4.
    const std::string d_load = std::string(precision) == "fp16" ? "= reinterpret_cast<const uint2*>(&p"
                                                                : "= reinterpret_cast<const uint4*>(&p";
    EXPECT_NE(body.find(d_load), std::string::npos) << body;
    size_t loads = 0;
    std::regex load(R"(= reinterpret_cast<const uint[24]\*>\(&p)");
    for (std::sregex_iterator it(body.begin(), body.end(), load), end; it != end; ++it) ++loads;
    EXPECT_EQ(loads, 2u) << body;
    EXPECT_NE(body.find("*reinterpret_cast<uint4*>(&p"), std::string::npos) << "one vector store: " << body;
    EXPECT_NE(body.find("erff("), std::string::npos) << body;
  }
}

// The 16-bit copy of an activation is stored by the kernel that writes it,
// rounded: the CUDA source (--emit llvm) stores it with the conversion.
TEST(CudaCodegen, ActivationCopiesAreStoredByTheirProducers) {
  TempDir dir;
  ASSERT_TRUE(testing::writeHalfChainModel(dir.file("chain.onnx")));
  const std::string source = cudaSource(dir.file("chain.onnx"), dir.file("chain.cu"), "fp16");
  size_t copies = 0;
  for (size_t at = source.find("= kiln_f2h("); at != std::string::npos; at = source.find("= kiln_f2h(", at + 1)) ++copies;
  EXPECT_GE(copies, 2u) << "the LayerNorm row group and the Tanh epilogue each store a half copy";
  // Only the second GEMM reads Tanh's output, through the copy: the
  // epilogue stores nothing else (the float32 buffer would be dead).
  size_t begin = source.find("_Tanh_s0_epilogue(");
  ASSERT_NE(begin, std::string::npos);
  std::string body = source.substr(begin, source.find("\n}\n", begin) - begin);
  std::regex store(R"(p\d+\[[^\n]*\] = ([^;]*);)");
  std::vector<std::string> stored;
  for (std::sregex_iterator it(body.begin(), body.end(), store), end; it != end; ++it) stored.push_back((*it)[1]);
  ASSERT_EQ(stored.size(), 1u) << body;
  EXPECT_EQ(stored[0].rfind("kiln_f2h(", 0), 0u) << body;
}

// LayerNorm's and Softmax's three stages each (two row reductions, one
// elementwise stage) run as one launch: a block per row when the rows are
// few (here 128: a warp each would leave most of the GPU idle).
TEST(CudaCodegen, RowReductionsAndTheirReaderAreOneLaunch) {
  TempDir dir;
  ASSERT_TRUE(testing::writeRowGroupModel(dir.file("m.onnx")));
  testing::compileOrFail(dir.file("m.onnx"), dir.file("m.so"), cudaOptions());
  Sections s;
  ASSERT_NO_FATAL_FAILURE(readSections(dir.file("m.so"), s));
  expectCubinFor(s, "sm_90");
  int layer_norm = 0, softmax = 0;
  for (const artifact::CudaLaunch& l : s.plan.launches) {
    const std::string& origin = s.desc.kernels[l.kernel].origin;
    EXPECT_NE(l.function.find("_rows"), std::string::npos) << l.function << " (from " << origin << ")";
    EXPECT_EQ(l.grid, 2u * 64u) << l.function << ": not a block per row";
    EXPECT_EQ(l.block % 32, 0u) << l.function;
    EXPECT_GE(l.block, 64u) << l.function;
    layer_norm += origin.find("LayerNormalization") != std::string::npos;
    softmax += origin.find("Softmax") != std::string::npos;
  }
  EXPECT_EQ(layer_norm, 1);
  EXPECT_EQ(softmax, 1);

  // Each reduction's value reaches the group's later stages in a register:
  // thread 0 stores it (for readers outside the group), nothing loads it.
  const std::string text = cudaSource(dir.file("m.onnx"), dir.file("m.cu"), "fp32");
  std::regex row_store(R"(if \(lane == 0\) \{\s*(p\d+)\[)");
  int row_values = 0;
  for (size_t begin = text.find("_rows("); begin != std::string::npos; begin = text.find("_rows(", begin + 1)) {
    std::string body = text.substr(begin, text.find("\n}\n", begin) - begin);
    for (std::sregex_iterator it(body.begin(), body.end(), row_store), end; it != end; ++it) {
      ++row_values;
      const std::string param = (*it)[1].str() + "[";
      size_t uses = 0;
      for (size_t at = body.find(param); at != std::string::npos; at = body.find(param, at + 1)) ++uses;
      EXPECT_EQ(uses, 1u) << param << " is loaded back: " << body;
    }
  }
  EXPECT_EQ(row_values, 4) << "LayerNorm's mean and inverse deviation, Softmax's max and sum";
}

TEST(CudaCodegen, UnknownPrecisionIsAClearError) {
  TempDir dir;
  driver::CompileOptions options = cudaOptions();
  options.codegen.cuda_precision = "fp8";
  std::ostringstream log;
  auto bad = driver::compileFile(testing::exampleModel(), dir.file("x.so"), options, log);
  ASSERT_FALSE(bad.isOk());
  EXPECT_NE(bad.status().message().find("--cuda-precision 'fp8'"), std::string::npos) << bad.status().message();
}

// A stage over an empty axis (a 0-row Trilu) is compiled but never launched.
TEST(CudaCodegen, EmptyStagesAreNotLaunched) {
  TempDir dir;
  std::string path = dir.file("empty.so");
  testing::compileOrFail(testing::nodeCase("test_tril_zero") + "/model.onnx", path, cudaOptions());
  Sections s;
  ASSERT_NO_FATAL_FAILURE(readSections(path, s));
  for (const artifact::CudaLaunch& l : s.plan.launches) EXPECT_GT(l.grid, 0u) << l.function;
  EXPECT_TRUE(s.plan.launches.empty()) << "every stage of test_tril_zero is empty";
}

TEST(CudaCodegen, CudaArchSelectsTheCubinAndPtxTarget) {
  TempDir dir;
  std::string path = dir.file("sm80.so");
  testing::compileOrFail(testing::nodeCase("test_relu") + "/model.onnx", path, cudaOptions("sm_80"));
  Sections s;
  ASSERT_NO_FATAL_FAILURE(readSections(path, s));
  expectCubinFor(s, "sm_80");
}

TEST(CudaCodegen, BadArchIsAClearError) {
  TempDir dir;
  std::ostringstream log;
  auto bad = driver::compileFile(testing::exampleModel(), dir.file("x.so"), cudaOptions("gfx90a"), log);
  ASSERT_FALSE(bad.isOk());
  EXPECT_NE(bad.status().message().find("'gfx90a' is not a GPU architecture"), std::string::npos)
      << bad.status().message();
  auto unknown = driver::compileFile(testing::exampleModel(), dir.file("y.so"), cudaOptions("sm_11"), log);
  ASSERT_FALSE(unknown.isOk());
  EXPECT_NE(unknown.status().message().find("not supported by this CUDA toolkit"), std::string::npos)
      << unknown.status().message();
}

TEST(CudaCodegen, SameModelGivesByteIdenticalArtifacts) {
  TempDir dir;
  testing::compileOrFail(testing::exampleModel(), dir.file("a.so"), cudaOptions());
  testing::compileOrFail(testing::exampleModel(), dir.file("b.so"), cudaOptions());
  EXPECT_TRUE(testing::readBytes(dir.file("a.so")) == testing::readBytes(dir.file("b.so")));
}

TEST(CudaCodegen, EmitStopsAtCudaSourceOrCubin) {
  TempDir dir;
  driver::CompileOptions options = cudaOptions();
  options.emit = driver::Stage::kLlvm;
  testing::compileOrFail(testing::nodeCase("test_relu") + "/model.onnx", dir.file("relu.cu"), options);
  std::vector<char> source = testing::readBytes(dir.file("relu.cu"));
  std::string text(source.begin(), source.end());
  EXPECT_NE(text.find("extern \"C\" __global__ void"), std::string::npos) << text;
  options.emit = driver::Stage::kObject;
  testing::compileOrFail(testing::nodeCase("test_relu") + "/model.onnx", dir.file("relu.cubin"), options);
  std::vector<char> cubin = testing::readBytes(dir.file("relu.cubin"));
  ASSERT_GE(cubin.size(), 4u);
  EXPECT_EQ(std::memcmp(cubin.data(), ELFMAG, SELFMAG), 0);
}

// Without a GPU (CI), loading must fail cleanly, naming what is missing.
TEST(CudaCodegen, RuntimeRefusesCleanlyWithoutAGpu) {
  TempDir dir;
  std::string path = dir.file("tiny.so");
  testing::compileOrFail(testing::exampleModel(), path, cudaOptions());
  kiln_model* model = nullptr;
  kiln_error* error = nullptr;
  kiln_status status = kiln_model_load(path.c_str(), &model, &error);
  if (status == KILN_OK) {
    kiln_model_free(model);
    GTEST_SKIP() << "this machine has a usable NVIDIA GPU: the no-GPU refusal cannot be observed here";
  }
  std::string message = kiln_error_message(error);
  kiln_error_free(error);
  EXPECT_EQ(status, KILN_ERROR_UNSUPPORTED) << message;
  EXPECT_NE(message.find("runs on an NVIDIA GPU (sm_90)"), std::string::npos) << message;
}

}  // namespace
}  // namespace kiln
