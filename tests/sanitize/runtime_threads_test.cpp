// The runtime's threads end to end, written for ThreadSanitizer
// (scripts/sanitize.sh tsan) and run in every build: a model whose kernels
// use the session's thread pool (examples/tiny_cnn), run from several caller
// threads on shared and separate sessions, profiled runs next to plain ones,
// and models loaded, run and freed from several threads at once. Every output
// is compared with a single-threaded run of the same input.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <thread>

#include "kiln_runtime.hpp"
#include "tests/testing/artifact_fixture.h"

namespace kiln {
namespace {

using testing::TempDir;

// tiny_cnn: image float32[1x3x32x32] -> one float32 output.
class RuntimeThreadsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    artifact_ = dir_->file("tiny_cnn.so");
    testing::compileOrFail(testing::exampleModel(), artifact_);
  }
  static void TearDownTestSuite() { delete dir_; }

  void SetUp() override {
    model_ = std::make_unique<kiln::Model>(artifact_);
    ASSERT_EQ(model_->numInputs(), 1u);
    ASSERT_EQ(model_->numOutputs(), 1u);
    input_elems_ = elements(model_->input(0));
    output_elems_ = elements(model_->output(0));
    ASSERT_GT(input_elems_, 0);
    ASSERT_GT(output_elems_, 0);
    kiln::Session single(*model_, 1);
    for (int variant = 0; variant < kVariants; ++variant) {
      std::vector<float> out(output_elems_);
      ASSERT_EQ(run(single.get(), variant, out), KILN_OK);
      reference_.push_back(out);
    }
    ASSERT_NE(reference_[0], reference_[1]) << "the variants must give different outputs";
  }

  static int64_t elements(const kiln_tensor_info& info) {
    int64_t n = 1;
    for (int32_t d = 0; d < info.rank; ++d) n *= info.dims[d];
    return info.dtype == KILN_FLOAT32 ? n : -1;
  }

  static kiln_tensor tensor(const kiln_tensor_info& info, std::vector<float>& data) {
    kiln_tensor t{};
    t.dtype = KILN_FLOAT32;
    t.rank = info.rank;
    for (int32_t d = 0; d < info.rank; ++d) t.dims[d] = info.dims[d];
    t.data = data.data();
    t.bytes = data.size() * sizeof(float);
    return t;
  }

  // Runs input number `variant` (a deterministic pattern) into `out`.
  kiln_status run(kiln_session* session, int variant, std::vector<float>& out, std::vector<uint64_t>* kernel_ns = nullptr) {
    std::vector<float> x(input_elems_);
    for (int64_t i = 0; i < input_elems_; ++i) x[i] = static_cast<float>((i * (variant + 3)) % 17) * 0.125f - 1.0f;
    std::fill(out.begin(), out.end(), -7.0f);
    kiln_tensor input = tensor(model_->input(0), x);
    kiln_tensor output = tensor(model_->output(0), out);
    kiln_error* error = nullptr;
    kiln_status status = kernel_ns ? kiln_session_run_profiled(session, &input, 1, &output, 1, kernel_ns->data(),
                                                               kernel_ns->size(), &error)
                                   : kiln_session_run(session, &input, 1, &output, 1, &error);
    kiln_error_free(error);
    return status;
  }

  // Whether `out` is the single-threaded output of `variant`, up to the
  // rounding a different split of the work across threads may cause.
  bool matches(const std::vector<float>& out, int variant) const {
    const std::vector<float>& want = reference_[variant];
    for (int64_t e = 0; e < output_elems_; ++e)
      if (std::abs(out[e] - want[e]) > 1e-5f * (1.0f + std::abs(want[e]))) return false;
    return true;
  }

  // Runs `body(thread)` on `threads` threads and joins them.
  static void onThreads(int threads, const std::function<void(int)>& body) {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) pool.emplace_back(body, t);
    for (auto& thread : pool) thread.join();
  }

  static constexpr int kVariants = 4;
  static TempDir* dir_;
  static std::string artifact_;
  std::unique_ptr<kiln::Model> model_;
  int64_t input_elems_ = 0, output_elems_ = 0;
  std::vector<std::vector<float>> reference_;
};
TempDir* RuntimeThreadsTest::dir_ = nullptr;
std::string RuntimeThreadsTest::artifact_;

TEST_F(RuntimeThreadsTest, PooledSessionMatchesSingleThreaded) {
  kiln::Session pooled(*model_, 4);
  for (int variant = 0; variant < kVariants; ++variant) {
    std::vector<float> out(output_elems_);
    ASSERT_EQ(run(pooled.get(), variant, out), KILN_OK);
    EXPECT_TRUE(matches(out, variant)) << "input variant " << variant;
  }
}

TEST_F(RuntimeThreadsTest, CallersShareOnePooledSessionAndEachHaveTheirOwn) {
  kiln::Session shared(*model_, 2);
  std::atomic<int> failures{0}, mismatches{0};
  onThreads(4, [&](int t) {
    kiln::Session own(*model_, 2);
    std::vector<float> out(output_elems_);
    for (int i = 0; i < 40; ++i) {
      int variant = (t + i) % kVariants;
      kiln_session* session = i % 2 ? shared.get() : own.get();
      if (run(session, variant, out) != KILN_OK)
        ++failures;
      else if (!matches(out, variant))
        ++mismatches;
    }
  });
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(mismatches.load(), 0) << "of 160 runs";
}

TEST_F(RuntimeThreadsTest, ProfiledRunsBesidePlainRuns) {
  kiln::Session session(*model_, 2);
  std::atomic<int> failures{0}, untimed{0};
  onThreads(3, [&](int t) {
    std::vector<float> out(output_elems_);
    std::vector<uint64_t> kernel_ns(model_->numKernels());
    for (int i = 0; i < 20; ++i) {
      bool profiled = t == 0;
      if (run(session.get(), i % kVariants, out, profiled ? &kernel_ns : nullptr) != KILN_OK) ++failures;
      if (profiled && std::all_of(kernel_ns.begin(), kernel_ns.end(), [](uint64_t ns) { return ns == 0; })) ++untimed;
    }
  });
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(untimed.load(), 0) << "a profiled run reported no kernel time";
}

TEST_F(RuntimeThreadsTest, ThreadsLoadRunAndFreeModelsAtOnce) {
  std::atomic<int> failures{0}, mismatches{0};
  onThreads(4, [&](int t) {
    std::vector<float> out(output_elems_);
    for (int i = 0; i < 5; ++i) {
      kiln_model* model = nullptr;
      kiln_session* session = nullptr;
      kiln_error* error = nullptr;
      kiln_session_options options{2};
      if (kiln_model_load(artifact_.c_str(), &model, &error) != KILN_OK ||
          kiln_session_create(model, &options, &session, &error) != KILN_OK) {
        ++failures;
      } else if (run(session, t % kVariants, out) != KILN_OK) {
        ++failures;
      } else if (!matches(out, t % kVariants)) {
        ++mismatches;
      }
      kiln_error_free(error);
      kiln_session_free(session);
      kiln_model_free(model);
    }
  });
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(mismatches.load(), 0) << "of 20 runs";
}

}  // namespace
}  // namespace kiln
