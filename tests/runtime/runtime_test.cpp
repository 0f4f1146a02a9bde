// The runtime's contract: it refuses what it cannot run with a clear error
// and a status, before any artifact code runs, and runs what it can safely
// from many threads.
#include <atomic>
#include <cstring>
#include <thread>

#include "kiln_runtime.hpp"
#include "tests/testing/artifact_fixture.h"
#include "tools/common/run_artifact.h"
#include "tools/common/tensor_files.h"

namespace kiln {
namespace {

using testing::TempDir;

using testing::LoadResult;
using testing::tryLoad;

class RuntimeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    artifact_ = dir_->file("relu.so");
    testing::compileOrFail(testing::nodeCase("test_relu") + "/model.onnx", artifact_);
  }
  static void TearDownTestSuite() { delete dir_; }

  static TempDir* dir_;
  static std::string artifact_;
};
TempDir* RuntimeTest::dir_ = nullptr;
std::string RuntimeTest::artifact_;

TEST_F(RuntimeTest, MissingFileIsAnIoError) {
  LoadResult r = tryLoad(dir_->file("does-not-exist.so"));
  EXPECT_EQ(r.status, KILN_ERROR_IO);
  EXPECT_NE(r.message.find("does-not-exist.so"), std::string::npos) << r.message;
}

TEST_F(RuntimeTest, WrongMagicIsRefused) {
  std::string path = dir_->file("text.so");
  testing::writeBytes(path, {'h', 'e', 'l', 'l', 'o', '\n'});
  LoadResult r = tryLoad(path);
  EXPECT_EQ(r.status, KILN_ERROR_INVALID_ARTIFACT);
  EXPECT_NE(r.message.find("not a Kiln artifact"), std::string::npos) << r.message;
}

TEST_F(RuntimeTest, ForeignSharedObjectIsRefused) {
  LoadResult r = tryLoad(std::string(KILN_BUILD_DIR) + "/lib/libkiln_rt.so");
  EXPECT_EQ(r.status, KILN_ERROR_INVALID_ARTIFACT);
  EXPECT_NE(r.message.find("not a Kiln artifact"), std::string::npos) << r.message;
}

TEST_F(RuntimeTest, TruncatedArtifactIsRefused) {
  std::vector<char> bytes = testing::readBytes(artifact_);
  for (size_t keep : {size_t{0}, size_t{16}, size_t{100}, bytes.size() / 2, bytes.size() - 1}) {
    std::string path = dir_->file("truncated.so");
    testing::writeBytes(path, std::vector<char>(bytes.begin(), bytes.begin() + static_cast<long>(keep)));
    LoadResult r = tryLoad(path);
    EXPECT_EQ(r.status, KILN_ERROR_INVALID_ARTIFACT) << "kept " << keep << " bytes: " << r.message;
    EXPECT_FALSE(r.message.empty());
  }
}

TEST_F(RuntimeTest, BitFlipFailsTheChecksum) {
  std::vector<char> bytes = testing::readBytes(artifact_);
  // Flip a bit in the code/weights (second half of the file), outside the headers.
  for (size_t at : {bytes.size() / 3, bytes.size() / 2, bytes.size() * 2 / 3}) {
    std::vector<char> flipped = bytes;
    flipped[at] ^= 0x10;
    std::string path = dir_->file("flipped.so");
    testing::writeBytes(path, flipped);
    LoadResult r = tryLoad(path);
    EXPECT_NE(r.status, KILN_OK) << "flip at " << at;
    EXPECT_FALSE(r.message.empty());
  }
}

TEST_F(RuntimeTest, ArtifactForMissingCpuFeatureIsRefused) {
  // graniterapids implies AMX-FP16, which these machines' CPUs do not expose.
  if (tryLoad(artifact_).status != KILN_OK) GTEST_FAIL() << "the host artifact must load";
  std::string path = dir_->file("gnr.so");
  driver::CompileOptions options;
  options.codegen.cpu = "graniterapids";
  testing::compileOrFail(testing::nodeCase("test_relu") + "/model.onnx", path, options);
  kiln_model* model = nullptr;
  kiln_error* error = nullptr;
  kiln_status status = kiln_model_load(path.c_str(), &model, &error);
  std::string message = kiln_error_message(error);
  kiln_error_free(error);
  kiln_model_free(model);
  if (status == KILN_OK) GTEST_SKIP() << "this host has every graniterapids feature (amx-fp16), nothing to refuse";
  EXPECT_EQ(status, KILN_ERROR_UNSUPPORTED);
  EXPECT_NE(message.find("amx-fp16"), std::string::npos) << message;
}

TEST_F(RuntimeTest, DescribesInputsAndOutputs) {
  kiln::Model model(artifact_);
  ASSERT_EQ(model.numInputs(), 1u);
  ASSERT_EQ(model.numOutputs(), 1u);
  kiln_tensor_info x = model.input(0);
  EXPECT_STREQ(x.name, "x");
  EXPECT_EQ(x.dtype, KILN_FLOAT32);
  ASSERT_EQ(x.rank, 3);
  EXPECT_EQ(x.dims[0], 3);
  EXPECT_EQ(model.metadata("target"), "cpu");
  EXPECT_FALSE(model.metadata("content_hash").empty());
  kiln_tensor_info info;
  kiln_error* error = nullptr;
  EXPECT_EQ(kiln_model_input(model.get(), 5, &info, &error), KILN_ERROR_INVALID_ARGUMENT);
  kiln_error_free(error);
}

class SessionTest : public RuntimeTest {
 protected:
  void SetUp() override {
    model_ = std::make_unique<kiln::Model>(artifact_);
    kiln_error* error = nullptr;
    kiln_session_options options{2};
    ASSERT_EQ(kiln_session_create(model_->get(), &options, &session_, &error), KILN_OK);
    input_.assign(3 * 4 * 5, -1.5f);
    for (size_t i = 0; i < input_.size(); ++i) input_[i] = static_cast<float>(i) - 30.0f;
  }
  void TearDown() override { kiln_session_free(session_); }

  kiln_tensor inputTensor() {
    kiln_tensor t{};
    t.dtype = KILN_FLOAT32;
    t.rank = 3;
    t.dims[0] = 3, t.dims[1] = 4, t.dims[2] = 5;
    t.data = input_.data();
    t.bytes = input_.size() * sizeof(float);
    return t;
  }

  // Runs and returns the status and message.
  LoadResult run(std::vector<kiln_tensor> inputs, std::vector<kiln_tensor>& outputs) {
    kiln_error* error = nullptr;
    kiln_status s = kiln_session_run(session_, inputs.data(), inputs.size(), outputs.data(), outputs.size(), &error);
    LoadResult r{s, kiln_error_message(error)};
    kiln_error_free(error);
    return r;
  }

  std::unique_ptr<kiln::Model> model_;
  kiln_session* session_ = nullptr;
  std::vector<float> input_;
};

TEST_F(SessionTest, RunsIntoCallerBuffer) {
  std::vector<float> out(60, 7.0f);
  std::vector<kiln_tensor> outputs(1);
  outputs[0].data = out.data();
  outputs[0].bytes = out.size() * sizeof(float);
  LoadResult r = run({inputTensor()}, outputs);
  ASSERT_EQ(r.status, KILN_OK) << r.message;
  for (size_t i = 0; i < out.size(); ++i) EXPECT_EQ(out[i], std::max(input_[i], 0.0f)) << i;
  EXPECT_EQ(outputs[0].rank, 3);
  EXPECT_EQ(outputs[0].dims[2], 5);
}

TEST_F(SessionTest, WrongInputCountIsRejected) {
  std::vector<kiln_tensor> outputs(1);
  LoadResult r = run({}, outputs);
  EXPECT_EQ(r.status, KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(r.message, "got 0 inputs, the model takes 1");
  r = run({inputTensor(), inputTensor()}, outputs);
  EXPECT_EQ(r.status, KILN_ERROR_INVALID_ARGUMENT);
}

TEST_F(SessionTest, WrongShapeIsRejected) {
  kiln_tensor t = inputTensor();
  t.dims[2] = 6;
  std::vector<kiln_tensor> outputs(1);
  LoadResult r = run({t}, outputs);
  EXPECT_EQ(r.status, KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(r.message, "input 0 'x': shape [3x4x6], expected [3x4x5]");
  t = inputTensor();
  t.rank = 99;
  EXPECT_EQ(run({t}, outputs).status, KILN_ERROR_INVALID_ARGUMENT);
}

TEST_F(SessionTest, WrongDtypeIsRejected) {
  kiln_tensor t = inputTensor();
  t.dtype = KILN_FLOAT64;
  std::vector<kiln_tensor> outputs(1);
  LoadResult r = run({t}, outputs);
  EXPECT_EQ(r.status, KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(r.message, "input 0 'x': dtype float64, expected float32");
  t.dtype = static_cast<kiln_dtype>(99);  // no such dtype: refused by value
  r = run({t}, outputs);
  EXPECT_EQ(r.status, KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(r.message, "input 0 'x': dtype unknown, expected float32");
}

TEST_F(SessionTest, NullDataAndWrongByteCountAreRejected) {
  std::vector<kiln_tensor> outputs(1);
  kiln_tensor t = inputTensor();
  t.data = nullptr;
  LoadResult r = run({t}, outputs);
  EXPECT_EQ(r.status, KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(r.message, "input 0 'x': data is NULL");
  t = inputTensor();
  t.bytes -= 4;
  EXPECT_EQ(run({t}, outputs).status, KILN_ERROR_INVALID_ARGUMENT);
}

TEST_F(SessionTest, SmallOutputBufferIsRejected) {
  std::vector<float> out(10);
  std::vector<kiln_tensor> outputs(1);
  outputs[0].data = out.data();
  outputs[0].bytes = out.size() * sizeof(float);
  LoadResult r = run({inputTensor()}, outputs);
  EXPECT_EQ(r.status, KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(r.message.find("needs 240"), std::string::npos) << r.message;
}

TEST(RuntimeApi, NullArgumentsGiveErrorsNotCrashes) {
  kiln_error* error = nullptr;
  EXPECT_EQ(kiln_model_load(nullptr, nullptr, &error), KILN_ERROR_INVALID_ARGUMENT);
  kiln_error_free(error);
  EXPECT_EQ(kiln_session_run(nullptr, nullptr, 0, nullptr, 0, nullptr), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_model_num_inputs(nullptr), 0u);
  EXPECT_EQ(kiln_model_metadata(nullptr, "target"), nullptr);
}

TEST(Artifact, SameModelAndFlagsGiveIdenticalBytes) {
  TempDir dir;
  testing::compileOrFail(testing::exampleModel(), dir.file("a.so"));
  testing::compileOrFail(testing::exampleModel(), dir.file("b.so"));
  EXPECT_EQ(testing::readBytes(dir.file("a.so")), testing::readBytes(dir.file("b.so")));
}

// Two different models alive at once each run their own code: the runtime
// maps each artifact from its own memory file, and a second load must not be
// taken for the first one by the dynamic loader.
TEST(Artifact, TwoModelsLoadedAtOnceRunTheirOwnCode) {
  TempDir dir;
  const std::vector<std::string> cases = {"test_relu", "test_neg", "test_abs"};
  std::vector<std::unique_ptr<kiln::Model>> models;
  for (const std::string& name : cases) {
    testing::compileOrFail(testing::nodeCase(name) + "/model.onnx", dir.file(name + ".so"));
    models.push_back(std::make_unique<kiln::Model>(dir.file(name + ".so")));
  }
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string data = testing::nodeCase(cases[i]) + "/test_data_set_0/";
    auto input = tools::readTensorFile(data + "input_0.pb");
    auto expected = tools::readTensorFile(data + "output_0.pb");
    ASSERT_TRUE(input.isOk() && expected.isOk()) << cases[i];
    kiln::Session session(*models[i], 1);
    auto out = tools::runArtifact(*models[i], session, {*input});
    ASSERT_TRUE(out.isOk()) << cases[i] << ": " << out.status().message();
    EXPECT_FALSE(tools::compareTensors((*out)[0], *expected, {0, 0})) << cases[i] << " ran another model's code";
  }
}

TEST(Artifact, ConcurrentRunsFromEightThreadsAgree) {
  TempDir dir;
  testing::compileOrFail(testing::exampleModel(), dir.file("cnn.so"));
  kiln::Model model(dir.file("cnn.so"));
  kiln::Session session(model, 2);
  auto input = tools::readTensorFile(std::string(KILN_SOURCE_DIR) + "/examples/tiny_cnn/input.npy");
  ASSERT_TRUE(input.isOk()) << input.status().message();
  auto reference = tools::runArtifact(model, session, {*input});
  ASSERT_TRUE(reference.isOk()) << reference.status().message();
  std::atomic<int> mismatches{0}, failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        auto out = tools::runArtifact(model, session, {*input});
        if (!out) { ++failures; continue; }
        if (tools::compareTensors((*out)[0], (*reference)[0], {0, 0})) ++mismatches;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace
}  // namespace kiln
