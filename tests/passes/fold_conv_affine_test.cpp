// fold-conv-affine: BatchNormalization and per-channel Mul/Add/Sub/Div after a
// Conv become the Conv's weights and bias; the outputs stay the same.
#include <gtest/gtest.h>

#include "compiler/ir/printer.h"
#include "tests/passes/model_check.h"

namespace kiln::testing {
namespace {

// Conv → BatchNormalization → Mul [C,1,1] → Add [1,C,1,1] → Sub scalar → Relu
std::unique_ptr<ir::Model> convChain() {
  TestGraph g;
  ir::Value* x = g.input("x", {1, 3, 6, 6});
  ir::Node* conv = g.node("Conv", {x, g.randomConstant("w", {4, 3, 3, 3}), g.randomConstant("b", {4})}, "conv");
  setInts(conv, "pads", {1, 1, 1, 1});
  ir::Node* bn = g.node("BatchNormalization",
                        {conv->outputs[0], g.randomConstant("scale", {4}, 0.5f, 2.0f), g.randomConstant("shift", {4}),
                         g.randomConstant("mean", {4}), g.randomConstant("var", {4}, 0.1f, 1.0f)},
                        "bn");
  setFloat(bn, "epsilon", 1e-3f);
  ir::Value* m = g.op("Mul", {bn->outputs[0], g.randomConstant("m", {4, 1, 1})}, "mul");
  ir::Value* a = g.op("Add", {g.randomConstant("a", {1, 4, 1, 1}), m}, "add");
  ir::Value* s = g.op("Sub", {a, g.constant("one", {}, {1.0f})}, "sub");
  g.output(g.op("Relu", {s}, "y"));
  return g.take();
}

TEST(FoldConvAffineTest, FoldsBatchNormAndPerChannelOps) {
  EXPECT_EQ(opSequence(convChain()->graph), "Conv,BatchNormalization,Mul,Add,Sub,Relu");
  auto after = runPasses(convChain, {"fold-conv-affine"});
  EXPECT_EQ(opSequence(after->graph), "Conv,Relu") << ir::printModel(*after);
  const ir::Node& conv = *after->graph.nodes()[0];
  EXPECT_EQ(conv.outputs[0]->name, "sub") << "the Conv produces the last folded node's output";
  ASSERT_TRUE(conv.input(2) && conv.input(2)->isConstant());
  EXPECT_EQ(conv.input(2)->constant->dims(), std::vector<int64_t>{4});
  EXPECT_TRUE(passesKeepOutputs(convChain, {"fold-conv-affine"}));
}

// Not folded: a Mul varying along the spatial axes, a Conv output read twice,
// and a Conv output that is a graph output.
std::unique_ptr<ir::Model> notFoldable() {
  TestGraph g;
  ir::Value* x = g.input("x", {1, 2, 4, 4});
  ir::Value* c1 = g.op("Conv", {x, g.randomConstant("w1", {2, 2, 1, 1})}, "c1");
  ir::Value* m = g.op("Mul", {c1, g.randomConstant("spatial", {1, 1, 4, 4})}, "m");
  ir::Value* c2 = g.op("Conv", {m, g.randomConstant("w2", {2, 2, 1, 1})}, "c2");
  ir::Value* a = g.op("Add", {c2, g.randomConstant("bias", {2, 1, 1})}, "a");
  ir::Value* r = g.op("Relu", {c2}, "r");
  ir::Value* c3 = g.op("Conv", {r, g.randomConstant("w3", {2, 2, 1, 1})}, "c3");
  ir::Value* scaled = g.op("Mul", {c3, g.constant("two", {1}, {2.0f})}, "scaled");
  g.output(a);
  g.output(c3);
  g.output(scaled);
  return g.take();
}

TEST(FoldConvAffineTest, LeavesNonChannelAndSharedResults) {
  auto after = runPasses(notFoldable, {"fold-conv-affine"});
  EXPECT_EQ(opSequence(after->graph), opSequence(notFoldable()->graph));
  EXPECT_TRUE(passesKeepOutputs(notFoldable, {"fold-conv-affine"}));
}

// Grouped conv without bias, BatchNormalization in inference.
TEST(FoldConvAffineTest, GroupedConvWithoutBias) {
  auto make = [] {
    TestGraph g;
    ir::Value* x = g.input("x", {2, 4, 5, 5});
    ir::Node* conv = g.node("Conv", {x, g.randomConstant("w", {6, 2, 3, 3})}, "conv");
    setInt(conv, "group", 2);
    ir::Node* bn = g.node("BatchNormalization",
                          {conv->outputs[0], g.randomConstant("scale", {6}), g.randomConstant("shift", {6}),
                           g.randomConstant("mean", {6}), g.randomConstant("var", {6}, 0.1f, 1.0f)},
                          "bn");
    g.output(bn->outputs[0]);
    return g.take();
  };
  auto after = runPasses(make, {"fold-conv-affine"});
  EXPECT_EQ(opSequence(after->graph), "Conv");
  EXPECT_EQ(after->graph.outputs[0]->name, "bn");
  EXPECT_TRUE(passesKeepOutputs(make, {"fold-conv-affine"}));
}

}  // namespace
}  // namespace kiln::testing
