// Text and dot printing of the Graph IR, and the Graph's structural helpers.
#include "compiler/ir/printer.h"

#include <gtest/gtest.h>

namespace kiln::ir {
namespace {

TensorType f32(std::vector<int64_t> dims) { return {DType::kFloat32, makeShape(dims)}; }

Node* addNode(Graph& g, const std::string& op, const std::string& name, std::vector<Value*> inputs,
              std::vector<Value*> outputs) {
  Node* node = g.addNode(op, name);
  node->inputs = std::move(inputs);
  node->outputs = std::move(outputs);
  for (size_t i = 0; i < node->outputs.size(); ++i) {
    if (!node->outputs[i]) continue;
    node->outputs[i]->producer = node;
    node->outputs[i]->producer_output = static_cast<int>(i);
  }
  return node;
}

// x -> Conv(w, b) -> Relu -> y
std::unique_ptr<Model> smallModel() {
  auto model = std::make_unique<Model>();
  model->ir_version = 8;
  model->opset_imports[""] = 13;
  model->producer_name = "pytorch";
  model->producer_version = "1.13";
  Graph& g = model->graph;
  g.name = "main";
  Value* x =
      g.addValue("x", {DType::kFloat32, Shape{Dim::named("batch"), Dim::known(3), Dim::known(8), Dim::known(8)}});
  g.inputs.push_back(x);
  Value* w = g.addValue("w");
  w->constant = Tensor::fromValues<float>(DType::kFloat32, {4, 3, 3, 3}, std::vector<float>(108, 0.5f));
  w->type = w->constant->type();
  Value* b = g.addValue("b");
  b->constant = Tensor::fromValues<float>(DType::kFloat32, {4}, std::vector<float>{1, -2, 0.5f, 3});
  b->type = b->constant->type();
  Value* conv_out = g.addValue(
      "conv1_out", {DType::kFloat32, Shape{Dim::named("batch"), Dim::known(4), Dim::known(8), Dim::known(8)}});
  Node* conv = addNode(g, "Conv", "conv1", {x, w, b}, {conv_out});
  Attribute pads;
  pads.kind = Attribute::Kind::kInts;
  pads.ints = {1, 1, 1, 1};
  conv->attributes["pads"] = pads;
  Attribute alpha;
  alpha.kind = Attribute::Kind::kFloat;
  alpha.f = 1.0f;
  Value* y = g.addValue("y", conv_out->type);
  Node* relu = addNode(g, "LeakyRelu", "", {conv_out}, {y});
  relu->name = "act";
  relu->attributes["alpha"] = alpha;
  g.outputs.push_back(y);
  return model;
}

// A shape of up to kMaxRank dims is printed whole; a longer one (a hostile
// model's, bound for a one-line error) keeps its first 8 and last 2.
TEST(ShapeText, ShapesPastTheMaxRankAreElided) {
  EXPECT_EQ(toString(makeShape(std::vector<int64_t>(16, 2))), "2x2x2x2x2x2x2x2x2x2x2x2x2x2x2x2");
  std::vector<int64_t> dims(1000000, 1);
  dims[7] = 8;
  dims[999998] = 9;
  EXPECT_EQ(toString(makeShape(dims)), "1x1x1x1x1x1x1x8x...(999990 more)x9x1");
  EXPECT_EQ(toString(makeShape(std::vector<int64_t>(17, 3))), "3x3x3x3x3x3x3x3x...(7 more)x3x3");
}

TEST(PrinterTest, PrintsSmallModel) {
  auto model = smallModel();
  EXPECT_EQ(printModel(*model),
            "model (ir 8, opset ai.onnx 13, producer 'pytorch 1.13')\n"
            "graph main(%x: float32[batchx3x8x8]) -> (%y: float32[batchx4x8x8]) {\n"
            "  %w = const float32[4x3x3x3]\n"
            "  %b = const float32[4] [1.0, -2.0, 0.5, 3.0]\n"
            "  %conv1_out = Conv 'conv1' (%x, %w, %b) {pads=[1, 1, 1, 1]} : float32[batchx4x8x8]\n"
            "  %y = LeakyRelu 'act' (%conv1_out) {alpha=1.0} : float32[batchx4x8x8]\n"
            "}\n");
}

TEST(PrinterTest, PrintsSubgraphsNestedAndOmittedValues) {
  Model model;
  model.ir_version = 8;
  Graph& g = model.graph;
  g.name = "main";
  Value* cond = g.addValue("cond", {DType::kBool, Shape{}});
  g.inputs.push_back(cond);
  Value* out = g.addValue("out", f32({2}));
  Node* node = addNode(g, "If", "branch", {cond, nullptr}, {out, nullptr});
  Attribute then_attr;
  then_attr.kind = Attribute::Kind::kGraph;
  auto body = std::make_shared<Graph>();
  body->name = "then_body";
  body->parent = &g;
  Value* c = body->addValue("c", f32({2}));
  Node* constant = addNode(*body, "Constant", "k", {}, {c});
  Attribute value;
  value.kind = Attribute::Kind::kTensor;
  value.t = Tensor::fromValues<int64_t>(DType::kInt64, {2}, std::vector<int64_t>{7, 8});
  constant->attributes["value"] = value;
  body->outputs.push_back(c);
  then_attr.graphs.push_back(body);
  node->attributes["then_branch"] = then_attr;
  g.outputs.push_back(out);
  EXPECT_EQ(printModel(model),
            "model (ir 8)\n"
            "graph main(%cond: bool[scalar]) -> (%out: float32[2]) {\n"
            "  %out, _ = If 'branch' (%cond, _) : float32[2], _ {\n"
            "    then_branch: graph then_body() -> (%c: float32[2]) {\n"
            "      %c = Constant 'k' () {value=int64[2] [7, 8]} : float32[2]\n"
            "    }\n"
            "  }\n"
            "}\n");
}

TEST(PrinterTest, DotContainsNodesAndTypedEdges) {
  auto model = smallModel();
  std::string dot = printDot(model->graph);
  EXPECT_NE(dot.find("digraph \"main\""), std::string::npos);
  EXPECT_NE(dot.find("[label=\"Conv\\nconv1\"]"), std::string::npos) << dot;
  EXPECT_NE(dot.find("[label=\"LeakyRelu\\nact\"]"), std::string::npos) << dot;
  EXPECT_NE(dot.find("n0 -> n1 [label=\"float32[batchx4x8x8]\"]"), std::string::npos) << dot;
  EXPECT_NE(dot.find("in0 -> n0"), std::string::npos) << dot;
  EXPECT_NE(dot.find("n1 -> out0"), std::string::npos) << dot;
}

TEST(GraphTest, SortTopologicallyReportsCycle) {
  Graph g;
  g.name = "main";
  Value* x = g.addValue("x", f32({1}));
  g.inputs.push_back(x);
  Value* a = g.addValue("a", f32({1}));
  Value* b = g.addValue("b", f32({1}));
  addNode(g, "Add", "first", {x, b}, {a});
  addNode(g, "Relu", "second", {a}, {b});
  g.outputs.push_back(b);
  Status status = g.sortTopologically();
  ASSERT_FALSE(status.isOk());
  EXPECT_NE(status.message().find("cycle"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("'first'"), std::string::npos) << status.message();
}

TEST(GraphTest, SortTopologicallyOrdersNodes) {
  Graph g;
  Value* x = g.addValue("x", f32({1}));
  g.inputs.push_back(x);
  Value* a = g.addValue("a", f32({1}));
  Value* b = g.addValue("b", f32({1}));
  addNode(g, "Relu", "second", {a}, {b});
  addNode(g, "Relu", "first", {x}, {a});
  g.outputs.push_back(b);
  ASSERT_TRUE(g.sortTopologically().isOk());
  EXPECT_EQ(g.nodes()[0]->name, "first");
  EXPECT_TRUE(g.verify().isOk());
}

TEST(GraphTest, RemoveDeadNodes) {
  auto model = smallModel();
  Graph& g = model->graph;
  Value* dead1 = g.addValue("dead1", f32({1}));
  Value* dead2 = g.addValue("dead2", f32({1}));
  addNode(g, "Neg", "unused", {g.findValue("x")}, {dead1});
  addNode(g, "Abs", "unused_too", {dead1}, {dead2});
  EXPECT_EQ(g.removeDeadNodes(), 2u);
  EXPECT_EQ(g.nodes().size(), 2u);
  EXPECT_EQ(dead1->producer, nullptr);
  EXPECT_EQ(g.removeDeadNodes(), 0u);
  EXPECT_TRUE(g.verify().isOk());
}

}  // namespace
}  // namespace kiln::ir
