// Shapes, types and constant tensors of the Graph IR.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "compiler/ir/dtype.h"
#include "compiler/support/status.h"

namespace kiln::ir {

// One dimension: a known size, or a named symbol ("batch") whose size is only
// known at run time. A dimension with neither is unknown.
struct Dim {
  int64_t value = -1;
  std::string symbol;

  static Dim known(int64_t v) { return Dim{v, {}}; }
  static Dim named(std::string s) { return Dim{-1, std::move(s)}; }
  bool isKnown() const { return value >= 0; }
  bool operator==(const Dim&) const = default;
};

using Shape = std::vector<Dim>;

std::string toString(const Shape& shape);  // "1x3x224x224", "batchx128"
Shape makeShape(std::span<const int64_t> dims);
// The sizes, when every dimension is known.
std::optional<std::vector<int64_t>> knownDims(const Shape& shape);
// Product of dims; an error when it overflows int64 (hostile models).
Expected<int64_t> elementCount(std::span<const int64_t> dims);

// The largest tensor Kiln accepts: 2^48 bytes (256 TiB), beyond any machine's
// memory, so that sums of many tensor sizes (arena plans, offsets, alignment)
// stay far from overflowing int64.
constexpr int64_t kMaxTensorBytes = int64_t{1} << 48;
// The largest rank the runtime takes for a model's inputs and outputs
// (KILN_MAX_RANK in kiln_runtime.h); ranks read from data, such as the length
// of a run-time shape tensor, are held to it too.
constexpr int64_t kMaxRank = 16;
// Why a tensor of `dtype` and `shape` cannot exist — ", with a negative
// dimension", ", whose element count overflows 64 bits" or ", of more than
// 2^48 bytes" — judged on the known dims; nullopt when it can. An empty
// tensor's nonzero dims are held to the same limits (they set strides).
std::optional<std::string> tensorSizeProblem(DType dtype, const Shape& shape);

// What a value holds: a tensor, a sequence of tensors (SequenceConstruct,
// SplitToSequence...) or an optional (Optional, OptionalGetElement) of a
// tensor or of a sequence.
enum class ValueKind : uint8_t { kTensor, kSequence, kOptionalTensor, kOptionalSequence };
const char* kindName(ValueKind kind);  // "tensor", "sequence", "optional tensor", "optional sequence"

struct TensorType {
  DType dtype = DType::kUndefined;
  std::optional<Shape> shape;  // nullopt: rank unknown
  // For a container, dtype and shape describe the tensors inside it (a
  // sequence's shape: what all its elements share, unknown dims where they
  // differ).
  ValueKind kind = ValueKind::kTensor;

  bool hasKnownShape() const { return shape && knownDims(*shape).has_value(); }
  bool isTensor() const { return kind == ValueKind::kTensor; }
  std::string toString() const;  // "float32[1x3x224x224]", "seq(float32[?])", "optional(float32[4])"
  bool operator==(const TensorType&) const = default;
};

// A constant tensor. Its bytes are either owned or borrowed from something the
// tensor keeps alive (an mmapped file), so large weights are never copied.
// Numeric data is little-endian, dense, row-major.
class Tensor {
 public:
  Tensor() = default;
  static Tensor fromBytes(DType dtype, std::vector<int64_t> dims, std::vector<std::byte> bytes);
  static Tensor borrow(DType dtype, std::vector<int64_t> dims, std::shared_ptr<const void> owner,
                       const std::byte* data, size_t bytes);
  static Tensor fromStrings(std::vector<int64_t> dims, std::vector<std::string> strings);
  template <typename T>
  static Tensor fromValues(DType dtype, std::vector<int64_t> dims, std::span<const T> values) {
    std::vector<std::byte> bytes(values.size() * sizeof(T));
    if (!bytes.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
    return fromBytes(dtype, std::move(dims), std::move(bytes));
  }

  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& dims() const { return dims_; }
  int64_t elementCount() const;
  std::span<const std::byte> bytes() const { return {data_, bytes_}; }
  const std::vector<std::string>& strings() const { return strings_; }
  TensorType type() const { return TensorType{dtype_, makeShape(dims_)}; }

  // Element i converted, whatever the dtype (for attribute-like tensors such as
  // shapes, axes, clip bounds).
  int64_t intAt(int64_t i) const;
  double floatAt(int64_t i) const;
  std::vector<int64_t> toInts() const;

 private:
  DType dtype_ = DType::kUndefined;
  std::vector<int64_t> dims_;
  std::shared_ptr<const void> owner_;
  const std::byte* data_ = nullptr;
  size_t bytes_ = 0;
  std::vector<std::string> strings_;
};

}  // namespace kiln::ir
