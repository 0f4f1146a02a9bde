#include "compiler/driver/compile.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <ostream>
#include <sstream>

#include "compiler/ir/printer.h"
#include "compiler/lower/fuse_kernels.h"
#include "compiler/lower/lower_graph.h"
#include "compiler/onnx/importer.h"
#include "compiler/onnx/writer.h"
#include "passes/infer_shapes.h"

namespace kiln::driver {
namespace {

std::string hexDigest(uint64_t h) {
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(h));
  return text;
}

Expected<std::string> modelHash(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ioError("cannot read '" + path + "'");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
  return hexDigest(artifact::hashBytes(bytes));
}

// The options that shape the generated code, canonical and free of paths.
std::string describeOptions(const CompileOptions& options) {
  std::ostringstream os;
  os << "target=" << options.target << " O" << options.codegen.opt_level;
  if (!options.codegen.cpu.empty()) os << " cpu=" << options.codegen.cpu;
  if (!options.codegen.features.empty()) os << " features=" << options.codegen.features;
  for (const auto& [name, dims] : options.shapes) os << " shape:" << name << "=" << ir::toString(ir::makeShape(dims));
  if (!options.pipeline.passes.empty()) {
    os << " passes=";
    for (const auto& p : options.pipeline.passes) os << p << ",";
  }
  for (const auto& p : options.pipeline.disabled) os << " disable=" << p;
  return os.str();
}

artifact::TensorDesc describeTensor(const lower::TensorSignature& sig) {
  artifact::TensorDesc t;
  t.name = sig.name;
  t.dtype = static_cast<int32_t>(sig.dtype);
  for (const ir::Dim& d : sig.shape) {
    t.dims.push_back(d.isKnown() ? d.value : -1);
    t.dim_names.push_back(d.symbol);
  }
  return t;
}

Status writeText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  return out ? Status::ok() : ioError("cannot write '" + path + "'");
}

// The passes over the lowered program (fuse-kernels, plan-in-place), each
// reported like a graph pass, counting kernels instead of nodes.
Status runProgramPasses(lower::Program& program, const passes::PipelineOptions& options, std::ostream& log,
                        std::vector<passes::PassRecord>& records) {
  auto run = [&](const std::string& name, auto&& body) -> Status {
    if (!passes::programPassEnabled(options, name)) return Status::ok();
    auto start = std::chrono::steady_clock::now();
    size_t before = program.calls.size();
    int64_t arena_before = program.workspace_bytes;
    body();
    KILN_RETURN_IF_ERROR(program.verify().withContext("program invalid after " + name));
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    bool changed = program.calls.size() != before || program.workspace_bytes != arena_before;
    records.push_back({name, before, program.calls.size(), ms, changed});
    if (options.print_after.count("all") || options.print_after.count(name))
      log << "// ----- kernels after " << name << " -----\n" << lower::toString(program);
    return Status::ok();
  };
  KILN_RETURN_IF_ERROR(run("fuse-kernels", [&] { lower::fuseKernels(program); }));
  return run("plan-in-place", [&] { lower::planArena(program, /*in_place=*/true); });
}

}  // namespace

Expected<std::unique_ptr<ir::Model>> importModel(const std::string& path) { return frontend::importOnnxFile(path); }

Expected<lower::Program> buildProgram(ir::Model& model, const CompileOptions& options, std::ostream& log,
                                      CompileSummary* summary) {
  KILN_RETURN_IF_ERROR(passes::pinInputShapes(model, options.shapes));
  if (options.on_stage) options.on_stage("optimize");
  KILN_ASSIGN_OR_RETURN(auto records, passes::runPipeline(model, options.pipeline, log));
  if (options.on_stage) options.on_stage("lower");
  KILN_ASSIGN_OR_RETURN(lower::Program program, lower::lowerGraph(model));
  KILN_RETURN_IF_ERROR(runProgramPasses(program, options.pipeline, log, records));
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
  if (options.target != "cpu")
    return unsupported("--target " + options.target + ": this build of kiln compiles for 'cpu' only");
  if (options.on_stage) options.on_stage("import");
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<ir::Model> model, importModel(input));
  CompileSummary summary;
  if (options.emit == Stage::kGraph || options.emit == Stage::kOnnx) {
    KILN_RETURN_IF_ERROR(passes::pinInputShapes(*model, options.shapes));
    if (options.on_stage) options.on_stage("optimize");
    KILN_ASSIGN_OR_RETURN(summary.passes, passes::runPipeline(*model, options.pipeline, log));
    if (options.emit == Stage::kOnnx) KILN_RETURN_IF_ERROR(frontend::writeOnnxFile(*model, output));
    else KILN_RETURN_IF_ERROR(writeText(output, ir::printModel(*model)));
    return summary;
  }
  KILN_ASSIGN_OR_RETURN(lower::Program program, buildProgram(*model, options, log, &summary));
  if (options.emit == Stage::kKernels) {
    KILN_RETURN_IF_ERROR(writeText(output, lower::toString(program)));
    return summary;
  }
  if (options.on_stage) options.on_stage("codegen");
  KILN_ASSIGN_OR_RETURN(auto backend, codegen::createCpuBackend(options.codegen));
  summary.target = backend->describeTarget();
  artifact::ModelDesc desc;
  desc.producer = "kiln " KILN_VERSION;
  KILN_ASSIGN_OR_RETURN(desc.model_hash, modelHash(input));
  desc.options = describeOptions(options);
  for (const auto& sig : program.inputs) desc.inputs.push_back(describeTensor(sig));
  for (const auto& sig : program.outputs) desc.outputs.push_back(describeTensor(sig));
  codegen::EmitKind kind = options.emit == Stage::kLlvm     ? codegen::EmitKind::kLlvmIr
                           : options.emit == Stage::kObject ? codegen::EmitKind::kObject
                                                            : codegen::EmitKind::kArtifact;
  KILN_RETURN_IF_ERROR(backend->emit(program, std::move(desc), kind, output));
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
