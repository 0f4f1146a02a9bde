// NonMaxSuppression (compiler/ops/nms.cpp): greedy selection per batch and
// class with the limits read at run time, compiled to an artifact and
// checked against the greedy algorithm written out here (ONNX Runtime's
// rules: IoU > threshold suppresses, score > score_threshold survives, a
// zero-area box suppresses nothing, equal scores keep the lower index first)
// at several contents: random boxes, everything suppressed, nothing
// selectable, a limit of 0, both box encodings.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <numeric>

#include "tests/ops/data_dependent_model.h"

namespace kiln::ops {
namespace {

using ir::DType;
using testing::DataDependentModel;
using testing::elements;
using testing::tensor;

struct Limits {
  int64_t max_boxes;
  float iou;
  float score;
};

std::array<float, 4> cornersOf(const float* b, bool center) {
  if (center) return {b[1] - b[3] / 2, b[0] - b[2] / 2, b[1] + b[3] / 2, b[0] + b[2] / 2};
  return {std::min(b[0], b[2]), std::min(b[1], b[3]), std::max(b[0], b[2]), std::max(b[1], b[3])};
}

bool suppresses(const float* a, const float* b, bool center, float threshold) {
  auto p = cornersOf(a, center), c = cornersOf(b, center);
  float area_p = (p[2] - p[0]) * (p[3] - p[1]), area_c = (c[2] - c[0]) * (c[3] - c[1]);
  float h = std::max(std::min(p[2], c[2]) - std::max(p[0], c[0]), 0.0f);
  float w = std::max(std::min(p[3], c[3]) - std::max(p[1], c[1]), 0.0f);
  float inter = h * w, uni = area_p + area_c - inter;
  return area_p > 0 && area_c > 0 && uni > 0 && inter / uni > threshold;
}

std::vector<int64_t> expectedNms(const std::vector<float>& boxes, const std::vector<float>& scores, int64_t batches,
                                 int64_t classes, int64_t n, Limits limits, bool center) {
  std::vector<int64_t> rows;
  for (int64_t b = 0; b < batches; ++b)
    for (int64_t c = 0; c < classes; ++c) {
      const float* s = &scores[static_cast<size_t>((b * classes + c) * n)];
      std::vector<int64_t> order(static_cast<size_t>(n));
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return s[x] > s[y]; });
      std::vector<int64_t> kept;
      for (int64_t i : order) {
        if (static_cast<int64_t>(kept.size()) >= limits.max_boxes || !(s[i] > limits.score)) continue;
        bool hit = false;
        for (int64_t k : kept)
          hit = hit || suppresses(&boxes[static_cast<size_t>((b * n + k) * 4)], &boxes[static_cast<size_t>((b * n + i) * 4)],
                                  center, limits.iou);
        if (!hit) kept.push_back(i);
      }
      for (int64_t k : kept) rows.insert(rows.end(), {b, c, k});
    }
  return rows;
}

// Deterministic pseudo-random values in [lo, hi).
std::vector<float> randomValues(size_t count, uint32_t seed, float lo, float hi) {
  std::vector<float> v;
  for (size_t i = 0; i < count; ++i) {
    seed = seed * 1664525u + 1013904223u;
    v.push_back(lo + (hi - lo) * static_cast<float>(seed >> 8) / static_cast<float>(1u << 24));
  }
  return v;
}

class NmsModel {
 public:
  NmsModel(int64_t batches, int64_t classes, int64_t n, bool center) : b_(batches), c_(classes), n_(n), center_(center) {
    m_.input("boxes", DType::kFloat32, {batches, n, 4})
        .input("scores", DType::kFloat32, {batches, classes, n})
        .input("max", DType::kInt64, {1})
        .input("iou", DType::kFloat32, {1})
        .input("score", DType::kFloat32, {1})
        .outputs({"selected"})
        .attr("center_point_box", center ? 1 : 0);
    EXPECT_TRUE(m_.compile().isOk());
  }

  Expected<std::vector<ir::Tensor>> run(const std::vector<float>& boxes, const std::vector<float>& scores, Limits l) {
    return m_.run({tensor<float>(DType::kFloat32, {b_, n_, 4}, boxes), tensor<float>(DType::kFloat32, {b_, c_, n_}, scores),
                   tensor<int64_t>(DType::kInt64, {1}, {l.max_boxes}), tensor<float>(DType::kFloat32, {1}, {l.iou}),
                   tensor<float>(DType::kFloat32, {1}, {l.score})});
  }

  void check(const std::vector<float>& boxes, const std::vector<float>& scores, Limits l) {
    auto out = run(boxes, scores, l);
    ASSERT_TRUE(out.isOk()) << out.status().message();
    std::vector<int64_t> want = expectedNms(boxes, scores, b_, c_, n_, l, center_);
    EXPECT_EQ((*out)[0].dims(), (std::vector<int64_t>{static_cast<int64_t>(want.size() / 3), 3}));
    EXPECT_EQ(elements<int64_t>((*out)[0]), want) << "max " << l.max_boxes << " iou " << l.iou << " score " << l.score;
  }

 private:
  DataDependentModel m_{"NonMaxSuppression", 11};
  int64_t b_, c_, n_;
  bool center_;
};

TEST(NmsTest, RandomBoxesAtSeveralLimits) {
  for (bool center : {false, true}) {
    NmsModel m(2, 3, 12, center);
    // Boxes: corners (or centers) in [0, 10), extents in [0.5, 4); some flipped corners.
    std::vector<float> boxes = randomValues(2 * 12 * 4, 7, 0.0f, 10.0f);
    std::vector<float> sizes = randomValues(2 * 12 * 2, 11, 0.5f, 4.0f);
    for (size_t i = 0; i < 24; ++i) {
      boxes[i * 4 + 2] = center ? sizes[i * 2] : boxes[i * 4] + (i % 4 == 3 ? -sizes[i * 2] : sizes[i * 2]);
      boxes[i * 4 + 3] = center ? sizes[i * 2 + 1] : boxes[i * 4 + 1] + sizes[i * 2 + 1];
    }
    std::vector<float> scores = randomValues(2 * 3 * 12, 5, 0.0f, 1.0f);
    scores[4] = scores[5];  // a tie
    for (Limits l : {Limits{100, 0.3f, 0.0f}, Limits{3, 0.5f, 0.2f}, Limits{0, 0.5f, 0.0f}, Limits{100, 0.0f, -1.0f},
                     Limits{100, 1.0f, 0.5f}, Limits{5, 0.1f, 2.0f}})
      m.check(boxes, scores, l);
  }
}

TEST(NmsTest, IdenticalBoxesLeaveOneAndZeroAreaBoxesSuppressNothing) {
  NmsModel m(1, 1, 6, false);
  std::vector<float> same;
  for (int i = 0; i < 6; ++i) same.insert(same.end(), {0, 0, 1, 1});
  m.check(same, std::vector<float>(6, 0.9f), {10, 0.5f, 0.0f});
  std::vector<float> points;
  for (int i = 0; i < 6; ++i) points.insert(points.end(), {1, 1, 1, 1});
  m.check(points, {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f}, {10, 0.0f, 0.0f});
}

TEST(NmsTest, IouThresholdOutsideTheUnitIntervalIsARunTimeError) {
  NmsModel m(1, 1, 2, false);
  auto out = m.run({0, 0, 1, 1, 0, 0, 2, 2}, {0.5f, 0.6f}, {1, 1.5f, 0.0f});
  ASSERT_FALSE(out.isOk());
  EXPECT_NE(out.status().message().find("NonMaxSuppression 'n': iou_threshold (input 3) is outside [0, 1]"),
            std::string::npos)
      << out.status().message();
}

TEST(NmsTest, OptionalInputsDefault) {
  // No max_output_boxes_per_class: ONNX's default 0 selects nothing.
  DataDependentModel m("NonMaxSuppression", 10);
  m.input("boxes", DType::kFloat32, {1, 2, 4}).input("scores", DType::kFloat32, {1, 1, 2}).outputs({"selected"});
  ASSERT_TRUE(m.compile().isOk());
  auto out = m.run({tensor<float>(DType::kFloat32, {1, 2, 4}, {0, 0, 1, 1, 2, 2, 3, 3}),
                    tensor<float>(DType::kFloat32, {1, 1, 2}, {0.5f, 0.6f})});
  ASSERT_TRUE(out.isOk()) << out.status().message();
  EXPECT_EQ((*out)[0].dims(), (std::vector<int64_t>{0, 3}));
}

}  // namespace
}  // namespace kiln::ops
