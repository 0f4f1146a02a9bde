// Magnitude pruning: the weights (or 1x16 blocks, prune/weight_masks.h) of
// least magnitude in every Conv, Gemm and MatMul with a constant float32
// weight are set to zero. Global by default: one threshold over all layers'
// scores, so layers with many small weights lose more; per-layer: each layer
// loses its ratio. Layers named in the spec's layer_ratios (an accuracy
// budget's choice) are pruned at their own ratio outside the global pool.
// A weight read by several nodes is pruned once, for all of them.
// The tensors keep their shapes: the dense kernels run unchanged, and a
// weight with enough all-zero blocks gets the block-sparse kernel.
// Requires: shapes inferred.
#include <unordered_set>

#include "passes/prune.h"
#include "passes/prune_layers.h"

namespace kiln::passes {
namespace {

struct LayerScores {
  PrunableLayer layer;
  std::vector<float> weight;
  std::vector<float> scores;
};

}  // namespace

Expected<bool> pruneMagnitude(ir::Model& model, const PruneSpec& spec, PruneReport& report) {
  prune::Unit unit = spec.blocks ? prune::Unit::kBlock : prune::Unit::kElement;
  std::vector<LayerScores> layers;
  std::unordered_set<const ir::Value*> seen;  // a shared weight is pruned once
  for (const PrunableLayer& layer : prunableLayers(model.graph)) {
    const ir::Value* w = layer.node->input(layer.weight_input);
    if (!seen.insert(w).second) continue;
    LayerScores s{layer, floatData(*w->constant), {}};
    s.scores = prune::unitScores(s.weight, layer.view, unit);
    layers.push_back(std::move(s));
  }
  if (layers.empty())
    return invalidInput("--prune " + spec.text +
                        ": the model has no Conv, Gemm or MatMul with a constant float32 weight, so nothing can be "
                        "pruned");

  // Which units go: per layer, or the lowest over the global pool.
  std::vector<std::vector<uint8_t>> pruned(layers.size());
  std::vector<size_t> pool;
  for (size_t l = 0; l < layers.size(); ++l) {
    const std::string& name = layers[l].layer.node->name;
    if (spec.per_layer || spec.layer_ratios.count(name)) {
      double ratio = spec.ratioFor(name);
      pruned[l] = prune::lowestScores(layers[l].scores,
                                      prune::unitsToRemove(ratio, static_cast<int64_t>(layers[l].scores.size())));
    } else {
      pool.push_back(l);
    }
  }
  if (!pool.empty()) {
    std::vector<float> all;
    for (size_t l : pool) all.insert(all.end(), layers[l].scores.begin(), layers[l].scores.end());
    std::vector<uint8_t> flags =
        prune::lowestScores(all, prune::unitsToRemove(spec.ratio, static_cast<int64_t>(all.size())));
    size_t at = 0;
    for (size_t l : pool) {
      pruned[l].assign(flags.begin() + static_cast<std::ptrdiff_t>(at),
                       flags.begin() + static_cast<std::ptrdiff_t>(at + layers[l].scores.size()));
      at += layers[l].scores.size();
    }
  }

  bool changed = false;
  for (size_t l = 0; l < layers.size(); ++l) {
    LayerScores& s = layers[l];
    PruneLayerRecord record;
    measureLayer(s.layer, record, /*after=*/false);
    record.ratio = spec.per_layer || spec.layer_ratios.count(record.node) ? spec.ratioFor(record.node) : spec.ratio;
    prune::zeroUnits(s.weight, s.layer.view, unit, pruned[l]);
    ir::Node& node = *s.layer.node;
    // In place: every reader of a shared weight sees the pruned one.
    ir::Value* w = node.inputs[s.layer.weight_input];
    w->constant = floatTensor(w->constant->dims(), s.weight);
    measureLayer(s.layer, record, /*after=*/true);
    changed = changed || record.nonzero_after != record.nonzero_before;
    report.layers.push_back(std::move(record));
  }
  return changed;
}

}  // namespace kiln::passes
