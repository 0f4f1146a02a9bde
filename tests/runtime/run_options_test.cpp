// kiln_session_run_with on a CPU artifact: no options and host memory run
// exactly as kiln_session_run does; device memory is refused as unsupported,
// naming the target, before anything runs; malformed options are refused
// naming what is wrong. (Device memory on a GPU: cuda_runtime_test.)
#include <cstring>

#include "kiln_runtime.hpp"
#include "tests/testing/artifact_fixture.h"
#include "tools/common/tensor_files.h"

namespace kiln {
namespace {

class RunOptionsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    artifact_ = dir_->file("tiny_cnn.so");
    testing::compileOrFail(testing::exampleModel(), artifact_);
  }
  static void TearDownTestSuite() { delete dir_; }

  void SetUp() override {
    model_ = std::make_unique<Model>(artifact_);
    session_ = std::make_unique<Session>(*model_, 1);
    auto input = tools::readNpy(std::string(KILN_SOURCE_DIR) + "/examples/tiny_cnn/input.npy");
    ASSERT_TRUE(input.isOk()) << input.status().message();
    input_ = std::move(*input);
    in_.dtype = static_cast<kiln_dtype>(input_.dtype());
    in_.rank = static_cast<int32_t>(input_.dims().size());
    std::copy(input_.dims().begin(), input_.dims().end(), in_.dims);
    in_.data = const_cast<std::byte*>(input_.bytes().data());
    in_.bytes = input_.bytes().size();
  }

  // Runs with `options` into a fresh caller buffer; the status and message.
  std::pair<kiln_status, std::string> runWith(const kiln_run_options* options, std::vector<float>& result) {
    kiln_tensor_info info = model_->output(0);
    size_t elems = 1;
    for (int32_t d = 0; d < info.rank; ++d) elems *= static_cast<size_t>(info.dims[d]);
    result.assign(elems, -1.0f);
    kiln_tensor out{};
    out.data = result.data();
    out.bytes = elems * sizeof(float);
    kiln_error* error = nullptr;
    kiln_status status = kiln_session_run_with(session_->get(), &in_, 1, &out, 1, options, &error);
    std::string message = error ? kiln_error_message(error) : "";
    kiln_error_free(error);
    return {status, message};
  }

  static testing::TempDir* dir_;
  static std::string artifact_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Session> session_;
  ir::Tensor input_;
  kiln_tensor in_{};
};

testing::TempDir* RunOptionsTest::dir_ = nullptr;
std::string RunOptionsTest::artifact_;

TEST_F(RunOptionsTest, HostMemoryRunsAsPlainRun) {
  std::vector<float> plain, with_null, with_host;
  ASSERT_EQ(runWith(nullptr, with_null).first, KILN_OK);
  kiln_run_options host{};
  ASSERT_EQ(runWith(&host, with_host).first, KILN_OK);
  std::vector<kiln_tensor> out(1);
  out[0].data = nullptr;
  session_->run({in_}, out);
  plain.assign(static_cast<float*>(out[0].data), static_cast<float*>(out[0].data) + out[0].bytes / sizeof(float));
  kiln_free(out[0].data);
  EXPECT_EQ(with_null, plain);
  EXPECT_EQ(with_host, plain);
}

TEST_F(RunOptionsTest, DeviceMemoryOnACpuArtifactIsUnsupported) {
  for (auto [in_memory, out_memory] : {std::pair{KILN_MEMORY_DEVICE, KILN_MEMORY_DEVICE},
                                       std::pair{KILN_MEMORY_HOST, KILN_MEMORY_DEVICE},
                                       std::pair{KILN_MEMORY_DEVICE, KILN_MEMORY_HOST}}) {
    kiln_run_options options{};
    options.input_memory = in_memory;
    options.output_memory = out_memory;
    std::vector<float> result;
    auto [status, message] = runWith(&options, result);
    EXPECT_EQ(status, KILN_ERROR_UNSUPPORTED);
    EXPECT_NE(message.find("device memory needs a CUDA artifact; this one targets cpu"), std::string::npos) << message;
    EXPECT_EQ(result[0], -1.0f) << "the refused run wrote its output";
  }
}

TEST_F(RunOptionsTest, MalformedOptionsAreRefused) {
  kiln_run_options bad_kind{};
  bad_kind.input_memory = static_cast<kiln_memory>(7);
  std::vector<float> result;
  auto [status, message] = runWith(&bad_kind, result);
  EXPECT_EQ(status, KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(message.find("memory kind 7"), std::string::npos) << message;

  kiln_run_options async_host{};
  async_host.async = 1;
  std::tie(status, message) = runWith(&async_host, result);
  EXPECT_EQ(status, KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(message.find("async runs need inputs and outputs in device memory"), std::string::npos) << message;
  EXPECT_EQ(kiln_session_run_with(nullptr, &in_, 1, nullptr, 0, &async_host, nullptr), KILN_ERROR_INVALID_ARGUMENT);
}

}  // namespace
}  // namespace kiln
