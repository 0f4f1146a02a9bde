// Windows, DFT, STFT and MelWeightMatrix (compiler/ops/signal.cpp): the
// backend cases whose sizes are graph inputs, run with those sizes bound as
// constants (MelWeightMatrix keeps its sample rate and edges run-time
// inputs), a round trip through DFT and its inverse, and the errors.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "tests/ops/bound_case.h"
#include "tests/ops/node_fixture.h"

namespace kiln::ops {
namespace {

using ir::DType;
using testing::messageOf;
using testing::OneNodeGraph;
using testing::OneNodeModel;

constexpr DType f32 = DType::kFloat32;

struct BoundCase {
  const char* name;
  std::set<size_t> bound;
};

class SignalCaseTest : public ::testing::TestWithParam<BoundCase> {};

TEST_P(SignalCaseTest, MatchesExpectedOutputs) {
  EXPECT_EQ(testing::runBoundCase(GetParam().name, GetParam().bound), "") << GetParam().name;
}

INSTANTIATE_TEST_SUITE_P(Node, SignalCaseTest,
                         ::testing::Values(BoundCase{"test_hannwindow", {0}}, BoundCase{"test_hannwindow_symmetric", {0}},
                                           BoundCase{"test_hammingwindow", {0}},
                                           BoundCase{"test_hammingwindow_symmetric", {0}},
                                           BoundCase{"test_blackmanwindow", {0}},
                                           BoundCase{"test_blackmanwindow_symmetric", {0}},
                                           BoundCase{"test_stft", {1, 2}}, BoundCase{"test_stft_with_window", {1}},
                                           BoundCase{"test_melweightmatrix", {0, 1}}),
                         [](const auto& info) { return std::string(info.param.name).substr(5); });

ir::Tensor scalar(int64_t v) { return ir::Tensor::fromValues<int64_t>(DType::kInt64, {}, std::span<const int64_t>(&v, 1)); }

// DFT of a complex signal along axis 1 with dft_length 6 (zero-padding 5
// samples), then the inverse of that: the signal comes back, with a 0 after it.
TEST(DftTest, InverseUndoesForward) {
  std::vector<float> x = {1, 0.5f, -2, 1, 0.25f, 3, 4, -1, 0, 2};  // 1x5x2
  OneNodeModel forward("DFT", 17);
  forward.input(f32, {1, 5, 2}).constantInput(scalar(6));
  std::vector<float> spectrum = forward.runFloat({x});
  ASSERT_EQ(spectrum.size(), 12u);
  OneNodeModel inverse("DFT", 17);
  inverse.input(f32, {1, 6, 2}).attr("inverse", 1);
  std::vector<float> back = inverse.runFloat({spectrum});
  ASSERT_EQ(back.size(), 12u);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(back[i], x[i], 1e-5) << i;
  EXPECT_NEAR(back[10], 0, 1e-5);
  EXPECT_NEAR(back[11], 0, 1e-5);
}

// Opset 20 takes the axis as an input (default -2) and onesided keeps L/2+1 bins.
TEST(DftTest, Opset20AxisInputAndOnesided) {
  OneNodeGraph g("DFT");
  g.input(f32, "2x8x3x1").omittedInput().constantInput(scalar(1)).integer("onesided", 1);
  ASSERT_EQ(messageOf(g.infer(20)), "ok");
  EXPECT_EQ(g.outputShape(), "2x5x3x2");

  OneNodeGraph fallback("DFT");
  fallback.input(f32, "2x8x3x1");
  ASSERT_EQ(messageOf(fallback.infer(20)), "ok");
  EXPECT_EQ(fallback.outputShape(), "2x8x3x2");
}

TEST(SignalTest, Errors) {
  OneNodeGraph axis("DFT", "d");
  axis.input(f32, "1x8x1").integer("axis", 2);
  EXPECT_EQ(messageOf(axis.infer(17)),
            "DFT 'd': axis 2 must name a signal dim, not the batch or the complex dim");

  OneNodeGraph moved("DFT", "d");
  moved.input(f32, "1x8x1").integer("axis", 1);
  EXPECT_EQ(messageOf(moved.infer(20)), "DFT 'd': attribute 'axis' is an input since opset 20");

  OneNodeGraph complex("DFT", "d");
  complex.input(f32, "1x8x3");
  EXPECT_EQ(messageOf(complex.infer(17)),
            "DFT 'd': input 1x8x3 must end in a dim of 1 (real) or 2 (complex) (input 0)");

  OneNodeGraph length("DFT", "d");
  length.input(f32, "1x8x1").input(DType::kInt64, "scalar");
  Status s = length.infer(17);
  EXPECT_EQ(s.kind(), ErrorKind::kUnsupported);
  EXPECT_EQ(messageOf(s), "DFT 'd': dft_length (input 1) is computed at run time; Kiln needs it to be a constant");

  OneNodeGraph dtype("HannWindow", "w");
  dtype.constantInput(scalar(4)).integer("output_datatype", 8);
  EXPECT_EQ(messageOf(dtype.infer(17)), "HannWindow 'w': output_datatype 8 is not a numeric tensor type");

  OneNodeGraph frames("STFT", "s");
  frames.input(f32, "1x16x1").constantInput(scalar(4));
  EXPECT_EQ(messageOf(frames.infer(17)), "STFT 's': needs window (input 2) or frame_length (input 3)");

  OneNodeGraph rank("STFT", "s");
  rank.input(f32, "16x1").constantInput(scalar(4));
  EXPECT_EQ(messageOf(rank.infer(17)), "STFT 's': signal has rank 2, expected 3 (input 0)");

  OneNodeGraph mels("MelWeightMatrix", "m");
  mels.constantInput(scalar(0)).constantInput(scalar(16)).input(DType::kInt64, "scalar").input(f32, "scalar")
      .input(f32, "scalar");
  EXPECT_EQ(messageOf(mels.infer(17)), "MelWeightMatrix 'm': num_mel_bins must be positive (input 0)");
}

}  // namespace
}  // namespace kiln::ops
