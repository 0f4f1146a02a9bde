// The `prune` step of the pipeline, run when `kiln compile --prune` asks for
// it (docs/pruning.md): magnitude pruning (single weights or 1x16 blocks set
// to zero) and structured channel pruning (output channels removed, the
// tensors shrunk, every reader rewritten).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "compiler/ir/graph.h"

namespace kiln::passes {

// One pruned layer (a Conv, Gemm or MatMul with a constant weight), as the
// step measured it before and after.
struct PruneLayerRecord {
  std::string node;  // node name
  std::string op;
  std::string group;                            // channels: the group it was pruned with (its first producer's name)
  double ratio = 0;                             // the ratio asked of this layer (or its group)
  int64_t params_before = 0, params_after = 0;  // weight elements (channels shrink the tensor)
  int64_t nonzero_before = 0, nonzero_after = 0;
  int64_t flops_before = 0, flops_after = 0;        // 2 x multiply-adds with the nonzero weights
  int64_t channels_before = 0, channels_after = 0;  // output channels / columns

  double sparsity() const {
    return params_before ? 1.0 - static_cast<double>(nonzero_after) / static_cast<double>(params_before) : 0.0;
  }
};

struct PruneReport {
  std::string method;  // as given: "magnitude:0.5", "channels:0.3:..."
  std::vector<PruneLayerRecord> layers;
  // channels: groups of producers whose channels meet at an Add (one mask
  // each), and the groups left alone with the reason.
  int64_t groups_pruned = 0;
  std::vector<std::string> groups_kept;  // "Conv 'x': reaches graph output 'y'"
};

struct PruneSpec {
  enum class Method { kMagnitude, kChannels };
  Method method = Method::kMagnitude;
  double ratio = 0;
  bool blocks = false;     // magnitude: 1x16 blocks instead of single weights
  bool per_layer = false;  // magnitude: every layer at the ratio instead of one global threshold
  // Ratios for named layers (magnitude: node name; channels: a group's first
  // producer), as --accuracy-budget chose them; others take `ratio`.
  std::map<std::string, double> layer_ratios;
  // Filled by the step when set (the last run wins: a model with symbolic
  // dims runs the pipeline once per sample size).
  std::shared_ptr<PruneReport> report;
  std::string text;  // the --prune argument

  double ratioFor(const std::string& layer) const {
    auto it = layer_ratios.find(layer);
    return it == layer_ratios.end() ? ratio : it->second;
  }
};

// Parses --prune: "magnitude:R", "magnitude:R:block", "magnitude:R:per-layer"
// (both options may be given, in either order), "channels:R"; 0 < R < 1.
Expected<PruneSpec> parsePruneSpec(std::string_view text);

// Applies `spec`; fails naming the model's problem when nothing is prunable.
// Requires: shapes inferred.
Expected<bool> runPrune(ir::Model& model, const PruneSpec& spec);

// The steps (prune_magnitude.cpp, prune_channels.cpp), each filling `report`.
Expected<bool> pruneMagnitude(ir::Model& model, const PruneSpec& spec, PruneReport& report);
Expected<bool> pruneChannels(ir::Model& model, const PruneSpec& spec, PruneReport& report);

}  // namespace kiln::passes
