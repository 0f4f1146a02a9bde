// channels-last: 2-D float32 convolutions run over channels-last (NHWC) data
// on the CPU, where the output channel is the vector axis: the weight is
// packed into panels as a MatMul's is, and the activations are broadcast one
// pixel at a time (kiln.ConvNhwc, compiler/ops/conv.cpp). Each Conv becomes
//
//   Transpose(X, 0 2 3 1) -> kiln.ConvNhwc(W as [kh, kw, C/group, M]) -> Transpose(0 3 1 2)
//
// and then the transposes back to NCHW are sunk below the ops that do not
// care about the layout (elementwise ops, per-channel constants permuted
// with them, Concat along the channels) or have a channels-last twin (the
// pools: kiln.MaxPoolNhwc...) until they meet a transpose to NHWC, with
// which they cancel. A chain of convolutions then
// runs channels-last from its first conversion to its last, and only its
// edges (the network's input, a Flatten, a Reshape) pay for a transpose.
//
// Convolutions taken: float32 Conv of any group (groups of fewer than 8
// filters merged, see widenGroups), and 8-bit QLinearConv of group 1 (kiln.QLinearConvNhwc,
// compiler/ops/quantized_linear.cpp, which the int8 dot-product microkernel
// runs), each with known shapes and a constant weight. A float32 stem (at
// most 4 input channels, group 1) with explicit pads reads
// kiln.PadNhwc(X) instead and has pads 0 (padStemInput). The per-tensor
// QuantizeLinear and DequantizeLinear between quantized convolutions sink
// like any elementwise op, so a quantized network stays channels-last too.
// Only for the CPU target, and not when the graph is written back as ONNX
// (--emit onnx): these are Kiln's own ops.
#include <algorithm>
#include <set>

#include "compiler/ops/op_registry.h"
#include "compiler/ops/window.h"
#include "passes/pass.h"
#include "passes/quantize_graph.h"
#include "passes/value_uses.h"

namespace kiln::passes {
namespace {

const std::vector<int64_t> kToNhwc = {0, 2, 3, 1};
const std::vector<int64_t> kToNchw = {0, 3, 1, 2};
// Where NCHW's axis i sits in NHWC (the inverse of kToNhwc).
const std::vector<int64_t>& kNhwcPosition = kToNchw;

std::optional<std::vector<int64_t>> knownDims(const ir::Value* v) {
  if (!v || !v->type.shape) return std::nullopt;
  return ir::knownDims(*v->type.shape);
}

std::vector<int64_t> permuted(const std::vector<int64_t>& dims, const std::vector<int64_t>& perm) {
  std::vector<int64_t> out;
  for (int64_t p : perm) out.push_back(dims[static_cast<size_t>(p)]);
  return out;
}

// NCHW axes (negative counting from the end) as NHWC axes; nullopt where one
// is out of range.
std::optional<std::vector<int64_t>> nhwcAxes(const std::vector<int64_t>& axes) {
  std::vector<int64_t> out;
  for (int64_t a : axes) {
    if (a < -4 || a > 3) return std::nullopt;
    out.push_back(kNhwcPosition[static_cast<size_t>(a < 0 ? a + 4 : a)]);
  }
  return out;
}

ir::Value* int64Constant(ir::Graph& graph, const std::string& name, const std::vector<int64_t>& values) {
  return qgraph::tensorConstant(
      graph, name,
      ir::Tensor::fromValues<int64_t>(ir::DType::kInt64, {static_cast<int64_t>(values.size())},
                                      std::span<const int64_t>(values)));
}

bool isTranspose(const ir::Node* node, const std::vector<int64_t>& perm) {
  if (!node || !node->domain.empty() || node->op_type != "Transpose") return false;
  const ir::Attribute* p = node->attribute("perm");
  return p && p->ints == perm;
}

// The NHWC value `v` is the NCHW view of, when a transpose made it from one.
ir::Value* nhwcSource(const ir::Value* v) {
  return v && isTranspose(v->producer, kToNchw) ? v->producer->input(0) : nullptr;
}

// Elementwise ops whose first input is the tensor and whose other inputs,
// if any, are scalars (Clip's bounds, a per-tensor scale and zero point).
const std::set<std::string>& unaryOps() {
  static const std::set<std::string> kOps = {"Relu",  "Sigmoid", "Tanh",     "Clip",     "LeakyRelu", "HardSigmoid",
                                             "HardSwish", "Elu", "Selu",     "Celu",     "Erf",       "Exp",
                                             "Neg",   "Abs",     "Sqrt",     "Softplus", "Softsign",  "Gelu",
                                             "Mish",  "Identity", "Floor",   "Ceil",     "Round",     "Sign",
                                             "QuantizeLinear", "DequantizeLinear"};
  return kOps;
}

// Pools with a channels-last twin in Kiln's domain (compiler/ops/pool.cpp):
// MaxPool becomes kiln.MaxPoolNhwc, and so on.
const std::set<std::string>& poolOps() {
  static const std::set<std::string> kOps = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"};
  return kOps;
}

// Reductions that do not care which axis is which.
const std::set<std::string>& reduceOps() {
  static const std::set<std::string> ops = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"};
  return ops;
}

// Broadcasting elementwise ops over every input.
const std::set<std::string>& broadcastOps() {
  static const std::set<std::string> kOps = {"Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Pow", "PRelu"};
  return kOps;
}

bool allOnes(const std::vector<int64_t>& dims) {
  return std::all_of(dims.begin(), dims.end(), [](int64_t d) { return d == 1; });
}

class ChannelsLast final : public Pass {
 public:
  std::string_view name() const override { return "channels-last"; }
  std::string_view summary() const override {
    return "run 2-D convolutions over NHWC data (kiln.ConvNhwc) and cancel the transposes between them";
  }

  Expected<bool> run(ir::Model& model) override {
    ir::Graph& graph = model.graph;
    captured_ = capturedBySubgraphs(graph);
    auto opset = model.opset_imports.find("");
    opset_ = opset == model.opset_imports.end() ? 0 : opset->second;
    std::vector<ir::Node*> convs;
    for (const auto& node : graph.nodes())
      if (convertible(*node)) convs.push_back(node.get());
    if (convs.empty()) return false;
    model.opset_imports[std::string(ops::kKilnDomain)] = 1;
    for (ir::Node* conv : convs) {
      ir::Value* weights = conv->input(conv->op_type == "QLinearConv" ? 3 : 1);
      convert(graph, conv);
      graph.eraseNode(conv);  // a graph output keeps it alive otherwise, beside its replacement
      releaseIfUnread(graph, weights);  // now in HWIO
    }
    KILN_RETURN_IF_ERROR(graph.sortTopologically());
    for (bool changed = true; changed;) {
      changed = false;
      std::vector<ir::Node*> nodes;
      for (const auto& node : graph.nodes()) nodes.push_back(node.get());
      std::set<ir::Node*> erased;
      for (ir::Node* node : nodes) {
        if (erased.count(node)) continue;
        if (cancel(graph, *node) || sink(graph, node)) {
          changed = true;
          if (!node->outputs.empty() && node->outputs[0] && node->outputs[0]->producer != node) {
            graph.eraseNode(node);
            erased.insert(node);
          }
        }
      }
      KILN_RETURN_IF_ERROR(graph.sortTopologically());  // removeDeadNodes walks producers before readers
      graph.removeDeadNodes();
    }
    graph.removeUnusedValues();
    return true;
  }

 private:
  bool convertible(const ir::Node& node) const {
    if (!node.domain.empty() || node.outputs.size() != 1 || !node.outputs[0]) return false;
    const bool quantized = node.op_type == "QLinearConv";
    if (node.op_type != "Conv" && !quantized) return false;
    const ir::Value* x = node.input(0);
    const ir::Value* w = node.input(quantized ? 3 : 1);
    auto xd = knownDims(x);
    auto yd = knownDims(node.outputs[0]);
    if (!xd || xd->size() != 4 || !yd || !w || !w->isConstant() || w->constant->dims().size() != 4) return false;
    if (captured_.count(x) || captured_.count(node.outputs[0])) return false;
    const int64_t group = qgraph::intAttribute(node, "group", 1);
    if (quantized) return group == 1;  // the 8-bit dtypes are QLinearConv's own checks
    const int64_t channels = (*xd)[1], filters = w->constant->dims()[0];
    if (x->type.dtype != ir::DType::kFloat32 || w->constant->dtype() != ir::DType::kFloat32) return false;
    return channels % group == 0 && filters % group == 0;
  }

  // Transpose(v, perm) into a new value, or into `out` when given.
  ir::Value* transpose(ir::Graph& graph, ir::Value* v, const std::vector<int64_t>& perm, const std::string& node_name,
                       ir::Value* out = nullptr) {
    ir::Node* node = graph.addNode("Transpose", qgraph::uniqueName(graph, node_name));
    node->inputs = {v};
    ir::Attribute p;
    p.kind = ir::Attribute::Kind::kInts;
    p.ints = perm;
    node->attributes["perm"] = p;
    if (!out) {
      out = graph.addValue(qgraph::uniqueName(graph, v->name + (perm == kToNhwc ? "_nhwc" : "_nchw")));
      out->type = {v->type.dtype, ir::makeShape(permuted(*knownDims(v), perm))};
    }
    out->producer = node;
    out->producer_output = 0;
    node->outputs = {out};
    return out;
  }

  // `v` (NCHW, known 4-D shape) in NHWC: the value it was transposed from,
  // else one transpose of it shared by every reader.
  ir::Value* toNhwc(ir::Graph& graph, ir::Value* v) {
    if (ir::Value* source = nhwcSource(v)) return source;
    for (ir::Node* reader : graph.usersOf(v))
      if (isTranspose(reader, kToNhwc) && reader->outputs[0]) return reader->outputs[0];
    return transpose(graph, v, kToNhwc, v->name + "/to_nhwc");
  }

  // `node` with its inputs replaced, writing new NHWC values; each old
  // output is then the NCHW transpose of its new one. Returns the new node.
  ir::Node* replaceInNhwc(ir::Graph& graph, ir::Node* node, std::vector<ir::Value*> inputs, std::string op,
                          std::string domain) {
    ir::Node* nhwc = graph.addNode(std::move(op), qgraph::uniqueName(graph, node->name + "/nhwc"));
    nhwc->domain = std::move(domain);
    nhwc->attributes = node->attributes;
    nhwc->inputs = std::move(inputs);
    for (size_t i = 0; i < node->outputs.size(); ++i) {
      ir::Value* out = node->outputs[i];
      ir::Value* result = graph.addValue(qgraph::uniqueName(graph, out->name + "_nhwc"));
      result->type = {out->type.dtype, ir::makeShape(permuted(*knownDims(out), kToNhwc))};
      result->producer = nhwc;
      result->producer_output = static_cast<int>(i);
      nhwc->outputs.push_back(result);
      transpose(graph, result, kToNchw, node->name + "/to_nchw", out);
    }
    return nhwc;
  }

  void convert(ir::Graph& graph, ir::Node* conv) {
    const bool quantized = conv->op_type == "QLinearConv";
    const size_t w_input = quantized ? 3 : 1;
    ir::Value* w = conv->input(w_input);
    std::vector<ir::Value*> inputs = conv->inputs;
    inputs[0] = toNhwc(graph, conv->input(0));
    ir::Tensor weight = *w->constant;
    if (!quantized) weight = widenGroups(*conv, std::move(weight));
    if (!quantized) inputs[0] = padStemInput(graph, *conv, weight.dims(), inputs[0]);
    inputs[w_input] = qgraph::tensorConstant(graph, w->name + "_hwio", toHwio(weight));
    replaceInNhwc(graph, conv, std::move(inputs), quantized ? "QLinearConvNhwc" : "ConvNhwc",
                  std::string(ops::kKilnDomain));
  }

  // A convolution over at most kMaxContiguousRowChannels input channels (a
  // stem: 3), group 1, width dilation 1, with explicit padding: its NHWC
  // input padded by kiln.PadNhwc and the convolution's pads set to 0, so
  // that kiln.ConvNhwc reduces over the window's contiguous rows (see
  // compiler/ops/conv.cpp). The pad fuses with the input's transpose to
  // NHWC; it costs one write of the padded input (ResNet-50: 635 KB).
  ir::Value* padStemInput(ir::Graph& graph, ir::Node& conv, const std::vector<int64_t>& weight_dims, ir::Value* x) {
    const ir::Attribute* auto_pad = conv.attribute("auto_pad");
    const ir::Attribute* pads = conv.attribute("pads");
    const ir::Attribute* dilations = conv.attribute("dilations");
    if ((auto_pad && auto_pad->s != "NOTSET") || !pads || pads->ints.size() != 4 ||
        std::all_of(pads->ints.begin(), pads->ints.end(), [](int64_t p) { return p == 0; }))
      return x;
    if (qgraph::intAttribute(conv, "group", 1) != 1 || weight_dims[1] > ops::kMaxContiguousRowChannels ||
        weight_dims[3] < 2 || (dilations && dilations->ints.size() == 2 && dilations->ints[1] != 1))
      return x;
    // ONNX orders pads (top, left, bottom, right), as kiln.PadNhwc does.
    ir::Node* pad =
        qgraph::addNode(graph, "PadNhwc", qgraph::uniqueName(graph, conv.name + "/pad"), {x}, x->name + "_padded");
    pad->domain = std::string(ops::kKilnDomain);
    pad->attributes["pads"] = *pads;
    const std::vector<int64_t> xd = *knownDims(x);
    const std::vector<int64_t>& p = pads->ints;
    pad->outputs[0]->type = {
        x->type.dtype, ir::makeShape(std::vector<int64_t>{xd[0], xd[1] + p[0] + p[2], xd[2] + p[1] + p[3], xd[3]})};
    ir::Attribute zeros = *pads;
    zeros.ints.assign(4, 0);
    conv.attributes["pads"] = zeros;
    return pad->outputs[0];
  }

  // A grouped convolution whose groups have fewer than kMinGroupFilters
  // output channels (ResNeXt-50 32x4d's first stage: 4) would fill a
  // fraction of each vector, the output channel of one group being the
  // vector axis. Merged in runs of S groups, each merged group's weight
  // block-diagonal over the S groups' input channels and zero elsewhere,
  // it has S times the filters per group (at least kMinGroupFilters) for S
  // times the multiplications: `conv`'s group becomes group / S and the
  // returned weight is [M, S * C/group, kh, kw]. Merging stops at 8: 8
  // filters ran about as fast as 16 merged from two groups of 8 (ResNeXt's
  // second stage), and RegNetY-400MF's groups of 8 merged to 16 made it 30%
  // slower. Not for depthwise convolutions (one input and one output
  // channel per group), which have their own kernel. An infinite input then
  // meets zero weights of other groups, and its NaN spreads to the S groups
  // it was merged with.
  static ir::Tensor widenGroups(ir::Node& conv, ir::Tensor w) {
    constexpr int64_t kMinGroupFilters = 8;
    const int64_t group = qgraph::intAttribute(conv, "group", 1);
    const std::vector<int64_t> wd = w.dims();
    const int64_t filters = wd[0] / group, channels = wd[1], taps = wd[2] * wd[3];
    if (group == 1 || (channels == 1 && filters == 1) || filters >= kMinGroupFilters) return w;
    int64_t merged = 1;
    while (merged < group && (merged * filters < kMinGroupFilters || group % merged != 0)) ++merged;
    const int64_t wide = merged * channels;
    std::vector<float> out(static_cast<size_t>(wd[0] * wide * taps), 0.0f);
    const auto* src = reinterpret_cast<const float*>(w.bytes().data());
    for (int64_t m = 0; m < wd[0]; ++m) {
      const int64_t slot = m / filters % merged;  // this filter's group within its merged group
      for (int64_t c = 0; c < channels; ++c)
        std::copy_n(src + (m * channels + c) * taps, taps, out.data() + (m * wide + slot * channels + c) * taps);
    }
    ir::Attribute a;
    a.kind = ir::Attribute::Kind::kInt;
    a.i = group / merged;
    conv.attributes["group"] = a;
    return ir::Tensor::fromValues<float>(ir::DType::kFloat32, {wd[0], wide, wd[2], wd[3]}, out);
  }

  // A weight [M, C, kh, kw] as [kh, kw, C, M].
  static ir::Tensor toHwio(const ir::Tensor& w) {
    const std::vector<int64_t> wd = w.dims();
    const size_t element = static_cast<size_t>(ir::byteSize(w.dtype()));
    const std::byte* src = w.bytes().data();
    std::vector<std::byte> hwio(w.bytes().size());
    for (int64_t m = 0, i = 0; m < wd[0]; ++m)
      for (int64_t c = 0; c < wd[1]; ++c)
        for (int64_t r0 = 0; r0 < wd[2]; ++r0)
          for (int64_t r1 = 0; r1 < wd[3]; ++r1, ++i) {
            const int64_t to = ((r0 * wd[3] + r1) * wd[1] + c) * wd[0] + m;
            std::copy_n(src + static_cast<size_t>(i) * element, element, hwio.data() + static_cast<size_t>(to) * element);
          }
    return ir::Tensor::fromBytes(w.dtype(), {wd[2], wd[3], wd[1], wd[0]}, std::move(hwio));
  }

  // Transpose(Transpose(a, to NCHW), to NHWC) is a.
  bool cancel(ir::Graph& graph, ir::Node& node) {
    if (!isTranspose(&node, kToNhwc)) return false;
    ir::Value* source = nhwcSource(node.input(0));
    ir::Value* out = node.outputs[0];
    if (!source || !out || captured_.count(out)) return false;
    if (isGraphOutput(graph, out)) return forwardValue(graph, out, source, captured_);
    graph.replaceAllUses(out, source);
    return true;
  }

  // An input of a broadcasting op another of whose inputs comes from NHWC:
  // its NHWC form (a 4-D tensor transposed, a constant permuted), or nullptr
  // when it has none.
  ir::Value* nhwcOperand(ir::Graph& graph, ir::Value* v) {
    if (ir::Value* source = nhwcSource(v)) return source;
    auto dims = knownDims(v);
    if (!dims || dims->size() > 4) return nullptr;
    if (allOnes(*dims)) return v;  // broadcasts the same in any layout
    if (!v->isConstant()) return dims->size() == 4 && !captured_.count(v) ? toNhwc(graph, v) : nullptr;
    if (v->constant->dtype() != ir::DType::kFloat32) return nullptr;
    // A constant broadcast against NCHW: as rank 4, permuted.
    std::vector<int64_t> d4(4 - dims->size(), 1);
    d4.insert(d4.end(), dims->begin(), dims->end());
    const auto* src = reinterpret_cast<const float*>(v->constant->bytes().data());
    std::vector<float> values(static_cast<size_t>(v->constant->elementCount()));
    for (int64_t n = 0, i = 0; n < d4[0]; ++n)
      for (int64_t c = 0; c < d4[1]; ++c)
        for (int64_t h = 0; h < d4[2]; ++h)
          for (int64_t w = 0; w < d4[3]; ++w, ++i)
            values[static_cast<size_t>(((n * d4[2] + h) * d4[3] + w) * d4[1] + c)] = src[i];
    return qgraph::floatConstant(graph, v->name + "_nhwc", permuted(d4, kToNhwc), values);
  }

  // E(Transpose(a, to NCHW), ...) becomes Transpose(E(a, ...), to NCHW).
  bool sink(ir::Graph& graph, ir::Node* node) {
    if (!node->domain.empty() || node->outputs.empty() || !node->outputs[0]) return false;
    if (node->op_type == "Split") return sinkSplit(graph, node);
    if (node->outputs.size() != 1) return false;
    if (reduceOps().count(node->op_type)) return sinkReduce(graph, node);
    ir::Value* out = node->outputs[0];
    auto out_dims = knownDims(out);
    if (!out_dims || out_dims->size() != 4 || captured_.count(out)) return false;
    const std::string& op = node->op_type;
    std::vector<ir::Value*> inputs = node->inputs;
    if (unaryOps().count(op)) {
      ir::Value* source = nhwcSource(node->input(0));
      if (!source) return false;
      inputs[0] = source;
      for (size_t i = 1; i < inputs.size(); ++i) {
        auto d = knownDims(inputs[i]);
        if (inputs[i] && (!d || !allOnes(*d))) return false;
      }
    } else if (broadcastOps().count(op)) {
      if (std::none_of(inputs.begin(), inputs.end(), [](const ir::Value* in) { return nhwcSource(in); })) return false;
      for (ir::Value*& in : inputs)
        if (!(in = nhwcOperand(graph, in))) return false;
    } else if (poolOps().count(op)) {
      ir::Value* source = nhwcSource(node->input(0));
      if (!source || node->outputs.size() != 1) return false;
      // MaxPool also over 8-bit data (fold-qdq's DQ -> MaxPool -> Q).
      const ir::DType dtype = source->type.dtype;
      const bool bytes = dtype == ir::DType::kUInt8 || dtype == ir::DType::kInt8;
      if (dtype != ir::DType::kFloat32 && !(op == "MaxPool" && bytes)) return false;
      replaceInNhwc(graph, node, {source}, op + "Nhwc", std::string(ops::kKilnDomain));
      return true;
    } else if (op == "Concat") {
      const ir::Attribute* axis = node->attribute("axis");
      if (!axis || (axis->i != 1 && axis->i != -3)) return false;
      for (ir::Value*& in : inputs)
        if (!(in = nhwcSource(in))) return false;
      qgraph::setIntAttribute(replaceInNhwc(graph, node, inputs, op, ""), "axis", 3);
      return true;
    } else if (op == "Slice") {
      return sinkSlice(graph, node);
    } else if (op == "Reshape") {
      return sinkChannelShuffle(graph, node);
    } else if (op == "Resize") {
      return sinkResize(graph, node);
    } else {
      return false;
    }
    replaceInNhwc(graph, node, std::move(inputs), op, "");
    return true;
  }

  // A reduction of an NHWC value over constant axes (the attribute, or from
  // opset 18 the input): the same reduction of the NHWC value, its axes
  // moved. With keepdims its result is transposed back like any other op's;
  // without, it is the node's own result where the axes left keep their
  // order in both layouts: the channel reduced, or both spatial axes
  // (ShuffleNet's and MnasNet's x.mean([2, 3]) before the classifier, which
  // then reads no transpose of the last feature map).
  bool sinkReduce(ir::Graph& graph, ir::Node* node) {
    ir::Value* source = nhwcSource(node->input(0));
    ir::Value* out = node->outputs[0];
    if (!source || captured_.count(out) || !knownDims(out)) return false;
    const ir::Attribute* attr = node->attribute("axes");
    std::vector<int64_t> axes;
    if (attr)
      axes = attr->ints;
    else if (node->inputs.size() > 1 && node->input(1) && node->input(1)->isConstant())
      axes = node->input(1)->constant->toInts();
    if (axes.empty()) return false;  // all axes, or none with noop_with_empty_axes: left as they are
    std::optional<std::vector<int64_t>> moved = nhwcAxes(axes);
    if (!moved) return false;
    std::set<int64_t> reduced;  // as NCHW axes
    for (int64_t a : axes) reduced.insert(a < 0 ? a + 4 : a);
    const bool keepdims = qgraph::intAttribute(*node, "keepdims", 1) != 0;
    if (!keepdims && !reduced.count(1) && !(reduced.count(2) && reduced.count(3))) return false;
    std::vector<ir::Value*> inputs = node->inputs;
    inputs[0] = source;
    if (attr)
      node->attributes["axes"].ints = *moved;
    else
      inputs[1] = int64Constant(graph, node->name + "/axes_nhwc", *moved);
    if (keepdims) {
      replaceInNhwc(graph, node, std::move(inputs), node->op_type, "");
      return true;
    }
    ir::Node* nhwc = graph.addNode(node->op_type, qgraph::uniqueName(graph, node->name + "/nhwc"));
    nhwc->attributes = node->attributes;
    nhwc->inputs = std::move(inputs);
    nhwc->outputs = {out};
    out->producer = nhwc;
    out->producer_output = 0;
    return true;
  }

  // Split of an NHWC value along the channel axis (the split sizes, an
  // attribute or input, unchanged): the same split of the NHWC value, each
  // part transposed back like any other result (a CSP or C2f block's
  // chunk of the channels in two, as detectors export it).
  bool sinkSplit(ir::Graph& graph, ir::Node* node) {
    ir::Value* source = nhwcSource(node->input(0));
    const int64_t axis = qgraph::intAttribute(*node, "axis", 0);
    if (!source || (axis != 1 && axis != -3)) return false;
    for (const ir::Value* out : node->outputs) {
      auto dims = knownDims(out);
      if (!out || !dims || dims->size() != 4 || captured_.count(out)) return false;
    }
    std::vector<ir::Value*> inputs = node->inputs;
    inputs[0] = source;
    qgraph::setIntAttribute(replaceInNhwc(graph, node, std::move(inputs), "Split", ""), "axis", 3);
    return true;
  }

  // Slice (opset 10 on: starts, ends, axes and steps as inputs) of an NHWC
  // value, with constant axes: the same slice of the NHWC value, its axes
  // moved (ShuffleNet's split of the channels in two halves).
  bool sinkSlice(ir::Graph& graph, ir::Node* node) {
    ir::Value* source = nhwcSource(node->input(0));
    if (!source || node->inputs.size() < 3) return false;
    std::vector<int64_t> axes;
    if (node->inputs.size() > 3 && node->input(3)) {
      if (!node->input(3)->isConstant()) return false;
      axes = node->input(3)->constant->toInts();
    } else {
      auto starts = knownDims(node->input(1));  // axes default to 0, 1, ... for each start
      if (!starts || starts->size() != 1) return false;
      for (int64_t i = 0; i < (*starts)[0]; ++i) axes.push_back(i);
    }
    std::optional<std::vector<int64_t>> moved = nhwcAxes(axes);
    if (!moved) return false;
    std::vector<ir::Value*> inputs = node->inputs;
    inputs.resize(std::max<size_t>(inputs.size(), 4));
    inputs[0] = source;
    inputs[3] = int64Constant(graph, node->name + "/axes_nhwc", *moved);
    replaceInNhwc(graph, node, std::move(inputs), "Slice", "");
    return true;
  }

  // Resize of an NHWC value whose scales or sizes are constant (or name
  // their axes, opset 18): the same resize of the NHWC value, the scales,
  // sizes or axes permuted with it (the upsampling between a detector's or
  // a segmenter's feature maps). Not tf_crop_and_resize, whose roi would
  // have to move too.
  bool sinkResize(ir::Graph& graph, ir::Node* node) {
    ir::Value* source = nhwcSource(node->input(0));
    const ir::Attribute* transform = node->attribute("coordinate_transformation_mode");
    if (!source || (transform && transform->s == "tf_crop_and_resize")) return false;
    std::vector<ir::Value*> inputs = node->inputs;
    inputs[0] = source;
    if (const ir::Attribute* axes = node->attribute("axes")) {
      std::optional<std::vector<int64_t>> moved = nhwcAxes(axes->ints);
      if (!moved) return false;
      node->attributes["axes"].ints = *moved;
    } else {
      // Opset 10 takes (X, scales); from 11, (X, roi, scales, sizes), one of the last two given.
      bool moved = false;
      for (size_t i = opset_ >= 11 ? 2 : 1; i < inputs.size() && i <= 3; ++i) {
        ir::Value* v = inputs[i];
        if (!v || (v->isConstant() && v->constant->elementCount() == 0)) continue;
        if (!v->isConstant() || v->constant->elementCount() != 4) return false;
        if (v->constant->dtype() == ir::DType::kFloat32) {
          std::vector<float> values = *qgraph::constantFloats(v);
          std::vector<float> nhwc;
          for (int64_t p : kToNhwc) nhwc.push_back(values[static_cast<size_t>(p)]);
          inputs[i] = qgraph::floatConstant(graph, v->name + "_nhwc", {4}, nhwc);
        } else {
          inputs[i] = int64Constant(graph, v->name + "_nhwc", permuted(v->constant->toInts(), kToNhwc));
        }
        moved = true;
      }
      if (!moved) return false;
    }
    replaceInNhwc(graph, node, std::move(inputs), "Resize", "");
    return true;
  }

  // A channel shuffle of an NHWC value x [N, C, H, W] (ShuffleNet's):
  //
  //   Reshape(x, [N, g, C/g, H, W]) -> Transpose(0 2 1 3 4) -> Reshape([N, C, H, W])
  //
  // becomes the same shuffle of the channels-last value,
  //
  //   Reshape(x', [N, H, W, g, C/g]) -> Transpose(0 1 2 4 3) -> Reshape([N, H, W, C])
  //
  // where the channel stays the innermost axis, so the convolutions on both
  // sides stay channels-last. `node` is the second Reshape.
  bool sinkChannelShuffle(ir::Graph& graph, ir::Node* node) {
    const std::vector<int64_t> out = *knownDims(node->outputs[0]);
    ir::Node* shuffle = node->input(0) ? node->input(0)->producer : nullptr;
    if (!isTranspose(shuffle, {0, 2, 1, 3, 4})) return false;
    ir::Node* split = shuffle->input(0)->producer;
    if (!split || !split->domain.empty() || split->op_type != "Reshape") return false;
    ir::Value* source = nhwcSource(split->input(0));
    auto in = knownDims(split->input(0));
    auto grouped = knownDims(split->outputs[0]);
    if (!source || !in || *in != out || !grouped || grouped->size() != 5) return false;
    const std::vector<int64_t>& d = *grouped;
    if (d[0] != out[0] || d[1] * d[2] != out[1] || d[3] != out[2] || d[4] != out[3]) return false;
    const std::string& name = split->name;
    ir::Value* nhwc_grouped = reshape(graph, source, {out[0], out[2], out[3], d[1], d[2]}, name + "/nhwc");
    ir::Node* t = qgraph::addNode(graph, "Transpose", qgraph::uniqueName(graph, shuffle->name + "/nhwc"),
                                  {nhwc_grouped}, nhwc_grouped->name + "_shuffled");
    ir::Attribute perm;
    perm.kind = ir::Attribute::Kind::kInts;
    perm.ints = {0, 1, 2, 4, 3};
    t->attributes["perm"] = perm;
    t->outputs[0]->type = {source->type.dtype, ir::makeShape(std::vector<int64_t>{out[0], out[2], out[3], d[2], d[1]})};
    ir::Value* merged = reshape(graph, t->outputs[0], permuted(out, kToNhwc), node->name + "/nhwc");
    transpose(graph, merged, kToNchw, node->name + "/to_nchw", node->outputs[0]);
    return true;
  }

  // Reshape(v, dims) into a new value.
  ir::Value* reshape(ir::Graph& graph, ir::Value* v, const std::vector<int64_t>& dims, const std::string& node_name) {
    ir::Value* shape = int64Constant(graph, node_name + "/shape", dims);
    ir::Node* r =
        qgraph::addNode(graph, "Reshape", qgraph::uniqueName(graph, node_name), {v, shape}, v->name + "_reshaped");
    r->outputs[0]->type = {v->type.dtype, ir::makeShape(dims)};
    return r->outputs[0];
  }

  std::unordered_set<const ir::Value*> captured_;
  int64_t opset_ = 0;  // of the default domain
};

}  // namespace

std::unique_ptr<Pass> createChannelsLast() { return std::make_unique<ChannelsLast>(); }

}  // namespace kiln::passes
