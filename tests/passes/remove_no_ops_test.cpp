// remove-no-ops: each no-op form goes, look-alikes that change data stay, a
// graph output keeps its name, and the outputs are unchanged.
#include <gtest/gtest.h>

#include "compiler/ir/printer.h"
#include "tests/passes/model_check.h"

namespace kiln::testing {
namespace {

std::unique_ptr<ir::Model> noOps() {
  TestGraph g;
  ir::Value* x = g.input("x", {2, 3, 4});
  ir::Value* v = g.op("Exp", {x}, "e");
  v = g.op("Identity", {v}, "id");
  v = g.op("Reshape", {v, g.int64s("same", {2, 3, 4})}, "reshape");
  ir::Node* t = g.node("Transpose", {v}, "t");
  setInts(t, "perm", {0, 1, 2});
  ir::Node* cast = g.node("Cast", {t->outputs[0]}, "cast");
  setInt(cast, "to", static_cast<int64_t>(ir::DType::kFloat32));
  ir::Node* drop = g.node("Dropout", {cast->outputs[0]}, "drop", 2);  // mask unused
  ir::Node* unsq = g.node("Unsqueeze", {drop->outputs[0], g.int64s("axes0", {0})}, "unsq");
  ir::Node* sq = g.node("Squeeze", {unsq->outputs[0], g.int64s("axes0b", {0})}, "sq");
  v = g.op("Expand", {sq->outputs[0], g.int64s("shape", {2, 3, 4})}, "expand");
  v = g.op("Pad", {v, g.int64s("zero_pads", {0, 0, 0, 0, 0, 0})}, "pad");
  v = g.op("Slice", {v, g.int64s("starts", {0}), g.int64s("ends", {100}), g.int64s("axes", {2})}, "slice");
  ir::Node* concat = g.node("Concat", {v}, "concat");
  setInt(concat, "axis", 0);
  // These change the data and stay.
  ir::Node* real_t = g.node("Transpose", {concat->outputs[0]}, "real_t");
  setInts(real_t, "perm", {0, 2, 1});
  ir::Value* reversed = g.op("Slice", {real_t->outputs[0], g.int64s("rs", {-1}), g.int64s("re", {-100}),
                                       g.int64s("ra", {2}), g.int64s("rstep", {-1})},
                             "reversed");
  g.output(g.op("Identity", {reversed}, "y"));  // a graph output: name kept
  return g.take();
}

TEST(RemoveNoOpsTest, RemovesEveryNoOpFormAndKeepsOutputName) {
  EXPECT_EQ(opSequence(noOps()->graph),
            "Exp,Identity,Reshape,Transpose,Cast,Dropout,Unsqueeze,Squeeze,Expand,Pad,Slice,Concat,Transpose,Slice,"
            "Identity");
  auto after = runPasses(noOps, {"remove-no-ops", "eliminate-dead-nodes"});
  EXPECT_EQ(opSequence(after->graph), "Exp,Transpose,Slice") << ir::printModel(*after);
  ASSERT_EQ(after->graph.outputs.size(), 1u);
  EXPECT_EQ(after->graph.outputs[0]->name, "y");
  EXPECT_EQ(after->graph.outputs[0]->producer, after->graph.nodes().back().get());
  EXPECT_TRUE(after->graph.verify().isOk());
  EXPECT_TRUE(passesKeepOutputs(noOps, {"remove-no-ops", "eliminate-dead-nodes"}));
}

// An Identity from a graph input to a graph output has nothing to take the
// output's name: it stays (lowering copies it).
TEST(RemoveNoOpsTest, KeepsIdentityBetweenInputAndOutput) {
  auto make = [] {
    TestGraph g;
    ir::Value* x = g.input("x", {4});
    g.output(g.op("Identity", {x}, "y"));
    return g.take();
  };
  auto after = runPasses(make, {"remove-no-ops"});
  EXPECT_EQ(opSequence(after->graph), "Identity");
  EXPECT_TRUE(passesKeepOutputs(make, {"remove-no-ops"}));
}

// Dropout whose mask is read is not a no-op.
TEST(RemoveNoOpsTest, KeepsDropoutWithUsedMask) {
  auto make = [] {
    TestGraph g;
    ir::Value* x = g.input("x", {4});
    ir::Node* drop = g.node("Dropout", {x}, "d", 2);
    g.output(drop->outputs[0]);
    g.output(drop->outputs[1]);
    return g.take();
  };
  EXPECT_EQ(opSequence(runPasses(make, {"remove-no-ops"})->graph), "Dropout");
}

}  // namespace
}  // namespace kiln::testing
