// `kiln inspect`: what a model or an artifact contains, as readable tables or
// as JSON (--json) for scripts.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>

#include "artifact_format.h"
#include "compiler/driver/compile.h"
#include "compiler/ir/printer.h"
#include "passes/infer_shapes.h"
#include "tools/kiln/commands.h"
#include "tools/kiln/escape.h"

namespace kiln::cli {
namespace {

struct InspectArgs {
  std::string path;
  bool ir = false;
  bool json = false;
  std::string dot;
  std::vector<std::string> shapes;
};

// Only a regular file is sniffed: reading a FIFO would wait for a writer. What
// is not one goes on to the model importer, which refuses it with exit 4.
bool isArtifact(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return false;
  struct stat st {};
  char magic[4] = {};
  bool elf = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && read(fd, magic, 4) == 4 && magic[0] == 0x7f &&
             magic[1] == 'E' && magic[2] == 'L' && magic[3] == 'F';
  close(fd);
  return elf;
}

// Columns padded to their widest cell; numeric columns (named in `right`) right-aligned.
void printTable(std::ostream& os, const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows, std::vector<bool> right = {}) {
  right.resize(header.size(), false);
  std::vector<size_t> width(header.size());
  for (size_t c = 0; c < header.size(); ++c) width[c] = header[c].size();
  for (const auto& r : rows)
    for (size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], r[c].size());
  auto line = [&](const std::vector<std::string>& cells) {
    os << " ";
    for (size_t c = 0; c < cells.size(); ++c) {
      bool last = c + 1 == cells.size();
      os << " " << (right[c] ? std::right : std::left) << std::setw(last && !right[c] ? 0 : static_cast<int>(width[c]));
      os << cells[c];
    }
    os << std::left << "\n";
  };
  line(header);
  std::vector<std::string> rule;
  for (size_t w : width) rule.push_back(std::string(w, '-'));
  line(rule);
  for (const auto& r : rows) line(r);
}

struct TensorRow {
  std::string name, dtype;
  std::vector<std::string> dims;  // a number or a symbol
};

std::string joinDims(const std::vector<std::string>& dims) {
  std::string out;
  for (size_t i = 0; i < dims.size(); ++i) out += (i ? "x" : "") + dims[i];
  return dims.empty() ? "scalar" : out;
}

std::string jsonDims(const std::vector<std::string>& dims) {
  std::string out = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    bool number = !dims[i].empty() && dims[i].find_first_not_of("0123456789") == std::string::npos;
    out += (i ? ", " : "") + (number ? dims[i] : jsonQuote(dims[i]));
  }
  return out + "]";
}

void printTensors(std::ostream& os, const char* title, const std::vector<TensorRow>& tensors) {
  os << "\n" << title << "\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& t : tensors) rows.push_back({t.name, t.dtype, joinDims(t.dims)});
  printTable(os, {"name", "dtype", "shape"}, rows);
}

std::string jsonTensors(const std::vector<TensorRow>& tensors) {
  std::string out = "[";
  for (size_t i = 0; i < tensors.size(); ++i)
    out += std::string(i ? ", " : "") + "{\"name\": " + jsonQuote(tensors[i].name) +
           ", \"dtype\": " + jsonQuote(tensors[i].dtype) + ", \"shape\": " + jsonDims(tensors[i].dims) + "}";
  return out + "]";
}

// ---- artifacts: read from the description section, without loading any code,
// so artifacts built for other CPUs can be inspected too.

struct MappedFile {
  const uint8_t* data = nullptr;
  size_t size = 0;
  ~MappedFile() {
    if (data) munmap(const_cast<uint8_t*>(data), size);
  }
};

Status mapFile(const std::string& path, MappedFile& file) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ioError("cannot read '" + path + "'");
  struct stat st {};
  if (fstat(fd, &st) != 0 || st.st_size == 0) {
    close(fd);
    return invalidInput("artifact '" + path + "' is empty or unreadable");
  }
  void* p = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (p == MAP_FAILED) return ioError("cannot map '" + path + "'");
  file.data = static_cast<const uint8_t*>(p);
  file.size = static_cast<size_t>(st.st_size);
  return Status::ok();
}

std::vector<TensorRow> tensorRows(const std::vector<artifact::TensorDesc>& tensors) {
  std::vector<TensorRow> rows;
  for (const auto& t : tensors) {
    // A container shows the tensors it holds: "seq(float32)", "optional(float32)".
    static const char* const kWrap[] = {"", "seq", "optional", "optional(seq"};
    std::string dtype(ir::name(static_cast<ir::DType>(t.dtype)));
    if (t.kind > artifact::kKindTensor && t.kind <= artifact::kKindOptionalSequence)
      dtype = std::string(kWrap[t.kind]) + "(" + dtype + (t.kind == artifact::kKindOptionalSequence ? "))" : ")");
    TensorRow row{t.name, dtype, {}};
    for (size_t d = 0; d < t.dims.size(); ++d)
      row.dims.push_back(t.dims[d] >= 0 ? std::to_string(t.dims[d]) : t.dim_names[d]);
    bool sequence = t.kind == artifact::kKindSequence || t.kind == artifact::kKindOptionalSequence;
    if (sequence && t.dims.empty()) row.dims.push_back("any");  // elements of any rank
    rows.push_back(std::move(row));
  }
  return rows;
}

int inspectArtifact(const InspectArgs& args) {
  MappedFile file;
  if (Status s = mapFile(args.path, file); !s) return reportError(s);
  std::span<const uint8_t> bytes(file.data, file.size);
  std::string error;
  auto section = artifact::findElfSection(bytes, artifact::kDescSection, &error);
  if (!section)
    return reportError(invalidInput(
        "artifact '" + args.path + "': " +
        (error.empty() ? "no " + std::string(artifact::kDescSection) + " section (not a Kiln artifact)" : error)));
  auto desc = artifact::parse(bytes.subspan(section->offset, section->size), &error);
  if (!desc) return reportError(invalidInput("artifact '" + args.path + "': " + error));
  bool checksum_ok = artifact::hashArtifact(bytes, *section) == desc->content_hash;
  char hash[17];
  std::snprintf(hash, sizeof(hash), "%016llx", static_cast<unsigned long long>(desc->content_hash));
  std::string features;
  for (const auto& f : desc->cpu_features) features += (features.empty() ? "" : ",") + f;
  uint64_t flops = 0;
  for (const auto& k : desc->kernels) flops += k.flops;
  std::vector<std::pair<std::string, std::string>> fields = {
      {"target", desc->target},
      {"cpu", desc->cpu_name},
      {"cpu_features", features},
      {"producer", desc->producer},
      {"model_hash", desc->model_hash},
      {"options", desc->options},
      {"content_hash", hash},
      {"checksum", checksum_ok ? "ok" : "MISMATCH (the file was changed after compiling)"},
      {"kernel_count", std::to_string(desc->kernel_count)},
      {"workspace_bytes", std::to_string(desc->workspace_bytes)},
      {"file_bytes", std::to_string(file.size)},
      {"flops", std::to_string(flops)}};
  if (!desc->cuda_arch.empty()) {
    // A GPU artifact: no CPU rows; the text form names target and arch together ("cuda sm_90").
    fields.erase(fields.begin() + 1, fields.begin() + 3);
    fields.insert(fields.begin() + 1, {"cuda_arch", desc->cuda_arch});
  }
  std::vector<TensorRow> inputs = tensorRows(desc->inputs), outputs = tensorRows(desc->outputs);

  if (args.json) {
    std::cout << "{\n  \"kind\": \"artifact\",\n  \"path\": " << jsonQuote(args.path);
    for (const auto& [key, value] : fields) {
      bool number = key == "kernel_count" || key == "workspace_bytes" || key == "file_bytes" || key == "flops";
      if (key == "checksum")
        std::cout << ",\n  \"checksum_ok\": " << (checksum_ok ? "true" : "false");
      else
        std::cout << ",\n  " << jsonQuote(key) << ": " << (number ? value : jsonQuote(value));
    }
    std::cout << ",\n  \"inputs\": " << jsonTensors(inputs) << ",\n  \"outputs\": " << jsonTensors(outputs)
              << ",\n  \"kernels\": [";
    for (size_t i = 0; i < desc->kernels.size(); ++i)
      std::cout << (i ? ", " : "") << "{\"name\": " << jsonQuote(desc->kernels[i].name)
                << ", \"origin\": " << jsonQuote(desc->kernels[i].origin) << ", \"flops\": " << desc->kernels[i].flops
                << "}";
    std::cout << "]\n}\n";
    if (!checksum_ok)
      std::cerr << "kiln: error: artifact '" << args.path
                << "': checksum mismatch: the file was changed after compiling\n";
    return checksum_ok ? kExitOk : kExitInvalidInput;
  }
  std::cout << "artifact " << args.path << "\n";
  for (const auto& [key, value] : fields)
    std::cout << "  " << std::left << std::setw(16) << key
              << (key == "target" && !desc->cuda_arch.empty() ? value + " " + desc->cuda_arch : value) << "\n";
  printTensors(std::cout, "inputs", inputs);
  printTensors(std::cout, "outputs", outputs);
  if (!desc->kernels.empty()) {
    std::cout << "\nkernels\n";
    std::vector<std::vector<std::string>> rows;
    for (size_t i = 0; i < desc->kernels.size(); ++i)
      rows.push_back(
          {std::to_string(i), desc->kernels[i].name, desc->kernels[i].origin, std::to_string(desc->kernels[i].flops)});
    printTable(std::cout, {"#", "kernel", "from nodes", "flops"}, rows, {true, false, false, true});
  }
  if (!checksum_ok) {
    std::cerr << "kiln: error: artifact '" << args.path
              << "': checksum mismatch: the file was changed after compiling\n";
    return kExitInvalidInput;
  }
  return kExitOk;
}

// ---- models

std::vector<TensorRow> valueRows(const std::vector<ir::Value*>& values) {
  std::vector<TensorRow> rows;
  for (const ir::Value* v : values) {
    TensorRow row{v->name, std::string(ir::name(v->type.dtype)), {}};
    if (!v->type.isTensor()) row.dtype = std::string(ir::kindName(v->type.kind)) + " of " + row.dtype;
    if (v->type.shape)
      for (const ir::Dim& d : *v->type.shape)
        row.dims.push_back(d.isKnown() ? std::to_string(d.value) : d.symbol.empty() ? "?" : d.symbol);
    else
      row.dims.push_back("?");
    rows.push_back(std::move(row));
  }
  return rows;
}

int inspectModel(const InspectArgs& args) {
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const std::string& spec : args.shapes) {
    size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0)
      return reportError(invalidInput("--shape expects NAME=DIMS such as input=1x3x224x224, got '" + spec + "'"));
    auto dims = driver::parseDims(spec.substr(eq + 1));
    if (!dims) return reportError(dims.status());
    shapes[spec.substr(0, eq)] = *dims;
  }
  auto model = driver::importModel(args.path);
  if (!model) return reportError(model.status());
  ir::Model& m = **model;
  if (Status s = passes::pinInputShapes(m, shapes); !s) return reportError(s);
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
  std::vector<TensorRow> inputs = valueRows(m.graph.inputs), outputs = valueRows(m.graph.outputs);
  std::map<std::string, int> histogram;
  for (const auto& node : m.graph.nodes())
    ++histogram[(node->domain.empty() ? "" : node->domain + ".") + node->op_type];
  size_t nodes = m.graph.nodes().size();  // as imported (buildProgram below optimizes the graph in place)
  int64_t params = 0, param_bytes = 0;
  for (const auto& v : m.graph.values())
    if (v->isConstant()) {
      params += v->constant->elementCount();
      param_bytes += static_cast<int64_t>(v->constant->bytes().size());
    }
  // FLOPs come from the lowered program at the default -O level: what one run costs.
  std::optional<int64_t> flops;
  size_t kernels = 0;
  std::string flops_unknown;
  if (inferred) {
    std::ostringstream log;
    driver::CompileSummary summary;
    auto program = driver::buildProgram(m, driver::CompileOptions{}, log, &summary);
    if (program) {
      flops = summary.flops;
      kernels = summary.kernels;
    } else {
      flops_unknown = program.status().message();
    }
  } else {
    flops_unknown = inferred.message();
  }

  if (args.json) {
    std::cout << "{\n  \"kind\": \"model\",\n  \"path\": " << jsonQuote(args.path) << ",\n  \"producer\": "
              << jsonQuote(m.producer_name + (m.producer_version.empty() ? "" : " " + m.producer_version))
              << ",\n  \"ir_version\": " << m.ir_version << ",\n  \"opsets\": {";
    bool first = true;
    for (const auto& [domain, version] : m.opset_imports) {
      std::cout << (first ? "" : ", ") << jsonQuote(domain.empty() ? "ai.onnx" : domain) << ": " << version;
      first = false;
    }
    std::cout << "},\n  \"inputs\": " << jsonTensors(inputs) << ",\n  \"outputs\": " << jsonTensors(outputs)
              << ",\n  \"nodes\": " << nodes << ",\n  \"ops\": {";
    first = true;
    for (const auto& [op, count] : histogram) {
      std::cout << (first ? "" : ", ") << jsonQuote(op) << ": " << count;
      first = false;
    }
    std::cout << "},\n  \"parameters\": " << params << ",\n  \"parameter_bytes\": " << param_bytes
              << ",\n  \"flops\": " << (flops ? std::to_string(*flops) : "null");
    if (flops)
      std::cout << ",\n  \"kernels\": " << kernels;
    else
      std::cout << ",\n  \"flops_unknown_because\": " << jsonQuote(flops_unknown);
    std::cout << "\n}\n";
    return kExitOk;
  }
  std::cout << "model " << args.path << "\n  producer    " << m.producer_name << " " << m.producer_version
            << "\n  ir          " << m.ir_version << "\n  opsets     ";
  for (const auto& [domain, version] : m.opset_imports)
    std::cout << " " << (domain.empty() ? "ai.onnx" : domain) << ":" << version;
  std::cout << "\n  nodes       " << nodes << "\n  parameters  " << params << " ("
            << humanCount(static_cast<double>(params)) << ", " << humanBytes(static_cast<double>(param_bytes)) << ")\n";
  if (flops)
    std::cout << "  flops       " << *flops << " (" << humanCount(static_cast<double>(*flops)) << " per run, "
              << kernels << " kernels at -O2)\n";
  else
    std::cout << "  flops       unknown (" << flops_unknown << ")\n";
  printTensors(std::cout, "inputs", inputs);
  printTensors(std::cout, "outputs", outputs);
  std::cout << "\nops\n";
  std::vector<std::pair<std::string, int>> by_count(histogram.begin(), histogram.end());
  std::stable_sort(by_count.begin(), by_count.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::vector<std::vector<std::string>> rows;
  for (const auto& [op, count] : by_count) rows.push_back({op, std::to_string(count)});
  printTable(std::cout, {"op", "count"}, rows, {false, true});
  return kExitOk;
}

}  // namespace

void addInspectCommand(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<InspectArgs>();
  CLI::App* cmd = app.add_subcommand("inspect", "Describe an ONNX model or a compiled artifact");
  cmd->add_option("file", args->path, "model.onnx or artifact .so")->required();
  cmd->add_flag("--json", args->json, "print the description as JSON, for scripts");
  cmd->add_flag("--ir", args->ir, "print the model's Graph IR as text");
  cmd->add_option("--dot", args->dot, "write the graph as Graphviz dot to this file");
  cmd->add_option("--shape", args->shapes, "pin an input's shape: NAME=1x3x224x224 (repeatable; lets FLOPs be counted)")
      ->allow_extra_args(false);
  cmd->callback(
      [args, &exit_code] { exit_code = isArtifact(args->path) ? inspectArtifact(*args) : inspectModel(*args); });
}

}  // namespace kiln::cli
