// `kiln inspect`: what a model or an artifact contains.
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>

#include "compiler/driver/compile.h"
#include "compiler/ir/printer.h"
#include "kiln_runtime.hpp"
#include "passes/infer_shapes.h"
#include "tools/kiln/commands.h"

namespace kiln::cli {
namespace {

struct InspectArgs {
  std::string path;
  bool ir = false;
  std::string dot;
};

bool isArtifact(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in && magic[0] == 0x7f && magic[1] == 'E' && magic[2] == 'L' && magic[3] == 'F';
}

std::string shapeOf(const ir::TensorType& type) { return type.toString(); }

int inspectArtifact(const std::string& path) {
  try {
    kiln::Model model(path);
    std::cout << "artifact " << path << "\n";
    for (const char* key : {"target", "cpu", "cpu_features", "producer", "model_hash", "options", "content_hash",
                            "kernel_count", "workspace_bytes"})
      std::cout << "  " << std::left << std::setw(16) << key << model.metadata(key) << "\n";
    auto print = [](const char* role, const kiln_tensor_info& t) {
      std::cout << "  " << role << " '" << t.name << "': " << kiln_dtype_name(t.dtype) << "[";
      for (int32_t d = 0; d < t.rank; ++d)
        std::cout << (d ? "x" : "") << (t.dims[d] >= 0 ? std::to_string(t.dims[d]) : std::string(t.dim_names[d]));
      std::cout << "]\n";
    };
    for (size_t i = 0; i < model.numInputs(); ++i) print("input ", model.input(i));
    for (size_t i = 0; i < model.numOutputs(); ++i) print("output", model.output(i));
    return kExitOk;
  } catch (const kiln::Error& e) {
    std::cerr << "kiln: error: " << e.what() << "\n";
    return e.status() == KILN_ERROR_IO ? kExitIoError : kExitInvalidInput;
  }
}

int inspectModel(const InspectArgs& args) {
  auto model = driver::importModel(args.path);
  if (!model) return reportError(model.status());
  ir::Model& m = **model;
  Status inferred = passes::inferShapes(m);
  if (args.ir) {
    std::cout << ir::printModel(m);
    return kExitOk;
  }
  if (!args.dot.empty()) {
    std::ofstream out(args.dot);
    out << ir::printDot(m.graph);
    if (!out) return reportError(ioError("cannot write '" + args.dot + "'"));
  }
  std::cout << "model " << args.path << "\n  producer  " << m.producer_name << " " << m.producer_version
            << "\n  ir        " << m.ir_version << "\n  opsets   ";
  for (const auto& [domain, version] : m.opset_imports) std::cout << " " << (domain.empty() ? "ai.onnx" : domain) << ":" << version;
  std::cout << "\n";
  for (const ir::Value* v : m.graph.inputs) std::cout << "  input  '" << v->name << "': " << shapeOf(v->type) << "\n";
  for (const ir::Value* v : m.graph.outputs) std::cout << "  output '" << v->name << "': " << shapeOf(v->type) << "\n";
  std::map<std::string, int> histogram;
  for (const auto& node : m.graph.nodes()) ++histogram[node->op_type];
  std::cout << "  nodes     " << m.graph.nodes().size() << ":";
  for (const auto& [op, count] : histogram) std::cout << " " << op << "x" << count;
  int64_t params = 0;
  for (const auto& v : m.graph.values())
    if (v->isConstant()) params += v->constant->elementCount();
  std::cout << "\n  params    " << params << "\n";
  if (!inferred) {
    std::cout << "  flops     unknown (" << inferred.message() << ")\n";
    return kExitOk;
  }
  std::ostringstream log;
  driver::CompileSummary summary;
  auto program = driver::buildProgram(m, driver::CompileOptions{}, log, &summary);
  if (program) std::cout << "  flops     " << summary.flops << "\n  kernels   " << summary.kernels << "\n";
  else std::cout << "  flops     unknown (" << program.status().message() << ")\n";
  return kExitOk;
}

}  // namespace

void addInspectCommand(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<InspectArgs>();
  CLI::App* cmd = app.add_subcommand("inspect", "Describe an ONNX model or a compiled artifact");
  cmd->add_option("file", args->path, "model.onnx or artifact .so")->required()->check(CLI::ExistingFile);
  cmd->add_flag("--ir", args->ir, "print the model's Graph IR as text");
  cmd->add_option("--dot", args->dot, "write the graph as Graphviz dot to this file");
  cmd->callback([args, &exit_code] {
    exit_code = isArtifact(args->path) ? inspectArtifact(args->path) : inspectModel(*args);
  });
}

}  // namespace kiln::cli
