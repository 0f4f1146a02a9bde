#include "tools/kiln/prune_session.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <sstream>

#include "passes/infer_shapes.h"
#include "tools/common/run_artifact.h"

namespace kiln::cli {
namespace fs = std::filesystem;

namespace {

double medianMs(std::vector<double> ms) {
  if (ms.empty()) return 0;
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

PruneSession::PruneSession() {
  static int counter = 0;
  scratch_ =
      (fs::temp_directory_path() / ("kiln-prune-" + std::to_string(::getpid()) + "-" + std::to_string(counter++)))
          .string();
}

PruneSession::~PruneSession() {
  std::error_code ec;
  fs::remove_all(scratch_, ec);
}

Status PruneSession::compileTo(const std::string& model_path, const driver::CompileOptions& options,
                               std::shared_ptr<const passes::PruneSpec> spec, const std::string& artifact) {
  driver::CompileOptions o = options;
  o.pipeline.prune = std::move(spec);
  o.pipeline.quantize = nullptr;
  o.target = "cpu";
  return compileToRun(model_path, artifact, std::move(o));
}

Expected<std::vector<quant::OutputError>> PruneSession::deviation(const std::string& artifact) {
  KILN_ASSIGN_OR_RETURN(auto got, runArtifactOnSets(artifact, calibration_));
  return errorsAgainst(dense_calibration_outputs_, got);
}

Status PruneSession::prepare(const std::string& model_path, const PruneRequest& request,
                             driver::CompileOptions& options) {
  request_ = request;
  spec_ = std::make_shared<passes::PruneSpec>(request.spec);
  spec_->report = std::make_shared<passes::PruneReport>();
  if (request.budget) report_.budget = request.budget->describe();
  bool data = !request.calibration_dir.empty() || !request.validation_dir.empty();
  if (data) {
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<ir::Model> model, driver::importModel(model_path));
    KILN_RETURN_IF_ERROR(passes::pinInputShapes(*model, options.shapes).withContext("'" + model_path + "'"));
    KILN_RETURN_IF_ERROR(readInputData(*model, request.calibration_dir, request.validation_dir, options.shapes,
                                       inputs_, calibration_, validation_));
    std::error_code ec;
    fs::create_directories(scratch_, ec);
    if (ec) return ioError("cannot create '" + scratch_ + "': " + ec.message());
    dense_artifact_ = scratch_ + "/dense.so";
    KILN_RETURN_IF_ERROR(
        compileTo(model_path, options, nullptr, dense_artifact_).withContext("compiling the dense model"));
  }
  if (request.budget) KILN_RETURN_IF_ERROR(chooseRatios(model_path, options));
  options.pipeline.prune = spec_;
  return Status::ok();
}

// Each layer (group) alone at R, else R/2, else R/4: its noise share on the
// calibration sets. Noise from independent layers roughly adds, so layers
// are then raised greedily — most parameters removed per unit of noise —
// while the sum stays within the budget; the combination is measured and,
// while it misses the budget, the search repeats with half the noise.
Status PruneSession::chooseRatios(const std::string& model_path, const driver::CompileOptions& options) {
  auto start = std::chrono::steady_clock::now();
  KILN_ASSIGN_OR_RETURN(dense_calibration_outputs_, runArtifactOnSets(dense_artifact_, calibration_));
  // The layers (groups) the spec would prune, from one run of the passes.
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<ir::Model> model, driver::importModel(model_path));
  KILN_RETURN_IF_ERROR(passes::pinInputShapes(*model, options.shapes).withContext("'" + model_path + "'"));
  passes::PipelineOptions pipeline = options.pipeline;
  pipeline.quantize = nullptr;
  pipeline.print_after.clear();
  pipeline.time_passes = false;
  pipeline.prune = spec_;
  std::ostringstream quiet;
  KILN_RETURN_IF_ERROR(passes::runPipeline(*model, pipeline, quiet).status().withContext("'" + model_path + "'"));
  bool channels = spec_->method == passes::PruneSpec::Method::kChannels;
  std::vector<BudgetChoice> layers;
  std::map<std::string, size_t> index;
  for (const passes::PruneLayerRecord& r : spec_->report->layers) {
    std::string name = channels ? r.group : r.node;
    if (name.empty()) continue;
    auto [it, fresh] = index.emplace(name, layers.size());
    if (fresh) layers.push_back({name, 0, 0, std::numeric_limits<double>::infinity()});
    layers[it->second].params += r.params_before;
  }

  double budget_share = request_.budget->noiseShare();
  double full = spec_->ratio;
  std::string trial = scratch_ + "/trial.so";
  auto measureAt = [&](const std::map<std::string, double>& ratios) -> Expected<std::vector<quant::OutputError>> {
    auto spec = std::make_shared<passes::PruneSpec>(*spec_);
    spec->report = nullptr;
    spec->per_layer = true;
    spec->ratio = 0;
    spec->layer_ratios = ratios;
    KILN_RETURN_IF_ERROR(compileTo(model_path, options, spec, trial).withContext("--accuracy-budget trial"));
    ++report_.budget_compiles;
    return deviation(trial);
  };
  // options[l]: (ratio, noise share) within the budget alone, ascending.
  std::vector<std::vector<std::pair<double, double>>> steps(layers.size(), {{0.0, 0.0}});
  for (size_t l = 0; l < layers.size(); ++l) {
    std::vector<std::pair<double, double>> found;
    for (double ratio : {full, full / 2, full / 4}) {
      KILN_ASSIGN_OR_RETURN(auto errors, measureAt({{layers[l].layer, ratio}}));
      double share = quant::worstNoiseShare(errors);
      if (share <= budget_share) found.insert(found.begin(), {ratio, share});
      if (share <= budget_share / 4) break;  // lower ratios would cost little: stop measuring
    }
    steps[l].insert(steps[l].end(), found.begin(), found.end());
  }
  std::vector<size_t> at(layers.size(), 0);
  for (double cap = budget_share; cap > budget_share / 256; cap /= 2) {
    std::fill(at.begin(), at.end(), 0);
    double total = 0;
    while (true) {
      size_t best = layers.size();
      double best_gain = 0;
      for (size_t l = 0; l < layers.size(); ++l) {
        if (at[l] + 1 >= steps[l].size()) continue;
        const auto& [r0, n0] = steps[l][at[l]];
        const auto& [r1, n1] = steps[l][at[l] + 1];
        double added = std::max(n1 - n0, 1e-12);
        double gain = (r1 - r0) * static_cast<double>(layers[l].params) / added;
        if (total + added <= cap && gain > best_gain) best = l, best_gain = gain;
      }
      if (best == layers.size()) break;
      total += std::max(steps[best][at[best] + 1].second - steps[best][at[best]].second, 1e-12);
      ++at[best];
    }
    std::map<std::string, double> ratios;
    bool any = false;
    for (size_t l = 0; l < layers.size(); ++l) {
      ratios[layers[l].layer] = steps[l][at[l]].first;
      any = any || at[l] > 0;
    }
    if (!any) break;
    KILN_ASSIGN_OR_RETURN(auto errors, measureAt(ratios));
    bool met = std::all_of(errors.begin(), errors.end(),
                           [&](const quant::OutputError& e) { return e.signal == 0 || request_.budget->allows(e); });
    if (!met) continue;
    for (size_t l = 0; l < layers.size(); ++l) {
      layers[l].ratio = steps[l][at[l]].first;
      layers[l].alone_db = quant::noiseShareToDb(steps[l][at[l]].second);
    }
    spec_->per_layer = true;
    spec_->layer_ratios = ratios;
    report_.choices = layers;
    report_.budget_sqnr_db = quant::noiseShareToDb(quant::worstNoiseShare(errors));
    report_.budget_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    return Status::ok();
  }
  return invalidInput("--accuracy-budget " + request_.budget->describe() + ": no layer of the model can be pruned (" +
                      spec_->text + ") within it on the calibration sets; lower the budget or the ratio");
}

Status PruneSession::measure(const std::string& model_path, const std::string& artifact,
                             const driver::CompileOptions& options) {
  const std::vector<InputSet>& sets = validation_.empty() ? calibration_ : validation_;
  if (sets.empty() || dense_artifact_.empty()) return Status::ok();
  AccuracyReport accuracy;
  accuracy.data = validation_.empty() ? "calibration" : "validation";
  accuracy.sets = static_cast<int>(sets.size());
  KILN_ASSIGN_OR_RETURN(std::string pruned_artifact,
                        artifactToMeasure(model_path, artifact, scratch_ + "/pruned.so", options, accuracy.host_build));
  KILN_ASSIGN_OR_RETURN(auto want, runArtifactOnSets(dense_artifact_, sets));
  KILN_ASSIGN_OR_RETURN(auto got, runArtifactOnSets(pruned_artifact, sets));
  std::vector<quant::OutputError> errors = errorsAgainst(want, got);
  try {
    kiln::Model dense(dense_artifact_), pruned(pruned_artifact);
    for (size_t i = 0; i < errors.size(); ++i) accuracy.rows.push_back({pruned.output(i).name, errors[i]});
    // Latency: the two artifacts alternate on the first set, so load on this
    // machine hits both alike.
    kiln::Session dense_session(dense), pruned_session(pruned);
    std::vector<double> dense_ms, pruned_ms;
    auto timed = [&](kiln::Model& m, kiln::Session& s, std::vector<double>& into) -> Status {
      auto t0 = std::chrono::steady_clock::now();
      auto out = tools::runArtifact(m, s, sets[0].tensors);
      if (!out) return out.status();
      into.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      return Status::ok();
    };
    auto timing_start = std::chrono::steady_clock::now();
    for (int run = 0; run < 41; ++run) {
      KILN_RETURN_IF_ERROR(timed(dense, dense_session, dense_ms));
      KILN_RETURN_IF_ERROR(timed(pruned, pruned_session, pruned_ms));
      if (run >= 10 && std::chrono::steady_clock::now() - timing_start > std::chrono::seconds(3)) break;
    }
    // The first pair warms caches and the thread pool.
    dense_ms.erase(dense_ms.begin());
    pruned_ms.erase(pruned_ms.begin());
    report_.latency_runs = static_cast<int>(dense_ms.size());
    report_.dense_ms = medianMs(dense_ms);
    report_.pruned_ms = medianMs(pruned_ms);
  } catch (const kiln::Error& e) {
    return internalError(std::string("measuring the pruned artifact: ") + e.what());
  }
  report_.accuracy = std::move(accuracy);
  return Status::ok();
}

}  // namespace kiln::cli
