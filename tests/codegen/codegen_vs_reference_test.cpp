// Every op's generated code against the reference evaluator, on random data:
// each ONNX node case is lowered once, then run both through the reference
// evaluator and through the compiled artifact.
#include <algorithm>
#include <filesystem>
#include <random>

#include "compiler/kir/evaluator.h"
#include "tests/testing/artifact_fixture.h"
#include "tests/testing/container_boundary.h"
#include "tools/common/run_artifact.h"
#include "tools/common/tensor_files.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

// Every node case: its model is a ready-made graph for one op in one
// configuration; its data is not used (random inputs instead).
std::vector<std::string> nodeCases() {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(std::string(KILN_TESTDATA_DIR) + "/node"))
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

ir::Tensor randomTensor(const lower::TensorSignature& sig, std::mt19937& rng) {
  std::vector<int64_t> dims = *ir::knownDims(sig.shape);
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  std::vector<std::byte> bytes(static_cast<size_t>(n * ir::byteSize(sig.dtype)));
  std::uniform_real_distribution<double> real(-2.0, 2.0);
  std::uniform_int_distribution<int> small(-20, 20);
  auto put = [&](auto v, int64_t i) { std::memcpy(bytes.data() + i * sizeof(v), &v, sizeof(v)); };
  for (int64_t i = 0; i < n; ++i) {
    switch (sig.dtype) {
      case ir::DType::kFloat32: put(static_cast<float>(real(rng)), i); break;
      case ir::DType::kFloat64: put(real(rng), i); break;
      case ir::DType::kInt8: put(static_cast<int8_t>(small(rng)), i); break;
      case ir::DType::kUInt8: put(static_cast<uint8_t>(small(rng) + 20), i); break;
      case ir::DType::kInt16: put(static_cast<int16_t>(small(rng)), i); break;
      case ir::DType::kUInt16: put(static_cast<uint16_t>(small(rng) + 20), i); break;
      case ir::DType::kInt32: put(static_cast<int32_t>(small(rng)), i); break;
      case ir::DType::kUInt32: put(static_cast<uint32_t>(small(rng) + 20), i); break;
      case ir::DType::kInt64: put(static_cast<int64_t>(small(rng)), i); break;
      case ir::DType::kUInt64: put(static_cast<uint64_t>(small(rng) + 20), i); break;
      case ir::DType::kBool: put(static_cast<uint8_t>(small(rng) > 0), i); break;
      default: break;  // zeros for types without a generator here
    }
  }
  return ir::Tensor::fromBytes(sig.dtype, dims, std::move(bytes));
}

// Programs that random data would not exercise run on the case's own
// inputs: run-time shapes (random shape operands — a Reshape target, Range
// bounds — would mostly make no valid shape), run-time checks (random data
// would mostly trip them) and strings (no random text here). The artifact
// must give the reference's outputs and shapes, or refuse the run as the
// reference does, with the same message.
bool runsOnCaseInputs(const lower::Program& program) {
  if (program.isDynamic() || !program.checks.empty()) return true;
  for (const auto& sigs : {program.inputs, program.outputs})
    for (const auto& sig : sigs)
      if (sig.dtype == ir::DType::kString) return true;
  return false;
}

void checkOnCaseInputs(const std::string& dir, const lower::Program& program) {
  std::vector<ir::Tensor> inputs;
  for (size_t i = 0; i < program.inputs.size(); ++i) {
    auto t = tools::readTensorFile(dir + "/test_data_set_0/input_" + std::to_string(i) + ".pb");
    if (!t) GTEST_SKIP() << "needs the case's own inputs, and it has none to read: " << t.status().message();
    inputs.push_back(std::move(*t));
  }
  auto expected = lower::evaluateProgram(program, inputs);
  testing::TempDir tmp;
  testing::compileOrFail(dir + "/model.onnx", tmp.file("case.so"));
  kiln::Model artifact(tmp.file("case.so"));
  kiln::Session session(artifact, 2);
  auto outputs = tools::runArtifact(artifact, session, inputs);
  if (!expected) {
    ASSERT_FALSE(outputs.isOk()) << "the reference refused the run (" << expected.status().message()
                                 << "), the artifact ran it";
    EXPECT_NE(outputs.status().message().find(expected.status().message()), std::string::npos)
        << "artifact: " << outputs.status().message() << "\nreference: " << expected.status().message();
    return;
  }
  ASSERT_TRUE(outputs.isOk()) << outputs.status().message();
  ASSERT_EQ(outputs->size(), expected->size());
  for (size_t i = 0; i < expected->size(); ++i) {
    auto diff = tools::compareTensors((*outputs)[i], (*expected)[i], {1e-5, 1e-6});
    EXPECT_FALSE(diff.has_value()) << "output " << i << ": " << *diff;
  }
}

class CodegenVsReference : public ::testing::TestWithParam<std::string> {};

TEST_P(CodegenVsReference, MatchesOnRandomInputs) {
  std::string dir = testing::nodeCase(GetParam());
  auto model = driver::importModel(dir + "/model.onnx");
  if (!model && model.status().kind() == ErrorKind::kUnsupported)
    GTEST_SKIP() << "unsupported: " << model.status().message();
  ASSERT_TRUE(model.isOk()) << model.status().message();
  std::ostringstream log;
  auto program = driver::buildProgram(**model, {}, log);
  if (!program) {
    if (program.status().kind() == ErrorKind::kUnsupported) GTEST_SKIP() << "unsupported: " << program.status().message();
    FAIL() << program.status().message();
  }
  if (testing::hasContainerBoundary(*program)) GTEST_SKIP() << testing::kContainerBoundarySkip;
  if (runsOnCaseInputs(*program)) return checkOnCaseInputs(dir, *program);
  std::mt19937 rng(1234);
  std::vector<ir::Tensor> inputs;
  for (const auto& sig : program->inputs) inputs.push_back(randomTensor(sig, rng));
  std::vector<const void*> in_ptrs;
  for (const auto& t : inputs) in_ptrs.push_back(t.bytes().data());
  std::vector<std::vector<std::byte>> expected;
  std::vector<void*> out_ptrs;
  for (const auto& sig : program->outputs) {
    std::vector<int64_t> dims = *ir::knownDims(sig.shape);
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    expected.emplace_back(static_cast<size_t>(n * ir::byteSize(sig.dtype)));
    out_ptrs.push_back(expected.back().data());
  }
  ASSERT_TRUE(lower::evaluateProgram(*program, in_ptrs, out_ptrs).isOk());

  testing::TempDir tmp;
  testing::compileOrFail(dir + "/model.onnx", tmp.file("case.so"));
  kiln::Model artifact(tmp.file("case.so"));
  kiln::Session session(artifact, 2);
  auto outputs = tools::runArtifact(artifact, session, inputs);
  ASSERT_TRUE(outputs.isOk()) << outputs.status().message();
  ASSERT_EQ(outputs->size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    const auto& sig = program->outputs[i];
    ir::Tensor want = ir::Tensor::fromBytes(sig.dtype, *ir::knownDims(sig.shape), expected[i]);
    // The same arithmetic in the same order, up to LLVM's reassociation-free
    // vectorization and libm: 1e-5 relative.
    auto diff = tools::compareTensors((*outputs)[i], want, {1e-5, 1e-6});
    EXPECT_FALSE(diff.has_value()) << "output " << i << ": " << *diff;
  }
}

INSTANTIATE_TEST_SUITE_P(NodeCases, CodegenVsReference, ::testing::ValuesIn(nodeCases()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace kiln
