// winograd-conv: a 3x3, stride-1 channels-last convolution computed with
// Winograd's minimal filtering F(2x2, 3x3), which multiplies 16 times per
// 2x2 output tile and channel pair where the direct convolution multiplies
// 36 (2.25x fewer). G [16, C, K] is the weight transformed at compile time
// (G g Gt per input/output channel pair, in float64, then rounded). Each
// kiln.ConvNhwc that qualifies takes one of two forms (compiler/ops/winograd.cpp;
// formOf says which):
//
//   banded: kiln.WinogradConv(X, G, bias) -> kiln.WinogradCrop
//   steps:  kiln.WinogradInput(X, pads) -> kiln.WinogradMatMul(., G) -> kiln.WinogradOutput(., bias)
//
// The banded kernel writes whole 2x2 tiles, one row or column more than an
// odd output has; the crop has no reduction, so it fuses into the Relu or
// Concat after it, as the steps' output step does with the bias, Relu and
// residual Add after the convolution.
//
// Taken: float32, constant HWIO weight 3x3, group 1, strides and dilations
// 1, explicit pads (or auto_pad), known shapes, and the channel counts
// formOf asks for. The result is not bit-identical
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

// Which form a 3x3 stride-1 convolution takes.
//  - kBanded (kiln.WinogradConv): one kernel whose three steps run tile row
//    by tile row, so a row's U and M stay in the core's L2 and only the
//    output (padded to whole tiles) leaves it. Every band reads all of the
//    transformed weight, so it must fit in L2 beside a band's U, M and
//    output: kBandCacheBytes, three quarters of the 1 MiB L2 of the Zen 4
//    measured (2 MiB on Intel's Sapphire Rapids).
//  - kSteps (three kernels): U and M pass through memory, 4x the input and
//    the output, but the weight is read once; for wide layers whose weight
//    is larger than L2.
//  - kDirect: the direct kernel, bound by its FMAs.
// Measured on the 2-core Zen 4 (2 threads, interleaved medians, quiet
// machine): SqueezeNet 1.1 ran 3.17 ms direct below 64 input channels,
// 2.80 with its 16-, 32- and 48-channel fire modules banded (0.26 -> 0.19
// ms for 16 -> 64 channels on 55², 0.29 -> 0.17 for 32 -> 128 on 27²);
// ResNet-50's layer1 took the same time banded or in steps (0.57-0.66 ms
// per convolution), as did its 128-channel layer2 in either form. The three
// steps from 16 channels had been 2.75-2.85 ms quiet but 5.04-5.29 against
// 4.11-4.28 direct while another tenant loaded the machine's memory: their
// U and M went through the shared L3. Narrower than 16 input channels or 16
// filters, a tile row fills less than a vector and the direct kernel stays.
constexpr int64_t kMinBandedChannels = 16;
constexpr int64_t kMinStepsChannels = 64;
constexpr int64_t kMinOutputChannels = 16;
constexpr int64_t kBandCacheBytes = 768 << 10;

enum class Form { kDirect, kBanded, kSteps };

Form formOf(int64_t channels, int64_t filters, int64_t out_w) {
  if (filters < kMinOutputChannels) return Form::kDirect;
  const int64_t weight = int64_t{16} * channels * filters * 4;
  // U and M of one tile row (16 points of each tile), and its 2x2 outputs.
  const int64_t band = (out_w + 1) / 2 * (16 * channels + 16 * filters + 4 * filters) * 4;
  if (channels >= kMinBandedChannels && weight + band <= kBandCacheBytes) return Form::kBanded;
  return channels >= kMinStepsChannels ? Form::kSteps : Form::kDirect;
}

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
    std::vector<std::pair<ir::Node*, Form>> convs;
    for (const auto& node : graph.nodes())
      if (Form form = formFor(*node); form != Form::kDirect) convs.emplace_back(node.get(), form);
    if (convs.empty()) return false;
    for (auto [conv, form] : convs) {
      ir::Value* weights = conv->input(1);
      rewrite(graph, conv, form);
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
  // The form `node` takes: kDirect where it is no convolution the pass takes.
  Form formFor(const ir::Node& node) const {
    if (node.domain != ops::kKilnDomain || node.op_type != "ConvNhwc" || node.outputs.size() != 1) return Form::kDirect;
    const ir::Value* x = node.input(0);
    const ir::Value* w = node.input(1);
    const ir::Value* y = node.outputs[0];
    auto xd = knownDims(x);
    auto yd = knownDims(y);
    if (!xd || xd->size() != 4 || !yd || !w || !w->isConstant() || captured_.count(x) || captured_.count(y))
      return Form::kDirect;
    if (x->type.dtype != ir::DType::kFloat32 || w->constant->dtype() != ir::DType::kFloat32) return Form::kDirect;
    const std::vector<int64_t> wd = w->constant->dims();
    if (wd.size() != 4 || wd[0] != 3 || wd[1] != 3) return Form::kDirect;
    if (qgraph::intAttribute(node, "group", 1) != 1 || !allOnes(node, "strides") || !allOnes(node, "dilations"))
      return Form::kDirect;
    if (node.inputs.size() > 2 && node.input(2) && node.input(2)->type.dtype != ir::DType::kFloat32)
      return Form::kDirect;
    return padsOf(node) ? formOf(wd[2], wd[3], (*yd)[2]) : Form::kDirect;
  }

  void rewrite(ir::Graph& graph, ir::Node* conv, Form form) {
    const std::string base = conv->name + "/winograd";
    ir::Value* y = conv->outputs[0];
    ir::Value* g =
        qgraph::tensorConstant(graph, conv->input(1)->name + "_winograd", transformWeight(*conv->input(1)->constant));
    ir::Value* bias = conv->inputs.size() > 2 ? conv->input(2) : nullptr;
    // The last step writes y: the crop of the banded kernel's whole tiles,
    // or the steps' output transform (with the bias).
    auto last = [&](const char* op, const char* suffix, std::vector<ir::Value*> inputs) {
      ir::Node* node = graph.addNode(op, qgraph::uniqueName(graph, base + suffix));
      node->domain = ops::kKilnDomain;
      node->inputs = std::move(inputs);
      const std::vector<int64_t> yd = *knownDims(y);
      node->attributes["output_shape"] = intsAttribute({yd[0], yd[1], yd[2]});
      node->outputs = {y};
      y->producer = node;
      y->producer_output = 0;
    };
    auto step = [&](const char* op, const std::string& name, std::vector<ir::Value*> inputs, const char* suffix) {
      ir::Node* node = qgraph::addNode(graph, op, name, std::move(inputs), y->name + suffix);
      node->domain = ops::kKilnDomain;
      return node;
    };
    if (form == Form::kBanded) {
      std::vector<ir::Value*> inputs = {conv->input(0), g};
      if (bias) inputs.push_back(bias);
      ir::Node* tiles = step("WinogradConv", base, std::move(inputs), "_wino_tiles");
      tiles->attributes["pads"] = intsAttribute(*padsOf(*conv));
      last("WinogradCrop", "_crop", {tiles->outputs[0]});
      return;
    }
    ir::Node* input = step("WinogradInput", base + "_input", {conv->input(0)}, "_wino_u");
    input->attributes["pads"] = intsAttribute(*padsOf(*conv));
    ir::Node* product = step("WinogradMatMul", base + "_matmul", {input->outputs[0], g}, "_wino_m");
    std::vector<ir::Value*> inputs = {product->outputs[0]};
    if (bias) inputs.push_back(bias);
    last("WinogradOutput", "_output", std::move(inputs));
  }

  std::unordered_set<const ir::Value*> captured_;
};

}  // namespace

std::unique_ptr<Pass> createWinogradConv() { return std::make_unique<WinogradConv>(); }

}  // namespace kiln::passes
