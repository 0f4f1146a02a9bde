// Convolutions through the CPU contraction template (codegen/cpu/contraction.h)
// against the reference evaluator, in the shapes that pick each of its paths:
// depthwise convolutions (rows over output rows, guarded loads at stride 1, 2
// and 3, tiles with a row tail and a vector-block tail), dense padded
// convolutions (rows over output channels) and pointwise ones, with fused
// bias and activation epilogues; dense stride-1 convolutions whose output
// rows and columns merge into one vector index. Each case runs in both
// layouts: NCHW (the channels-last pass disabled) and channels-last
// (kiln.ConvNhwc: packed weight panels along the output channel, padding
// guards hoisted out of the channel loop, depthwise vectors along the
// channel). Also a projection whose head-split Reshape is fused after it:
// its weight packs along the two merged output axes. And a block whose last
// vector has at most 8 live lanes, run as 8 lanes.
#include <gtest/gtest.h>

#include <random>

#include "codegen/cpu/contraction.h"
#include "compiler/kir/evaluator.h"
#include "compiler/onnx/writer.h"
#include "tests/passes/model_check.h"
#include "tests/testing/artifact_fixture.h"
#include "tools/common/run_artifact.h"

namespace kiln::testing {
namespace {

struct ConvCase {
  std::string name;
  int64_t channels_in, channels_out, height, width, kernel, stride, group;
  std::vector<int64_t> pads;  // begin h, begin w, end h, end w
  bool clip = true;           // Conv + bias + Clip(0, 6), as in MobileNetV2
};

std::ostream& operator<<(std::ostream& os, const ConvCase& c) { return os << c.name; }

std::unique_ptr<ir::Model> convModel(const ConvCase& c) {
  TestGraph g;
  ir::Value* x = g.input("x", {1, c.channels_in, c.height, c.width});
  ir::Value* w = g.randomConstant("w", {c.channels_out, c.channels_in / c.group, c.kernel, c.kernel});
  ir::Value* b = g.randomConstant("b", {c.channels_out});
  ir::Node* conv = g.node("Conv", {x, w, b}, "conv");
  setInts(conv, "kernel_shape", {c.kernel, c.kernel});
  setInts(conv, "strides", {c.stride, c.stride});
  setInts(conv, "pads", c.pads);
  setInt(conv, "group", c.group);
  ir::Value* y = conv->outputs[0];
  if (c.clip) y = g.op("Clip", {y, g.constant("lo", {}, {0.0f}), g.constant("hi", {}, {6.0f})}, "y");
  g.output(y);
  return g.take();
}

// The contraction plans of a program's stages, in kernel order (stages the
// planner does not take are left out).
std::vector<std::pair<const kir::Stage*, codegen::cpu::ContractionPlan>> plansOf(const lower::Program& program) {
  std::vector<std::pair<const kir::Stage*, codegen::cpu::ContractionPlan>> plans;
  for (const lower::KernelCall& call : program.calls) {
    auto constant_of = [&](int param) -> const ir::Tensor* {
      const lower::ProgramBuffer& pb = program.buffers[call.args[param]];
      return pb.kind == lower::ProgramBuffer::Kind::kConstant ? &*pb.constant : nullptr;
    };
    for (const kir::Stage& stage : call.kernel.stages)
      if (std::optional<codegen::cpu::ContractionPlan> plan = codegen::cpu::planContraction(call.kernel, stage, constant_of))
        plans.emplace_back(&stage, std::move(*plan));
  }
  return plans;
}

// The options that compile a convolution in NCHW or channels-last.
driver::CompileOptions layoutOptions(bool channels_last) {
  driver::CompileOptions options;
  if (!channels_last) options.pipeline.disabled.insert("channels-last");
  options.pipeline.disabled.insert("winograd-conv");  // these test the direct kernel's plans
  return options;
}

// The one contraction of a single-convolution model, NCHW or channels-last:
// its plan (read for its fields: its expression pointers are into a program
// that is gone) and vector extent. Callers wrap it in ASSERT_NO_FATAL_FAILURE.
struct SolePlan {
  codegen::cpu::ContractionPlan plan;
  int64_t vector_extent = 0;
};

void solePlan(const ConvCase& conv, bool channels_last, SolePlan& out) {
  auto program = compileProgram([&] { return convModel(conv); }, layoutOptions(channels_last));
  ASSERT_TRUE(program.isOk()) << program.status().message();
  auto plans = plansOf(*program);
  ASSERT_EQ(plans.size(), 1u);
  out = {plans[0].second, codegen::cpu::vectorExtent(*plans[0].first, plans[0].second)};
}

// The model's artifact, compiled in `layout`, against its NCHW program on
// the reference evaluator, on one seeded random input.
void expectArtifactMatchesReference(const ModelFactory& make, bool channels_last) {
  TempDir tmp;
  ASSERT_TRUE(frontend::writeOnnxFile(*make(), tmp.file("model.onnx")).isOk());
  auto program = compileProgram(make, layoutOptions(false));
  ASSERT_TRUE(program.isOk()) << program.status().message();
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1, 1);
  const std::vector<int64_t> dims = *ir::knownDims(program->inputs[0].shape);
  std::vector<float> data(static_cast<size_t>(dims[0] * dims[1] * dims[2] * dims[3]));
  for (float& f : data) f = dist(rng);
  ir::Tensor input = ir::Tensor::fromValues<float>(ir::DType::kFloat32, dims, data);
  auto want = lower::evaluateProgram(*program, std::vector<ir::Tensor>{input});
  ASSERT_TRUE(want.isOk()) << want.status().message();

  compileOrFail(tmp.file("model.onnx"), tmp.file("model.so"), layoutOptions(channels_last));
  kiln::Model artifact(tmp.file("model.so"));
  kiln::Session session(artifact, 2);
  auto got = tools::runArtifact(artifact, session, {input});
  ASSERT_TRUE(got.isOk()) << got.status().message();
  ASSERT_EQ(got->size(), 1u);
  // Sums of at most a few hundred products in a different order.
  auto diff = tools::compareTensors((*got)[0], (*want)[0], {1e-4, 1e-5});
  EXPECT_FALSE(diff.has_value()) << *diff;
}

class ConvContraction : public ::testing::TestWithParam<std::tuple<ConvCase, bool>> {};

TEST_P(ConvContraction, MatchesReference) {
  // std::get, not a structured binding: clang 14 cannot capture one.
  const ConvCase& conv = std::get<0>(GetParam());
  expectArtifactMatchesReference([&] { return convModel(conv); }, std::get<1>(GetParam()));
}

// A small CNN whose every op has a channels-last form: Conv stem (stride 2)
// -> MaxPool (ceil mode, padded) -> depthwise Conv + Relu -> pointwise Conv
// -> residual Add -> AveragePool -> GlobalAveragePool + GlobalMaxPool.
std::unique_ptr<ir::Model> smallCnn() {
  TestGraph g;
  ir::Value* x = g.input("x", {1, 3, 33, 30});
  auto conv = [&](ir::Value* in, int64_t c_in, int64_t c_out, int64_t k, int64_t stride, int64_t group,
                  const std::string& name) {
    ir::Node* n = g.node("Conv", {in, g.randomConstant(name + "_w", {c_out, c_in / group, k, k}),
                                  g.randomConstant(name + "_b", {c_out})}, name);
    setInts(n, "pads", {k / 2, k / 2, k / 2, k / 2});
    setInts(n, "strides", {stride, stride});
    setInt(n, "group", group);
    return n->outputs[0];
  };
  ir::Value* stem = g.op("Relu", {conv(x, 3, 24, 3, 2, 1, "stem")}, "stem_relu");
  ir::Node* max = g.node("MaxPool", {stem}, "max");
  setInts(max, "kernel_shape", {3, 3});
  setInts(max, "strides", {2, 2});
  setInts(max, "pads", {1, 1, 1, 1});
  setInt(max, "ceil_mode", 1);
  ir::Value* dw = g.op("Relu", {conv(max->outputs[0], 24, 24, 3, 1, 24, "dw")}, "dw_relu");
  ir::Value* residual = g.op("Add", {max->outputs[0], conv(dw, 24, 24, 1, 1, 1, "pw")}, "residual");
  ir::Node* avg = g.node("AveragePool", {residual}, "avg");
  setInts(avg, "kernel_shape", {3, 3});
  setInts(avg, "pads", {1, 1, 1, 1});
  setInts(avg, "strides", {2, 2});
  ir::Value* sum = g.op("Add", {g.op("GlobalAveragePool", {avg->outputs[0]}, "gavg"),
                                g.op("GlobalMaxPool", {residual}, "gmax")}, "sum");
  g.output(sum);
  return g.take();
}

TEST(ChannelsLastModel, MatchesReference) { expectArtifactMatchesReference(smallCnn, true); }

// Width 20: one 32-lane block with 12 lanes off; width 70: a full 64-lane
// block and a 6-lane tail block; heights leave a row tail for every tile.
INSTANTIATE_TEST_SUITE_P(
    Shapes, ConvContraction,
    ::testing::Combine(::testing::Values(ConvCase{"depthwise3x3_stride1", 8, 8, 19, 20, 3, 1, 8, {1, 1, 1, 1}},
                      ConvCase{"depthwise3x3_stride1_wide", 3, 3, 11, 70, 3, 1, 3, {1, 1, 1, 1}},
                      ConvCase{"depthwise3x3_stride2", 6, 6, 23, 23, 3, 2, 6, {1, 1, 1, 1}},
                      ConvCase{"depthwise3x3_stride2_wide", 4, 4, 14, 130, 3, 2, 4, {1, 1, 1, 1}},
                      ConvCase{"depthwise5x5_stride2", 5, 5, 21, 40, 5, 2, 5, {2, 2, 2, 2}},
                      ConvCase{"depthwise3x3_stride2_same_upper", 4, 4, 16, 48, 3, 2, 4, {0, 0, 1, 1}},
                      ConvCase{"depthwise3x3_stride3", 4, 4, 25, 61, 3, 3, 4, {1, 1, 1, 1}},
                      ConvCase{"depthwise3x3_unpadded", 4, 4, 12, 40, 3, 1, 4, {0, 0, 0, 0}, false},
                      ConvCase{"dense3x3_stride1", 8, 20, 13, 30, 3, 1, 1, {1, 1, 1, 1}},
                      ConvCase{"dense3x3_stride2", 3, 16, 33, 33, 3, 2, 1, {1, 1, 1, 1}},
                      ConvCase{"pointwise", 24, 40, 9, 28, 1, 1, 1, {0, 0, 0, 0}},
                      // Output rows and columns merged into one vector index
                      // (ContractionPlan::v_outer_axis): 49 lanes in one block
                      // with 15 off, 14x14 across block boundaries with an
                      // asymmetric pad, a pointwise 30x30 in 15 blocks split
                      // over row chunks and block groups with a row tail.
                      ConvCase{"dense3x3_merged_7x7", 32, 40, 7, 7, 3, 1, 1, {1, 1, 1, 1}},
                      ConvCase{"dense3x3_merged_14x14_asymmetric", 16, 20, 14, 14, 3, 1, 1, {0, 1, 2, 1}},
                      ConvCase{"dense5x5_merged", 6, 9, 12, 11, 5, 1, 1, {2, 2, 2, 2}, false},
                      ConvCase{"pointwise_merged_7x7", 64, 50, 7, 7, 1, 1, 1, {0, 0, 0, 0}},
                      ConvCase{"pointwise_merged_30x30", 8, 13, 30, 30, 1, 1, 1, {0, 0, 0, 0}, false},
                      // Channels-last shapes: output channels in one 64-lane
                      // block with a 16-lane tail (80), an odd channel count
                      // for depthwise (37), 7-pixel rows split 4 + 3.
                      ConvCase{"dense3x3_80_channels", 16, 80, 9, 7, 3, 1, 1, {1, 1, 1, 1}},
                      ConvCase{"depthwise3x3_37_channels", 37, 37, 10, 7, 3, 1, 37, {1, 1, 1, 1}},
                      ConvCase{"depthwise3x3_stride2_asymmetric", 24, 24, 15, 15, 3, 2, 24, {0, 0, 1, 1}}),
                       ::testing::Bool()),
    [](const ::testing::TestParamInfo<std::tuple<ConvCase, bool>>& info) {
      return std::get<0>(info.param).name + (std::get<1>(info.param) ? "_nhwc" : "_nchw");
    });

// The planner merges an NCHW convolution's output rows and columns into one
// vector index (so a 7x7 map fills 49 of 64 lanes rather than 7 of 16) for
// dense stride-1 convolutions, padded or not, and keeps them apart where
// the flat index is not one run (stride 2) or the tile needs its rows over
// output rows (depthwise).
struct MergeCase {
  ConvCase conv;
  int64_t vector_extent;  // 0: not merged
};

std::ostream& operator<<(std::ostream& os, const MergeCase& c) { return os << c.conv.name; }

class ConvMerge : public ::testing::TestWithParam<MergeCase> {};

TEST_P(ConvMerge, PlansTheVectorIndex) {
  const MergeCase& c = GetParam();
  SolePlan sole;
  ASSERT_NO_FATAL_FAILURE(solePlan(c.conv, false, sole));
  if (c.vector_extent == 0) {
    EXPECT_EQ(sole.plan.v_outer_axis, -1);
  } else {
    EXPECT_GE(sole.plan.v_outer_axis, 0);
    EXPECT_EQ(sole.vector_extent, c.vector_extent);
    EXPECT_FALSE(sole.plan.packed);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ConvMerge,
    ::testing::Values(MergeCase{{"dense3x3_7x7", 32, 40, 7, 7, 3, 1, 1, {1, 1, 1, 1}}, 49},
                      MergeCase{{"pointwise_14x14", 64, 48, 14, 14, 1, 1, 1, {0, 0, 0, 0}}, 196},
                      MergeCase{{"dense3x3_stride2", 16, 32, 14, 14, 3, 2, 1, {1, 1, 1, 1}}, 0},
                      MergeCase{{"depthwise3x3", 16, 16, 14, 14, 3, 1, 16, {1, 1, 1, 1}}, 0}),
    [](const ::testing::TestParamInfo<MergeCase>& info) { return info.param.conv.name; });

// Channels-last plans: a dense padded convolution packs its weight along
// the output channel with the padding guard hoisted out of the channel loop;
// a pointwise one is a packed MatMul over the pixels with no guard; a
// depthwise one streams its weight and input as vectors along the channel.
struct NhwcCase {
  ConvCase conv;
  bool packed, hoisted_guard, scalar_vector;
  int64_t vector_extent;
};

std::ostream& operator<<(std::ostream& os, const NhwcCase& c) { return os << c.conv.name; }

class ConvNhwcPlan : public ::testing::TestWithParam<NhwcCase> {};

TEST_P(ConvNhwcPlan, PlansTheChannelAxis) {
  const NhwcCase& c = GetParam();
  SolePlan sole;
  ASSERT_NO_FATAL_FAILURE(solePlan(c.conv, true, sole));
  EXPECT_EQ(sole.plan.packed, c.packed);
  EXPECT_EQ(sole.plan.hoisted_scalar_guard, c.hoisted_guard);
  EXPECT_EQ(sole.plan.scalar_vector, c.scalar_vector);
  EXPECT_EQ(sole.vector_extent, c.vector_extent);
  EXPECT_LE(sole.plan.rows, 8);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ConvNhwcPlan,
    ::testing::Values(NhwcCase{{"dense3x3", 32, 40, 14, 14, 3, 1, 1, {1, 1, 1, 1}}, true, true, false, 40},
                      NhwcCase{{"pointwise", 64, 48, 14, 14, 1, 1, 1, {0, 0, 0, 0}}, true, false, false, 48},
                      NhwcCase{{"depthwise3x3", 32, 32, 14, 14, 3, 1, 32, {1, 1, 1, 1}}, false, false, true, 32}),
    [](const ::testing::TestParamInfo<NhwcCase>& info) { return info.param.conv.name; });

// Channels-last convolutions whose one vector block ends in a vector of at
// most 8 live lanes (24, 40 or 56 output channels) run that vector as 8
// lanes (ContractionPlan::half_last); 48 channels (three full vectors) and
// 72 (two blocks) do not. Each artifact against the reference.
struct HalfCase {
  ConvCase conv;
  bool half_last;
};

std::ostream& operator<<(std::ostream& os, const HalfCase& c) { return os << c.conv.name; }

class HalfLastVector : public ::testing::TestWithParam<HalfCase> {};

TEST_P(HalfLastVector, PlansAndMatchesReference) {
  const HalfCase& c = GetParam();
  SolePlan sole;
  ASSERT_NO_FATAL_FAILURE(solePlan(c.conv, true, sole));
  EXPECT_TRUE(sole.plan.packed);
  EXPECT_EQ(sole.plan.half_last, c.half_last);
  expectArtifactMatchesReference([&] { return convModel(c.conv); }, true);
}

INSTANTIATE_TEST_SUITE_P(Shapes, HalfLastVector,
                         ::testing::Values(HalfCase{{"pointwise24", 32, 24, 9, 9, 1, 1, 1, {0, 0, 0, 0}}, true},
                                           HalfCase{{"dense3x3_40", 16, 40, 8, 8, 3, 1, 1, {1, 1, 1, 1}}, true},
                                           HalfCase{{"pointwise56_relu6", 16, 56, 7, 7, 1, 1, 1, {0, 0, 0, 0}, true},
                                                    true},
                                           HalfCase{{"pointwise20", 24, 20, 6, 6, 1, 1, 1, {0, 0, 0, 0}, false}, true},
                                           HalfCase{{"pointwise48", 16, 48, 7, 7, 1, 1, 1, {0, 0, 0, 0}}, false},
                                           HalfCase{{"pointwise72", 16, 72, 7, 7, 1, 1, 1, {0, 0, 0, 0}}, false}),
                         [](const ::testing::TestParamInfo<HalfCase>& info) { return info.param.conv.name; });

// Output channels that leave the last block a whole vector or more short
// (112: blocks of 4 vectors, the second with 3 live; 80: 3 and 2; 100: 4
// and 3, its last one partly live): the last block multiplies and stores
// only its live vectors, in plain, padded (guarded) and clipped tiles.
struct TailCase {
  ConvCase conv;
  int vectors;
};

std::ostream& operator<<(std::ostream& os, const TailCase& c) { return os << c.conv.name; }

class TailBlock : public ::testing::TestWithParam<TailCase> {};

TEST_P(TailBlock, ComputesTheLiveVectorsAndMatchesReference) {
  const TailCase& c = GetParam();
  SolePlan sole;
  ASSERT_NO_FATAL_FAILURE(solePlan(c.conv, true, sole));
  EXPECT_EQ(sole.plan.vectors, c.vectors);
  const int64_t lanes = sole.plan.blockLanes();
  const int64_t padded = (sole.vector_extent + lanes - 1) / lanes * lanes;
  EXPECT_GE(padded - sole.vector_extent, int64_t{codegen::cpu::kVectorLanes})
      << "a whole idle vector in the last block";
  expectArtifactMatchesReference([&] { return convModel(c.conv); }, true);
}

INSTANTIATE_TEST_SUITE_P(Shapes, TailBlock,
                         ::testing::Values(TailCase{{"pointwise112", 24, 112, 7, 9, 1, 1, 1, {0, 0, 0, 0}}, 4},
                                           TailCase{{"pointwise80", 16, 80, 6, 7, 1, 1, 1, {0, 0, 0, 0}}, 3},
                                           TailCase{{"dense3x3_112", 8, 112, 6, 6, 3, 1, 1, {1, 1, 1, 1}}, 4},
                                           TailCase{{"pointwise100_relu6", 16, 100, 5, 5, 1, 1, 1, {0, 0, 0, 0}, true},
                                                    4}),
                         [](const ::testing::TestParamInfo<TailCase>& info) { return info.param.conv.name; });

// Grouped convolutions (neither group 1 nor depthwise) run channels-last
// with the output channel split into (group, filter in group): one
// contraction vectorized along the group's filters, groups of fewer than 8
// filters merged first (channels-last's widenGroups, zero weights between
// the merged groups). `vector_extent` is the filters per group after that.
// A padded one's S, the input pixel, takes the hoisted guard (each row's
// address or a zero row, computed before the channel loop) as a dense
// convolution's does.
struct GroupedCase {
  ConvCase conv;
  int64_t vector_extent;
  bool hoisted_guard = true;
};

std::ostream& operator<<(std::ostream& os, const GroupedCase& c) { return os << c.conv.name; }

class GroupedConv : public ::testing::TestWithParam<GroupedCase> {};

TEST_P(GroupedConv, PlansTheGroupFiltersAndMatchesReference) {
  const GroupedCase& c = GetParam();
  SolePlan sole;
  ASSERT_NO_FATAL_FAILURE(solePlan(c.conv, true, sole));
  EXPECT_EQ(sole.vector_extent, c.vector_extent);
  EXPECT_EQ(sole.plan.hoisted_scalar_guard, c.hoisted_guard);
  expectArtifactMatchesReference([&] { return convModel(c.conv); }, true);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, GroupedConv,
    ::testing::Values(GroupedCase{{"g4_filters8", 32, 32, 9, 9, 3, 1, 4, {1, 1, 1, 1}}, 8},
                      GroupedCase{{"g2_filters16", 16, 32, 7, 8, 3, 1, 2, {1, 1, 1, 1}}, 16},
                      GroupedCase{{"g8_filters4_merged", 32, 32, 9, 9, 3, 1, 8, {1, 1, 1, 1}}, 8},
                      GroupedCase{{"g32_stride2_merged", 128, 128, 13, 13, 3, 2, 32, {1, 1, 1, 1}}, 8},
                      GroupedCase{{"multiplier2_merged", 16, 32, 8, 8, 3, 1, 16, {1, 1, 1, 1}}, 8},
                      GroupedCase{{"g3_merged_to_dense", 12, 12, 6, 6, 3, 1, 3, {1, 1, 1, 1}}, 12},
                      GroupedCase{{"g4_pointwise", 64, 64, 7, 7, 1, 1, 4, {0, 0, 0, 0}, false}, 16, false}),
    [](const ::testing::TestParamInfo<GroupedCase>& info) { return info.param.conv.name; });

// A channels-last GlobalAveragePool is planned as a contraction vectorized
// along the channel (X contiguous there), not as one strided sum per channel.
TEST(ChannelsLastModel, GlobalAveragePoolVectorizesAlongTheChannel) {
  auto make = [] {
    TestGraph g;
    ir::Value* x = g.input("x", {1, 8, 20, 21});
    ir::Value* c = g.op("Conv", {x, g.randomConstant("w", {40, 8, 1, 1})}, "conv");
    g.output(g.op("GlobalAveragePool", {c}, "gap"));
    return g.take();
  };
  auto program = compileProgram(make, layoutOptions(true));
  ASSERT_TRUE(program.isOk()) << program.status().message();
  auto plans = plansOf(*program);  // the convolution's, then the pool's
  ASSERT_EQ(plans.size(), 2u);
  const auto& [stage, plan] = plans[1];
  EXPECT_FALSE(plan.packed);
  EXPECT_EQ(plan.v_axis, 3);
  EXPECT_EQ(codegen::cpu::vectorExtent(*stage, plan), 40);
  expectArtifactMatchesReference(make, true);
}

// x[1, 1, 13, 40] -> MatMul W[40, 96] -> Add bias -> Reshape [1, 13, 3, 32]:
// fused, the product is stored along two output axes that read W as one
// run, and the planner packs W along the merged index.
TEST(ProjectionWithHeadSplit, PacksAlongTheMergedAxes) {
  auto make = [] {
    TestGraph g;
    ir::Value* x = g.input("x", {1, 1, 13, 40});
    ir::Value* y = g.op("Add", {g.op("MatMul", {x, g.randomConstant("w", {40, 96})}, "product"),
                                g.randomConstant("bias", {96})},
                        "biased");
    g.output(g.op("Reshape", {y, g.int64s("heads", {1, 13, 3, 32})}, "y"));
    return g.take();
  };
  auto program = compileProgram(make, {});
  ASSERT_TRUE(program.isOk()) << program.status().message();
  auto plans = plansOf(*program);
  ASSERT_EQ(plans.size(), 1u);
  const auto& [stage, plan] = plans[0];
  EXPECT_TRUE(plan.packed);
  EXPECT_GE(plan.v_outer_axis, 0);
  EXPECT_EQ(codegen::cpu::vectorExtent(*stage, plan), 96);  // a 64-lane block and a partial one
  expectArtifactMatchesReference(make, false);
}

// SqueezeNet's fire module: squeeze 1x1 + Relu, then expand 1x1 and expand
// 3x3 (+ Relu each) concatenated on the channel axis. fuse-kernels has the
// 3x3 convolution store straight into its half of the concatenation
// (copies_into_stores), so its plan writes a slice of the output, channels
// 12..23 of 24, rather than a buffer of its own; the copy is gone.
std::unique_ptr<ir::Model> fireModule() {
  TestGraph g;
  ir::Value* x = g.input("x", {1, 8, 9, 10});
  auto conv = [&](ir::Value* in, int64_t c_in, int64_t c_out, int64_t k, const std::string& name) {
    ir::Node* n = g.node(
        "Conv", {in, g.randomConstant(name + "_w", {c_out, c_in, k, k}), g.randomConstant(name + "_b", {c_out})}, name);
    setInts(n, "pads", {k / 2, k / 2, k / 2, k / 2});
    return g.op("Relu", {n->outputs[0]}, name + "_relu");
  };
  ir::Value* squeeze = conv(x, 8, 4, 1, "squeeze");
  ir::Node* concat =
      g.node("Concat", {conv(squeeze, 4, 12, 1, "expand1x1"), conv(squeeze, 4, 12, 3, "expand3x3")}, "concat");
  setInt(concat, "axis", 1);
  g.output(concat->outputs[0]);
  return g.take();
}

TEST(FireModule, ExpandStoresIntoItsSliceOfTheConcatenation) {
  for (bool channels_last : {false, true}) {
    SCOPED_TRACE(channels_last ? "channels-last" : "NCHW");
    auto program = compileProgram(fireModule, layoutOptions(channels_last));
    ASSERT_TRUE(program.isOk()) << program.status().message();
    int slices = 0;
    for (const auto& [stage, plan] : plansOf(*program)) slices += !kir::writesDistinctElements(*stage);
    EXPECT_EQ(slices, 1) << lower::toString(*program);
    int copies = 0;  // stages that only move a value
    for (const lower::KernelCall& call : program->calls)
      for (const kir::Stage& stage : call.kernel.stages) copies += stage.value->kind == kir::ExprNode::Kind::kLoad;
    EXPECT_EQ(copies, channels_last ? 2 : 0) << "the layout transposes at the edges only";
    expectArtifactMatchesReference(fireModule, channels_last);
  }
}

// EfficientNet's squeeze-and-excitation scale before the block's 1x1
// projection: fuse-kernels inlines `x * s` into the projection's sum, and
// the planner keeps the packed weight, S being the product, which each
// tile of channels-last pixels stages for its rows (staged_scalar) before
// the FMAs; 7 x 9 pixels leave a short last tile.
TEST(ScaledProjection, PacksTheWeightUnderTheScale) {
  auto make = [] {
    TestGraph g;
    ir::Value* x = g.input("x", {1, 40, 7, 9});
    ir::Value* scale = g.op("Sigmoid", {g.op("GlobalAveragePool", {x}, "pool")}, "gate");
    ir::Value* y = g.op("Conv", {g.op("Mul", {x, scale}, "scaled"), g.randomConstant("w", {24, 40, 1, 1})}, "project");
    g.output(g.op("Add", {y, g.randomConstant("b", {1, 24, 1, 1})}, "y"));
    return g.take();
  };
  for (bool channels_last : {false, true}) {
    SCOPED_TRACE(channels_last ? "channels-last" : "NCHW");
    auto program = compileProgram(make, layoutOptions(channels_last));
    ASSERT_TRUE(program.isOk()) << program.status().message();
    int scaled = 0, staged = 0;
    for (const auto& [stage, plan] : plansOf(*program)) {
      const bool product = plan.packed && plan.scalar->kind == kir::ExprNode::Kind::kBinary;
      scaled += product;
      staged += product && plan.staged_scalar && plan.row_axis >= 0;
    }
    EXPECT_EQ(scaled, 1) << lower::toString(*program);
    if (channels_last) EXPECT_EQ(staged, 1) << "rows of pixels, k the channel\n" << lower::toString(*program);
    expectArtifactMatchesReference(make, channels_last);
  }
}

// Every generated function of an AVX-512 target asks LLVM for 512-bit
// vectors, the CPU named or the host: LLVM's Intel server tuning prefers 256
// bits and split the kernels' 16-lane vectors in two, where `--cpu
// sapphirerapids` (an empty feature string) used to miss the request. An
// AVX2 target gets no such request.
TEST(TargetVectorWidth, AvxFiveTwelveTargetsAskForFullWidthVectors) {
  TempDir tmp;
  TestGraph g;
  ir::Value* x = g.input("x", {8, 64});
  g.output(g.op("MatMul", {x, g.randomConstant("w", {64, 48})}, "y"));
  ASSERT_TRUE(frontend::writeOnnxFile(*g.take(), tmp.file("m.onnx")).isOk());
  for (const char* cpu : {"sapphirerapids", "skylake-avx512", "znver4", "x86-64-v3"}) {
    SCOPED_TRACE(cpu);
    driver::CompileOptions options;
    options.emit = driver::Stage::kLlvm;
    options.codegen.cpu = cpu;
    compileOrFail(tmp.file("m.onnx"), tmp.file("m.ll"), options);
    std::vector<char> bytes = readBytes(tmp.file("m.ll"));
    const std::string ir(bytes.begin(), bytes.end());
    EXPECT_EQ(ir.find("\"prefer-vector-width\"=\"512\"") != std::string::npos, std::string(cpu) != "x86-64-v3");
  }
}

}  // namespace
}  // namespace kiln::testing
