// Validation shared by the ops' shape inference. Every message names the
// node, the input's role and index, and what was expected:
//   Conv 'layer3/conv1': weight has rank 3, expected 4 (input 1)
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <vector>

#include "compiler/ir/tensor.h"
#include "compiler/ops/op_registry.h"

namespace kiln::ops {

enum class DTypeClass {
  kFloat,    // float16, bfloat16, float32, float64
  kNumeric,  // floats and integers; not bool or string
  kAnyKernel,  // anything the kernel IR computes with (not string)
  kAnyData,    // kAnyKernel and string: ops that only move elements (Identity, Reshape, Gather, Concat...)
};

// Between `min` and `max` inputs listed (omitted optional inputs count as
// listed), the first `min` of them present: those are the required ones.
Status expectInputCount(const NodeView& node, size_t min, size_t max);
// At most `max` outputs listed.
Status expectOutputCount(const NodeView& node, size_t max);

// The shape of input i; an error when the input is omitted or its rank unknown.
Expected<ir::Shape> inputShape(const NodeView& node, size_t i, std::string_view role);
Expected<ir::Shape> inputShapeOfRank(const NodeView& node, size_t i, std::string_view role, size_t rank);
Expected<ir::Shape> inputShapeOfMinRank(const NodeView& node, size_t i, std::string_view role, size_t min_rank);

Status expectDType(const NodeView& node, size_t i, std::string_view role, DTypeClass allowed);
// Input j has the same dtype as input i (ONNX type constraint "T" shared by both).
Status expectSameDType(const NodeView& node, size_t i, size_t j, std::string_view role_j);
// Input i is a bias: input 0's dtype, 1-D, `filters` elements where its size is known.
Status expectBias(const NodeView& node, size_t i, int64_t filters);

// axis in [-rank, rank) -> [0, rank).
Expected<int64_t> normalizeAxis(const NodeView& node, int64_t axis, int64_t rank, std::string_view what = "axis");
// Each axis normalized as above; an error when two name the same axis.
Expected<std::vector<int64_t>> normalizeAxes(const NodeView& node, std::vector<int64_t> axes, int64_t rank);

// The integer values of input i, which must be a compile-time constant because
// the output's shape depends on it.
Expected<std::vector<int64_t>> constantInts(const NodeView& node, size_t i, std::string_view role);
// An attribute that became an input at opset `since` is an error from then on.
Status rejectMovedAttributes(const NodeView& node, int since, std::initializer_list<const char*> names);

// Product of dims (known only when every dim is known).
ir::Dim productDim(const ir::Shape& shape, size_t begin, size_t end);
// A dim of the same size, when the sizes can be compared (both known or the same symbol).
bool sameDim(const ir::Dim& a, const ir::Dim& b);
// Both known and different: a certain mismatch.
bool conflictingDims(const ir::Dim& a, const ir::Dim& b);

}  // namespace kiln::ops
