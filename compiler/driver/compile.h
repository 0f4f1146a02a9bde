// The compile pipeline end to end: import -> pin shapes -> passes -> lower ->
// backend. The CLI, the conformance runner and the tests all enter here.
#pragma once

#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "codegen/backend.h"
#include "compiler/ir/graph.h"
#include "compiler/lower/program.h"
#include "passes/pass.h"

namespace kiln::driver {

enum class Stage { kGraph, kOnnx, kKernels, kLlvm, kObject, kArtifact };

struct CompileOptions {
  std::string target = "cpu";
  codegen::TargetOptions codegen;  // cpu, features, opt level
  passes::PipelineOptions pipeline;
  std::map<std::string, std::vector<int64_t>> shapes;  // --shape NAME=1x3x224x224
  Stage emit = Stage::kArtifact;
  // Observers for the CLI's progress display and reports; either may be empty.
  // on_stage: "import", "optimize", "lower", "codegen", as each begins.
  // on_lowered: the optimized graph and its program, once lowering succeeded.
  std::function<void(std::string_view stage)> on_stage;
  std::function<void(const ir::Model&, const lower::Program&)> on_lowered;
};

struct CompileSummary {
  std::vector<passes::PassRecord> passes;
  size_t kernels = 0;
  int64_t flops = 0;
  int64_t weight_bytes = 0;
  int64_t arena_bytes = 0;
  std::string target;  // resolved, e.g. "cpu sapphirerapids (avx512f,...)"
};

Expected<std::unique_ptr<ir::Model>> importModel(const std::string& path);

// Passes then lowering; `log` receives --print-after / --time-passes output.
Expected<lower::Program> buildProgram(ir::Model& model, const CompileOptions& options, std::ostream& log,
                                      CompileSummary* summary = nullptr);

// Compiles the ONNX file at `input` to `output` (an artifact, or the stage
// named by options.emit).
Expected<CompileSummary> compileFile(const std::string& input, const std::string& output, const CompileOptions& options,
                                     std::ostream& log);

// "1x3x224x224" -> {1, 3, 224, 224}
Expected<std::vector<int64_t>> parseDims(const std::string& text);

}  // namespace kiln::driver
