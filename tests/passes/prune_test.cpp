// The prune step: --prune parsing, magnitude pruning (global, per layer,
// 1x16 blocks in each op's logical [K, N] view) and channel pruning (the
// tensors shrunk, every reader rewritten, residual Adds pruned as one group,
// Concat and Flatten followed), checked on graphs before/after and on outputs
// against the unpruned model (reference evaluator).
#include "passes/prune.h"

#include <gtest/gtest.h>

#include <cmath>

#include "compiler/ir/printer.h"
#include "compiler/prune/weight_masks.h"
#include "tests/passes/model_check.h"

namespace kiln::testing {
namespace {

// Seeded values in [-1, 1) whose output channels `zero` along `out_dim` are 0.
ir::Value* weightWithZeroChannels(TestGraph& g, const std::string& name, std::vector<int64_t> dims,
                                  std::vector<int64_t> zero, size_t out_dim = 0) {
  int64_t count = 1, inner = 1;
  for (int64_t d : dims) count *= d;
  for (size_t d = out_dim + 1; d < dims.size(); ++d) inner *= dims[d];
  std::vector<float> values(static_cast<size_t>(count));
  uint32_t state = static_cast<uint32_t>(std::hash<std::string>{}(name));
  for (int64_t i = 0; i < count; ++i) {
    state = state * 1664525u + 1013904223u;
    float v = static_cast<float>(state >> 8) / static_cast<float>(1u << 24) * 2.0f - 1.0f;
    int64_t channel = (i / inner) % dims[out_dim];
    bool zeroed = std::find(zero.begin(), zero.end(), channel) != zero.end();
    values[static_cast<size_t>(i)] = zeroed ? 0.0f : (std::fabs(v) < 0.1f ? 0.5f : v);  // live channels stay large
  }
  return g.constant(name, std::move(dims), std::move(values));
}

std::shared_ptr<passes::PruneSpec> spec(const std::string& text) {
  auto parsed = passes::parsePruneSpec(text);
  EXPECT_TRUE(parsed.isOk()) << parsed.status().message();
  auto s = std::make_shared<passes::PruneSpec>(*parsed);
  s->report = std::make_shared<passes::PruneReport>();
  return s;
}

driver::CompileOptions pruneOptions(std::shared_ptr<passes::PruneSpec> s) {
  driver::CompileOptions o;
  o.pipeline.opt_level = 0;
  o.pipeline.prune = std::move(s);
  return o;
}

std::unique_ptr<ir::Model> pruned(const ModelFactory& make, std::shared_ptr<passes::PruneSpec> s) {
  auto model = make();
  std::ostringstream log;
  auto records = passes::runPipeline(*model, pruneOptions(std::move(s)).pipeline, log);
  EXPECT_TRUE(records.isOk()) << records.status().message();
  return model;
}

// The node producing the value named `name` (TestGraph names nodes OP_out).
const ir::Node& nodeNamed(const ir::Model& m, const std::string& name) {
  for (const auto& n : m.graph.nodes())
    if (!n->outputs.empty() && n->outputs[0]->name == name) return *n;
  ADD_FAILURE() << "no node " << name;
  return *m.graph.nodes()[0];
}

std::vector<int64_t> dimsOf(const ir::Model& m, const std::string& node, size_t input) {
  return nodeNamed(m, node).input(input)->constant->dims();
}

// The unpruned and pruned models agree on random inputs.
::testing::AssertionResult keepsOutputs(const ModelFactory& make, std::shared_ptr<passes::PruneSpec> s,
                                        double rel = 1e-4) {
  driver::CompileOptions dense;
  dense.pipeline.opt_level = 0;
  auto a = compileProgram(make, dense);
  auto b = compileProgram(make, pruneOptions(std::move(s)));
  if (!a || !b) return ::testing::AssertionFailure() << "compile failed";
  return sameOutputs(*a, *b, rel);
}

TEST(PruneSpecTest, ParsesMethodsRatiosAndOptions) {
  auto m = passes::parsePruneSpec("magnitude:0.5");
  ASSERT_TRUE(m.isOk());
  EXPECT_EQ(m->method, passes::PruneSpec::Method::kMagnitude);
  EXPECT_DOUBLE_EQ(m->ratio, 0.5);
  EXPECT_FALSE(m->blocks);
  auto b = passes::parsePruneSpec("magnitude:0.8:per-layer:block");
  ASSERT_TRUE(b.isOk());
  EXPECT_TRUE(b->blocks && b->per_layer);
  auto c = passes::parsePruneSpec("channels:0.3");
  ASSERT_TRUE(c.isOk());
  EXPECT_EQ(c->method, passes::PruneSpec::Method::kChannels);
  for (const char* bad :
       {"magnitude", "magnitude:", "magnitude:1", "magnitude:0", "magnitude:-0.1", "magnitude:abc",
        "magnitude:0.5:blocks", "magnitude:0.5:block:block", "channels:0.5:block", "weights:0.5", "channels:1.5", ""}) {
    auto r = passes::parsePruneSpec(bad);
    ASSERT_FALSE(r.isOk()) << bad;
    EXPECT_NE(r.status().message().find("--prune"), std::string::npos) << r.status().message();
  }
  EXPECT_NE(passes::parsePruneSpec("magnitude:1.5").status().message().find("out of range"), std::string::npos);
}

TEST(WeightMasksTest, BlocksRunAlongOutputsOfTheLogicalView) {
  // Gemm transB: B is [N=20, K=3]; a block is one k and 16 consecutive n.
  prune::WeightView v{20, 3, 3, 1};
  EXPECT_EQ(v.blocksPerInner(), 2);
  std::vector<float> w(60);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i + 1);
  std::vector<uint8_t> pruned(6, 0);
  pruned[1 * 2 + 0] = 1;  // k = 1, n = 0..15
  prune::zeroUnits(w, v, prune::Unit::kBlock, pruned);
  for (int64_t n = 0; n < 20; ++n)
    for (int64_t k = 0; k < 3; ++k)
      EXPECT_EQ(w[static_cast<size_t>(n * 3 + k)] == 0, k == 1 && n < 16) << n << "," << k;
  // Lowest scores: exact count, ties broken by position.
  std::vector<float> scores = {3, 1, 2, 1, 5};
  EXPECT_EQ(prune::lowestScores(scores, 2), (std::vector<uint8_t>{0, 1, 0, 1, 0}));
  EXPECT_EQ(prune::lowestScores(scores, 3), (std::vector<uint8_t>{0, 1, 1, 1, 0}));
}

// Two MatMuls of different scales: the global threshold takes more from the
// smaller one; per-layer takes the ratio from each.
std::unique_ptr<ir::Model> twoMatMuls() {
  TestGraph g;
  ir::Value* x = g.input("x", {2, 32});
  ir::Value* h = g.op("MatMul", {x, g.randomConstant("w1", {32, 48}, -1, 1)}, "h");
  ir::Value* r = g.op("Relu", {h}, "r");
  g.output(g.op("MatMul", {r, g.randomConstant("w2", {48, 32}, -0.1f, 0.1f)}, "y"));
  return g.take();
}

TEST(PruneMagnitudeTest, GlobalAndPerLayer) {
  auto global = spec("magnitude:0.5");
  auto m = pruned(twoMatMuls, global);
  ASSERT_EQ(global->report->layers.size(), 2u);
  const auto& l1 = global->report->layers[0];
  const auto& l2 = global->report->layers[1];
  EXPECT_EQ(l1.params_before + l2.params_before, 2 * 32 * 48);
  EXPECT_EQ(l1.nonzero_after + l2.nonzero_after, 32 * 48) << "exactly half of all weights remain";
  EXPECT_GT(l2.sparsity(), 0.8) << "the small-scale layer loses most";
  EXPECT_EQ(l1.flops_before, 2 * 2 * 32 * 48);
  EXPECT_EQ(l1.flops_after, 2 * 2 * l1.nonzero_after);
  EXPECT_EQ(dimsOf(*m, "h", 1), (std::vector<int64_t>{32, 48})) << "magnitude pruning keeps shapes";

  auto per_layer = spec("magnitude:0.25:per-layer");
  pruned(twoMatMuls, per_layer);
  for (const auto& l : per_layer->report->layers) EXPECT_NEAR(l.sparsity(), 0.25, 1e-3) << l.node;
}

TEST(PruneMagnitudeTest, BlocksAreOneKBySixteenOutputs) {
  auto make = [] {
    TestGraph g;
    ir::Value* x = g.input("x", {1, 8, 5, 5});
    ir::Value* c = g.op("Conv", {x, g.randomConstant("wc", {40, 8, 1, 1})}, "c");  // 40 = 16 + 16 + 8
    ir::Value* f = g.op("Flatten", {g.op("GlobalAveragePool", {c}, "gap")}, "f");
    ir::Node* gemm = g.node("Gemm", {f, g.randomConstant("wg", {24, 40})}, "y");  // transB: [N, K]
    setInt(gemm, "transB", 1);
    g.output(gemm->outputs[0]);
    return g.take();
  };
  auto s = spec("magnitude:0.5:block:per-layer");
  auto m = pruned(make, s);
  // Conv [M, C, 1, 1]: a block is 16 consecutive output channels at one input channel.
  const ir::Tensor& wc = *nodeNamed(*m, "c").input(1)->constant;
  auto conv = wc.bytes();
  const float* cw = reinterpret_cast<const float*>(conv.data());
  int zero_blocks = 0;
  for (int64_t ci = 0; ci < 8; ++ci)
    for (int64_t b = 0; b < 3; ++b) {
      int zeros = 0, size = b < 2 ? 16 : 8;
      for (int64_t o = b * 16; o < b * 16 + size; ++o) zeros += cw[o * 8 + ci] == 0;
      EXPECT_TRUE(zeros == 0 || zeros == size) << "block (" << ci << "," << b << ") partly zero";
      zero_blocks += zeros == size;
    }
  EXPECT_EQ(zero_blocks, 12) << "half of 24 blocks";
  // Gemm transB [N=24, K=40]: blocks along n at one k (stride K in storage).
  const float* gw = reinterpret_cast<const float*>(nodeNamed(*m, "y").input(1)->constant->bytes().data());
  for (int64_t k = 0; k < 40; ++k)
    for (int64_t b = 0; b < 2; ++b) {
      int zeros = 0, size = b == 0 ? 16 : 8;
      for (int64_t n = b * 16; n < b * 16 + size; ++n) zeros += gw[n * 40 + k] == 0;
      EXPECT_TRUE(zeros == 0 || zeros == size) << "Gemm block (" << k << "," << b << ") partly zero";
    }
}

TEST(PruneMagnitudeTest, NothingToPruneIsAnError) {
  auto make = [] {
    TestGraph g;
    ir::Value* x = g.input("x", {2, 3});
    g.output(g.op("Relu", {x}, "y"));
    return g.take();
  };
  auto model = make();
  std::ostringstream log;
  auto r = passes::runPipeline(*model, pruneOptions(spec("magnitude:0.5")).pipeline, log);
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("nothing can be pruned"), std::string::npos) << r.status().message();
}

// Conv -> BatchNorm -> Relu -> Conv -> output, conv1's channels 1 and 4 all
// zero (bias and BN shift zero there): pruning them changes nothing.
std::unique_ptr<ir::Model> convBnConv() {
  TestGraph g;
  ir::Value* x = g.input("x", {1, 3, 6, 6});
  ir::Node* c1 = g.node("Conv",
                        {x, weightWithZeroChannels(g, "w1", {6, 3, 3, 3}, {1, 4}),
                         g.constant("b1", {6}, {0.1f, 0, 0.2f, -0.1f, 0, 0.3f})},
                        "c1");
  setInts(c1, "pads", {1, 1, 1, 1});
  ir::Node* bn = g.node("BatchNormalization",
                        {c1->outputs[0], g.randomConstant("scale", {6}, 0.5f, 2.0f),
                         g.constant("shift", {6}, {0.1f, 0, -0.2f, 0.1f, 0, 0.2f}),
                         g.constant("mean", {6}, {0, 0, 0, 0, 0, 0}), g.randomConstant("var", {6}, 0.5f, 1.0f)},
                        "bn");
  ir::Value* r = g.op("Relu", {bn->outputs[0]}, "r");
  g.output(g.op("Conv", {r, g.randomConstant("w2", {5, 6, 1, 1})}, "c2"));
  return g.take();
}

TEST(PruneChannelsTest, ShrinksProducerBatchNormAndReader) {
  auto s = spec("channels:0.3");
  auto m = pruned(convBnConv, s);
  EXPECT_EQ(dimsOf(*m, "c1", 1), (std::vector<int64_t>{4, 3, 3, 3})) << ir::printModel(*m);
  EXPECT_EQ(dimsOf(*m, "c1", 2), (std::vector<int64_t>{4}));
  for (size_t i = 1; i <= 4; ++i) EXPECT_EQ(dimsOf(*m, "bn", i), (std::vector<int64_t>{4}));
  EXPECT_EQ(dimsOf(*m, "c2", 1), (std::vector<int64_t>{5, 4, 1, 1})) << "the reader's input channels follow";
  EXPECT_EQ(s->report->groups_pruned, 1);
  ASSERT_EQ(s->report->groups_kept.size(), 1u) << "c2's output is a graph output";
  EXPECT_NE(s->report->groups_kept[0].find("graph output"), std::string::npos);
  ASSERT_EQ(s->report->layers.size(), 2u);
  EXPECT_EQ(s->report->layers[0].channels_after, 4);
  EXPECT_LT(s->report->layers[1].flops_after, s->report->layers[1].flops_before);
  EXPECT_TRUE(keepsOutputs(convBnConv, spec("channels:0.3")));
}

// A residual block: two producers meet at an Add, so they share one mask;
// the zeroed channels are 2 and 5 in both.
std::unique_ptr<ir::Model> residual() {
  TestGraph g;
  ir::Value* x = g.input("x", {1, 4, 5, 5});
  ir::Value* a = g.op("Conv", {x, weightWithZeroChannels(g, "wa", {8, 4, 1, 1}, {2, 5})}, "a");
  ir::Value* ra = g.op("Relu", {a}, "ra");
  ir::Value* b = g.op("Conv", {ra, weightWithZeroChannels(g, "wb", {8, 8, 1, 1}, {2, 5})}, "b");
  ir::Value* sum = g.op("Add", {b, ra}, "sum");
  ir::Value* pooled = g.op("MaxPool", {sum}, "pool");
  setInts(pooled->producer, "kernel_shape", {2, 2});
  g.output(g.op("Conv", {pooled, g.randomConstant("wc", {3, 8, 1, 1})}, "c"));
  return g.take();
}

TEST(PruneChannelsTest, ResidualAddIsOneGroupWithOneMask) {
  auto s = spec("channels:0.25");
  auto m = pruned(residual, s);
  EXPECT_EQ(dimsOf(*m, "a", 1), (std::vector<int64_t>{6, 4, 1, 1})) << ir::printModel(*m);
  EXPECT_EQ(dimsOf(*m, "b", 1), (std::vector<int64_t>{6, 6, 1, 1})) << "b is producer and reader of the group";
  EXPECT_EQ(dimsOf(*m, "c", 1), (std::vector<int64_t>{3, 6, 1, 1}));
  ASSERT_FALSE(s->report->layers.empty());
  EXPECT_EQ(s->report->layers[0].group, "Conv_a");
  EXPECT_TRUE(keepsOutputs(residual, spec("channels:0.25")));
}

// Concat along channels and Flatten into a Gemm: each side's mask lands at its
// offset; a Flatten row block per channel.
std::unique_ptr<ir::Model> concatFlatten() {
  TestGraph g;
  ir::Value* x = g.input("x", {2, 3, 4, 4});
  ir::Value* a = g.op("Conv", {x, weightWithZeroChannels(g, "wa", {4, 3, 1, 1}, {1})}, "a");
  ir::Value* b = g.op("Conv", {x, weightWithZeroChannels(g, "wb", {4, 3, 1, 1}, {3})}, "b");
  ir::Node* cat = g.node("Concat", {a, b, x}, "cat");
  setInt(cat, "axis", 1);
  ir::Value* pooled = g.op("AveragePool", {cat->outputs[0]}, "pool");
  setInts(pooled->producer, "kernel_shape", {2, 2});
  setInts(pooled->producer, "strides", {2, 2});
  ir::Value* flat = g.op("Flatten", {pooled}, "flat");  // [2, 11 * 2 * 2]
  g.output(g.op("Gemm", {flat, g.randomConstant("wg", {44, 5}), g.randomConstant("bg", {5})}, "y"));
  return g.take();
}

TEST(PruneChannelsTest, ConcatAndFlattenFollowTheChannels) {
  auto s = spec("channels:0.25");
  auto m = pruned(concatFlatten, s);
  EXPECT_EQ(dimsOf(*m, "a", 1), (std::vector<int64_t>{3, 3, 1, 1})) << ir::printModel(*m);
  EXPECT_EQ(dimsOf(*m, "b", 1), (std::vector<int64_t>{3, 3, 1, 1}));
  EXPECT_EQ(dimsOf(*m, "y", 1), (std::vector<int64_t>{36, 5})) << "4 rows per removed channel";
  EXPECT_TRUE(keepsOutputs(concatFlatten, spec("channels:0.25")));
}

TEST(PruneChannelsTest, NothingRemovableIsAnErrorNamingWhy) {
  auto make = [] {
    TestGraph g;
    ir::Value* x = g.input("x", {1, 2, 3, 3});
    ir::Value* c = g.op("Conv", {x, g.randomConstant("w", {4, 2, 1, 1})}, "c");
    g.output(g.op("Softmax", {c}, "y"));
    return g.take();
  };
  auto model = make();
  std::ostringstream log;
  auto r = passes::runPipeline(*model, pruneOptions(spec("channels:0.5")).pipeline, log);
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("no channel can be removed"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("Softmax"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace kiln::testing
