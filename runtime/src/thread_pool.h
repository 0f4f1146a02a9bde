// A fixed set of worker threads that run generated parallel loops.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "exec_context.h"

namespace kiln::runtime {

// One parallel loop at a time: the caller publishes it, then it and the
// workers claim chunks of [0, count) until none are left.
//
// A model runs tens to hundreds of parallel kernels back to back, many only
// a few microseconds long, so waking a sleeping thread for each (a futex
// wake-up: 30-150 us on a virtual machine) would cost more than the kernel.
// Workers therefore spin for a while (kSpin) after each loop before they
// sleep, and the caller spins while it waits for the last chunk. Chunks are
// claimed, not assigned, so a worker that wakes late only leaves more of the
// loop to the others instead of holding up the kernel.
//
// A chunk is a share of what is left (guided scheduling): 1 / (2 x threads)
// of the remaining iterations, at least one. The first claims are large, so
// a loop costs a few claims per thread, and the last are single iterations,
// so the threads finish together: with equal chunks fixed in advance (eight
// for two threads), a loop of 18 tasks gave one thread 10 and the other 8.
class ThreadPool {
 public:
  explicit ThreadPool(int num_threads);  // including the calling thread
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int numThreads() const { return num_threads_; }
  // Runs fn(closure, begin, end) over chunks covering [0, count), on this
  // thread and the workers. While another caller owns the pool (concurrent
  // runs), the loop runs on the caller alone.
  void parallelFor(int64_t count, kiln_task_fn fn, void* closure);
  static void parallelForThunk(void* pool, int64_t count, kiln_task_fn fn, void* closure);

 private:
  // claim_ packs the loop's generation (bits 40-63), its unit count (bits
  // 20-39) and the next unit to claim (bits 0-19), so a claim is one
  // compare-and-swap that also proves the loop is still the one the claimer
  // saw, and everything a claimer computes its chunk from comes from that
  // one word; a chunk claimed keeps the loop (and fn_, closure_, count_)
  // alive until that chunk is done. Units are the iterations, or equal
  // ranges of them past kMaxUnits.
  static constexpr int64_t kMaxUnits = (int64_t{1} << 20) - 1;
  static uint64_t generationOf(uint64_t claim) { return claim >> 40; }
  static int64_t unitsOf(uint64_t claim) { return static_cast<int64_t>((claim >> 20) & 0xfffff); }
  static int64_t nextOf(uint64_t claim) { return static_cast<int64_t>(claim & 0xfffff); }
  int64_t unitStart(int64_t unit, int64_t units) const;

  void workerLoop();
  // Claims and runs chunks of loop `generation` until none are left.
  void work(uint64_t generation);

  int num_threads_;
  std::vector<std::thread> workers_;
  std::mutex job_mutex_;  // held by the caller that owns the workers

  std::atomic<uint64_t> claim_{0};
  std::atomic<int64_t> done_{0};  // units of the current loop finished
  kiln_task_fn fn_ = nullptr;
  void* closure_ = nullptr;
  int64_t count_ = 0;

  // Sleeping: workers wait on wake_ for a new generation, the caller on
  // finished_ for the last chunk; each side counts itself in before it
  // checks, so a notify is never lost.
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable finished_;
  std::atomic<int> sleeping_workers_{0};
  std::atomic<bool> caller_sleeping_{false};
  std::atomic<bool> stopping_{false};
};

}  // namespace kiln::runtime
