// recognize-gelu: GELU's tanh approximation written out in elementwise ops
// (as PyTorch exports GELU(approximate='tanh'), and HuggingFace's gelu_new)
// becomes one Gelu(approximate="tanh"), the outputs stay the same within 1e-5
// relative, and at -O2 the activation joins the MatMul's kernel; the near
// misses stay as they are.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "compiler/ir/printer.h"
#include "compiler/ops/op_registry.h"
#include "tests/passes/model_check.h"

namespace kiln::testing {
namespace {

constexpr char kPass[] = "recognize-gelu";
const float kSqrt2OverPi = static_cast<float>(std::sqrt(2 / std::numbers::pi));

enum class Form {
  kTorchTanh,  // torch.nn.GELU(approximate='tanh') at opset 14
  kGeluNew,    // HuggingFace's gelu_new: 0.5 * x first, Pow(x, 3)
  kMegatron,   // x * 0.5 * (1 + tanh(k * x * (1 + c * x * x)))
};

struct Mlp {
  Form form = Form::kTorchTanh;
  int64_t opset = 14;
  float c = 0.044715f;
  bool cube_escapes = false;  // x^3 is a graph output too
};

// x -> MatMul + bias -> GELU (tanh form, written out) -> y
std::unique_ptr<ir::Model> mlp(const Mlp& p) {
  TestGraph g(p.opset);
  ir::Value* in = g.input("x", {2, 4, 16});
  ir::Value* mm = g.op("MatMul", {in, g.randomConstant("w", {16, 32})}, "mm");
  ir::Value* x = g.op("Add", {g.randomConstant("b", {32}), mm}, "h");
  auto scalar = [&](const std::string& name, float v) { return g.constant(name, {}, {v}); };
  ir::Value* y = nullptr;
  ir::Value* cube = nullptr;
  if (p.form == Form::kTorchTanh) {
    cube = g.op("Mul", {x, g.op("Mul", {x, x}, "x2")}, "x3");
    ir::Value* inner = g.op("Add", {x, g.op("Mul", {scalar("c", p.c), cube}, "cx3")}, "inner");
    ir::Value* t = g.op("Tanh", {g.op("Mul", {scalar("k", kSqrt2OverPi), inner}, "u")}, "t");
    ir::Value* xt = g.op("Mul", {x, g.op("Add", {scalar("one", 1.0f), t}, "one_t")}, "x_one_t");
    y = g.op("Mul", {scalar("half", 0.5f), xt}, "y");
  } else if (p.form == Form::kGeluNew) {
    ir::Value* half_x = g.op("Mul", {x, scalar("half", 0.5f)}, "half_x");
    cube = g.op("Pow", {x, scalar("three", 3.0f)}, "x3");
    ir::Value* inner = g.op("Add", {x, g.op("Mul", {cube, scalar("c", p.c)}, "cx3")}, "inner");
    ir::Value* t = g.op("Tanh", {g.op("Mul", {inner, scalar("k", kSqrt2OverPi)}, "u")}, "t");
    y = g.op("Mul", {half_x, g.op("Add", {t, scalar("one", 1.0f)}, "one_t")}, "y");
  } else {
    ir::Value* half_x = g.op("Mul", {x, scalar("half", 0.5f)}, "half_x");
    ir::Value* kx = g.op("Mul", {scalar("k", kSqrt2OverPi), x}, "kx");
    ir::Value* cxx = g.op("Mul", {g.op("Mul", {scalar("c", p.c), x}, "cx"), x}, "cxx");
    ir::Value* t = g.op("Tanh", {g.op("Mul", {kx, g.op("Add", {scalar("one", 1.0f), cxx}, "one_cxx")}, "u")}, "t");
    y = g.op("Mul", {half_x, g.op("Add", {scalar("one_", 1.0f), t}, "one_t")}, "y");
  }
  g.output(y);
  if (p.cube_escapes) g.output(cube);
  return g.take();
}

// -O0 against only the pass, both unfused, on 3 random input sets:
// |a-b| <= 1e-5 + 1e-5·|b|.
::testing::AssertionResult sameAsUnrewritten(const ModelFactory& make) {
  return passesKeepOutputs(make, {kPass}, 1e-5, 3);
}

void expectOneGelu(const Mlp& p, const std::string& before, const std::string& domain) {
  auto make = [&] { return mlp(p); };
  EXPECT_EQ(opSequence(make()->graph), before);
  auto after = runPasses(make, {kPass});
  EXPECT_EQ(opSequence(after->graph), "MatMul,Add,Gelu") << ir::printModel(*after);
  const ir::Node& gelu = *after->graph.nodes().back();
  EXPECT_EQ(gelu.domain, domain);
  ASSERT_TRUE(gelu.attribute("approximate"));
  EXPECT_EQ(gelu.attribute("approximate")->s, "tanh");
  ASSERT_EQ(gelu.inputs.size(), 1u);
  EXPECT_EQ(gelu.input(0)->name, "h");
  EXPECT_EQ(gelu.outputs[0]->name, "y") << "the graph output keeps its name";
  EXPECT_TRUE(sameAsUnrewritten(make));
}

TEST(RecognizeGeluTest, TorchTanhFormBecomesKilnGelu) {
  expectOneGelu({}, "MatMul,Add,Mul,Mul,Mul,Add,Mul,Tanh,Add,Mul,Mul", std::string(ops::kKilnDomain));
}

TEST(RecognizeGeluTest, GeluNewForm) {
  expectOneGelu({.form = Form::kGeluNew}, "MatMul,Add,Mul,Pow,Mul,Add,Mul,Tanh,Add,Mul", std::string(ops::kKilnDomain));
}

TEST(RecognizeGeluTest, FactoredFormAtOpset20IsOnnxGelu) {
  expectOneGelu({.form = Form::kMegatron, .opset = 20}, "MatMul,Add,Mul,Mul,Mul,Mul,Add,Mul,Tanh,Add,Mul", "");
}

// Near misses, left as they are (and compiled the same).
void expectLeftAlone(const Mlp& p) {
  auto make = [&] { return mlp(p); };
  auto after = runPasses(make, {kPass});
  EXPECT_EQ(opSequence(after->graph), opSequence(make()->graph)) << ir::printModel(*after);
  EXPECT_TRUE(sameAsUnrewritten(make));
}

TEST(RecognizeGeluTest, LeavesAnIntermediateWithAnotherReader) { expectLeftAlone({.cube_escapes = true}); }

TEST(RecognizeGeluTest, LeavesOtherCoefficients) {
  expectLeftAlone({.c = 0.05f});
  expectLeftAlone({.form = Form::kGeluNew, .c = 0.0447f});
}

// Decomposed, x has three readers and the activation is a kernel of its own;
// as one Gelu it is the epilogue of the MatMul's kernel.
TEST(RecognizeGeluTest, ActivationJoinsTheMatMulKernel) {
  for (Form form : {Form::kTorchTanh, Form::kGeluNew}) {
    expectKernelsDrop([&] { return mlp({.form = form}); }, kPass, 2, 1);
  }
}

}  // namespace
}  // namespace kiln::testing
