// `kiln compile --prune`: the accuracy budget's per-layer ratios (chosen from
// measured output deviation on the calibration sets), the dense reference
// artifact, and the pruning report (per layer, and the model's output
// deviation and latency against the dense artifact). docs/pruning.md.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "compiler/driver/compile.h"
#include "compiler/quant/accuracy_budget.h"
#include "passes/prune.h"
#include "tools/kiln/calibrate.h"

namespace kiln::cli {

struct PruneRequest {
  passes::PruneSpec spec;
  std::string calibration_dir, validation_dir;
  std::optional<quant::AccuracyBudget> budget;
};

// A layer (magnitude) or group (channels) as the budget search saw it.
struct BudgetChoice {
  std::string layer;
  int64_t params = 0;
  double ratio = 0;     // chosen
  double alone_db = 0;  // SQNR with only this layer pruned at `ratio` (worst output); inf at ratio 0
};

struct PruningReport {
  passes::PruneReport graph;
  std::optional<AccuracyReport> accuracy;  // pruned against dense, on validation (else calibration) sets
  double dense_ms = 0, pruned_ms = 0;      // median latency of interleaved runs on the first set; 0: not measured
  int latency_runs = 0;
  std::string budget;  // the budget as described, empty without --accuracy-budget
  std::vector<BudgetChoice> choices;
  double budget_sqnr_db = 0;  // the chosen ratios together, worst output, on the calibration sets
  int budget_compiles = 0;
  double budget_ms = 0;
};

// The dense reference and the budget search, kept between compiling and
// measuring: a scratch folder removed when this is destroyed.
class PruneSession {
 public:
  PruneSession();
  ~PruneSession();
  PruneSession(const PruneSession&) = delete;
  PruneSession& operator=(const PruneSession&) = delete;

  // Reads the data, compiles the dense reference, runs the budget search
  // and sets options.pipeline.prune. `options` may gain --shape pins for
  // inputs of open size (from the first set).
  Status prepare(const std::string& model_path, const PruneRequest& request, driver::CompileOptions& options);

  // The pruned artifact (compiled from `model_path` with `options`; a host
  // build of it where it cannot run here) against the dense one: accuracy on
  // the validation (else calibration) sets and latency; nothing without data.
  Status measure(const std::string& model_path, const std::string& pruned_artifact,
                 const driver::CompileOptions& options);

  PruningReport& report() { return report_; }

 private:
  Status compileTo(const std::string& model_path, const driver::CompileOptions& options,
                   std::shared_ptr<const passes::PruneSpec> spec, const std::string& artifact);
  // Worst output's error of `artifact` against the dense outputs on the calibration sets.
  Expected<std::vector<quant::OutputError>> deviation(const std::string& artifact);
  Status chooseRatios(const std::string& model_path, const driver::CompileOptions& options);

  std::string scratch_;
  std::string dense_artifact_;
  std::vector<InputSpec> inputs_;
  std::vector<InputSet> calibration_, validation_;
  std::vector<std::vector<ir::Tensor>> dense_calibration_outputs_;
  PruneRequest request_;
  std::shared_ptr<passes::PruneSpec> spec_;
  PruningReport report_;
};

// The report for a terminal, and as a JSON object.
std::string formatPruning(const PruningReport& report);
std::string pruningJson(const PruningReport& report, const std::string& indent);
// The HTML report's "Pruning" section.
void renderPruningHtml(std::ostream& os, const PruningReport& report);

}  // namespace kiln::cli
