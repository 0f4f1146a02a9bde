// Constant propagation during shape inference, and the fold-constants pass.
#include <gtest/gtest.h>

#include <sstream>

#include "compiler/ir/printer.h"
#include "passes/infer_shapes.h"
#include "passes/pass.h"
#include "tests/passes/model_check.h"

namespace kiln::passes {
namespace {

ir::Value* addConstant(ir::Graph& g, const std::string& name, std::vector<float> values) {
  ir::Value* v = g.addValue(name);
  v->constant = ir::Tensor::fromValues<float>(ir::DType::kFloat32, {static_cast<int64_t>(values.size())}, values);
  v->type = v->constant->type();
  return v;
}

ir::Node* addNode(ir::Graph& g, const std::string& op, std::vector<ir::Value*> inputs, ir::Value* out) {
  ir::Node* n = g.addNode(op, op + "_" + out->name);
  n->inputs = std::move(inputs);
  n->outputs = {out};
  out->producer = n;
  return n;
}

// y = Relu(x + (a * b)) where a * b is known at compile time.
std::unique_ptr<ir::Model> makeModel() {
  auto m = std::make_unique<ir::Model>();
  m->opset_imports[""] = 13;
  ir::Graph& g = m->graph;
  ir::Value* x = g.addValue("x", ir::TensorType{ir::DType::kFloat32, ir::makeShape(std::vector<int64_t>{3})});
  ir::Value* a = addConstant(g, "a", {1, 2, 3});
  ir::Value* b = addConstant(g, "b", {-1, 0.5f, 2});
  ir::Value* ab = g.addValue("ab");
  ir::Value* sum = g.addValue("sum");
  ir::Value* y = g.addValue("y");
  addNode(g, "Mul", {a, b}, ab);
  addNode(g, "Add", {x, ab}, sum);
  addNode(g, "Relu", {sum}, y);
  g.inputs = {x};
  g.outputs = {y};
  return m;
}

TEST(FoldConstantsTest, InferenceComputesConstantValues) {
  auto m = makeModel();
  ASSERT_TRUE(inferShapes(*m).isOk());
  ir::Value* ab = m->graph.findValue("ab");
  ASSERT_TRUE(ab->isConstant());
  EXPECT_EQ(ab->constant->dims(), std::vector<int64_t>{3});
  EXPECT_FLOAT_EQ(ab->constant->floatAt(0), -1.0f);
  EXPECT_FLOAT_EQ(ab->constant->floatAt(1), 1.0f);
  EXPECT_FLOAT_EQ(ab->constant->floatAt(2), 6.0f);
  EXPECT_FALSE(m->graph.findValue("sum")->isConstant()) << "x is a run-time input";
}

TEST(FoldConstantsTest, PassRemovesFoldedNodes) {
  auto m = makeModel();
  PipelineOptions options;
  options.passes = {"fold-constants"};
  options.print_after = {"fold-constants"};
  std::ostringstream log;
  auto records = runPipeline(*m, options, log);
  ASSERT_TRUE(records.isOk()) << records.status().message();
  ASSERT_EQ(m->graph.nodes().size(), 2u);
  EXPECT_EQ(m->graph.nodes()[0]->op_type, "Add");
  EXPECT_EQ(records->back().name, "fold-constants");
  EXPECT_EQ(records->back().nodes_before, 3u);
  EXPECT_EQ(records->back().nodes_after, 2u);
  EXPECT_NE(log.str().find("IR after fold-constants"), std::string::npos);
  EXPECT_EQ(log.str().find("Mul"), std::string::npos) << log.str();
}

TEST(FoldConstantsTest, IdenticalConstantsAreShared) {
  auto m = std::make_unique<ir::Model>();
  m->opset_imports[""] = 13;
  ir::Graph& g = m->graph;
  ir::Value* x = g.addValue("x", ir::TensorType{ir::DType::kFloat32, ir::makeShape(std::vector<int64_t>{2})});
  ir::Value* c1 = addConstant(g, "c1", {1, 2});
  ir::Value* c2 = addConstant(g, "c2", {1, 2});
  ir::Value* s1 = g.addValue("s1");
  ir::Value* s2 = g.addValue("s2");
  addNode(g, "Add", {x, c1}, s1);
  addNode(g, "Add", {s1, c2}, s2);
  g.inputs = {x};
  g.outputs = {s2};
  PipelineOptions options;
  options.passes = {"fold-constants"};
  std::ostringstream log;
  ASSERT_TRUE(runPipeline(*m, options, log).isOk());
  EXPECT_EQ(g.nodes()[1]->inputs[1], g.nodes()[0]->inputs[1]);
}

// The model after `passes` (shape inference first), with the records.
std::vector<PassRecord> runRecorded(ir::Model& m, std::vector<std::string> passes) {
  PipelineOptions options;
  options.passes = std::move(passes);
  std::ostringstream log;
  auto records = runPipeline(m, options, log);
  EXPECT_TRUE(records.isOk()) << records.status().message();
  return records.isOk() ? *records : std::vector<PassRecord>{};
}

// y = MatMul(x, Transpose(w)) + (c1 + c2): the transposed weight and the
// bias sum are known at compile time.
std::unique_ptr<ir::Model> makeWeightModel() {
  testing::TestGraph g;
  ir::Value* x = g.input("x", {2, 4});
  ir::Value* w = g.randomConstant("w", {3, 4});
  ir::Value* wt = g.op("Transpose", {w}, "wt");
  ir::Value* bias = g.op("Add", {g.randomConstant("c1", {3}), g.randomConstant("c2", {3})}, "bias");
  g.output(g.op("Add", {g.op("MatMul", {x, wt}, "mm"), bias}, "y"));
  return g.take();
}

TEST(FoldConstantsTest, KeepsOutputs) {
  auto m = makeWeightModel();
  std::vector<PassRecord> records = runRecorded(*m, {"fold-constants"});
  ASSERT_FALSE(records.empty());
  EXPECT_EQ(records.back().nodes_before, 4u);
  EXPECT_EQ(records.back().nodes_after, 2u);
  EXPECT_EQ(testing::opSequence(m->graph), "MatMul,Add");
  EXPECT_TRUE(m->graph.nodes()[0]->inputs[1]->isConstant()) << "the transposed weight";
  EXPECT_TRUE(testing::passesKeepOutputs(makeWeightModel, {"fold-constants"}));
  EXPECT_TRUE(testing::passesKeepOutputs(makeModel, {"fold-constants"}));
}

// x.view(x.size(0), x.size(1), -1) as exporters write it: Shape -> Gather ->
// Unsqueeze and Shape -> Gather -> Concat give Reshape its target.
std::unique_ptr<ir::Model> makeShapeArithmetic() {
  testing::TestGraph g;
  ir::Value* x = g.input("x", {2, 3, 4, 5});
  ir::Value* shape = g.op("Shape", {x}, "shape");
  ir::Value* zero = g.model().graph.addValue("zero");
  zero->constant = ir::Tensor::fromValues<int64_t>(ir::DType::kInt64, {}, std::vector<int64_t>{0});
  zero->type = zero->constant->type();
  ir::Value* batch = g.op("Gather", {shape, zero}, "batch");  // a scalar
  ir::Value* batch1 = g.op("Unsqueeze", {batch, g.int64s("axes", {0})}, "batch1");
  ir::Value* channels = g.op("Gather", {shape, g.int64s("one", {1})}, "channels");
  ir::Node* concat = g.node("Concat", {batch1, channels, g.int64s("rest", {-1})}, "target");
  testing::setInt(concat, "axis", 0);
  g.output(g.op("Reshape", {x, concat->outputs[0]}, "y"));
  return g.take();
}

TEST(FoldConstantsTest, ShapeArithmeticBecomesConstants) {
  // Shape inference computes every value of the chain; the nodes stay.
  auto inferred = makeShapeArithmetic();
  ASSERT_TRUE(inferShapes(*inferred).isOk());
  EXPECT_EQ(testing::opSequence(inferred->graph), "Shape,Gather,Unsqueeze,Gather,Concat,Reshape");
  for (const char* name : {"shape", "batch", "batch1", "channels", "target"})
    EXPECT_TRUE(inferred->graph.findValue(name)->isConstant()) << name;
  EXPECT_FALSE(inferred->graph.findValue("y")->isConstant());

  // fold-constants drops them: Reshape reads a constant target.
  auto m = makeShapeArithmetic();
  std::vector<PassRecord> records = runRecorded(*m, {"fold-constants"});
  ASSERT_FALSE(records.empty());
  EXPECT_EQ(records.back().name, "fold-constants");
  EXPECT_EQ(records.back().nodes_before, 6u);
  EXPECT_EQ(records.back().nodes_after, 1u);
  ASSERT_EQ(testing::opSequence(m->graph), "Reshape") << ir::printModel(*m);
  const ir::Value* target = m->graph.nodes()[0]->inputs[1];
  ASSERT_TRUE(target->isConstant());
  EXPECT_EQ(target->producer, nullptr);
  EXPECT_EQ(target->constant->toInts(), (std::vector<int64_t>{2, 3, -1}));
  const ir::Value* y = m->graph.outputs[0];
  ASSERT_TRUE(y->type.shape.has_value());
  EXPECT_EQ(ir::toString(*y->type.shape), "2x3x20");
  EXPECT_TRUE(testing::passesKeepOutputs(makeShapeArithmetic, {"fold-constants"}));
}

TEST(PipelineTest, UnknownPassNamesAreErrors) {
  auto m = makeModel();
  std::ostringstream log;
  PipelineOptions options;
  options.disabled = {"no-such-pass"};
  auto r = runPipeline(*m, options, log);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().message(), "--disable-pass: unknown pass 'no-such-pass'");
  options = {};
  options.passes = {"nope"};
  r = runPipeline(*m, options, log);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().message(), "--passes: unknown pass 'nope'");
}

}  // namespace
}  // namespace kiln::passes
