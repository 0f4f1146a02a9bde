#include "tools/kiln/progress.h"

#include <unistd.h>

#include <cstdio>

namespace kiln::cli {
namespace {

// Work shorter than this never draws a status line (no flicker on fast runs).
constexpr auto kShowAfter = std::chrono::milliseconds(300);
constexpr auto kRedrawEvery = std::chrono::milliseconds(100);

}  // namespace

std::string_view describeStage(std::string_view stage) {
  if (stage == "import") return "importing the model";
  if (stage == "optimize") return "optimizing the graph";
  if (stage == "lower") return "lowering to kernels";
  if (stage == "codegen") return "generating and linking machine code";
  return stage;
}

Progress::Progress(std::string command, Verbosity verbosity, bool live)
    : command_(std::move(command)), verbosity_(verbosity) {
  live_ = live && verbosity != Verbosity::kQuiet && isatty(STDERR_FILENO) == 1;
  if (live_) ticker_ = std::thread([this] { tick(); });
}

Progress::~Progress() {
  finish();
  if (ticker_.joinable()) {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    ticker_.join();
  }
}

void Progress::stage(std::string_view stage) {
  std::lock_guard lock(mutex_);
  endStage();
  stage_ = stage;
  stage_start_ = Clock::now();
}

void Progress::finish() {
  std::lock_guard lock(mutex_);
  endStage();
  clearLine();
}

// Requires: mutex_ held.
void Progress::endStage() {
  if (stage_.empty()) return;
  if (verbosity_ == Verbosity::kVerbose) {
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - stage_start_).count();
    clearLine();
    std::fprintf(stderr, "%s: %-40s %10.1f ms\n", command_.c_str(), std::string(describeStage(stage_)).c_str(), ms);
  }
  stage_.clear();
}

// Requires: mutex_ held.
void Progress::clearLine() {
  if (!line_shown_) return;
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
  line_shown_ = false;
}

void Progress::tick() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, kRedrawEvery);
    if (stopping_ || stage_.empty()) continue;
    auto elapsed = Clock::now() - stage_start_;
    if (elapsed < kShowAfter) continue;
    double seconds = std::chrono::duration<double>(elapsed).count();
    std::fprintf(stderr, "\r\033[K%s: %s... %.1fs", command_.c_str(), std::string(describeStage(stage_)).c_str(),
                 seconds);
    std::fflush(stderr);
    line_shown_ = true;
  }
}

}  // namespace kiln::cli
