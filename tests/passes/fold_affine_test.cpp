// fold-affine: BatchNormalization and per-channel Mul/Add/Sub/Div after a
// Conv, ConvTranspose, Gemm or MatMul become its weights and bias; the outputs
// stay the same.
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

TEST(FoldAffineTest, FoldsBatchNormAndPerChannelOps) {
  EXPECT_EQ(opSequence(convChain()->graph), "Conv,BatchNormalization,Mul,Add,Sub,Relu");
  auto after = runPasses(convChain, {"fold-affine"});
  EXPECT_EQ(opSequence(after->graph), "Conv,Relu") << ir::printModel(*after);
  const ir::Node& conv = *after->graph.nodes()[0];
  EXPECT_EQ(conv.outputs[0]->name, "sub") << "the Conv produces the last folded node's output";
  ASSERT_TRUE(conv.input(2) && conv.input(2)->isConstant());
  EXPECT_EQ(conv.input(2)->constant->dims(), std::vector<int64_t>{4});
  EXPECT_TRUE(passesKeepOutputs(convChain, {"fold-affine"}));
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

TEST(FoldAffineTest, LeavesNonChannelAndSharedResults) {
  auto after = runPasses(notFoldable, {"fold-affine"});
  EXPECT_EQ(opSequence(after->graph), opSequence(notFoldable()->graph));
  EXPECT_TRUE(passesKeepOutputs(notFoldable, {"fold-affine"}));
}

// Grouped conv without bias, BatchNormalization in inference.
TEST(FoldAffineTest, GroupedConvWithoutBias) {
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
  auto after = runPasses(make, {"fold-affine"});
  EXPECT_EQ(opSequence(after->graph), "Conv");
  EXPECT_EQ(after->graph.outputs[0]->name, "bn");
  EXPECT_TRUE(passesKeepOutputs(make, {"fold-affine"}));
}

// ConvTranspose with groups: W is [C, M/group, k...], so output channel m of
// group g is W's column m within input channels of group g.
TEST(FoldAffineTest, GroupedConvTranspose) {
  auto make = [] {
    TestGraph g;
    ir::Value* x = g.input("x", {1, 4, 3, 3});
    ir::Node* convt = g.node("ConvTranspose", {x, g.randomConstant("w", {4, 3, 2, 2}), g.randomConstant("b", {6})}, "ct");
    setInt(convt, "group", 2);
    ir::Node* bn = g.node("BatchNormalization",
                          {convt->outputs[0], g.randomConstant("scale", {6}), g.randomConstant("shift", {6}),
                           g.randomConstant("mean", {6}), g.randomConstant("var", {6}, 0.1f, 1.0f)},
                          "bn");
    g.output(g.op("Mul", {bn->outputs[0], g.randomConstant("m", {6, 1, 1})}, "y"));
    return g.take();
  };
  auto after = runPasses(make, {"fold-affine"});
  EXPECT_EQ(opSequence(after->graph), "ConvTranspose");
  EXPECT_TRUE(passesKeepOutputs(make, {"fold-affine"}));
}

// Gemm: B scaled per column (transposed or not), C folded as beta*C*s + t
// with beta set to 1; a C that is absent, per column, or full [M, N].
TEST(FoldAffineTest, GemmWithEveryBiasShape) {
  for (const std::vector<int64_t>& c_dims : std::vector<std::vector<int64_t>>{{}, {5}, {1, 5}, {3, 5}, {1}}) {
    for (int trans_b : {0, 1}) {
      auto make = [&] {
        TestGraph g;
        ir::Value* a = g.input("a", {3, 4});
        std::vector<ir::Value*> inputs = {a, g.randomConstant("b", trans_b ? std::vector<int64_t>{5, 4}
                                                                          : std::vector<int64_t>{4, 5})};
        if (!c_dims.empty()) inputs.push_back(g.randomConstant("c", c_dims));
        ir::Node* gemm = g.node("Gemm", inputs, "gemm");
        setInt(gemm, "transB", trans_b);
        setFloat(gemm, "alpha", 0.5f);
        setFloat(gemm, "beta", 2.0f);
        ir::Node* bn = g.node("BatchNormalization",
                              {gemm->outputs[0], g.randomConstant("scale", {5}), g.randomConstant("shift", {5}),
                               g.randomConstant("mean", {5}), g.randomConstant("var", {5}, 0.1f, 1.0f)},
                              "bn");
        ir::Value* sub = g.op("Sub", {g.randomConstant("k", {5}), bn->outputs[0]}, "sub");
        g.output(g.op("Relu", {sub}, "y"));
        return g.take();
      };
      SCOPED_TRACE("C dims " + std::to_string(c_dims.size()) + ", transB " + std::to_string(trans_b));
      auto after = runPasses(make, {"fold-affine"});
      EXPECT_EQ(opSequence(after->graph), "Gemm,Relu");
      EXPECT_TRUE(passesKeepOutputs(make, {"fold-affine"}));
    }
  }
}

// A C that varies along rows only cannot be folded with a per-column map.
TEST(FoldAffineTest, GemmWithRowBiasIsLeft) {
  auto make = [] {
    TestGraph g;
    ir::Value* gemm = g.op("Gemm", {g.input("a", {3, 4}), g.randomConstant("b", {4, 5}), g.randomConstant("c", {3, 1})},
                           "gemm");
    g.output(g.op("Mul", {gemm, g.randomConstant("m", {5})}, "y"));
    return g.take();
  };
  auto after = runPasses(make, {"fold-affine"});
  EXPECT_EQ(opSequence(after->graph), "Gemm,Mul");
}

// MatMul has no bias: a scale folds into B, a map with a shift leaves an Add
// of one constant, and a plain Add is left alone.
TEST(FoldAffineTest, MatMulScalesAndShifts) {
  auto make = [] {
    TestGraph g;
    ir::Value* x = g.input("x", {2, 3, 4});
    ir::Value* m1 = g.op("MatMul", {x, g.randomConstant("w1", {4, 6})}, "m1");
    ir::Value* scaled = g.op("Div", {m1, g.randomConstant("d", {1, 1, 6}, 0.5f, 2.0f)}, "scaled");
    ir::Value* m2 = g.op("MatMul", {scaled, g.randomConstant("w2", {6, 6})}, "m2");
    ir::Value* biased = g.op("Add", {m2, g.randomConstant("bias", {6})}, "biased");
    ir::Value* flat = g.op("Reshape", {biased, g.int64s("shape", {6, 6})}, "flat");
    ir::Value* m3 = g.op("MatMul", {flat, g.randomConstant("w3", {6, 2})}, "m3");
    ir::Node* bn = g.node("BatchNormalization",
                          {m3, g.randomConstant("scale", {2}), g.randomConstant("shift", {2}),
                           g.randomConstant("mean", {2}), g.randomConstant("var", {2}, 0.1f, 1.0f)},
                          "bn");
    g.output(bn->outputs[0]);
    return g.take();
  };
  auto after = runPasses(make, {"fold-affine"});
  EXPECT_EQ(opSequence(after->graph), "MatMul,MatMul,Add,Reshape,MatMul,Add");
  EXPECT_EQ(after->graph.outputs[0]->name, "bn");
  EXPECT_TRUE(passesKeepOutputs(make, {"fold-affine"}));
}

}  // namespace
}  // namespace kiln::testing
