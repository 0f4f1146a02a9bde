// Lowerings on the reference evaluator for corners the ONNX backend cases
// do not reach: integer division, half precision, legacy broadcasting,
// opset-11 Softmax, runtime Clip bounds, empty Concat inputs.
#include <gtest/gtest.h>

#include <cstring>

#include "compiler/kir/evaluator.h"
#include "compiler/lower/lower_graph.h"
#include "compiler/support/half.h"
#include "passes/infer_shapes.h"

namespace kiln::ops {
namespace {

using ir::DType;

// A one-node model: graph inputs feed the node, its outputs are graph outputs.
class OneNodeModel {
 public:
  OneNodeModel(const std::string& op, int opset) {
    model_.opset_imports[""] = opset;
    node_ = model_.graph.addNode(op, "n");
  }
  OneNodeModel& input(DType dtype, std::vector<int64_t> dims) {
    ir::Value* v = model_.graph.addValue("x" + std::to_string(node_->inputs.size()), {dtype, ir::makeShape(dims)});
    model_.graph.inputs.push_back(v);
    node_->inputs.push_back(v);
    return *this;
  }
  OneNodeModel& omittedInput() {
    node_->inputs.push_back(nullptr);
    return *this;
  }
  OneNodeModel& attr(const std::string& name, int64_t value) {
    ir::Attribute a;
    a.i = value;
    node_->attributes[name] = a;
    return *this;
  }
  OneNodeModel& attr(const std::string& name, std::vector<int64_t> values) {
    ir::Attribute a;
    a.kind = ir::Attribute::Kind::kInts;
    a.ints = std::move(values);
    node_->attributes[name] = a;
    return *this;
  }

  // Runs the model on `inputs` (raw element bytes) and returns output 0's bytes.
  template <typename Out, typename... In>
  std::vector<Out> run(const std::vector<In>&... inputs) {
    ir::Value* out = model_.graph.addValue("y");
    out->producer = node_;
    node_->outputs.push_back(out);
    model_.graph.outputs.push_back(out);
    Status inferred = passes::inferShapes(model_);
    EXPECT_TRUE(inferred) << inferred.message();
    Expected<lower::Program> program = lower::lowerGraph(model_);
    EXPECT_TRUE(program) << (program ? "" : program.status().message());
    if (!inferred || !program) return {};
    std::vector<Out> result(static_cast<size_t>(program->buffers[program->output_buffers[0]].elementCount()));
    std::vector<const void*> in_ptrs = {inputs.data()...};
    std::vector<void*> out_ptrs = {result.data()};
    Status ran = lower::evaluateProgram(*program, in_ptrs, out_ptrs);
    EXPECT_TRUE(ran) << ran.message();
    return result;
  }

 private:
  ir::Model model_;
  ir::Node* node_;
};

TEST(LowerTest, IntegerDivisionTruncatesTowardZero) {
  OneNodeModel m("Div", 14);
  m.input(DType::kInt32, {4}).input(DType::kInt32, {4});
  std::vector<int32_t> a = {7, -7, 7, -7};
  std::vector<int32_t> b = {2, 2, -2, -2};
  EXPECT_EQ(m.run<int32_t>(a, b), (std::vector<int32_t>{3, -3, -3, 3}));
}

TEST(LowerTest, HalfPrecisionAddComputesInFloat) {
  OneNodeModel m("Add", 14);
  m.input(DType::kFloat16, {2}).input(DType::kFloat16, {1});
  std::vector<uint16_t> a = {floatToHalf(1.5f), floatToHalf(-2.0f)};
  std::vector<uint16_t> b = {floatToHalf(0.25f)};
  std::vector<uint16_t> y = m.run<uint16_t>(a, b);
  ASSERT_EQ(y.size(), 2u);
  EXPECT_EQ(halfToFloat(y[0]), 1.75f);
  EXPECT_EQ(halfToFloat(y[1]), -1.75f);
}

TEST(LowerTest, LegacyBroadcastAlignsBAtAxis) {
  OneNodeModel m("Add", 6);
  m.input(DType::kFloat32, {2, 3}).input(DType::kFloat32, {2}).attr("broadcast", 1).attr("axis", 0);
  std::vector<float> a = {0, 0, 0, 1, 1, 1};
  std::vector<float> b = {10, 20};
  EXPECT_EQ(m.run<float>(a, b), (std::vector<float>{10, 10, 10, 21, 21, 21}));
}

TEST(LowerTest, SoftmaxBeforeOpset13NormalizesTheFlattenedTail) {
  OneNodeModel m("Softmax", 11);
  m.input(DType::kFloat32, {1, 2, 2}).attr("axis", 1);
  std::vector<float> x = {0, 0, 0, 0};
  for (float v : m.run<float>(x)) EXPECT_FLOAT_EQ(v, 0.25f);  // over all 4, not per row of 2
}

TEST(LowerTest, ClipWithRuntimeMaxOnly) {
  OneNodeModel m("Clip", 13);
  m.input(DType::kInt64, {3}).omittedInput().input(DType::kInt64, {});
  std::vector<int64_t> x = {-5, 5, 50};
  std::vector<int64_t> hi = {10};
  EXPECT_EQ(m.run<int64_t>(x, hi), (std::vector<int64_t>{-5, 5, 10}));
}

TEST(LowerTest, ConcatSkipsEmptyInputs) {
  OneNodeModel m("Concat", 13);
  m.input(DType::kFloat32, {0, 2}).input(DType::kFloat32, {1, 2}).attr("axis", 0);
  std::vector<float> empty;
  std::vector<float> b = {3, 4};
  EXPECT_EQ(m.run<float>(empty, b), (std::vector<float>{3, 4}));
}

TEST(LowerTest, MatMulVectorTimesBatchedMatrix) {
  OneNodeModel m("MatMul", 13);
  m.input(DType::kFloat32, {2}).input(DType::kFloat32, {2, 2, 1});
  std::vector<float> a = {1, 2};
  std::vector<float> b = {3, 4, 5, 6};
  EXPECT_EQ(m.run<float>(a, b), (std::vector<float>{11, 17}));  // shape 2x1
}

TEST(LowerTest, AveragePoolCeilModeCountsOnlyInsidePositions) {
  OneNodeModel m("AveragePool", 11);
  m.input(DType::kFloat32, {1, 1, 5}).attr("kernel_shape", std::vector<int64_t>{2});
  m.attr("strides", std::vector<int64_t>{2}).attr("ceil_mode", 1);
  std::vector<float> x = {1, 3, 5, 7, 9};
  EXPECT_EQ(m.run<float>(x), (std::vector<float>{2, 6, 9}));  // last window holds only x[4]
}

}  // namespace
}  // namespace kiln::ops
