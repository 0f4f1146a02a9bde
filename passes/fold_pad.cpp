// fold-pad: a Pad by zeros of the spatial axes only, read only as the input
// of 2-D or N-D convolutions, becomes those convolutions' own padding:
//
//   Pad(x, pads [0, 0, t, l, 0, 0, b, r]) -> Conv(pads [pt, pl, pb, pr])
//   =>  Conv(x, pads [pt + t, pl + l, pb + b, pr + r])
//
// which is how TensorFlow's converters write "SAME" padding (an explicit Pad
// before each strided convolution). A Pad of its own would copy the whole
// activation first; in the convolution it is only a guard on the reads (and
// channels-last keeps the NHWC layout through it). Taken: mode "constant"
// (the default) with value 0, pads and axes constant (read as the Pad's
// lowering reads them, ops::padSpec: attributes before
// opset 11, inputs from 11, axes from 18), none negative, zero on the batch
// and channel axes; float convolutions whose auto_pad is NOTSET or VALID.
// Requires: shapes inferred.
#include <algorithm>

#include "compiler/ops/pads.h"
#include "passes/pass.h"
#include "passes/value_uses.h"

namespace kiln::passes {
namespace {

// The Pad's begin and end padding of each axis, [b0, b1, ..., e0, e1, ...],
// as its lowering reads them (ops::padSpec), when it pads the spatial axes
// by zeros in constant mode.
std::optional<std::vector<int64_t>> zeroPads(const ir::Node& pad, int64_t opset, size_t rank) {
  Expected<ops::PadSpec> spec = ops::padSpec(ops::NodeView(pad, static_cast<int>(opset)), rank);
  if (!spec || spec->mode != "constant") return std::nullopt;
  if (opset < 11) {
    const ir::Attribute* value = pad.attribute("value");
    if (value && value->f != 0.0f) return std::nullopt;
  } else if (pad.inputs.size() > 2 && pad.input(2)) {
    const ir::Value* value = pad.input(2);
    if (!value->isConstant() || value->constant->elementCount() != 1 || value->constant->floatAt(0) != 0.0)
      return std::nullopt;
  }
  std::vector<int64_t> pads = spec->begin;
  pads.insert(pads.end(), spec->end.begin(), spec->end.end());
  if (std::any_of(pads.begin(), pads.end(), [](int64_t v) { return v < 0; })) return std::nullopt;
  if (pads[0] || pads[1] || pads[rank] || pads[rank + 1]) return std::nullopt;  // batch or channel
  return pads;
}

bool takesPadding(const ir::Node& conv, const ir::Value* x) {
  if (!conv.domain.empty() || conv.op_type != "Conv" || conv.input(0) != x) return false;
  for (size_t i = 1; i < conv.inputs.size(); ++i)
    if (conv.input(i) == x) return false;
  const ir::Attribute* auto_pad = conv.attribute("auto_pad");
  return !auto_pad || auto_pad->s == "NOTSET" || auto_pad->s == "VALID";
}

class FoldPad final : public Pass {
 public:
  std::string_view name() const override { return "fold-pad"; }
  std::string_view summary() const override {
    return "fold a Pad by zeros of the spatial axes into the convolutions that read it";
  }

  Expected<bool> run(ir::Model& model) override {
    ir::Graph& graph = model.graph;
    const auto captured = capturedBySubgraphs(graph);
    auto imported = model.opset_imports.find("");
    const int64_t opset = imported == model.opset_imports.end() ? 0 : imported->second;
    bool changed = false;
    std::vector<ir::Node*> pads;
    for (const auto& node : graph.nodes())
      if (node->domain.empty() && node->op_type == "Pad" && node->outputs.size() == 1 && node->outputs[0])
        pads.push_back(node.get());
    for (ir::Node* pad : pads) {
      ir::Value* x = pad->input(0);
      ir::Value* y = pad->outputs[0];
      if (!x || !x->type.shape || !ir::isFloat(x->type.dtype) || captured.count(y) || isGraphOutput(graph, y)) continue;
      const size_t rank = x->type.shape->size();
      if (rank < 3) continue;
      auto p = zeroPads(*pad, opset, rank);
      std::vector<ir::Node*> readers = graph.usersOf(y);
      if (!p || readers.empty() ||
          !std::all_of(readers.begin(), readers.end(), [&](const ir::Node* r) { return takesPadding(*r, y); }))
        continue;
      const size_t spatial = rank - 2;
      for (ir::Node* conv : readers) {
        std::vector<int64_t> conv_pads(2 * spatial, 0);
        const ir::Attribute* auto_pad = conv->attribute("auto_pad");
        if (const ir::Attribute* a = conv->attribute("pads"); a && !(auto_pad && auto_pad->s == "VALID"))
          conv_pads = a->ints;
        if (conv_pads.size() != 2 * spatial) continue;  // a malformed Conv keeps its error
        for (size_t i = 0; i < spatial; ++i) {
          conv_pads[i] += (*p)[2 + i];
          conv_pads[spatial + i] += (*p)[rank + 2 + i];
        }
        ir::Attribute attr;
        attr.kind = ir::Attribute::Kind::kInts;
        attr.ints = conv_pads;
        conv->attributes["pads"] = attr;
        conv->attributes.erase("auto_pad");
        conv->inputs[0] = x;
        changed = true;
      }
    }
    if (changed) graph.removeDeadNodes();
    return changed;
  }
};

}  // namespace

std::unique_ptr<Pass> createFoldPad() { return std::make_unique<FoldPad>(); }

}  // namespace kiln::passes
