// The profiling API: the artifact lists its kernels with names, origins and
// FLOPs; a profiled run times every kernel, computes the same outputs as an
// ordinary run, and leaves concurrent ordinary runs of the session alone.
#include <atomic>
#include <cstring>
#include <thread>

#include "kiln_runtime.hpp"
#include "tests/testing/artifact_fixture.h"
#include "tools/common/tensor_files.h"

namespace kiln {
namespace {

class ProfileTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    artifact_ = dir_->file("tiny_cnn.so");
    testing::compileOrFail(testing::exampleModel(), artifact_);
  }
  static void TearDownTestSuite() { delete dir_; }

  void SetUp() override {
    model_ = std::make_unique<kiln::Model>(artifact_);
    auto input = tools::readNpy(std::string(KILN_SOURCE_DIR) + "/examples/tiny_cnn/input.npy");
    ASSERT_TRUE(input.isOk()) << input.status().message();
    input_ = std::move(*input);
  }

  kiln_tensor inputTensor() const {
    kiln_tensor t{};
    t.dtype = static_cast<kiln_dtype>(input_.dtype());
    t.rank = static_cast<int32_t>(input_.dims().size());
    std::copy(input_.dims().begin(), input_.dims().end(), t.dims);
    t.data = const_cast<std::byte*>(input_.bytes().data());
    t.bytes = input_.bytes().size();
    return t;
  }

  // Runs once into a fresh buffer and returns the first output's bytes.
  std::vector<char> runOnce(kiln::Session& session, std::vector<uint64_t>* kernel_ns) {
    std::vector<kiln_tensor> outputs(model_->numOutputs());
    for (kiln_tensor& o : outputs) o.data = nullptr;
    if (kernel_ns) session.runProfiled({inputTensor()}, outputs, *kernel_ns);
    else session.run({inputTensor()}, outputs);
    std::vector<char> bytes(static_cast<char*>(outputs[0].data), static_cast<char*>(outputs[0].data) + outputs[0].bytes);
    for (kiln_tensor& o : outputs) kiln_free(o.data);
    return bytes;
  }

  static testing::TempDir* dir_;
  static std::string artifact_;
  std::unique_ptr<kiln::Model> model_;
  ir::Tensor input_;
};
testing::TempDir* ProfileTest::dir_ = nullptr;
std::string ProfileTest::artifact_;

TEST_F(ProfileTest, ListsEveryKernelWithNameOriginAndFlops) {
  size_t n = model_->numKernels();
  ASSERT_EQ(std::to_string(n), model_->metadata("kernel_count"));
  ASSERT_GT(n, 1u);
  uint64_t flops = 0;
  for (size_t k = 0; k < n; ++k) {
    kiln_kernel_info info = model_->kernel(k);
    EXPECT_GT(std::strlen(info.name), 0u) << k;
    EXPECT_GT(std::strlen(info.origin), 0u) << k;
    flops += info.flops;
  }
  EXPECT_GT(flops, 0u);
  kiln_kernel_info info{};
  kiln_error* error = nullptr;
  EXPECT_EQ(kiln_model_kernel(model_->get(), n, &info, &error), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kiln_error_message(error)).find("out of range"), std::string::npos);
  kiln_error_free(error);
}

TEST_F(ProfileTest, ProfiledRunTimesEveryKernelAndComputesTheSameOutputs) {
  kiln::Session session(*model_, 2);
  std::vector<char> plain = runOnce(session, nullptr);
  std::vector<uint64_t> kernel_ns;
  std::vector<char> profiled = runOnce(session, &kernel_ns);
  EXPECT_EQ(plain, profiled);
  ASSERT_EQ(kernel_ns.size(), model_->numKernels());
  uint64_t total = 0;
  for (uint64_t ns : kernel_ns) total += ns;
  EXPECT_GT(total, 0u);
  // The ordinary run after a profiled one is unaffected (no hook left behind).
  EXPECT_EQ(runOnce(session, nullptr), plain);
}

TEST_F(ProfileTest, WrongKernelCountIsRejected) {
  kiln::Session session(*model_, 1);
  std::vector<kiln_tensor> inputs = {inputTensor()};
  std::vector<kiln_tensor> outputs(model_->numOutputs());
  std::vector<uint64_t> kernel_ns(model_->numKernels() + 1);
  kiln_error* error = nullptr;
  kiln_status s = kiln_session_run_profiled(session.get(), inputs.data(), 1, outputs.data(), outputs.size(),
                                            kernel_ns.data(), kernel_ns.size(), &error);
  EXPECT_EQ(s, KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kiln_error_message(error)).find("kernels"), std::string::npos) << kiln_error_message(error);
  kiln_error_free(error);
}

TEST_F(ProfileTest, ProfilingOneRunLeavesConcurrentRunsAlone) {
  kiln::Session session(*model_, 1);
  std::vector<char> want = runOnce(session, nullptr);
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        std::vector<uint64_t> kernel_ns;
        if (runOnce(session, t % 2 ? &kernel_ns : nullptr) != want) ++mismatches;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace
}  // namespace kiln
