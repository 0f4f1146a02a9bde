// eliminate-dead-nodes: nodes whose results reach no graph output go, with
// the chains behind them; a node with one output read stays; outputs are
// unchanged.
#include <gtest/gtest.h>

#include <sstream>

#include "compiler/ir/printer.h"
#include "passes/pass.h"
#include "tests/passes/model_check.h"

namespace kiln::testing {
namespace {

// y = Relu(Split(Exp(x))[0]); Split's second output is never read, and
// Sigmoid -> Tanh (reading x) and Neg (reading Exp) lead nowhere.
std::unique_ptr<ir::Model> withDeadNodes() {
  TestGraph g;
  ir::Value* x = g.input("x", {2, 3});
  ir::Value* e = g.op("Exp", {x}, "e");
  ir::Node* split = g.node("Split", {e, g.int64s("split", {1, 2})}, "parts", 2);
  setInt(split, "axis", 1);
  g.output(g.op("Relu", {split->outputs[0]}, "y"));
  g.op("Tanh", {g.op("Sigmoid", {x}, "dead_sigmoid")}, "dead_tanh");
  g.op("Neg", {e}, "dead_neg");
  return g.take();
}

// The records runPipeline returns for `passes`, the model rewritten in place.
std::vector<passes::PassRecord> runRecorded(ir::Model& model, std::vector<std::string> passes) {
  passes::PipelineOptions options;
  options.passes = std::move(passes);
  std::ostringstream log;
  auto records = passes::runPipeline(model, options, log);
  EXPECT_TRUE(records.isOk()) << records.status().message();
  return records.isOk() ? *records : std::vector<passes::PassRecord>{};
}

TEST(EliminateDeadNodesTest, RemovesUnreadNodesAndTheirChains) {
  auto model = withDeadNodes();
  EXPECT_EQ(opSequence(model->graph), "Exp,Split,Relu,Sigmoid,Tanh,Neg");
  std::vector<passes::PassRecord> records = runRecorded(*model, {"eliminate-dead-nodes"});
  ASSERT_EQ(records.size(), 2u);  // infer-shapes, then the pass
  EXPECT_EQ(records[0].nodes_after, 6u) << "shape inference removes nothing";
  EXPECT_EQ(records[1].name, "eliminate-dead-nodes");
  EXPECT_EQ(records[1].nodes_before, 6u);
  EXPECT_EQ(records[1].nodes_after, 3u);
  EXPECT_TRUE(records[1].changed);
  EXPECT_EQ(opSequence(model->graph), "Exp,Split,Relu") << ir::printModel(*model);
  for (const char* name : {"dead_sigmoid", "dead_tanh", "dead_neg"})
    EXPECT_EQ(model->graph.findValue(name), nullptr) << name << " is still a value";
  EXPECT_NE(model->graph.findValue("parts:1"), nullptr) << "Split stays, with both its outputs";
  ASSERT_EQ(model->graph.outputs.size(), 1u);
  EXPECT_EQ(model->graph.outputs[0]->name, "y");
  EXPECT_TRUE(model->graph.verify().isOk());
}

TEST(EliminateDeadNodesTest, KeepsOutputs) { EXPECT_TRUE(passesKeepOutputs(withDeadNodes, {"eliminate-dead-nodes"})); }

// Graph outputs count as read, even one that no node reads and one that is
// also read by another node: nothing goes and the pass reports no change.
TEST(EliminateDeadNodesTest, NothingDeadIsUnchanged) {
  auto make = [] {
    TestGraph g;
    ir::Value* x = g.input("x", {4});
    ir::Value* e = g.op("Exp", {x}, "e");
    g.output(e);
    g.output(g.op("Neg", {e}, "n"));
    return g.take();
  };
  auto model = make();
  std::vector<passes::PassRecord> records = runRecorded(*model, {"eliminate-dead-nodes"});
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1].nodes_before, 2u);
  EXPECT_EQ(records[1].nodes_after, 2u);
  EXPECT_FALSE(records[1].changed);
  EXPECT_EQ(opSequence(model->graph), "Exp,Neg");
  EXPECT_TRUE(passesKeepOutputs(make, {"eliminate-dead-nodes"}));
}

}  // namespace
}  // namespace kiln::testing
