// Stage groups (codegen/cpu/stage_groups.h): which runs of a kernel's
// stages run point by point of their leading axes, and that artifacts
// compiled with them match the reference evaluator, which runs every stage
// whole before the next.
#include "codegen/cpu/stage_groups.h"

#include <gtest/gtest.h>

#include "compiler/kir/evaluator.h"
#include "compiler/onnx/writer.h"
#include "tests/passes/attention_models.h"
#include "tests/passes/model_check.h"
#include "tests/testing/artifact_fixture.h"
#include "tools/common/run_artifact.h"

namespace kiln::testing {
namespace {

using codegen::cpu::ContractionPlan;
using codegen::cpu::StageGroup;

// The groups of `call`'s kernel, with the contraction plans the CPU backend makes.
std::vector<StageGroup> groupsOf(const lower::Program& program, const lower::KernelCall& call) {
  const kir::Kernel& kernel = call.kernel;
  auto constant_of = [&](int param) -> const ir::Tensor* {
    const lower::ProgramBuffer& b = program.buffers[call.args[static_cast<size_t>(param)]];
    return b.constant ? &*b.constant : nullptr;
  };
  std::vector<std::optional<ContractionPlan>> plans;
  std::vector<const ContractionPlan*> pointers;
  plans.reserve(kernel.stages.size());
  for (const kir::Stage& stage : kernel.stages) {
    plans.push_back(codegen::cpu::planContraction(kernel, stage, constant_of));
    pointers.push_back(plans.back() ? &*plans.back() : nullptr);
  }
  return codegen::cpu::planStageGroups(kernel, pointers, std::vector<bool>(kernel.stages.size(), false));
}

// q, k, v [batch, heads, 8, 16] -> softmax(q @ k^T / 4 + mask) @ v; causal:
// where(keep, q @ k^T / 4, -1e9) before the mask, as GPT-2 writes it.
std::unique_ptr<ir::Model> attentionModel(int64_t batch, int64_t heads, bool causal = false) {
  TestGraph g(17);
  ir::Value* q = g.input("q", {batch, heads, 8, 16});
  ir::Value* k = g.input("k", {batch, heads, 8, 16});
  ir::Value* v = g.input("v", {batch, heads, 8, 16});
  ir::Node* kt = g.node("Transpose", {k}, "kt");
  setInts(kt, "perm", {0, 1, 3, 2});
  ir::Value* s = g.op("Div", {g.op("MatMul", {q, kt->outputs[0]}, "scores"), g.constant("c", {}, {4.0f})}, "scaled");
  if (causal) {
    ir::Value* keep = g.op("Greater", {g.randomConstant("causal", {8, 8}), g.constant("zero", {}, {0.0f})}, "keep");
    s = g.op("Where", {keep, s, g.constant("fill", {}, {-1e9f})}, "kept");
  }
  s = g.op("Add", {s, g.randomConstant("mask", {8, 8}, -3, 0)}, "masked");
  ir::Node* softmax = g.node("Softmax", {s}, "probs");
  setInt(softmax, "axis", -1);
  g.output(g.op("MatMul", {softmax->outputs[0], v}, "y"));
  return g.take();
}

// Softmax, then LayerNormalization, over x [2, 3, 8, 16] (rows of 16).
std::unique_ptr<ir::Model> normalizationModel(std::vector<int64_t> dims) {
  TestGraph g(17);
  ir::Value* x = g.input("x", dims);
  ir::Node* softmax = g.node("Softmax", {x}, "p");
  setInt(softmax, "axis", -1);
  const int64_t n = dims.back();
  ir::Node* norm = g.node("LayerNormalization",
                          {softmax->outputs[0], g.randomConstant("gamma", {n}), g.randomConstant("beta", {n})}, "y");
  setInt(norm, "axis", -1);
  g.output(norm->outputs[0]);
  return g.take();
}

const lower::KernelCall* kernelFrom(const lower::Program& program, const std::string& op) {
  for (const lower::KernelCall& call : program.calls)
    if (call.kernel.name.find(op) != std::string::npos) return &call;
  return nullptr;
}

TEST(StageGroupsTest, AttentionRunsHeadByHead) {
  auto program = compileProgram([] { return attentionModel(2, 3); }, driver::CompileOptions{});
  ASSERT_TRUE(program.isOk()) << program.status().message();
  const lower::KernelCall* call = kernelFrom(*program, "Attention");
  ASSERT_NE(call, nullptr);
  ASSERT_EQ(call->kernel.stages.size(), 6u);
  std::vector<StageGroup> groups = groupsOf(*program, *call);
  ASSERT_EQ(groups.size(), 1u) << kir::toString(call->kernel);
  EXPECT_EQ(groups[0].first, 0u);
  EXPECT_EQ(groups[0].end, 6u);
  EXPECT_EQ(groups[0].axes, 2);  // batch and head: the contractions' outer axes
  EXPECT_EQ(groups[0].points, 6);
  EXPECT_EQ(groups[0].points_per_task, 1);  // six heads: under 16 tasks' worth, a head a task
}

TEST(StageGroupsTest, NormalizationsRunRowByRow) {
  auto program = compileProgram([] { return normalizationModel({2, 3, 8, 16}); }, driver::CompileOptions{});
  ASSERT_TRUE(program.isOk()) << program.status().message();
  for (const char* op : {"Softmax", "LayerNormalization"}) {
    const lower::KernelCall* call = kernelFrom(*program, op);
    ASSERT_NE(call, nullptr) << op;
    std::vector<StageGroup> groups = groupsOf(*program, *call);
    ASSERT_EQ(groups.size(), 1u) << op << "\n" << kir::toString(call->kernel);
    EXPECT_EQ(groups[0].end - groups[0].first, 3u) << op;
    EXPECT_EQ(groups[0].axes, 3) << op;
    EXPECT_EQ(groups[0].points, 48) << op;
    // 18 elements a row: rows until 4096 elements, but 16 tasks for 48 rows.
    EXPECT_EQ(groups[0].points_per_task, 3) << op;
  }
}

// A banded Winograd convolution (kiln.WinogradConv: input transform,
// product, output transform) runs tile row by tile row: batch 2 and 6 tile
// rows of a 12x12 output are 12 points, each with its U and M in cache.
TEST(StageGroupsTest, BandedWinogradRunsTileRowByTileRow) {
  auto make = [] {
    TestGraph g(17);
    ir::Node* conv = g.node("Conv", {g.input("x", {2, 16, 12, 12}), g.randomConstant("w", {32, 16, 3, 3})}, "conv");
    setInts(conv, "pads", {1, 1, 1, 1});
    g.output(g.op("Relu", {conv->outputs[0]}, "y"));
    return g.take();
  };
  auto program = compileProgram(make, driver::CompileOptions{});
  ASSERT_TRUE(program.isOk()) << program.status().message();
  const lower::KernelCall* call = kernelFrom(*program, "WinogradConv");
  ASSERT_NE(call, nullptr) << lower::toString(*program);
  ASSERT_EQ(call->kernel.stages.size(), 3u);
  std::vector<StageGroup> groups = groupsOf(*program, *call);
  ASSERT_EQ(groups.size(), 1u) << kir::toString(call->kernel);
  EXPECT_EQ(groups[0].first, 0u);
  EXPECT_EQ(groups[0].end, 3u);
  EXPECT_EQ(groups[0].axes, 2);  // batch and tile row
  EXPECT_EQ(groups[0].points, 12);
}

// Three rows: fewer points than kMinGroupPoints, so the stages run apart.
TEST(StageGroupsTest, TooFewPointsRunApart) {
  auto program = compileProgram([] { return normalizationModel({1, 3, 64}); }, driver::CompileOptions{});
  ASSERT_TRUE(program.isOk()) << program.status().message();
  const lower::KernelCall* call = kernelFrom(*program, "Softmax");
  ASSERT_NE(call, nullptr);
  EXPECT_TRUE(groupsOf(*program, *call).empty());
}

// A stage that reads another point's element of what the stage before
// wrote (t transposed) cannot run point by point; the same read at its own
// point can.
TEST(StageGroupsTest, ReadsAcrossPointsKeepStagesApart) {
  for (bool transposed : {false, true}) {
    kir::KernelBuilder kb("k");
    auto x = kb.input("x", ir::DType::kFloat32, {8, 8});
    auto t = kb.output("t", ir::DType::kFloat32, {8, 8});
    auto y = kb.output("y", ir::DType::kFloat32, {8, 8});
    std::vector<kir::IterVar> a = kb.vars({8, 8}, "a");
    kb.compute(t, a, x(a[0], a[1]) * kir::Expr::constant(ir::DType::kFloat32, 2));
    std::vector<kir::IterVar> b = kb.vars({8, 8}, "b");
    kb.compute(y, b, transposed ? t(b[1], b[0]) : t(b[0], b[1]) + kir::Expr::constant(ir::DType::kFloat32, 1));
    kir::Kernel kernel = kb.finish();
    std::vector<StageGroup> groups = codegen::cpu::planStageGroups(kernel, {nullptr, nullptr}, {false, false});
    EXPECT_EQ(groups.size(), transposed ? 0u : 1u) << (transposed ? "transposed" : "same point");
  }
}

// The artifact (grouped stages, 2 threads) against the reference evaluator
// on the same -O2 program: float32 sums in another order than the
// evaluator's double ones, exp within its 4-ulp bound: 1e-5 relative.
void expectArtifactMatches(const ModelFactory& make) {
  TempDir tmp;
  ASSERT_TRUE(frontend::writeOnnxFile(*make(), tmp.file("model.onnx")).isOk());
  auto program = compileProgram(make, driver::CompileOptions{});
  ASSERT_TRUE(program.isOk()) << program.status().message();
  std::vector<ir::Tensor> inputs;
  unsigned seed = 3;
  for (int buffer : program->input_buffers) inputs.push_back(randomInput(program->buffers[buffer].dims, seed++));
  auto want = lower::evaluateProgram(*program, inputs);
  ASSERT_TRUE(want.isOk()) << want.status().message();
  compileOrFail(tmp.file("model.onnx"), tmp.file("model.so"));
  kiln::Model artifact(tmp.file("model.so"));
  kiln::Session session(artifact, 2);
  auto got = tools::runArtifact(artifact, session, inputs);
  ASSERT_TRUE(got.isOk()) << got.status().message();
  ASSERT_EQ(got->size(), want->size());
  for (size_t i = 0; i < got->size(); ++i) {
    auto diff = tools::compareTensors((*got)[i], (*want)[i], tools::Tolerance{1e-5, 1e-6});
    EXPECT_FALSE(diff.has_value()) << *diff;
  }
}

TEST(StageGroupsTest, AttentionArtifactMatchesReference) {
  expectArtifactMatches([] { return attentionModel(2, 3); });
  expectArtifactMatches([] { return attentionModel(1, 12); });
  expectArtifactMatches([] { return attentionModel(2, 2, true); });
  expectArtifactMatches([] { return crossAttentionModel(false); });
}

TEST(StageGroupsTest, NormalizationArtifactMatchesReference) {
  expectArtifactMatches([] { return normalizationModel({2, 3, 8, 16}); });
  expectArtifactMatches([] { return normalizationModel({3, 37, 100}); });
}

}  // namespace
}  // namespace kiln::testing
