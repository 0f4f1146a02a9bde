// The CPU stage schedule (codegen/cpu/schedule.h): which reductions run
// their loops outside the stage's innermost axis, and that artifacts
// compiled that way match the reference evaluator: max and min exactly,
// float sums and products within float rounding (the evaluator accumulates
// in double).
#include <gtest/gtest.h>

#include <random>

#include "codegen/cpu/schedule.h"
#include "compiler/kir/evaluator.h"
#include "compiler/onnx/writer.h"
#include "tests/passes/model_check.h"
#include "tests/testing/artifact_fixture.h"
#include "tools/common/run_artifact.h"

namespace kiln::testing {
namespace {

struct ReduceCase {
  std::string name;
  std::string op;             // ReduceSum, ReduceMax, ...; or MaxPool / AveragePool over NHWC
  std::vector<int64_t> dims;  // the input's
  int64_t axis;               // Reduce*: the one axis reduced
  ir::DType dtype;
  bool moved_out;  // whether the schedule moves the reduce loops outside the innermost axis
};

std::ostream& operator<<(std::ostream& os, const ReduceCase& c) { return os << c.name; }

std::unique_ptr<ir::Model> reduceModel(const ReduceCase& c) {
  TestGraph g(17);
  ir::Value* x = g.input("x", c.dims, c.dtype);
  if (c.op == "MaxPool" || c.op == "AveragePool") {
    // A 1x1 Conv in front makes the channels-last pass run the pool over NHWC.
    ir::Value* conv = g.op("Conv", {x, g.randomConstant("w", {c.dims[1], c.dims[1], 1, 1})}, "conv");
    ir::Node* pool = g.node(c.op, {conv}, "y");
    setInts(pool, "kernel_shape", {3, 3});
    setInts(pool, "strides", {2, 2});
    setInts(pool, "pads", {1, 1, 1, 1});
    g.output(pool->outputs[0]);
    return g.take();
  }
  ir::Node* node = g.node(c.op, {x}, "y");
  if (c.op == "ReduceSum")
    node->inputs.push_back(g.int64s("axes", {c.axis}));
  else
    setInts(node, "axes", {c.axis});
  g.output(node->outputs[0]);
  return g.take();
}

ir::Tensor randomInput(const std::vector<int64_t>& dims, ir::DType dtype) {
  std::mt19937 rng(11);
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  if (dtype == ir::DType::kInt32) {
    std::uniform_int_distribution<int32_t> dist(-3, 3);
    std::vector<int32_t> values(static_cast<size_t>(n));
    for (int32_t& v : values) v = dist(rng);
    return ir::Tensor::fromValues<int32_t>(dtype, dims, values);
  }
  std::uniform_real_distribution<float> dist(-1, 1);
  std::vector<float> values(static_cast<size_t>(n));
  for (float& v : values) v = dist(rng);
  return ir::Tensor::fromValues<float>(dtype, dims, values);
}

class ReduceSchedule : public ::testing::TestWithParam<ReduceCase> {};

TEST_P(ReduceSchedule, MovesReduceLoopsOutWhereReadsAreContiguous) {
  const ReduceCase& c = GetParam();
  auto program = compileProgram([&] { return reduceModel(c); }, driver::CompileOptions{});
  ASSERT_TRUE(program.isOk()) << program.status().message();
  int moved = 0;
  for (const lower::KernelCall& call : program->calls) {
    if (call.kernel.origin.find(c.op) == std::string::npos) continue;  // the Conv in front of a pool
    for (const kir::Stage& stage : call.kernel.stages)
      moved += codegen::cpu::scheduleStage(stage).reduce_outside_inner_axis != nullptr;
  }
  EXPECT_EQ(moved, c.moved_out ? 1 : 0);
}

TEST_P(ReduceSchedule, ArtifactMatchesReference) {
  const ReduceCase& c = GetParam();
  TempDir tmp;
  ASSERT_TRUE(frontend::writeOnnxFile(*reduceModel(c), tmp.file("model.onnx")).isOk());
  driver::CompileOptions nchw;
  nchw.pipeline.disabled.insert("channels-last");
  auto program = compileProgram([&] { return reduceModel(c); }, nchw);
  ASSERT_TRUE(program.isOk()) << program.status().message();
  ir::Tensor input = randomInput(c.dims, c.dtype);
  auto want = lower::evaluateProgram(*program, std::vector<ir::Tensor>{input});
  ASSERT_TRUE(want.isOk()) << want.status().message();

  compileOrFail(tmp.file("model.onnx"), tmp.file("model.so"));
  kiln::Model artifact(tmp.file("model.so"));
  kiln::Session session(artifact, 2);
  auto got = tools::runArtifact(artifact, session, {input});
  ASSERT_TRUE(got.isOk()) << got.status().message();
  ASSERT_EQ(got->size(), 1u);
  // Max and min pick one of the terms. Sums of at most 40 float terms
  // against the evaluator's double, and the pools' 1x1 Conv, which runs
  // channels-last in the artifact and sums in another order: float rounding.
  bool exact = c.op == "ReduceMax" || c.op == "ReduceMin";
  auto diff = tools::compareTensors((*got)[0], (*want)[0], exact ? tools::Tolerance{0, 0} : tools::Tolerance{1e-5, 1e-6});
  EXPECT_FALSE(diff.has_value()) << *diff;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ReduceSchedule,
    ::testing::Values(
        // Reading along the innermost output axis: moved out.
        ReduceCase{"sum_middle_axis", "ReduceSum", {3, 37, 20}, 1, ir::DType::kFloat32, true},
        ReduceCase{"max_middle_axis", "ReduceMax", {2, 9, 5, 33}, 1, ir::DType::kFloat32, true},
        ReduceCase{"min_first_axis_int", "ReduceMin", {7, 40}, 0, ir::DType::kInt32, true},
        ReduceCase{"prod_middle_axis", "ReduceProd", {2, 11, 17}, 1, ir::DType::kFloat32, true},
        ReduceCase{"maxpool_nhwc", "MaxPool", {1, 24, 15, 14}, 0, ir::DType::kFloat32, true},
        ReduceCase{"averagepool_nhwc", "AveragePool", {1, 20, 9, 16}, 0, ir::DType::kFloat32, true},
        // Reducing the innermost axis: each output's terms are contiguous already.
        ReduceCase{"sum_last_axis", "ReduceSum", {3, 20, 37}, 2, ir::DType::kFloat32, false},
        // An innermost axis of 3: too short to vectorize.
        ReduceCase{"sum_short_inner_axis", "ReduceSum", {4, 30, 3}, 1, ir::DType::kFloat32, false}),
    [](const ::testing::TestParamInfo<ReduceCase>& info) { return info.param.name; });

}  // namespace
}  // namespace kiln::testing
