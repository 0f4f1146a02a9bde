// eliminate-common-subexpressions: the graph before/after, and the outputs
// unchanged on random inputs.
#include <gtest/gtest.h>

#include "compiler/ir/printer.h"
#include "tests/passes/model_check.h"

namespace kiln::testing {
namespace {

// Two identical Exp nodes, two identical Adds over them (a chain of
// duplicates), one Add with the operands swapped (not the same inputs), and a
// Transpose twice with different perms (different attributes).
std::unique_ptr<ir::Model> duplicates() {
  TestGraph g;
  ir::Value* x = g.input("x", {3, 3});
  ir::Value* e1 = g.op("Exp", {x}, "e1");
  ir::Value* e2 = g.op("Exp", {x}, "e2");
  ir::Value* a1 = g.op("Add", {e1, x}, "a1");
  ir::Value* a2 = g.op("Add", {e2, x}, "a2");
  ir::Value* swapped = g.op("Add", {x, e1}, "swapped");
  ir::Node* t1 = g.node("Transpose", {a1}, "t1");
  setInts(t1, "perm", {1, 0});
  ir::Node* t2 = g.node("Transpose", {a2}, "t2");
  setInts(t2, "perm", {0, 1});
  ir::Value* s = g.op("Sum", {t1->outputs[0], t2->outputs[0], swapped}, "s");
  g.output(s);
  return g.take();
}

TEST(EliminateCommonSubexpressionsTest, MergesSameOpSameInputsSameAttributes) {
  auto before = duplicates();
  EXPECT_EQ(opSequence(before->graph), "Exp,Exp,Add,Add,Add,Transpose,Transpose,Sum");
  auto after = runPasses(duplicates, {"eliminate-common-subexpressions"});
  EXPECT_EQ(opSequence(after->graph), "Exp,Add,Add,Transpose,Transpose,Sum") << ir::printModel(*after);
  EXPECT_TRUE(after->graph.findValue("e1"));
  EXPECT_FALSE(after->graph.findValue("e2")) << "the later duplicate goes";
  EXPECT_EQ(after->graph.nodes()[4]->inputs[0], after->graph.findValue("a1")) << "the chain collapsed";
  EXPECT_TRUE(passesKeepOutputs(duplicates, {"eliminate-common-subexpressions"}));
}

// A duplicate whose output is a graph output keeps its node (and name);
// Casts to different types are different nodes.
TEST(EliminateCommonSubexpressionsTest, KeepsGraphOutputsAndDistinctAttributes) {
  auto make = [] {
    TestGraph g;
    ir::Value* x = g.input("x", {4});
    g.output(g.op("Relu", {x}, "r1"));
    g.output(g.op("Relu", {x}, "r2"));
    ir::Node* c1 = g.node("Cast", {x}, "c1");
    setInt(c1, "to", static_cast<int64_t>(ir::DType::kFloat64));
    ir::Node* c2 = g.node("Cast", {x}, "c2");
    setInt(c2, "to", static_cast<int64_t>(ir::DType::kInt32));
    g.output(c1->outputs[0]);
    g.output(c2->outputs[0]);
    return g.take();
  };
  auto after = runPasses(make, {"eliminate-common-subexpressions"});
  EXPECT_EQ(opSequence(after->graph), "Relu,Relu,Cast,Cast");
  EXPECT_EQ(after->graph.outputs[1]->name, "r2");
}

TEST(EliminateCommonSubexpressionsTest, IsInTheOptimizingPipelines) {
  for (int level = 1; level <= 3; ++level) {
    auto names = passes::pipelineFor(level);
    EXPECT_NE(std::find(names.begin(), names.end(), "eliminate-common-subexpressions"), names.end());
  }
}

}  // namespace
}  // namespace kiln::testing
