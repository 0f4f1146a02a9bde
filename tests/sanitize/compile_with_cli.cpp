// driver::compileFile for the ThreadSanitizer build of the runtime tests
// (scripts/sanitize.sh tsan): it runs the `kiln` CLI named by $KILN_CLI
// instead of linking the compiler, so that build instruments and compiles
// only the runtime and the tests, not the whole compiler (docs/security.md,
// "What CI runs"). Options the CLI cannot express are refused, never dropped.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "compiler/driver/compile.h"

extern char** environ;

namespace kiln::driver {
namespace {

std::string joinDims(const std::vector<int64_t>& dims) {
  std::string out;
  for (size_t i = 0; i < dims.size(); ++i) out += (i ? "x" : "") + std::to_string(dims[i]);
  return out;
}

// The CLI arguments for `options`, or an error naming the one it cannot pass.
Expected<std::vector<std::string>> cliArguments(const CompileOptions& options) {
  const CompileOptions defaults;
  if (options.emit != Stage::kArtifact) return unsupported("compile_with_cli: only artifacts (emit=so)");
  if (options.codegen.opt_level != options.pipeline.opt_level)
    return unsupported("compile_with_cli: codegen and pipeline opt levels differ; the CLI's -O sets both");
  if (!options.pipeline.passes.empty() || !options.pipeline.disabled.empty() ||
      !options.pipeline.print_after.empty() || !options.codegen.cuda_precision.empty() ||
      !options.codegen.precision.empty() || !options.codegen.cuda_arch.empty())
    return unsupported("compile_with_cli: pass lists and precision options are not passed to the CLI");
  std::vector<std::string> args = {"--target", options.target, "-O" + std::to_string(options.codegen.opt_level)};
  if (!options.codegen.cpu.empty()) args.insert(args.end(), {"--cpu", options.codegen.cpu});
  if (!options.codegen.features.empty()) args.push_back("--features=" + options.codegen.features);
  for (const auto& [name, dims] : options.shapes) args.insert(args.end(), {"--shape", name + "=" + joinDims(dims)});
  return args;
}

}  // namespace

Expected<CompileSummary> compileFile(const std::string& input, const std::string& output,
                                     const CompileOptions& options, std::ostream& log) {
  const char* cli = std::getenv("KILN_CLI");
  if (!cli || !*cli) return internalError("KILN_CLI is not set: it names the kiln binary that compiles the test models");
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> flags, cliArguments(options));
  std::vector<std::string> args = {cli, "compile", "-q", input, "-o", output};
  args.insert(args.end(), flags.begin(), flags.end());

  // The CLI's messages go to a file next to the output, read back on failure.
  std::string messages = output + ".log";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, messages.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  int spawned = posix_spawn(&pid, cli, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) return ioError("cannot run KILN_CLI '" + std::string(cli) + "': " + std::strerror(spawned));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  std::ifstream in(messages);
  std::stringstream text;
  text << in.rdbuf();
  std::remove(messages.c_str());
  log << text.str();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return makeError(ErrorKind::kInvalidInput, "'" + std::string(cli) + " compile " + input + "' failed (status " +
                                                   std::to_string(status) + "): " + text.str());
  CompileSummary summary;
  summary.target = options.target;
  return summary;
}

}  // namespace kiln::driver
