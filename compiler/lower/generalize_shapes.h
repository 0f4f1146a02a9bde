// One program for every size of a model's symbolic input dims.
//
// Op lowerings see exact sizes. A model with symbolic input dims (a batch
// `N`, a sequence `S`) is therefore lowered several times, each time with the
// symbols pinned to different sample sizes, and the samples are merged: every
// size, index constant and extent that differs between the samples must be a
// polynomial in the symbols with integer coefficients, at most linear in each
// (N, N*S*768, 2*N-1), which the corner samples of the symbols determine and
// the other samples verify. Each such polynomial becomes a dim slot, computed
// from the input slots at the start of the run, and every place it appeared
// reads the slot. Anything else that differs (the kernels or their
// expressions change shape, a float constant such as 1/N, a constant tensor
// computed from a shape and read at run time) means the code depends on the
// size in a way a slot cannot express: the merge fails naming where, and the
// caller asks the user to pin the dims with --shape.
#pragma once

#include <string>
#include <vector>

#include "compiler/lower/program.h"

namespace kiln::lower {

// The symbols and the sizes each sample pins them to.
struct ShapeSamples {
  std::vector<std::string> symbols;
  // samples[i][j]: the size of symbols[j] in sample i. The first
  // 2^symbols.size() samples are the corners (bit j of i set: the high size
  // of symbol j), the rest check the fit.
  std::vector<std::vector<int64_t>> samples;

  // Corners plus one check point, for `symbols` (at most kMaxSymbols).
  static ShapeSamples forSymbols(std::vector<std::string> symbols);
};

inline constexpr size_t kMaxSymbols = 3;

// Merges programs[i] (lowered at samples.samples[i]) into one program with
// dim slots: slot 1 + j holds symbols[j], derived sizes follow. Inputs' and
// outputs' symbolic dims are named by their polynomial ("N", "N*S").
// `in_place`: whether the arena is planned with the plan-in-place rule.
Expected<Program> generalizeShapes(std::vector<Program> programs, const ShapeSamples& samples, bool in_place);

}  // namespace kiln::lower
