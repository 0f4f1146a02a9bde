// The pass table and the pipeline of each optimization level: the one place
// that says which passes exist and when they run.
#include <algorithm>
#include <iomanip>
#include <ostream>

#include "compiler/ir/printer.h"
#include "compiler/support/resident_memory.h"
#include "passes/expand_containers.h"
#include "passes/expand_gradient.h"
#include "passes/infer_shapes.h"
#include "passes/pass.h"
#include "passes/prune.h"
#include "passes/quantize.h"

namespace kiln::passes {

std::unique_ptr<Pass> createEliminateDeadNodes();
std::unique_ptr<Pass> createFoldConstants();
std::unique_ptr<Pass> createEliminateCommonSubexpressions();
std::unique_ptr<Pass> createRemoveNoOps();
std::unique_ptr<Pass> createFoldAffine();
std::unique_ptr<Pass> createFoldPad();
std::unique_ptr<Pass> createInlineConstantIf();
std::unique_ptr<Pass> createFoldQdq();
std::unique_ptr<Pass> createChannelsLast();
std::unique_ptr<Pass> createWinogradConv();
std::unique_ptr<Pass> createRecognizeLayerNorm();
std::unique_ptr<Pass> createRecognizeGelu();
std::unique_ptr<Pass> createRecognizeAttention();

const std::vector<PassInfo>& allPasses() {
  static const std::vector<PassInfo> kPasses = {
      {"inline-constant-if", "replace an If whose condition is a compile-time constant by the branch it takes",
       createInlineConstantIf},
      {"fold-constants", "drop nodes whose outputs are all compile-time constants; share identical constants",
       createFoldConstants},
      {"eliminate-common-subexpressions", "merge nodes computing the same op on the same inputs",
       createEliminateCommonSubexpressions},
      {"remove-no-ops", "drop nodes that return their input unchanged (Identity, same-shape Reshape, ...)",
       createRemoveNoOps},
      {"fold-affine",
       "fold BatchNormalization and per-channel Mul/Add/Sub/Div into Conv, ConvTranspose, Gemm and MatMul weights",
       createFoldAffine},
      {"fold-pad", "fold a Pad by zeros of the spatial axes into the convolutions that read it", createFoldPad},
      {"fold-qdq",
       "fold DequantizeLinear -> Conv/MatMul/Gemm [-> Relu] -> QuantizeLinear into QLinearConv, QLinearMatMul, "
       "ConvInteger or MatMulInteger",
       createFoldQdq},
      {"recognize-layer-norm",
       "turn the decomposed layer normalization of opset < 17 exporters (ReduceMean, Sub, Pow, Sqrt, Div...) into one "
       "LayerNormalization",
       createRecognizeLayerNorm},
      {"recognize-gelu", "turn GELU's tanh approximation written out in Mul/Add/Pow/Tanh into one Gelu",
       createRecognizeGelu},
      {"recognize-attention",
       "turn MatMul -> [scale] -> [mask] -> Softmax -> MatMul (scaled-dot-product attention) into one kiln.Attention",
       createRecognizeAttention},
      {"channels-last", "run 2-D convolutions over NHWC data (kiln.ConvNhwc) and cancel the transposes between them",
       createChannelsLast},
      {"winograd-conv",
       "compute 3x3 stride-1 channels-last convolutions (kiln.ConvNhwc) with Winograd F(2x2, 3x3): input transform, "
       "batched product with a weight transformed at compile time, output transform",
       createWinogradConv},
      {"eliminate-dead-nodes", "remove nodes whose results are never used", createEliminateDeadNodes},
  };
  return kPasses;
}

// The step that applies --quantize (passes/quantize.h); it is a pass name on
// the command line but needs the options' QuantizeSpec, so runPipeline runs it.
constexpr std::string_view kQuantizeStep = "quantize";
// Likewise the step that applies --prune (passes/prune.h).
constexpr std::string_view kPruneStep = "prune";

namespace {

// Whether the -O pipeline's switches (PipelineOptions) leave pass `name`
// out; passes listed in --passes always run.
bool switchedOff(std::string_view name, const PipelineOptions& options) {
  if (!options.passes.empty()) return false;
  if (name == "channels-last") return !options.channels_last;
  if (name == "winograd-conv") return !options.winograd;
  if (name == "recognize-attention") return !options.attention || !options.kiln_ops;
  // Where the model's opset predates the op they write, these write Kiln's
  // twin of it, which ONNX written back for other runtimes cannot hold.
  if (name == "recognize-layer-norm" || name == "recognize-gelu") return !options.kiln_ops;
  return false;
}

}  // namespace

bool isProgramPass(std::string_view name) { return name == "fuse-kernels" || name == "plan-in-place"; }

bool programPassEnabled(const PipelineOptions& options, std::string_view name) {
  if (options.disabled.count(std::string(name))) return false;
  const std::vector<std::string> names = options.passes.empty() ? pipelineFor(options.opt_level) : options.passes;
  return std::find(names.begin(), names.end(), name) != names.end();
}

const PassInfo* findPass(std::string_view name) {
  for (const PassInfo& info : allPasses())
    if (info.name == name) return &info;
  return nullptr;
}

// Shape inference (which also propagates constants) runs before these at
// every level; -O0 keeps the graph as imported otherwise. fuse-kernels and
// plan-in-place work on the lowered program and run after lowering
// (driver/compile.cpp).
std::vector<std::string> pipelineFor(int opt_level) {
  if (opt_level <= 0) return {};
  // fold-qdq runs twice: before fold-constants, which would otherwise turn an
  // imported model's DequantizeLinear(int8 weight) into a float weight, and
  // after the quantize step, on the QDQ graph it wrote.
  // The recognize-* passes run after prune and quantize, which know ONNX's
  // elementwise ops but not Kiln's twins of LayerNormalization and Gelu.
  return {"inline-constant-if",
          "fold-qdq",
          "fold-constants",
          "eliminate-common-subexpressions",
          "remove-no-ops",
          "fold-affine",
          "fold-pad",
          std::string(kPruneStep),
          std::string(kQuantizeStep),
          "fold-qdq",
          "recognize-layer-norm",
          "recognize-gelu",
          "recognize-attention",
          "channels-last",
          "winograd-conv",
          "eliminate-dead-nodes",
          "fuse-kernels",
          "plan-in-place"};
}

Expected<std::vector<PassRecord>> runPipeline(ir::Model& model, const PipelineOptions& options, std::ostream& log) {
  std::vector<std::string> names = options.passes.empty() ? pipelineFor(options.opt_level) : options.passes;
  if (options.quantize && std::find(names.begin(), names.end(), kQuantizeStep) == names.end())
    names.insert(names.begin(), std::string(kQuantizeStep));
  if (options.prune && std::find(names.begin(), names.end(), kPruneStep) == names.end())
    names.insert(names.begin(), std::string(kPruneStep));
  for (const std::string& n : options.disabled)
    if (!findPass(n) && !isProgramPass(n) && n != kQuantizeStep && n != kPruneStep) return invalidInput("--disable-pass: unknown pass '" + n + "'");
  for (const std::string& n : options.print_after)
    if (n != "all" && n != "infer-shapes" && n != "expand-containers" && n != "expand-gradient" && !findPass(n) && !isProgramPass(n) && n != kQuantizeStep && n != kPruneStep)
      return invalidInput("--print-after: unknown pass '" + n + "'");
  bool print_all = options.print_after.count("all") > 0;

  std::vector<PassRecord> records;
  auto timed = [&](const std::string& name, auto&& body) -> Status {
    PassRecord record{name, model.graph.nodes().size(), 0, 0, false};
    auto start = std::chrono::steady_clock::now();
    Expected<bool> changed = body();
    if (!changed) return changed.status().withContext("pass " + name);
    record.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    record.nodes_after = model.graph.nodes().size();
    record.changed = *changed;
    records.push_back(record);
    // Constants the pass stopped reading (folded or transposed weights) are
    // freed now rather than held to the end of the compile.
    if (*changed) model.graph.removeUnusedValues();
    records.back().rss_bytes = residentBytes();
    // In every build: a pass that leaves the IR broken (a value with two
    // producers, a read before its write) stops the compile as an internal
    // error instead of compiling something wrong. It costs a few
    // milliseconds on BERT-base.
    KILN_RETURN_IF_ERROR(model.graph.verify().withContext("IR invalid after pass " + name));
    if (print_all || options.print_after.count(name)) log << "// ----- IR after " << name << " -----\n" << ir::printModel(model);
    return Status::ok();
  };

  KILN_RETURN_IF_ERROR(timed("infer-shapes", [&]() -> Expected<bool> {
    KILN_RETURN_IF_ERROR(inferShapes(model));
    return false;
  }));
  // Gradient has no lowering: its backward nodes replace it at every level.
  if (hasGradient(model.graph))
    KILN_RETURN_IF_ERROR(timed("expand-gradient", [&]() -> Expected<bool> {
      KILN_RETURN_IF_ERROR(expandGradients(model));
      return true;
    }));
  // Lowering takes tensors only: sequences and optionals are expanded at every level.
  if (hasContainers(model.graph))
    KILN_RETURN_IF_ERROR(timed("expand-containers", [&]() -> Expected<bool> {
      KILN_RETURN_IF_ERROR(expandContainers(model));
      return true;
    }));
  for (const std::string& name : names) {
    if (isProgramPass(name)) continue;  // runs after lowering, in the driver
    if (name == kQuantizeStep) {
      if (!options.quantize || options.disabled.count(name)) continue;
      KILN_RETURN_IF_ERROR(timed(name, [&]() -> Expected<bool> {
        KILN_ASSIGN_OR_RETURN(bool changed, runQuantize(model, *options.quantize));
        if (changed) KILN_RETURN_IF_ERROR(inferShapes(model));
        return changed;
      }));
      continue;
    }
    if (name == kPruneStep) {
      if (!options.prune || options.disabled.count(name)) continue;
      KILN_RETURN_IF_ERROR(timed(name, [&]() -> Expected<bool> {
        KILN_ASSIGN_OR_RETURN(bool changed, runPrune(model, *options.prune));
        if (changed) KILN_RETURN_IF_ERROR(inferShapes(model));
        return changed;
      }));
      continue;
    }
    const PassInfo* info = findPass(name);
    if (!info) return invalidInput("--passes: unknown pass '" + name + "'");
    if (options.disabled.count(name)) continue;
    if (switchedOff(name, options)) continue;
    std::unique_ptr<Pass> pass = info->create();
    KILN_RETURN_IF_ERROR(timed(name, [&]() -> Expected<bool> {
      KILN_ASSIGN_OR_RETURN(bool changed, pass->run(model));
      if (changed) KILN_RETURN_IF_ERROR(inferShapes(model));
      return changed;
    }));
  }
  return records;
}

void printPassTimes(const std::vector<PassRecord>& records, std::ostream& log) {
  std::ios_base::fmtflags flags = log.flags();
  std::streamsize precision = log.precision();
  auto row = [&](std::string_view name, std::string_view counts, auto before, auto after, auto ms, auto rss) {
    log << std::left << std::setw(33) << name << std::setw(8) << counts << std::right << std::setw(8) << before
        << " -> " << std::setw(6) << after << std::setw(10) << ms << std::setw(10) << rss << "\n";
  };
  row("pass", "counts", "before", "after", "ms", "rss MiB");
  log << std::fixed << std::setprecision(2);
  double total_ms = 0;
  uint64_t peak = 0;
  for (const PassRecord& r : records) {
    row(r.name, isProgramPass(r.name) ? "kernels" : "nodes", r.nodes_before, r.nodes_after, r.ms,
        static_cast<double>(r.rss_bytes) / (1 << 20));
    total_ms += r.ms;
    peak = std::max(peak, r.rss_bytes);
  }
  log << std::left << std::setw(59) << "total" << std::right << std::setw(10) << total_ms << std::setw(10)
      << static_cast<double>(peak) / (1 << 20) << "\n";
  log.flags(flags);
  log.precision(precision);
}

}  // namespace kiln::passes
