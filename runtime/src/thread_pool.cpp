#include "thread_pool.h"

#include <algorithm>

namespace kiln::runtime {

ThreadPool::ThreadPool(int num_threads) : num_threads_(std::max(1, num_threads)) {
  for (int w = 1; w < num_threads_; ++w) workers_.emplace_back([this, w] { workerLoop(w); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::runChunk(int chunk) {
  int64_t begin = count_ * chunk / chunks_;
  int64_t end = count_ * (chunk + 1) / chunks_;
  if (begin < end) fn_(closure_, begin, end);
}

void ThreadPool::parallelFor(int64_t count, kiln_task_fn fn, void* closure) {
  if (count <= 0) return;
  std::unique_lock<std::mutex> owner(job_mutex_, std::try_to_lock);
  if (num_threads_ == 1 || count == 1 || !owner.owns_lock()) {
    fn(closure, 0, count);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    fn_ = fn;
    closure_ = closure;
    count_ = count;
    chunks_ = static_cast<int>(std::min<int64_t>(count, num_threads_));
    pending_ = chunks_ - 1;
    ++generation_;
  }
  wake_.notify_all();
  runChunk(0);
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [this] { return pending_ == 0; });
}

void ThreadPool::workerLoop(int worker) {
  uint64_t seen = 0;
  while (true) {
    std::unique_lock<std::mutex> lock(mutex_);
    wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
    if (stopping_) return;
    seen = generation_;
    if (worker >= chunks_) continue;
    lock.unlock();
    runChunk(worker);
    lock.lock();
    if (--pending_ == 0) done_.notify_one();
  }
}

void ThreadPool::parallelForThunk(void* pool, int64_t count, kiln_task_fn fn, void* closure) {
  static_cast<ThreadPool*>(pool)->parallelFor(count, fn, closure);
}

}  // namespace kiln::runtime
