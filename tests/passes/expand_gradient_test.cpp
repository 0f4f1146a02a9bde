// expand-gradient (passes/expand_gradient.cpp): Gradient nodes replaced by
// reverse-mode differentiation. Each model is compiled with its Gradient
// (at -O0 and -O2, opset 12 where ReduceSum's axes are an attribute and 17
// where they are an input), run on the reference evaluator, and every
// gradient element compared with a central finite difference of the sum of
// y's elements, in float64: step 1e-6, so the difference's truncation error
// (~1e-12 times the third derivative) and rounding (~1e-16 / 1e-6 = 1e-10
// relative) stay far below the tolerance of 1e-6 absolute + 1e-6 relative.
// Also: an x that y does not depend on gets zeros, the Gradient's outputs keep
// their names, and an op without a derivative rule is refused naming it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <sstream>

#include "compiler/kir/evaluator.h"
#include "passes/expand_gradient.h"
#include "passes/infer_shapes.h"
#include "tests/passes/model_check.h"

namespace kiln::passes {
namespace {

using ir::DType;
using testing::TestGraph;

constexpr const char* kDomain = "ai.onnx.preview.training";

void addGradient(TestGraph& g, const std::vector<ir::Value*>& xs, const std::string& y, const std::string& name) {
  g.model().opset_imports[kDomain] = 1;
  ir::Node* node = g.node("Gradient", xs, name, static_cast<int>(xs.size()));
  node->name = "grad";
  node->domain = kDomain;
  ir::Attribute xs_attr;
  xs_attr.kind = ir::Attribute::Kind::kStrings;
  for (const ir::Value* x : xs) xs_attr.strings.push_back(x->name);
  node->attributes["xs"] = xs_attr;
  ir::Attribute y_attr;
  y_attr.kind = ir::Attribute::Kind::kString;
  y_attr.s = y;
  node->attributes["y"] = y_attr;
  for (ir::Value* out : node->outputs) g.output(out);
}

ir::Tensor randomTensor(const std::vector<int64_t>& dims, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(-1.5, 1.5);
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  std::vector<double> values(static_cast<size_t>(n));
  for (double& v : values) {
    v = dist(rng);
    if (std::abs(v) < 0.05) v += 0.2;  // away from Relu's kink and Div's pole
  }
  return ir::Tensor::fromValues<double>(DType::kFloat64, dims, std::span<const double>(values));
}

std::vector<double> doubles(const ir::Tensor& t) {
  std::vector<double> out(static_cast<size_t>(t.elementCount()));
  std::memcpy(out.data(), t.bytes().data(), out.size() * sizeof(double));
  return out;
}

double sumOf(const ir::Tensor& t) {
  double s = 0;
  for (double v : doubles(t)) s += v;
  return s;
}

// Output 0 of the model is y; outputs 1.. are the Gradient's, one per graph
// input. Compares each with finite differences of sum(y).
void checkAgainstFiniteDifferences(const testing::ModelFactory& make, int opt_level) {
  SCOPED_TRACE("-O" + std::to_string(opt_level));
  driver::CompileOptions options;
  options.pipeline.opt_level = opt_level;
  Expected<lower::Program> program = testing::compileProgram(make, options);
  ASSERT_TRUE(program.isOk());
  std::unique_ptr<ir::Model> model = make();
  std::vector<ir::Tensor> inputs;
  for (size_t i = 0; i < model->graph.inputs.size(); ++i)
    inputs.push_back(randomTensor(*ir::knownDims(*model->graph.inputs[i]->type.shape), 7 + static_cast<unsigned>(i)));
  Expected<std::vector<ir::Tensor>> out = lower::evaluateProgram(*program, inputs);
  ASSERT_TRUE(out.isOk()) << out.status().message();
  ASSERT_EQ(out->size(), 1 + inputs.size());
  const double step = 1e-6;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const ir::Tensor& grad = (*out)[1 + i];
    ASSERT_EQ(grad.dims(), inputs[i].dims()) << "gradient " << i;
    std::vector<double> got = doubles(grad);
    for (size_t e = 0; e < got.size(); ++e) {
      auto sumAt = [&](double delta) {
        std::vector<ir::Tensor> moved = inputs;
        std::vector<double> values = doubles(inputs[i]);
        values[e] += delta;
        moved[i] = ir::Tensor::fromValues<double>(DType::kFloat64, inputs[i].dims(), std::span<const double>(values));
        Expected<std::vector<ir::Tensor>> r = lower::evaluateProgram(*program, moved);
        return r ? sumOf((*r)[0]) : std::nan("");
      };
      double want = (sumAt(step) - sumAt(-step)) / (2 * step);
      EXPECT_NEAR(got[e], want, 1e-6 + 1e-6 * std::abs(want)) << "d sum(y) / d input " << i << " element " << e;
    }
  }
}

// Every op with a rule, with broadcasting on the way (b over rows, s over
// everything, a Sum of three shapes), values read twice (h2, ss), and a
// non-scalar y (the gradient of the sum of its elements).
std::unique_ptr<ir::Model> everyRuleModel(int64_t opset) {
  TestGraph g(opset);
  ir::Value* x = g.input("x", {2, 3}, DType::kFloat64);
  ir::Value* w = g.input("w", {3, 4}, DType::kFloat64);
  ir::Value* b = g.input("b", {4}, DType::kFloat64);
  ir::Value* s = g.input("s", {1}, DType::kFloat64);
  ir::Value* h = g.op("MatMul", {x, w}, "h");
  ir::Value* h2 = g.op("Add", {h, b}, "h2");
  ir::Value* r = g.op("Relu", {h2}, "r");
  ir::Value* t = g.op("Tanh", {r}, "t");
  ir::Value* sg = g.op("Sigmoid", {h2}, "sg");
  ir::Value* e = g.op("Exp", {g.op("Neg", {sg}, "nsg")}, "e");
  ir::Value* m = g.op("Mul", {t, e}, "m");
  // A denominator kept away from 0: sg + exp(b) + s*s + s*s > 0.2.
  ir::Value* ss = g.op("Mul", {s, s}, "ss");
  ir::Value* denominator = g.op("Sum", {sg, g.op("Exp", {b}, "eb"), ss}, "den");
  ir::Value* d = g.op("Div", {m, g.op("Add", {denominator, ss}, "den2")}, "d");
  ir::Value* y = g.op("Sub", {g.op("Identity", {d}, "i"), g.op("Mul", {b, s}, "bs")}, "y");
  g.output(y);
  addGradient(g, {x, w, b, s}, "y", "dy");
  return g.take();
}

TEST(ExpandGradientTest, EveryRuleMatchesFiniteDifferences) {
  for (int64_t opset : {12, 17}) {
    SCOPED_TRACE("opset " + std::to_string(opset));
    for (int level : {0, 2}) checkAgainstFiniteDifferences([opset] { return everyRuleModel(opset); }, level);
  }
}

TEST(ExpandGradientTest, BatchedMatMulSumsTheBroadcastBatch) {
  auto make = [] {
    TestGraph g(17);
    ir::Value* a = g.input("a", {2, 2, 3}, DType::kFloat64);
    ir::Value* w = g.input("w", {3, 2}, DType::kFloat64);
    ir::Value* y = g.op("Tanh", {g.op("MatMul", {a, w}, "p")}, "y");
    g.output(y);
    addGradient(g, {a, w}, "y", "dy");
    return g.take();
  };
  checkAgainstFiniteDifferences(make, 2);
}

TEST(ExpandGradientTest, UnusedXGetsZerosAndOutputsKeepTheirNames) {
  TestGraph g(17);
  ir::Value* a = g.input("a", {3}, DType::kFloat64);
  ir::Value* unused = g.input("unused", {2}, DType::kFloat64);
  g.output(g.op("Exp", {a}, "y"));
  addGradient(g, {a, unused}, "y", "dy");
  std::unique_ptr<ir::Model> model = g.take();
  ASSERT_TRUE(inferShapes(*model).isOk());
  ASSERT_TRUE(hasGradient(model->graph));
  ASSERT_TRUE(expandGradients(*model).isOk());
  EXPECT_FALSE(hasGradient(model->graph));
  ASSERT_EQ(model->graph.outputs.size(), 3u);
  EXPECT_EQ(model->graph.outputs[1]->name, "dy");
  EXPECT_EQ(model->graph.outputs[2]->name, "dy:1");
  const ir::Value* zeros = model->graph.outputs[2]->producer->inputs[0];
  ASSERT_TRUE(zeros->isConstant());
  EXPECT_EQ(zeros->constant->dims(), (std::vector<int64_t>{2}));
  for (int64_t i = 0; i < 2; ++i) EXPECT_EQ(zeros->constant->floatAt(i), 0.0);
}

TEST(ExpandGradientTest, OpWithoutRuleIsRefusedNamingIt) {
  TestGraph g(17);
  ir::Value* a = g.input("a", {3});
  ir::Value* y = g.op("Add", {g.op("Sin", {a}, "s"), a}, "y");
  g.output(y);
  addGradient(g, {a}, "y", "dy");
  std::unique_ptr<ir::Model> model = g.take();
  std::ostringstream log;
  Expected<lower::Program> program = driver::buildProgram(*model, {}, log);
  ASSERT_FALSE(program.isOk());
  EXPECT_NE(program.status().message().find("Gradient 'grad': y depends on xs through Sin 'Sin_s' (domain "
                                            "'ai.onnx'), which has no derivative rule; Kiln differentiates Add,"),
            std::string::npos)
      << program.status().message();
}

TEST(ExpandGradientTest, UnknownYIsAnError) {
  TestGraph g(17);
  ir::Value* a = g.input("a", {3});
  g.output(g.op("Exp", {a}, "y"));
  addGradient(g, {a}, "nothing", "dy");
  std::unique_ptr<ir::Model> model = g.take();
  std::ostringstream log;
  Expected<lower::Program> program = driver::buildProgram(*model, {}, log);
  ASSERT_FALSE(program.isOk());
  EXPECT_NE(program.status().message().find("Gradient 'grad': y 'nothing' names no value of the graph"),
            std::string::npos)
      << program.status().message();
}

}  // namespace
}  // namespace kiln::passes
