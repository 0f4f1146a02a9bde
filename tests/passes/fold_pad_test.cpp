// fold-pad: a Pad by zeros of the spatial axes, read only by convolutions,
// becomes their padding (TensorFlow converters' "SAME" padding); Pads that
// change what a convolution would read with its own padding stay.
#include <gtest/gtest.h>

#include "compiler/ir/printer.h"
#include "tests/passes/model_check.h"

namespace kiln::testing {
namespace {

ir::Node* conv(TestGraph& g, ir::Value* x, const std::string& name, std::vector<int64_t> pads, int64_t stride = 1) {
  ir::Node* node = g.node("Conv", {x, g.randomConstant(name + "_w", {4, 3, 3, 3}), g.randomConstant(name + "_b", {4})}, name);
  if (!pads.empty()) setInts(node, "pads", pads);
  setInts(node, "strides", {stride, stride});
  return node;
}

// Pad (opset 17: pads and value as inputs) -> two strided Convs, one with
// pads of its own; an opset-18 Pad with axes -> Conv with auto_pad VALID.
std::unique_ptr<ir::Model> padded(int64_t opset) {
  TestGraph g(opset);
  ir::Value* x = g.input("x", {1, 3, 9, 10});
  ir::Value* p = opset >= 18 ? g.op("Pad", {x, g.int64s("pads", {0, 1, 2, 1}), g.constant("zero", {}, {0.0f}),
                                            g.int64s("axes", {2, -1})},
                                    "pad")
                             : g.op("Pad", {x, g.int64s("pads", {0, 0, 0, 1, 0, 0, 2, 1}), g.constant("zero", {}, {0.0f})},
                                    "pad");
  g.output(conv(g, p, "a", {}, 2)->outputs[0]);
  g.output(conv(g, p, "b", {1, 0, 0, 1})->outputs[0]);
  return g.take();
}

TEST(FoldPadTest, SpatialZeroPadsBecomeTheConvolutionsPadding) {
  for (int64_t opset : {17, 18}) {
    auto make = [opset] { return padded(opset); };
    auto after = runPasses(make, {"fold-pad"});
    EXPECT_EQ(countOps(after->graph, "Pad"), 0) << opset << "\n" << ir::printModel(*after);
    std::vector<std::vector<int64_t>> pads;
    for (const auto& node : after->graph.nodes())
      if (node->op_type == "Conv") {
        EXPECT_EQ(node->input(0)->name, "x");
        pads.push_back(node->attribute("pads")->ints);
      }
    // ONNX orders pads (begins, then ends): H top 0, W left 1, H bottom 2, W right 1.
    EXPECT_EQ(pads, (std::vector<std::vector<int64_t>>{{0, 1, 2, 1}, {1, 1, 2, 2}})) << opset;
    EXPECT_TRUE(passesKeepOutputs(make, {"fold-pad"})) << opset;
  }
}

// Left as they are: reflect mode, a value other than 0, padding of the
// channels, a Pad another op reads too, a Conv with auto_pad SAME_UPPER.
TEST(FoldPadTest, KeepsPadsAConvolutionCannotTakeOver) {
  auto make = [] {
    TestGraph g;
    ir::Value* x = g.input("x", {1, 3, 6, 6});
    ir::Node* reflect = g.node("Pad", {x, g.int64s("p1", {0, 0, 1, 1, 0, 0, 1, 1})}, "reflect");
    setString(reflect, "mode", "reflect");
    g.output(conv(g, reflect->outputs[0], "c1", {})->outputs[0]);
    ir::Value* ones = g.op("Pad", {x, g.int64s("p2", {0, 0, 1, 1, 0, 0, 1, 1}), g.constant("one", {}, {1.0f})}, "ones");
    g.output(conv(g, ones, "c2", {})->outputs[0]);
    ir::Value* channels = g.op("Pad", {x, g.int64s("p3", {0, 1, 0, 0, 0, 0, 0, 0})}, "channels");
    ir::Node* wide = g.node("Conv", {channels, g.randomConstant("c3_w", {4, 4, 3, 3})}, "c3");
    g.output(wide->outputs[0]);
    ir::Value* shared = g.op("Pad", {x, g.int64s("p4", {0, 0, 1, 1, 0, 0, 1, 1})}, "shared");
    g.output(conv(g, shared, "c4", {})->outputs[0]);
    g.output(g.op("Relu", {shared}, "relu"));
    ir::Value* same = g.op("Pad", {x, g.int64s("p5", {0, 0, 1, 1, 0, 0, 1, 1})}, "same");
    ir::Node* c5 = conv(g, same, "c5", {});
    setString(c5, "auto_pad", "SAME_UPPER");
    g.output(c5->outputs[0]);
    return g.take();
  };
  auto after = runPasses(make, {"fold-pad"});
  EXPECT_EQ(opSequence(after->graph), opSequence(make()->graph)) << ir::printModel(*after);
}

}  // namespace
}  // namespace kiln::testing
