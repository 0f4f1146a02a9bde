// The runtime's thread pool (runtime/src/thread_pool.h) on its own: every
// index of every loop runs exactly once, whether the workers are spinning
// (loops back to back), asleep (loops further apart than their spin), or
// busy with another caller's loop; and the pool shuts down from each of
// those states. Built a second way under ThreadSanitizer
// (scripts/sanitize.sh tsan), which checks the claim and sleep protocol.
#include "thread_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

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

// The ranges fn is called with, sorted.
struct Ranges {
  static void task(void* closure, int64_t begin, int64_t end) {
    auto* self = static_cast<Ranges*>(closure);
    std::lock_guard<std::mutex> lock(self->mutex);
    self->ranges.emplace_back(begin, end);
  }
  // Whether the ranges cover [0, count) once each, in order.
  bool tile(int64_t count) {
    std::sort(ranges.begin(), ranges.end());
    int64_t next = 0;
    for (auto [begin, end] : ranges) {
      if (begin != next || end <= begin) return false;
      next = end;
    }
    return next == count;
  }
  std::mutex mutex;
  std::vector<std::pair<int64_t, int64_t>> ranges;
};

// Chunks are shares of what is left: the first a quarter of the loop (two
// threads), the last a single iteration, so that neither thread is left
// with a large chunk while the other idles.
TEST(ThreadPoolTest, ChunksShrinkToSingleIterations) {
  ThreadPool pool(2);
  for (int round = 0; round < 50; ++round) {
    Ranges r;
    pool.parallelFor(18, &Ranges::task, &r);
    ASSERT_TRUE(r.tile(18)) << "round " << round;
    EXPECT_EQ(r.ranges.front(), std::make_pair(int64_t{0}, int64_t{4})) << "round " << round;
    EXPECT_EQ(r.ranges.back(), std::make_pair(int64_t{17}, int64_t{18})) << "round " << round;
  }
}

// Past 2^31 iterations a claim counts equal ranges of them; the ranges still
// cover the loop once.
TEST(ThreadPoolTest, LoopsPast2To31IterationsAreCoveredOnce) {
  ThreadPool pool(2);
  const int64_t count = (int64_t{1} << 31) + 12345;
  Ranges r;
  pool.parallelFor(count, &Ranges::task, &r);
  EXPECT_TRUE(r.tile(count));
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
