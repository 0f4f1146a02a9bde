// The recurrent layers (compiler/ops/rnn.cpp): attribute and shape
// validation with exact messages, and on the reference evaluator RNN, GRU and
// LSTM against a plain loop written here from the ONNX equations, over
// directions, layouts, activations with alpha/beta, clip, biases, initial
// states, peepholes, linear_before_reset, input_forget and sequence_lens.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "tests/ops/node_fixture.h"

namespace kiln::ops {
namespace {

using ir::DType;
using testing::messageOf;
using testing::OneNodeModel;
using testing::OneNodeGraph;
using testing::tensorOf;
using testing::valuesOf;

constexpr DType f32 = DType::kFloat32;

// ---- Validation ------------------------------------------------------------------

void setStrings(ir::Node& node, const std::string& name, std::vector<std::string> values) {
  ir::Attribute a;
  a.kind = ir::Attribute::Kind::kStrings;
  a.strings = std::move(values);
  node.attributes[name] = a;
}

TEST(RnnInferTest, ShapesFollowLayoutAndDirections) {
  OneNodeGraph g("LSTM");
  g.input(f32, "5x2x3").input(f32, "2x16x3").input(f32, "2x16x4").string("direction", "bidirectional");
  g.integer("hidden_size", 4).outputs(3);
  ASSERT_EQ(messageOf(g.infer(14)), "ok");
  EXPECT_EQ(g.outputShape(0), "5x2x2x4");
  EXPECT_EQ(g.outputShape(1), "2x2x4");
  EXPECT_EQ(g.outputShape(2), "2x2x4");
  OneNodeGraph batch_first("GRU");
  batch_first.input(f32, "2x5x3").input(f32, "1x9x3").input(f32, "1x9x3").integer("layout", 1).outputs(2);
  ASSERT_EQ(messageOf(batch_first.infer(14)), "ok");
  EXPECT_EQ(batch_first.outputShape(0), "2x5x1x3");
  EXPECT_EQ(batch_first.outputShape(1), "2x1x3");
}

TEST(RnnInferTest, RejectsBadAttributesWithExactMessages) {
  OneNodeGraph direction("RNN", "r");
  direction.input(f32, "1x1x2").input(f32, "1x3x2").input(f32, "1x3x3").string("direction", "sideways");
  EXPECT_EQ(messageOf(direction.infer(14)),
            "RNN 'r': direction 'sideways' is not forward, reverse or bidirectional");
  OneNodeGraph layout("RNN", "r");
  layout.input(f32, "1x1x2").input(f32, "1x3x2").input(f32, "1x3x3").integer("layout", 1);
  EXPECT_EQ(messageOf(layout.infer(7)), "RNN 'r': attribute 'layout' needs opset 14");
  OneNodeGraph clip("GRU", "g");
  clip.input(f32, "1x1x2").input(f32, "1x9x2").input(f32, "1x9x3").real("clip", -1.0f);
  EXPECT_EQ(messageOf(clip.infer(14)), "GRU 'g': clip -1.000000 must be positive");
  OneNodeGraph count("LSTM", "l");
  count.input(f32, "1x1x2").input(f32, "1x12x2").input(f32, "1x12x3");
  setStrings(count.node(), "activations", {"Sigmoid", "Tanh"});
  EXPECT_EQ(messageOf(count.infer(14)), "LSTM 'l': activations lists 2 functions, expected 3 (3 per direction)");
  OneNodeGraph unknown("RNN", "r");
  unknown.input(f32, "1x1x2").input(f32, "1x3x2").input(f32, "1x3x3");
  setStrings(unknown.node(), "activations", {"Gelu"});
  Status status = unknown.infer(14);
  EXPECT_EQ(status.kind(), ErrorKind::kUnsupported);
  EXPECT_EQ(messageOf(status), "RNN 'r': activation 'Gelu' is not one ONNX defines for recurrent layers");
}

TEST(RnnInferTest, RejectsInputsOfTheWrongShapeOrType) {
  OneNodeGraph w("GRU", "g");
  w.input(f32, "4x2x3").input(f32, "1x12x3").input(f32, "1x9x3");
  EXPECT_EQ(messageOf(w.infer(14)), "GRU 'g': W has shape 1x12x3, expected 1x9x3 (input 1)");
  OneNodeGraph lens("LSTM", "l");
  lens.input(f32, "4x2x3").input(f32, "1x8x3").input(f32, "1x8x2").omittedInput().input(DType::kInt64, "2");
  EXPECT_EQ(messageOf(lens.infer(14)), "LSTM 'l': sequence_lens has dtype int64, expected int32 (input 4)");
  OneNodeGraph init("RNN", "r");
  init.input(f32, "4x2x3").input(f32, "1x5x3").input(f32, "1x5x5").omittedInput().omittedInput().input(f32, "1x3x5");
  EXPECT_EQ(messageOf(init.infer(14)), "RNN 'r': initial_h has shape 1x3x5, expected 1x2x5 (input 5)");
}

// ---- Reference -------------------------------------------------------------------

struct Act {
  std::string name;
  double alpha = 0, beta = 0;
};

double apply(const Act& a, double x) {
  if (a.name == "Relu") return std::max(x, 0.0);
  if (a.name == "Tanh") return std::tanh(x);
  if (a.name == "Sigmoid") return 1 / (1 + std::exp(-x));
  if (a.name == "Affine") return a.alpha * x + a.beta;
  if (a.name == "LeakyRelu") return x >= 0 ? x : a.alpha * x;
  if (a.name == "ScaledTanh") return a.alpha * std::tanh(a.beta * x);
  if (a.name == "HardSigmoid") return std::clamp(a.alpha * x + a.beta, 0.0, 1.0);
  if (a.name == "Elu") return x >= 0 ? x : a.alpha * (std::exp(x) - 1);
  if (a.name == "Softsign") return x / (1 + std::fabs(x));
  if (a.name == "Softplus") return std::log(1 + std::exp(x));
  ADD_FAILURE() << "no reference for " << a.name;
  return 0;
}

// Alpha and beta go, in order, to the functions that take them; the others
// keep the ONNX op's defaults.
void resolveParams(std::vector<Act>& acts, const std::vector<float>& alphas, const std::vector<float>& betas) {
  struct Params { const char* name; int count; double alpha, beta; };
  const Params table[] = {{"Affine", 2, 1.0, 0.0},     {"LeakyRelu", 1, 0.01, 0},     {"ThresholdedRelu", 1, 1.0, 0},
                          {"ScaledTanh", 2, 1.0, 1.0}, {"HardSigmoid", 2, 0.2, 0.5}, {"Elu", 1, 1.0, 0}};
  size_t na = 0, nb = 0;
  for (Act& a : acts)
    for (const Params& p : table) {
      if (a.name != p.name) continue;
      a.alpha = na < alphas.size() ? alphas[na++] : p.alpha;
      a.beta = p.count == 2 && nb < betas.size() ? betas[nb++] : p.beta;
    }
}

struct Case {
  std::string op;  // RNN, GRU, LSTM
  int T = 3, B = 2, I = 3, H = 4;
  std::string direction = "forward";
  int layout = 0;
  float clip = 0;
  int linear_before_reset = 0, input_forget = 0;
  std::vector<Act> acts;  // empty: the op's defaults; else with alpha/beta as the op consumes them
  std::vector<float> alphas, betas;
  bool bias = true, lens = false, init = true, peep = false;
};

int gatesOf(const std::string& op) { return op == "RNN" ? 1 : op == "GRU" ? 3 : 4; }
std::vector<Act> defaultActs(const std::string& op) {
  if (op == "RNN") return {{"Tanh"}};
  if (op == "GRU") return {{"Sigmoid"}, {"Tanh"}};
  return {{"Sigmoid"}, {"Tanh"}, {"Tanh"}};
}

std::vector<float> pattern(size_t n, int seed) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(std::sin(0.7 * static_cast<double>(i) + seed) * 0.8);
  return v;
}

struct Data {
  std::vector<float> x, w, r, b, h0, c0, p;
  std::vector<int32_t> lens;
};

// Y, Y_h, Y_c in ONNX layout 0 ([T, D, B, H] and [D, B, H]).
std::vector<std::vector<double>> reference(const Case& k, const Data& in) {
  int D = k.direction == "bidirectional" ? 2 : 1, G = gatesOf(k.op), T = k.T, B = k.B, I = k.I, H = k.H;
  std::vector<Act> acts = k.acts;
  if (acts.empty())
    for (int d = 0; d < D; ++d)
      for (const Act& a : defaultActs(k.op)) acts.push_back(a);
  resolveParams(acts, k.alphas, k.betas);
  std::vector<double> y(T * D * B * H, 0.0), yh(D * B * H), yc(D * B * H);
  auto clip = [&](double v) { return k.clip > 0 ? std::clamp(v, -double(k.clip), double(k.clip)) : v; };
  auto xAt = [&](int t, int b, int i) { return k.layout ? in.x[(b * T + t) * I + i] : in.x[(t * B + b) * I + i]; };
  auto stateAt = [&](const std::vector<float>& s, int d, int b, int h) {
    return k.layout ? s[(b * D + d) * H + h] : s[(d * B + b) * H + h];
  };
  for (int d = 0; d < D; ++d) {
    size_t per = acts.size() / D;
    auto f = [&](int which, double v) { return apply(acts[d * per + which], v); };
    bool rev = k.direction == "reverse" || d == 1;
    for (int b = 0; b < B; ++b) {
      std::vector<double> h(H, 0.0), c(H, 0.0);
      for (int j = 0; j < H; ++j) {
        if (k.init) h[j] = stateAt(in.h0, d, b, j);
        if (k.init && k.op == "LSTM") c[j] = stateAt(in.c0, d, b, j);
      }
      int len = k.lens ? in.lens[b] : T;
      for (int s = 0; s < len; ++s) {
        int t = rev ? len - 1 - s : s;
        auto wx = [&](int row) {
          double sum = k.bias ? in.b[d * 2 * G * H + row] : 0.0;
          for (int i = 0; i < I; ++i) sum += xAt(t, b, i) * in.w[(d * G * H + row) * I + i];
          return sum;
        };
        auto rh = [&](int row, const std::vector<double>& state) {
          double sum = k.bias ? in.b[d * 2 * G * H + G * H + row] : 0.0;
          for (int j = 0; j < H; ++j) sum += state[j] * in.r[(d * G * H + row) * H + j];
          return sum;
        };
        std::vector<double> nh(H), nc(H);
        for (int j = 0; j < H; ++j) {
          if (k.op == "RNN") {
            nh[j] = f(0, clip(wx(j) + rh(j, h)));
          } else if (k.op == "LSTM") {
            auto peep = [&](int blk, double cell) { return k.peep ? in.p[d * 3 * H + blk * H + j] * cell : 0.0; };
            double ig = f(0, clip(wx(j) + rh(j, h) + peep(0, c[j])));
            double fg = k.input_forget ? 1 - ig : f(0, clip(wx(2 * H + j) + rh(2 * H + j, h) + peep(2, c[j])));
            double cc = f(1, clip(wx(3 * H + j) + rh(3 * H + j, h)));
            nc[j] = fg * c[j] + ig * cc;
            double og = f(0, clip(wx(H + j) + rh(H + j, h) + peep(1, nc[j])));
            nh[j] = og * f(2, nc[j]);
          } else {
            double z = f(0, clip(wx(j) + rh(j, h)));
            double hh;
            if (k.linear_before_reset) {
              double r = f(0, clip(wx(H + j) + rh(H + j, h)));
              hh = f(1, clip(wx(2 * H + j) + r * rh(2 * H + j, h)));
            } else {
              std::vector<double> rhv(H);
              for (int q = 0; q < H; ++q) rhv[q] = f(0, clip(wx(H + q) + rh(H + q, h))) * h[q];
              hh = f(1, clip(wx(2 * H + j) + rh(2 * H + j, rhv)));
            }
            nh[j] = (1 - z) * hh + z * h[j];
          }
        }
        h = nh;
        if (k.op == "LSTM") c = nc;
        for (int j = 0; j < H; ++j) y[((t * D + d) * B + b) * H + j] = h[j];
      }
      for (int j = 0; j < H; ++j) {
        yh[(d * B + b) * H + j] = h[j];
        yc[(d * B + b) * H + j] = c[j];
      }
    }
  }
  return {y, yh, yc};
}

void check(const Case& k) {
  int D = k.direction == "bidirectional" ? 2 : 1, G = gatesOf(k.op);
  Data in;
  in.x = pattern(size_t(k.T * k.B * k.I), 1);
  in.w = pattern(size_t(D * G * k.H * k.I), 2);
  in.r = pattern(size_t(D * G * k.H * k.H), 3);
  in.b = pattern(size_t(D * 2 * G * k.H), 4);
  in.h0 = pattern(size_t(D * k.B * k.H), 5);
  in.c0 = pattern(size_t(D * k.B * k.H), 6);
  in.p = pattern(size_t(D * 3 * k.H), 7);
  for (int b = 0; b < k.B; ++b) in.lens.push_back(std::max(0, k.T - b));
  bool lstm = k.op == "LSTM";

  OneNodeModel m(k.op, 14);
  std::vector<ir::Tensor> inputs;
  auto add = [&](bool use, std::vector<int64_t> dims, const std::vector<float>& v) {
    if (!use) return void(m.omittedInput());
    m.input(f32, dims);
    inputs.push_back(tensorOf(f32, dims, v));
  };
  std::vector<int64_t> x_dims = k.layout ? std::vector<int64_t>{k.B, k.T, k.I} : std::vector<int64_t>{k.T, k.B, k.I};
  std::vector<int64_t> s_dims = k.layout ? std::vector<int64_t>{k.B, D, k.H} : std::vector<int64_t>{D, k.B, k.H};
  add(true, x_dims, in.x);
  add(true, {D, G * k.H, k.I}, in.w);
  add(true, {D, G * k.H, k.H}, in.r);
  add(k.bias, {D, 2 * G * k.H}, in.b);
  if (k.lens) {
    m.input(DType::kInt32, {k.B});
    inputs.push_back(tensorOf(DType::kInt32, {k.B}, in.lens));
  } else {
    m.omittedInput();
  }
  add(k.init, s_dims, in.h0);
  if (lstm) add(k.init, s_dims, in.c0);
  if (lstm && k.peep) add(true, {D, 3 * k.H}, in.p);
  m.attr("hidden_size", k.H).attr("direction", k.direction).attr("layout", k.layout);
  if (k.clip > 0) m.attr("clip", k.clip);
  if (k.op == "GRU") m.attr("linear_before_reset", k.linear_before_reset);
  if (lstm) m.attr("input_forget", k.input_forget);
  if (!k.acts.empty()) {
    ir::Attribute names, alphas, betas;
    names.kind = ir::Attribute::Kind::kStrings;
    for (const Act& a : k.acts) names.strings.push_back(a.name);
    m.attr("activations", names);
    alphas.kind = betas.kind = ir::Attribute::Kind::kFloats;
    alphas.floats = k.alphas;
    betas.floats = k.betas;
    if (!k.alphas.empty()) m.attr("activation_alpha", alphas);
    if (!k.betas.empty()) m.attr("activation_beta", betas);
  }
  std::vector<ir::Tensor> out = m.runTensors(lstm ? 3 : 2, inputs);
  ASSERT_EQ(out.size(), lstm ? 3u : 2u);
  std::vector<std::vector<double>> want = reference(k, in);
  for (size_t o = 0; o < out.size(); ++o) {
    std::vector<float> got = valuesOf<float>(out[o]);
    ASSERT_EQ(got.size(), want[o].size()) << "output " << o;
    for (size_t e = 0; e < got.size(); ++e) {
      // Map layout-0 element e to the output's layout.
      size_t at = e;
      if (k.layout) {
        size_t h = e % k.H, rest = e / k.H;
        if (o == 0) {
          size_t b = rest % k.B, d = (rest / k.B) % D, t = rest / k.B / D;
          at = ((b * k.T + t) * D + d) * k.H + h;
        } else {
          size_t b = rest % k.B, d = rest / k.B;
          at = (b * D + d) * k.H + h;
        }
      }
      EXPECT_NEAR(got[at], want[o][e], 2e-5) << k.op << " output " << o << " element " << e;
    }
  }
}

// ---- Evaluation ------------------------------------------------------------------

TEST(RnnEvalTest, RnnForwardReverseAndBidirectionalActivations) {
  check(Case{.op = "RNN"});
  check(Case{.op = "RNN", .direction = "reverse", .bias = false, .init = false});
  check(Case{.op = "RNN",
             .direction = "bidirectional",
             .acts = {{"LeakyRelu"}, {"ScaledTanh"}},
             .alphas = {0.2f, 1.5f},
             .betas = {0.5f}});
  Case with_lens{.op = "RNN", .direction = "bidirectional", .layout = 1, .lens = true};
  check(with_lens);
}

TEST(RnnEvalTest, GruBothResetFormsClipAndSequenceLengths) {
  check(Case{.op = "GRU"});
  check(Case{.op = "GRU", .linear_before_reset = 1});
  check(Case{.op = "GRU", .direction = "bidirectional", .clip = 0.3f, .linear_before_reset = 1, .lens = true});
  check(Case{.op = "GRU",
             .direction = "reverse",
             .layout = 1,
             .acts = {{"HardSigmoid"}, {"Affine"}},
             .alphas = {0.3f, 0.9f},
             .betas = {0.4f, 0.1f}});
}

TEST(RnnEvalTest, LstmPeepholesInputForgetLayoutAndLengths) {
  check(Case{.op = "LSTM"});
  check(Case{.op = "LSTM", .peep = true});
  check(Case{.op = "LSTM", .direction = "bidirectional", .layout = 1, .clip = 0.5f, .lens = true, .peep = true});
  check(Case{.op = "LSTM", .direction = "reverse", .input_forget = 1, .init = false});
  check(Case{.op = "LSTM",
             .acts = {{"Sigmoid"}, {"Elu"}, {"Softsign"}},
             .alphas = {0.7f}});
}

}  // namespace
}  // namespace kiln::ops
