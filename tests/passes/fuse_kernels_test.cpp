// fuse-kernels: producer kernels inlined into their one consumer on the
// lowered program. Each case compiles the same graph without and with the
// pass, shows the kernels, and runs both programs on the reference evaluator.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

#include "compiler/kir/affine.h"
#include "compiler/kir/substitute.h"
#include "compiler/lower/fuse_kernels.h"
#include "tests/passes/model_check.h"

namespace kiln::testing {
namespace {

struct Compiled {
  lower::Program unfused;
  lower::Program fused;
};

// The model at -O0, and with fuse-kernels alone, both for `target`.
Compiled compileBoth(const ModelFactory& make, const std::string& target = "cpu") {
  driver::CompileOptions plain;
  plain.pipeline.opt_level = 0;
  plain.target = target;
  driver::CompileOptions fusing;
  fusing.target = target;
  fusing.pipeline.passes = {"fuse-kernels"};
  auto a = compileProgram(make, plain);
  auto b = compileProgram(make, fusing);
  EXPECT_TRUE(a.isOk()) << a.status().message();
  EXPECT_TRUE(b.isOk()) << b.status().message();
  if (!a || !b) return {};
  EXPECT_TRUE(b->verify().isOk());
  return {std::move(*a), std::move(*b)};
}

std::string kernelsText(const lower::Program& program) { return lower::toString(program); }

// y = Relu(Conv(x, W) + bias)
std::unique_ptr<ir::Model> convBiasRelu() {
  TestGraph g;
  ir::Value* x = g.input("x", {1, 3, 8, 8});
  ir::Value* w = g.randomConstant("w", {4, 3, 3, 3});
  ir::Value* bias = g.randomConstant("bias", {1, 4, 1, 1});
  ir::Node* conv = g.node("Conv", {x, w}, "conv");
  setInts(conv, "pads", {1, 1, 1, 1});
  ir::Value* sum = g.op("Add", {conv->outputs[0], bias}, "sum");
  g.output(g.op("Relu", {sum}, "y"));
  return g.take();
}

TEST(FuseKernelsTest, ConvBiasReluBecomesOneStageWithEpilogue) {
  Compiled c = compileBoth(convBiasRelu);
  ASSERT_EQ(c.unfused.calls.size(), 3u) << kernelsText(c.unfused);
  ASSERT_EQ(c.fused.calls.size(), 1u) << kernelsText(c.fused);
  const kir::Kernel& k = c.fused.calls[0].kernel;
  ASSERT_EQ(k.stages.size(), 1u);
  std::string value = kir::toString(k.stages[0].value);
  EXPECT_EQ(value.rfind("max(add(sum[", 0), 0u) << value;  // relu(reduce(...) + bias)
  EXPECT_EQ(c.fused.workspace_bytes, 0) << "the intermediates are gone";
  EXPECT_GT(c.unfused.workspace_bytes, 0);
  EXPECT_TRUE(sameOutputs(c.fused, c.unfused));
}

// Five elementwise ops, including a broadcast operand and a cast round trip.
std::unique_ptr<ir::Model> elementwiseChain() {
  TestGraph g;
  ir::Value* x = g.input("x", {2, 3, 5});
  ir::Value* a = g.op("Add", {x, g.randomConstant("c", {5})}, "a");
  ir::Value* b = g.op("Mul", {a, a}, "b");
  ir::Value* s = g.op("Sigmoid", {b}, "s");
  ir::Value* t = g.op("Tanh", {s}, "t");
  g.output(g.op("Sub", {t, x}, "y"));
  return g.take();
}

TEST(FuseKernelsTest, ElementwiseChainBecomesOneLoop) {
  Compiled c = compileBoth(elementwiseChain);
  EXPECT_EQ(c.unfused.calls.size(), 5u) << kernelsText(c.unfused);
  ASSERT_EQ(c.fused.calls.size(), 1u) << kernelsText(c.fused);
  EXPECT_EQ(c.fused.calls[0].kernel.params.size(), 3u) << "x read once as a shared param, c, y";
  EXPECT_TRUE(sameOutputs(c.fused, c.unfused));
}

// y = Relu(Conv(x)) + x: the residual add is an epilogue too.
std::unique_ptr<ir::Model> residual() {
  TestGraph g;
  ir::Value* x = g.input("x", {1, 4, 6, 6});
  ir::Node* conv = g.node("Conv", {x, g.randomConstant("w", {4, 4, 3, 3}), g.randomConstant("b", {4})}, "conv");
  setInts(conv, "pads", {1, 1, 1, 1});
  ir::Value* r = g.op("Relu", {conv->outputs[0]}, "r");
  g.output(g.op("Add", {r, x}, "y"));
  return g.take();
}

TEST(FuseKernelsTest, ResidualAddFusesIntoConv) {
  Compiled c = compileBoth(residual);
  EXPECT_EQ(c.unfused.calls.size(), 3u) << kernelsText(c.unfused);
  EXPECT_EQ(c.fused.calls.size(), 1u) << kernelsText(c.fused);
  EXPECT_TRUE(sameOutputs(c.fused, c.unfused));
}

// ResNet's downsampling block: Relu(Conv_a(x) + Conv_b(x)). One convolution
// becomes the Add's sum, the other stays a kernel of its own and is read as
// the residual: two sums in one stage would fit no tiled kernel.
std::unique_ptr<ir::Model> twoConvolutionsAdded() {
  TestGraph g;
  ir::Value* x = g.input("x", {1, 4, 6, 6});
  ir::Value* a = g.op("Conv", {x, g.randomConstant("wa", {8, 4, 1, 1})}, "a");
  ir::Value* b = g.op("Conv", {x, g.randomConstant("wb", {8, 4, 1, 1})}, "b");
  g.output(g.op("Relu", {g.op("Add", {a, b}, "sum")}, "y"));
  return g.take();
}

int countReductions(const kir::Expr& e) {
  int n = e->kind == kir::ExprNode::Kind::kReduce ? 1 : 0;
  for (const kir::Expr& op : e->operands) n += countReductions(op);
  return n;
}

TEST(FuseKernelsTest, AtMostOneReductionPerStage) {
  Compiled c = compileBoth(twoConvolutionsAdded);
  ASSERT_EQ(c.fused.calls.size(), 2u) << kernelsText(c.fused);
  for (const lower::KernelCall& call : c.fused.calls)
    for (const kir::Stage& s : call.kernel.stages) EXPECT_EQ(countReductions(s.value), 1) << kernelsText(c.fused);
  EXPECT_TRUE(sameOutputs(c.fused, c.unfused));
}

// EfficientNet's Conv -> SiLU: y = c * Sigmoid(c). Once Sigmoid is inlined
// into the Mul, the Mul is the Conv's only reader, with both reads at the
// same element: the Conv joins it as one shared sum.
std::unique_ptr<ir::Model> convSilu() {
  TestGraph g;
  ir::Value* x = g.input("x", {1, 4, 6, 6});
  ir::Node* conv = g.node("Conv", {x, g.randomConstant("w", {8, 4, 3, 3}), g.randomConstant("b", {8})}, "conv");
  setInts(conv, "pads", {1, 1, 1, 1});
  ir::Value* c = conv->outputs[0];
  g.output(g.op("Mul", {c, g.op("Sigmoid", {c}, "s")}, "y"));
  return g.take();
}

TEST(FuseKernelsTest, ConvSiluSharesOneSum) {
  Compiled c = compileBoth(convSilu);
  EXPECT_EQ(c.unfused.calls.size(), 3u) << kernelsText(c.unfused);
  ASSERT_EQ(c.fused.calls.size(), 1u) << kernelsText(c.fused);
  const kir::Kernel& k = c.fused.calls[0].kernel;
  ASSERT_EQ(k.stages.size(), 1u);
  // Two uses of one reduce node: the tree counts it twice, the DAG once.
  EXPECT_EQ(countReductions(k.stages[0].value), 2) << kernelsText(c.fused);
  std::vector<const kir::ExprNode*> reduces;
  std::function<void(const kir::Expr&)> collect = [&](const kir::Expr& e) {
    if (e->kind == kir::ExprNode::Kind::kReduce) reduces.push_back(e.node().get());
    for (const kir::Expr& op : e->operands) collect(op);
  };
  collect(k.stages[0].value);
  ASSERT_EQ(reduces.size(), 2u);
  EXPECT_EQ(reduces[0], reduces[1]) << "both reads share one sum";
  EXPECT_TRUE(sameOutputs(c.fused, c.unfused));
}

// Relu feeding a MatMul is read inside the reduction: inlining it would
// recompute it N times per element, so it stays a kernel of its own. A value
// read by two kernels stays too.
std::unique_ptr<ir::Model> operandOfReduction() {
  TestGraph g;
  ir::Value* x = g.input("x", {4, 8});
  ir::Value* r = g.op("Relu", {x}, "r");
  ir::Value* m = g.op("MatMul", {r, g.randomConstant("w", {8, 3})}, "m");
  ir::Value* e = g.op("Exp", {x}, "e");
  g.output(g.op("Neg", {e}, "n"));
  g.output(g.op("Abs", {e}, "a"));
  g.output(m);
  return g.take();
}

TEST(FuseKernelsTest, KeepsProducersReadInsideReductionsOrByTwoKernels) {
  Compiled c = compileBoth(operandOfReduction);
  EXPECT_EQ(c.fused.calls.size(), c.unfused.calls.size()) << kernelsText(c.fused);
  EXPECT_TRUE(sameOutputs(c.fused, c.unfused));
}

// Across a Reshape (a view of the same buffer) and a Transpose (a permuted
// read): both are loads with index expressions, inlined exactly.
std::unique_ptr<ir::Model> throughViews() {
  TestGraph g;
  ir::Value* x = g.input("x", {2, 3, 4});
  ir::Value* a = g.op("Exp", {x}, "a");
  ir::Value* r = g.op("Reshape", {a, g.int64s("shape", {6, 4})}, "r");
  ir::Node* t = g.node("Transpose", {r}, "t");
  setInts(t, "perm", {1, 0});
  ir::Value* f = g.op("Reshape", {t->outputs[0], g.int64s("flat", {3, 8})}, "f");
  g.output(g.op("Relu", {f}, "y"));
  return g.take();
}

TEST(FuseKernelsTest, FusesThroughReshapeAndTranspose) {
  Compiled c = compileBoth(throughViews);
  EXPECT_LT(c.fused.calls.size(), c.unfused.calls.size()) << kernelsText(c.fused);
  EXPECT_EQ(c.fused.calls.size(), 1u) << kernelsText(c.fused);
  EXPECT_TRUE(sameOutputs(c.fused, c.unfused));
}

// The attention projection as PyTorch exports it: MatMul + bias, then a
// Reshape splitting the hidden dim into heads. Viewed through the Reshape,
// the fused index stays affine (no div/mod), which the contraction codegen
// needs; a Reshape that regroups across a dim keeps the general index.
std::unique_ptr<ir::Model> projectionIntoHeads(std::vector<int64_t> heads_shape) {
  TestGraph g;
  ir::Value* x = g.input("x", {1, 6, 8});
  ir::Value* m = g.op("MatMul", {x, g.randomConstant("w", {8, 8})}, "m");
  ir::Value* a = g.op("Add", {m, g.randomConstant("b", {8})}, "a");
  g.output(g.op("Reshape", {a, g.int64s("shape", heads_shape)}, "y"));
  return g.take();
}

bool hasDivOrMod(const kir::Kernel& kernel) {
  std::string text = kir::toString(kernel);
  return text.find("div(") != std::string::npos || text.find("mod(") != std::string::npos;
}

TEST(FuseKernelsTest, ReshapeIntoHeadsKeepsAffineIndex) {
  Compiled c = compileBoth([] { return projectionIntoHeads({1, 6, 2, 4}); });
  ASSERT_EQ(c.fused.calls.size(), 1u) << kernelsText(c.fused);
  EXPECT_FALSE(hasDivOrMod(c.fused.calls[0].kernel)) << kernelsText(c.fused);
  EXPECT_TRUE(sameOutputs(c.fused, c.unfused));

  // [6, 8] -> [4, 12]: rows straddle the old ones, so div/mod must stay.
  Compiled regroup = compileBoth([] { return projectionIntoHeads({4, 12}); });
  ASSERT_FALSE(regroup.fused.calls.empty());
  EXPECT_TRUE(hasDivOrMod(regroup.fused.calls.back().kernel)) << kernelsText(regroup.fused);
  EXPECT_TRUE(sameOutputs(regroup.fused, regroup.unfused));
}

// A channel shuffle over channels-last data, Exp -> Reshape [N, H, W, 2,
// C/2] -> Transpose(0 1 2 4 3) -> Reshape [N, H, W, C] -> Relu: one kernel
// whose read divides only the channel (c % 2, c / 2), not the flat index,
// whose division by C/2 and by H*W*C would cost every element.
TEST(FuseKernelsTest, ChannelShuffleDividesOnlyTheChannel) {
  auto make = [] {
    TestGraph g;
    ir::Value* x = g.input("x", {1, 3, 5, 12});
    ir::Value* a = g.op("Exp", {x}, "a");
    ir::Value* grouped = g.op("Reshape", {a, g.int64s("grouped_shape", {1, 3, 5, 2, 6})}, "grouped");
    ir::Node* t = g.node("Transpose", {grouped}, "t");
    setInts(t, "perm", {0, 1, 2, 4, 3});
    ir::Value* merged = g.op("Reshape", {t->outputs[0], g.int64s("merged_shape", {1, 3, 5, 12})}, "merged");
    g.output(g.op("Relu", {merged}, "y"));
    return g.take();
  };
  Compiled c = compileBoth(make);
  ASSERT_EQ(c.fused.calls.size(), 1u) << kernelsText(c.fused);
  const std::string text = kir::toString(c.fused.calls[0].kernel);
  EXPECT_NE(text.find("mod(v3, 2)"), std::string::npos) << text;
  EXPECT_NE(text.find("div(v3, 2)"), std::string::npos) << text;
  EXPECT_EQ(text.find("div(add"), std::string::npos) << text;
  EXPECT_EQ(text.find("mod(add"), std::string::npos) << text;
  EXPECT_TRUE(sameOutputs(c.fused, c.unfused));
}

// Attention scores from head-split projections, as PyTorch exports them:
// Q transposed to [B, H, S, D], K to [B, H, D, S], then MatMul. A third
// Transpose of a projection feeds an Exp, not a reduction.
std::unique_ptr<ir::Model> transposedHeads() {
  TestGraph g;
  ir::Value* x = g.input("x", {2, 6, 8});
  auto heads = [&](const std::string& name, std::vector<int64_t> perm) {
    ir::Value* m = g.op("MatMul", {x, g.randomConstant("w_" + name, {8, 8})}, name + "_mm");
    ir::Value* r = g.op("Reshape", {m, g.int64s(name + "_shape", {2, 6, 2, 4})}, name + "_heads");
    ir::Node* t = g.node("Transpose", {r}, name + "_t");
    setInts(t, "perm", perm);
    return t->outputs[0];
  };
  ir::Value* scores = g.op("MatMul", {heads("q", {0, 2, 1, 3}), heads("k", {0, 2, 3, 1})}, "scores");
  g.output(g.op("Relu", {scores}, "y"));
  g.output(g.op("Exp", {heads("e", {0, 2, 1, 3})}, "e"));
  return g.take();
}

int countOrigins(const lower::Program& program, const std::string& op) {
  int n = 0;
  for (const lower::KernelCall& call : program.calls)
    n += call.kernel.origin.rfind(op, 0) == 0 && call.kernel.origin.find(" + ") == std::string::npos;
  return n;
}

// On CUDA (permutations_into_reductions) the transposes read inside the
// scores' reduction are inlined into it as permuted loads with plain
// variables. On the CPU (permutations_keep_innermost) only Q's is: K's
// moves the innermost axis, along which the scores' vector loads of K run,
// so it stays a kernel of its own. Both compute the unfused program's
// outputs.
TEST(FuseKernelsTest, TransposesIntoReductionsKeepTheInnermostAxisOnTheCpu) {
  for (const char* target : {"cpu", "cuda"}) {
    SCOPED_TRACE(target);
    auto [unfused, fused] = compileBoth(transposedHeads, target);
    ASSERT_FALSE(fused.calls.empty());
    const bool cuda = std::string(target) == "cuda";
    // The Exp's Transpose is inlined into the Exp either way.
    EXPECT_EQ(countOrigins(fused, "Transpose"), cuda ? 0 : 1) << kernelsText(fused);
    bool found = false;
    for (const lower::KernelCall& call : fused.calls) {
      if (call.kernel.origin.find("MatMul 'MatMul_scores'") == std::string::npos) continue;
      found = true;
      EXPECT_NE(call.kernel.origin.find("Transpose 'Transpose_q_t'"), std::string::npos) << call.kernel.origin;
      EXPECT_EQ(call.kernel.origin.find("Transpose 'Transpose_k_t'") != std::string::npos, cuda) << call.kernel.origin;
      EXPECT_FALSE(hasDivOrMod(call.kernel)) << kernelsText(fused);
    }
    EXPECT_TRUE(found) << kernelsText(fused);
    if (!cuda) {
      bool k_alone = false;
      for (const lower::KernelCall& call : fused.calls)
        k_alone = k_alone || call.kernel.origin == "Transpose 'Transpose_k_t'";
      EXPECT_TRUE(k_alone) << kernelsText(fused);
    }
    EXPECT_TRUE(sameOutputs(fused, unfused));
  }
}

// Attention's context as PyTorch exports it: a batched MatMul, Transpose
// back to [B, S, H, D], Reshape to [B, S, H*D], then the output projection.
std::unique_ptr<ir::Model> transposedContext() {
  TestGraph g;
  ir::Value* p = g.input("p", {1, 2, 6, 6});
  ir::Value* v = g.input("v", {1, 2, 6, 4});
  ir::Value* context = g.op("MatMul", {p, v}, "context");
  ir::Node* t = g.node("Transpose", {context}, "context_t");
  setInts(t, "perm", {0, 2, 1, 3});
  ir::Value* merged = g.op("Reshape", {t->outputs[0], g.int64s("merged_shape", {1, 6, 8})}, "merged");
  g.output(g.op("MatMul", {merged, g.randomConstant("w_o", {8, 8})}, "y"));
  return g.take();
}

// The context MatMul stores straight into the transposed, reshaped layout
// ([b, s, h*4 + d]: affine, distinct; views_into_stores), and no kernel is
// left for the views. On the CPU too: the Transpose keeps the innermost
// axis, so the stores still run along d.
TEST(FuseKernelsTest, ContractionStoresThroughViews) {
  for (const char* target : {"cpu", "cuda"}) {
    SCOPED_TRACE(target);
    auto [unfused, fused] = compileBoth(transposedContext, target);
    ASSERT_FALSE(fused.calls.empty());
    EXPECT_EQ(fused.calls.size(), 2u) << kernelsText(fused);
    const kir::Kernel& context = fused.calls[0].kernel;
    EXPECT_NE(context.origin.find("Transpose"), std::string::npos) << kernelsText(fused);
    ASSERT_EQ(context.stages.size(), 1u);
    EXPECT_TRUE(kir::storesDistinctAffine(context.stages[0])) << kernelsText(fused);
    EXPECT_FALSE(hasDivOrMod(context)) << kernelsText(fused);
    EXPECT_TRUE(sameOutputs(fused, unfused));
  }
}

// Concat(relu(conv1x1(x)), conv3x3(x)) on channels, or with the inputs
// swapped, or the 3x3 taken twice.
std::unique_ptr<ir::Model> concatOfConvs(bool swapped, bool twice) {
  TestGraph g;
  ir::Value* x = g.input("x", {1, 4, 6, 7});
  ir::Value* a = g.op("Relu", {g.op("Conv", {x, g.randomConstant("w1", {8, 4, 1, 1})}, "conv1x1")}, "relu");
  ir::Node* conv = g.node("Conv", {x, g.randomConstant("w3", {8, 4, 3, 3})}, "conv3x3");
  setInts(conv, "pads", {1, 1, 1, 1});
  ir::Value* b = conv->outputs[0];
  std::vector<ir::Value*> parts = twice     ? std::vector<ir::Value*>{a, b, b}
                                  : swapped ? std::vector<ir::Value*>{b, a}
                                            : std::vector<ir::Value*>{a, b};
  ir::Node* concat = g.node("Concat", parts, "concat");
  setInt(concat, "axis", 1);
  g.output(concat->outputs[0]);
  return g.take();
}

// On the CPU (copies_into_stores) the 3x3 convolution stores into its part
// of the concatenation at the channel offset (8 behind the 1x1's part, or
// 0 ahead of it), and the Concat kernel keeps only the 1x1's stage; read
// twice, it is copied as before. CUDA keeps the copy.
TEST(FuseKernelsTest, ContractionStoresIntoItsPartOfAConcatenation) {
  for (const char* target : {"cpu", "cuda"})
    for (int variant = 0; variant < 3; ++variant) {
      const bool swapped = variant == 1, twice = variant == 2;
      SCOPED_TRACE(std::string(target) + (swapped ? " swapped" : twice ? " twice" : ""));
      auto [unfused, fused] = compileBoth([&] { return concatOfConvs(swapped, twice); }, target);
      ASSERT_EQ(fused.calls.size(), 2u) << kernelsText(fused);
      const bool absorbed = std::string(target) == "cpu" && !twice;
      const kir::Kernel& conv = fused.calls[0].kernel;
      ASSERT_EQ(conv.stages.size(), 1u);
      EXPECT_EQ(fused.calls[0].args[conv.stages[0].buffer] == fused.output_buffers[0], absorbed) << kernelsText(fused);
      const std::string store = kir::toString(conv.stages[0].store_index[1]);
      if (absorbed) EXPECT_EQ(store.find("add(") != std::string::npos, !swapped) << store;
      EXPECT_EQ(fused.calls[1].kernel.stages.size(), absorbed ? 1u : twice ? 3u : 2u) << kernelsText(fused);
      EXPECT_TRUE(sameOutputs(fused, unfused));
    }
}

// Conv1x1(x * s), s per channel: squeeze-and-excitation's scale before the
// block's projection; with `dynamic_weight` the weight is an input.
std::unique_ptr<ir::Model> scaledProjection(bool dynamic_weight) {
  TestGraph g;
  ir::Value* x = g.input("x", {1, 8, 5, 6});
  ir::Value* scale = g.op("Sigmoid", {g.op("GlobalAveragePool", {x}, "pool")}, "gate");
  ir::Value* w = dynamic_weight ? g.input("w", {4, 8, 1, 1}) : g.randomConstant("w", {4, 8, 1, 1});
  g.output(g.op("Conv", {g.op("Mul", {x, scale}, "scaled"), w}, "project"));
  return g.take();
}

// On the CPU (scales_into_contractions) the scale is inlined into the
// projection's sum as its activation operand, `sum(x * s * w)`, and no
// kernel writes x * s; against a weight that is an input, or on CUDA, the
// Mul stays a kernel.
TEST(FuseKernelsTest, ChannelScaleFusesIntoTheProjection) {
  for (const char* target : {"cpu", "cuda"})
    for (bool dynamic_weight : {false, true}) {
      SCOPED_TRACE(std::string(target) + (dynamic_weight ? " dynamic weight" : ""));
      auto [unfused, fused] = compileBoth([&] { return scaledProjection(dynamic_weight); }, target);
      ASSERT_FALSE(fused.calls.empty());
      const bool inlined = std::string(target) == "cpu" && !dynamic_weight;
      const kir::Kernel& last = fused.calls.back().kernel;
      EXPECT_EQ(last.origin.find("Mul_scaled") != std::string::npos, inlined) << kernelsText(fused);
      const std::string value = kir::toString(last.stages.back().value);
      EXPECT_EQ(value.find("sum[") != std::string::npos && value.find("mul(mul(") != std::string::npos, inlined)
          << value;
      EXPECT_TRUE(sameOutputs(fused, unfused));
    }
}

// Affine stores are distinct when each axis feeds one index and each index's
// coefficients nest; two axes overlapping in one index collide.
TEST(FuseKernelsTest, DistinctAffineStores) {
  kir::IterVar h{1, 3}, d{2, 4};
  kir::Stage stage;
  stage.axes = {h, d};
  stage.store_index = {kir::Expr(h) * kir::Expr::index(4) + kir::Expr(d)};
  EXPECT_TRUE(kir::storesDistinctAffine(stage));
  stage.store_index = {kir::Expr(h) * kir::Expr::index(3) + kir::Expr(d)};  // h=1,d=0 and h=0,d=3
  EXPECT_FALSE(kir::storesDistinctAffine(stage));
  stage.store_index = {kir::Expr(d), kir::Expr(h)};
  EXPECT_TRUE(kir::storesDistinctAffine(stage));
  stage.store_index = {kir::Expr(d), kir::Expr(d)};
  EXPECT_FALSE(kir::storesDistinctAffine(stage));
}

TEST(FuseKernelsTest, DisabledByNameAndReported) {
  driver::CompileOptions options;
  options.pipeline.disabled = {"fuse-kernels"};
  driver::CompileSummary summary;
  auto unfused = compileProgram(residual, options, &summary);
  ASSERT_TRUE(unfused.isOk()) << unfused.status().message();
  for (const auto& record : summary.passes) EXPECT_NE(record.name, "fuse-kernels");

  options.pipeline.disabled.clear();
  auto fused = compileProgram(residual, options, &summary);
  ASSERT_TRUE(fused.isOk());
  EXPECT_LT(fused->calls.size(), unfused->calls.size());
  auto record = std::find_if(summary.passes.begin(), summary.passes.end(),
                             [](const passes::PassRecord& r) { return r.name == "fuse-kernels"; });
  ASSERT_NE(record, summary.passes.end());
  EXPECT_EQ(record->nodes_before, unfused->calls.size()) << "kernels before";
  EXPECT_EQ(record->nodes_after, fused->calls.size());
}

TEST(SubstituteTest, ReplacesVariablesAndShiftsReductionIds) {
  kir::KernelBuilder b("k");
  auto in = b.input("in", ir::DType::kFloat32, {4, 4});
  kir::IterVar i = b.var("i", 4), k = b.var("k", 4), j = b.var("j", 4);
  kir::Expr body = kir::reduce(kir::ReduceOp::kSum, {k}, in(i, k));
  kir::Expr replaced = kir::substitute(body, {{i.id, kir::Expr(j) + kir::Expr::index(1)}});
  EXPECT_EQ(kir::toString(replaced), "sum[v1 < 4](%0[add(v2, 1), v1])");
  kir::Expr shifted = kir::shiftVarIds(body, 10);
  EXPECT_EQ(kir::toString(shifted), "sum[v11 < 4](%0[v10, v11])");
  EXPECT_EQ(kir::maxVarId(shifted), 11);
  EXPECT_EQ(kir::toString(kir::remapParams(body, {3})), "sum[v1 < 4](%3[v0, v1])");
}

}  // namespace
}  // namespace kiln::testing
