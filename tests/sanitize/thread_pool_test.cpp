// The runtime's thread pool (runtime/src/thread_pool.h) on its own: every
// index of every loop runs exactly once, whether the workers are spinning
// (loops back to back), asleep (loops further apart than their spin), or
// busy with another caller's loop; and the pool shuts down from each of
// those states. Built a second way under ThreadSanitizer
// (scripts/sanitize.sh tsan), which checks the claim and sleep protocol.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "thread_pool.h"

namespace kiln::runtime {
namespace {

// Counts each index's visits; fn(closure, begin, end) as generated code calls it.
struct Visits {
  explicit Visits(int64_t count) : seen(static_cast<size_t>(count)) {}
  static void task(void* closure, int64_t begin, int64_t end) {
    auto* self = static_cast<Visits*>(closure);
    for (int64_t i = begin; i < end; ++i) self->seen[static_cast<size_t>(i)].fetch_add(1, std::memory_order_relaxed);
  }
  // The first index not visited exactly once, or -1.
  int64_t firstWrong() const {
    for (size_t i = 0; i < seen.size(); ++i)
      if (seen[i].load() != 1) return static_cast<int64_t>(i);
    return -1;
  }
  std::vector<std::atomic<int>> seen;
};

TEST(ThreadPoolTest, BackToBackLoopsVisitEachIndexOnce) {
  for (int threads : {2, 3, 4}) {
    ThreadPool pool(threads);
    for (int round = 0; round < 300; ++round) {
      for (int64_t count : {1, 2, 3, 7, 64, 1000, 100003}) {
        Visits visits(count);
        pool.parallelFor(count, &Visits::task, &visits);
        ASSERT_EQ(visits.firstWrong(), -1) << threads << " threads, count " << count << ", round " << round;
      }
    }
  }
}

TEST(ThreadPoolTest, LoopsAfterTheWorkersFellAsleep) {
  ThreadPool pool(3);
  for (int round = 0; round < 20; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // longer than the workers spin
    Visits visits(5000);
    pool.parallelFor(5000, &Visits::task, &visits);
    ASSERT_EQ(visits.firstWrong(), -1) << "round " << round;
  }
}

// A chunk that takes a while makes the caller wait past its own spin, so it
// sleeps until the worker with the last chunk wakes it.
TEST(ThreadPoolTest, CallerSleepsUntilTheLastChunkIsDone) {
  ThreadPool pool(2);
  auto slow = [](void* closure, int64_t begin, int64_t end) {
    if (begin > 0) std::this_thread::sleep_for(std::chrono::milliseconds(3));
    Visits::task(closure, begin, end);
  };
  for (int round = 0; round < 10; ++round) {
    Visits visits(8);
    pool.parallelFor(8, slow, &visits);
    ASSERT_EQ(visits.firstWrong(), -1) << "round " << round;
  }
}

// Two callers on one pool: one owns the workers, the other runs its loop
// alone; both see every index once.
TEST(ThreadPoolTest, ConcurrentCallersShareThePool) {
  ThreadPool pool(3);
  std::atomic<int> failures{0};
  auto caller = [&] {
    for (int round = 0; round < 500; ++round) {
      Visits visits(777);
      pool.parallelFor(777, &Visits::task, &visits);
      if (visits.firstWrong() != -1) failures.fetch_add(1);
    }
  };
  std::thread a(caller), b(caller);
  a.join();
  b.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(ThreadPoolTest, ShutsDownWhileSpinningOrAsleep) {
  for (int wait_ms : {0, 3}) {
    auto pool = std::make_unique<ThreadPool>(4);
    Visits visits(100);
    pool->parallelFor(100, &Visits::task, &visits);
    std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
    pool.reset();  // joins the workers: a hang here fails the test by timeout
    EXPECT_EQ(visits.firstWrong(), -1);
  }
}

}  // namespace
}  // namespace kiln::runtime
