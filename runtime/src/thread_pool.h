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

class ThreadPool {
 public:
  explicit ThreadPool(int num_threads);  // including the calling thread
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int numThreads() const { return num_threads_; }
  // Splits [0, count) into contiguous chunks, one per thread. While another
  // caller owns the pool (concurrent runs), the loop runs on the caller alone.
  void parallelFor(int64_t count, kiln_task_fn fn, void* closure);
  static void parallelForThunk(void* pool, int64_t count, kiln_task_fn fn, void* closure);

 private:
  void workerLoop(int worker);
  void runChunk(int chunk);

  int num_threads_;
  std::vector<std::thread> workers_;
  std::mutex job_mutex_;  // held by the caller that owns the workers
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stopping_ = false;
  kiln_task_fn fn_ = nullptr;
  void* closure_ = nullptr;
  int64_t count_ = 0;
  int chunks_ = 0;
};

}  // namespace kiln::runtime
