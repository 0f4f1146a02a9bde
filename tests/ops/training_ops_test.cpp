// The ai.onnx.preview.training optimizers (compiler/ops/training.cpp):
// Adagrad, Adam and Momentum on two tensors at once, run for several steps
// (each step's outputs fed back as the next step's state, T counting up from
// 0, so the first step's special cases and the later ones are both met)
// through the reference evaluator and, once per op, a compiled artifact;
// compared with the update formulas of the ONNX spec written out here in
// double precision. Also the errors: a wrong input count, a state whose
// shape differs from its X, an unknown Momentum mode.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <sstream>

#include "compiler/driver/compile.h"
#include "compiler/kir/evaluator.h"
#include "compiler/onnx/writer.h"
#include "kiln_runtime.hpp"
#include "tests/onnx/onnx_test_util.h"
#include "tools/common/run_artifact.h"

namespace kiln::ops {
namespace {

using ir::DType;

constexpr const char* kDomain = "ai.onnx.preview.training";

// One optimizer node; inputs R, T, then the groups given by groups().
class OptimizerModel {
 public:
  explicit OptimizerModel(const std::string& op) {
    model_.opset_imports[""] = 13;
    model_.opset_imports[kDomain] = 1;
    node_ = model_.graph.addNode(op, "opt");
    node_->domain = kDomain;
  }
  OptimizerModel& input(const std::string& name, DType dtype, std::vector<int64_t> dims) {
    ir::Value* v = model_.graph.addValue(name, {dtype, ir::makeShape(dims)});
    model_.graph.inputs.push_back(v);
    node_->inputs.push_back(v);
    return *this;
  }
  OptimizerModel& outputs(size_t count) {
    for (size_t i = 0; i < count; ++i) {
      ir::Value* out = model_.graph.addValue("out" + std::to_string(i));
      out->producer = node_;
      out->producer_output = static_cast<int>(i);
      node_->outputs.push_back(out);
      model_.graph.outputs.push_back(out);
    }
    return *this;
  }
  OptimizerModel& attr(const std::string& name, float value) {
    ir::Attribute a;
    a.kind = ir::Attribute::Kind::kFloat;
    a.f = value;
    node_->attributes[name] = a;
    return *this;
  }
  OptimizerModel& attr(const std::string& name, std::string value) {
    ir::Attribute a;
    a.kind = ir::Attribute::Kind::kString;
    a.s = std::move(value);
    node_->attributes[name] = a;
    return *this;
  }

  // Written as ONNX before the passes touch the model, for the artifact.
  Status writeOnnx(const std::string& path) const { return frontend::writeOnnxFile(model_, path); }

  Status build() {
    std::ostringstream log;
    Expected<lower::Program> program = driver::buildProgram(model_, {}, log);
    if (!program) return program.status();
    program_ = std::move(*program);
    return Status::ok();
  }
  Expected<std::vector<ir::Tensor>> evaluate(const std::vector<ir::Tensor>& inputs) const {
    return lower::evaluateProgram(program_, inputs);
  }

 private:
  ir::Model model_;
  ir::Node* node_;
  lower::Program program_;
};

ir::Tensor floats(std::vector<int64_t> dims, const std::vector<double>& values, DType dtype = DType::kFloat32) {
  if (dtype == DType::kFloat64) return ir::Tensor::fromValues<double>(dtype, dims, std::span<const double>(values));
  std::vector<float> f(values.begin(), values.end());
  return ir::Tensor::fromValues<float>(dtype, std::move(dims), std::span<const float>(f));
}

std::vector<double> doubles(const ir::Tensor& t) {
  std::vector<double> out;
  for (int64_t i = 0; i < t.elementCount(); ++i) out.push_back(t.floatAt(i));
  return out;
}

ir::Tensor scalarT(int64_t t) { return ir::Tensor::fromValues<int64_t>(DType::kInt64, {}, std::span<const int64_t>(&t, 1)); }

// The optimizer's state for one tensor: role -> elements (X, G, V, H).
using Group = std::map<std::string, std::vector<double>>;
// Updates one element in place, given R and T.
using Formula = std::function<void(double r, int64_t t, std::map<std::string, double>& e)>;

void expectClose(const std::vector<double>& got, const std::vector<double>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], 2e-6 * std::max(1.0, std::abs(want[i]))) << what << " element " << i;
}

// Runs `steps` steps of the model (inputs R, T, then each input role's
// tensors for every group; outputs each output role's tensors) and checks
// every output of every step against `formula`. The gradients change per
// step (scaled by the step number) so that the steps differ.
void checkSteps(OptimizerModel& m, const std::vector<std::string>& in_roles, const std::vector<std::string>& out_roles,
                std::vector<Group> groups, const std::vector<std::vector<int64_t>>& dims, const Formula& formula,
                int steps, DType dtype = DType::kFloat32, const kiln::Model* artifact = nullptr,
                kiln::Session* session = nullptr) {
  const double r = 0.1;
  for (int step = 0; step < steps; ++step) {
    for (Group& g : groups)
      for (double& v : g["G"]) v *= (step + 1) * 0.5;
    std::vector<ir::Tensor> inputs = {floats({}, {r}, dtype), scalarT(step)};
    for (const std::string& role : in_roles)
      for (size_t k = 0; k < groups.size(); ++k) inputs.push_back(floats(dims[k], groups[k][role], dtype));
    Expected<std::vector<ir::Tensor>> out = artifact ? tools::runArtifact(*artifact, *session, inputs) : m.evaluate(inputs);
    ASSERT_TRUE(out.isOk()) << out.status().message();
    ASSERT_EQ(out->size(), out_roles.size() * groups.size());
    for (size_t k = 0; k < groups.size(); ++k) {
      Group& g = groups[k];
      for (size_t i = 0; i < g["X"].size(); ++i) {
        std::map<std::string, double> e;
        for (const std::string& role : in_roles) e[role] = g[role][i];
        formula(r, step, e);
        for (const std::string& role : out_roles) g[role][i] = e[role];
      }
      for (size_t o = 0; o < out_roles.size(); ++o) {
        const ir::Tensor& got = (*out)[o * groups.size() + k];
        EXPECT_EQ(got.dims(), dims[k]);
        expectClose(doubles(got), g[out_roles[o]],
                    "step " + std::to_string(step) + " " + out_roles[o] + std::to_string(k + 1));
      }
    }
  }
}

const std::vector<std::vector<int64_t>> kDims = {{3}, {2, 2}};

std::vector<Group> twoGroups(const std::vector<std::string>& states) {
  std::vector<Group> groups = {{{"X", {1.0, -2.0, 0.5}}, {"G", {-1.0, 0.25, 3.0}}},
                               {{"X", {0.3, 1.7, -0.9, 4.0}}, {"G", {2.0, -0.5, 0.1, -3.0}}}};
  for (Group& g : groups)
    for (size_t s = 0; s < states.size(); ++s)
      for (double x : g["X"]) g[states[s]].push_back(0.2 + 0.3 * s + std::abs(x) * 0.1);
  return groups;
}

OptimizerModel& withInputs(OptimizerModel& m, const std::vector<std::string>& roles, DType dtype = DType::kFloat32) {
  m.input("R", dtype, {}).input("T", DType::kInt64, {});
  for (const std::string& role : roles)
    for (size_t k = 0; k < kDims.size(); ++k) m.input(role + std::to_string(k + 1), dtype, kDims[k]);
  return m;
}

Formula adagrad(double norm, double epsilon, double decay) {
  return [=](double r, int64_t t, std::map<std::string, double>& e) {
    double g = norm * e["X"] + e["G"];
    e["H"] = e["H"] + g * g;
    e["X"] = e["X"] - r / (1 + t * decay) * g / (std::sqrt(e["H"]) + epsilon);
  };
}

Formula adam(double alpha, double beta, double epsilon, double norm, double norm_post) {
  return [=](double r, int64_t t, std::map<std::string, double>& e) {
    double g = norm * e["X"] + e["G"];
    e["V"] = alpha * e["V"] + (1 - alpha) * g;
    e["H"] = beta * e["H"] + (1 - beta) * g * g;
    double rate = t > 0 ? r * std::sqrt(1 - std::pow(beta, t)) / (1 - std::pow(alpha, t)) : r;
    e["X"] = (1 - norm_post) * (e["X"] - rate * e["V"] / (std::sqrt(e["H"]) + epsilon));
  };
}

Formula momentum(double alpha, double beta, double norm, bool nesterov) {
  return [=](double r, int64_t t, std::map<std::string, double>& e) {
    double g = norm * e["X"] + e["G"];
    e["V"] = alpha * e["V"] + (t > 0 ? beta : 1.0) * g;
    e["X"] = nesterov ? e["X"] - r * (g + alpha * e["V"]) : e["X"] - r * e["V"];
  };
}

TEST(TrainingOpsTest, AdagradSteps) {
  OptimizerModel m("Adagrad");
  withInputs(m, {"X", "G", "H"}).outputs(4).attr("norm_coefficient", 0.01f).attr("epsilon", 1e-4f);
  m.attr("decay_factor", 0.5f);
  ASSERT_TRUE(m.build().isOk());
  checkSteps(m, {"X", "G", "H"}, {"X", "H"}, twoGroups({"H"}), kDims, adagrad(0.01f, 1e-4f, 0.5f), 4);
}

TEST(TrainingOpsTest, AdagradDefaultsInFloat64) {
  OptimizerModel m("Adagrad");
  withInputs(m, {"X", "G", "H"}, DType::kFloat64).outputs(4);
  ASSERT_TRUE(m.build().isOk());
  checkSteps(m, {"X", "G", "H"}, {"X", "H"}, twoGroups({"H"}), kDims, adagrad(0, 1e-6f, 0), 3, DType::kFloat64);
}

TEST(TrainingOpsTest, AdamStepsWithBiasCorrectionAndPostNorm) {
  OptimizerModel m("Adam");
  withInputs(m, {"X", "G", "V", "H"}).outputs(6).attr("alpha", 0.8f).attr("beta", 0.95f).attr("epsilon", 1e-3f);
  m.attr("norm_coefficient", 0.02f).attr("norm_coefficient_post", 0.05f);
  ASSERT_TRUE(m.build().isOk());
  checkSteps(m, {"X", "G", "V", "H"}, {"X", "V", "H"}, twoGroups({"V", "H"}), kDims,
             adam(0.8f, 0.95f, 1e-3f, 0.02f, 0.05f), 4);
}

TEST(TrainingOpsTest, AdamDefaults) {
  OptimizerModel m("Adam");
  withInputs(m, {"X", "G", "V", "H"}).outputs(6);
  ASSERT_TRUE(m.build().isOk());
  checkSteps(m, {"X", "G", "V", "H"}, {"X", "V", "H"}, twoGroups({"V", "H"}), kDims, adam(0.9f, 0.999f, 1e-6f, 0, 0),
             3);
}

TEST(TrainingOpsTest, MomentumStandardAndNesterov) {
  for (bool nesterov : {false, true}) {
    OptimizerModel m("Momentum");
    withInputs(m, {"X", "G", "V"}).outputs(4).attr("alpha", 0.9f).attr("beta", 0.3f).attr("norm_coefficient", 0.01f);
    m.attr("mode", std::string(nesterov ? "nesterov" : "standard"));
    ASSERT_TRUE(m.build().isOk());
    checkSteps(m, {"X", "G", "V"}, {"X", "V"}, twoGroups({"V"}), kDims, momentum(0.9f, 0.3f, 0.01f, nesterov), 4);
  }
}

// The same numbers through generated code: one artifact per optimizer.
TEST(TrainingOpsTest, CompiledArtifactsMatchTheFormulas) {
  struct Case {
    std::string op;
    std::vector<std::string> in_roles, out_roles;
    Formula formula;
  };
  std::vector<Case> cases = {
      {"Adagrad", {"X", "G", "H"}, {"X", "H"}, adagrad(0.01f, 1e-4f, 0.5f)},
      {"Adam", {"X", "G", "V", "H"}, {"X", "V", "H"}, adam(0.8f, 0.95f, 1e-3f, 0.01f, 0)},
      {"Momentum", {"X", "G", "V"}, {"X", "V"}, momentum(0.9f, 0.3f, 0.01f, true)},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.op);
    OptimizerModel m(c.op);
    withInputs(m, c.in_roles).outputs(c.in_roles.size() == 3 ? 4 : 6).attr("norm_coefficient", 0.01f);
    if (c.op == "Adagrad") m.attr("epsilon", 1e-4f).attr("decay_factor", 0.5f);
    if (c.op == "Adam") m.attr("alpha", 0.8f).attr("beta", 0.95f).attr("epsilon", 1e-3f);
    if (c.op == "Momentum") m.attr("alpha", 0.9f).attr("beta", 0.3f).attr("mode", std::string("nesterov"));
    testing::TempDir dir;
    ASSERT_TRUE(m.writeOnnx(dir.file("model.onnx")).isOk());
    std::ostringstream log;
    auto compiled = driver::compileFile(dir.file("model.onnx"), dir.file("model.so"), {}, log);
    ASSERT_TRUE(compiled.isOk()) << compiled.status().message();
    kiln::Model artifact(dir.file("model.so").c_str());
    kiln::Session session(artifact);
    std::vector<std::string> states(c.in_roles.begin() + 2, c.in_roles.end());
    checkSteps(m, c.in_roles, c.out_roles, twoGroups(states), kDims, c.formula, 3, DType::kFloat32, &artifact,
               &session);
  }
}

TEST(TrainingOpsTest, ErrorsNameTheNodeAndInput) {
  OptimizerModel wrong_count("Adagrad");
  wrong_count.input("R", DType::kFloat32, {}).input("T", DType::kInt64, {}).input("X", DType::kFloat32, {3});
  wrong_count.input("G", DType::kFloat32, {3}).outputs(2);
  Status status = wrong_count.build();
  ASSERT_FALSE(status.isOk());
  EXPECT_NE(status.message().find("Adagrad 'opt': expects R, T and 3 inputs per optimized tensor, got 4 inputs"),
            std::string::npos)
      << status.message();

  OptimizerModel wrong_shape("Momentum");
  wrong_shape.input("R", DType::kFloat32, {}).input("T", DType::kInt64, {}).input("X", DType::kFloat32, {3});
  wrong_shape.input("G", DType::kFloat32, {3}).input("V", DType::kFloat32, {4}).outputs(2);
  wrong_shape.attr("alpha", 0.9f).attr("beta", 1.0f).attr("norm_coefficient", 0.0f).attr("mode", std::string("standard"));
  status = wrong_shape.build();
  ASSERT_FALSE(status.isOk());
  EXPECT_NE(status.message().find("V1 has shape 4, expected 3 like X1 (input 4)"), std::string::npos)
      << status.message();

  OptimizerModel bad_mode("Momentum");
  withInputs(bad_mode, {"X", "G", "V"}).outputs(4).attr("alpha", 0.9f).attr("beta", 1.0f);
  bad_mode.attr("norm_coefficient", 0.0f).attr("mode", std::string("heavy-ball"));
  status = bad_mode.build();
  ASSERT_FALSE(status.isOk());
  EXPECT_NE(status.message().find("mode is 'heavy-ball', expected 'standard' or 'nesterov'"), std::string::npos)
      << status.message();
}

}  // namespace
}  // namespace kiln::ops
