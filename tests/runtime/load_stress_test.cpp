// The runtime under load: one artifact run from 8 threads at once with every
// output checked, repeated load/run/unload without leaking (descriptors, code
// mappings; memory under LeakSanitizer in the ASan build, scripts/sanitize.sh),
// and malformed run arguments refused without running anything.
#include <dirent.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <thread>

#include "kiln_runtime.hpp"
#include "tests/testing/artifact_fixture.h"

namespace kiln {
namespace {

using testing::TempDir;

// test_add: z = x + y over float32[3x4x5].
constexpr int64_t kElems = 3 * 4 * 5;

kiln_tensor tensor(std::vector<float>& data) {
  kiln_tensor t{};
  t.dtype = KILN_FLOAT32;
  t.rank = 3;
  t.dims[0] = 3, t.dims[1] = 4, t.dims[2] = 5;
  t.data = data.data();
  t.bytes = data.size() * sizeof(float);
  return t;
}

int openDescriptors() {
  int n = 0;
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    while (::readdir(dir)) ++n;
    ::closedir(dir);
  }
  return n;
}

int artifactMappings() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  int n = 0;
  while (std::getline(maps, line)) n += line.find("kiln-artifact") != std::string::npos;
  return n;
}

class LoadStressTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    artifact_ = dir_->file("add.so");
    testing::compileOrFail(testing::nodeCase("test_add") + "/model.onnx", artifact_);
  }
  static void TearDownTestSuite() { delete dir_; }

  static TempDir* dir_;
  static std::string artifact_;
};
TempDir* LoadStressTest::dir_ = nullptr;
std::string LoadStressTest::artifact_;

// Runs x + y once on `session` into `out`; returns the status.
kiln_status runAdd(kiln_session* session, std::vector<float>& x, std::vector<float>& y, std::vector<float>& out,
                   std::string* message = nullptr) {
  kiln_tensor inputs[2] = {tensor(x), tensor(y)};
  kiln_tensor output = tensor(out);
  kiln_error* error = nullptr;
  kiln_status status = kiln_session_run(session, inputs, 2, &output, 1, &error);
  if (message) *message = kiln_error_message(error);
  kiln_error_free(error);
  return status;
}

TEST_F(LoadStressTest, LoadRunUnload200TimesLeaksNothing) {
  std::vector<float> x(kElems), y(kElems), out(kElems);
  for (int64_t i = 0; i < kElems; ++i) x[i] = static_cast<float>(i), y[i] = 0.5f;
  int fds_before = -1, maps_before = -1;
  for (int iteration = 0; iteration < 200; ++iteration) {
    kiln_model* model = nullptr;
    kiln_session* session = nullptr;
    kiln_error* error = nullptr;
    ASSERT_EQ(kiln_model_load(artifact_.c_str(), &model, &error), KILN_OK) << kiln_error_message(error);
    kiln_session_options options{2};
    ASSERT_EQ(kiln_session_create(model, &options, &session, &error), KILN_OK) << kiln_error_message(error);
    std::string message;
    ASSERT_EQ(runAdd(session, x, y, out, &message), KILN_OK) << message;
    ASSERT_EQ(out[7], 7.5f) << "iteration " << iteration;
    kiln_session_free(session);
    kiln_model_free(model);
    if (iteration == 0) {  // after the first round, whatever the process keeps for good is in place
      fds_before = openDescriptors();
      maps_before = artifactMappings();
    }
  }
  EXPECT_EQ(openDescriptors(), fds_before) << "file descriptors leaked";
  EXPECT_EQ(artifactMappings(), maps_before) << "artifact code stayed mapped after kiln_model_free";
  EXPECT_EQ(maps_before, 0);
}

TEST_F(LoadStressTest, EightThreadsThousandsOfRunsEachChecked) {
  kiln::Model model(artifact_);
  kiln::Session session(model, 2);
  // Each thread cycles through its own inputs, so outputs crossing between
  // concurrent runs (a shared arena, a mixed-up buffer) show as wrong values.
  constexpr int kThreads = 8, kRunsPerThread = 1000;
  std::atomic<int> failures{0}, mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<float> x(kElems), y(kElems), out(kElems);
      for (int run = 0; run < kRunsPerThread; ++run) {
        float base = static_cast<float>(t * 100000 + run);
        for (int64_t i = 0; i < kElems; ++i) x[i] = base, y[i] = static_cast<float>(i);
        std::fill(out.begin(), out.end(), -1.0f);
        if (runAdd(session.get(), x, y, out) != KILN_OK) {
          ++failures;
          continue;
        }
        for (int64_t i = 0; i < kElems; ++i)
          if (out[i] != base + static_cast<float>(i)) {
            ++mismatches;
            break;
          }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(mismatches.load(), 0) << "of " << kThreads * kRunsPerThread << " runs";
}

// ---- malformed run arguments ---------------------------------------------------

class BadArgumentsTest : public LoadStressTest {
 protected:
  void SetUp() override {
    model_ = std::make_unique<kiln::Model>(artifact_);
    kiln_error* error = nullptr;
    ASSERT_EQ(kiln_session_create(model_->get(), nullptr, &session_, &error), KILN_OK);
    x_.assign(kElems, 1.0f);
    y_.assign(kElems, 2.0f);
    out_.assign(kElems, 0.0f);
  }
  void TearDown() override { kiln_session_free(session_); }

  std::pair<kiln_status, std::string> run(const kiln_tensor* inputs, size_t n_inputs, kiln_tensor* outputs,
                                          size_t n_outputs) {
    kiln_error* error = nullptr;
    kiln_status status = kiln_session_run(session_, inputs, n_inputs, outputs, n_outputs, &error);
    std::string message = kiln_error_message(error);
    kiln_error_free(error);
    return {status, message};
  }

  std::unique_ptr<kiln::Model> model_;
  kiln_session* session_ = nullptr;
  std::vector<float> x_, y_, out_;
};

TEST_F(BadArgumentsTest, NullInputAndOutputArrays) {
  kiln_tensor output = tensor(out_);
  auto [status, message] = run(nullptr, 2, &output, 1);
  EXPECT_EQ(status, KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(message, "inputs is NULL but num_inputs is 2");
  kiln_tensor inputs[2] = {tensor(x_), tensor(y_)};
  std::tie(status, message) = run(inputs, 2, nullptr, 1);
  EXPECT_EQ(status, KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(
      message,
      "outputs is NULL but num_outputs is 1 (pass an array; an entry whose data is NULL has the run allocate it)");
}

TEST_F(BadArgumentsTest, WrongCounts) {
  kiln_tensor inputs[3] = {tensor(x_), tensor(y_), tensor(x_)};
  kiln_tensor output = tensor(out_);
  auto [status, message] = run(inputs, 1, &output, 1);
  EXPECT_EQ(status, KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(message, "got 1 inputs, the model takes 2");
  std::tie(status, message) = run(inputs, 3, &output, 1);
  EXPECT_EQ(message, "got 3 inputs, the model takes 2");
  std::tie(status, message) = run(inputs, 2, &output, 0);
  EXPECT_EQ(message, "got 0 outputs, the model produces 1");
}

TEST_F(BadArgumentsTest, BadRankShapeDtypeAndBuffers) {
  kiln_tensor output = tensor(out_);
  auto check = [&](auto mutate, const std::string& want) {
    kiln_tensor inputs[2] = {tensor(x_), tensor(y_)};
    mutate(inputs[1]);
    auto [status, message] = run(inputs, 2, &output, 1);
    EXPECT_EQ(status, KILN_ERROR_INVALID_ARGUMENT) << want;
    EXPECT_EQ(message, want);
  };
  check([](kiln_tensor& t) { t.rank = -1; }, "input 1 'y': shape <bad rank>, expected [3x4x5]");
  check([](kiln_tensor& t) { t.rank = KILN_MAX_RANK + 1; }, "input 1 'y': shape <bad rank>, expected [3x4x5]");
  check([](kiln_tensor& t) { t.dims[1] = -4; }, "input 1 'y': shape [3x-4x5], expected [3x4x5]");
  check([](kiln_tensor& t) { t.dtype = static_cast<kiln_dtype>(30); },
        "input 1 'y': dtype unknown, expected float32");
  check([](kiln_tensor& t) { t.bytes = 1u << 30; }, "input 1 'y': 1073741824 bytes, expected 240");
  check([](kiln_tensor& t) { t.data = nullptr; }, "input 1 'y': data is NULL");
  std::vector<float> small(3);
  kiln_tensor inputs[2] = {tensor(x_), tensor(y_)};
  kiln_tensor small_output = tensor(small);
  auto [status, message] = run(inputs, 2, &small_output, 1);
  EXPECT_EQ(status, KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(message, "output 0 'sum': buffer of 12 bytes, needs 240");
}

TEST_F(BadArgumentsTest, RuntimeAllocatedOutputIsReleasedWithKilnFree) {
  kiln_tensor inputs[2] = {tensor(x_), tensor(y_)};
  kiln_tensor output{};
  auto [status, message] = run(inputs, 2, &output, 1);
  ASSERT_EQ(status, KILN_OK) << message;
  ASSERT_NE(output.data, nullptr);
  EXPECT_EQ(output.bytes, 240u);
  EXPECT_EQ(static_cast<float*>(output.data)[59], 3.0f);
  kiln_free(output.data);
}

}  // namespace
}  // namespace kiln
