#include "compiler/driver/compile.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <ostream>
#include <set>
#include <span>
#include <sstream>
#include <unordered_set>

#include "compiler/ir/printer.h"
#include "compiler/lower/fuse_kernels.h"
#include "compiler/lower/generalize_shapes.h"
#include "compiler/lower/lower_graph.h"
#include "compiler/onnx/importer.h"
#include "compiler/onnx/writer.h"
#include "compiler/ops/op_registry.h"
#include "compiler/support/resident_memory.h"
#include "passes/infer_shapes.h"
#include "passes/prune.h"
#include "passes/value_uses.h"

namespace kiln::driver {
namespace {

std::string hexDigest(uint64_t h) {
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(h));
  return text;
}

// Read in pieces: the model may be gigabytes, and holding it twice over (its
// mapping is the importer's) would set the compile's peak memory.
Expected<std::string> modelHash(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return ioError("cannot read '" + path + "'");
  const auto size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  artifact::Hasher hash(size, 0);
  std::vector<char> piece(1 << 20);
  for (uint64_t left = size; left > 0;) {
    const auto n = static_cast<std::streamsize>(std::min<uint64_t>(left, piece.size()));
    if (!in.read(piece.data(), n)) return ioError("cannot read '" + path + "'");
    hash.update({reinterpret_cast<const uint8_t*>(piece.data()), static_cast<size_t>(n)});
    left -= static_cast<uint64_t>(n);
  }
  return hexDigest(hash.finish());
}

// The output's folder, checked before any work: a mistyped path should not
// cost a whole compile, nor come back as the linker's or the weights blob's
// complaint.
Status checkOutputFolder(const std::string& output) {
  std::string folder = std::filesystem::path(output).parent_path().string();
  if (folder.empty()) folder = ".";
  std::error_code ec;
  if (!std::filesystem::is_directory(folder, ec))
    return ioError("cannot write '" + output + "': the folder '" + folder + "' does not exist");
  if (::access(folder.c_str(), W_OK) != 0)
    return ioError("cannot write '" + output + "': the folder '" + folder +
                   "' is not writable: " + std::strerror(errno));
  return Status::ok();
}

// The options that shape the generated code, canonical and free of paths.
std::string describeOptions(const CompileOptions& options) {
  std::ostringstream os;
  os << "target=" << options.target << " O" << options.codegen.opt_level;
  if (!options.codegen.cpu.empty()) os << " cpu=" << options.codegen.cpu;
  if (!options.codegen.features.empty()) os << " features=" << options.codegen.features;
  if (options.target == "cuda") os << " cuda_arch=" << (options.codegen.cuda_arch.empty() ? "sm_90" : options.codegen.cuda_arch);
  if (options.target == "cuda" && !options.codegen.cuda_precision.empty() && options.codegen.cuda_precision != "fp32")
    os << " cuda_precision=" << options.codegen.cuda_precision;
  if (!options.codegen.precision.empty() && options.codegen.precision != "fp32")
    os << " precision=" << options.codegen.precision;
  if (!options.codegen.sparse_kernels.empty() && options.codegen.sparse_kernels != "auto")
    os << " sparse_kernels=" << options.codegen.sparse_kernels;
  for (const auto& [name, dims] : options.shapes) os << " shape:" << name << "=" << ir::toString(ir::makeShape(dims));
  if (!options.pipeline.passes.empty()) {
    os << " passes=";
    for (const auto& p : options.pipeline.passes) os << p << ",";
  }
  for (const auto& p : options.pipeline.disabled) os << " disable=" << p;
  if (options.pipeline.prune) {
    os << " prune=" << options.pipeline.prune->text;
    for (const auto& [layer, ratio] : options.pipeline.prune->layer_ratios) os << " prune:" << layer << "=" << ratio;
  }
  return os.str();
}

// An input or output: a static dim as its size, a run-time one as -1 with
// its symbol and the dim slot the run keeps it in.
artifact::TensorDesc describeTensor(const lower::TensorSignature& sig, const lower::ProgramBuffer& buffer) {
  artifact::TensorDesc t;
  t.name = sig.name;
  t.dtype = static_cast<int32_t>(sig.dtype);
  t.kind = static_cast<uint8_t>(sig.kind);
  t.present_slot = buffer.present_slot;
  if (sig.kind == ir::ValueKind::kSequence || sig.kind == ir::ValueKind::kOptionalSequence) {
    // Each element has its own dims: the description keeps the declared ones.
    for (const ir::Dim& dim : sig.shape) {
      t.dims.push_back(dim.isKnown() ? dim.value : -1);
      t.dim_names.push_back(dim.isKnown() ? std::string() : dim.symbol);
      t.dim_slots.push_back(-1);
    }
    return t;
  }
  for (size_t d = 0; d < buffer.dims.size(); ++d) {
    int slot = d < buffer.dim_slots.size() ? buffer.dim_slots[d] : -1;
    t.dims.push_back(slot >= 0 ? -1 : buffer.dims[d]);
    t.dim_names.push_back(slot >= 0 && d < sig.shape.size() ? sig.shape[d].symbol : std::string());
    t.dim_slots.push_back(slot);
  }
  return t;
}

// Graph inputs whose every reader takes only their dtype
// (OpSchema::dtype_only_inputs, such as CastLike's target_type), or that
// nothing reads (a CastLike expanded into a Cast leaves its target unused):
// neither their data nor their shape matters, so the artifact accepts any
// shape for them. Asked of the imported graph, before passes remove readers.
std::set<std::string> dtypeOnlyInputs(const ir::Model& model) {
  std::set<std::string> names;
  std::unordered_set<const ir::Value*> captured = passes::capturedBySubgraphs(model.graph);
  for (const ir::Value* v : model.graph.inputs) {
    if (captured.count(v) || passes::isGraphOutput(model.graph, v)) continue;
    std::vector<ir::Node*> readers = model.graph.usersOf(v);
    bool dtype_only = true;
    for (const ir::Node* n : readers) {
      const ops::OpSchema* schema = ops::OpRegistry::global().find(n->domain, n->op_type);
      for (size_t i = 0; i < n->inputs.size(); ++i)
        if (n->inputs[i] == v && (!schema || std::count(schema->dtype_only_inputs.begin(),
                                                        schema->dtype_only_inputs.end(), i) == 0))
          dtype_only = false;
    }
    if (dtype_only) names.insert(v->name);
  }
  return names;
}

Status writeText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  return out ? Status::ok() : ioError("cannot write '" + path + "'");
}

// The passes over the lowered program (fuse-kernels, plan-in-place), each
// reported like a graph pass, counting kernels instead of nodes.
Status runProgramPasses(lower::Program& program, const passes::PipelineOptions& options,
                        const lower::FusionOptions& fusion, std::ostream& log, std::vector<passes::PassRecord>& records) {
  auto run = [&](const std::string& name, auto&& body) -> Status {
    if (!passes::programPassEnabled(options, name)) return Status::ok();
    auto start = std::chrono::steady_clock::now();
    size_t before = program.calls.size();
    int64_t arena_before = program.workspace_bytes;
    body();
    KILN_RETURN_IF_ERROR(program.verify().withContext("program invalid after " + name));
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    bool changed = program.calls.size() != before || program.workspace_bytes != arena_before;
    records.push_back({name, before, program.calls.size(), ms, changed, residentBytes()});
    if (options.print_after.count("all") || options.print_after.count(name))
      log << "// ----- kernels after " << name << " -----\n" << lower::toString(program);
    return Status::ok();
  };
  KILN_RETURN_IF_ERROR(run("fuse-kernels", [&] { lower::fuseKernels(program, fusion); }));
  return run("plan-in-place", [&] { lower::planArena(program, /*in_place=*/true); });
}

Expected<std::unique_ptr<codegen::Backend>> createBackend(const CompileOptions& options) {
  if (options.target == "cpu") return codegen::createCpuBackend(options.codegen);
#ifdef KILN_HAVE_CUDA_CODEGEN
  return codegen::createCudaBackend(options.codegen);
#else
  return unsupported("--target cuda: this build of kiln has no CUDA backend");
#endif
}

}  // namespace

Expected<std::unique_ptr<ir::Model>> importModel(const std::string& path) { return frontend::importOnnxFile(path); }

namespace {

bool isSequence(const ir::Value& v) {
  return v.type.kind == ir::ValueKind::kSequence || v.type.kind == ir::ValueKind::kOptionalSequence;
}

// The symbols of the inputs' dims not pinned by --shape, in order of first
// appearance; an unknown dim without a name gets its own ("x:0" for dim 0
// of input x). nullopt when an input's rank is unknown.
std::optional<std::vector<std::string>> inputSymbols(ir::Model& model) {
  std::vector<std::string> symbols;
  for (ir::Value* v : model.graph.inputs) {
    if (isSequence(*v)) continue;  // each element has its own dims, read at run time
    if (!v->type.shape) return std::nullopt;
    for (size_t i = 0; i < v->type.shape->size(); ++i) {
      ir::Dim& d = (*v->type.shape)[i];
      if (d.isKnown()) continue;
      if (d.symbol.empty()) d.symbol = v->name + ":" + std::to_string(i);
      if (std::find(symbols.begin(), symbols.end(), d.symbol) == symbols.end()) symbols.push_back(d.symbol);
    }
  }
  return symbols;
}

// Pins every input dim named by a symbol to that symbol's size in `sample`.
Status pinSymbols(ir::Model& model, const lower::ShapeSamples& samples, size_t sample) {
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const ir::Value* v : model.graph.inputs) {
    if (isSequence(*v)) continue;
    std::vector<int64_t> dims;
    for (const ir::Dim& d : *v->type.shape) {
      auto it = std::find(samples.symbols.begin(), samples.symbols.end(), d.symbol);
      dims.push_back(d.isKnown() ? d.value : samples.samples[sample][static_cast<size_t>(it - samples.symbols.begin())]);
    }
    shapes[v->name] = dims;
  }
  return passes::pinInputShapes(model, shapes);
}

// The -O pipeline with the switches the target and output decide:
// channels-last unless the graph is written back as ONNX for other runtimes,
// Winograd only for the CPU in fp32 (bf16 kernels and CUDA's tensor-core
// GEMMs are faster on the direct convolution), one-kernel attention only for
// the CPU (CUDA's scores and context are cuBLASLt GEMMs).
passes::PipelineOptions pipelineFor(const CompileOptions& options) {
  passes::PipelineOptions pipeline = options.pipeline;
  pipeline.channels_last = options.emit != Stage::kOnnx;
  pipeline.winograd =
      options.target == "cpu" && (options.codegen.precision.empty() || options.codegen.precision == "fp32");
  pipeline.attention = options.target == "cpu";
  return pipeline;
}

// Optimizes and lowers `model` as it is (its input shapes static).
Expected<lower::Program> lowerModel(ir::Model& model, const CompileOptions& options, std::ostream& log,
                                    std::vector<passes::PassRecord>& records) {
  KILN_ASSIGN_OR_RETURN(records, passes::runPipeline(model, pipelineFor(options), log));
  KILN_ASSIGN_OR_RETURN(lower::Program program, lower::lowerGraph(model));
  // A Transpose feeding or fed by a contraction becomes its layout (on the
  // CPU, one that keeps the innermost axis in place); on the CPU a
  // contraction stores straight into its part of a Concat.
  lower::FusionOptions fusion;
  fusion.permutations_into_reductions = true;
  fusion.views_into_stores = true;
  fusion.permutations_keep_innermost = options.target == "cpu";
  fusion.copies_into_stores = options.target == "cpu";
  fusion.scales_into_contractions = options.target == "cpu";
  KILN_RETURN_IF_ERROR(runProgramPasses(program, options.pipeline, fusion, log, records));
  return program;
}

// A model with symbolic input dims: lowered once per sample of the symbols'
// sizes (the first sample in place, so `model` ends optimized like a static
// one) and merged into one program whose sizes are dim slots.
Expected<lower::Program> lowerSymbolic(ir::Model& model, const std::vector<std::string>& symbols,
                                       const CompileOptions& options, std::ostream& log,
                                       std::vector<passes::PassRecord>& records) {
  if (symbols.size() > lower::kMaxSymbols)
    return unsupported("the inputs have " + std::to_string(symbols.size()) + " symbolic dimensions (at most " +
                       std::to_string(lower::kMaxSymbols) + " are compiled as run-time sizes); pin some with --shape");
  lower::ShapeSamples samples = lower::ShapeSamples::forSymbols(symbols);
  KILN_ASSIGN_OR_RETURN(std::string bytes, frontend::serializeOnnx(model));
  std::vector<lower::Program> programs;
  std::ostringstream quiet;  // --print-after and friends show the first sample only
  for (size_t i = 0; i < samples.samples.size(); ++i) {
    std::unique_ptr<ir::Model> copy;
    if (i > 0) {
      auto span = std::as_bytes(std::span(bytes.data(), bytes.size()));
      KILN_ASSIGN_OR_RETURN(copy, frontend::importOnnxBytes(span, "", "the model"));
    }
    ir::Model& m = i == 0 ? model : *copy;
    KILN_RETURN_IF_ERROR(pinSymbols(m, samples, i));
    std::vector<passes::PassRecord> sample_records;
    auto program = lowerModel(m, options, i == 0 ? log : quiet, sample_records);
    if (!program.isOk()) {
      std::string names;
      for (const std::string& s : symbols) names += (names.empty() ? "" : ", ") + s;
      return program.status().withContext("compiling with run-time sizes for " + names +
                                          " (or pin them with --shape)");
    }
    if (i == 0) records = std::move(sample_records);
    bool containers = std::any_of(program->buffers.begin(), program->buffers.end(), [](const lower::ProgramBuffer& b) {
      return b.container != ir::ValueKind::kTensor;
    });
    if (containers)
      return unsupported("sequences or optionals at the graph boundary with symbolic tensor dims are not compiled "
                         "yet; pin " + symbols[0] + " with --shape");
    programs.push_back(std::move(*program));
  }
  return lower::generalizeShapes(std::move(programs), samples, passes::programPassEnabled(options.pipeline, "plan-in-place"));
}

}  // namespace

Expected<lower::Program> buildProgram(ir::Model& model, const CompileOptions& options, std::ostream& log,
                                      CompileSummary* summary) {
  KILN_RETURN_IF_ERROR(passes::pinInputShapes(model, options.shapes));
  if (options.on_stage) options.on_stage("optimize");
  std::vector<passes::PassRecord> records;
  std::optional<std::vector<std::string>> symbols = inputSymbols(model);
  // A model with a sequence or optional input or output is lowered once:
  // its symbolic tensor dims are dim slots read from the inputs at run time
  // (lower_graph.cpp), as its elements' dims are.
  bool container_boundary = false;
  for (const auto* list : {&model.graph.inputs, &model.graph.outputs})
    for (const ir::Value* v : *list) container_boundary = container_boundary || !v->type.isTensor();
  if (options.on_stage) options.on_stage("lower");
  auto lowered = symbols && !symbols->empty() && !container_boundary
                     ? lowerSymbolic(model, *symbols, options, log, records)
                     : lowerModel(model, options, log, records);
  KILN_ASSIGN_OR_RETURN(lower::Program program, std::move(lowered));
  // After lowering, so the table holds the program passes as well.
  if (options.pipeline.time_passes) passes::printPassTimes(records, log);
  if (options.on_lowered) options.on_lowered(model, program);
  if (summary) {
    summary->passes = std::move(records);
    summary->kernels = program.calls.size();
    summary->arena_bytes = program.workspace_bytes;
    for (const lower::KernelCall& call : program.calls) summary->flops += kir::countFlops(call.kernel);
    for (const lower::ProgramBuffer& b : program.buffers)
      if (b.kind == lower::ProgramBuffer::Kind::kConstant) summary->weight_bytes += b.byteSize();
  }
  return program;
}

Expected<CompileSummary> compileFile(const std::string& input, const std::string& output, const CompileOptions& options,
                                     std::ostream& log) {
  if (options.target != "cpu" && options.target != "cuda")
    return invalidInput("--target " + options.target + " is not a target (cpu, cuda)");
#ifndef KILN_HAVE_CUDA_CODEGEN
  if (options.target == "cuda")
    return unsupported("--target cuda: this build of kiln has no CUDA backend (NVRTC was not found when it was "
                       "configured; install the CUDA toolkit under /usr/local/cuda and rebuild)");
#endif
  KILN_RETURN_IF_ERROR(checkOutputFolder(output));
  if (options.on_stage) options.on_stage("import");
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<ir::Model> model, importModel(input));
  // What the passes and the lowering find wrong is in the model too: its
  // errors name the file, as the importer's do.
  const std::string model_file = "'" + input + "'";
  CompileSummary summary;
  if (options.emit == Stage::kGraph || options.emit == Stage::kOnnx) {
    KILN_RETURN_IF_ERROR(passes::pinInputShapes(*model, options.shapes).withContext(model_file));
    if (options.on_stage) options.on_stage("optimize");
    passes::PipelineOptions pipeline = pipelineFor(options);
    pipeline.kiln_ops = options.emit == Stage::kGraph;
    auto records = passes::runPipeline(*model, pipeline, log);
    if (!records) return records.status().withContext(model_file);
    summary.passes = records.take();
    if (pipeline.time_passes) passes::printPassTimes(summary.passes, log);
    if (options.emit == Stage::kOnnx && model->opset_imports.count(std::string(ops::kKilnDomain)))
      return unsupported("--emit onnx: the graph holds Kiln's own ops (domain 'kiln', written by the channels-last "
                         "pass), which other runtimes cannot read; leave channels-last out of --passes");
    if (options.emit == Stage::kOnnx) KILN_RETURN_IF_ERROR(frontend::writeOnnxFile(*model, output));
    else KILN_RETURN_IF_ERROR(writeText(output, ir::printModel(*model)));
    return summary;
  }
  std::set<std::string> dtype_only = dtypeOnlyInputs(*model);
  auto built = buildProgram(*model, options, log, &summary);
  if (!built) return built.status().withContext(model_file);
  lower::Program program = built.take();
  // The program holds what code generation needs, weights included; the
  // graph's hold on them goes, so the backend can free each weight once it
  // is written.
  model.reset();
  if (options.emit == Stage::kKernels) {
    KILN_RETURN_IF_ERROR(writeText(output, lower::toString(program)));
    return summary;
  }
  if (options.target == "cuda")
    for (const auto* list : {&program.input_buffers, &program.output_buffers})
      for (int b : *list)
        if (program.buffers[b].container != ir::ValueKind::kTensor)
          return unsupported(model_file + ": '" + program.buffers[b].name + "' is " +
                             ir::kindName(program.buffers[b].container) +
                             ": the CUDA backend takes and returns tensors only");
  if (options.on_stage) options.on_stage("codegen");
  KILN_ASSIGN_OR_RETURN(auto backend, createBackend(options));
  summary.target = backend->describeTarget();
  artifact::ModelDesc desc;
  desc.producer = "kiln " KILN_VERSION;
  KILN_ASSIGN_OR_RETURN(desc.model_hash, modelHash(input));
  desc.options = describeOptions(options);
  for (size_t i = 0; i < program.inputs.size(); ++i) {
    desc.inputs.push_back(describeTensor(program.inputs[i], program.buffers[program.input_buffers[i]]));
    desc.inputs.back().any_shape = dtype_only.count(program.inputs[i].name) > 0;
  }
  for (size_t i = 0; i < program.outputs.size(); ++i)
    desc.outputs.push_back(describeTensor(program.outputs[i], program.buffers[program.output_buffers[i]]));
  desc.slot_count = static_cast<uint32_t>(program.num_slots);
  desc.checks = program.checks;
  codegen::EmitKind kind = options.emit == Stage::kLlvm     ? codegen::EmitKind::kLlvmIr
                           : options.emit == Stage::kObject ? codegen::EmitKind::kObject
                                                            : codegen::EmitKind::kArtifact;
  KILN_RETURN_IF_ERROR(backend->emit(std::move(program), std::move(desc), kind, output));
  return summary;
}

Expected<std::vector<int64_t>> parseDims(const std::string& text) {
  std::vector<int64_t> dims;
  std::stringstream in(text);
  std::string part;
  while (std::getline(in, part, 'x')) {
    if (part.empty() || part.find_first_not_of("0123456789") != std::string::npos || part.size() > 15)
      return invalidInput("'" + text + "' is not a shape like 1x3x224x224");
    dims.push_back(std::stoll(part));
  }
  if (dims.empty()) return invalidInput("empty shape");
  return dims;
}

}  // namespace kiln::driver
