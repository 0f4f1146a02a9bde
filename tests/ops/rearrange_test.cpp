// ReverseSequence and MaxUnpool (compiler/ops/rearrange.cpp): hostile
// lengths and indices stay inside the buffers, the output_shape case with
// its shape bound as a constant, and the validation errors.
#include <gtest/gtest.h>

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

// Lengths past the sequence or negative are clamped to [0, T].
TEST(ReverseSequenceTest, ClampsLengths) {
  OneNodeModel m("ReverseSequence", 10);
  m.input(f32, {3, 2}).input(DType::kInt64, {2}).attr("batch_axis", 1).attr("time_axis", 0);
  std::vector<float> x = {1, 10, 2, 20, 3, 30};  // time-major: batch 0 is 1 2 3, batch 1 is 10 20 30
  std::vector<int64_t> lens = {99, -4};
  std::vector<float> y = m.run<float>(x, lens);
  EXPECT_EQ(y, (std::vector<float>{3, 10, 2, 20, 1, 30}));
}

TEST(MaxUnpoolTest, OutputShapeBound) {
  EXPECT_EQ(testing::runBoundCase("test_maxunpool_export_with_output_shape", {2}), "");
}

// An index outside Y is dropped; the last of two equal indices wins.
TEST(MaxUnpoolTest, HostileIndices) {
  OneNodeModel m("MaxUnpool", 11);
  m.input(f32, {1, 1, 1, 3}).input(DType::kInt64, {1, 1, 1, 3});
  m.attr("kernel_shape", std::vector<int64_t>{1, 2}).attr("strides", std::vector<int64_t>{1, 2});
  std::vector<float> x = {5, 6, 7};
  std::vector<int64_t> indices = {1000000, 2, 2};
  std::vector<float> y = m.run<float>(x, indices);
  EXPECT_EQ(y, (std::vector<float>{0, 0, 7, 0, 0, 0}));
}

TEST(RearrangeTest, Errors) {
  OneNodeGraph axes("ReverseSequence", "r");
  axes.input(f32, "4x4").input(DType::kInt64, "4").integer("batch_axis", 0).integer("time_axis", 0);
  EXPECT_EQ(messageOf(axes.infer(10)), "ReverseSequence 'r': batch_axis 0 and time_axis 0 must be 0 and 1 in some order");

  OneNodeGraph lens("ReverseSequence", "r");
  lens.input(f32, "4x3").input(DType::kInt64, "4");
  EXPECT_EQ(messageOf(lens.infer(10)),
            "ReverseSequence 'r': sequence_lens has 4 elements, expected the batch size 3 (input 1)");

  OneNodeGraph rank("ReverseSequence", "r");
  rank.input(f32, "4").input(DType::kInt64, "4");
  EXPECT_EQ(messageOf(rank.infer(10)), "ReverseSequence 'r': input has rank 1, expected at least 2 (input 0)");

  OneNodeGraph kernel("MaxUnpool", "u");
  kernel.input(f32, "1x1x2x2").input(DType::kInt64, "1x1x2x2").ints("kernel_shape", {2});
  EXPECT_EQ(messageOf(kernel.infer(11)),
            "MaxUnpool 'u': kernel_shape has 1 values, expected 2 (one per spatial dim of X)");

  OneNodeGraph shape("MaxUnpool", "u");
  shape.input(f32, "1x1x2x2").input(DType::kInt64, "1x1x2x2").ints("kernel_shape", {2, 2}).ints("strides", {2, 2})
      .constantInput(testing::int64Tensor({1, 1, 3, 4}));
  EXPECT_EQ(messageOf(shape.infer(11)),
            "MaxUnpool 'u': output_shape 1x1x3x4 is smaller than the unpooled shape (input 2)");
}

}  // namespace
}  // namespace kiln::ops
