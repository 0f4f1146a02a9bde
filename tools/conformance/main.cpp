// kiln-conformance: compiles and runs every ONNX backend test case under the
// given roots, one forked child per case, and reports pass / fail /
// unsupported per case and per folder. With --expected it guards a list of
// cases that must keep passing (the `conformance` ctest test); --markdown
// writes docs/conformance.md.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <regex>
#include <set>

#include <CLI/CLI.hpp>

#include "tools/conformance/case_runner.h"
#include "tools/conformance/report.h"

namespace kiln::conformance {
namespace {

namespace fs = std::filesystem;

constexpr int kExitOk = 0;
constexpr int kExitRegression = 1;
constexpr int kExitUsage = 2;
constexpr int kExitInterrupted = 130;

const char* const kDataDir = "/usr/share/libonnx-testdata/data";
const std::vector<std::string> kDefaultFolders = {"node", "pytorch-converted", "pytorch-operator", "simple"};

struct Args {
  std::vector<std::string> roots;
  std::string filter;
  std::string expected;
  std::string write_expected;
  std::string markdown;
  std::string side_by_side;
  bool strict = false;
  RunOptions run;
};

volatile std::sig_atomic_t g_stop = 0;
extern "C" void onStopSignal(int) { g_stop = 1; }

int usageError(const std::string& message) {
  std::cerr << "kiln-conformance: error: " << message << "\n";
  return kExitUsage;
}

// "node" for /usr/share/.../data/node and .../data/node/.
std::string folderName(const fs::path& root) {
  fs::path p = root.lexically_normal();
  return p.has_filename() ? p.filename().string() : p.parent_path().filename().string();
}

// Case folders (those holding model.onnx) under each root, sorted. The filter
// is searched in both the case name and FOLDER/CASE, so '^test_relu' and
// '^node/' both work.
Expected<std::vector<TestCase>> findCases(const std::vector<std::string>& roots,
                                          const std::optional<std::regex>& filter) {
  std::vector<TestCase> cases;
  std::set<std::string> folders;
  for (const std::string& root : roots) {
    std::string folder = folderName(root);
    if (!folders.insert(folder).second)
      return invalidInput("two roots are named '" + folder + "': case names (FOLDER/CASE) would clash");
    std::error_code ec;
    std::vector<TestCase> found;
    for (const auto& entry : fs::directory_iterator(root, ec)) {
      TestCase test{folder, entry.path().filename().string(), entry.path()};
      if (!fs::exists(entry.path() / "model.onnx")) continue;
      if (filter && !std::regex_search(test.name, *filter) && !std::regex_search(test.id(), *filter)) continue;
      found.push_back(std::move(test));
    }
    if (ec) return ioError("cannot read --root '" + root + "': " + ec.message());
    std::sort(found.begin(), found.end(), [](const TestCase& a, const TestCase& b) { return a.name < b.name; });
    cases.insert(cases.end(), found.begin(), found.end());
  }
  return cases;
}

// The command line to name as docs/conformance.md's source: what decides the
// results, and nothing that varies from machine to machine (build paths,
// jobs, timings).
std::string reproducingCommand(const Args& args, bool default_roots) {
  std::string command = "kiln-conformance";
  if (!default_roots)
    for (const std::string& root : args.roots) command += " --root " + root;
  if (!args.filter.empty()) command += " --filter '" + args.filter + "'";
  if (args.run.target != "cpu") command += " --target " + args.run.target;
  if (!args.side_by_side.empty()) command += " --side-by-side " + args.side_by_side;
  return command + " --markdown " + args.markdown;
}

// Cases on the --expected list that did not pass. A listed case that was not
// found is a regression too (the test data moved, or the case was renamed),
// unless --filter or --root left it out on purpose.
std::vector<std::string> findRegressions(const std::set<std::string>& expected, const std::vector<CaseResult>& results,
                                         const std::vector<std::string>& roots,
                                         const std::optional<std::regex>& filter) {
  std::map<std::string, const CaseResult*> by_id;
  for (const CaseResult& r : results) by_id[r.test.id()] = &r;
  std::set<std::string> folders;
  for (const std::string& root : roots) folders.insert(folderName(root));
  std::vector<std::string> regressions;
  for (const std::string& id : expected) {
    auto it = by_id.find(id);
    if (it != by_id.end()) {
      if (it->second->verdict != Verdict::kPass)
        regressions.push_back(id + ": " + std::string(verdictName(it->second->verdict)) + ": " + it->second->reason);
      continue;
    }
    std::string folder = id.substr(0, id.find('/')), name = id.substr(id.find('/') + 1);
    bool filtered_out =
        !folders.count(folder) || (filter && !std::regex_search(name, *filter) && !std::regex_search(id, *filter));
    if (!filtered_out) regressions.push_back(id + ": not found under --root " + folder);
  }
  return regressions;
}

Expected<fs::path> makeScratchDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/kiln-conformance-XXXXXX";
  if (!mkdtemp(pattern.data()))
    return ioError("cannot create a temporary folder like '" + pattern + "': " + strerror(errno));
  return fs::path(pattern);
}

int runConformance(Args args) {
  bool default_roots = args.roots.empty();
  if (default_roots)
    for (const std::string& folder : kDefaultFolders) args.roots.push_back(std::string(kDataDir) + "/" + folder);
  for (const std::string& root : args.roots)
    if (!fs::is_directory(root))
      return usageError("no test case folder '" + root + "'" +
                        (default_roots ? " (install Debian's libonnx-testdata, or pass --root)" : ""));
  std::optional<std::regex> filter;
  try {
    if (!args.filter.empty()) filter.emplace(args.filter, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return usageError("--filter '" + args.filter + "' is not a valid regular expression: " + e.what());
  }
  std::set<std::string> expected;
  if (!args.expected.empty()) {
    auto read = readExpected(args.expected);
    if (!read) return usageError(read.status().message());
    expected = read.take();
  }
  auto cases = findCases(args.roots, filter);
  if (!cases) return usageError(cases.status().message());
  if (cases->empty())
    return usageError("no test cases found" + (filter ? " matching --filter '" + args.filter + "'" : ""));

  if (!args.run.artifacts_dir.empty() && !args.run.run_only) {
    std::error_code ec;
    for (const std::string& root : args.roots) fs::create_directories(args.run.artifacts_dir / folderName(root), ec);
    if (ec) return usageError("cannot create --artifacts '" + args.run.artifacts_dir.string() + "': " + ec.message());
  }
  if (args.run.run_only && !fs::is_directory(args.run.artifacts_dir))
    return usageError("no --artifacts folder '" + args.run.artifacts_dir.string() + "' to run the cases from");
  if (args.run.compile_only) std::cout << "--compile-only: PASS means compiled; nothing runs\n";
  auto scratch = makeScratchDir();
  if (!scratch) return usageError(scratch.status().message());
  args.run.scratch_dir = *scratch;
  std::signal(SIGINT, onStopSignal);
  std::signal(SIGTERM, onStopSignal);
  auto print = [](const CaseResult& r) {
    std::cout << verdictName(r.verdict) << " " << r.test.id() << (r.reason.empty() ? "" : ": " + r.reason) << std::endl;
  };
  auto start = std::chrono::steady_clock::now();
  std::vector<CaseResult> results = runCases(*cases, args.run, print, g_stop);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::error_code ec;
  fs::remove_all(*scratch, ec);
  if (g_stop) {
    std::cerr << "kiln-conformance: interrupted; no summary or files written\n";
    return kExitInterrupted;
  }

  std::cout << "\nran " << results.size() << " cases in " << std::fixed << std::setprecision(1) << seconds
            << " s with --jobs " << args.run.jobs << "\n";
  printSummary(std::cout, results);
  if (!args.markdown.empty())
    if (Status s = writeMarkdown(args.markdown, results, reproducingCommand(args, default_roots), args.side_by_side); !s)
      return usageError(s.message());
  if (!args.write_expected.empty())
    if (Status s = writeExpected(args.write_expected, results); !s) return usageError(s.message());

  std::vector<std::string> regressions = findRegressions(expected, results, args.roots, filter);
  for (const std::string& line : regressions) std::cout << "REGRESSION " << line << "\n";
  if (!regressions.empty())
    std::cout << regressions.size() << " case(s) listed in " << args.expected << " did not pass\n";
  bool any_failed =
      std::any_of(results.begin(), results.end(), [](const CaseResult& r) { return r.verdict == Verdict::kFail; });
  return !regressions.empty() || (args.strict && any_failed) ? kExitRegression : kExitOk;
}

}  // namespace
}  // namespace kiln::conformance

int main(int argc, char** argv) {
  using namespace kiln::conformance;
  CLI::App app{"kiln-conformance: compile and check the ONNX backend test cases", "kiln-conformance"};
  Args args;
  app.add_option(
      "--root", args.roots,
      "folder of test cases (repeatable; default: node, pytorch-converted, pytorch-operator and simple under " +
          std::string(kDataDir) + ")");
  app.add_option("--filter", args.filter, "only cases whose name or FOLDER/CASE matches this regular expression");
  app.add_option("-j,--jobs", args.run.jobs, "cases to run at once")->capture_default_str()->check(CLI::Range(1, 256));
  app.add_option("--timeout", args.run.timeout_s, "seconds a case may take before it is killed and failed")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  app.add_option("--threads", args.run.threads, "threads per session (0: one per core)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  app.add_option("--expected", args.expected,
                 "cases (FOLDER/CASE a line, # comments) that must pass; exit 1 if one does not");
  app.add_option("--write-expected", args.write_expected, "write the passing cases here, sorted, for --expected");
  app.add_option("--markdown", args.markdown, "write the results as markdown here (docs/conformance.md)");
  app.add_option("--side-by-side", args.side_by_side,
                 "with --markdown: a peer's totals to include (docs/conformance-onnxruntime.md, written by "
                 "bench/ort_conformance.py)");
  app.add_flag("--strict", args.strict, "exit 1 on any failing case, not only on --expected regressions");
#ifdef KILN_CONFORMANCE_RUN_ONLY
  // The runtime-only runner: runs artifacts compiled elsewhere by
  // `kiln-conformance --compile-only --artifacts DIR`, on a machine that has
  // only the runtime (a GPU host, say).
  args.run.run_only = true;
  app.add_option("--artifacts", args.run.artifacts_dir, "folder of compiled cases (FOLDER/CASE.so) to run")->required();
#else
  app.add_option("--target", args.run.target, "compile for cpu or cuda (cuda runs need an NVIDIA GPU)")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  app.add_option("--cuda-arch", args.run.cuda_arch, "GPU architecture for --target cuda (default: sm_90)");
  app.add_option("--artifacts", args.run.artifacts_dir,
                 "keep each case's artifact here (FOLDER/CASE.so) instead of deleting it");
  app.add_flag("--compile-only", args.run.compile_only,
               "compile every case into --artifacts and run nothing (kiln-conformance-run runs them elsewhere)");
  app.add_flag("--run-only", args.run.run_only, "run the cases compiled into --artifacts, compiling nothing");
#endif
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitUsage;
  }
  if ((args.run.compile_only || args.run.run_only) && args.run.artifacts_dir.empty())
    return usageError("--compile-only and --run-only need --artifacts DIR");
  if (args.run.compile_only && args.run.run_only) return usageError("--compile-only and --run-only exclude each other");
  return runConformance(std::move(args));
}
