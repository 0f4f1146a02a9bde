// recognize-attention: MatMul -> [Div|Mul by a scalar] -> [Add mask] ->
// Softmax(last axis) -> MatMul becomes one kiln.Attention, with the outputs
// of the unrewritten graph within 1e-5 relative; at -O2 on the CPU the whole
// attention, K's transpose included, is one kernel; near misses stay as
// they are; CUDA's pipeline leaves attention to its GEMMs.
//
// Tolerance: kiln.Attention divides by the row sum after the product with V
// rather than before, which rounds each output differently by a few float32
// ulps; 1e-5 relative is a hundred of those, and a wrong scale, mask or
// axis is off by far more.
#include <gtest/gtest.h>

#include "compiler/ir/printer.h"
#include "compiler/ops/op_registry.h"
#include "tests/passes/attention_models.h"
#include "tests/passes/model_check.h"

namespace kiln::testing {
namespace {

constexpr char kPass[] = "recognize-attention";

enum class Scale { kNone, kDiv, kMul, kMulFirst, kInput };
enum class Mask { kNone, kBroadcast, kComputedFirst };
enum class Where { kNone, kKeep, kDrop };  // Where(keep, s, fill) (GPT-2's causal mask), Where(drop, fill, s)

struct Layer {
  Scale scale = Scale::kDiv;
  Mask mask = Mask::kNone;
  Where where = Where::kNone;
  int64_t softmax_axis = -1;
  int64_t opset = 17;
  bool omit_axis = false;       // Softmax without its axis attribute
  bool probs_escape = false;    // the Softmax output is a graph output too
  bool broadcast_keys = false;  // K of batch 1 against Q of batch 2
};

// q, k, v [2, 3, 8, 16] -> softmax(q @ k^T (scaled) (+ mask)) @ v
std::unique_ptr<ir::Model> attention(const Layer& p) {
  TestGraph g(p.opset);
  ir::Value* q = g.input("q", {2, 3, 8, 16});
  ir::Value* k = g.input("k", {p.broadcast_keys ? 1 : 2, 3, 8, 16});
  ir::Value* v = g.input("v", {2, 3, 8, 16});
  ir::Node* kt = g.node("Transpose", {k}, "kt");
  setInts(kt, "perm", {0, 1, 3, 2});
  ir::Value* s = g.op("MatMul", {q, kt->outputs[0]}, "scores");
  ir::Value* c = g.constant("c", {}, {4.0f});
  switch (p.scale) {
    case Scale::kNone:
      break;
    case Scale::kDiv:
      s = g.op("Div", {s, c}, "scaled");
      break;
    case Scale::kMul:
      s = g.op("Mul", {s, c}, "scaled");
      break;
    case Scale::kMulFirst:
      s = g.op("Mul", {c, s}, "scaled");
      break;
    case Scale::kInput:
      s = g.op("Mul", {s, g.input("c_in", {})}, "scaled");
      break;
  }
  if (p.where != Where::kNone) {
    ir::Value* cond = g.op("Greater", {g.randomConstant("causal", {8, 8}), g.constant("zero", {}, {0.0f})}, "cond");
    ir::Value* fill = g.constant("fill", {}, {-1e9f});
    s = g.op("Where",
             p.where == Where::kKeep ? std::vector<ir::Value*>{cond, s, fill} : std::vector<ir::Value*>{cond, fill, s},
             "kept");
  }
  if (p.mask == Mask::kBroadcast) {
    s = g.op("Add", {s, g.randomConstant("mask", {8, 8}, -3, 0)}, "masked");
  } else if (p.mask == Mask::kComputedFirst) {
    // HuggingFace's extended mask, (1 - mask) * -10000, on the Add's left.
    ir::Value* keep = g.input("keep", {2, 1, 1, 8});
    ir::Value* drop = g.op("Sub", {g.constant("one", {}, {1.0f}), keep}, "drop");
    ir::Value* bias = g.op("Mul", {drop, g.constant("big", {}, {-10000.0f})}, "bias");
    s = g.op("Add", {bias, s}, "masked");
  }
  ir::Node* softmax = g.node("Softmax", {s}, "probs");
  if (!p.omit_axis) setInt(softmax, "axis", p.softmax_axis);
  ir::Value* y = g.op("MatMul", {softmax->outputs[0], v}, "y");
  g.output(y);
  if (p.probs_escape) g.output(softmax->outputs[0]);
  return g.take();
}

::testing::AssertionResult sameAsUnrewritten(const ModelFactory& make) {
  return passesKeepOutputs(make, {kPass}, 1e-5, 3);
}

const ir::Node* findOp(const ir::Graph& graph, const std::string& op) {
  for (const auto& node : graph.nodes())
    if (node->op_type == op) return node.get();
  return nullptr;
}

void expectOneAttention(const Layer& p, const std::string& before, const std::string& after_ops) {
  auto make = [&] { return attention(p); };
  EXPECT_EQ(opSequence(make()->graph), before);
  auto after = runPasses(make, {kPass});
  EXPECT_EQ(opSequence(after->graph), after_ops) << ir::printModel(*after);
  const ir::Node* node = findOp(after->graph, "Attention");
  ASSERT_NE(node, nullptr);
  EXPECT_EQ(node->domain, std::string(ops::kKilnDomain));
  EXPECT_EQ(node->outputs[0]->name, "y") << "the graph output keeps its name";
  EXPECT_EQ(node->input(0)->name, "q");
  EXPECT_EQ(node->input(1)->name, "kt");
  EXPECT_EQ(node->input(2)->name, "v");
  EXPECT_TRUE(sameAsUnrewritten(make));
}

TEST(RecognizeAttentionTest, DividedScoresBecomeOneAttention) {
  expectOneAttention({}, "Transpose,MatMul,Div,Softmax,MatMul", "Transpose,Attention");
  auto after = runPasses([] { return attention({}); }, {kPass});
  const ir::Node* node = findOp(after->graph, "Attention");
  ASSERT_NE(node->attribute("scale_divides"), nullptr);
  EXPECT_EQ(node->attribute("scale_divides")->i, 1);
  EXPECT_EQ(node->input(3)->name, "c");
}

TEST(RecognizeAttentionTest, MultipliedUnscaledAndMaskedForms) {
  expectOneAttention({.scale = Scale::kMul}, "Transpose,MatMul,Mul,Softmax,MatMul", "Transpose,Attention");
  expectOneAttention({.scale = Scale::kMulFirst}, "Transpose,MatMul,Mul,Softmax,MatMul", "Transpose,Attention");
  expectOneAttention({.scale = Scale::kNone}, "Transpose,MatMul,Softmax,MatMul", "Transpose,Attention");
  expectOneAttention({.mask = Mask::kBroadcast}, "Transpose,MatMul,Div,Add,Softmax,MatMul", "Transpose,Attention");
  expectOneAttention({.scale = Scale::kNone, .mask = Mask::kBroadcast}, "Transpose,MatMul,Add,Softmax,MatMul",
                     "Transpose,Attention");
  expectOneAttention({.mask = Mask::kComputedFirst}, "Transpose,MatMul,Div,Sub,Mul,Add,Softmax,MatMul",
                     "Transpose,Sub,Mul,Attention");
}

// GPT-2's causal mask, Where(keep, scores, fill), then an Add mask; and
// masked_fill's Where(drop, fill, scores).
TEST(RecognizeAttentionTest, WhereMasks) {
  expectOneAttention({.mask = Mask::kBroadcast, .where = Where::kKeep},
                     "Transpose,MatMul,Div,Greater,Where,Add,Softmax,MatMul", "Transpose,Greater,Attention");
  expectOneAttention({.where = Where::kDrop}, "Transpose,MatMul,Div,Greater,Where,Softmax,MatMul",
                     "Transpose,Greater,Attention");
  expectKernelsDrop([] { return attention({.mask = Mask::kBroadcast, .where = Where::kKeep}); }, kPass, 4, 1);
}

// Softmax's last axis given as rank - 1, and before opset 13, where axis
// rank - 1 normalizes the last axis alone too.
TEST(RecognizeAttentionTest, LastAxisNamedByItsIndex) {
  expectOneAttention({.softmax_axis = 3}, "Transpose,MatMul,Div,Softmax,MatMul", "Transpose,Attention");
  expectOneAttention({.softmax_axis = 3, .opset = 11}, "Transpose,MatMul,Div,Softmax,MatMul", "Transpose,Attention");
}

// nn.MultiheadAttention's form: heads folded into the batch ([B*H, S, D]),
// and cross-attention, where the keys' length differs from the queries'.
TEST(RecognizeAttentionTest, FoldedHeadsAndCrossAttention) {
  auto make = [] { return crossAttentionModel(true); };
  auto after = runPasses(make, {kPass});
  EXPECT_EQ(opSequence(after->graph), "Transpose,Attention") << ir::printModel(*after);
  EXPECT_TRUE(sameAsUnrewritten(make));
  expectKernelsDrop(make, kPass, 4, 1);
}

// Near misses, left as they are (and computing the same).
void expectLeftAlone(const Layer& p) {
  auto make = [&] { return attention(p); };
  auto after = runPasses(make, {kPass});
  EXPECT_EQ(opSequence(after->graph), opSequence(make()->graph)) << ir::printModel(*after);
  EXPECT_TRUE(sameAsUnrewritten(make));
}

TEST(RecognizeAttentionTest, LeavesOtherAxesReadersAndShapes) {
  expectLeftAlone({.softmax_axis = 2});               // not the key axis
  expectLeftAlone({.opset = 11, .omit_axis = true});  // opset 11's default axis 1 flattens [3, 8, 8]
  expectLeftAlone({.probs_escape = true});            // the probabilities are an output too
  expectLeftAlone({.broadcast_keys = true});          // K broadcast across the batch
  expectLeftAlone({.scale = Scale::kInput});          // a scale known only at run time
}

// At -O2 on the CPU: without the pass, K's layout, the scores, Softmax and
// the context are four kernels; with it, one.
TEST(RecognizeAttentionTest, WholeAttentionIsOneKernel) {
  expectKernelsDrop([] { return attention({.mask = Mask::kBroadcast}); }, kPass, 4, 1);
}

// A CUDA compile keeps MatMul and Softmax: its scores and context are cuBLASLt GEMMs.
TEST(RecognizeAttentionTest, CudaPipelineLeavesAttentionToItsGemms) {
  for (const char* target : {"cpu", "cuda"}) {
    driver::CompileOptions options;
    options.target = target;
    bool lowered = false;
    options.on_lowered = [&](const ir::Model& model, const lower::Program&) {
      lowered = true;
      EXPECT_EQ(findOp(model.graph, "Attention") != nullptr, std::string(target) == "cpu") << target;
    };
    auto program = compileProgram([] { return attention({}); }, options);
    EXPECT_TRUE(program.isOk()) << program.status().message();
    EXPECT_TRUE(lowered);
  }
}

}  // namespace
}  // namespace kiln::testing
