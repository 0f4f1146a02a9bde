// Helpers for tests that build ONNX models with the protobuf classes.
#pragma once

#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "compiler/onnx/importer.h"

namespace kiln::testing {

// A fresh directory under the system temp dir, removed with its contents.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "kiln-test-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data()) ? pattern : std::string();
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline void writeFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline std::span<const std::byte> asBytes(const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); }

inline Expected<std::unique_ptr<ir::Model>> importProto(const onnx::ModelProto& model,
                                                        const std::string& base_dir = "") {
  std::string bytes = model.SerializeAsString();
  return frontend::importOnnxBytes(asBytes(bytes), base_dir, "test.onnx");
}

inline void setType(onnx::ValueInfoProto* info, const std::string& name, int elem_type,
                    std::initializer_list<int64_t> dims) {
  info->set_name(name);
  auto* tensor = info->mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(elem_type);
  auto* shape = tensor->mutable_shape();
  for (int64_t d : dims) shape->add_dim()->set_dim_value(d);
}

inline onnx::NodeProto* addNode(onnx::GraphProto* graph, const std::string& op, const std::string& name,
                                std::initializer_list<std::string> inputs, std::initializer_list<std::string> outputs) {
  auto* node = graph->add_node();
  node->set_op_type(op);
  node->set_name(name);
  for (const auto& in : inputs) node->add_input(in);
  for (const auto& out : outputs) node->add_output(out);
  return node;
}

// x: float32[2x3] -> Relu 'relu' -> y
inline onnx::ModelProto reluModel() {
  onnx::ModelProto model;
  model.set_ir_version(8);
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(13);
  auto* graph = model.mutable_graph();
  graph->set_name("main");
  setType(graph->add_input(), "x", onnx::TensorProto::FLOAT, {2, 3});
  setType(graph->add_output(), "y", onnx::TensorProto::FLOAT, {2, 3});
  addNode(graph, "Relu", "relu", {"x"}, {"y"});
  return model;
}

// Asserts that `status` failed and its message contains every one of `parts`.
inline void expectError(const Status& status, std::initializer_list<std::string> parts) {
  ASSERT_FALSE(status.isOk()) << "expected an error containing '" << *parts.begin() << "'";
  for (const auto& part : parts)
    EXPECT_NE(status.message().find(part), std::string::npos) << "message: " << status.message();
}
template <typename T>
void expectError(const Expected<T>& result, std::initializer_list<std::string> parts) {
  ASSERT_FALSE(result.isOk()) << "expected an error containing '" << *parts.begin() << "'";
  expectError(result.status(), parts);
}

inline bool pythonOnnxAvailable() {
  return std::filesystem::exists("/usr/bin/python3") &&
         std::system("/usr/bin/python3 -c 'import onnx' >/dev/null 2>&1") == 0;
}

}  // namespace kiln::testing
