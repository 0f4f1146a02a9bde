// `kiln compile --quantize int8 --accuracy-budget B`: mixed precision chosen
// from measurements. With every quantizable layer in int8 the model is
// measured against the float32 reference on the calibration sets; if that
// misses the budget, each layer is measured quantized alone (its
// sensitivity: the noise it adds to the worst output), and the most
// sensitive layers stay in float32 until the rest fit. Noise from separate
// layers roughly adds, so the first guess keeps the fewest layers whose
// removal brings the sum of the others' noise under the budget; each guess is
// then compiled and measured, keeping one more layer while it does not fit.
// Cost: 1 compile when all-int8 fits, else 1 + layers + (usually 1-3).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>

#include "tools/kiln/calibrate.h"

namespace kiln::cli {

Status QuantizeSession::chooseFloatLayers(const std::string& model_path, const std::vector<std::string>& layers,
                                          passes::QuantizeSpec& spec, const driver::CompileOptions& options) {
  auto start = std::chrono::steady_clock::now();
  const quant::AccuracyBudget& budget = *request_.budget;
  budget_ = QuantizeBudgetReport{};
  budget_.budget = budget.describe();
  budget_.quantizable = layers.size();
  KILN_ASSIGN_OR_RETURN(auto reference, runArtifactOnSets(reference_artifact_, calibration_));
  for (auto& outputs : reference) outputs.resize(std::min(outputs.size(), model_outputs_));

  std::string trial_artifact = scratch_ + "/budget_trial.so";
  // The model with `keep` in float32 and the rest in int8, against float32.
  auto measure = [&](const std::set<std::string>& keep) -> Expected<std::vector<quant::OutputError>> {
    auto trial = std::make_shared<passes::QuantizeSpec>(spec);
    trial->keep_float = keep;
    driver::CompileOptions o = options;
    o.pipeline.quantize = trial;
    KILN_RETURN_IF_ERROR(compileToRun(model_path, trial_artifact, o).withContext("--accuracy-budget"));
    ++budget_.compiles;
    KILN_ASSIGN_OR_RETURN(auto got, runArtifactOnSets(trial_artifact, calibration_));
    return errorsAgainst(reference, got);
  };
  auto fits = [&](const std::vector<quant::OutputError>& errors) {
    return std::all_of(errors.begin(), errors.end(), [&](const quant::OutputError& e) { return budget.allows(e); });
  };
  auto finish = [&](const std::set<std::string>& keep, double share, bool met) {
    spec.keep_float = keep;
    budget_.kept_float = keep.size();
    budget_.sqnr_db = quant::noiseShareToDb(share);
    budget_.met = met;
    budget_.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    return Status::ok();
  };

  KILN_ASSIGN_OR_RETURN(auto all_int8, measure({}));
  if (fits(all_int8)) return finish({}, quant::worstNoiseShare(all_int8), true);

  std::set<std::string> all(layers.begin(), layers.end());
  std::vector<double> share(layers.size());
  for (size_t l = 0; l < layers.size(); ++l) {
    std::set<std::string> others = all;
    others.erase(layers[l]);
    KILN_ASSIGN_OR_RETURN(auto alone, measure(others));
    share[l] = quant::worstNoiseShare(alone);
  }
  std::vector<size_t> order(layers.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return share[a] > share[b]; });
  for (size_t l : order) budget_.layers.push_back({layers[l], quant::noiseShareToDb(share[l]), false});

  double rest = std::accumulate(share.begin(), share.end(), 0.0);
  size_t kept = 0;
  while (kept < order.size() && rest > budget.noiseShare()) rest -= share[order[kept++]];
  for (; kept < order.size(); ++kept) {
    std::set<std::string> keep;
    for (size_t i = 0; i < kept; ++i) keep.insert(layers[order[i]]);
    KILN_ASSIGN_OR_RETURN(auto errors, measure(keep));
    if (fits(errors)) {
      for (size_t i = 0; i < kept; ++i) budget_.layers[i].kept_float = true;
      return finish(keep, quant::worstNoiseShare(errors), true);
    }
  }
  // Only float32 fits: nothing is quantized, and the report says so.
  for (LayerSensitivity& l : budget_.layers) l.kept_float = true;
  return finish(all, 0, true);
}

}  // namespace kiln::cli
