// Channel pruning: removes whole output channels of Conv (group 1), Gemm and
// MatMul layers with constant weights — those with the smallest L2 norm —
// and shrinks every tensor that carries them, so the dense kernels simply
// get smaller.
//
// Each candidate layer's output starts a channel space. Spaces are followed
// forward through ops that keep channels apart (activations, pools,
// BatchNormalization, per-channel constants, Concat along the channel axis,
// Flatten / Reshape to [N, -1]) to the readers that consume them: a Conv's
// input channels, a Gemm's or MatMul's weight rows. Spaces that meet at a
// binary op (a residual Add, a squeeze-excitation Mul) must be pruned alike:
// they become one group with one shared mask, scored by the sum of the
// members' squared channel norms. A group whose channels reach anything
// else — a graph output, a Reshape, a Softmax, a channel-mixing op, a
// subgraph — is left alone, and the report says why.
// Requires: shapes inferred (channel axes and sizes must be static).
#include <algorithm>
#include <map>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "passes/prune.h"
#include "passes/prune_layers.h"
#include "passes/value_uses.h"

namespace kiln::passes {
namespace {

// Channel c of a value: channel `index` of space `space`, or a channel no
// pruning may remove (space -1: from a graph input or an unprunable layer).
struct Slot {
  int space = -1;
  int64_t index = 0;
};

struct ChannelMap {
  size_t rank = 0, axis = 0;
  std::vector<Slot> slots;
};

// A constant input of a node sliced along `dim`, keeping the positions whose slot survives.
struct Cut {
  ir::Node* node;
  size_t input;
  size_t dim;
  std::vector<Slot> slots;
};

const ir::Shape* shapeOf(const ir::Value* v) { return v && v->type.shape ? &*v->type.shape : nullptr; }

std::optional<std::vector<int64_t>> staticDims(const ir::Value* v) {
  const ir::Shape* s = shapeOf(v);
  if (!s) return std::nullopt;
  std::vector<int64_t> dims;
  for (const ir::Dim& d : *s) {
    if (!d.isKnown()) return std::nullopt;
    dims.push_back(d.value);
  }
  return dims;
}

int64_t intAttr(const ir::Node& node, const char* name, int64_t fallback) {
  const ir::Attribute* a = node.attribute(name);
  return a ? a->i : fallback;
}

bool hasReaders(const ir::Graph& graph, const ir::Value* v) {
  return v && (!graph.usersOf(v).empty() || isGraphOutput(graph, v));
}

class ChannelAnalysis {
 public:
  explicit ChannelAnalysis(ir::Graph& graph) : graph_(graph) {}

  void run();
  Expected<bool> apply(const PruneSpec& spec, PruneReport& report);

 private:
  using Handler = void (ChannelAnalysis::*)(ir::Node&);
  static const std::unordered_map<std::string, Handler>& handlers();

  const ChannelMap* mapOf(const ir::Value* v) const {
    auto it = maps_.find(v);
    return it == maps_.end() ? nullptr : &it->second;
  }
  int find(int s) {
    while (parent_[s] != s) s = parent_[s] = parent_[parent_[s]];
    return s;
  }
  void poison(const ChannelMap& map, const std::string& why) {
    for (const Slot& slot : map.slots)
      if (slot.space >= 0 && reason_[find(slot.space)].empty()) reason_[find(slot.space)] = why;
  }
  void poisonInputs(const ir::Node& node, const std::string& why) {
    for (const ir::Value* in : node.inputs)
      if (const ChannelMap* m = mapOf(in)) poison(*m, why);
  }
  // The one space a map is, in order (channel c is the space's channel c), or -1.
  int identitySpace(const ChannelMap& map) {
    if (map.slots.empty() || map.slots[0].space < 0) return -1;
    int root = find(map.slots[0].space);
    if (static_cast<int64_t>(map.slots.size()) != size_[root]) return -1;
    for (size_t c = 0; c < map.slots.size(); ++c)
      if (map.slots[c].space < 0 || find(map.slots[c].space) != root || map.slots[c].index != static_cast<int64_t>(c))
        return -1;
    return root;
  }
  void unite(int a, int b) {
    a = find(a), b = find(b);
    if (a == b) return;
    if (b < a) std::swap(a, b);
    parent_[b] = a;
    if (reason_[a].empty()) reason_[a] = reason_[b];
  }
  void startSpace(const PrunableLayer& layer);
  // Node handlers: the node reads at least one mapped value.
  void passThrough(ir::Node& node);
  void pool(ir::Node& node);
  void normalization(ir::Node& node);
  void binary(ir::Node& node);
  void concat(ir::Node& node);
  void flatten(ir::Node& node);
  void reshape(ir::Node& node);
  void conv(ir::Node& node);
  void gemm(ir::Node& node);
  void matmul(ir::Node& node);
  // The output takes input 0's map when the node is otherwise channel-neutral.
  bool forward(ir::Node& node, ChannelMap map);
  void flattenTo2d(ir::Node& node, const ChannelMap& map);

  ir::Graph& graph_;
  std::unordered_map<const ir::Value*, ChannelMap> maps_;
  std::vector<int> parent_;
  std::vector<int64_t> size_;
  std::vector<std::string> reason_;       // of a root: why its group is left alone
  std::vector<PrunableLayer> producers_;  // per space
  std::vector<Cut> cuts_;
};

const std::unordered_map<std::string, ChannelAnalysis::Handler>& ChannelAnalysis::handlers() {
  static const std::unordered_map<std::string, Handler> kHandlers = [] {
    std::unordered_map<std::string, Handler> h;
    for (const char* op :
         {"Relu",     "LeakyRelu", "Sigmoid",  "Tanh",     "HardSigmoid", "HardSwish", "Elu",
          "Selu",     "Celu",      "Softplus", "Softsign", "Mish",        "Gelu",      "Erf",
          "Identity", "Neg",       "Abs",      "Clip",     "Dropout",     "Cast",      "ThresholdedRelu",
          "Sqrt",     "Exp"})
      h[op] = &ChannelAnalysis::passThrough;
    for (const char* op : {"MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"})
      h[op] = &ChannelAnalysis::pool;
    for (const char* op : {"BatchNormalization", "InstanceNormalization"}) h[op] = &ChannelAnalysis::normalization;
    for (const char* op : {"Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "PRelu", "Pow"})
      h[op] = &ChannelAnalysis::binary;
    h["Concat"] = &ChannelAnalysis::concat;
    h["Flatten"] = &ChannelAnalysis::flatten;
    h["Reshape"] = &ChannelAnalysis::reshape;
    h["Conv"] = &ChannelAnalysis::conv;
    h["Gemm"] = &ChannelAnalysis::gemm;
    h["MatMul"] = &ChannelAnalysis::matmul;
    return h;
  }();
  return kHandlers;
}

// A layer whose output channels can be removed: its weight's output rows
// and its bias shrink with them.
std::optional<PrunableLayer> channelProducer(ir::Node& node) {
  auto layer = prunableLayer(node);
  if (!layer || !shapeOf(node.outputs[0])) return std::nullopt;
  const ir::Value* bias = node.input(2);
  if (bias && !bias->isConstant()) return std::nullopt;
  if (node.op_type == "Conv") return intAttr(node, "group", 1) == 1 ? layer : std::nullopt;
  if (node.op_type == "Gemm" && bias) {
    const std::vector<int64_t>& d = bias->constant->dims();
    if (d.size() > 2 || (!d.empty() && d.back() != layer->view.outputs && d.back() != 1)) return std::nullopt;
  }
  return layer;
}

void ChannelAnalysis::startSpace(const PrunableLayer& layer) {
  int s = static_cast<int>(parent_.size());
  parent_.push_back(s);
  size_.push_back(layer.view.outputs);
  reason_.emplace_back();
  producers_.push_back(layer);
  const ir::Value* out = layer.node->outputs[0];
  ChannelMap map;
  map.rank = shapeOf(out)->size();
  map.axis = layer.node->op_type == "Conv" ? 1 : map.rank - 1;
  for (int64_t c = 0; c < layer.view.outputs; ++c) map.slots.push_back({s, c});
  maps_[out] = std::move(map);
}

void ChannelAnalysis::run() {
  std::unordered_set<const ir::Value*> captured = capturedBySubgraphs(graph_);
  for (const auto& node_ptr : graph_.nodes()) {
    ir::Node& node = *node_ptr;
    bool reads_mapped = false;
    for (const ir::Value* in : node.inputs) reads_mapped = reads_mapped || mapOf(in);
    if (reads_mapped) {
      auto it = node.domain.empty() ? handlers().find(node.op_type) : handlers().end();
      if (it == handlers().end())
        poisonInputs(node, "read by " + node.describe());
      else
        (this->*it->second)(node);
    }
    if (auto layer = channelProducer(node)) startSpace(*layer);
  }
  for (const ir::Value* out : graph_.outputs)
    if (const ChannelMap* map = mapOf(out)) poison(*map, "reaches graph output '" + out->name + "'");
  for (const auto& node : graph_.nodes())
    for (const ir::Value* out : node->outputs)
      if (const ChannelMap* map = mapOf(out); map && captured.count(out))
        poison(*map, "'" + out->name + "' is read inside a subgraph");
}

bool ChannelAnalysis::forward(ir::Node& node, ChannelMap map) {
  for (size_t i = 1; i < node.outputs.size(); ++i)
    if (hasReaders(graph_, node.outputs[i])) {
      poisonInputs(node, node.describe() + "'s output " + std::to_string(i) + " is used");
      return false;
    }
  const ir::Shape* out = shapeOf(node.outputs[0]);
  if (!out || out->size() != map.rank) {
    poisonInputs(node, node.describe() + " changes the rank");
    return false;
  }
  maps_[node.outputs[0]] = std::move(map);
  return true;
}

void ChannelAnalysis::passThrough(ir::Node& node) {
  const ChannelMap* map = mapOf(node.input(0));
  for (size_t i = 1; i < node.inputs.size(); ++i)
    if (node.inputs[i] && (!node.inputs[i]->isConstant() || mapOf(node.inputs[i]))) map = nullptr;
  if (!map) return poisonInputs(node, "read by " + node.describe() + " with a run-time parameter");
  forward(node, *map);
}

void ChannelAnalysis::pool(ir::Node& node) {
  const ChannelMap* map = mapOf(node.input(0));
  if (!map || map->axis != 1) return poisonInputs(node, "pooled over channels by " + node.describe());
  forward(node, *map);
}

void ChannelAnalysis::normalization(ir::Node& node) {
  const ChannelMap* map = mapOf(node.input(0));
  bool ok = map && map->axis == 1 && intAttr(node, "training_mode", 0) == 0;
  for (size_t i = 1; ok && i < node.inputs.size(); ++i) {
    const ir::Value* p = node.inputs[i];
    ok = p && p->isConstant() && p->constant->dims().size() == 1 &&
         p->constant->dims()[0] == static_cast<int64_t>(map->slots.size());
  }
  if (!ok) return poisonInputs(node, "normalized by " + node.describe() + " with run-time statistics");
  if (!forward(node, *map)) return;
  for (size_t i = 1; i < node.inputs.size(); ++i) cuts_.push_back({&node, i, 0, map->slots});
}

void ChannelAnalysis::binary(ir::Node& node) {
  if (node.inputs.size() != 2 || !node.inputs[0] || !node.inputs[1])
    return poisonInputs(node, "read by " + node.describe() + " with other than two inputs");
  const ChannelMap* a = mapOf(node.inputs[0]);
  const ChannelMap* b = mapOf(node.inputs[1]);
  if (a && b) {
    int sa = identitySpace(*a), sb = identitySpace(*b);
    if (sa < 0 || sb < 0 || a->axis + (b->rank - a->rank) != b->axis || size_[sa] != size_[sb])
      return poisonInputs(node, "channels in different orders meet at " + node.describe());
    unite(sa, sb);
    forward(node, a->rank >= b->rank ? *a : *b);
    return;
  }
  size_t mapped = a ? 0 : 1;
  const ChannelMap& map = a ? *a : *b;
  const ir::Value* other = node.inputs[1 - mapped];
  std::optional<std::vector<int64_t>> dims = other->isConstant() ? other->constant->dims() : staticDims(other);
  // Where `other`'s dims line up with the mapped value's (numpy broadcasting).
  std::ptrdiff_t d =
      dims ? static_cast<std::ptrdiff_t>(dims->size()) - static_cast<std::ptrdiff_t>(map.rank - map.axis) : -1;
  int64_t size = static_cast<int64_t>(map.slots.size());
  bool fits = dims && dims->size() <= map.rank;
  bool per_channel = fits && d >= 0 && (*dims)[static_cast<size_t>(d)] == size && size != 1;
  bool uniform = fits && (d < 0 || (*dims)[static_cast<size_t>(d)] == 1);
  if (!uniform && !(per_channel && other->isConstant()))
    return poisonInputs(node, "mixed with a run-time per-channel value at " + node.describe());
  if (!forward(node, map)) return;
  if (per_channel) cuts_.push_back({&node, 1 - mapped, static_cast<size_t>(d), map.slots});
}

void ChannelAnalysis::concat(ir::Node& node) {
  const ir::Shape* out = shapeOf(node.outputs[0]);
  if (!out) return poisonInputs(node, "concatenated with unknown shapes at " + node.describe());
  int64_t axis = intAttr(node, "axis", 0);
  if (axis < 0) axis += static_cast<int64_t>(out->size());
  ChannelMap joined{out->size(), static_cast<size_t>(axis), {}};
  for (const ir::Value* in : node.inputs) {
    const ChannelMap* m = mapOf(in);
    if (m && (m->axis != joined.axis || m->rank != joined.rank))
      return poisonInputs(node, "concatenated along another axis at " + node.describe());
    if (m) {
      joined.slots.insert(joined.slots.end(), m->slots.begin(), m->slots.end());
      continue;
    }
    auto dims = staticDims(in);
    if (!dims || dims->size() != joined.rank)
      return poisonInputs(node, "concatenated with a run-time size at " + node.describe());
    joined.slots.insert(joined.slots.end(), static_cast<size_t>((*dims)[joined.axis]), Slot{});
  }
  forward(node, std::move(joined));
}

void ChannelAnalysis::flattenTo2d(ir::Node& node, const ChannelMap& map) {
  auto dims = staticDims(node.input(0));
  if (!dims || map.axis != 1) return poisonInputs(node, "reshaped across channels by " + node.describe());
  int64_t inner = 1;
  for (size_t d = 2; d < dims->size(); ++d) inner *= (*dims)[d];
  ChannelMap flat{2, 1, {}};
  for (const Slot& s : map.slots) flat.slots.insert(flat.slots.end(), static_cast<size_t>(inner), s);
  forward(node, std::move(flat));
}

void ChannelAnalysis::flatten(ir::Node& node) {
  const ChannelMap* map = mapOf(node.input(0));
  if (intAttr(node, "axis", 1) != 1) return poisonInputs(node, "reshaped across channels by " + node.describe());
  flattenTo2d(node, *map);
}

void ChannelAnalysis::reshape(ir::Node& node) {
  const ChannelMap* map = mapOf(node.input(0));
  const ir::Value* shape = node.input(1);
  auto dims = staticDims(node.input(0));
  // Only [0 or N, -1]: the target shape stays right when channels go.
  bool to_rows = map && !mapOf(shape) && shape && shape->isConstant() && shape->constant->elementCount() == 2 && dims &&
                 (shape->constant->intAt(0) == 0 || shape->constant->intAt(0) == (*dims)[0]) &&
                 shape->constant->intAt(1) == -1 && intAttr(node, "allowzero", 0) == 0;
  if (!to_rows) return poisonInputs(node, "reshaped by " + node.describe());
  flattenTo2d(node, *map);
}

void ChannelAnalysis::conv(ir::Node& node) {
  const ChannelMap* map = mapOf(node.input(0));
  bool ok = map && map->axis == 1 && intAttr(node, "group", 1) == 1 && node.input(1) && node.input(1)->isConstant();
  for (size_t i = 1; i < node.inputs.size(); ++i) ok = ok && !mapOf(node.inputs[i]);
  if (!ok) return poisonInputs(node, "read by " + node.describe() + " (grouped, or a run-time weight)");
  cuts_.push_back({&node, 1, 1, map->slots});
}

void ChannelAnalysis::gemm(ir::Node& node) {
  const ChannelMap* map = mapOf(node.input(0));
  bool ok = map && map->rank == 2 && map->axis == 1 && intAttr(node, "transA", 0) == 0 && node.input(1) &&
            node.input(1)->isConstant() && !mapOf(node.input(1)) && !mapOf(node.input(2));
  if (!ok) return poisonInputs(node, "read by " + node.describe() + " (transposed, or a run-time weight)");
  cuts_.push_back({&node, 1, intAttr(node, "transB", 0) ? size_t{1} : size_t{0}, map->slots});
}

void ChannelAnalysis::matmul(ir::Node& node) {
  const ChannelMap* map = mapOf(node.input(0));
  const ir::Value* b = node.input(1);
  bool ok = map && map->axis + 1 == map->rank && b && b->isConstant() && b->constant->dims().size() == 2 && !mapOf(b);
  if (!ok) return poisonInputs(node, "read by " + node.describe() + " (not against a constant [K, N] weight)");
  cuts_.push_back({&node, 1, 0, map->slots});
}

// `t` with only the positions `keep` of dim `dim`, for any dtype.
ir::Tensor sliceTensor(const ir::Tensor& t, size_t dim, const std::vector<int64_t>& keep) {
  std::vector<int64_t> dims = t.dims();
  int64_t outer = 1, inner = 1;
  for (size_t d = 0; d < dim; ++d) outer *= dims[d];
  for (size_t d = dim + 1; d < dims.size(); ++d) inner *= dims[d];
  size_t elem = t.elementCount() ? t.bytes().size() / static_cast<size_t>(t.elementCount()) : 0;
  size_t run = static_cast<size_t>(inner) * elem;
  std::vector<std::byte> out;
  out.reserve(static_cast<size_t>(outer) * keep.size() * run);
  const std::byte* src = t.bytes().data();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k : keep) {
      const std::byte* from = src + (static_cast<size_t>(o * dims[dim] + k)) * run;
      out.insert(out.end(), from, from + run);
    }
  dims[dim] = static_cast<int64_t>(keep.size());
  return ir::Tensor::fromBytes(t.dtype(), std::move(dims), std::move(out));
}

Expected<bool> ChannelAnalysis::apply(const PruneSpec& spec, PruneReport& report) {
  // Producers: the weight's output rows and the bias.
  for (size_t s = 0; s < producers_.size(); ++s) {
    const PrunableLayer& p = producers_[s];
    std::vector<Slot> own;
    for (int64_t c = 0; c < p.view.outputs; ++c) own.push_back({static_cast<int>(s), c});
    cuts_.push_back({p.node, 1, static_cast<size_t>(p.out_dim), own});
    if (const ir::Value* bias = p.node->input(2);
        bias && !bias->constant->dims().empty() && bias->constant->dims().back() == p.view.outputs)
      cuts_.push_back({p.node, 2, bias->constant->dims().size() - 1, own});
  }
  // One mask per group: the lowest summed squared norms go.
  std::vector<std::vector<uint8_t>> removed(parent_.size());
  std::map<int, std::vector<size_t>> members;
  for (size_t s = 0; s < parent_.size(); ++s) members[find(static_cast<int>(s))].push_back(s);
  std::unordered_map<const ir::Node*, std::pair<std::string, double>> group_of;
  for (const auto& [root, spaces] : members) {
    const std::string& name = producers_[spaces[0]].node->name;
    if (!reason_[root].empty()) {
      report.groups_kept.push_back(producers_[spaces[0]].node->describe() +
                                   (spaces.size() > 1 ? " (+" + std::to_string(spaces.size() - 1) + " more)" : "") +
                                   ": " + reason_[root]);
      continue;
    }
    std::vector<float> scores(static_cast<size_t>(size_[root]), 0.0f);
    for (size_t s : spaces) {
      const PrunableLayer& p = producers_[s];
      std::vector<double> norms = prune::outputNormsSquared(floatData(*p.node->input(1)->constant), p.view);
      for (size_t c = 0; c < norms.size(); ++c) scores[c] += static_cast<float>(norms[c]);
    }
    double ratio = spec.ratioFor(name);
    int64_t count = std::min(prune::unitsToRemove(ratio, size_[root]), size_[root] - 1);
    removed[root] = prune::lowestScores(scores, count);
    ++report.groups_pruned;
    for (size_t s : spaces) group_of[producers_[s].node] = {name, ratio};
  }
  if (report.groups_pruned == 0) {
    std::string why = report.groups_kept.empty() ? "the model has no Conv (group 1), Gemm or MatMul with a constant "
                                                   "float32 weight"
                                                 : "every candidate is kept: " + report.groups_kept[0];
    return invalidInput("--prune " + spec.text + ": no channel can be removed; " + why);
  }

  std::unordered_map<const ir::Node*, PruneLayerRecord> records;
  std::vector<PrunableLayer> layers = prunableLayers(graph_);
  for (const PrunableLayer& l : layers) measureLayer(l, records[l.node], /*after=*/false);
  bool changed = false;
  for (const Cut& cut : cuts_) {
    std::vector<int64_t> keep;
    for (size_t c = 0; c < cut.slots.size(); ++c) {
      const Slot& s = cut.slots[c];
      bool gone =
          s.space >= 0 && !removed[find(s.space)].empty() && removed[find(s.space)][static_cast<size_t>(s.index)];
      if (!gone) keep.push_back(static_cast<int64_t>(c));
    }
    if (keep.size() == cut.slots.size()) continue;
    const ir::Tensor& t = *cut.node->inputs[cut.input]->constant;
    if (cut.dim >= t.dims().size() || t.dims()[cut.dim] != static_cast<int64_t>(cut.slots.size()))
      return internalError("channel pruning: " + cut.node->describe() + " input " + std::to_string(cut.input) +
                           " does not have " + std::to_string(cut.slots.size()) + " entries along dim " +
                           std::to_string(cut.dim));
    setConstantInput(graph_, *cut.node, cut.input, sliceTensor(t, cut.dim, keep));
    changed = true;
  }
  for (const PrunableLayer& l : layers) {
    PruneLayerRecord& r = records[l.node];
    measureLayer(l, r, /*after=*/true);
    if (r.params_after == r.params_before) continue;
    if (auto g = group_of.find(l.node); g != group_of.end()) std::tie(r.group, r.ratio) = g->second;
    report.layers.push_back(r);
  }
  return changed;
}

}  // namespace

Expected<bool> pruneChannels(ir::Model& model, const PruneSpec& spec, PruneReport& report) {
  ChannelAnalysis analysis(model.graph);
  analysis.run();
  return analysis.apply(spec, report);
}

}  // namespace kiln::passes
