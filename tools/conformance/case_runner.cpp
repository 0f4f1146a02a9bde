#include "tools/conformance/case_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>

#ifndef KILN_CONFORMANCE_RUN_ONLY
#include "compiler/driver/compile.h"
#endif
#include "tools/common/test_case.h"

namespace kiln::conformance {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// A reason must fit on one line of output, of the result pipe and of the
// markdown; the compiler's messages mention the model's full path, which says
// nothing the case name doesn't.
std::string oneLine(std::string text, const TestCase& test) {
  const std::string model_path = (test.dir / "model.onnx").string();
  const std::string context = "'" + model_path + "': ";
  for (size_t at; (at = text.find(context)) != std::string::npos;) text.erase(at, context.size());
  for (size_t at; (at = text.find(model_path)) != std::string::npos;) text.replace(at, model_path.size(), "model.onnx");
  std::replace(text.begin(), text.end(), '\n', ' ');
  std::replace(text.begin(), text.end(), '\r', ' ');
  constexpr size_t kMaxChars = 600;
  if (text.size() > kMaxChars) text = text.substr(0, kMaxChars) + "...";
  return text;
}

std::string encode(const CaseResult& result);
bool decode(const std::string& line, CaseResult& result);

// --artifacts: where a case's artifact, or the verdict of a case that did
// not compile, is kept.
fs::path keptPath(const TestCase& test, const RunOptions& options, const char* extension) {
  return options.artifacts_dir / test.folder / (test.name + extension);
}

CaseResult readKeptVerdict(const TestCase& test, const RunOptions& options) {
  CaseResult result{test, Verdict::kFail, ""};
  std::ifstream in(keptPath(test, options, ".txt"));
  std::string line;
  if (!std::getline(in, line) || !decode(line + "\n", result))
    result = {test, Verdict::kFail, "no artifact for this case in --artifacts " + options.artifacts_dir.string()};
  return result;
}

#ifndef KILN_CONFORMANCE_RUN_ONLY
// Compiles the case to `artifact`; a result when it did not compile.
std::optional<CaseResult> compileCase(const TestCase& test, const fs::path& artifact, const RunOptions& options) {
  std::ostream no_log(nullptr);  // pass logging is off by default; drop anything else
  driver::CompileOptions compile_options;
  compile_options.target = options.target;
  compile_options.codegen.cuda_arch = options.cuda_arch;
  auto compiled = driver::compileFile((test.dir / "model.onnx").string(), artifact.string(), compile_options, no_log);
  if (compiled) return std::nullopt;
  // Only the compiler's own "not handled yet" counts as unsupported; an
  // unsupported error later (loading, running) is a failure to explain.
  bool unsupported = compiled.status().kind() == ErrorKind::kUnsupported;
  CaseResult result{test, unsupported ? Verdict::kUnsupported : Verdict::kFail,
                    (unsupported ? "" : "compile: ") + compiled.status().message()};
  if (!options.artifacts_dir.empty()) std::ofstream(keptPath(test, options, ".txt")) << encode(result);
  return result;
}
#endif

// Everything that may crash or hang: compile, load, run, compare. Runs in the
// child.
CaseResult checkCase(const TestCase& test, const fs::path& scratch_artifact, const RunOptions& options) {
  CaseResult result{test, Verdict::kFail, ""};
  fs::path artifact = options.artifacts_dir.empty() ? scratch_artifact : keptPath(test, options, ".so");
  if (options.run_only) {
    if (!fs::exists(artifact)) return readKeptVerdict(test, options);
  } else {
#ifndef KILN_CONFORMANCE_RUN_ONLY
    if (auto failed = compileCase(test, artifact, options)) return *failed;
    if (options.compile_only) return {test, Verdict::kPass, ""};
#endif
  }
  auto model = tools::loadArtifact(artifact.string());
  if (!model) {
    result.reason = "load: " + model.status().message();
    return result;
  }
  try {
    kiln::Session session(**model, options.threads);
    auto checked = tools::checkTestCase(**model, session, test.dir, options.tolerance);
    if (!checked)
      result.reason = "run: " + checked.status().message();
    else if (*checked)
      result.reason = **checked;
    else
      result.verdict = Verdict::kPass;
  } catch (const kiln::Error& e) {
    result.reason = std::string("session: ") + e.what();
  }
  return result;
}

// The child's one line on the pipe: a verdict letter, a space, the reason.
std::string encode(const CaseResult& result) {
  char letter = result.verdict == Verdict::kPass ? 'P' : result.verdict == Verdict::kUnsupported ? 'U' : 'F';
  return std::string(1, letter) + " " + oneLine(result.reason, result.test) + "\n";
}

bool decode(const std::string& line, CaseResult& result) {
  if (line.size() < 2 || line[1] != ' ' || line.back() != '\n') return false;
  switch (line[0]) {
    case 'P': result.verdict = Verdict::kPass; break;
    case 'F': result.verdict = Verdict::kFail; break;
    case 'U': result.verdict = Verdict::kUnsupported; break;
    default: return false;
  }
  result.reason = line.substr(2, line.size() - 3);
  return true;
}

fs::path logPath(const RunOptions& options, size_t index) {
  return options.scratch_dir / (std::to_string(index) + ".log");
}

[[noreturn]] void childMain(const TestCase& test, size_t index, int result_fd, const RunOptions& options) {
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  // Keep the parent's one-line-per-case output clean; stderr is kept in a
  // log so that a crash can be explained by its last words.
  int null_fd = open("/dev/null", O_WRONLY);
  int log_fd = open(logPath(options, index).c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (null_fd >= 0) dup2(null_fd, STDOUT_FILENO);
  if (log_fd >= 0) dup2(log_fd, STDERR_FILENO);
  fs::path artifact = options.scratch_dir / (std::to_string(index) + ".so");
  std::string line;
  try {
    line = encode(checkCase(test, artifact, options));
  } catch (const std::exception& e) {
    line = encode({test, Verdict::kFail, std::string("internal error: ") + e.what()});
  }
  std::error_code ec;
  fs::remove(artifact, ec);
  for (size_t done = 0; done < line.size();) {
    ssize_t n = write(result_fd, line.data() + done, line.size() - done);
    if (n <= 0 && errno != EINTR) break;
    if (n > 0) done += static_cast<size_t>(n);
  }
  // No static destructors: the result is out, and LLVM's teardown is no part
  // of the case.
  _exit(0);
}

// The last non-empty line a crashed child wrote to stderr (an assertion's
// text, say), or "".
std::string lastLogLine(const fs::path& path) {
  std::ifstream in(path);
  std::string line, last;
  while (std::getline(in, line))
    if (line.find_first_not_of(" \t\r") != std::string::npos) last = line;
  return last;
}

struct Child {
  pid_t pid = -1;
  int fd = -1;  // read end of the result pipe
  size_t index = 0;
  Clock::time_point deadline;
  std::string received;
};

class Scheduler {
 public:
  Scheduler(const std::vector<TestCase>& cases, const RunOptions& options,
            const std::function<void(const CaseResult&)>& on_done)
      : cases_(cases), options_(options), on_done_(on_done), results_(cases.size()) {}

  std::vector<CaseResult> run(const volatile std::sig_atomic_t& stop);

 private:
  bool start(size_t index);
  void waitForEvents();
  void reap(Child& child, bool timed_out);
  void finish(size_t index, CaseResult result);

  const std::vector<TestCase>& cases_;
  const RunOptions& options_;
  const std::function<void(const CaseResult&)>& on_done_;
  std::vector<CaseResult> results_;
  std::vector<Child> running_;
};

std::vector<CaseResult> Scheduler::run(const volatile std::sig_atomic_t& stop) {
  size_t next = 0;
  while ((next < cases_.size() || !running_.empty()) && !stop) {
    while (running_.size() < static_cast<size_t>(options_.jobs) && next < cases_.size()) {
      if (!start(next))
        finish(next, {cases_[next], Verdict::kFail, std::string("could not start a child: ") + strerror(errno)});
      ++next;
    }
    if (!running_.empty()) waitForEvents();
  }
  for (Child& child : running_) {  // interrupted: leave no orphans behind
    kill(child.pid, SIGKILL);
    waitpid(child.pid, nullptr, 0);
    close(child.fd);
  }
  return results_;
}

bool Scheduler::start(size_t index) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return false;
  std::cout.flush();  // or the child inherits, and may repeat, buffered output
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return false;
  }
  if (pid == 0) {
    close(fds[0]);
    childMain(cases_[index], index, fds[1], options_);
  }
  close(fds[1]);
  running_.push_back({pid, fds[0], index, Clock::now() + std::chrono::seconds(options_.timeout_s), ""});
  return true;
}

// Sleeps until a child's pipe has data or closes (the child exited), or the
// nearest deadline passes; then reaps whatever finished.
void Scheduler::waitForEvents() {
  Clock::time_point nearest = running_.front().deadline;
  std::vector<pollfd> fds;
  for (const Child& child : running_) {
    fds.push_back({child.fd, POLLIN, 0});
    nearest = std::min(nearest, child.deadline);
  }
  auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(nearest - Clock::now()).count();
  int ready = poll(fds.data(), fds.size(), static_cast<int>(std::clamp<int64_t>(wait_ms + 1, 0, 60'000)));
  if (ready < 0) return;  // EINTR: the caller checks `stop` and comes back
  std::vector<Child> still_running;
  for (size_t i = 0; i < running_.size(); ++i) {
    Child& child = running_[i];
    bool closed = false;
    if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
      char buffer[4096];
      ssize_t n = read(child.fd, buffer, sizeof buffer);
      if (n > 0) child.received.append(buffer, static_cast<size_t>(n));
      closed = n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN);
    }
    if (closed)
      reap(child, false);
    else if (Clock::now() >= child.deadline)
      reap(child, true);
    else
      still_running.push_back(std::move(child));
  }
  running_ = std::move(still_running);
}

void Scheduler::reap(Child& child, bool timed_out) {
  if (timed_out) kill(child.pid, SIGKILL);
  int status = 0;
  while (waitpid(child.pid, &status, 0) < 0 && errno == EINTR) {
  }
  close(child.fd);
  CaseResult result{cases_[child.index], Verdict::kFail, ""};
  fs::path log = logPath(options_, child.index);
  std::string last_words = lastLogLine(log);
  std::error_code ec;
  fs::remove(log, ec);
  fs::remove(options_.scratch_dir / (std::to_string(child.index) + ".so"), ec);
  std::string hint = last_words.empty() ? "" : " (last stderr line: " + last_words + ")";
  if (timed_out) {
    result.reason = "timed out after " + std::to_string(options_.timeout_s) + " s";
  } else if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char* abbrev = sigabbrev_np(sig);
    result.reason =
        "crashed with SIG" + std::string(abbrev ? abbrev : std::to_string(sig)) + " (" + strsignal(sig) + ")" + hint;
  } else if (!decode(child.received, result)) {
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    result.reason = "the child exited with status " + std::to_string(code) + " without a result" + hint;
  }
  result.reason = oneLine(result.reason, result.test);
  finish(child.index, std::move(result));
}

void Scheduler::finish(size_t index, CaseResult result) {
  on_done_(result);
  results_[index] = std::move(result);
}

}  // namespace

std::vector<CaseResult> runCases(const std::vector<TestCase>& cases, const RunOptions& options,
                                 const std::function<void(const CaseResult&)>& on_done,
                                 const volatile std::sig_atomic_t& stop) {
  return Scheduler(cases, options, on_done).run(stop);
}

std::string_view verdictName(Verdict verdict) {
  switch (verdict) {
    case Verdict::kPass: return "PASS";
    case Verdict::kFail: return "FAIL";
    case Verdict::kUnsupported: return "UNSUPPORTED";
  }
  return "FAIL";
}

}  // namespace kiln::conformance
