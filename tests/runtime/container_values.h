// Models and C API values for the container tests: ONNX graphs with
// sequence and optional inputs built in code, compiled to artifacts, and
// kiln_value views of host vectors to run them with.
#pragma once

#include <gtest/gtest.h>

#include <cctype>
#include <sstream>
#include <string>
#include <vector>

#include "compiler/driver/compile.h"
#include "kiln_runtime.hpp"
#include "tests/onnx/onnx_test_util.h"

namespace kiln::testing::containers {

inline onnx::ModelProto emptyModel(int opset) {
  onnx::ModelProto model;
  model.set_ir_version(8);
  auto* import = model.add_opset_import();
  import->set_domain("");
  import->set_version(opset);
  model.mutable_graph()->set_name("main");
  return model;
}

// A tensor type: dims as numbers, or names for symbols; `rank_known` false
// leaves the shape out.
inline void setTensorType(onnx::TypeProto_Tensor* type, int elem_type, const std::vector<std::string>& dims,
                   bool rank_known = true) {
  type->set_elem_type(elem_type);
  if (!rank_known) return;
  auto* shape = type->mutable_shape();
  for (const std::string& d : dims) {
    if (std::isdigit(static_cast<unsigned char>(d[0]))) shape->add_dim()->set_dim_value(std::stoll(d));
    else shape->add_dim()->set_dim_param(d);
  }
}

inline void addSequence(onnx::ValueInfoProto* info, const std::string& name, const std::vector<std::string>& dims,
                 bool rank_known) {
  info->set_name(name);
  setTensorType(info->mutable_type()->mutable_sequence_type()->mutable_elem_type()->mutable_tensor_type(),
                onnx::TensorProto::FLOAT, dims, rank_known);
}

inline void addTensor(onnx::ValueInfoProto* info, const std::string& name, int elem_type, const std::vector<std::string>& dims) {
  info->set_name(name);
  setTensorType(info->mutable_type()->mutable_tensor_type(), elem_type, dims);
}

inline std::string compile(const TempDir& dir, const onnx::ModelProto& model, const std::string& name) {
  std::string onnx_path = dir.file(name + ".onnx"), so_path = dir.file(name + ".so");
  testing::writeFile(onnx_path, model.SerializeAsString());
  std::ostringstream log;
  auto summary = driver::compileFile(onnx_path, so_path, driver::CompileOptions{}, log);
  EXPECT_TRUE(summary.isOk()) << summary.status().message();
  return so_path;
}

inline kiln_tensor view(kiln_dtype dtype, std::vector<int64_t> dims, const void* data, size_t bytes) {
  kiln_tensor t{};
  t.dtype = dtype;
  t.rank = static_cast<int32_t>(dims.size());
  std::copy(dims.begin(), dims.end(), t.dims);
  t.data = const_cast<void*>(data);
  t.bytes = bytes;
  return t;
}

inline kiln_tensor floats(const std::vector<float>& values, std::vector<int64_t> dims) {
  return view(KILN_FLOAT32, std::move(dims), values.data(), values.size() * sizeof(float));
}

inline std::vector<float> floatsOf(const kiln_tensor& t) {
  auto* p = static_cast<const float*>(t.data);
  return std::vector<float>(p, p + t.bytes / sizeof(float));
}

inline kiln_value sequenceValue(std::vector<kiln_tensor>& elements) {
  kiln_value v{};
  v.kind = KILN_KIND_SEQUENCE;
  v.count = elements.size();
  v.elements = elements.empty() ? nullptr : elements.data();
  return v;
}

inline kiln_value tensorValue(kiln_tensor t) {
  kiln_value v{};
  v.tensor = t;
  return v;
}

// Runs and returns the error message, "" on success.
inline std::string runValues(kiln::Session& session, std::vector<kiln_value>& in, std::vector<kiln_value>& out) {
  kiln_error* error = nullptr;
  kiln_status status = kiln_session_run_values(session.get(), in.data(), in.size(), out.data(), out.size(), &error);
  std::string message = status == KILN_OK ? "" : kiln_error_message(error);
  kiln_error_free(error);
  return message;
}

}  // namespace kiln::testing::containers
