// The kiln CLI's subcommands. Each registers its options on a CLI11 app and
// returns a process exit code (docs/cli.md lists them).
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "compiler/support/status.h"

namespace kiln::cli {

enum ExitCode {
  kExitOk = 0,
  kExitMismatch = 1,     // `check`: outputs differ from expected
  kExitInvalidInput = 2, // bad usage, malformed model/artifact/input, input values a run refuses
  kExitUnsupported = 3,  // valid, but not supported (op, feature, target)
  kExitIoError = 4,      // a file could not be read or written
  kExitInternal = 5,     // a bug in kiln
};

// Prints "kiln: error: <message>" and maps the error kind to an exit code.
int reportError(const Status& status);

void addCompileCommand(CLI::App& app, int& exit_code);
void addRunCommands(CLI::App& app, int& exit_code);  // run, check
void addInspectCommand(CLI::App& app, int& exit_code);
void addOpsCommand(CLI::App& app, int& exit_code);  // hidden: docs/ops.md
void addBenchCommand(CLI::App& app, int& exit_code);
void addProfileCommand(CLI::App& app, int& exit_code);

}  // namespace kiln::cli
