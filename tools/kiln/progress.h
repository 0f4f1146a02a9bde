// Progress of long CLI work (import, passes, lowering, codegen) on stderr.
//
// On a terminal, a single status line names the running stage and its elapsed
// time, redrawn in place and cleared when the work ends; it appears only when
// a stage takes longer than a moment. When stderr is not a terminal (a pipe,
// a CI log) nothing is printed unless --verbose, which prints one line per
// finished stage with its time. --quiet prints nothing at all.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace kiln::cli {

enum class Verbosity { kQuiet, kNormal, kVerbose };

class Progress {
 public:
  // `live`: whether the redrawn status line may be used (callers turn it off
  // while other output, such as --print-after, goes to stderr).
  Progress(std::string command, Verbosity verbosity, bool live = true);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Ends the running stage (if any) and starts `stage`.
  void stage(std::string_view stage);
  // Ends the running stage and clears the status line.
  void finish();

 private:
  using Clock = std::chrono::steady_clock;
  void endStage();
  void tick();
  void clearLine();

  std::string command_;
  Verbosity verbosity_;
  bool live_ = false;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::thread ticker_;
  bool stopping_ = false;
  bool line_shown_ = false;
  std::string stage_;
  Clock::time_point stage_start_;
};

// A readable name for a driver stage ("optimize" -> "optimizing the graph").
std::string_view describeStage(std::string_view stage);

}  // namespace kiln::cli
