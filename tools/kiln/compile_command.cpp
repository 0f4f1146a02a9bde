#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "compiler/driver/compile.h"
#include "tools/kiln/calibrate.h"
#include "tools/kiln/commands.h"
#include "tools/kiln/emit_header.h"
#include "tools/kiln/escape.h"
#include "tools/kiln/html_report.h"
#include "tools/kiln/progress.h"
#include "tools/kiln/prune_session.h"

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
  std::string cuda_arch;
  std::string cuda_precision;
  std::string precision;
  std::string sparse_kernels;  // "", auto, off, always
  std::string emit = "so";
  std::vector<std::string> passes;
  std::vector<std::string> disabled;
  std::vector<std::string> print_after;
  bool time_passes = false;
  std::string report;
  std::string header;
  std::string header_prefix;
  bool quiet = false;
  bool verbose = false;
  std::string quantize;  // "", int8, dynamic-int8
  std::string calibration;
  std::string calibration_method;
  double percentile = 0;  // 0: not given
  std::string validation;
  std::string prune;            // --prune METHOD:R[:OPTION...]
  std::string accuracy_budget;  // --accuracy-budget
};

bool endsWith(const std::string& text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool isHtmlPath(const std::string& path) { return endsWith(path, ".html") || endsWith(path, ".htm"); }

// The options as given, for the report (paths left out).
std::string describeArgs(const CompileArgs& a) {
  std::string out = "-O" + std::to_string(a.opt_level) + " --target " + a.target + " --emit " + a.emit;
  for (const auto& s : a.shapes) out += " --shape " + s;
  if (!a.cpu.empty()) out += " --cpu " + a.cpu;
  if (!a.features.empty()) out += " --features " + a.features;
  if (!a.cuda_arch.empty()) out += " --cuda-arch " + a.cuda_arch;
  if (!a.cuda_precision.empty()) out += " --cuda-precision " + a.cuda_precision;
  if (!a.precision.empty()) out += " --precision " + a.precision;
  if (!a.sparse_kernels.empty()) out += " --sparse-kernels " + a.sparse_kernels;
  if (!a.passes.empty()) {
    out += " --passes ";
    for (size_t i = 0; i < a.passes.size(); ++i) out += (i ? "," : "") + a.passes[i];
  }
  for (const auto& d : a.disabled) out += " --disable-pass " + d;
  if (!a.quantize.empty()) out += " --quantize " + a.quantize;
  if (!a.calibration_method.empty()) out += " --calibration-method " + a.calibration_method;
  if (a.percentile > 0) out += " --percentile " + std::to_string(a.percentile);
  if (!a.prune.empty()) out += " --prune " + a.prune;
  if (!a.accuracy_budget.empty()) out += " --accuracy-budget " + a.accuracy_budget;
  return out;
}

Expected<driver::CompileOptions> toOptions(const CompileArgs& args) {
  driver::CompileOptions options;
  options.target = args.target;
  options.codegen.cpu = args.cpu;
  options.codegen.features = args.features;
  options.codegen.cuda_arch = args.cuda_arch;
  if (!args.cuda_arch.empty() && args.target != "cuda")
    return invalidInput("--cuda-arch " + args.cuda_arch + " needs --target cuda");
  options.codegen.cuda_precision = args.cuda_precision;
  if (!args.cuda_precision.empty() && args.target != "cuda")
    return invalidInput("--cuda-precision " + args.cuda_precision + " needs --target cuda");
  options.codegen.precision = args.precision;
  if (!args.precision.empty() && args.precision != "fp32" && args.target != "cpu")
    return invalidInput("--precision " + args.precision + " is for --target cpu (use --cuda-precision for cuda)");
  options.codegen.sparse_kernels = args.sparse_kernels;
  if (!args.sparse_kernels.empty() && args.sparse_kernels != "auto" && args.target != "cpu")
    return invalidInput("--sparse-kernels " + args.sparse_kernels + " is for --target cpu");
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
  static const std::map<std::string, driver::Stage> kStages = {
      {"graph", driver::Stage::kGraph}, {"onnx", driver::Stage::kOnnx},  {"kernels", driver::Stage::kKernels},
      {"llvm", driver::Stage::kLlvm},   {"obj", driver::Stage::kObject}, {"so", driver::Stage::kArtifact}};
  options.emit = kStages.at(args.emit);
  return options;
}

// The --quantize flags checked against each other; nullopt without --quantize.
Expected<std::optional<QuantizeRequest>> quantizeRequest(const CompileArgs& a) {
  bool int8 = a.quantize == "int8";
  if (a.quantize.empty() && a.prune.empty()) {
    if (!a.calibration.empty()) return invalidInput("--calibration needs --quantize int8 or --prune");
    if (!a.validation.empty()) return invalidInput("--validation needs --quantize int8 or dynamic-int8, or --prune");
  }
  if (!int8 && !a.calibration_method.empty()) return invalidInput("--calibration-method needs --quantize int8");
  if (a.percentile > 0 && a.calibration_method != "percentile")
    return invalidInput("--percentile needs --calibration-method percentile");
  if (a.quantize.empty()) return std::optional<QuantizeRequest>();
  if (int8 && a.calibration.empty())
    return invalidInput("--quantize int8 needs --calibration DIR: a folder with one subfolder of input files per "
                        "set (docs/quantization.md)");
  if (!int8 && !a.calibration.empty() && a.prune.empty())
    return invalidInput("--calibration is for --quantize int8; dynamic-int8 needs no calibration (use --validation "
                        "for the accuracy report)");
  QuantizeRequest r;
  // Without --prune, --accuracy-budget chooses the layers int8 keeps in float32.
  if (!a.accuracy_budget.empty() && a.prune.empty()) {
    if (!int8)
      return invalidInput("--accuracy-budget with --quantize needs int8: dynamic-int8 has no per-layer choice "
                          "(docs/quantization.md)");
    KILN_ASSIGN_OR_RETURN(r.budget, quant::parseAccuracyBudget(a.accuracy_budget));
    if (a.target != "cpu") return invalidInput("--accuracy-budget measures on this CPU: use it with --target cpu");
  }
  r.mode = int8 ? passes::QuantizeSpec::Mode::kInt8 : passes::QuantizeSpec::Mode::kDynamicInt8;
  r.calibration_dir = a.calibration;
  r.validation_dir = a.validation;
  if (!a.calibration_method.empty()) r.method = *quant::parseCalibrationMethod(a.calibration_method);
  if (a.percentile > 0) r.percentile = a.percentile;
  return std::optional<QuantizeRequest>(r);
}

// The --prune flags checked against each other; nullopt without --prune.
Expected<std::optional<PruneRequest>> pruneRequest(const CompileArgs& a) {
  if (a.prune.empty()) {
    if (!a.accuracy_budget.empty() && a.quantize.empty())
      return invalidInput("--accuracy-budget needs --prune or --quantize int8 (docs/pruning.md, docs/quantization.md)");
    return std::optional<PruneRequest>();
  }
  PruneRequest r;
  KILN_ASSIGN_OR_RETURN(r.spec, passes::parsePruneSpec(a.prune));
  if (!a.accuracy_budget.empty()) {
    KILN_ASSIGN_OR_RETURN(r.budget, quant::parseAccuracyBudget(a.accuracy_budget));
    if (a.calibration.empty())
      return invalidInput("--accuracy-budget needs --calibration DIR: the ratios are chosen from output deviation "
                          "measured on those inputs (docs/pruning.md)");
    if (a.target != "cpu") return invalidInput("--accuracy-budget measures on this CPU: use it with --target cpu");
  }
  r.calibration_dir = a.calibration;
  r.validation_dir = a.validation;
  return std::optional<PruneRequest>(std::move(r));
}

Status writeReport(const std::string& path, const driver::CompileSummary& s, const AccuracyReport* accuracy,
                   const PruningReport* pruning) {
  std::ofstream out(path, std::ios::trunc);
  out << "{\n  \"passes\": [";
  for (size_t i = 0; i < s.passes.size(); ++i) {
    const auto& p = s.passes[i];
    out << (i ? "," : "") << "\n    {\"name\": " << jsonQuote(p.name) << ", \"nodes_before\": " << p.nodes_before
        << ", \"nodes_after\": " << p.nodes_after << ", \"ms\": " << p.ms << ", \"rss_bytes\": " << p.rss_bytes << "}";
  }
  out << "\n  ],\n  \"kernels\": " << s.kernels << ",\n  \"flops\": " << s.flops
      << ",\n  \"weight_bytes\": " << s.weight_bytes << ",\n  \"arena_bytes\": " << s.arena_bytes;
  if (accuracy) out << ",\n  \"accuracy\": " << accuracyJson(*accuracy, "  ");
  if (pruning) out << ",\n  \"pruning\": " << pruningJson(*pruning, "  ");
  out << "\n}\n";
  return out ? Status::ok() : ioError("cannot write report '" + path + "'");
}

int runCompile(const CompileArgs& args) {
#ifdef __GLIBC__
  // A compile allocates and frees weight-sized blocks (folded, transposed,
  // transformed weights). glibc raises its mmap threshold to the size of each
  // large block freed, so later ones come from the heap, whose memory stays
  // with the process after it is freed; a fixed threshold gives every block
  // of 128 KiB and more back when it is freed (ResNet-50's peak RSS
  // 260 -> 233 MB).
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
#endif
  auto options = toOptions(args);
  if (!options) return reportError(options.status());
  auto quantize = quantizeRequest(args);
  if (!quantize) return reportError(quantize.status());
  auto prune = pruneRequest(args);
  if (!prune) return reportError(prune.status());
  bool html = isHtmlPath(args.report);
  if (!args.header.empty() && (args.emit == "graph" || args.emit == "onnx"))
    return reportError(invalidInput("--emit-header needs the model lowered: use it with --emit kernels|llvm|obj|so"));
  if (html && (args.emit == "graph" || args.emit == "onnx"))
    return reportError(
        invalidInput("an HTML --report needs the model lowered: use it with --emit kernels|llvm|obj|so"));

  Verbosity verbosity = args.quiet ? Verbosity::kQuiet : args.verbose ? Verbosity::kVerbose : Verbosity::kNormal;
  // The live status line stays off while passes print to stderr.
  bool live = args.print_after.empty() && !args.time_passes;
  Progress progress("kiln compile", verbosity, live);
  options->on_stage = [&progress](std::string_view stage) { progress.stage(stage); };

  CompileReport report;
  HeaderSpec header;
  options->on_lowered = [&](const ir::Model& model, const lower::Program& program) {
    if (html) captureLowered(model, program, report);
    header.inputs = program.inputs;
    header.outputs = program.outputs;
  };
  auto start = std::chrono::steady_clock::now();
  std::unique_ptr<PruneSession> pruner;
  if (*prune) {
    progress.stage((*prune)->budget ? "accuracy budget" : "prune");
    pruner = std::make_unique<PruneSession>();
    if (Status s = pruner->prepare(args.model, **prune, *options); !s) {
      progress.finish();
      return reportError(s);
    }
  }
  std::unique_ptr<QuantizeSession> quantizer;
  if (*quantize) {
    progress.stage((*quantize)->budget ? "calibrate, accuracy budget" : "calibrate");
    quantizer = std::make_unique<QuantizeSession>();
    if (Status s = quantizer->prepare(args.model, **quantize, *options); !s) {
      progress.finish();
      return reportError(s);
    }
  }
  auto summary = driver::compileFile(args.model, args.output, *options, std::cerr);
  std::optional<AccuracyReport> accuracy;
  if (summary && quantizer && options->emit == driver::Stage::kArtifact && options->target == "cpu") {
    progress.stage("accuracy");
    auto measured = quantizer->measure(args.model, args.output, *options);
    if (!measured) {
      progress.finish();
      return reportError(measured.status());
    }
    if (measured->sets > 0) accuracy = std::move(*measured);
  }
  if (summary && pruner) {
    pruner->report().graph = *options->pipeline.prune->report;
    if (options->emit == driver::Stage::kArtifact && options->target == "cpu") {
      progress.stage("accuracy");
      if (Status s = pruner->measure(args.model, args.output, *options); !s) {
        progress.finish();
        return reportError(s);
      }
    }
  }
  progress.finish();
  if (!summary) return reportError(summary.status());
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (!args.header.empty()) {
    header.prefix = headerPrefixFor(args.header_prefix.empty() ? std::filesystem::path(args.header).stem().string()
                                                               : args.header_prefix);
    header.model_name = std::filesystem::path(args.model).filename().string();
    if (Status s = writeModelHeader(args.header, header); !s) return reportError(s);
  }
  if (!args.report.empty()) {
    Status s = Status::ok();
    if (html) {
      report.model_path = args.model;
      report.output_path = args.output;
      report.options = describeArgs(args);
      report.summary = *summary;
      report.total_ms = ms;
      if (accuracy) report.accuracy = *accuracy;
      if (pruner) report.pruning = pruner->report();
      s = writeHtmlReport(args.report, report);
    } else {
      s = writeReport(args.report, *summary, accuracy ? &*accuracy : nullptr, pruner ? &pruner->report() : nullptr);
    }
    if (!s) return reportError(s);
  }
  if (verbosity != Verbosity::kQuiet) {
    std::cerr << "kiln: compiled '" << args.model << "' -> '" << args.output << "'";
    if (!summary->target.empty()) std::cerr << " for " << summary->target.substr(0, summary->target.find(" ("));
    std::cerr << ": " << summary->kernels << " kernels, " << summary->weight_bytes << " weight bytes, "
              << summary->arena_bytes << " arena bytes, " << static_cast<int64_t>(ms) << " ms\n";
    if (quantizer && quantizer->calibrationSets() > 0)
      std::cerr << "kiln: calibrated " << quantizer->calibratedTensors() << " tensors on "
                << quantizer->calibrationSets() << " sets (" << quant::methodName((*quantize)->method) << ") in "
                << static_cast<int64_t>(quantizer->calibrationMs()) << " ms\n";
    if (accuracy) std::cerr << formatAccuracy(*accuracy);
    if (pruner) std::cerr << formatPruning(pruner->report());
  }
  return kExitOk;
}

}  // namespace

void addCompileCommand(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<CompileArgs>();
  CLI::App* cmd = app.add_subcommand("compile", "Compile an ONNX model into a native artifact");
  cmd->add_option("model", args->model, "ONNX model file")->required();
  cmd->add_option("-o,--output", args->output, "artifact to write (model.so)")->required();
  cmd->add_option("--target", args->target, "what to compile for: cpu, or cuda (NVIDIA GPUs; kernels built with NVRTC)")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  cmd->add_option("--cuda-arch", args->cuda_arch, "GPU architecture for --target cuda (default: sm_90)");
  cmd->add_option("--cuda-precision", args->cuda_precision,
                  "arithmetic of MatMul/Gemm/Conv for --target cuda: fp32 (exact, default), or tensor cores with "
                  "tf32, fp16 or bf16 inputs and fp32 accumulation")
      ->check(CLI::IsMember({"fp32", "tf32", "fp16", "bf16"}));
  cmd->add_option("--precision", args->precision,
                  "arithmetic of float32 MatMul/Gemm/Conv against constant weights for --target cpu: fp32 (exact, default), "
                  "or bf16 (AVX512-BF16 dot products, fp32 accumulation; the artifact then needs avx512bf16)")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  cmd->add_option("--sparse-kernels", args->sparse_kernels,
                  "block-sparse MatMul/Gemm kernels for --target cpu: auto (default: where a constant "
                  "weight's 1x16 blocks are mostly zero, docs/pruning.md), off (always dense), always (every "
                  "eligible contraction, for measuring)")
      ->check(CLI::IsMember({"auto", "off", "always"}));
  cmd->add_option("-O", args->opt_level, "optimization level 0..3 (-O0 .. -O3)")
      ->check(CLI::Range(0, 3))
      ->capture_default_str();
  cmd->add_option("--shape", args->shapes, "pin an input's shape: NAME=1x3x224x224 (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--cpu", args->cpu, "LLVM CPU name to compile for (default: this host)");
  cmd->add_option("--features", args->features, "CPU feature changes, e.g. +avx512f,-amx-tile");
  cmd->add_option("--emit", args->emit,
                  "stop after a stage: graph (text IR), onnx (optimized graph as ONNX), kernels (kernel IR), "
                  "llvm (LLVM IR; CUDA C for --target cuda), obj (object file; the cubin for --target cuda), so (artifact)")
      ->check(CLI::IsMember({"graph", "onnx", "kernels", "llvm", "obj", "so"}))
      ->capture_default_str();
  cmd->add_option("--passes", args->passes, "run exactly these passes, in order (comma-separated)")
      ->delimiter(',')
      ->allow_extra_args(false);
  cmd->add_option("--disable-pass", args->disabled, "skip a pass of the -O pipeline (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--print-after", args->print_after, "print the IR after a pass, or 'all' (repeatable)")
      ->allow_extra_args(false);
  cmd->add_flag("--time-passes", args->time_passes, "print how long each pass took and the resident memory after it");
  cmd->add_option("--report", args->report,
                  "write what the compiler did: FILE.html (a page with the graph picture, passes, kernels, memory "
                  "plan) or FILE.json");
  cmd->add_option("--emit-header", args->header,
                  "write a C header with the model's input/output names, dtypes and shapes");
  cmd->add_option("--header-prefix", args->header_prefix,
                  "macro prefix for --emit-header (default: the header's file name)");
  cmd->add_option("--quantize", args->quantize,
                  "quantize to INT8: int8 (static: weights int8 per channel, activations uint8 from --calibration "
                  "data) or dynamic-int8 (MatMul/Gemm weights int8, activations quantized at run time)")
      ->check(CLI::IsMember({"int8", "dynamic-int8"}));
  cmd->add_option("--calibration", args->calibration,
                  "folder of input sets for --quantize int8 (and --prune's --accuracy-budget): one subfolder per set, "
                  "a .npy/.pb file per input "
                  "(NAME.npy or input_<i>.pb)");
  cmd->add_option("--calibration-method", args->calibration_method,
                  "how activation ranges are chosen: minmax (default), percentile or entropy (KL divergence)")
      ->check(CLI::IsMember({"minmax", "percentile", "entropy"}));
  cmd->add_option("--percentile", args->percentile,
                  "percent of |x| the range keeps, for --calibration-method percentile (default 99.99)")
      ->check(CLI::Range(50.0, 100.0));
  cmd->add_option("--validation", args->validation,
                  "folder of input sets (layout as --calibration) for the accuracy report of a quantized or pruned "
                  "compile (default: the calibration sets)");
  cmd->add_option("--prune", args->prune,
                  "prune weights (docs/pruning.md): magnitude:R (the share R of smallest weights set to zero, one "
                  "global threshold), magnitude:R:per-layer, magnitude:R:block (1x16 blocks the block-sparse kernels "
                  "skip), channels:R (the share R of each layer's output channels removed, tensors shrunk)");
  cmd->add_option("--accuracy-budget", args->accuracy_budget,
                  "with --prune and --calibration: choose each layer's ratio (at most R) so that every output keeps "
                  "this SQNR in dB against the unpruned model on the calibration sets, e.g. 30dB or 30dB,top1=99; "
                  "with --quantize int8 (and no --prune): keep the most sensitive layers in float32 until it holds");
  auto* quiet = cmd->add_flag("-q,--quiet", args->quiet, "print nothing on success");
  cmd->add_flag("-v,--verbose", args->verbose, "print each stage's time, also when stderr is not a terminal")
      ->excludes(quiet);
  cmd->callback([args, &exit_code] { exit_code = runCompile(*args); });
}

}  // namespace kiln::cli
