// `kiln compile --report FILE.html`: one self-contained page about a
// compilation — the model, what each pass did, the optimized graph as an SVG
// picture (rendered by Graphviz `dot` when it is installed), the kernels with
// their FLOPs and bytes, and the memory plan.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "compiler/driver/compile.h"
#include "tools/kiln/calibrate.h"
#include "tools/kiln/prune_session.h"

namespace kiln::cli {

// What the report shows, captured while compiling (the graph and program do
// not outlive the driver call).
struct CompileReport {
  std::string model_path;
  std::string output_path;
  std::string options;  // the command line options that shaped the result
  std::string producer;
  std::vector<std::pair<std::string, int64_t>> opsets;
  struct TensorRow {
    std::string name, dtype, shape;
  };
  std::vector<TensorRow> inputs, outputs;
  std::map<std::string, int> op_histogram;  // of the optimized graph
  size_t nodes = 0;
  int64_t parameters = 0;  // constant elements in the optimized graph
  std::string dot;         // the optimized graph as Graphviz dot
  struct KernelRow {
    std::string name, origin;
    int64_t flops = 0, bytes = 0;  // bytes: every buffer the kernel reads or writes, once
  };
  std::vector<KernelRow> kernels;
  struct BufferRow {
    std::string name, kind, dtype, shape;
    int64_t bytes = 0, offset = -1;  // offset in the arena for intermediates
  };
  std::vector<BufferRow> buffers;
  int64_t arena_bytes = 0;
  bool lowered = false;
  driver::CompileSummary summary;
  double total_ms = 0;
  std::optional<AccuracyReport> accuracy;  // quantized compiles with data
  std::optional<PruningReport> pruning;    // --prune
};

// Fills the graph and program parts of `report` (driver's on_lowered hook).
void captureLowered(const ir::Model& model, const lower::Program& program, CompileReport& report);

// Renders the page; `dot_program` is the Graphviz binary to run ("dot").
std::string renderHtmlReport(const CompileReport& report, const std::string& dot_program = "dot");

Status writeHtmlReport(const std::string& path, const CompileReport& report);

}  // namespace kiln::cli
