// Unique (compiler/ops/unique.cpp): all four outputs, sorted and in order of
// first occurrence, flattened and along an axis, compiled to an artifact and
// checked against numpy.unique (return_index, return_inverse, return_counts)
// written out here, at several contents: all distinct, all equal, repeats,
// NaN, and an empty input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "tests/ops/data_dependent_model.h"

namespace kiln::ops {
namespace {

using ir::DType;
using testing::DataDependentModel;
using testing::elements;
using testing::tensor;

struct UniqueResult {
  std::vector<float> y;
  std::vector<int64_t> indices, inverse, counts;
  int64_t distinct = 0;
};

// Items are the m slices x[outer, i, inner]; NaN equals NaN and sorts last.
UniqueResult expectedUnique(const std::vector<float>& x, int64_t outer, int64_t m, int64_t inner, bool sorted) {
  auto item = [&](int64_t i) {
    std::vector<float> v;
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t k = 0; k < inner; ++k) v.push_back(x[static_cast<size_t>((o * m + i) * inner + k)]);
    return v;
  };
  auto same = [](const std::vector<float>& a, const std::vector<float>& b) {
    for (size_t t = 0; t < a.size(); ++t)
      if (!(a[t] == b[t] || (std::isnan(a[t]) && std::isnan(b[t])))) return false;
    return true;
  };
  auto less = [](const std::vector<float>& a, const std::vector<float>& b) {
    for (size_t t = 0; t < a.size(); ++t) {
      if (a[t] == b[t] || (std::isnan(a[t]) && std::isnan(b[t]))) continue;
      return std::isnan(b[t]) || a[t] < b[t];
    }
    return false;
  };
  std::vector<int64_t> firsts;  // first occurrences, in input order
  for (int64_t i = 0; i < m; ++i) {
    bool seen = false;
    for (int64_t f : firsts) seen = seen || same(item(f), item(i));
    if (!seen) firsts.push_back(i);
  }
  if (sorted) std::stable_sort(firsts.begin(), firsts.end(), [&](int64_t a, int64_t b) { return less(item(a), item(b)); });
  UniqueResult r;
  r.distinct = static_cast<int64_t>(firsts.size());
  r.indices = firsts;
  r.counts.assign(firsts.size(), 0);
  for (int64_t i = 0; i < m; ++i)
    for (size_t u = 0; u < firsts.size(); ++u)
      if (same(item(firsts[u]), item(i))) {
        r.inverse.push_back(static_cast<int64_t>(u));
        ++r.counts[u];
      }
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t f : firsts)
      for (int64_t k = 0; k < inner; ++k) r.y.push_back(x[static_cast<size_t>((o * m + f) * inner + k)]);
  return r;
}

void expectSameFloats(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_TRUE(got[i] == want[i] || (std::isnan(got[i]) && std::isnan(want[i]))) << i << ": " << got[i] << " vs " << want[i];
}

void checkUnique(DataDependentModel& m, const std::vector<float>& x, std::vector<int64_t> dims, int64_t outer,
                 int64_t items, int64_t inner, int axis, bool sorted) {
  auto out = m.run({tensor<float>(DType::kFloat32, dims, x)});
  ASSERT_TRUE(out.isOk()) << out.status().message();
  ASSERT_EQ(out->size(), 4u);
  UniqueResult want = expectedUnique(x, outer, items, inner, sorted);
  expectSameFloats(elements<float>((*out)[0]), want.y);
  std::vector<int64_t> y_dims = axis < 0 ? std::vector<int64_t>{want.distinct} : dims;
  if (axis >= 0) y_dims[static_cast<size_t>(axis)] = want.distinct;
  EXPECT_EQ((*out)[0].dims(), y_dims);
  EXPECT_EQ(elements<int64_t>((*out)[1]), want.indices);
  EXPECT_EQ(elements<int64_t>((*out)[2]), want.inverse);
  EXPECT_EQ(elements<int64_t>((*out)[3]), want.counts);
  EXPECT_EQ((*out)[1].dims(), (std::vector<int64_t>{want.distinct}));
  EXPECT_EQ((*out)[3].dims(), (std::vector<int64_t>{want.distinct}));
}

TEST(UniqueTest, FlattenedSortedAndUnsorted) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<std::vector<float>> contents = {
      {3, 1, 2, 5, 4, 0, -1, 7},            // all distinct
      {2, 2, 2, 2, 2, 2, 2, 2},             // all equal
      {2, 1, 1, 3, 4, 3, 1, -0.0f},         // repeats
      {nan, 1, nan, 0, 1, -2, 0.0f, -0.0f}  // NaN, signed zeros
  };
  for (bool sorted : {true, false}) {
    DataDependentModel m("Unique", 11);
    m.input("x", DType::kFloat32, {2, 4}).outputs({"y", "indices", "inverse", "counts"}).attr("sorted", sorted);
    ASSERT_TRUE(m.compile().isOk());
    for (const auto& x : contents) checkUnique(m, x, {2, 4}, 1, 8, 1, -1, sorted);
  }
}

TEST(UniqueTest, SlicesAlongAnAxis) {
  // x: [2, 4, 3], axis 1: four slices of 2x3 values.
  std::vector<float> repeats = {1, 0, 0, 1, 0, 0, 2, 3, 4, 1, 0, 0,  //
                                5, 6, 7, 5, 6, 7, 8, 9, 9, 5, 6, 6};
  std::vector<float> distinct(24);
  std::iota(distinct.begin(), distinct.end(), 0.0f);
  std::reverse(distinct.begin(), distinct.end());
  std::vector<float> same(24, 1.0f);
  for (bool sorted : {true, false}) {
    DataDependentModel m("Unique", 11);
    m.input("x", DType::kFloat32, {2, 4, 3}).outputs({"y", "indices", "inverse", "counts"}).attr("axis", 1);
    m.attr("sorted", sorted);
    ASSERT_TRUE(m.compile().isOk());
    for (const auto& x : {repeats, distinct, same}) checkUnique(m, x, {2, 4, 3}, 2, 4, 3, 1, sorted);
  }
  DataDependentModel last("Unique", 11);
  last.input("x", DType::kFloat32, {4, 6}).outputs({"y", "indices", "inverse", "counts"}).attr("axis", -1);
  ASSERT_TRUE(last.compile().isOk());
  checkUnique(last, repeats, {4, 6}, 4, 6, 1, 1, true);
}

TEST(UniqueTest, EmptyInput) {
  DataDependentModel empty("Unique", 11);
  empty.input("x", DType::kFloat32, {0}).outputs({"y", "indices", "", "counts"});
  ASSERT_TRUE(empty.compile().isOk());
  auto out = empty.run({tensor<float>(DType::kFloat32, {0}, {})});
  ASSERT_TRUE(out.isOk()) << out.status().message();
  ASSERT_EQ(out->size(), 3u);
  for (const ir::Tensor& t : *out) EXPECT_EQ(t.dims(), (std::vector<int64_t>{0}));
}

// All four outputs of an empty X: three of run-time size 0 and the inverse
// map of static size 0, each returned with shape [0].
TEST(UniqueTest, EmptyInputAllFourOutputs) {
  for (bool sorted : {true, false}) {
    DataDependentModel empty("Unique", 11);
    empty.input("x", DType::kFloat32, {0}).outputs({"y", "indices", "inverse", "counts"}).attr("sorted", sorted);
    ASSERT_TRUE(empty.compile().isOk());
    auto out = empty.run({tensor<float>(DType::kFloat32, {0}, {})});
    ASSERT_TRUE(out.isOk()) << out.status().message();
    ASSERT_EQ(out->size(), 4u);
    for (const ir::Tensor& t : *out) EXPECT_EQ(t.dims(), (std::vector<int64_t>{0}));
  }
}

TEST(UniqueTest, IntegersAndOmittedOutputs) {
  DataDependentModel ints("Unique", 11);
  ints.input("x", DType::kInt64, {6}).outputs({"y", "", "inverse"});
  ASSERT_TRUE(ints.compile().isOk());
  auto out = ints.run({tensor<int64_t>(DType::kInt64, {6}, {9, -4, 9, int64_t{1} << 60, -4, 0})});
  ASSERT_TRUE(out.isOk()) << out.status().message();
  ASSERT_EQ(out->size(), 2u);
  EXPECT_EQ(elements<int64_t>((*out)[0]), (std::vector<int64_t>{-4, 0, 9, int64_t{1} << 60}));
  EXPECT_EQ(elements<int64_t>((*out)[1]), (std::vector<int64_t>{2, 0, 2, 3, 0, 1}));
}

}  // namespace
}  // namespace kiln::ops
