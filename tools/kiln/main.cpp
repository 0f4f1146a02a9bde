// kiln: compile ONNX models to native artifacts, and run, check and inspect them.
#include <iostream>

#include "tools/kiln/commands.h"

namespace kiln::cli {

int reportError(const Status& status) {
  std::cerr << "kiln: error: " << status.message() << "\n";
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
  app.set_version_flag("--version", "kiln " KILN_VERSION);
  int exit_code = kiln::cli::kExitOk;
  kiln::cli::addCompileCommand(app, exit_code);
  kiln::cli::addRunCommands(app, exit_code);
  kiln::cli::addInspectCommand(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kiln::cli::kExitInvalidInput;
  }
  return exit_code;
}
