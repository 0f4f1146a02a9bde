// Graph passes: one class per file, registered by name, run by a pipeline
// declared per optimization level in pipeline.cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "compiler/ir/graph.h"

namespace kiln::passes {

class Pass {
 public:
  virtual ~Pass() = default;
  virtual std::string_view name() const = 0;
  virtual std::string_view summary() const = 0;
  // Rewrites the model; returns whether anything changed.
  virtual Expected<bool> run(ir::Model& model) = 0;
};

struct PassInfo {
  std::string_view name;
  std::string_view summary;
  std::function<std::unique_ptr<Pass>()> create;
};

// Every pass Kiln has, by name.
const std::vector<PassInfo>& allPasses();
const PassInfo* findPass(std::string_view name);

// The pass names run at -O0..-O3, in order.
std::vector<std::string> pipelineFor(int opt_level);

struct PipelineOptions;

// Passes over the lowered program (kernel IR) rather than the graph, run by
// the driver after lowering ("fuse-kernels", "plan-in-place"). They share the
// graph passes' names on the command line: --passes, --disable-pass and
// --print-after.
bool isProgramPass(std::string_view name);
// Whether program pass `name` runs: listed by --passes or by the -O pipeline,
// and not disabled.
bool programPassEnabled(const PipelineOptions& options, std::string_view name);

struct QuantizeSpec;  // passes/quantize.h
struct PruneSpec;     // passes/prune.h

struct PipelineOptions {
  int opt_level = 2;
  std::vector<std::string> passes;        // replaces the -O pipeline when non-empty
  std::set<std::string> disabled;         // --disable-pass
  std::set<std::string> print_after;      // --print-after (or "all")
  bool time_passes = false;
  // The -O pipeline's layout pass (channels-last) runs only when this is
  // set: the driver sets it for the CPU and CUDA targets unless the graph is
  // written back as ONNX. Listed in `passes`, it runs regardless.
  bool channels_last = false;
  // Whether the -O pipeline may run the passes that write Kiln's own ops
  // (domain kiln) in place of ONNX ops the model's opset lacks
  // (recognize-layer-norm, recognize-gelu): the driver clears it when the
  // graph is written back as ONNX. Listed in `passes`, they run regardless.
  bool kiln_ops = true;
  // Whether the -O pipeline may compute convolutions with Winograd's
  // transforms (winograd-conv): the driver clears it under --precision bf16,
  // where the direct kernel's bf16 dot products (or AMX tiles) are faster
  // than a float32 product, and for CUDA, whose convolutions are cuBLASLt
  // GEMMs on tensor cores. Listed in `passes`, it runs regardless.
  bool winograd = true;
  // Whether the -O pipeline may write attention as one kiln.Attention
  // (recognize-attention): the driver sets it for the CPU, whose backend runs
  // that kernel head by head; CUDA runs the scores and the context as
  // cuBLASLt GEMMs. Listed in `passes`, it runs regardless.
  bool attention = true;
  // --quantize: run as the "quantize" step (after fold-affine at -O1 and
  // above; first at -O0 or when --passes leaves it out).
  std::shared_ptr<const QuantizeSpec> quantize;
  // --prune: run as the "prune" step (after fold-affine, before quantize at
  // -O1 and above; first at -O0 or when --passes leaves it out).
  std::shared_ptr<const PruneSpec> prune;
};

struct PassRecord {
  std::string name;
  size_t nodes_before = 0;
  size_t nodes_after = 0;
  double ms = 0;
  bool changed = false;
  uint64_t rss_bytes = 0;  // the process's resident memory once the pass finished (0: unknown)
};

// Runs the pipeline; --print-after's IR goes to `log`. Shape inference runs
// first and after every pass that changed the graph. --time-passes' table is
// printPassTimes, which the driver calls once the program passes have run too.
Expected<std::vector<PassRecord>> runPipeline(ir::Model& model, const PipelineOptions& options, std::ostream& log);

// The --time-passes table: one row per record, in the order they ran, with
// what its counts are (graph nodes, or kernel calls for a program pass), its
// time and the resident memory after it; then the total time and the
// largest resident memory.
void printPassTimes(const std::vector<PassRecord>& records, std::ostream& log);

}  // namespace kiln::passes
