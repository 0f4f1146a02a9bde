#include "tools/kiln/calibrate.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <set>
#include <sstream>

#include "codegen/cpu/target.h"
#include "compiler/onnx/writer.h"
#include "passes/infer_shapes.h"
#include "tools/common/run_artifact.h"
#include "tools/common/tensor_files.h"
#include "tools/kiln/escape.h"

namespace kiln::cli {
namespace fs = std::filesystem;

namespace {

std::string dimsText(const std::vector<int64_t>& dims) {
  std::string out;
  for (size_t i = 0; i < dims.size(); ++i) out += (i ? "x" : "") + (dims[i] < 0 ? std::string("?") : std::to_string(dims[i]));
  return dims.empty() ? "scalar" : out;
}

bool isTensorFile(const fs::path& p) { return p.extension() == ".npy" || p.extension() == ".pb"; }

// The input a file's stem names: the input's name, or input_<i>.
std::optional<size_t> inputForStem(const std::string& stem, const std::vector<InputSpec>& inputs) {
  for (size_t i = 0; i < inputs.size(); ++i)
    if (stem == inputs[i].name || stem == "input_" + std::to_string(i)) return i;
  return std::nullopt;
}

Status checkTensor(const std::string& option, const std::string& file, const ir::Tensor& t, const InputSpec& spec,
                   const InputSet* first, size_t index) {
  if (t.dtype() != spec.dtype)
    return invalidInput(option + ": '" + file + "' has dtype " + std::string(ir::name(t.dtype())) + ", but input '" +
                        spec.name + "' is " + std::string(ir::name(spec.dtype)));
  bool fits = t.dims().size() == spec.dims.size();
  for (size_t d = 0; fits && d < spec.dims.size(); ++d) fits = spec.dims[d] < 0 || spec.dims[d] == t.dims()[d];
  if (!fits)
    return invalidInput(option + ": '" + file + "' has shape " + dimsText(t.dims()) + ", but input '" + spec.name +
                        "' is " + dimsText(spec.dims));
  if (first && first->tensors[index].dims() != t.dims())
    return invalidInput(option + ": '" + file + "' has shape " + dimsText(t.dims()) + ", but the first set's '" +
                        spec.name + "' is " + dimsText(first->tensors[index].dims()) + " (every set has one shape)");
  return Status::ok();
}

Expected<std::vector<ir::Tensor>> runOn(const kiln::Model& model, kiln::Session& session, const InputSet& set,
                                        const std::string& what) {
  auto out = tools::runArtifact(model, session, set.tensors);
  if (!out) return out.status().withContext("running the " + what + " model on '" + set.dir + "'");
  return out;
}

}  // namespace

std::vector<float> floatsOf(const ir::Tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.elementCount()));
  if (t.dtype() == ir::DType::kFloat32) {
    if (!out.empty()) std::memcpy(out.data(), t.bytes().data(), out.size() * sizeof(float));
    return out;
  }
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(t.floatAt(static_cast<int64_t>(i)));
  return out;
}

bool isNumeric(ir::DType dtype) { return dtype != ir::DType::kString && dtype != ir::DType::kBool; }

Expected<std::vector<std::vector<ir::Tensor>>> runArtifactOnSets(const std::string& artifact,
                                                                 const std::vector<InputSet>& sets) {
  std::vector<std::vector<ir::Tensor>> outputs;
  try {
    kiln::Model model(artifact);
    kiln::Session session(model);
    for (const InputSet& set : sets) {
      auto out = tools::runArtifact(model, session, set.tensors);
      if (!out) return out.status().withContext("running '" + artifact + "' on '" + set.dir + "'");
      outputs.push_back(out.take());
    }
  } catch (const kiln::Error& e) {
    return internalError("running '" + artifact + "': " + e.what());
  }
  return outputs;
}

std::vector<quant::OutputError> errorsAgainst(const std::vector<std::vector<ir::Tensor>>& want,
                                             const std::vector<std::vector<ir::Tensor>>& got) {
  std::vector<quant::OutputError> errors(got.empty() ? 0 : got[0].size());
  for (size_t s = 0; s < want.size() && s < got.size(); ++s)
    for (size_t i = 0; i < errors.size() && i < want[s].size() && i < got[s].size(); ++i) {
      const ir::Tensor& w = want[s][i];
      if (!isNumeric(w.dtype()) || w.dims() != got[s][i].dims()) continue;
      errors[i].add(floatsOf(w), floatsOf(got[s][i]), w.dims());
    }
  return errors;
}

Expected<bool> runsHere(const driver::CompileOptions& options) {
  if (options.target != "cpu") return false;
  return codegen::cpu::runsOnThisHost(options.codegen);
}

Status compileToRun(const std::string& source, const std::string& artifact, driver::CompileOptions options) {
  KILN_ASSIGN_OR_RETURN(bool here, runsHere(options));
  if (!here) {
    options.target = "cpu";
    options.codegen.cpu.clear();
    options.codegen.features.clear();
    options.codegen.cuda_arch.clear();
    options.codegen.cuda_precision.clear();
  }
  options.pipeline.print_after.clear();
  options.pipeline.time_passes = false;
  options.emit = driver::Stage::kArtifact;
  options.on_stage = nullptr;
  options.on_lowered = nullptr;
  std::ostringstream quiet;
  auto summary = driver::compileFile(source, artifact, options, quiet);
  return summary ? Status::ok() : summary.status();
}

Expected<std::string> artifactToMeasure(const std::string& source, const std::string& artifact,
                                        const std::string& host_copy, const driver::CompileOptions& options,
                                        bool& host_build) {
  KILN_ASSIGN_OR_RETURN(bool here, runsHere(options));
  host_build = !here;
  if (here) return artifact;
  KILN_RETURN_IF_ERROR(compileToRun(source, host_copy, options).withContext("compiling a copy for this host"));
  return host_copy;
}

Expected<std::vector<InputSet>> readInputSets(const std::string& dir, const std::vector<InputSpec>& inputs,
                                              const std::string& option) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return ioError(option + ": '" + dir + "' is not a folder");
  std::vector<fs::path> set_dirs;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec))
    if (e.is_directory()) set_dirs.push_back(e.path());
  if (ec) return ioError(option + ": cannot list '" + dir + "': " + ec.message());
  std::sort(set_dirs.begin(), set_dirs.end());
  if (set_dirs.empty())
    return invalidInput(option + ": '" + dir +
                        "' has no input sets (expected one subfolder per set holding a .npy or .pb file per model "
                        "input; see docs/quantization.md)");
  std::vector<InputSet> sets;
  for (const fs::path& set_dir : set_dirs) {
    InputSet set{set_dir.string(), {}};
    std::vector<std::optional<ir::Tensor>> slots(inputs.size());
    std::vector<fs::path> files;
    for (const fs::directory_entry& e : fs::directory_iterator(set_dir, ec))
      if (e.is_regular_file() && isTensorFile(e.path())) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const fs::path& file : files) {
      std::optional<size_t> index = inputForStem(file.stem().string(), inputs);
      if (!index) {
        std::string names;
        for (size_t i = 0; i < inputs.size(); ++i) names += (i ? ", " : "") + inputs[i].name;
        return invalidInput(option + ": '" + file.string() + "' names no model input (inputs: " + names +
                            "; or input_<index>)");
      }
      if (slots[*index])
        return invalidInput(option + ": '" + file.string() + "' gives input '" + inputs[*index].name +
                            "' a second time in its set");
      auto tensor = tools::readTensorFile(file.string());
      if (!tensor) return tensor.status().withContext(option);
      KILN_RETURN_IF_ERROR(
          checkTensor(option, file.string(), *tensor, inputs[*index], sets.empty() ? nullptr : &sets[0], *index));
      slots[*index] = tensor.take();
    }
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (!slots[i])
        return invalidInput(option + ": set '" + set.dir + "' has no file for input " + std::to_string(i) + " '" +
                            inputs[i].name + "' (" + inputs[i].name + ".npy, input_" + std::to_string(i) +
                            ".npy or .pb)");
      set.tensors.push_back(std::move(*slots[i]));
    }
    sets.push_back(std::move(set));
  }
  return sets;
}

Status readInputData(const ir::Model& model, const std::string& calibration_dir, const std::string& validation_dir,
                     std::map<std::string, std::vector<int64_t>>& shapes, std::vector<InputSpec>& inputs,
                     std::vector<InputSet>& calibration, std::vector<InputSet>& validation) {
  for (const ir::Value* v : model.graph.inputs) {
    if (v->isConstant()) continue;
    InputSpec spec{v->name, v->type.dtype, {}};
    if (v->type.shape)
      for (const ir::Dim& d : *v->type.shape) spec.dims.push_back(d.isKnown() ? d.value : -1);
    inputs.push_back(std::move(spec));
  }
  if (!calibration_dir.empty()) {
    KILN_ASSIGN_OR_RETURN(calibration, readInputSets(calibration_dir, inputs, "--calibration"));
  }
  if (!validation_dir.empty()) {
    KILN_ASSIGN_OR_RETURN(validation, readInputSets(validation_dir, inputs, "--validation"));
  }
  const std::vector<InputSet>& first = calibration.empty() ? validation : calibration;
  for (size_t i = 0; i < inputs.size() && !first.empty(); ++i)
    if (std::count(inputs[i].dims.begin(), inputs[i].dims.end(), -1) && !shapes.count(inputs[i].name))
      shapes[inputs[i].name] = first[0].tensors[i].dims();
  return Status::ok();
}

QuantizeSession::QuantizeSession() {
  static int counter = 0;
  scratch_ = (fs::temp_directory_path() /
              ("kiln-quantize-" + std::to_string(::getpid()) + "-" + std::to_string(counter++)))
                 .string();
}

QuantizeSession::~QuantizeSession() {
  std::error_code ec;
  fs::remove_all(scratch_, ec);
}

Status QuantizeSession::compileReference(const std::string& source, const driver::CompileOptions& options) {
  driver::CompileOptions ref = options;
  ref.pipeline.quantize = nullptr;
  reference_artifact_ = scratch_ + "/reference.so";
  return compileToRun(source, reference_artifact_, ref).withContext("compiling the float32 model for calibration");
}

Status QuantizeSession::prepare(const std::string& model_path, const QuantizeRequest& request,
                                driver::CompileOptions& options) {
  request_ = request;
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<ir::Model> model, driver::importModel(model_path));
  KILN_RETURN_IF_ERROR(passes::pinInputShapes(*model, options.shapes).withContext("'" + model_path + "'"));
  if (const ir::Node* n = passes::firstQuantizedNode(model->graph))
    return invalidInput("--quantize: '" + model_path + "' is already quantized (it has " + n->describe() +
                        "); compile it without --quantize");
  KILN_RETURN_IF_ERROR(readInputData(*model, request.calibration_dir, request.validation_dir, options.shapes, inputs_,
                                     calibration_, validation_));
  const std::vector<InputSet>& data = calibration_.empty() ? validation_ : calibration_;

  auto spec = std::make_shared<passes::QuantizeSpec>();
  spec->mode = request.mode;
  std::error_code ec;
  fs::create_directories(scratch_, ec);
  if (ec) return ioError("cannot create '" + scratch_ + "': " + ec.message());
  if (request.mode == passes::QuantizeSpec::Mode::kDynamicInt8) {
    if (!data.empty()) KILN_RETURN_IF_ERROR(compileReference(model_path, options));
    options.pipeline.quantize = spec;
    return Status::ok();
  }

  auto start = std::chrono::steady_clock::now();
  // The graph as it will be at the quantize step: the same pipeline without it.
  passes::PipelineOptions pipeline = options.pipeline;
  pipeline.quantize = nullptr;
  pipeline.print_after.clear();
  pipeline.time_passes = false;
  std::ostringstream quiet;
  KILN_RETURN_IF_ERROR(passes::pinInputShapes(*model, options.shapes).withContext("'" + model_path + "'"));
  KILN_RETURN_IF_ERROR(passes::runPipeline(*model, pipeline, quiet)
                           .status()
                           .withContext("--quantize")
                           .withContext("'" + model_path + "'"));
  std::vector<std::string> names = passes::valuesToCalibrate(model->graph);
  std::vector<std::string> layers = passes::quantizableLayers(model->graph);
  model_outputs_ = model->graph.outputs.size();
  calibrated_tensors_ = names.size();
  std::map<std::string, size_t> input_index;  // graph inputs are measured from the files
  for (size_t i = 0; i < inputs_.size(); ++i) input_index[inputs_[i].name] = i;
  std::set<std::string> outputs;
  for (const ir::Value* v : model->graph.outputs) outputs.insert(v->name);
  for (const std::string& name : names)
    if (!input_index.count(name) && !outputs.count(name)) model->graph.outputs.push_back(model->graph.findValue(name));
  std::string source = scratch_ + "/calibration.onnx";
  KILN_RETURN_IF_ERROR(frontend::writeOnnxFile(*model, source));
  KILN_RETURN_IF_ERROR(compileReference(source, options));

  std::map<std::string, quant::TensorStats> stats;
  try {
    kiln::Model artifact(reference_artifact_);
    kiln::Session session(artifact);
    std::map<std::string, size_t> output_index;
    for (size_t i = 0; i < artifact.numOutputs(); ++i) output_index[artifact.output(i).name] = i;
    for (const InputSet& set : calibration_) {
      KILN_ASSIGN_OR_RETURN(std::vector<ir::Tensor> results, runOn(artifact, session, set, "float32"));
      for (const std::string& name : names) {
        const ir::Tensor* t = nullptr;
        if (auto in = input_index.find(name); in != input_index.end()) t = &set.tensors[in->second];
        else if (auto out = output_index.find(name); out != output_index.end()) t = &results[out->second];
        if (t && isNumeric(t->dtype())) stats[name].add(floatsOf(*t));
      }
    }
  } catch (const kiln::Error& e) {
    return internalError(std::string("running the calibration artifact: ") + e.what());
  }
  for (const auto& [name, s] : stats) spec->ranges[name] = quant::chooseRange(s, request.method, request.percentile);
  calibration_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (request.budget) KILN_RETURN_IF_ERROR(chooseFloatLayers(model_path, layers, *spec, options));
  options.pipeline.quantize = spec;
  return Status::ok();
}

Expected<AccuracyReport> QuantizeSession::measure(const std::string& model_path, const std::string& artifact,
                                                  const driver::CompileOptions& options) {
  AccuracyReport report;
  const std::vector<InputSet>& sets = validation_.empty() ? calibration_ : validation_;
  if (sets.empty() || reference_artifact_.empty()) return report;
  KILN_ASSIGN_OR_RETURN(
      std::string quantized_artifact,
      artifactToMeasure(model_path, artifact, scratch_ + "/quantized.so", options, report.host_build));
  report.data = validation_.empty() ? "calibration" : "validation";
  report.sets = static_cast<int>(sets.size());
  report.budget = budget_;
  try {
    kiln::Model ref(reference_artifact_), quantized(quantized_artifact);
    kiln::Session ref_session(ref), quantized_session(quantized);
    std::map<std::string, size_t> ref_index;
    for (size_t i = 0; i < ref.numOutputs(); ++i) ref_index[ref.output(i).name] = i;
    for (size_t i = 0; i < quantized.numOutputs(); ++i) report.rows.push_back({quantized.output(i).name, {}});
    for (const InputSet& set : sets) {
      KILN_ASSIGN_OR_RETURN(std::vector<ir::Tensor> want, runOn(ref, ref_session, set, "float32"));
      KILN_ASSIGN_OR_RETURN(std::vector<ir::Tensor> got, runOn(quantized, quantized_session, set, "quantized"));
      for (size_t i = 0; i < got.size(); ++i) {
        auto it = ref_index.find(report.rows[i].output);
        if (it == ref_index.end() || !isNumeric(got[i].dtype())) continue;
        const ir::Tensor& w = want[it->second];
        if (w.dims() != got[i].dims()) continue;
        report.rows[i].error.add(floatsOf(w), floatsOf(got[i]), w.dims());
      }
    }
  } catch (const kiln::Error& e) {
    return internalError(std::string("measuring accuracy: ") + e.what());
  }
  return report;
}

namespace {

std::string number(double v, int precision) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::ostringstream os;
  os << std::fixed << std::setprecision(precision) << v;
  return os.str();
}

}  // namespace

const char* const kHostBuildNote = ", measured on a build for this machine (the artifact's CPU has features it lacks)";

std::string formatAccuracy(const AccuracyReport& report) {
  std::ostringstream os;
  os << "accuracy of the quantized model against float32 on " << report.sets << " " << report.data << " set"
     << (report.sets == 1 ? "" : "s") << (report.host_build ? kHostBuildNote : "") << ":\n";
  for (const AccuracyRow& row : report.rows) {
    os << "  " << row.output << ": max abs error " << number(row.error.max_abs, 6) << ", SQNR "
       << number(row.error.sqnrDb(), 1) << " dB";
    if (row.error.rows)
      os << ", top-1 agreement " << number(100.0 * row.error.top1Agreement(), 2) << "% (" << row.error.agreeing_rows
         << "/" << row.error.rows << ")";
    os << "\n";
  }
  const QuantizeBudgetReport& b = report.budget;
  if (!b.budget.empty()) {
    os << "accuracy budget " << b.budget << ": " << b.kept_float << " of " << b.quantizable
       << " quantizable layers kept in float32";
    std::string sep = " (";
    for (const LayerSensitivity& l : b.layers)
      if (l.kept_float) os << sep << l.layer << ": " << number(l.alone_db, 1) << " dB alone", sep = ", ";
    os << (sep == ", " ? ")" : "") << "; on the calibration sets the worst output has SQNR " << number(b.sqnr_db, 1)
       << " dB; " << b.compiles << " trial compiles (" << static_cast<int64_t>(b.ms) << " ms)\n";
  }
  return os.str();
}

std::string accuracyJson(const AccuracyReport& report, const std::string& indent) {
  // JSON has no infinity: an exact match reports SQNR null.
  auto json_number = [](double v) { return std::isfinite(v) ? number(v, 6) : std::string("null"); };
  std::ostringstream os;
  os << "{\n"
     << indent << "  \"data\": " << jsonQuote(report.data) << ",\n"
     << indent << "  \"sets\": " << report.sets << ",\n"
     << indent << "  \"host_build\": " << (report.host_build ? "true" : "false") << ",\n"
     << indent << "  \"outputs\": [";
  for (size_t i = 0; i < report.rows.size(); ++i) {
    const AccuracyRow& r = report.rows[i];
    os << (i ? "," : "") << "\n" << indent << "    {\"name\": " << jsonQuote(r.output)
       << ", \"max_abs_error\": " << json_number(r.error.max_abs) << ", \"sqnr_db\": " << json_number(r.error.sqnrDb());
    if (r.error.rows)
      os << ", \"top1_agreement\": " << json_number(r.error.top1Agreement()) << ", \"rows\": " << r.error.rows;
    os << "}";
  }
  os << "\n" << indent << "  ]";
  const QuantizeBudgetReport& b = report.budget;
  if (!b.budget.empty()) {
    os << ",\n" << indent << "  \"accuracy_budget\": {\"budget\": " << jsonQuote(b.budget)
       << ", \"met\": " << (b.met ? "true" : "false") << ", \"quantizable_layers\": " << b.quantizable
       << ", \"float_layers\": " << b.kept_float << ", \"calibration_sqnr_db\": " << json_number(b.sqnr_db)
       << ", \"trial_compiles\": " << b.compiles << ", \"ms\": " << json_number(b.ms) << ", \"layers\": [";
    for (size_t i = 0; i < b.layers.size(); ++i)
      os << (i ? ", " : "") << "{\"name\": " << jsonQuote(b.layers[i].layer)
         << ", \"alone_sqnr_db\": " << json_number(b.layers[i].alone_db)
         << ", \"float\": " << (b.layers[i].kept_float ? "true" : "false") << "}";
    os << "]}";
  }
  os << "\n" << indent << "}";
  return os.str();
}

}  // namespace kiln::cli
