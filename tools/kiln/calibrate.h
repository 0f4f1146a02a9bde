// `kiln compile --quantize`: reading calibration/validation folders,
// calibrating activations by running the float32 model as a native artifact,
// and the accuracy report comparing float32 and quantized artifacts.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "compiler/driver/compile.h"
#include "compiler/ir/tensor.h"
#include "compiler/quant/accuracy_budget.h"
#include "compiler/quant/calibration.h"
#include "passes/quantize.h"

namespace kiln::cli {

// What a folder's files must match: one model input.
struct InputSpec {
  std::string name;
  ir::DType dtype = ir::DType::kFloat32;
  std::vector<int64_t> dims;  // -1 where the model leaves the size open
};

// One input set: a subfolder of a calibration or validation folder.
struct InputSet {
  std::string dir;
  std::vector<ir::Tensor> tensors;  // in the model's input order
};

// The sets of `dir` (one subfolder per set, a file per input named after the
// input or input_<i>, .npy or .pb; docs/quantization.md). Errors start with
// `option` and name the folder or file at fault.
Expected<std::vector<InputSet>> readInputSets(const std::string& dir, const std::vector<InputSpec>& inputs,
                                              const std::string& option);

// A tensor's elements as float32 (what the error measures compare).
std::vector<float> floatsOf(const ir::Tensor& t);
// Whether a tensor of `dtype` has values the error measures can compare.
bool isNumeric(ir::DType dtype);

// Compiles `source` to the artifact `artifact` for this process to run, as a
// measuring step does: no printing, no pass timing, no progress callbacks.
// The options' own CPU target when its artifact runs on this machine (the
// numbers are then the target's own), else this host with the same pipeline
// and precision: `--cpu sapphirerapids` calibrates on a machine without AMX.
Status compileToRun(const std::string& source, const std::string& artifact, driver::CompileOptions options);

// Whether `options` build an artifact this machine runs (a CPU target whose
// features the host has).
Expected<bool> runsHere(const driver::CompileOptions& options);

// The artifact that stands for `artifact` (compiled from `source` with
// `options`) in a measurement: itself when it runs here, else a build for
// this host at `host_copy`. `host_build` says which.
Expected<std::string> artifactToMeasure(const std::string& source, const std::string& artifact,
                                        const std::string& host_copy, const driver::CompileOptions& options,
                                        bool& host_build);

// The model's data inputs (constants left out) into `inputs`, and the sets of
// `calibration_dir` and `validation_dir` (either may be empty) into
// `calibration` and `validation`. An input of open size that --shape leaves
// open takes the first set's shape in `shapes`: the measuring compiles run a
// static model.
Status readInputData(const ir::Model& model, const std::string& calibration_dir, const std::string& validation_dir,
                     std::map<std::string, std::vector<int64_t>>& shapes, std::vector<InputSpec>& inputs,
                     std::vector<InputSet>& calibration, std::vector<InputSet>& validation);

// The outputs of `artifact` run on each set, in set order.
Expected<std::vector<std::vector<ir::Tensor>>> runArtifactOnSets(const std::string& artifact,
                                                                 const std::vector<InputSet>& sets);
// Per output of `got` (by position): its error against `want`, over all sets.
std::vector<quant::OutputError> errorsAgainst(const std::vector<std::vector<ir::Tensor>>& want,
                                             const std::vector<std::vector<ir::Tensor>>& got);

struct QuantizeRequest {
  passes::QuantizeSpec::Mode mode = passes::QuantizeSpec::Mode::kInt8;
  std::string calibration_dir, validation_dir;
  quant::CalibrationMethod method = quant::CalibrationMethod::kMinMax;
  double percentile = 99.99;
  // --accuracy-budget (int8): the most sensitive layers stay float32 until
  // the whole model's error on the calibration sets fits.
  std::optional<quant::AccuracyBudget> budget;
};

// A quantizable layer as the accuracy budget's search measured it.
struct LayerSensitivity {
  std::string layer;
  double alone_db = 0;  // worst output SQNR with only this layer quantized
  bool kept_float = false;
};

struct QuantizeBudgetReport {
  std::string budget;                    // as described; empty without --accuracy-budget
  std::vector<LayerSensitivity> layers;  // most sensitive first; empty when all-int8 fit at once
  size_t quantizable = 0;
  size_t kept_float = 0;
  double sqnr_db = 0;  // the chosen mix, worst output, on the calibration sets
  bool met = false;
  int compiles = 0;
  double ms = 0;
};

struct AccuracyRow {
  std::string output;
  quant::OutputError error;
};

struct AccuracyReport {
  std::string data;  // "calibration" or "validation", and how many sets
  int sets = 0;
  // Measured on a build of the same model for this host: the artifact's CPU
  // target has features this machine lacks.
  bool host_build = false;
  std::vector<AccuracyRow> rows;
  QuantizeBudgetReport budget;  // how --accuracy-budget chose the float32 layers
};

// Calibration and the float32 reference, kept between compiling and
// measuring: a scratch folder removed when this is destroyed.
class QuantizeSession {
 public:
  QuantizeSession();
  ~QuantizeSession();
  QuantizeSession(const QuantizeSession&) = delete;
  QuantizeSession& operator=(const QuantizeSession&) = delete;

  // Reads the data, calibrates (int8) and fills options.pipeline.quantize.
  // `options` may gain --shape pins for inputs of open size (from the first set).
  Status prepare(const std::string& model_path, const QuantizeRequest& request, driver::CompileOptions& options);

  // Float32 against the quantized artifact (compiled from `model_path` with
  // `options`; a host build of it where it cannot run here) on the validation
  // sets, else the calibration sets; an empty report when there is no data.
  Expected<AccuracyReport> measure(const std::string& model_path, const std::string& quantized_artifact,
                                   const driver::CompileOptions& options);

  int calibrationSets() const { return static_cast<int>(calibration_.size()); }
  double calibrationMs() const { return calibration_ms_; }
  size_t calibratedTensors() const { return calibrated_tensors_; }

 private:
  // Compiles the float32 model at `source` to reference_artifact_.
  Status compileReference(const std::string& source, const driver::CompileOptions& options);
  // --accuracy-budget: fills spec.keep_float (quantize_budget.cpp).
  Status chooseFloatLayers(const std::string& model_path, const std::vector<std::string>& layers,
                           passes::QuantizeSpec& spec, const driver::CompileOptions& options);

  std::string scratch_;
  std::string reference_artifact_;  // float32, the model's outputs first
  std::vector<InputSpec> inputs_;
  std::vector<InputSet> calibration_, validation_;
  QuantizeRequest request_;
  double calibration_ms_ = 0;
  size_t calibrated_tensors_ = 0;
  size_t model_outputs_ = 0;  // the reference artifact's first outputs are the model's
  QuantizeBudgetReport budget_;
};

// The accuracy table for a terminal, and as a JSON object.
std::string formatAccuracy(const AccuracyReport& report);
// Said after "on N sets" where a report was measured on a host build.
extern const char* const kHostBuildNote;
std::string accuracyJson(const AccuracyReport& report, const std::string& indent);

}  // namespace kiln::cli
