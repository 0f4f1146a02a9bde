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
  // claim_ packs the loop's generation (bits 32-63), its chunk count (bits
  // 16-31) and the next chunk to claim (bits 0-15), so a claim is one
  // compare-and-swap that also proves the loop is still the one the
  // claimer saw; a chunk claimed keeps the loop (and fn_, closure_, count_)
  // alive until that chunk is done.
  static uint64_t generationOf(uint64_t claim) { return claim >> 32; }
  static int chunksOf(uint64_t claim) { return static_cast<int>((claim >> 16) & 0xffff); }
  static int nextOf(uint64_t claim) { return static_cast<int>(claim & 0xffff); }

  void workerLoop();
  // Claims and runs chunks of loop `generation` until none are left.
  void work(uint64_t generation);

  int num_threads_;
  std::vector<std::thread> workers_;
  std::mutex job_mutex_;  // held by the caller that owns the workers

  std::atomic<uint64_t> claim_{0};
  std::atomic<int> done_{0};  // chunks of the current loop finished
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
