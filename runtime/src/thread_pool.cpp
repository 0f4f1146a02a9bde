#include "thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace kiln::runtime {
namespace {

// How long a thread spins for the next event before it sleeps. Long enough
// to cover the gaps between kernels of one run, short enough that an idle
// session gives its cores back quickly.
constexpr std::chrono::microseconds kSpin(500);
// A chunk takes 1 / (kShare x threads) of the units left.
constexpr int64_t kShare = 2;

void pause() {
#if defined(__x86_64__)
  _mm_pause();
#endif
}

// Spins until `ready()` or kSpin has passed; true when ready.
template <typename Ready>
bool spinUntil(Ready ready) {
  auto deadline = std::chrono::steady_clock::now() + kSpin;
  for (int i = 0;; ++i) {
    if (ready()) return true;
    pause();
    if ((i & 255) == 255 && std::chrono::steady_clock::now() > deadline) return ready();
  }
}

}  // namespace

ThreadPool::ThreadPool(int num_threads) : num_threads_(std::max(1, num_threads)) {
  for (int w = 1; w < num_threads_; ++w) workers_.emplace_back([this] { workerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_.store(true);
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
}

int64_t ThreadPool::unitStart(int64_t unit, int64_t units) const {
  if (units == count_) return unit;
  return static_cast<int64_t>(static_cast<__int128>(count_) * unit / units);
}

void ThreadPool::work(uint64_t generation) {
  uint64_t claim = claim_.load(std::memory_order_acquire);
  while (generationOf(claim) == generation && nextOf(claim) < unitsOf(claim)) {
    const int64_t units = unitsOf(claim), next = nextOf(claim);
    const int64_t size = std::max<int64_t>(1, (units - next) / (kShare * num_threads_));
    if (!claim_.compare_exchange_weak(claim, claim + static_cast<uint64_t>(size), std::memory_order_acq_rel,
                                      std::memory_order_acquire))
      continue;  // `claim` now holds the current value
    fn_(closure_, unitStart(next, units), unitStart(next + size, units));
    if (done_.fetch_add(size) + size == units && caller_sleeping_.load()) {  // seq_cst, against the caller's sleep
      std::lock_guard<std::mutex> lock(mutex_);
      finished_.notify_one();
    }
    claim = claim_.load(std::memory_order_acquire);
  }
}

void ThreadPool::parallelFor(int64_t count, kiln_task_fn fn, void* closure) {
  if (count <= 0) return;
  std::unique_lock<std::mutex> owner(job_mutex_, std::try_to_lock);
  if (num_threads_ == 1 || count == 1 || !owner.owns_lock()) {
    fn(closure, 0, count);
    return;
  }
  // The previous loop is over (every chunk done), so no thread reads these now.
  fn_ = fn;
  closure_ = closure;
  count_ = count;
  const int64_t units = std::min(count, kMaxUnits);
  done_.store(0, std::memory_order_relaxed);
  // 1 .. 2^24 - 1, wrapping past 0 (a worker starts having seen 0).
  const uint64_t generation = generationOf(claim_.load(std::memory_order_relaxed)) % 0xffffff + 1;
  claim_.store(generation << 40 | static_cast<uint64_t>(units) << 20);  // seq_cst: before the check below
  if (sleeping_workers_.load() > 0) {
    { std::lock_guard<std::mutex> lock(mutex_); }
    wake_.notify_all();
  }
  work(generation);
  auto finished = [&] { return done_.load() == units; };
  if (spinUntil(finished)) return;
  std::unique_lock<std::mutex> lock(mutex_);
  // seq_cst: stored before the check, as the last chunk's finisher adds to
  // done_ before it reads this, so one of the two sees the other.
  caller_sleeping_.store(true);
  finished_.wait(lock, finished);
  caller_sleeping_.store(false);
}

void ThreadPool::workerLoop() {
  uint64_t seen = 0;
  auto published = [&] { return stopping_.load() || generationOf(claim_.load()) != seen; };
  while (true) {
    if (!spinUntil(published)) {
      std::unique_lock<std::mutex> lock(mutex_);
      sleeping_workers_.fetch_add(1);  // seq_cst: before the check, as the caller stores claim_ before reading this
      wake_.wait(lock, published);
      sleeping_workers_.fetch_sub(1);
    }
    if (stopping_.load()) return;
    seen = generationOf(claim_.load(std::memory_order_acquire));
    work(seen);
  }
}

void ThreadPool::parallelForThunk(void* pool, int64_t count, kiln_task_fn fn, void* closure) {
  static_cast<ThreadPool*>(pool)->parallelFor(count, fn, closure);
}

}  // namespace kiln::runtime
