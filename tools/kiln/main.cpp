// kiln: compile ONNX models to native artifacts, and run, check, inspect, benchmark and profile them.
#include <iostream>

#include "tools/kiln/commands.h"
#include "tools/kiln/escape.h"

namespace kiln::cli {

int reportError(const Status& status) {
  std::cerr << "kiln: error: " << oneLine(status.message()) << "\n";
  switch (status.kind()) {
    case ErrorKind::kInvalidInput: return kExitInvalidInput;
    case ErrorKind::kUnsupported: return kExitUnsupported;
    case ErrorKind::kIO: return kExitIoError;
    case ErrorKind::kInternal: return kExitInternal;
  }
  return kExitInternal;
}

}  // namespace kiln::cli

int main(int argc, char** argv) {
  CLI::App app{"kiln: an ahead-of-time compiler for ONNX models", "kiln"};
  app.require_subcommand(1);
  app.footer(
      "Exit codes: 0 success; 1 `check` found a mismatch; 2 bad usage or malformed input (model, artifact, tensor "
      "file, or input values a run refuses: a run-time check, a size too large to allocate); 3 valid but "
      "unsupported (an op, a CPU feature, a target); 4 a file could not be read or written; 5 an internal error.");
  app.set_version_flag("--version", "kiln " KILN_VERSION);
  int exit_code = kiln::cli::kExitOk;
  kiln::cli::addCompileCommand(app, exit_code);
  kiln::cli::addRunCommands(app, exit_code);
  kiln::cli::addInspectCommand(app, exit_code);
  kiln::cli::addOpsCommand(app, exit_code);
  kiln::cli::addBenchCommand(app, exit_code);
  kiln::cli::addProfileCommand(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kiln::cli::kExitInvalidInput;
  }
  return exit_code;
}
