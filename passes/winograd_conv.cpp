// winograd-conv: a 3x3, stride-1 channels-last convolution computed with
// Winograd's minimal filtering F(2x2, 3x3), which multiplies 16 times per
// 2x2 output tile and channel pair where the direct convolution multiplies
// 36 (2.25x fewer). Each kiln.ConvNhwc that qualifies becomes
//
//   kiln.WinogradInput(X, pads) -> kiln.WinogradMatMul(., G) -> kiln.WinogradOutput(., bias)
//
// (compiler/ops/winograd.cpp), where G [16, C, K] is the weight transformed
// at compile time (G g Gt per input/output channel pair, in float64, then
// rounded). The product is a contraction the CPU backend tiles like any
// other; the output step has no reduction, so the bias, Relu and residual
// Add after the convolution fuse into it.
//
// Taken: float32, constant HWIO weight 3x3, group 1, strides and dilations
// 1, explicit pads (or auto_pad), known shapes, and at least
// kMinInputChannels input and kMinOutputChannels output channels. The result is not bit-identical
// to the direct convolution: the transforms add and subtract partial sums
// in another order (about 5e-7 of the output's largest magnitude, measured
// in tests/passes/winograd_conv_test.cpp), and an infinite input spreads
// to the whole 2x2 tile it falls in (padding is read as 0 * x).
// Requires: shapes inferred; runs after channels-last.
#include <algorithm>

#include "compiler/ops/op_registry.h"
#include "passes/pass.h"
#include "passes/quantize_graph.h"
#include "passes/value_uses.h"

namespace kiln::passes {
namespace {

// Measured (docs/architecture.md): at 64 input channels and more the three
// steps take 0.4-0.9 of the direct kernel's time; at 16 (SqueezeNet's first
// fire modules, 16 -> 64 channels on 55x55) 1.6x, at 32 and 48 about the
// same, so narrower inputs stay with the direct kernel. The output needs
// one vector of channels: narrower, every step fills less than a vector.
// Measured again on the 2-core Zen 4 (SqueezeNet 1.1, interleaved): with the
// threshold at 16 the model ran 2.75-2.85 ms against 3.12-3.16 while the
// machine was quiet, and 5.04-5.29 against 4.11-4.28 while another tenant
// loaded it (ONNX Runtime then 5.3 ms against 3.5): the direct kernel is
// bound by its FMAs, the three steps by U and M (4x the output) passing
// through the shared L3. At 48 the difference was within 2% either way.
// Narrower inputs stay direct until the steps run band by band in L2.
constexpr int64_t kMinInputChannels = 64;
constexpr int64_t kMinOutputChannels = 16;

std::optional<std::vector<int64_t>> knownDims(const ir::Value* v) {
  if (!v || !v->type.shape) return std::nullopt;
  return ir::knownDims(*v->type.shape);
}

bool allOnes(const ir::Node& node, const char* name) {
  const ir::Attribute* a = node.attribute(name);
  return !a || std::all_of(a->ints.begin(), a->ints.end(), [](int64_t v) { return v == 1; });
}

// The convolution's pads (top, left, bottom, right), or nullopt for an
// auto_pad it does not resolve.
std::optional<std::vector<int64_t>> padsOf(const ir::Node& node) {
  const ir::Attribute* auto_pad = node.attribute("auto_pad");
  const std::string mode = auto_pad ? auto_pad->s : "NOTSET";
  if (mode == "VALID") return std::vector<int64_t>{0, 0, 0, 0};
  // Stride 1, a 3-wide window: two positions of padding, one each side.
  if (mode == "SAME_UPPER" || mode == "SAME_LOWER") return std::vector<int64_t>{1, 1, 1, 1};
  if (mode != "NOTSET") return std::nullopt;
  const ir::Attribute* pads = node.attribute("pads");
  if (!pads) return std::vector<int64_t>{0, 0, 0, 0};
  if (pads->ints.size() != 4) return std::nullopt;
  return pads->ints;
}

// G g Gt for every (c, k) of an HWIO weight [3, 3, C, K], as [16, C, K].
ir::Tensor transformWeight(const ir::Tensor& w) {
  static constexpr double kG[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  const int64_t channels = w.dims()[2], filters = w.dims()[3];
  const auto* src = reinterpret_cast<const float*>(w.bytes().data());
  const int64_t plane = channels * filters;
  // Written in place in the tensor's bytes: a float vector handed to
  // fromValues would hold the transformed weight twice for a moment.
  std::vector<std::byte> bytes(static_cast<size_t>(16 * plane) * sizeof(float));
  auto* out = reinterpret_cast<float*>(bytes.data());
  for (int64_t ck = 0; ck < plane; ++ck) {
    for (int a = 0; a < 4; ++a)
      for (int b = 0; b < 4; ++b) {
        double sum = 0;
        for (int r = 0; r < 3; ++r)
          for (int s = 0; s < 3; ++s) sum += kG[a][r] * kG[b][s] * src[(r * 3 + s) * plane + ck];
        out[static_cast<size_t>((a * 4 + b) * plane + ck)] = static_cast<float>(sum);
      }
  }
  return ir::Tensor::fromBytes(ir::DType::kFloat32, {16, channels, filters}, std::move(bytes));
}

ir::Attribute intsAttribute(std::vector<int64_t> values) {
  ir::Attribute a;
  a.kind = ir::Attribute::Kind::kInts;
  a.ints = std::move(values);
  return a;
}

class WinogradConv final : public Pass {
 public:
  std::string_view name() const override { return "winograd-conv"; }
  std::string_view summary() const override {
    return "compute 3x3 stride-1 channels-last convolutions with Winograd F(2x2, 3x3)";
  }

  Expected<bool> run(ir::Model& model) override {
    ir::Graph& graph = model.graph;
    captured_ = capturedBySubgraphs(graph);
    std::vector<ir::Node*> convs;
    for (const auto& node : graph.nodes())
      if (qualifies(*node)) convs.push_back(node.get());
    if (convs.empty()) return false;
    for (ir::Node* conv : convs) {
      ir::Value* weights = conv->input(1);
      rewrite(graph, conv);
      graph.eraseNode(conv);
      // Freed now, not at the pass's end: ResNet-50's peak compile memory
      // was the HWIO weights and all their transforms at once.
      releaseIfUnread(graph, weights);
    }
    KILN_RETURN_IF_ERROR(graph.sortTopologically());
    graph.removeUnusedValues();  // the HWIO weights now read by nothing
    return true;
  }

 private:
  bool qualifies(const ir::Node& node) const {
    if (node.domain != ops::kKilnDomain || node.op_type != "ConvNhwc" || node.outputs.size() != 1) return false;
    const ir::Value* x = node.input(0);
    const ir::Value* w = node.input(1);
    const ir::Value* y = node.outputs[0];
    auto xd = knownDims(x);
    auto yd = knownDims(y);
    if (!xd || xd->size() != 4 || !yd || !w || !w->isConstant() || captured_.count(x) || captured_.count(y))
      return false;
    if (x->type.dtype != ir::DType::kFloat32 || w->constant->dtype() != ir::DType::kFloat32) return false;
    const std::vector<int64_t> wd = w->constant->dims();
    if (wd.size() != 4 || wd[0] != 3 || wd[1] != 3) return false;
    if (qgraph::intAttribute(node, "group", 1) != 1 || !allOnes(node, "strides") || !allOnes(node, "dilations"))
      return false;
    if (node.inputs.size() > 2 && node.input(2) && node.input(2)->type.dtype != ir::DType::kFloat32) return false;
    return padsOf(node) && wd[2] >= kMinInputChannels && wd[3] >= kMinOutputChannels;
  }

  void rewrite(ir::Graph& graph, ir::Node* conv) {
    const std::string base = conv->name + "/winograd";
    ir::Value* y = conv->outputs[0];
    ir::Node* input = qgraph::addNode(graph, "WinogradInput", base + "_input", {conv->input(0)}, y->name + "_wino_u");
    input->domain = ops::kKilnDomain;
    input->attributes["pads"] = intsAttribute(*padsOf(*conv));
    ir::Value* g = qgraph::tensorConstant(graph, conv->input(1)->name + "_winograd",
                                          transformWeight(*conv->input(1)->constant));
    ir::Node* product =
        qgraph::addNode(graph, "WinogradMatMul", base + "_matmul", {input->outputs[0], g}, y->name + "_wino_m");
    product->domain = ops::kKilnDomain;
    ir::Node* output = graph.addNode("WinogradOutput", qgraph::uniqueName(graph, base + "_output"));
    output->domain = ops::kKilnDomain;
    output->inputs = {product->outputs[0]};
    if (conv->inputs.size() > 2 && conv->input(2)) output->inputs.push_back(conv->input(2));
    const std::vector<int64_t> yd = *knownDims(y);
    output->attributes["output_shape"] = intsAttribute({yd[0], yd[1], yd[2]});
    output->outputs = {y};
    y->producer = output;
    y->producer_output = 0;
  }

  std::unordered_set<const ir::Value*> captured_;
};

}  // namespace

std::unique_ptr<Pass> createWinogradConv() { return std::make_unique<WinogradConv>(); }

}  // namespace kiln::passes
