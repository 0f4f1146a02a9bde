// channels-last: float32 2-D convolutions become kiln.ConvNhwc (and 8-bit
// QLinearConv kiln.QLinearConvNhwc) between transposes, and the transposes
// between two convolutions cancel through the elementwise, broadcast,
// quantize and Concat nodes that separate them; the outputs stay the same.
#include <gtest/gtest.h>

#include <map>
#include <sstream>

#include "compiler/ir/printer.h"
#include "compiler/onnx/importer.h"
#include "compiler/onnx/writer.h"
#include "tests/passes/model_check.h"
#include "tests/testing/artifact_fixture.h"
#include "tools/common/run_artifact.h"

namespace kiln::testing {
namespace {

ir::Node* conv(TestGraph& g, ir::Value* x, int64_t in, int64_t out, int64_t kernel, const std::string& name,
               int64_t group = 1, int64_t stride = 1) {
  ir::Node* node =
      g.node("Conv", {x, g.randomConstant(name + "_w", {out, in / group, kernel, kernel}), g.randomConstant(name + "_b", {out})},
             name);
  const int64_t pad = kernel / 2;
  setInts(node, "pads", {pad, pad, pad, pad});
  setInts(node, "strides", {stride, stride});
  setInt(node, "group", group);
  return node;
}

// An inverted-residual block and a two-branch concat, as in MobileNetV2 and
// Inception: Conv -> Clip -> depthwise Conv -> Relu -> Conv -> Add(residual)
// -> Mul(per-channel) -> Concat(axis 1) of two Convs -> Sigmoid.
std::unique_ptr<ir::Model> block() {
  TestGraph g;
  ir::Value* x = g.input("x", {1, 8, 9, 10});
  ir::Value* expand = conv(g, x, 8, 16, 1, "expand")->outputs[0];
  ir::Value* clipped = g.op("Clip", {expand, g.constant("lo", {}, {0.0f}), g.constant("hi", {}, {6.0f})}, "clip");
  ir::Value* dw = conv(g, clipped, 16, 16, 3, "dw", 16)->outputs[0];
  ir::Value* relu = g.op("Relu", {dw}, "relu");
  ir::Value* project = conv(g, relu, 16, 8, 1, "project")->outputs[0];
  ir::Value* residual = g.op("Add", {x, project}, "residual");
  ir::Value* scaled = g.op("Mul", {residual, g.randomConstant("scale", {8, 1, 1})}, "scaled");
  ir::Value* left = conv(g, scaled, 8, 4, 3, "left")->outputs[0];
  ir::Value* right = conv(g, scaled, 8, 6, 3, "right", 1, 2)->outputs[0];
  ir::Value* right_up = g.op("Relu", {right}, "right_relu");
  ir::Value* left_down = conv(g, left, 4, 5, 3, "left_down", 1, 2)->outputs[0];
  ir::Node* cat = g.node("Concat", {left_down, right_up}, "cat");
  setInt(cat, "axis", 1);
  g.output(g.op("Sigmoid", {cat->outputs[0]}, "y"));
  return g.take();
}

TEST(ChannelsLastTest, ConvolutionChainsRunChannelsLastBetweenTwoTransposes) {
  auto after = runPasses(block, {"channels-last"});
  const ir::Graph& graph = after->graph;
  EXPECT_EQ(countOps(graph, "Conv"), 0) << ir::printModel(*after);
  EXPECT_EQ(countOps(graph, "ConvNhwc"), 6);
  // x is read twice (the first Conv and the residual Add) through one
  // transpose to NHWC; y is written through one transpose back.
  EXPECT_EQ(countOps(graph, "Transpose"), 2) << ir::printModel(*after);
  EXPECT_EQ(graph.outputs[0]->name, "y");
  EXPECT_EQ(graph.outputs[0]->producer->op_type, "Transpose");
  EXPECT_EQ(after->opset_imports.at("kiln"), 1);
  EXPECT_TRUE(passesKeepOutputs(block, {"channels-last"}));
}

// Pools run channels-last too (kiln.MaxPoolNhwc...), so a ResNet stem or a
// SqueezeNet stage stays in one layout: Conv -> MaxPool (ceil mode, padded)
// -> Conv -> AveragePool (padding not counted) -> GlobalMaxPool and
// GlobalAveragePool of two branches -> Add -> Flatten.
std::unique_ptr<ir::Model> pools() {
  TestGraph g;
  ir::Value* x = g.input("x", {1, 3, 17, 16});
  ir::Value* stem = g.op("Relu", {conv(g, x, 3, 8, 3, "stem", 1, 2)->outputs[0]}, "stem_relu");
  ir::Node* max = g.node("MaxPool", {stem}, "max");
  setInts(max, "kernel_shape", {3, 3});
  setInts(max, "strides", {2, 2});
  setInts(max, "pads", {1, 1, 1, 1});
  setInt(max, "ceil_mode", 1);
  ir::Value* body = conv(g, max->outputs[0], 8, 16, 3, "body")->outputs[0];
  ir::Node* avg = g.node("AveragePool", {body}, "avg");
  setInts(avg, "kernel_shape", {2, 2});
  setInts(avg, "pads", {0, 0, 1, 1});
  setInts(avg, "strides", {2, 2});
  ir::Value* a = g.op("GlobalMaxPool", {avg->outputs[0]}, "gmax");
  ir::Value* b = g.op("GlobalAveragePool", {body}, "gavg");
  ir::Value* sum = g.op("Add", {a, b}, "sum");
  ir::Node* flat = g.node("Flatten", {sum}, "flat");
  setInt(flat, "axis", 1);
  g.output(flat->outputs[0]);
  return g.take();
}

TEST(ChannelsLastTest, PoolsRunChannelsLast) {
  auto after = runPasses(pools, {"channels-last"});
  const ir::Graph& graph = after->graph;
  for (const char* op : {"MaxPool", "AveragePool", "GlobalMaxPool", "GlobalAveragePool"}) {
    EXPECT_EQ(countOps(graph, op), 0) << op << "\n" << ir::printModel(*after);
    EXPECT_EQ(countOps(graph, std::string(op) + "Nhwc"), 1) << op;
  }
  EXPECT_EQ(countOps(graph, "Transpose"), 2) << ir::printModel(*after);
  EXPECT_TRUE(passesKeepOutputs(pools, {"channels-last"}));
}

// A graph output in the middle of a chain stays NCHW, and the chain goes
// on channels-last past it.
TEST(ChannelsLastTest, OutputsInsideAChainStayNchw) {
  auto make = [] {
    TestGraph g;
    ir::Value* x = g.input("x", {2, 3, 7, 7});
    ir::Value* a = g.op("Relu", {conv(g, x, 3, 5, 3, "a")->outputs[0]}, "a_relu");
    ir::Value* b = conv(g, a, 5, 4, 3, "b")->outputs[0];
    g.output(a);
    g.output(b);
    return g.take();
  };
  auto after = runPasses(make, {"channels-last"});
  EXPECT_EQ(countOps(after->graph, "Conv"), 0) << "the NCHW conv writing output 'b' stays beside its replacement\n"
                                               << ir::printModel(*after);
  EXPECT_EQ(countOps(after->graph, "ConvNhwc"), 2);
  EXPECT_EQ(countOps(after->graph, "Transpose"), 3) << ir::printModel(*after);
  EXPECT_EQ(after->graph.outputs[0]->name, "a_relu");
  EXPECT_EQ(after->graph.outputs[1]->name, "b");
  EXPECT_TRUE(passesKeepOutputs(make, {"channels-last"}));
}

ir::Value* byteConstant(TestGraph& g, const std::string& name, ir::DType dtype, std::vector<int64_t> dims,
                        std::vector<std::byte> bytes) {
  ir::Value* v = g.model().graph.addValue(name);
  v->constant = ir::Tensor::fromBytes(dtype, std::move(dims), std::move(bytes));
  v->type = v->constant->type();
  return v;
}

// x_q -> QLinearConv (group 1, or depthwise) -> its uint8 output.
ir::Value* qconv(TestGraph& g, ir::Value* x, int64_t in, int64_t out, const std::string& name, int64_t group = 1) {
  std::vector<std::byte> w(static_cast<size_t>(out * (in / group) * 9));
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<std::byte>(static_cast<int8_t>(i * 37 % 255 - 127));
  const std::byte zp{128};
  ir::Node* node = g.node(
      "QLinearConv",
      {x, g.constant(name + "_xs", {}, {0.02f}), byteConstant(g, name + "_xz", ir::DType::kUInt8, {}, {zp}),
       byteConstant(g, name + "_w", ir::DType::kInt8, {out, in / group, 3, 3}, std::move(w)),
       g.constant(name + "_ws", {}, {0.01f}), byteConstant(g, name + "_wz", ir::DType::kInt8, {}, {std::byte{0}}),
       g.constant(name + "_ys", {}, {0.05f}), byteConstant(g, name + "_yz", ir::DType::kUInt8, {}, {zp})},
      name);
  setInts(node, "pads", {1, 1, 1, 1});
  setInt(node, "group", group);
  return node->outputs[0];
}

// A quantized residual stage, as --quantize int8 leaves it after fold-qdq:
// Q -> QLinearConv -> DQ -> MaxPool -> Q -> QLinearConv -> DQ -> Add(the
// pooled input) -> Q -> depthwise QLinearConv (left NCHW) -> DQ.
std::unique_ptr<ir::Model> quantizedStage() {
  TestGraph g(13);
  ir::Value* x = g.input("x", {1, 8, 10, 10});
  auto q = [&](ir::Value* v, const std::string& name) {
    return g.op("QuantizeLinear", {v, g.constant(name + "_s", {}, {0.05f}), byteConstant(g, name + "_z", ir::DType::kUInt8, {}, {std::byte{128}})}, name);
  };
  auto dq = [&](ir::Value* v, const std::string& name) {
    return g.op("DequantizeLinear", {v, g.constant(name + "_s", {}, {0.05f}), byteConstant(g, name + "_z", ir::DType::kUInt8, {}, {std::byte{128}})}, name);
  };
  ir::Value* a = dq(qconv(g, q(x, "qx"), 8, 16, "a"), "a_dq");
  ir::Node* pool = g.node("MaxPool", {a}, "pool");
  setInts(pool, "kernel_shape", {2, 2});
  setInts(pool, "strides", {2, 2});
  ir::Value* b = dq(qconv(g, q(pool->outputs[0], "qp"), 16, 16, "b"), "b_dq");
  ir::Value* sum = g.op("Add", {b, pool->outputs[0]}, "sum");
  g.output(dq(qconv(g, q(sum, "qs"), 16, 16, "dw", 16), "y"));
  return g.take();
}

TEST(ChannelsLastTest, QuantizedConvolutionsRunChannelsLast) {
  auto after = runPasses(quantizedStage, {"channels-last"});
  const ir::Graph& graph = after->graph;
  EXPECT_EQ(countOps(graph, "QLinearConvNhwc"), 2) << ir::printModel(*after);
  EXPECT_EQ(countOps(graph, "QLinearConv"), 1);  // the depthwise one
  EXPECT_EQ(countOps(graph, "MaxPoolNhwc"), 1);
  // In at x, back before the depthwise convolution's QuantizeLinear.
  EXPECT_EQ(countOps(graph, "Transpose"), 2) << ir::printModel(*after);
  EXPECT_TRUE(passesKeepOutputs(quantizedStage, {"channels-last"}));
}

// Grouped convolutions run channels-last too; groups of fewer than 8
// filters are merged (4 groups of 4 filters: 2 of 8; 3 groups of 2 filters:
// one dense convolution), each merged group's weight zero between the
// groups it joins; a depthwise one keeps one group per channel.
TEST(ChannelsLastTest, GroupedConvolutionsRunChannelsLast) {
  auto make = [] {
    TestGraph g;
    ir::Value* x = g.input("x", {1, 16, 7, 7});
    ir::Value* wide = conv(g, x, 16, 32, 3, "wide", 2)->outputs[0];         // 16 filters per group
    ir::Value* narrow = conv(g, wide, 32, 16, 3, "narrow", 4)->outputs[0];  // 4: merged in pairs
    ir::Value* three = conv(g, narrow, 16, 6, 1, "three", 2)->outputs[0];   // 3 filters of 8 channels
    ir::Value* dense = conv(g, three, 6, 6, 3, "dense", 3)->outputs[0];     // 2 filters, 3 groups: one
    ir::Value* dw = conv(g, dense, 6, 6, 3, "dw", 6)->outputs[0];           // depthwise
    g.output(g.op("Relu", {dw}, "y"));
    return g.take();
  };
  auto after = runPasses(make, {"channels-last"});
  std::vector<int64_t> groups;
  for (const auto& node : after->graph.nodes())
    if (node->op_type == "ConvNhwc") groups.push_back(node->attribute("group")->i);
  EXPECT_EQ(groups, (std::vector<int64_t>{2, 2, 1, 1, 6})) << ir::printModel(*after);
  EXPECT_EQ(countOps(after->graph, "Transpose"), 2) << ir::printModel(*after);
  EXPECT_TRUE(passesKeepOutputs(make, {"channels-last"}, 1e-4, 2));
}

// Stems: convolutions over 3 input channels with explicit padding read a
// kiln.PadNhwc of their input and have pads 0 themselves, so their lowering
// reduces over whole window rows (kw and c as one variable). Left as they
// are: auto_pad, 8 input channels, a 1-wide window, and an unpadded stem
// (which reduces over rows without a pad).
std::unique_ptr<ir::Model> stems() {
  TestGraph g;
  ir::Value* x = g.input("x", {1, 3, 15, 14});
  g.output(g.op("Relu", {conv(g, x, 3, 16, 3, "stem3", 1, 2)->outputs[0]}, "y3"));
  ir::Node* stem7 = conv(g, x, 3, 8, 7, "stem7", 1, 2);
  setInts(stem7, "pads", {3, 2, 1, 3});
  g.output(stem7->outputs[0]);
  ir::Node* same = conv(g, x, 3, 8, 3, "same");
  same->attributes.erase("pads");
  setString(same, "auto_pad", "SAME_UPPER");
  g.output(same->outputs[0]);
  g.output(conv(g, g.input("x8", {1, 8, 6, 6}), 8, 8, 3, "wide")->outputs[0]);
  ir::Node* column = conv(g, x, 3, 8, 3, "column");
  column->inputs[1] = g.randomConstant("column_w1", {8, 3, 3, 1});
  setInts(column, "pads", {1, 0, 1, 0});
  g.output(column->outputs[0]);
  ir::Node* unpadded = conv(g, x, 3, 8, 3, "unpadded");
  setInts(unpadded, "pads", {0, 0, 0, 0});
  g.output(unpadded->outputs[0]);
  return g.take();
}

TEST(ChannelsLastTest, StemsReadAnExplicitlyPaddedInput) {
  auto after = runPasses(stems, {"channels-last"});
  std::map<std::string, std::vector<int64_t>> pads;
  for (const auto& node : after->graph.nodes())
    if (node->op_type == "PadNhwc" || (node->op_type == "ConvNhwc" && node->attribute("pads")))
      pads[node->name] = node->attribute("pads")->ints;
  EXPECT_EQ(pads["Conv_stem3/pad"], (std::vector<int64_t>{1, 1, 1, 1})) << ir::printModel(*after);
  EXPECT_EQ(pads["Conv_stem3/nhwc"], (std::vector<int64_t>{0, 0, 0, 0}));
  EXPECT_EQ(pads["Conv_stem7/pad"], (std::vector<int64_t>{3, 2, 1, 3}));
  EXPECT_EQ(pads["Conv_stem7/nhwc"], (std::vector<int64_t>{0, 0, 0, 0}));
  EXPECT_EQ(pads["Conv_wide/nhwc"], (std::vector<int64_t>{1, 1, 1, 1}));
  EXPECT_EQ(pads["Conv_column/nhwc"], (std::vector<int64_t>{1, 0, 1, 0}));
  EXPECT_EQ(countOps(after->graph, "PadNhwc"), 2);
  EXPECT_TRUE(passesKeepOutputs(stems, {"channels-last"}));
}

// The generated code of the row-wise reduction and of the padded input
// (fused with the input's transpose) against the NCHW convolutions.
TEST(ChannelsLastTest, StemArtifactsMatchTheNchwConvolutions) {
  TempDir tmp;
  ASSERT_TRUE(frontend::writeOnnxFile(*stems(), tmp.file("stems.onnx")).isOk());
  driver::CompileOptions with, without;
  without.pipeline.disabled = {"channels-last"};
  compileOrFail(tmp.file("stems.onnx"), tmp.file("with.so"), with);
  compileOrFail(tmp.file("stems.onnx"), tmp.file("without.so"), without);
  std::vector<ir::Tensor> inputs = {randomInput({1, 3, 15, 14}, 5), randomInput({1, 8, 6, 6}, 6)};
  auto run = [&](const std::string& path) {
    kiln::Model model(path);
    kiln::Session session(model, 2);
    auto outputs = tools::runArtifact(model, session, inputs);
    EXPECT_TRUE(outputs.isOk()) << outputs.status().message();
    return outputs.isOk() ? *outputs : std::vector<ir::Tensor>{};
  };
  std::vector<ir::Tensor> got = run(tmp.file("with.so")), want = run(tmp.file("without.so"));
  ASSERT_EQ(got.size(), 6u);
  ASSERT_EQ(want.size(), 6u);
  for (size_t i = 0; i < got.size(); ++i) {
    auto diff = tools::compareTensors(got[i], want[i], tools::Tolerance{1e-5, 1e-6});
    EXPECT_FALSE(diff.has_value()) << "output " << i << ": " << *diff;
  }
}

// A ShuffleNetV2 unit as PyTorch exports it: the channels split in two by
// Slice (one with axes given, negative; one with the default axes), a
// branch on the second half, Concat, then the channel shuffle Reshape [N, 2,
// C/2, H, W] -> Transpose(0 2 1 3 4) -> Reshape [N, C, H, W]. `shuffle_perm`
// other than 0 2 1 3 4 is no shuffle and stays NCHW.
std::unique_ptr<ir::Model> shuffleUnit(std::vector<int64_t> shuffle_perm) {
  TestGraph g;
  ir::Value* x = g.input("x", {1, 8, 6, 5});
  ir::Value* a = g.op("Relu", {conv(g, x, 8, 8, 1, "a")->outputs[0]}, "a_relu");
  ir::Value* left =
      g.op("Slice", {a, g.int64s("l_starts", {0}), g.int64s("l_ends", {4}), g.int64s("l_axes", {-3})}, "left");
  ir::Value* right = g.op("Slice", {a, g.int64s("r_starts", {0, 4}), g.int64s("r_ends", {1, 8})}, "right");
  ir::Value* branch = g.op("Relu", {conv(g, right, 4, 4, 3, "branch")->outputs[0]}, "branch_relu");
  ir::Node* cat = g.node("Concat", {left, branch}, "cat");
  setInt(cat, "axis", 1);
  ir::Value* grouped = g.op("Reshape", {cat->outputs[0], g.int64s("grouped_shape", {1, 2, 4, 6, 5})}, "grouped");
  ir::Node* shuffle = g.node("Transpose", {grouped}, "shuffle");
  setInts(shuffle, "perm", shuffle_perm);
  ir::Value* merged = g.op("Reshape", {shuffle->outputs[0], g.int64s("merged_shape", {1, 8, 6, 5})}, "merged");
  g.output(conv(g, merged, 8, 8, 3, "b")->outputs[0]);
  return g.take();
}

TEST(ChannelsLastTest, ChannelShufflesAndSlicesRunChannelsLast) {
  auto make = [] { return shuffleUnit({0, 2, 1, 3, 4}); };
  auto after = runPasses(make, {"channels-last"});
  const ir::Graph& graph = after->graph;
  EXPECT_EQ(countOps(graph, "Transpose"), 3) << "x's, y's and the shuffle's own\n" << ir::printModel(*after);
  for (const auto& node : graph.nodes()) {
    if (node->op_type == "Transpose" && node->outputs[0]->type.shape->size() == 5)
      EXPECT_EQ(node->attribute("perm")->ints, (std::vector<int64_t>{0, 1, 2, 4, 3}));
    if (node->op_type == "Slice")
      EXPECT_EQ(node->input(3)->constant->intAt(node->input(3)->constant->elementCount() - 1), 3);
  }
  EXPECT_TRUE(passesKeepOutputs(make, {"channels-last"}));

  // Not a shuffle: the unit leaves channels-last before the Reshape.
  auto other = [] { return shuffleUnit({0, 1, 2, 4, 3}); };
  auto kept = runPasses(other, {"channels-last"});
  EXPECT_EQ(countOps(kept->graph, "Transpose"), 5) << ir::printModel(*kept);
  EXPECT_TRUE(passesKeepOutputs(other, {"channels-last"}));
}

// Reductions of a channels-last feature map, their axes as attributes
// (opset 17; ReduceSum's an input from 13) or inputs (18): ReduceMean over both spatial axes without
// keepdims (x.mean([2, 3]) before a classifier) reads the NHWC value and
// needs no transpose; ReduceMax with keepdims over the channel is
// transposed back like any op; ReduceSum over H alone without keepdims
// would leave [N, C, W] in one layout and [N, W, C] in the other, so it
// stays behind a transpose.
std::unique_ptr<ir::Model> reductions(int64_t opset) {
  TestGraph g(opset);
  ir::Value* x = g.input("x", {2, 3, 6, 5});
  ir::Value* a = g.op("Relu", {conv(g, x, 3, 8, 3, "a")->outputs[0]}, "a_relu");
  auto reduce = [&](const std::string& op, std::vector<int64_t> axes, int64_t keepdims) {
    const bool attribute = opset < 18 && op != "ReduceSum";
    ir::Node* node = attribute ? g.node(op, {a}, op) : g.node(op, {a, g.int64s(op + "_axes", axes)}, op);
    if (attribute) setInts(node, "axes", axes);
    setInt(node, "keepdims", keepdims);
    g.output(node->outputs[0]);
  };
  reduce("ReduceMean", {2, -1}, 0);
  reduce("ReduceMax", {1}, 1);
  reduce("ReduceSum", {2}, 0);
  return g.take();
}

TEST(ChannelsLastTest, ReductionsOfAFeatureMapRunChannelsLast) {
  for (int64_t opset : {17, 18}) {
    auto make = [opset] { return reductions(opset); };
    auto after = runPasses(make, {"channels-last"});
    auto axes = [&](const ir::Node& node) {
      if (node.attribute("axes")) return node.attribute("axes")->ints;
      std::vector<int64_t> v;
      for (int64_t i = 0; i < node.input(1)->constant->elementCount(); ++i)
        v.push_back(node.input(1)->constant->intAt(i));
      return v;
    };
    for (const auto& node : after->graph.nodes()) {
      if (node->op_type == "ReduceMean") {
        EXPECT_EQ(axes(*node), (std::vector<int64_t>{1, 2})) << opset;
        EXPECT_EQ(node->input(0)->producer->op_type, "Relu") << ir::printModel(*after);
      }
      if (node->op_type == "ReduceMax") EXPECT_EQ(axes(*node), (std::vector<int64_t>{3})) << opset;
      if (node->op_type == "ReduceSum") EXPECT_EQ(node->input(0)->producer->op_type, "Transpose");
    }
    // x's, the max's back to NCHW, and the sum's input.
    EXPECT_EQ(countOps(after->graph, "Transpose"), 3) << ir::printModel(*after);
    EXPECT_TRUE(passesKeepOutputs(make, {"channels-last"})) << opset;
  }
}

// Upsampling between feature maps, as detectors and segmenters do it:
// Resize by constant scales (nearest) and to constant sizes (linear),
// opset 13, and by scales on named axes (opset 18), each concatenated with
// a convolution's output and convolved again: every Resize runs
// channels-last, its scales, sizes or axes permuted, so only x and y are
// transposed.
std::unique_ptr<ir::Model> upsampling(int64_t opset) {
  TestGraph g(opset);
  ir::Value* x = g.input("x", {1, 3, 5, 6});
  ir::Value* a = g.op("Relu", {conv(g, x, 3, 4, 3, "a", 1, 2)->outputs[0]}, "a_relu");  // [1, 4, 3, 3]
  ir::Value* none = g.constant("no_roi", {0}, {});
  ir::Node* up = opset >= 18 ? g.node("Resize", {a, none, g.constant("s2", {2}, {2.0f, 2.0f})}, "up")
                             : g.node("Resize", {a, none, g.constant("s4", {4}, {1.0f, 1.0f, 2.0f, 2.0f})}, "up");
  if (opset >= 18) setInts(up, "axes", {2, 3});
  setString(up, "mode", "nearest");
  ir::Value* b = conv(g, x, 3, 2, 3, "b", 1, 1)->outputs[0];  // [1, 2, 5, 6]
  ir::Node* sized =
      g.node("Resize", {a, none, g.constant("no_scales", {0}, {}), g.int64s("sizes", {1, 4, 5, 6})}, "sized");
  setString(sized, "mode", "linear");
  ir::Node* cat = g.node("Concat", {sized->outputs[0], b}, "cat");
  setInt(cat, "axis", 1);
  g.output(conv(g, cat->outputs[0], 6, 3, 3, "c")->outputs[0]);
  g.output(conv(g, up->outputs[0], 4, 2, 3, "d")->outputs[0]);  // up: [1, 4, 6, 6]
  return g.take();
}

TEST(ChannelsLastTest, ResizesRunChannelsLast) {
  for (int64_t opset : {13, 18}) {
    auto make = [opset] { return upsampling(opset); };
    auto after = runPasses(make, {"channels-last"});
    EXPECT_EQ(countOps(after->graph, "Resize"), 2);
    for (const auto& node : after->graph.nodes())
      if (node->op_type == "Resize") EXPECT_EQ(node->input(0)->producer->op_type, "Relu") << ir::printModel(*after);
    // x's, and the two outputs'.
    EXPECT_EQ(countOps(after->graph, "Transpose"), 3) << opset << "\n" << ir::printModel(*after);
    EXPECT_TRUE(passesKeepOutputs(make, {"channels-last"})) << opset;
  }
}

// A CSP/C2f block's split of the channels, as detectors export it: Split
// along the channels (sizes as an attribute at opset 11, an input at 13),
// one part convolved, both concatenated and convolved again. The split runs
// channels-last; a Split along H stays NCHW.
std::unique_ptr<ir::Model> splitBlock(int64_t opset, int64_t axis) {
  TestGraph g(opset);
  ir::Value* x = g.input("x", {1, 3, 6, 6});
  ir::Value* a = g.op("Relu", {conv(g, x, 3, 8, 3, "a")->outputs[0]}, "a_relu");
  const std::vector<int64_t> sizes = axis == 1 ? std::vector<int64_t>{3, 5} : std::vector<int64_t>{2, 4};
  ir::Node* split =
      opset >= 13 ? g.node("Split", {a, g.int64s("sizes", sizes)}, "split", 2) : g.node("Split", {a}, "split", 2);
  if (opset < 13) setInts(split, "split", sizes);
  setInt(split, "axis", axis);
  ir::Node* cat = g.node("Concat", {split->outputs[0], split->outputs[1]}, "cat");
  setInt(cat, "axis", axis);
  ir::Value* b = conv(g, split->outputs[1], axis == 1 ? 5 : 8, 4, 3, "b")->outputs[0];
  g.output(conv(g, cat->outputs[0], 8, 2, 3, "c")->outputs[0]);
  g.output(b);
  return g.take();
}

TEST(ChannelsLastTest, ChannelSplitsRunChannelsLast) {
  for (int64_t opset : {11, 13}) {
    auto make = [opset] { return splitBlock(opset, 1); };
    auto after = runPasses(make, {"channels-last"});
    for (const auto& node : after->graph.nodes())
      if (node->op_type == "Split") EXPECT_EQ(node->attribute("axis")->i, 3) << ir::printModel(*after);
    EXPECT_EQ(countOps(after->graph, "Transpose"), 3) << "x's and the two outputs'\n" << ir::printModel(*after);
    EXPECT_TRUE(passesKeepOutputs(make, {"channels-last"})) << opset;
  }
  auto rows = [] { return splitBlock(13, 2); };
  auto kept = runPasses(rows, {"channels-last"});
  for (const auto& node : kept->graph.nodes())
    if (node->op_type == "Split") EXPECT_EQ(node->input(0)->producer->op_type, "Transpose") << ir::printModel(*kept);
  EXPECT_TRUE(passesKeepOutputs(rows, {"channels-last"}));
}

// Left NCHW: a convolution whose weight is an input, a 1-D and a 3-D
// convolution.
TEST(ChannelsLastTest, LeavesWhatConvNhwcDoesNotTake) {
  auto make = [] {
    TestGraph g;
    ir::Value* x = g.input("x", {1, 6, 6, 6});
    ir::Value* w = g.input("w", {3, 6, 1, 1});
    ir::Value* dynamic = g.op("Conv", {x, w}, "dynamic");
    ir::Value* x1 = g.input("x1", {1, 2, 9});
    ir::Value* conv1d = g.op("Conv", {x1, g.randomConstant("w1", {3, 2, 3})}, "conv1d");
    ir::Value* x3 = g.input("x3", {1, 2, 3, 3, 3});
    ir::Value* conv3d = g.op("Conv", {x3, g.randomConstant("w3", {2, 2, 1, 1, 1})}, "conv3d");
    g.output(dynamic);
    g.output(conv1d);
    g.output(conv3d);
    return g.take();
  };
  auto after = runPasses(make, {"channels-last"});
  EXPECT_EQ(opSequence(after->graph), opSequence(make()->graph)) << ir::printModel(*after);
  EXPECT_FALSE(after->opset_imports.count("kiln"));
}

// The -O pipeline runs the pass for the CPU and CUDA targets (whose GEMMs
// then take a convolution's bias along D's rows), never when the graph is
// written back as ONNX for other runtimes, and not when disabled.
TEST(ChannelsLastTest, RunsForCompiledTargetsOnly) {
  auto make = [] {
    TestGraph g;
    g.output(conv(g, g.input("x", {1, 3, 8, 8}), 3, 4, 3, "c")->outputs[0]);
    return g.take();
  };
  for (const char* target : {"cpu", "cuda"}) {
    for (bool disabled : {false, true}) {
      driver::CompileOptions options;
      options.target = target;
      if (disabled) options.pipeline.disabled = {"channels-last"};
      options.on_lowered = [&](const ir::Model& model, const lower::Program&) {
        EXPECT_EQ(countOps(model.graph, "ConvNhwc"), disabled ? 0 : 1) << target;
      };
      auto program = compileProgram(make, options);
      EXPECT_TRUE(program.isOk()) << program.status().message();
    }
  }
  // --emit onnx: never channels-last at -O2, and refused when --passes asks
  // for it (other runtimes cannot read kiln.ConvNhwc).
  TempDir tmp;
  ASSERT_TRUE(frontend::writeOnnxFile(*make(), tmp.file("conv.onnx")).isOk());
  driver::CompileOptions onnx;
  onnx.emit = driver::Stage::kOnnx;
  std::ostringstream log;
  ASSERT_TRUE(driver::compileFile(tmp.file("conv.onnx"), tmp.file("out.onnx"), onnx, log).isOk());
  auto written = frontend::importOnnxFile(tmp.file("out.onnx"));
  ASSERT_TRUE(written.isOk()) << written.status().message();
  EXPECT_EQ(opSequence((*written)->graph), "Conv");
  onnx.pipeline.passes = {"channels-last"};
  auto refused = driver::compileFile(tmp.file("conv.onnx"), tmp.file("out2.onnx"), onnx, log);
  ASSERT_FALSE(refused.isOk());
  EXPECT_EQ(refused.status().message(),
            "--emit onnx: the graph holds Kiln's own ops (domain 'kiln', written by the channels-last pass), which "
            "other runtimes cannot read; leave channels-last out of --passes");

  driver::CompileOptions no_layout;
  no_layout.pipeline.disabled.insert("channels-last");
  no_layout.on_lowered = [&](const ir::Model& model, const lower::Program&) {
    EXPECT_EQ(countOps(model.graph, "Conv"), 1);
  };
  EXPECT_TRUE(compileProgram(make, no_layout).isOk());
}

}  // namespace
}  // namespace kiln::testing
