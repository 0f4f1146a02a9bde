// The generated code's float32 exp, tanh, erf and sigmoid (codegen/cpu/
// emit_math.h: inline approximations, not libm) against the double-precision
// functions, over a dense sweep of each one's interesting range plus the
// special values. The bounds asserted here are the ones emit_math.h and
// docs/architecture.md state; the measured maxima are printed. Also the
// float -> 8- and 16-bit integer casts, which the code generator clamps in
// float before converting: exactly ONNX's saturating result, NaN -> 0.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

#include "compiler/onnx/writer.h"
#include "tests/passes/model_check.h"
#include "tests/testing/artifact_fixture.h"
#include "tools/common/run_artifact.h"

namespace kiln::testing {
namespace {

// Distance in units in the last place of `want` rounded to float (the
// spacing of floats at that magnitude; subnormal spacing below FLT_MIN).
double ulpError(float got, double want) {
  float w = static_cast<float>(want);
  double spacing = std::nextafter(std::fabs(w), std::numeric_limits<float>::infinity()) - std::fabs(w);
  return std::fabs(static_cast<double>(got) - want) / spacing;
}

struct Sweep {
  std::vector<float> x;
  std::vector<std::vector<float>> y;  // per op, in `ops` order
};

const std::vector<std::string> kOps = {"Exp", "Tanh", "Erf", "Sigmoid"};

// `model` written as ONNX, compiled for this CPU and run once on `inputs`.
Expected<std::vector<ir::Tensor>> compileAndRun(const ir::Model& model, const std::vector<ir::Tensor>& inputs) {
  TempDir tmp;
  KILN_RETURN_IF_ERROR(frontend::writeOnnxFile(model, tmp.file("model.onnx")));
  compileOrFail(tmp.file("model.onnx"), tmp.file("model.so"));
  kiln::Model artifact(tmp.file("model.so"));
  kiln::Session session(artifact, 1);
  return tools::runArtifact(artifact, session, inputs);
}

// One model with every op on the same input; compiled once, run once.
Sweep runSweep(std::vector<float> x) {
  TestGraph g;
  ir::Value* in = g.input("x", {static_cast<int64_t>(x.size())});
  for (const std::string& op : kOps) g.output(g.op(op, {in}, op));
  Sweep sweep;
  auto outputs = compileAndRun(
      g.model(), {ir::Tensor::fromValues<float>(ir::DType::kFloat32, {static_cast<int64_t>(x.size())}, x)});
  EXPECT_TRUE(outputs.isOk()) << outputs.status().message();
  if (!outputs.isOk()) return sweep;
  for (const ir::Tensor& t : *outputs) {
    const auto* p = reinterpret_cast<const float*>(t.bytes().data());
    sweep.y.emplace_back(p, p + x.size());
  }
  sweep.x = std::move(x);
  return sweep;
}

std::vector<float> linspace(double lo, double hi, int n) {
  std::vector<float> x;
  for (int i = 0; i < n; ++i) x.push_back(static_cast<float>(lo + (hi - lo) * i / (n - 1)));
  return x;
}

class EmitMathTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::vector<float> x = linspace(-110, 95, 1 << 20);
    for (float v : linspace(-1, 1, 1 << 18)) x.push_back(v);            // dense near 0
    for (float v : linspace(-1e-3, 1e-3, 1 << 12)) x.push_back(v);      // tiny arguments
    for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, 88.72f, 88.73f, -87.4f, -103.9f, -104.5f, 0.625f, -0.625f,
                    std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                    std::numeric_limits<float>::quiet_NaN()})
      x.push_back(v);
    sweep_ = new Sweep(runSweep(std::move(x)));
  }
  static void TearDownTestSuite() { delete sweep_; }

  // Max ulp and relative/absolute error of op `k` against `exact` where
  // `where(x)` holds; NaN must map to NaN and infinities must match exactly.
  struct Errors {
    double ulp = 0, rel = 0, abs = 0;
  };
  static Errors measure(size_t k, const std::function<double(double)>& exact,
                        const std::function<bool(float)>& where = [](float) { return true; }) {
    Errors e;
    const Sweep& s = *sweep_;
    EXPECT_EQ(s.y.size(), kOps.size());
    if (s.y.size() != kOps.size()) return e;
    for (size_t i = 0; i < s.x.size(); ++i) {
      float x = s.x[i], got = s.y[k][i];
      double want = exact(x);
      if (std::isnan(want)) {
        EXPECT_TRUE(std::isnan(got)) << kOps[k] << "(" << x << ") = " << got;
        continue;
      }
      if (std::isinf(static_cast<float>(want))) {
        EXPECT_EQ(got, static_cast<float>(want)) << kOps[k] << "(" << x << ")";
        continue;
      }
      if (!where(x)) continue;
      e.ulp = std::max(e.ulp, ulpError(got, want));
      e.abs = std::max(e.abs, std::fabs(got - want));
      if (want != 0) e.rel = std::max(e.rel, std::fabs(got - want) / std::fabs(want));
    }
    std::printf("%s: max %.2f ulp, relative %.3g, absolute %.3g\n", kOps[k].c_str(), e.ulp, e.rel, e.abs);
    return e;
  }

  static Sweep* sweep_;
};

Sweep* EmitMathTest::sweep_ = nullptr;

TEST_F(EmitMathTest, ExpWithinTwoUlpAndExactAtTheEnds) {
  Errors e = measure(0, [](double x) { return std::exp(x); },
                     [](float x) { return std::exp(static_cast<double>(x)) >= std::numeric_limits<float>::min(); });
  EXPECT_LE(e.ulp, 2.0);
  const Sweep& s = *sweep_;
  for (size_t i = 0; i < s.x.size(); ++i) {
    if (s.x[i] < -104) {
      EXPECT_EQ(s.y[0][i], 0.0f) << "exp(" << s.x[i] << ") underflows to 0";
    }
    if (s.x[i] > 88.73f) {
      EXPECT_EQ(s.y[0][i], std::numeric_limits<float>::infinity()) << "exp(" << s.x[i] << ")";
    }
    // Subnormal results: within one subnormal spacing.
    double want = std::exp(static_cast<double>(s.x[i]));
    if (want < std::numeric_limits<float>::min()) {
      EXPECT_LE(std::fabs(s.y[0][i] - want), 1.5e-45) << "exp(" << s.x[i] << ")";
    }
  }
}

TEST_F(EmitMathTest, TanhWithinThreeUlp) {
  Errors e = measure(1, [](double x) { return std::tanh(x); });
  EXPECT_LE(e.ulp, 3.0);
}

TEST_F(EmitMathTest, ErfWithinBounds) {
  Errors e = measure(2, [](double x) { return std::erf(x); });
  EXPECT_LE(e.abs, 5e-7);
  EXPECT_LE(e.rel, 5e-7);
}

TEST_F(EmitMathTest, SigmoidThroughExp) {
  Errors e = measure(3, [](double x) { return 1.0 / (1.0 + std::exp(-x)); },
                     [](float x) { return x > -87; });  // beyond, 1/(1+exp(-x)) is a subnormal or 0
  EXPECT_LE(e.ulp, 4.0);
  // Below -87 the result is sigmoid(-87), about 1.6e-38: the true value or
  // within that of it.
  const Sweep& s = *sweep_;
  for (size_t i = 0; i < s.x.size(); ++i)
    if (s.x[i] <= -87.0f) {
      EXPECT_GE(s.y[3][i], 0.0f) << "Sigmoid(" << s.x[i] << ")";
      EXPECT_LE(s.y[3][i], 1.7e-38f) << "Sigmoid(" << s.x[i] << ")";
    }
}

// Cast from float32 and float64 to uint8, int8, uint16 and int16 over values
// at and around each bound, infinities and NaN, repeated so that the loop
// runs in vectors: truncated toward zero, then clamped; NaN gives 0.
TEST(EmitCastTest, FloatToNarrowIntegersSaturate) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> special = {std::numeric_limits<float>::quiet_NaN(), inf, -inf, -1e30f, 1e30f, -40000.5f,
                                      -32768.9f, -32768.0f, -32767.5f, -129.0f, -128.9f, -128.0f, -127.5f, -1.5f,
                                      -0.9f, -0.0f, 0.0f, 0.4f, 0.99f, 1.5f, 126.6f, 127.0f, 127.9f, 128.0f,
                                      254.99f, 255.0f, 255.5f, 256.0f, 32766.7f, 32767.0f, 32767.9f, 32768.0f,
                                      65534.5f, 65535.0f, 65535.9f, 65536.0f, 70000.0f, 3e9f};
  std::vector<float> x;
  for (int r = 0; r < 64; ++r) x.insert(x.end(), special.begin(), special.end());
  const int64_t n = static_cast<int64_t>(x.size());
  const std::vector<ir::DType> targets = {ir::DType::kUInt8, ir::DType::kInt8, ir::DType::kUInt16, ir::DType::kInt16};
  TestGraph g;
  ir::Value* in = g.input("x", {n});
  ir::Node* wide = g.node("Cast", {in}, "x64");
  setInt(wide, "to", static_cast<int64_t>(ir::DType::kFloat64));
  for (ir::Value* source : {in, wide->outputs[0]})
    for (ir::DType to : targets) {
      ir::Node* cast = g.node("Cast", {source}, source->name + "_to_" + std::string(ir::name(to)));
      setInt(cast, "to", static_cast<int64_t>(to));
      g.output(cast->outputs[0]);
    }
  auto outputs = compileAndRun(g.model(), {ir::Tensor::fromValues<float>(ir::DType::kFloat32, {n}, x)});
  ASSERT_TRUE(outputs.isOk()) << outputs.status().message();
  ASSERT_EQ(outputs->size(), 2 * targets.size());
  for (size_t o = 0; o < outputs->size(); ++o) {
    const ir::DType to = targets[o % targets.size()];
    const bool is_unsigned = to == ir::DType::kUInt8 || to == ir::DType::kUInt16;
    const int bits = ir::byteSize(to) * 8;
    const double hi = is_unsigned ? std::ldexp(1.0, bits) - 1 : std::ldexp(1.0, bits - 1) - 1;
    const double lo = is_unsigned ? 0.0 : -std::ldexp(1.0, bits - 1);
    const ir::Tensor& t = (*outputs)[o];
    for (int64_t i = 0; i < n; ++i) {
      const float v = x[static_cast<size_t>(i)];
      const double want = std::isnan(v) ? 0.0 : std::clamp(std::trunc(static_cast<double>(v)), lo, hi);
      double got = 0;
      const std::byte* p = t.bytes().data() + i * ir::byteSize(to);
      if (to == ir::DType::kUInt8) got = *reinterpret_cast<const uint8_t*>(p);
      if (to == ir::DType::kInt8) got = *reinterpret_cast<const int8_t*>(p);
      if (to == ir::DType::kUInt16) got = *reinterpret_cast<const uint16_t*>(p);
      if (to == ir::DType::kInt16) got = *reinterpret_cast<const int16_t*>(p);
      ASSERT_EQ(got, want) << "Cast(" << (o < targets.size() ? "float32 " : "float64 ") << v << ") to "
                           << ir::name(to) << ", element " << i;
    }
  }
}

// Clip and Relu are max and min against constants, which the generated code
// emits as one vmaxps/vminps where the bound is neither zero nor NaN
// (emit_expr.cpp); the results must be the reference evaluator's bit for
// bit: NaN from x stays NaN, Relu(-0) is +0, a bound equal to x gives it.
TEST(EmitMinMaxTest, ClipAndReluMatchTheDefinitionBitForBit) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> special = {std::numeric_limits<float>::quiet_NaN(),
                                      inf,
                                      -inf,
                                      -0.0f,
                                      0.0f,
                                      -1.5f,
                                      -1.4999999f,
                                      -1.5000001f,
                                      6.0f,
                                      5.9999995f,
                                      6.0000005f,
                                      1e-45f,
                                      -1e-45f,
                                      3.25f,
                                      -7.0f,
                                      1e30f,
                                      -1e30f};
  std::vector<float> x;
  for (int r = 0; r < 64; ++r) x.insert(x.end(), special.begin(), special.end());
  const int64_t n = static_cast<int64_t>(x.size());
  struct Bounds {
    float lo, hi;
  };
  const std::vector<Bounds> clips = {{-1.5f, 6.0f}, {0.0f, 6.0f}, {-inf, 6.0f}, {-1.5f, inf}};
  TestGraph g;
  ir::Value* in = g.input("x", {n});
  for (size_t c = 0; c < clips.size(); ++c) {
    const std::string id = std::to_string(c);
    g.output(g.op("Clip", {in, g.constant("lo" + id, {}, {clips[c].lo}), g.constant("hi" + id, {}, {clips[c].hi})},
                  "clip" + id));
  }
  g.output(g.op("Relu", {in}, "relu"));
  auto outputs = compileAndRun(g.model(), {ir::Tensor::fromValues<float>(ir::DType::kFloat32, {n}, x)});
  ASSERT_TRUE(outputs.isOk()) << outputs.status().message();
  ASSERT_EQ(outputs->size(), clips.size() + 1);
  auto max = [](float a, float b) { return a > b || std::isnan(a) ? a : b; };
  auto min = [](float a, float b) { return a < b || std::isnan(a) ? a : b; };
  for (size_t o = 0; o < outputs->size(); ++o) {
    const auto* got = reinterpret_cast<const float*>((*outputs)[o].bytes().data());
    for (int64_t i = 0; i < n; ++i) {
      const float v = x[static_cast<size_t>(i)];
      const float want = o < clips.size() ? min(max(v, clips[o].lo), clips[o].hi) : max(v, 0.0f);
      uint32_t got_bits = 0, want_bits = 0;
      std::memcpy(&got_bits, &got[i], 4);
      std::memcpy(&want_bits, &want, 4);
      if (std::isnan(want))
        ASSERT_TRUE(std::isnan(got[i])) << "output " << o << " at " << v;
      else
        ASSERT_EQ(got_bits, want_bits) << "output " << o << " at " << v << ": got " << got[i] << ", want " << want;
    }
  }
}

// QuantizeLinear and QuantizeLinear -> DequantizeLinear, fused into one
// elementwise kernel each, against the ONNX definitions evaluated here in
// float: saturate(round_half_even(x / scale) + zero_point), then
// (q - zero_point) * scale. The generated code divides through the
// reciprocal with one correction step and dequantizes without leaving float
// (emit_expr.cpp); both must be exact for every input. The sweep puts x on
// each half-integer quotient and one float either side of it, plus specials.
TEST(EmitQuantizeTest, QuantizeAndRequantizeMatchTheDefinitionExactly) {
  const float inf = std::numeric_limits<float>::infinity();
  struct Case {
    float scale;
    int zero_point;
    ir::DType dtype;
  };
  const std::vector<Case> cases = {{0.1f, 128, ir::DType::kUInt8},     {0.0123f, 3, ir::DType::kUInt8},
                                   {3.7f, 0, ir::DType::kUInt8},       {0.25f, 17, ir::DType::kUInt8},
                                   {0.0071f, -5, ir::DType::kInt8},    {1.3f, 0, ir::DType::kInt8},
                                   {7.77e-6f, 200, ir::DType::kUInt8}, {0.0314f, 0, ir::DType::kInt8}};
  std::vector<float> x = {std::numeric_limits<float>::quiet_NaN(),
                          inf,
                          -inf,
                          0.0f,
                          -0.0f,
                          1e-40f,
                          -1e-40f,
                          3e38f,
                          -3e38f,
                          1e30f,
                          -1e30f,
                          1.17549435e-38f};
  for (const Case& c : cases)
    for (int k = -600; k <= 600; ++k) {
      float tie = (static_cast<float>(k) + 0.5f) * c.scale;
      x.insert(x.end(), {tie, std::nextafter(tie, inf), std::nextafter(tie, -inf), static_cast<float>(k) * c.scale});
    }
  const int64_t n = static_cast<int64_t>(x.size());
  TestGraph g(13);
  ir::Value* in = g.input("x", {n});
  // The same values again: a second input keeps common-subexpression
  // elimination from sharing one QuantizeLinear, so the requantize chain
  // fuses into one kernel rather than reading the quantized output back.
  ir::Value* again = g.input("x_again", {n});
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    std::string id = std::to_string(i);
    ir::Value* scale = g.constant("scale" + id, {}, {c.scale});
    ir::Value* zp = g.model().graph.addValue("zp" + id);
    const std::vector<uint8_t> u8 = {static_cast<uint8_t>(c.zero_point)};
    const std::vector<int8_t> s8 = {static_cast<int8_t>(c.zero_point)};
    zp->constant = c.dtype == ir::DType::kUInt8 ? ir::Tensor::fromValues<uint8_t>(c.dtype, {}, u8)
                                                : ir::Tensor::fromValues<int8_t>(c.dtype, {}, s8);
    zp->type = zp->constant->type();
    g.output(g.op("QuantizeLinear", {in, scale, zp}, "q" + id));
    ir::Value* q = g.op("QuantizeLinear", {again, scale, zp}, "q_inner" + id);
    g.output(g.op("DequantizeLinear", {q, scale, zp}, "dq" + id));
  }
  ir::Tensor input = ir::Tensor::fromValues<float>(ir::DType::kFloat32, {n}, x);
  auto outputs = compileAndRun(g.model(), {input, input});
  ASSERT_TRUE(outputs.isOk()) << outputs.status().message();
  ASSERT_EQ(outputs->size(), 2 * cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    const bool is_unsigned = c.dtype == ir::DType::kUInt8;
    const float lo = is_unsigned ? 0.0f : -128.0f, hi = is_unsigned ? 255.0f : 127.0f;
    const ir::Tensor& q = (*outputs)[2 * i];
    const ir::Tensor& dq = (*outputs)[2 * i + 1];
    for (int64_t e = 0; e < n; ++e) {
      const float v = x[static_cast<size_t>(e)];
      const float quotient = v / c.scale;
      float want_q = std::nearbyint(quotient) + static_cast<float>(c.zero_point);
      want_q = std::isnan(want_q) ? 0.0f : std::clamp(want_q, lo, hi);
      const float got_q = is_unsigned ? static_cast<float>(reinterpret_cast<const uint8_t*>(q.bytes().data())[e])
                                      : static_cast<float>(reinterpret_cast<const int8_t*>(q.bytes().data())[e]);
      ASSERT_EQ(got_q, want_q) << "QuantizeLinear(" << v << ", scale " << c.scale << ", zero point " << c.zero_point
                               << "), element " << e;
      const float want_dq = (want_q - static_cast<float>(c.zero_point)) * c.scale;
      const float got_dq = reinterpret_cast<const float*>(dq.bytes().data())[e];
      ASSERT_EQ(got_dq, want_dq) << "DequantizeLinear(QuantizeLinear(" << v << ")), scale " << c.scale
                                 << ", zero point " << c.zero_point << ", element " << e;
    }
  }
}

}  // namespace
}  // namespace kiln::testing
