#include "compiler/ir/dtype.h"

#include <array>

namespace kiln::ir {
namespace {

constexpr std::array<DTypeInfo, 15> kTable = {{
    {DType::kUndefined, "undefined", 0, false, false},
    {DType::kFloat32, "float32", 4, true, true},
    {DType::kUInt8, "uint8", 1, false, false},
    {DType::kInt8, "int8", 1, false, true},
    {DType::kUInt16, "uint16", 2, false, false},
    {DType::kInt16, "int16", 2, false, true},
    {DType::kInt32, "int32", 4, false, true},
    {DType::kInt64, "int64", 8, false, true},
    {DType::kString, "string", 8, false, false},
    {DType::kBool, "bool", 1, false, false},
    {DType::kFloat16, "float16", 2, true, true},
    {DType::kFloat64, "float64", 8, true, true},
    {DType::kUInt32, "uint32", 4, false, false},
    {DType::kUInt64, "uint64", 8, false, false},
    {DType::kBFloat16, "bfloat16", 2, true, true},
}};

}  // namespace

const DTypeInfo& info(DType dtype) {
  for (const DTypeInfo& entry : kTable)
    if (entry.dtype == dtype) return entry;
  return kTable[0];
}

std::optional<DType> dtypeFromOnnx(int32_t code) {
  for (const DTypeInfo& entry : kTable)
    if (static_cast<int32_t>(entry.dtype) == code && entry.dtype != DType::kUndefined) return entry.dtype;
  return std::nullopt;
}

std::optional<DType> dtypeFromName(std::string_view name) {
  for (const DTypeInfo& entry : kTable)
    if (entry.name == name && entry.dtype != DType::kUndefined) return entry.dtype;
  return std::nullopt;
}

}  // namespace kiln::ir
