// TensorProto / SparseTensorProto / TypeProto -> Graph IR, with every data
// encoding ONNX allows: raw_data, the typed repeated fields, external data
// files and sparse tensors.
#include <algorithm>
#include <bit>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <limits>
#include <vector>

#include "compiler/onnx/import_detail.h"
#include "compiler/onnx/importer.h"

namespace kiln::frontend {
namespace detail {
namespace {

namespace fs = std::filesystem;

// Densifying a sparse tensor allocates the whole dense tensor; a corrupted
// dims field must give an error, not an out-of-memory kill. Besides the
// absolute cap, the dense tensor may be at most kMaxDensifyRatio times the
// bytes the sparse one stores (beyond a small floor), so a few bytes of file
// cannot demand gigabytes: real sparse weights are rarely below 0.1% density.
constexpr int64_t kMaxDensifiedBytes = int64_t{4} << 30;
constexpr int64_t kMaxDensifyRatio = 1024;
constexpr int64_t kDensifyFloorBytes = int64_t{64} << 20;

std::string onnxTypeName(int32_t code) {
  if (onnx::TensorProto_DataType_IsValid(code))
    return onnx::TensorProto_DataType_Name(static_cast<onnx::TensorProto_DataType>(code));
  return "unknown";
}

Expected<ir::DType> convertDType(int32_t code, const std::string& what) {
  if (code == onnx::TensorProto_DataType_UNDEFINED) return invalidInput(what + " has no data type");
  std::optional<ir::DType> dtype = ir::dtypeFromOnnx(code);
  if (!dtype)
    return unsupported(what + " has data type " + std::to_string(code) + " (" + onnxTypeName(code) +
                       "), which Kiln does not support");
  return *dtype;
}

// Data is stored little-endian in ONNX and in the IR.
void toLittleEndian(std::span<std::byte> bytes, size_t element_bytes) {
  if constexpr (std::endian::native == std::endian::little) return;
  for (size_t i = 0; i + element_bytes <= bytes.size(); i += element_bytes)
    std::reverse(bytes.begin() + i, bytes.begin() + i + element_bytes);
}

// Borrows `data` when a mapped file keeps it alive and the host can read it
// in place; copies it otherwise (and gives the mapped pages back). A
// borrowed tensor's pages are given back when its last copy is gone, so a
// weight a pass replaced (folded, transposed) stops counting towards the
// compile's memory.
ir::Tensor adoptBytes(ir::DType dtype, std::vector<int64_t> dims, std::span<const std::byte> data,
                      std::shared_ptr<const MappedFile> owner) {
  size_t element_bytes = static_cast<size_t>(ir::byteSize(dtype));
  bool aligned = reinterpret_cast<uintptr_t>(data.data()) % element_bytes == 0;
  if (owner && aligned && std::endian::native == std::endian::little) {
    const MappedFile* file = owner.get();
    std::shared_ptr<const void> lease(file, [owner, data](const void*) { owner->release(data); });
    return ir::Tensor::borrow(dtype, std::move(dims), std::move(lease), data.data(), data.size());
  }
  std::vector<std::byte> copy(data.begin(), data.end());
  if (owner) owner->release(data);
  toLittleEndian(copy, element_bytes);
  return ir::Tensor::fromBytes(dtype, std::move(dims), std::move(copy));
}

Status checkByteLength(size_t actual, int64_t count, ir::DType dtype, const std::string& what,
                       const std::string& shape) {
  int64_t size = ir::byteSize(dtype);
  if (count > std::numeric_limits<int64_t>::max() / size)
    return invalidInput(what + " is too large: " + std::string(ir::name(dtype)) + "[" + shape + "]");
  if (static_cast<uint64_t>(actual) != static_cast<uint64_t>(count * size))
    return invalidInput(what + " has " + std::to_string(actual) + " bytes of data, but its type " +
                        std::string(ir::name(dtype)) + "[" + shape + "] needs " + std::to_string(count * size));
  return Status::ok();
}

// Copies one typed repeated field, narrowing each element to the dtype's width.
template <typename Stored, typename Field>
Expected<std::vector<std::byte>> packTyped(const Field& field, int64_t count, const std::string& what,
                                           const char* field_name) {
  if (static_cast<uint64_t>(field.size()) != static_cast<uint64_t>(count))
    return invalidInput(what + " has " + std::to_string(field.size()) + " values in " + field_name +
                        ", but its shape holds " + std::to_string(count));
  std::vector<std::byte> bytes(static_cast<size_t>(count) * sizeof(Stored));
  for (int64_t i = 0; i < count; ++i) {
    auto value = static_cast<Stored>(field.Get(static_cast<int>(i)));
    std::memcpy(bytes.data() + i * sizeof(Stored), &value, sizeof(Stored));
  }
  toLittleEndian(bytes, sizeof(Stored));
  return bytes;
}

Expected<std::vector<std::byte>> typedData(const onnx::TensorProto& proto, ir::DType dtype, int64_t count,
                                           const std::string& what) {
  using ir::DType;
  switch (dtype) {
    case DType::kFloat32: return packTyped<float>(proto.float_data(), count, what, "float_data");
    case DType::kFloat64: return packTyped<double>(proto.double_data(), count, what, "double_data");
    case DType::kInt64: return packTyped<int64_t>(proto.int64_data(), count, what, "int64_data");
    case DType::kUInt32: return packTyped<uint32_t>(proto.uint64_data(), count, what, "uint64_data");
    case DType::kUInt64: return packTyped<uint64_t>(proto.uint64_data(), count, what, "uint64_data");
    case DType::kInt32: return packTyped<int32_t>(proto.int32_data(), count, what, "int32_data");
    // ONNX stores the narrower types in int32_data; float16/bfloat16 as bit patterns.
    case DType::kInt16: return packTyped<int16_t>(proto.int32_data(), count, what, "int32_data");
    case DType::kInt8: return packTyped<int8_t>(proto.int32_data(), count, what, "int32_data");
    case DType::kUInt16:
    case DType::kFloat16:
    case DType::kBFloat16: return packTyped<uint16_t>(proto.int32_data(), count, what, "int32_data");
    case DType::kUInt8:
    case DType::kBool: return packTyped<uint8_t>(proto.int32_data(), count, what, "int32_data");
    default: return internalError(what + ": no typed field for " + std::string(ir::name(dtype)));
  }
}

Expected<int64_t> parseExternalNumber(const std::string& key, const std::string& text, const std::string& what) {
  int64_t value = -1;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0)
    return invalidInput(what + ": external data '" + key + "' is '" + text + "', not a byte count");
  return value;
}

// Resolves `location` inside the model's folder. Refuses what could read
// files the model's author does not own: absolute paths, `..` escapes and
// symlinks pointing out of the folder.
Expected<std::string> resolveExternalPath(const std::string& base_dir, const std::string& location,
                                          const std::string& what) {
  if (base_dir.empty())
    return invalidInput(what + " keeps its data in external file '" + location +
                        "', but the model was not loaded from a folder; load it with importOnnxFile");
  fs::path relative(location);
  if (location.empty() || relative.is_absolute())
    return invalidInput(what + ": external data location '" + location +
                        "' must be a path relative to the model's folder");
  fs::path normal = relative.lexically_normal();
  if (!normal.empty() && *normal.begin() == "..")
    return invalidInput(what + ": external data location '" + location + "' leaves the model's folder");
  std::error_code ec;
  fs::path base = fs::canonical(base_dir, ec);
  if (ec) return ioError(what + ": cannot resolve model folder '" + base_dir + "': " + ec.message());
  fs::path target = fs::canonical(base / relative, ec);
  if (ec)
    return ioError(what + ": cannot open external data file '" + (base / relative).string() + "': " + ec.message());
  fs::path inside = target.lexically_relative(base);
  if (inside.empty() || *inside.begin() == "..")
    return invalidInput(what + ": external data location '" + location + "' resolves to '" + target.string() +
                        "', outside the model's folder (through a symlink)");
  return target.string();
}

Expected<ir::Tensor> externalTensor(const onnx::TensorProto& proto, ir::DType dtype, std::vector<int64_t> dims,
                                    int64_t count, TensorSource& source, const std::string& what) {
  if (dtype == ir::DType::kString) return unsupported(what + ": string tensors in external data are not supported");
  std::string location;
  std::optional<int64_t> offset, length;
  for (const auto& entry : proto.external_data()) {
    if (entry.key() == "location") {
      location = entry.value();
    } else if (entry.key() == "offset") {
      KILN_ASSIGN_OR_RETURN(offset, parseExternalNumber("offset", entry.value(), what));
    } else if (entry.key() == "length") {
      KILN_ASSIGN_OR_RETURN(length, parseExternalNumber("length", entry.value(), what));
    }  // "checksum" and unknown keys do not change where the data is
  }
  if (location.empty()) return invalidInput(what + " is marked EXTERNAL but has no 'location'");
  KILN_ASSIGN_OR_RETURN(std::string path, resolveExternalPath(source.base_dir, location, what));
  auto& file = source.external_files[path];
  if (!file) {
    auto mapped = MappedFile::open(path);
    if (!mapped) return mapped.status().withContext(what);
    file = mapped.take();
  }
  auto bytes = file->bytes();
  uint64_t begin = static_cast<uint64_t>(offset.value_or(0));
  if (begin > bytes.size())
    return invalidInput(what + ": external data offset " + std::to_string(begin) + " is past the end of '" + location +
                        "' (" + std::to_string(bytes.size()) + " bytes)");
  uint64_t size = length ? static_cast<uint64_t>(*length) : bytes.size() - begin;
  if (size > bytes.size() - begin)
    return invalidInput(what + ": external data at offset " + std::to_string(begin) + " with length " +
                        std::to_string(size) + " runs past the end of '" + location + "' (" +
                        std::to_string(bytes.size()) + " bytes)");
  KILN_RETURN_IF_ERROR(checkByteLength(size, count, dtype, what, ir::toString(ir::makeShape(dims))));
  return adoptBytes(dtype, std::move(dims), bytes.subspan(begin, size), file);
}

}  // namespace

Expected<ir::Tensor> convertTensor(const onnx::TensorProto& proto, TensorSource& source, const std::string& what) {
  KILN_ASSIGN_OR_RETURN(ir::DType dtype, convertDType(proto.data_type(), what));
  std::vector<int64_t> dims(proto.dims().begin(), proto.dims().end());
  auto count_or = ir::elementCount(dims);
  if (!count_or) return count_or.status().withContext(what);
  int64_t count = *count_or;
  std::string shape = ir::toString(ir::makeShape(dims));
  if (proto.has_segment()) return unsupported(what + " is a segment of a larger tensor, which Kiln does not support");

  if (proto.data_location() == onnx::TensorProto_DataLocation_EXTERNAL)
    return externalTensor(proto, dtype, std::move(dims), count, source, what);

  if (dtype == ir::DType::kString) {
    if (static_cast<uint64_t>(proto.string_data_size()) != static_cast<uint64_t>(count))
      return invalidInput(what + " has " + std::to_string(proto.string_data_size()) + " strings, but its shape " +
                          shape + " holds " + std::to_string(count));
    return ir::Tensor::fromStrings(std::move(dims),
                                   std::vector<std::string>(proto.string_data().begin(), proto.string_data().end()));
  }

  if (source.raw_spans) {
    auto it = source.raw_spans->find(&proto);
    if (it != source.raw_spans->end()) {
      KILN_RETURN_IF_ERROR(checkByteLength(it->second.size(), count, dtype, what, shape));
      return adoptBytes(dtype, std::move(dims), it->second, source.model_owner);
    }
  }
  if (proto.has_raw_data()) {
    const std::string& raw = proto.raw_data();
    KILN_RETURN_IF_ERROR(checkByteLength(raw.size(), count, dtype, what, shape));
    return adoptBytes(dtype, std::move(dims), std::as_bytes(std::span(raw.data(), raw.size())), nullptr);
  }
  KILN_ASSIGN_OR_RETURN(auto bytes, typedData(proto, dtype, count, what));
  return ir::Tensor::fromBytes(dtype, std::move(dims), std::move(bytes));
}

Expected<ir::Tensor> convertSparseTensor(const onnx::SparseTensorProto& proto, TensorSource& source,
                                         const std::string& what) {
  KILN_ASSIGN_OR_RETURN(ir::Tensor values, convertTensor(proto.values(), source, what + " (values)"));
  KILN_ASSIGN_OR_RETURN(ir::Tensor indices, convertTensor(proto.indices(), source, what + " (indices)"));
  std::vector<int64_t> dims(proto.dims().begin(), proto.dims().end());
  auto count_or = ir::elementCount(dims);
  if (!count_or) return count_or.status().withContext(what);
  int64_t count = *count_or;
  if (values.dtype() == ir::DType::kString) return unsupported(what + ": sparse string tensors are not supported");
  if (values.dims().size() != 1) return invalidInput(what + ": values must be 1-D");
  int64_t nnz = values.dims()[0];
  size_t rank = dims.size();
  bool linear = indices.dims() == std::vector<int64_t>{nnz};
  bool coordinates = indices.dims() == std::vector<int64_t>{nnz, static_cast<int64_t>(rank)};
  if (indices.dtype() != ir::DType::kInt64 || !(linear || coordinates))
    return invalidInput(what + ": indices must be int64 of shape [" + std::to_string(nnz) + "] or [" +
                        std::to_string(nnz) + "x" + std::to_string(rank) + "], got " + indices.type().toString());
  int64_t element_bytes = ir::byteSize(values.dtype());
  if (count > kMaxDensifiedBytes / element_bytes)
    return unsupported(what + " would densify to " + ir::toString(ir::makeShape(dims)) + " elements of " +
                       std::string(ir::name(values.dtype())) + "; Kiln densifies sparse tensors up to 4 GiB");
  int64_t stored_bytes = static_cast<int64_t>(values.bytes().size() + indices.bytes().size());
  if (count * element_bytes > std::max(kDensifyFloorBytes, stored_bytes * kMaxDensifyRatio))
    return invalidInput(what + " stores " + std::to_string(nnz) + " non-zeros (" + std::to_string(stored_bytes) +
                        " bytes) for a dense " + ir::toString(ir::makeShape(dims)) + " tensor of " +
                        std::to_string(count * element_bytes) + " bytes; Kiln densifies a sparse tensor to at most " +
                        std::to_string(kMaxDensifyRatio) + " times its stored size (or 64 MiB)");
  std::vector<std::byte> dense(static_cast<size_t>(count * element_bytes));
  for (int64_t k = 0; k < nnz; ++k) {
    int64_t index = 0;
    if (linear) {
      index = indices.intAt(k);
    } else {
      for (size_t d = 0; d < rank; ++d) {
        int64_t coordinate = indices.intAt(k * static_cast<int64_t>(rank) + static_cast<int64_t>(d));
        if (coordinate < 0 || coordinate >= dims[d]) {
          index = -1;
          break;
        }
        index = index * dims[d] + coordinate;
      }
    }
    if (index < 0 || index >= count)
      return invalidInput(what + ": index of non-zero " + std::to_string(k) + " is outside the shape " +
                          ir::toString(ir::makeShape(dims)));
    std::memcpy(dense.data() + index * element_bytes, values.bytes().data() + k * element_bytes,
                static_cast<size_t>(element_bytes));
  }
  return ir::Tensor::fromBytes(values.dtype(), std::move(dims), std::move(dense));
}

namespace {

// A sequence or optional TypeProto: its kind and the tensor type inside.
// Containers of maps, sequences of sequences and the like are unsupported.
Expected<std::pair<ir::ValueKind, const onnx::TypeProto*>> containerType(const onnx::TypeProto& proto,
                                                                          const std::string& what) {
  const onnx::TypeProto* elem = nullptr;
  ir::ValueKind kind = ir::ValueKind::kTensor;
  if (proto.has_sequence_type()) {
    elem = &proto.sequence_type().elem_type();
    kind = ir::ValueKind::kSequence;
  } else if (proto.has_optional_type()) {
    elem = &proto.optional_type().elem_type();
    kind = ir::ValueKind::kOptionalTensor;
    if (elem->has_sequence_type()) {
      elem = &elem->sequence_type().elem_type();
      kind = ir::ValueKind::kOptionalSequence;
    }
  }
  if (!elem || !elem->has_tensor_type()) {
    const char* kind_name = proto.has_sequence_type()         ? "a sequence of non-tensors"
                            : proto.has_map_type()            ? "a map"
                            : proto.has_optional_type()       ? "an optional of a non-tensor"
                            : proto.has_sparse_tensor_type()  ? "a sparse tensor"
                                                              : "not a tensor";
    return unsupported(what + " is " + kind_name +
                       "; Kiln handles tensors, sequences of tensors and optionals of those");
  }
  return std::pair{kind, elem};
}

}  // namespace

Expected<ir::TensorType> convertType(const onnx::TypeProto& proto, const std::string& what) {
  if (proto.value_case() == onnx::TypeProto::VALUE_NOT_SET) return ir::TensorType{};
  if (!proto.has_tensor_type()) {
    KILN_ASSIGN_OR_RETURN(auto container, containerType(proto, what));
    KILN_ASSIGN_OR_RETURN(ir::TensorType type, convertType(*container.second, what));
    type.kind = container.first;
    return type;
  }
  const auto& tensor = proto.tensor_type();
  ir::TensorType type;
  if (tensor.elem_type() != onnx::TensorProto_DataType_UNDEFINED) {
    KILN_ASSIGN_OR_RETURN(type.dtype, convertDType(tensor.elem_type(), what));
  }
  if (!tensor.has_shape()) return type;
  ir::Shape shape;
  for (const auto& dim : tensor.shape().dim()) {
    if (dim.has_dim_value()) {
      if (dim.dim_value() < 0) return invalidInput(what + " has negative dimension " + std::to_string(dim.dim_value()));
      shape.push_back(ir::Dim::known(dim.dim_value()));
    } else if (dim.has_dim_param() && !dim.dim_param().empty()) {
      shape.push_back(ir::Dim::named(dim.dim_param()));
    } else {
      shape.push_back(ir::Dim{});
    }
  }
  // Refusing impossible sizes here (ir::kMaxTensorBytes) keeps every later
  // product and sum of sizes (inference, lowering, arena plans) in range.
  if (auto problem = ir::tensorSizeProblem(type.dtype, shape))
    return invalidInput(what + " has shape " + ir::toString(shape) + *problem);
  type.shape = std::move(shape);
  return type;
}

}  // namespace detail

Expected<ir::Tensor> tensorFromProto(const onnx::TensorProto& proto, const std::string& base_dir) {
  detail::TensorSource source;
  source.base_dir = base_dir;
  std::string what = proto.name().empty() ? "tensor" : "tensor '" + proto.name() + "'";
  return detail::convertTensor(proto, source, what);
}

}  // namespace kiln::frontend
