// Tensors in files, for `kiln run` / `kiln check` inputs and outputs: NumPy
// .npy files and ONNX TensorProto .pb files (the format of the ONNX backend
// test data).
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>

#include "compiler/ir/tensor.h"
#include "compiler/onnx/mapped_file.h"
#include "compiler/support/status.h"

namespace kiln::tools {

// Maps a tensor or value file for reading. A run takes its inputs whole, so a
// file larger than this machine's memory (a sparse file can claim terabytes)
// is refused before any of it is read.
Expected<std::shared_ptr<const frontend::MappedFile>> mapValueFile(const std::string& path);

// Dispatches on the extension: ".npy" or ".pb".
Expected<ir::Tensor> readTensorFile(const std::string& path);

Expected<ir::Tensor> readNpy(const std::string& path);
Expected<ir::Tensor> readTensorProtoFile(const std::string& path);

// The same formats from bytes in memory (the tensor copies its data). A
// TensorProto's external data is resolved relative to `base_dir`; "" refuses it.
Expected<ir::Tensor> parseNpyBytes(std::span<const std::byte> bytes);
Expected<ir::Tensor> parseTensorProtoBytes(std::span<const std::byte> bytes, const std::string& base_dir);

// Writes NumPy format 1.0 (2.0 for headers too long for it). bfloat16 has no
// NumPy dtype code; it is written as float32, which holds every bfloat16 value
// exactly. Strings are written as fixed-width unicode ('<U<n>'), and read
// from '<U<n>' or '|S<n>' arrays; object arrays are refused.
Status writeNpy(const std::string& path, const ir::Tensor& tensor);

}  // namespace kiln::tools
