// A one-node ONNX model whose outputs' sizes depend on input data, compiled
// twice: to a program for the reference evaluator and to an artifact run
// through the runtime. run() feeds both the same inputs and checks that they
// agree exactly (shapes and bytes) before returning the artifact's outputs.
// Used by the NonZero/Compress, Unique, NonMaxSuppression and run-time TopK
// tests. KILN_TEST_PRINT_PROGRAM=1 prints each lowered program to stderr.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "compiler/driver/compile.h"
#include "compiler/kir/evaluator.h"
#include "kiln_runtime.hpp"
#include "tests/onnx/onnx_test_util.h"
#include "tools/common/run_artifact.h"

namespace kiln::testing {

inline int onnxType(ir::DType dtype) { return static_cast<int>(dtype); }  // ir::DType uses ONNX's numbering

class DataDependentModel {
 public:
  DataDependentModel(const std::string& op, int opset) {
    proto_.set_ir_version(8);
    auto* import = proto_.add_opset_import();
    import->set_domain("");
    import->set_version(opset);
    proto_.mutable_graph()->set_name("main");
    node_ = addNode(proto_.mutable_graph(), op, "n", {}, {});
  }

  DataDependentModel& input(const std::string& name, ir::DType dtype, std::initializer_list<int64_t> dims) {
    setType(proto_.mutable_graph()->add_input(), name, onnxType(dtype), dims);
    node_->add_input(name);
    return *this;
  }
  DataDependentModel& omittedInput() {
    node_->add_input("");
    return *this;
  }
  // Outputs with unknown dims (the run decides them); "" leaves one out.
  DataDependentModel& outputs(std::initializer_list<std::string> names) {
    for (const std::string& name : names) {
      node_->add_output(name);
      if (!name.empty()) proto_.mutable_graph()->add_output()->set_name(name);
    }
    return *this;
  }
  DataDependentModel& attr(const std::string& name, int64_t value) {
    auto* a = node_->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(value);
    return *this;
  }

  // Compiles both forms; the error (reference lowering) when it fails.
  Status compile() {
    auto imported = importProto(proto_);
    if (!imported) return imported.status();
    std::ostringstream log;
    auto program = driver::buildProgram(**imported, {}, log);
    if (!program) return program.status();
    program_ = std::make_unique<lower::Program>(std::move(*program));
    if (std::getenv("KILN_TEST_PRINT_PROGRAM")) std::cerr << lower::toString(*program_);
    std::string onnx_path = dir_.file("model.onnx"), so_path = dir_.file("model.so");
    writeFile(onnx_path, proto_.SerializeAsString());
    auto summary = driver::compileFile(onnx_path, so_path, {}, log);
    if (!summary) return summary.status();
    model_ = std::make_unique<kiln::Model>(so_path.c_str());
    session_ = std::make_unique<kiln::Session>(*model_);
    return Status::ok();
  }

  // Runs the artifact and the reference evaluator; a failure of either (a
  // run-time check) is returned when both fail with the same message.
  Expected<std::vector<ir::Tensor>> run(const std::vector<ir::Tensor>& inputs) {
    if (!program_) return internalError("model not compiled");
    Expected<std::vector<ir::Tensor>> reference = lower::evaluateProgram(*program_, inputs);
    Expected<std::vector<ir::Tensor>> artifact = tools::runArtifact(*model_, *session_, inputs);
    EXPECT_EQ(reference.isOk(), artifact.isOk())
        << (reference ? "" : reference.status().message()) << " | " << (artifact ? "" : artifact.status().message());
    if (!reference || !artifact) return artifact ? reference.status() : artifact.status();
    EXPECT_EQ(reference->size(), artifact->size());
    for (size_t i = 0; i < std::min(reference->size(), artifact->size()); ++i) {
      std::optional<std::string> mismatch = tools::compareTensors((*artifact)[i], (*reference)[i], {0, 0});
      EXPECT_FALSE(mismatch) << "output " << i << ": artifact differs from the reference evaluator: " << *mismatch;
    }
    return artifact;
  }

 private:
  onnx::ModelProto proto_;
  onnx::NodeProto* node_;
  TempDir dir_;
  std::unique_ptr<lower::Program> program_;
  std::unique_ptr<kiln::Model> model_;
  std::unique_ptr<kiln::Session> session_;
};

template <typename T>
ir::Tensor tensor(ir::DType dtype, std::vector<int64_t> dims, const std::vector<T>& values) {
  return ir::Tensor::fromValues<T>(dtype, std::move(dims), std::span<const T>(values));
}

template <typename T>
std::vector<T> elements(const ir::Tensor& t) {
  std::vector<T> out(static_cast<size_t>(t.elementCount()));
  if (!out.empty()) std::memcpy(out.data(), t.bytes().data(), out.size() * sizeof(T));
  return out;
}

}  // namespace kiln::testing
