// recognize-layer-norm: the layer normalization that opset < 17 exporters
// write out (ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div [, Mul, Add])
// becomes one LayerNormalization, the outputs stay the same within 1e-5
// relative, and the kernels drop; the near misses stay as they are.
#include <gtest/gtest.h>

#include "compiler/ir/printer.h"
#include "compiler/ops/op_registry.h"
#include "tests/passes/model_check.h"

namespace kiln::testing {
namespace {

constexpr char kPass[] = "recognize-layer-norm";

struct Decomposed {
  int64_t opset = 14;
  std::vector<int64_t> dims = {2, 5, 16};
  int64_t axis = -1;           // what both ReduceMeans reduce
  int64_t keepdims = 1;        // of both ReduceMeans
  bool square_by_mul = false;  // Mul(d, d) rather than Pow(d, 2)
  bool affine = true;          // Mul(gamma) and Add(beta) after the Div
  bool mean_escapes = false;   // the mean is a graph output too
  float epsilon = 1e-5f;
};

// x -> MatMul -> the decomposed LayerNorm -> y, as torch.onnx writes it.
std::unique_ptr<ir::Model> decomposedLayerNorm(const Decomposed& p) {
  TestGraph g(p.opset);
  const int64_t n = p.dims.back();
  ir::Value* in = g.input("x", p.dims);
  ir::Value* x = g.op("MatMul", {in, g.randomConstant("w", {n, n})}, "h");
  auto mean = [&](ir::Value* v, const std::string& name) {
    ir::Node* node = g.node("ReduceMean", {v}, name);
    if (p.opset >= 18)
      node->inputs.push_back(g.int64s(name + "_axes", {p.axis}));
    else
      setInts(node, "axes", {p.axis});
    if (p.keepdims != 1) setInt(node, "keepdims", p.keepdims);
    return node->outputs[0];
  };
  ir::Value* m = mean(x, "mean");
  ir::Value* d = g.op("Sub", {x, m}, "centered");
  ir::Value* sq =
      p.square_by_mul ? g.op("Mul", {d, d}, "squared") : g.op("Pow", {d, g.constant("two", {}, {2.0f})}, "squared");
  ir::Value* var = mean(sq, "var");
  ir::Value* std = g.op("Sqrt", {g.op("Add", {var, g.constant("eps", {}, {p.epsilon})}, "var_eps")}, "std");
  ir::Value* y = g.op("Div", {d, std}, "normed");
  if (p.affine) {
    y = g.op("Mul", {y, g.randomConstant("gamma", {n}, 0.5f, 2.0f)}, "scaled");
    y = g.op("Add", {y, g.randomConstant("beta", {n})}, "y");
  }
  g.output(y);
  if (p.mean_escapes) g.output(m);
  return g.take();
}

// -O0 against only the pass, both unfused, on 3 random input sets:
// |a-b| <= 1e-5 + 1e-5·|b|.
::testing::AssertionResult sameAsUnrewritten(const ModelFactory& make) {
  return passesKeepOutputs(make, {kPass}, 1e-5, 3);
}

const ir::Node& onlyNodeAfter(const ir::Model& model, const std::string& op) {
  const ir::Node* found = nullptr;
  for (const auto& node : model.graph.nodes())
    if (node->op_type == op) found = node.get();
  EXPECT_TRUE(found) << op << " missing in\n" << ir::printModel(model);
  return *found;
}

std::vector<float> constantValues(const ir::Value* v) {
  std::vector<float> out;
  if (!v || !v->isConstant()) return out;
  for (int64_t i = 0; i < v->constant->elementCount(); ++i) out.push_back(static_cast<float>(v->constant->floatAt(i)));
  return out;
}

TEST(RecognizeLayerNormTest, TorchOpset14FormBecomesKilnLayerNormalization) {
  Decomposed p;
  p.epsilon = 1e-6f;
  auto make = [&] { return decomposedLayerNorm(p); };
  EXPECT_EQ(opSequence(make()->graph), "MatMul,ReduceMean,Sub,Pow,ReduceMean,Add,Sqrt,Div,Mul,Add");
  auto after = runPasses(make, {kPass});
  EXPECT_EQ(opSequence(after->graph), "MatMul,LayerNormalization") << ir::printModel(*after);
  const ir::Node& ln = onlyNodeAfter(*after, "LayerNormalization");
  // Opset 14 has no LayerNormalization: Kiln's twin of it.
  EXPECT_EQ(ln.domain, ops::kKilnDomain);
  EXPECT_EQ(after->opset_imports.at(std::string(ops::kKilnDomain)), 1);
  ASSERT_TRUE(ln.attribute("epsilon") && ln.attribute("axis"));
  EXPECT_EQ(ln.attribute("epsilon")->f, 1e-6f);
  EXPECT_EQ(ln.attribute("axis")->i, -1);
  EXPECT_EQ(ln.input(0)->name, "h");
  EXPECT_EQ(constantValues(ln.input(1)), constantValues(make()->graph.findValue("gamma")));
  EXPECT_EQ(constantValues(ln.input(2)), constantValues(make()->graph.findValue("beta")));
  EXPECT_EQ(ln.outputs[0]->name, "y") << "the graph output keeps its name";
  EXPECT_TRUE(sameAsUnrewritten(make));
}

// Opset 18: ReduceMean's axes as an input, here the positive last axis; the
// square as Mul(d, d); no gamma or beta (ones and zeros).
TEST(RecognizeLayerNormTest, Opset18AxesInputAndMulSquareWithoutAffine) {
  Decomposed p;
  p.opset = 18;
  p.axis = 2;
  p.square_by_mul = true;
  p.affine = false;
  auto make = [&] { return decomposedLayerNorm(p); };
  EXPECT_EQ(make()->graph.nodes().size(), 8u);
  auto after = runPasses(make, {kPass});
  EXPECT_EQ(opSequence(after->graph), "MatMul,LayerNormalization") << ir::printModel(*after);
  const ir::Node& ln = onlyNodeAfter(*after, "LayerNormalization");
  EXPECT_EQ(ln.domain, "") << "opset 18 has ONNX's LayerNormalization";
  EXPECT_FALSE(after->opset_imports.count(std::string(ops::kKilnDomain)));
  EXPECT_EQ(ln.attribute("epsilon")->f, 1e-5f);
  EXPECT_EQ(constantValues(ln.input(1)), std::vector<float>(16, 1.0f));
  EXPECT_EQ(constantValues(ln.input(2)), std::vector<float>(16, 0.0f));
  EXPECT_EQ(ln.outputs[0]->name, "normed");
  EXPECT_TRUE(sameAsUnrewritten(make));
}

TEST(RecognizeLayerNormTest, Opset17WritesOnnxLayerNormalization) {
  Decomposed p;
  p.opset = 17;
  auto make = [&] { return decomposedLayerNorm(p); };
  auto after = runPasses(make, {kPass});
  EXPECT_EQ(onlyNodeAfter(*after, "LayerNormalization").domain, "");
  EXPECT_TRUE(sameAsUnrewritten(make));
}

// Near misses, left as they are (and compiled the same).
void expectLeftAlone(const Decomposed& p) {
  auto make = [&] { return decomposedLayerNorm(p); };
  auto after = runPasses(make, {kPass});
  EXPECT_EQ(opSequence(after->graph), opSequence(make()->graph));
  EXPECT_TRUE(sameAsUnrewritten(make));
}

TEST(RecognizeLayerNormTest, LeavesAnIntermediateWithAnotherReader) {
  Decomposed p;
  p.mean_escapes = true;
  expectLeftAlone(p);
}

TEST(RecognizeLayerNormTest, LeavesKeepdimsZero) {
  Decomposed p;
  p.dims = {16, 16};  // [16] statistics still broadcast against x, along the other axis
  p.keepdims = 0;
  expectLeftAlone(p);
}

TEST(RecognizeLayerNormTest, LeavesANormalizationOverAnotherAxis) {
  Decomposed p;
  p.dims = {2, 16, 16};
  p.axis = 1;
  expectLeftAlone(p);
}

// The Div's result read twice: the pattern ends there, the Mul and Add stay.
TEST(RecognizeLayerNormTest, StopsBeforeAScaleWhoseInputHasTwoReaders) {
  auto make = [] {
    auto model = decomposedLayerNorm(Decomposed{});
    ir::Graph& graph = model->graph;
    ir::Value* normed = graph.findValue("normed");
    ir::Node* extra = graph.addNode("Relu", "extra");
    extra->inputs = {normed};
    ir::Value* out = graph.addValue("extra_out");
    out->producer = extra;
    extra->outputs = {out};
    graph.outputs.push_back(out);
    return model;
  };
  auto after = runPasses(make, {kPass});
  EXPECT_EQ(opSequence(after->graph), "MatMul,LayerNormalization,Mul,Add,Relu") << ir::printModel(*after);
  EXPECT_TRUE(sameAsUnrewritten(make));
}

// At -O2 the decomposed form took the MatMul and five kernels; recognized, it
// is the MatMul and LayerNormalization's one kernel.
TEST(RecognizeLayerNormTest, KernelCountDrops) {
  expectKernelsDrop([] { return decomposedLayerNorm(Decomposed{}); }, kPass, 6, 2);
}

// --emit onnx at -O2 writes no Kiln op: the pass is left out below opset 17.
TEST(RecognizeLayerNormTest, NotInTheOnnxPipelineUnlessAsked) {
  passes::PipelineOptions onnx;
  onnx.kiln_ops = false;
  auto model = decomposedLayerNorm(Decomposed{});
  std::ostringstream log;
  ASSERT_TRUE(passes::runPipeline(*model, onnx, log).isOk());
  EXPECT_FALSE(model->opset_imports.count(std::string(ops::kKilnDomain)));
  EXPECT_EQ(opSequence(model->graph), "MatMul,ReduceMean,Sub,Pow,ReduceMean,Add,Sqrt,Div,Mul,Add");
}

}  // namespace
}  // namespace kiln::testing
