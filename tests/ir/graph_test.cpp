// Graph IR structure: ordering, dead code, verification.
#include <gtest/gtest.h>

#include "compiler/ir/graph.h"

namespace kiln::ir {
namespace {

TensorType floats(int64_t n) { return TensorType{DType::kFloat32, Shape{Dim::known(n)}}; }

Node* addUnary(Graph& g, const std::string& op, Value* in, Value* out) {
  Node* node = g.addNode(op, op + "_" + out->name);
  node->inputs = {in};
  node->outputs = {out};
  out->producer = node;
  return node;
}

TEST(GraphTest, SortPutsProducersFirst) {
  Graph g;
  Value* x = g.addValue("x", floats(4));
  Value* a = g.addValue("a", floats(4));
  Value* b = g.addValue("b", floats(4));
  g.inputs = {x};
  g.outputs = {b};
  addUnary(g, "Relu", a, b);  // reads a before it is produced
  addUnary(g, "Neg", x, a);
  EXPECT_FALSE(g.verify().isOk());
  ASSERT_TRUE(g.sortTopologically().isOk());
  EXPECT_EQ(g.nodes()[0]->op_type, "Neg");
  EXPECT_TRUE(g.verify().isOk());
}

TEST(GraphTest, SortCountsValuesASubgraphCaptures) {
  Graph g;
  Value* x = g.addValue("x", floats(4));
  Value* captured = g.addValue("captured", floats(4));
  Value* y = g.addValue("y", floats(4));
  g.inputs = {x};
  g.outputs = {y};
  // An If whose body reads `captured` from the enclosing graph comes first in
  // the node list; the sort must move the producer of `captured` before it.
  Node* branch = g.addNode("If", "branch");
  branch->inputs = {x};
  branch->outputs = {y};
  y->producer = branch;
  auto body = std::make_shared<Graph>();
  body->parent = &g;
  Value* inner = body->addValue("inner", floats(4));
  addUnary(*body, "Neg", captured, inner);
  body->outputs = {inner};
  Attribute attr;
  attr.kind = Attribute::Kind::kGraph;
  attr.graphs = {body};
  branch->attributes["then_branch"] = attr;
  addUnary(g, "Relu", x, captured);

  ASSERT_EQ(body->outerReads(), std::vector<Value*>{captured});
  ASSERT_TRUE(g.sortTopologically().isOk());
  EXPECT_EQ(g.nodes()[0]->op_type, "Relu");
  EXPECT_EQ(g.nodes()[1]->op_type, "If");
}

TEST(GraphTest, CycleIsAnErrorNamingANode) {
  Graph g;
  g.name = "main";
  Value* a = g.addValue("a", floats(1));
  Value* b = g.addValue("b", floats(1));
  addUnary(g, "Neg", a, b);
  addUnary(g, "Abs", b, a);
  g.outputs = {b};
  Status s = g.sortTopologically();
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("has a cycle through node"), std::string::npos) << s.message();
}

TEST(GraphTest, RemoveDeadNodesKeepsWhatReachesOutputs) {
  Graph g;
  Value* x = g.addValue("x", floats(2));
  Value* used = g.addValue("used", floats(2));
  Value* unused = g.addValue("unused", floats(2));
  g.inputs = {x};
  g.outputs = {used};
  addUnary(g, "Relu", x, used);
  addUnary(g, "Neg", x, unused);
  EXPECT_EQ(g.removeDeadNodes(), 1u);
  ASSERT_EQ(g.nodes().size(), 1u);
  EXPECT_EQ(g.nodes()[0]->op_type, "Relu");
  g.removeUnusedValues();
  EXPECT_EQ(g.findValue("unused"), nullptr);
  EXPECT_NE(g.findValue("used"), nullptr);
}

TEST(GraphTest, OutputNothingProducesFailsVerification) {
  Graph g;
  Value* lonely = g.addValue("lonely", floats(1));
  g.outputs = {lonely};
  Status s = g.verify();
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.message(), "graph output 'lonely' is not produced by any node");
}

TEST(ShapeTest, ElementCountOverflowIsAnError) {
  std::vector<int64_t> huge = {1ll << 40, 1ll << 40};
  auto count = elementCount(huge);
  ASSERT_FALSE(count.isOk());
  EXPECT_EQ(count.status().message(), "tensor element count overflows 64 bits");
  EXPECT_EQ(*elementCount(std::vector<int64_t>{2, 3, 4}), 24);
}

// An empty tensor's other dims still set the strides code computes, so they
// are held to the same limits (libFuzzer folded a constant of dims
// [0, 1196538111922230000, 117]: its strides overflowed).
TEST(ShapeTest, EmptyTensorsNonzeroDimsAreLimitedToo) {
  auto problem = [](std::vector<int64_t> dims) { return tensorSizeProblem(DType::kFloat32, makeShape(dims)); };
  EXPECT_EQ(problem({0, 1196538111922230000, 117}),
            ", whose nonzero dimensions' product overflows 64 bits");
  EXPECT_EQ(problem({0, int64_t{1} << 47}),
            ", whose nonzero dimensions span more than 2^48 bytes");
  EXPECT_EQ(problem({0, 1 << 20, 1 << 10}), std::nullopt);
  EXPECT_EQ(problem({int64_t{1} << 47}), ", of more than 2^48 bytes");
}

}  // namespace
}  // namespace kiln::ir
