#include "compiler/ir/tensor.h"

#include <algorithm>

#include <cstring>
#include <limits>

#include "compiler/support/half.h"

namespace kiln::ir {

// Shapes go into one-line error messages, and a hostile model's can have a
// million dims: past kMaxRank, a shape lists its first 8 and last 2 dims
// ("1x1x1x1x1x1x1x1x...(999990 more)x1x1").
std::string toString(const Shape& shape) {
  constexpr size_t kHeadDims = 8, kTailDims = 2;
  if (shape.empty()) return "scalar";
  bool elide = shape.size() > static_cast<size_t>(kMaxRank);
  std::string out;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (elide && i == kHeadDims) {
      out += "x...(" + std::to_string(shape.size() - kHeadDims - kTailDims) + " more)";
      i = shape.size() - kTailDims - 1;
      continue;
    }
    if (i) out += 'x';
    const Dim& d = shape[i];
    out += d.isKnown() ? std::to_string(d.value) : (d.symbol.empty() ? "?" : d.symbol);
  }
  return out;
}

Shape makeShape(std::span<const int64_t> dims) {
  Shape shape;
  shape.reserve(dims.size());
  for (int64_t d : dims) shape.push_back(Dim::known(d));
  return shape;
}

std::optional<std::vector<int64_t>> knownDims(const Shape& shape) {
  std::vector<int64_t> dims;
  dims.reserve(shape.size());
  for (const Dim& d : shape) {
    if (!d.isKnown()) return std::nullopt;
    dims.push_back(d.value);
  }
  return dims;
}

Expected<int64_t> elementCount(std::span<const int64_t> dims) {
  int64_t count = 1;
  for (int64_t d : dims) {
    if (d < 0) return invalidInput("negative dimension " + std::to_string(d));
    if (d != 0 && count > std::numeric_limits<int64_t>::max() / d)
      return invalidInput("tensor element count overflows 64 bits");
    count *= d;
  }
  return count;
}

std::optional<std::string> tensorSizeProblem(DType dtype, const Shape& shape) {
  bool empty = false;
  for (const Dim& d : shape) {
    if (!d.isKnown()) continue;
    if (d.value < 0) return std::string(", with a negative dimension");
    if (d.value == 0) empty = true;
  }
  // The product of the nonzero dims bounds the strides code computes, so it
  // is held to the limit even when a zero dim leaves the tensor empty.
  int64_t count = 1;
  for (const Dim& d : shape) {
    if (!d.isKnown() || d.value == 0) continue;
    if (__builtin_mul_overflow(count, d.value, &count))
      return std::string(empty ? ", whose nonzero dimensions' product overflows 64 bits"
                               : ", whose element count overflows 64 bits");
  }
  if (count > kMaxTensorBytes / std::max<int64_t>(1, byteSize(dtype)))
    return std::string(empty ? ", whose nonzero dimensions span more than 2^48 bytes" : ", of more than 2^48 bytes");
  return std::nullopt;
}

const char* kindName(ValueKind kind) {
  switch (kind) {
    case ValueKind::kTensor: return "tensor";
    case ValueKind::kSequence: return "sequence";
    case ValueKind::kOptionalTensor: return "optional tensor";
    case ValueKind::kOptionalSequence: return "optional sequence";
  }
  return "unknown";
}

std::string TensorType::toString() const {
  std::string out(name(dtype));
  out += '[';
  out += shape ? ir::toString(*shape) : "?";
  out += ']';
  switch (kind) {
    case ValueKind::kTensor: return out;
    case ValueKind::kSequence: return "seq(" + out + ")";
    case ValueKind::kOptionalTensor: return "optional(" + out + ")";
    case ValueKind::kOptionalSequence: return "optional(seq(" + out + "))";
  }
  return out;
}

Tensor Tensor::fromBytes(DType dtype, std::vector<int64_t> dims, std::vector<std::byte> bytes) {
  auto storage = std::make_shared<std::vector<std::byte>>(std::move(bytes));
  const std::byte* data = storage->data();
  size_t size = storage->size();
  return borrow(dtype, std::move(dims), std::move(storage), data, size);
}

Tensor Tensor::borrow(DType dtype, std::vector<int64_t> dims, std::shared_ptr<const void> owner,
                      const std::byte* data, size_t bytes) {
  Tensor t;
  t.dtype_ = dtype;
  t.dims_ = std::move(dims);
  t.owner_ = std::move(owner);
  t.data_ = data;
  t.bytes_ = bytes;
  return t;
}

Tensor Tensor::fromStrings(std::vector<int64_t> dims, std::vector<std::string> strings) {
  Tensor t;
  t.dtype_ = DType::kString;
  t.dims_ = std::move(dims);
  t.strings_ = std::move(strings);
  return t;
}

int64_t Tensor::elementCount() const {
  int64_t n = 1;
  for (int64_t d : dims_) n *= d;
  return n;
}

namespace {
template <typename T>
T load(const std::byte* data, int64_t i) {
  T v;
  std::memcpy(&v, data + i * sizeof(T), sizeof(T));
  return v;
}
}  // namespace

double Tensor::floatAt(int64_t i) const {
  switch (dtype_) {
    case DType::kFloat32: return load<float>(data_, i);
    case DType::kFloat64: return load<double>(data_, i);
    case DType::kFloat16: return halfToFloat(load<uint16_t>(data_, i));
    case DType::kBFloat16: return bfloat16ToFloat(load<uint16_t>(data_, i));
    case DType::kUInt64: return static_cast<double>(load<uint64_t>(data_, i));
    default: return static_cast<double>(intAt(i));
  }
}

int64_t Tensor::intAt(int64_t i) const {
  switch (dtype_) {
    case DType::kInt8: return load<int8_t>(data_, i);
    case DType::kUInt8: return load<uint8_t>(data_, i);
    case DType::kBool: return load<uint8_t>(data_, i) != 0;
    case DType::kInt16: return load<int16_t>(data_, i);
    case DType::kUInt16: return load<uint16_t>(data_, i);
    case DType::kInt32: return load<int32_t>(data_, i);
    case DType::kUInt32: return load<uint32_t>(data_, i);
    case DType::kInt64: return load<int64_t>(data_, i);
    case DType::kUInt64: return static_cast<int64_t>(load<uint64_t>(data_, i));
    default: return static_cast<int64_t>(floatAt(i));
  }
}

std::vector<int64_t> Tensor::toInts() const {
  std::vector<int64_t> out(static_cast<size_t>(elementCount()));
  for (size_t i = 0; i < out.size(); ++i) out[i] = intAt(static_cast<int64_t>(i));
  return out;
}

}  // namespace kiln::ir
