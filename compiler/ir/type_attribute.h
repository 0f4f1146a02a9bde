// A type as an attribute value: ONNX's TYPE_PROTO attributes (Optional's
// `type`, which says what an empty optional would hold) are imported as an
// ints attribute in this layout, decoded by the op that reads them:
//   {kind (ValueKind), dtype (DType), rank or -1 when unknown, then one
//    entry per dim: its size, or -1 where it is not a number}
// A symbolic dim's name is not kept: a type attribute only types a value
// that holds nothing.
#pragma once

#include <climits>
#include <cstdint>
#include <optional>
#include <vector>

#include "compiler/ir/dtype.h"
#include "compiler/ir/tensor.h"

namespace kiln::ir {

inline std::vector<int64_t> encodeTypeAttribute(const TensorType& type) {
  std::vector<int64_t> ints = {static_cast<int64_t>(type.kind), static_cast<int64_t>(type.dtype),
                               type.shape ? static_cast<int64_t>(type.shape->size()) : -1};
  if (type.shape)
    for (const Dim& d : *type.shape) ints.push_back(d.isKnown() ? d.value : -1);
  return ints;
}

// nullopt when `ints` is not in the layout above.
inline std::optional<TensorType> decodeTypeAttribute(const std::vector<int64_t>& ints) {
  if (ints.size() < 3 || ints[0] < 0 || ints[0] > static_cast<int64_t>(ValueKind::kOptionalSequence))
    return std::nullopt;
  std::optional<DType> dtype = ints[1] >= 0 && ints[1] <= INT32_MAX ? dtypeFromOnnx(static_cast<int32_t>(ints[1]))
                                                                    : std::nullopt;
  if (!dtype) return std::nullopt;
  TensorType type;
  type.kind = static_cast<ValueKind>(ints[0]);
  type.dtype = *dtype;
  if (ints[2] < 0) return ints.size() == 3 ? std::optional(type) : std::nullopt;
  if (ints.size() != 3 + static_cast<size_t>(ints[2])) return std::nullopt;
  type.shape = Shape{};
  for (size_t d = 3; d < ints.size(); ++d) type.shape->push_back(ints[d] >= 0 ? Dim::known(ints[d]) : Dim{});
  return type;
}

}  // namespace kiln::ir
