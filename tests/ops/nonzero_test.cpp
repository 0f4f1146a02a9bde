// NonZero and Compress (compiler/ops/nonzero.cpp): output sizes decided by
// the data. Each model is compiled once to an artifact and to a reference
// program and run at several input contents — none selected, all selected,
// a few — against numpy's nonzero/compress written out naively here.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "tests/ops/data_dependent_model.h"

namespace kiln::ops {
namespace {

using ir::DType;
using testing::DataDependentModel;
using testing::elements;
using testing::tensor;

// numpy.nonzero(x) stacked: [rank, count], row-major order.
std::vector<int64_t> expectedNonZero(const std::vector<float>& x, const std::vector<int64_t>& dims, int64_t* count) {
  std::vector<std::vector<int64_t>> coords(dims.size());
  *count = 0;
  for (size_t flat = 0; flat < x.size(); ++flat) {
    if (x[flat] == 0.0f) continue;
    ++*count;
    size_t rest = flat;
    for (size_t d = dims.size(); d-- > 0;) {
      coords[d].push_back(static_cast<int64_t>(rest % static_cast<size_t>(dims[d])));
      rest /= static_cast<size_t>(dims[d]);
    }
  }
  std::vector<int64_t> out;
  for (const auto& c : coords) out.insert(out.end(), c.begin(), c.end());
  return out;
}

TEST(NonZeroTest, MatchesNumpyAtSeveralContents) {
  DataDependentModel m("NonZero", 13);
  m.input("x", DType::kFloat32, {2, 3, 4}).outputs({"y"});
  ASSERT_TRUE(m.compile().isOk());
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<std::vector<float>> contents = {std::vector<float>(24, 0.0f), std::vector<float>(24, -1.5f), {}, {}};
  for (int i = 0; i < 24; ++i) contents[2].push_back(i % 5 == 1 ? 2.0f : (i == 7 ? -0.0f : 0.0f));
  for (int i = 0; i < 24; ++i) contents[3].push_back(i == 23 ? nan : (i % 3 == 0 ? 0.0f : std::sin(i * 1.0f)));
  for (const std::vector<float>& x : contents) {
    auto out = m.run({tensor<float>(DType::kFloat32, {2, 3, 4}, x)});
    ASSERT_TRUE(out.isOk()) << out.status().message();
    int64_t count = 0;
    std::vector<int64_t> want = expectedNonZero(x, {2, 3, 4}, &count);
    EXPECT_EQ((*out)[0].dims(), (std::vector<int64_t>{3, count}));
    EXPECT_EQ(elements<int64_t>((*out)[0]), want);
  }
}

TEST(NonZeroTest, BoolInput) {
  DataDependentModel b("NonZero", 13);
  b.input("x", DType::kBool, {5}).outputs({"y"});
  ASSERT_TRUE(b.compile().isOk());
  auto out = b.run({tensor<uint8_t>(DType::kBool, {5}, {0, 1, 1, 0, 1})});
  ASSERT_TRUE(out.isOk()) << out.status().message();
  EXPECT_EQ(elements<int64_t>((*out)[0]), (std::vector<int64_t>{1, 2, 4}));
}

TEST(NonZeroTest, IntegerInput) {
  DataDependentModel i("NonZero", 9);
  i.input("x", DType::kInt32, {2, 2}).outputs({"y"});
  ASSERT_TRUE(i.compile().isOk());
  auto out = i.run({tensor<int32_t>(DType::kInt32, {2, 2}, {0, -3, 7, 0})});
  ASSERT_TRUE(out.isOk()) << out.status().message();
  EXPECT_EQ((*out)[0].dims(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(elements<int64_t>((*out)[0]), (std::vector<int64_t>{0, 1, 1, 0}));
}

// numpy.compress(condition, x, axis) for x of dims [rows, cols].
std::vector<float> expectedCompress(const std::vector<float>& x, int64_t rows, int64_t cols,
                                    const std::vector<uint8_t>& condition, int axis) {
  std::vector<float> out;
  if (axis < 0) {
    for (size_t i = 0; i < condition.size(); ++i)
      if (condition[i]) out.push_back(x[i]);
    return out;
  }
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      size_t along = static_cast<size_t>(axis == 0 ? r : c);
      if (along < condition.size() && condition[along]) out.push_back(x[static_cast<size_t>(r * cols + c)]);
    }
  return out;
}

TEST(CompressTest, MatchesNumpyAlongEachAxisAndFlattened) {
  std::vector<float> x;
  for (int i = 0; i < 12; ++i) x.push_back(static_cast<float>(i) * 0.5f - 2.0f);
  struct Case {
    int axis;  // -1: no axis (flattened)
    int64_t length;
  };
  for (Case c : {Case{0, 3}, Case{0, 2}, Case{1, 4}, Case{-1, 12}, Case{-1, 7}}) {
    DataDependentModel m("Compress", 11);
    m.input("x", DType::kFloat32, {3, 4}).input("condition", DType::kBool, {c.length}).outputs({"y"});
    if (c.axis >= 0) m.attr("axis", c.axis == 1 ? -1 : 0);
    ASSERT_TRUE(m.compile().isOk());
    std::vector<std::vector<uint8_t>> conditions = {std::vector<uint8_t>(static_cast<size_t>(c.length), 0),
                                                    std::vector<uint8_t>(static_cast<size_t>(c.length), 1), {}};
    for (int64_t i = 0; i < c.length; ++i) conditions[2].push_back(i % 3 != 1);
    for (const auto& condition : conditions) {
      auto out = m.run({tensor<float>(DType::kFloat32, {3, 4}, x), tensor<uint8_t>(DType::kBool, {c.length}, condition)});
      ASSERT_TRUE(out.isOk()) << out.status().message();
      std::vector<float> want = expectedCompress(x, 3, 4, condition, c.axis);
      EXPECT_EQ(elements<float>((*out)[0]), want) << "axis " << c.axis << " length " << c.length;
      int64_t kept = 0;
      for (uint8_t v : condition) kept += v;
      std::vector<int64_t> dims = c.axis < 0 ? std::vector<int64_t>{kept}
                                             : (c.axis == 0 ? std::vector<int64_t>{kept, 4} : std::vector<int64_t>{3, kept});
      EXPECT_EQ((*out)[0].dims(), dims);
    }
  }
}

TEST(CompressTest, ConditionLongerThanTheAxisIsAnError) {
  DataDependentModel m("Compress", 11);
  m.input("x", DType::kFloat32, {3, 4}).input("condition", DType::kBool, {4}).outputs({"y"}).attr("axis", 0);
  Status status = m.compile();
  EXPECT_NE(status.message().find("Compress 'n': condition has 4 entries for 3 slices along axis 0 (input 1)"),
            std::string::npos)
      << status.message();
}

}  // namespace
}  // namespace kiln::ops
