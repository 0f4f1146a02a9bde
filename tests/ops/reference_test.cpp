// The ONNX backend node tests of the ops in compiler/ops, run through the
// whole front half of Kiln: import, shape inference, lowering to kernel IR,
// and the reference evaluator, compared with the shipped expected outputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <regex>
#include <set>

#include "compiler/kir/evaluator.h"
#include "compiler/lower/lower_graph.h"
#include "compiler/onnx/importer.h"
#include "compiler/ops/op_registry.h"
#include "passes/infer_shapes.h"
#include "tests/testing/container_boundary.h"
#include "tools/common/tensor_files.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

constexpr double kRtol = 1e-3;
constexpr double kAtol = 1e-5;

const fs::path kNodeDir = fs::path(KILN_TESTDATA_DIR) / "node";

// The cases of the ops this directory implements. `_expanded` variants are
// the same test written with other ops (ReduceMax, Exp...), not ours.
const std::regex kOurCases(
    "test_(add|sub|mul|div|relu|sigmoid|tanh|exp|log|sqrt|neg|abs|leakyrelu|identity)(_.*)?"
    "|test_clip.*|test_matmul_.*|test_gemm_.*|test_(basic_)?conv(_with.*|_without.*)?"
    "|test_maxpool_.*|test_averagepool_.*|test_global(average|max)pool.*|test_batchnorm_.*"
    "|test_(log)?softmax_.*|test_reshape_.*|test_flatten_.*|test_transpose_.*|test_concat_.*|test_constant");

// Cases Kiln rejects on purpose, with an "unsupported" error.
const std::set<std::string> kExpectedUnsupported = {
    "node/test_batchnorm_epsilon_training_mode",  // training: batch statistics outputs
    "node/test_batchnorm_example_training_mode",
    "node/test_identity_sequence",  // sequence and optional types
    "node/test_identity_opt",
};

std::vector<std::string> ourNodeCases() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(kNodeDir, ec)) {
    std::string name = entry.path().filename().string();
    if (name.ends_with("_expanded")) continue;
    if (std::regex_match(name, kOurCases)) names.push_back("node/" + name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Cases of the model suites (exported PyTorch modules and operators) whose
// every node is an op of our table.
std::vector<std::string> ourModelCases() {
  std::vector<std::string> names;
  for (const char* suite : {"pytorch-converted", "pytorch-operator"}) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(fs::path(KILN_TESTDATA_DIR) / suite, ec)) {
      auto model = frontend::importOnnxFile((entry.path() / "model.onnx").string());
      if (!model) continue;
      bool ours = !(*model)->graph.nodes().empty();
      for (const auto& node : (*model)->graph.nodes())
        ours = ours && ops::OpRegistry::global().find(node->domain, node->op_type) != nullptr;
      if (ours) names.push_back(std::string(suite) + "/" + entry.path().filename().string());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Files `prefix_<i>.pb` of a data set, by index.
std::vector<fs::path> numberedFiles(const fs::path& dir, const std::string& prefix) {
  std::vector<fs::path> files;
  for (int i = 0;; ++i) {
    fs::path file = dir / (prefix + "_" + std::to_string(i) + ".pb");
    if (!fs::exists(file)) return files;
    files.push_back(file);
  }
}

std::string compare(const ir::Tensor& actual, const ir::Tensor& expected, const std::string& what) {
  if (actual.dtype() != expected.dtype())
    return what + ": dtype " + std::string(ir::name(actual.dtype())) + ", expected " +
           std::string(ir::name(expected.dtype()));
  if (actual.dims() != expected.dims())
    return what + ": shape " + ir::toString(ir::makeShape(actual.dims())) + ", expected " +
           ir::toString(ir::makeShape(expected.dims()));
  int64_t mismatches = 0;
  std::string first;
  for (int64_t i = 0; i < expected.elementCount(); ++i) {
    double a = actual.floatAt(i);
    double e = expected.floatAt(i);
    bool equal = (std::isnan(a) && std::isnan(e)) || a == e || std::abs(a - e) <= kAtol + kRtol * std::abs(e);
    if (equal) continue;
    if (mismatches++ == 0)
      first = "element " + std::to_string(i) + " is " + std::to_string(a) + ", expected " + std::to_string(e);
  }
  if (mismatches == 0) return {};
  return what + ": " + std::to_string(mismatches) + " of " + std::to_string(expected.elementCount()) +
         " elements differ; " + first;
}

std::string loadInputs(const fs::path& dir, std::vector<ir::Tensor>& inputs) {
  for (const fs::path& file : numberedFiles(dir, "input")) {
    Expected<ir::Tensor> t = tools::readTensorFile(file.string());
    if (!t) return t.status().message();
    inputs.push_back(t.take());
  }
  return {};
}

// These cases feed Reshape's target shape as a graph input. Kiln needs it at
// compile time (in real models it is an initializer or folds to one), so the
// test specializes the model to each data set's shape: int64 graph inputs
// become constants.
bool bindsShapeInputs(const std::string& name) { return name.starts_with("node/test_reshape_"); }

void bindInt64Inputs(ir::Model& model, std::vector<ir::Tensor>& inputs) {
  std::vector<ir::Value*> kept;
  std::vector<ir::Tensor> kept_data;
  for (size_t i = 0; i < model.graph.inputs.size() && i < inputs.size(); ++i) {
    ir::Value* value = model.graph.inputs[i];
    if (value->type.dtype == ir::DType::kInt64) {
      value->constant = inputs[i];
    } else {
      kept.push_back(value);
      kept_data.push_back(inputs[i]);
    }
  }
  model.graph.inputs = kept;
  inputs = kept_data;
}

Expected<lower::Program> compile(const fs::path& model_path, std::vector<ir::Tensor>* bind_inputs) {
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<ir::Model> model, frontend::importOnnxFile(model_path.string()));
  if (bind_inputs) bindInt64Inputs(*model, *bind_inputs);
  KILN_RETURN_IF_ERROR(passes::inferShapes(*model));
  return lower::lowerGraph(*model);
}

// Runs one data set; an empty string on success.
std::string runDataSet(const lower::Program& program, const std::vector<ir::Tensor>& inputs, const fs::path& dir) {
  if (inputs.size() != program.inputs.size())
    return "data set has " + std::to_string(inputs.size()) + " inputs, program " +
           std::to_string(program.inputs.size());
  std::vector<const void*> in_ptrs;
  for (const ir::Tensor& t : inputs) in_ptrs.push_back(t.bytes().data());
  std::vector<fs::path> expected_files = numberedFiles(dir, "output");
  std::vector<std::vector<std::byte>> out_bytes;
  std::vector<void*> out_ptrs;
  for (int b : program.output_buffers) out_bytes.emplace_back(program.buffers[b].byteSize() + 1);
  for (auto& bytes : out_bytes) out_ptrs.push_back(bytes.data());
  Status ran = lower::evaluateProgram(program, in_ptrs, out_ptrs);
  if (!ran) return "evaluate: " + ran.message();
  for (size_t i = 0; i < expected_files.size() && i < out_bytes.size(); ++i) {
    Expected<ir::Tensor> expected = tools::readTensorFile(expected_files[i].string());
    if (!expected) return expected.status().message();
    const lower::ProgramBuffer& buffer = program.buffers[program.output_buffers[i]];
    out_bytes[i].resize(static_cast<size_t>(buffer.byteSize()));
    ir::Tensor actual = ir::Tensor::fromBytes(buffer.dtype, buffer.dims, std::move(out_bytes[i]));
    std::string diff = compare(actual, *expected, "output " + std::to_string(i));
    if (!diff.empty()) return diff;
  }
  return {};
}

enum class Outcome { kPass, kFail, kUnsupported };
struct CaseResult {
  Outcome outcome;
  std::string detail;
};

CaseResult compileFailure(const Status& status) {
  return {status.kind() == ErrorKind::kUnsupported ? Outcome::kUnsupported : Outcome::kFail, status.message()};
}

CaseResult runCase(const std::string& name) {
  fs::path dir = fs::path(KILN_TESTDATA_DIR) / name;
  bool specialize = bindsShapeInputs(name);
  Expected<lower::Program> program = specialize ? internalError("not compiled") : compile(dir / "model.onnx", nullptr);
  if (!specialize && !program) return compileFailure(program.status());
  if (!specialize && testing::hasContainerBoundary(*program))
    return {Outcome::kUnsupported, testing::kContainerBoundarySkip};
  std::vector<fs::path> data_sets;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_directory() && entry.path().filename().string().starts_with("test_data_set_"))
      data_sets.push_back(entry.path());
  std::sort(data_sets.begin(), data_sets.end());
  for (const fs::path& data_set : data_sets) {
    std::vector<ir::Tensor> inputs;
    std::string error = loadInputs(data_set, inputs);
    if (!error.empty()) return {Outcome::kFail, error};
    if (specialize) {
      program = compile(dir / "model.onnx", &inputs);
      if (!program) return compileFailure(program.status());
    }
    std::string diff = runDataSet(*program, inputs, data_set);
    if (!diff.empty()) return {Outcome::kFail, data_set.filename().string() + ": " + diff};
  }
  return {Outcome::kPass, {}};
}

std::map<std::string, CaseResult>& results() {
  static std::map<std::string, CaseResult> table;
  return table;
}

// Prints the pass/fail/unsupported table once every case ran.
class SummaryPrinter : public ::testing::Environment {
 public:
  void TearDown() override {
    static constexpr const char* kLabels[] = {"pass", "FAIL", "unsupported"};
    int counts[3] = {0, 0, 0};
    std::cout << "\nONNX backend cases of compiler/ops on the reference evaluator:\n";
    for (const auto& [name, result] : results()) {
      ++counts[static_cast<int>(result.outcome)];
      std::cout << "  " << std::left << std::setw(62) << name << " " << kLabels[static_cast<int>(result.outcome)];
      if (!result.detail.empty()) std::cout << "  " << result.detail.substr(0, 160);
      std::cout << "\n";
    }
    std::cout << "total " << results().size() << ": " << counts[0] << " pass, " << counts[1] << " fail, "
              << counts[2] << " unsupported\n";
  }
};
const auto* const kSummary = ::testing::AddGlobalTestEnvironment(new SummaryPrinter);

class NodeCaseTest : public ::testing::TestWithParam<std::string> {};

TEST_P(NodeCaseTest, MatchesExpectedOutputs) {
  const std::string& name = GetParam();
  CaseResult result = runCase(name);
  results()[name] = result;
  bool expect_unsupported = kExpectedUnsupported.count(name) > 0;
  if (result.outcome == Outcome::kUnsupported && (expect_unsupported || result.detail == testing::kContainerBoundarySkip))
    GTEST_SKIP() << result.detail;
  EXPECT_EQ(result.outcome, Outcome::kPass) << name << ": " << result.detail;
}

std::string caseTestName(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param.substr(info.param.find('/') + 1);
  std::replace_if(name.begin(), name.end(), [](char c) { return !std::isalnum(static_cast<unsigned char>(c)); }, '_');
  return name;
}

INSTANTIATE_TEST_SUITE_P(Node, NodeCaseTest, ::testing::ValuesIn(ourNodeCases()), caseTestName);
INSTANTIATE_TEST_SUITE_P(Model, NodeCaseTest, ::testing::ValuesIn(ourModelCases()), caseTestName);

TEST(NodeCaseListTest, FindsTheTestData) {
  EXPECT_GT(ourNodeCases().size(), 140u) << kNodeDir;
  EXPECT_GT(ourModelCases().size(), 20u);
}

}  // namespace
}  // namespace kiln
