// --accuracy-budget: how far a compressed model (pruned, and later
// quantized) may drift from the original on calibration inputs. Defined
// once so every compression that measures itself reads it the same way
// (docs/pruning.md, "Accuracy budget").
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "compiler/quant/calibration.h"
#include "compiler/support/status.h"

namespace kiln::quant {

struct AccuracyBudget {
  // Every numeric output's SQNR against the original model, in dB, at least this.
  double min_sqnr_db = 0;
  // Classifier outputs ([N, C]): the share of rows whose arg-max agrees, at least this (0..1).
  std::optional<double> min_top1;

  // Whether one output's measured error stays within the budget.
  bool allows(const OutputError& error) const;
  // The largest relative noise power Σ(ref−got)² / Σref² the SQNR floor allows.
  double noiseShare() const;
  // "30 dB" or "30 dB, top-1 >= 99%".
  std::string describe() const;
};

// Σ(ref−got)²/Σref² of the worst output (infinite where an output with no
// signal picked up noise); what a budget's noiseShare() is compared with.
double worstNoiseShare(const std::vector<OutputError>& errors);
// The SQNR in dB that a noise share means (infinite for 0).
double noiseShareToDb(double share);

// "30", "30dB", "30dB,top1=99" (top-1 agreement in percent). Errors name
// the option and what was expected.
Expected<AccuracyBudget> parseAccuracyBudget(std::string_view text);

}  // namespace kiln::quant
