// Element types. The numeric values are ONNX's TensorProto.DataType codes so
// that import/export is a cast, and the runtime ABI (kiln_dtype) uses the same
// numbers.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace kiln::ir {

enum class DType : int32_t {
  kUndefined = 0,
  kFloat32 = 1,
  kUInt8 = 2,
  kInt8 = 3,
  kUInt16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kString = 8,
  kBool = 9,
  kFloat16 = 10,
  kFloat64 = 11,
  kUInt32 = 12,
  kUInt64 = 13,
  kBFloat16 = 16,
};

struct DTypeInfo {
  DType dtype;
  std::string_view name;  // numpy-style: "float32", "int64", "bool"
  int32_t bytes;          // string: 8, the pointer a kernel buffer holds per element
  bool is_float;
  bool is_signed;
};

const DTypeInfo& info(DType dtype);
inline std::string_view name(DType dtype) { return info(dtype).name; }
inline int32_t byteSize(DType dtype) { return info(dtype).bytes; }
inline bool isFloat(DType dtype) { return info(dtype).is_float; }
inline bool isInteger(DType dtype) { return !info(dtype).is_float && dtype != DType::kBool && dtype != DType::kString && dtype != DType::kUndefined; }
// Integers without a sign, and bool (0 or 1): zero-extended when widened,
// compared and divided as unsigned.
inline bool isUnsigned(DType dtype) { return (isInteger(dtype) || dtype == DType::kBool) && !info(dtype).is_signed; }

// Maps an ONNX TensorProto data type code; nullopt for codes Kiln does not know.
std::optional<DType> dtypeFromOnnx(int32_t code);
std::optional<DType> dtypeFromName(std::string_view name);

}  // namespace kiln::ir
