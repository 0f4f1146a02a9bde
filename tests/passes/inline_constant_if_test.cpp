// inline-constant-if: an If on a constant condition becomes the nodes of the
// branch taken (reading outer values, holding its own constants), with the
// same outputs; an If on a run-time condition stays.
#include <gtest/gtest.h>

#include <cstring>

#include "compiler/kir/evaluator.h"
#include "tests/passes/model_check.h"

namespace kiln::testing {
namespace {

// x -> Exp -> If(cond) { then: e * 3 ; else: e + 1 } -> y (a graph output)
std::unique_ptr<ir::Model> ifModel(bool constant_condition, bool value) {
  TestGraph g;
  ir::Value* x = g.input("x", {2, 3});
  ir::Value* e = g.op("Exp", {x}, "e");
  ir::Value* cond = nullptr;
  if (constant_condition) {
    cond = g.model().graph.addValue("cond", ir::TensorType{ir::DType::kBool, ir::Shape{}});
    uint8_t v = value;
    cond->constant = ir::Tensor::fromValues<uint8_t>(ir::DType::kBool, {}, std::span<const uint8_t>(&v, 1));
  } else {
    cond = g.input("cond", {}, ir::DType::kBool);
  }
  ir::Node* node = g.node("If", {cond}, "y");
  auto branch = [&](const std::string& name, const std::string& op, float operand) {
    auto sub = std::make_shared<ir::Graph>();
    sub->name = name;
    sub->parent = &g.model().graph;
    ir::Value* c = sub->addValue(name + "_c", ir::TensorType{ir::DType::kFloat32, ir::Shape{}});
    c->constant = ir::Tensor::fromValues<float>(ir::DType::kFloat32, {}, std::span<const float>(&operand, 1));
    ir::Node* n = sub->addNode(op, name + "_op");
    ir::Value* out = sub->addValue(name + "_out");
    n->inputs = {e, c};
    n->outputs = {out};
    out->producer = n;
    sub->outputs = {out};
    ir::Attribute a;
    a.kind = ir::Attribute::Kind::kGraph;
    a.graphs = {sub};
    node->attributes[name] = a;
  };
  branch("then_branch", "Mul", 3);
  branch("else_branch", "Add", 1);
  g.output(node->outputs[0]);
  return g.take();
}

TEST(InlineConstantIfTest, ReplacesIfByTheBranchTaken) {
  for (bool value : {true, false}) {
    auto model = runPasses([&] { return ifModel(true, value); }, {"inline-constant-if", "remove-no-ops"});
    ASSERT_TRUE(model);
    EXPECT_EQ(opSequence(model->graph), value ? "Exp,Mul" : "Exp,Add");
    ASSERT_EQ(model->graph.outputs.size(), 1u);
    EXPECT_EQ(model->graph.outputs[0]->name, "y");
    // The If kept (-O0, run as control flow) and inlined give the same values.
    driver::CompileOptions kept, inlined;
    kept.pipeline.opt_level = 0;
    inlined.pipeline.opt_level = 0;
    inlined.pipeline.passes = {"inline-constant-if"};
    auto a = compileProgram([&] { return ifModel(true, value); }, kept);
    auto b = compileProgram([&] { return ifModel(true, value); }, inlined);
    ASSERT_TRUE(a.isOk() && b.isOk()) << (a ? b.status().message() : a.status().message());
    EXPECT_FALSE(a->regions.empty());
    EXPECT_TRUE(b->regions.empty());
    std::vector<float> x = {0, 1, -1, 0.5f, 2, -3};
    std::vector<ir::Tensor> inputs = {ir::Tensor::fromValues<float>(ir::DType::kFloat32, {2, 3}, std::span<const float>(x))};
    auto ya = lower::evaluateProgram(*a, inputs), yb = lower::evaluateProgram(*b, inputs);
    ASSERT_TRUE(ya.isOk() && yb.isOk());
    ASSERT_EQ(ya->size(), 1u);
    ASSERT_EQ(yb->size(), 1u);
    auto bytes_a = (*ya)[0].bytes(), bytes_b = (*yb)[0].bytes();
    EXPECT_TRUE(std::equal(bytes_a.begin(), bytes_a.end(), bytes_b.begin(), bytes_b.end()));
    float first = 0;
    std::memcpy(&first, bytes_b.data(), sizeof(float));
    EXPECT_FLOAT_EQ(first, value ? 3.0f : 2.0f);  // exp(0) * 3 or exp(0) + 1
  }
}

TEST(InlineConstantIfTest, KeepsIfOnRunTimeCondition) {
  auto model = runPasses([] { return ifModel(false, false); }, {"inline-constant-if"});
  ASSERT_TRUE(model);
  EXPECT_EQ(opSequence(model->graph), "Exp,If");
}

}  // namespace
}  // namespace kiln::testing
