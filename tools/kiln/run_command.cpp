// `kiln run` and `kiln check`: feed inputs to an artifact and print, save or
// compare its outputs.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>

#include "tools/common/input_files.h"
#include "tools/common/run_artifact.h"
#include "tools/common/tensor_files.h"
#include "tools/common/test_case.h"
#include "tools/common/values.h"
#include "tools/kiln/commands.h"
#include "tools/kiln/escape.h"

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;

// Inputs given as FILE (in model order) or NAME=FILE; every input needs one.
Expected<std::vector<tools::Value>> readInputs(const kiln::Model& model, const std::vector<std::string>& specs) {
  KILN_ASSIGN_OR_RETURN(auto slots, tools::readInputValueFiles(model, specs));
  std::vector<tools::Value> inputs;
  for (size_t i = 0; i < slots.size(); ++i) {
    if (!slots[i]) return invalidInput("no value given for input " + std::to_string(i) + " '" + model.input(i).name + "'");
    inputs.push_back(std::move(*slots[i]));
  }
  return inputs;
}

void printTensor(std::ostream& os, const std::string& name, const ir::Tensor& t) {
  os << name << ": " << ir::name(t.dtype()) << "[" << ir::toString(ir::makeShape(t.dims())) << "] = [";
  int64_t n = t.elementCount(), shown = std::min<int64_t>(n, 8);
  for (int64_t i = 0; i < shown; ++i) {
    os << (i ? ", " : "");
    if (t.dtype() == ir::DType::kString) os << std::quoted(t.strings()[static_cast<size_t>(i)]);
    else if (ir::isFloat(t.dtype())) os << std::setprecision(6) << t.floatAt(i);
    else os << t.intAt(i);
  }
  os << (n > shown ? ", ...]" : "]") << "\n";
}

struct RunArgs {
  std::string artifact;
  std::vector<std::string> inputs;
  std::string output_dir;
  int threads = 0;
  int repeat = 1;
};

int runRun(const RunArgs& args) {
  auto model = tools::loadArtifact(args.artifact);
  if (!model) return reportError(model.status());
  auto inputs = readInputs(**model, args.inputs);
  if (!inputs) return reportError(inputs.status());
  kiln::Session session(**model, args.threads);
  std::vector<double> times_ms;
  Expected<std::vector<tools::Value>> outputs = std::vector<tools::Value>{};
  for (int r = 0; r < std::max(1, args.repeat); ++r) {
    auto start = std::chrono::steady_clock::now();
    outputs = tools::runArtifactValues(**model, session, *inputs);
    times_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    if (!outputs) return reportError(outputs.status());
  }
  for (size_t i = 0; i < outputs->size(); ++i) {
    const tools::Value& v = (*outputs)[i];
    std::string name = (*model)->output(i).name;
    bool sequence = v.kind == KILN_KIND_SEQUENCE || v.kind == KILN_KIND_OPTIONAL_SEQUENCE;
    if (!v.present) std::cout << name << ": empty optional\n";
    else if (sequence) std::cout << name << ": sequence of " << v.tensors.size() << " tensors\n";
    for (size_t k = 0; k < v.tensors.size(); ++k) {
      std::string suffix = sequence ? "_" + std::to_string(k) : "";
      printTensor(std::cout, sequence ? name + "[" + std::to_string(k) + "]" : name, v.tensors[k]);
      if (args.output_dir.empty()) continue;
      // A sequence's elements go to output_<i>_<k>.npy.
      std::error_code ec;
      fs::create_directories(args.output_dir, ec);
      std::string path = (fs::path(args.output_dir) / ("output_" + std::to_string(i) + suffix + ".npy")).string();
      if (Status s = tools::writeNpy(path, v.tensors[k]); !s) return reportError(s);
    }
  }
  std::sort(times_ms.begin(), times_ms.end());
  std::cout << std::fixed << std::setprecision(3) << "time: " << times_ms[times_ms.size() / 2] << " ms";
  if (times_ms.size() > 1) std::cout << " (median of " << times_ms.size() << " runs, min " << times_ms.front() << " ms)";
  std::cout << "\n";
  return kExitOk;
}

struct CheckArgs {
  std::string artifact;
  std::string test_dir;
  double rtol = 1e-3;
  double atol = 1e-7;
  int threads = 0;
};

int runCheck(const CheckArgs& args) {
  auto model = tools::loadArtifact(args.artifact);
  if (!model) return reportError(model.status());
  auto sets = tools::testDataSets(args.test_dir);
  if (!sets) return reportError(sets.status());
  kiln::Session session(**model, args.threads);
  auto mismatch = tools::checkTestCase(**model, session, args.test_dir, {args.rtol, args.atol});
  if (!mismatch) return reportError(mismatch.status());
  if (*mismatch) {
    std::cerr << "kiln: mismatch: " << oneLine(**mismatch) << "\n";
    return kExitMismatch;
  }
  std::cout << "ok: " << sets->size() << " data set(s) match within rtol " << args.rtol << ", atol " << args.atol << "\n";
  return kExitOk;
}

}  // namespace

void addRunCommands(CLI::App& app, int& exit_code) {
  auto run = std::make_shared<RunArgs>();
  CLI::App* cmd = app.add_subcommand("run", "Run an artifact on inputs (.npy or ONNX TensorProto .pb; a sequence or optional input as an ONNX SequenceProto or OptionalProto .pb)");
  cmd->add_option("artifact", run->artifact, "compiled model (.so)")->required();
  cmd->add_option("-i,--input", run->inputs, "input file, in the model's input order, or NAME=FILE (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--output-dir", run->output_dir, "write each output as output_K.npy here (a sequence's elements as output_K_E.npy)");
  cmd->add_option("--threads", run->threads, "worker threads (0: one per core)")->check(CLI::Range(0, 1024));
  cmd->add_option("--repeat", run->repeat, "run this many times and report the median time")->check(CLI::Range(1, 100000));
  cmd->callback([run, &exit_code] { exit_code = runRun(*run); });

  auto check = std::make_shared<CheckArgs>();
  CLI::App* chk = app.add_subcommand("check", "Compare an artifact's outputs with an ONNX test case's expected outputs");
  chk->add_option("artifact", check->artifact, "compiled model (.so)")->required();
  chk->add_option("--test-dir", check->test_dir, "ONNX backend test case folder (holds test_data_set_*)")->required();
  chk->add_option("--rtol", check->rtol, "relative tolerance")->capture_default_str();
  chk->add_option("--atol", check->atol, "absolute tolerance")->capture_default_str();
  chk->add_option("--threads", check->threads, "worker threads (0: one per core)")->check(CLI::Range(0, 1024));
  chk->callback([check, &exit_code] { exit_code = runCheck(*check); });
}

}  // namespace kiln::cli
