// Shared by the pass tests: a small builder for test graphs, and the check
// that a pass keeps outputs unchanged — the same model compiled with and
// without it (driver::buildProgram) and both programs run on the reference
// evaluator on the same random inputs.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "compiler/driver/compile.h"
#include "compiler/ir/graph.h"

namespace kiln::testing {

// Builds a model node by node; values get the names given.
class TestGraph {
 public:
  explicit TestGraph(int64_t opset = 17);

  ir::Value* input(const std::string& name, std::vector<int64_t> dims, ir::DType dtype = ir::DType::kFloat32);
  ir::Value* constant(const std::string& name, std::vector<int64_t> dims, std::vector<float> values);
  // A float constant of random values in [lo, hi), seeded by its name.
  ir::Value* randomConstant(const std::string& name, std::vector<int64_t> dims, float lo = -1, float hi = 1);
  ir::Value* int64s(const std::string& name, std::vector<int64_t> values);
  // Adds a node with `outputs` results named out, out:1, ...; returns it.
  ir::Node* node(const std::string& op, std::vector<ir::Value*> inputs, const std::string& out, int outputs = 1);
  ir::Value* op(const std::string& op, std::vector<ir::Value*> inputs, const std::string& out) {
    return node(op, std::move(inputs), out)->outputs[0];
  }
  void output(ir::Value* value) { model_->graph.outputs.push_back(value); }

  std::unique_ptr<ir::Model> take() { return std::move(model_); }
  ir::Model& model() { return *model_; }

 private:
  std::unique_ptr<ir::Model> model_;
};

void setInts(ir::Node* node, const std::string& name, std::vector<int64_t> values);
void setInt(ir::Node* node, const std::string& name, int64_t value);
void setFloat(ir::Node* node, const std::string& name, float value);
void setString(ir::Node* node, const std::string& name, std::string value);

// A float32 tensor of `dims` with values uniform in [-2, 2), from `seed`.
ir::Tensor randomInput(const std::vector<int64_t>& dims, unsigned seed);

// A fresh copy of the model under test for each compilation (passes rewrite
// the model in place).
using ModelFactory = std::function<std::unique_ptr<ir::Model>()>;

// "Conv,Add,Relu": the graph's ops in order, to show a graph before/after.
std::string opSequence(const ir::Graph& graph);
// Nodes of op type `op` in the graph (any domain).
int countOps(const ir::Graph& graph, const std::string& op);

// Runs the graph pipeline `passes` (exactly those, after shape inference).
std::unique_ptr<ir::Model> runPasses(const ModelFactory& make, std::vector<std::string> passes);

// The model compiled with `options`, or a test failure.
Expected<lower::Program> compileProgram(const ModelFactory& make, const driver::CompileOptions& options,
                                        driver::CompileSummary* summary = nullptr);

// Runs both programs on the same seeded random inputs (floats in [-1, 1),
// integers in [0, 3]) and compares every output: |a-b| <= 1e-5 + rel*|b|.
::testing::AssertionResult sameOutputs(const lower::Program& a, const lower::Program& b, double rel = 1e-4,
                                       unsigned seed = 1);

// The usual proof that graph passes keep the meaning: -O0 against only
// `passes`, both lowered without kernel fusion, on `seeds` input sets
// (seeds 1..seeds) at sameOutputs' tolerance `rel`.
::testing::AssertionResult passesKeepOutputs(const ModelFactory& make, std::vector<std::string> passes,
                                             double rel = 1e-4, unsigned seeds = 1);

// The model compiled at -O2 without the pass `pass` and with it: the kernel
// count must fall from `without` to `with`, and the outputs agree to `rel`.
void expectKernelsDrop(const ModelFactory& make, const std::string& pass, size_t without, size_t with,
                       double rel = 1e-5);

}  // namespace kiln::testing
