#include <chrono>
#include <fstream>
#include <iostream>

#include "compiler/driver/compile.h"
#include "tools/kiln/commands.h"

namespace kiln::cli {
namespace {

struct CompileArgs {
  std::string model;
  std::string output;
  std::string target = "cpu";
  int opt_level = 2;
  std::vector<std::string> shapes;
  std::string cpu;
  std::string features;
  std::string emit = "so";
  std::vector<std::string> passes;
  std::vector<std::string> disabled;
  std::vector<std::string> print_after;
  bool time_passes = false;
  std::string report;
  bool quiet = false;
};

Expected<driver::CompileOptions> toOptions(const CompileArgs& args) {
  driver::CompileOptions options;
  options.target = args.target;
  options.codegen.cpu = args.cpu;
  options.codegen.features = args.features;
  options.codegen.opt_level = args.opt_level;
  options.pipeline.opt_level = args.opt_level;
  options.pipeline.passes = args.passes;
  options.pipeline.disabled = {args.disabled.begin(), args.disabled.end()};
  options.pipeline.print_after = {args.print_after.begin(), args.print_after.end()};
  options.pipeline.time_passes = args.time_passes;
  for (const std::string& spec : args.shapes) {
    size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0)
      return invalidInput("--shape expects NAME=DIMS such as input=1x3x224x224, got '" + spec + "'");
    KILN_ASSIGN_OR_RETURN(auto dims, driver::parseDims(spec.substr(eq + 1)));
    options.shapes[spec.substr(0, eq)] = dims;
  }
  static const std::map<std::string, driver::Stage> kStages = {{"graph", driver::Stage::kGraph},
                                                               {"onnx", driver::Stage::kOnnx},
                                                               {"kernels", driver::Stage::kKernels},
                                                               {"llvm", driver::Stage::kLlvm},
                                                               {"obj", driver::Stage::kObject},
                                                               {"so", driver::Stage::kArtifact}};
  options.emit = kStages.at(args.emit);
  return options;
}

Status writeReport(const std::string& path, const driver::CompileSummary& s) {
  std::ofstream out(path, std::ios::trunc);
  out << "{\n  \"passes\": [";
  for (size_t i = 0; i < s.passes.size(); ++i) {
    const auto& p = s.passes[i];
    out << (i ? "," : "") << "\n    {\"name\": \"" << p.name << "\", \"nodes_before\": " << p.nodes_before
        << ", \"nodes_after\": " << p.nodes_after << ", \"ms\": " << p.ms << "}";
  }
  out << "\n  ],\n  \"kernels\": " << s.kernels << ",\n  \"flops\": " << s.flops << ",\n  \"weight_bytes\": "
      << s.weight_bytes << ",\n  \"arena_bytes\": " << s.arena_bytes << "\n}\n";
  return out ? Status::ok() : ioError("cannot write report '" + path + "'");
}

int runCompile(const CompileArgs& args) {
  auto options = toOptions(args);
  if (!options) return reportError(options.status());
  auto start = std::chrono::steady_clock::now();
  auto summary = driver::compileFile(args.model, args.output, *options, std::cerr);
  if (!summary) return reportError(summary.status());
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (!args.report.empty())
    if (Status s = writeReport(args.report, *summary); !s) return reportError(s);
  if (!args.quiet) {
    std::cerr << "kiln: compiled '" << args.model << "' -> '" << args.output << "'";
    if (!summary->target.empty()) std::cerr << " for " << summary->target.substr(0, summary->target.find(" ("));
    std::cerr << ": " << summary->kernels << " kernels, " << summary->weight_bytes << " weight bytes, "
              << summary->arena_bytes << " arena bytes, " << static_cast<int64_t>(ms) << " ms\n";
  }
  return kExitOk;
}

}  // namespace

void addCompileCommand(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<CompileArgs>();
  CLI::App* cmd = app.add_subcommand("compile", "Compile an ONNX model into a native artifact");
  cmd->add_option("model", args->model, "ONNX model file")->required();
  cmd->add_option("-o,--output", args->output, "artifact to write (model.so)")->required();
  cmd->add_option("--target", args->target, "cpu")->capture_default_str();
  cmd->add_option("-O", args->opt_level, "optimization level 0..3 (-O0 .. -O3)")->check(CLI::Range(0, 3))->capture_default_str();
  cmd->add_option("--shape", args->shapes, "pin an input's shape: NAME=1x3x224x224 (repeatable)");
  cmd->add_option("--cpu", args->cpu, "LLVM CPU name to compile for (default: this host)");
  cmd->add_option("--features", args->features, "CPU feature changes, e.g. +avx512f,-amx-tile");
  cmd->add_option("--emit", args->emit,
                  "stop after a stage: graph (text IR), onnx (optimized graph as ONNX), kernels (kernel IR), "
                  "llvm (LLVM IR), obj (object file), so (artifact)")
      ->check(CLI::IsMember({"graph", "onnx", "kernels", "llvm", "obj", "so"}))
      ->capture_default_str();
  cmd->add_option("--passes", args->passes, "run exactly these passes, in order (comma-separated)")->delimiter(',');
  cmd->add_option("--disable-pass", args->disabled, "skip a pass of the -O pipeline (repeatable)");
  cmd->add_option("--print-after", args->print_after, "print the IR after a pass, or 'all' (repeatable)");
  cmd->add_flag("--time-passes", args->time_passes, "print how long each pass took");
  cmd->add_option("--report", args->report, "write what the compiler did as JSON");
  cmd->add_flag("-q,--quiet", args->quiet, "print nothing on success");
  cmd->callback([args, &exit_code] { exit_code = runCompile(*args); });
}

}  // namespace kiln::cli
