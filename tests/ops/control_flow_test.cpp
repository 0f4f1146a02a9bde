// If, Loop and Scan: models built here, compiled to an artifact and to a
// program for the reference evaluator, run on several inputs (both branches,
// zero and many iterations, early exits) and compared with values computed
// by plain loops in the test.
#include <gtest/gtest.h>

#include <cmath>

#include "tests/ops/data_dependent_model.h"

namespace kiln::testing {
namespace {

using onnx::TensorProto;

onnx::GraphProto* addGraphAttr(onnx::NodeProto* node, const std::string& name) {
  auto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::GRAPH);
  a->mutable_g()->set_name(name);
  return a->mutable_g();
}

void addIntsAttr(onnx::NodeProto* node, const std::string& name, std::initializer_list<int64_t> values) {
  auto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t v : values) a->add_ints(v);
}

void addIntAttr(onnx::NodeProto* node, const std::string& name, int64_t value) {
  auto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(value);
}

// A Constant node producing a float32 or int64 tensor.
void addConstant(onnx::GraphProto* g, const std::string& name, int elem_type, std::initializer_list<int64_t> dims,
                 std::initializer_list<double> values) {
  auto* node = addNode(g, "Constant", name + "_const", {}, {name});
  auto* a = node->add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  auto* t = a->mutable_t();
  t->set_data_type(elem_type);
  for (int64_t d : dims) t->add_dims(d);
  for (double v : values) {
    if (elem_type == TensorProto::FLOAT) t->add_float_data(static_cast<float>(v));
    else t->add_int64_data(static_cast<int64_t>(v));
  }
}

void addOutput(onnx::GraphProto* g, const std::string& name) { g->add_output()->set_name(name); }

// A model over a hand-built graph, compiled both ways (see DataDependentModel).
class ControlFlowModel {
 public:
  explicit ControlFlowModel(int opset = 16) {
    proto_.set_ir_version(8);
    auto* import = proto_.add_opset_import();
    import->set_domain("");
    import->set_version(opset);
    proto_.mutable_graph()->set_name("main");
  }
  onnx::GraphProto* graph() { return proto_.mutable_graph(); }

  Status compile() {
    auto imported = importProto(proto_);
    if (!imported) return imported.status();
    std::ostringstream log;
    auto program = driver::buildProgram(**imported, {}, log);
    if (!program) return program.status();
    program_ = std::make_unique<lower::Program>(std::move(*program));
    std::string onnx_path = dir_.file("model.onnx"), so_path = dir_.file("model.so");
    writeFile(onnx_path, proto_.SerializeAsString());
    auto summary = driver::compileFile(onnx_path, so_path, {}, log);
    if (!summary) return summary.status();
    model_ = std::make_unique<kiln::Model>(so_path.c_str());
    session_ = std::make_unique<kiln::Session>(*model_);
    return Status::ok();
  }

  // The artifact's outputs, after checking that the reference evaluator
  // gives the same shapes and bytes.
  std::vector<ir::Tensor> run(const std::vector<ir::Tensor>& inputs) {
    auto reference = lower::evaluateProgram(*program_, inputs);
    auto artifact = tools::runArtifact(*model_, *session_, inputs);
    EXPECT_TRUE(reference.isOk()) << reference.status().message();
    EXPECT_TRUE(artifact.isOk()) << artifact.status().message();
    if (!reference || !artifact) return {};
    for (size_t i = 0; i < reference->size(); ++i) {
      auto mismatch = tools::compareTensors((*artifact)[i], (*reference)[i], {0, 0});
      EXPECT_FALSE(mismatch) << "output " << i << ": artifact and reference evaluator differ: " << *mismatch;
    }
    return *artifact;
  }

  // The error both the reference evaluator and the artifact stop with.
  std::string runError(const std::vector<ir::Tensor>& inputs) {
    auto reference = lower::evaluateProgram(*program_, inputs);
    auto artifact = tools::runArtifact(*model_, *session_, inputs);
    EXPECT_FALSE(reference.isOk());
    EXPECT_FALSE(artifact.isOk());
    if (reference.isOk() || artifact.isOk()) return "";
    EXPECT_EQ(reference.status().message(), artifact.status().message());
    return artifact.status().message();
  }

  const lower::Program& program() const { return *program_; }

 private:
  onnx::ModelProto proto_;
  TempDir dir_;
  std::unique_ptr<lower::Program> program_;
  std::unique_ptr<kiln::Model> model_;
  std::unique_ptr<kiln::Session> session_;
};

ir::Tensor boolScalar(bool v) { return tensor<uint8_t>(ir::DType::kBool, {}, {static_cast<uint8_t>(v)}); }
ir::Tensor int64Scalar(int64_t v) { return tensor<int64_t>(ir::DType::kInt64, {}, {v}); }

// If on a run-time condition; the branches read the outer input x.
//   then: y = x * 2        else: y = x - 1
TEST(ControlFlow, IfTakesEachBranchAtRunTime) {
  ControlFlowModel m;
  auto* g = m.graph();
  setType(g->add_input(), "cond", TensorProto::BOOL, {});
  setType(g->add_input(), "x", TensorProto::FLOAT, {3});
  auto* node = addNode(g, "If", "choose", {"cond"}, {"y"});
  addOutput(g, "y");
  auto* then_g = addGraphAttr(node, "then_branch");
  addConstant(then_g, "two", TensorProto::FLOAT, {}, {2});
  addNode(then_g, "Mul", "double", {"x", "two"}, {"then_y"});
  addOutput(then_g, "then_y");
  auto* else_g = addGraphAttr(node, "else_branch");
  addConstant(else_g, "one", TensorProto::FLOAT, {}, {1});
  addNode(else_g, "Sub", "decrement", {"x", "one"}, {"else_y"});
  addOutput(else_g, "else_y");
  ASSERT_TRUE(m.compile().isOk()) << m.compile().message();
  EXPECT_FALSE(m.program().regions.empty());
  std::vector<float> x = {1.5f, -2, 4};
  for (bool cond : {true, false, true}) {
    auto out = m.run({boolScalar(cond), tensor<float>(ir::DType::kFloat32, {3}, x)});
    ASSERT_EQ(out.size(), 1u);
    std::vector<float> got = elements<float>(out[0]);
    ASSERT_EQ(got.size(), 3u);
    for (size_t i = 0; i < 3; ++i) EXPECT_EQ(got[i], cond ? x[i] * 2 : x[i] - 1) << "cond " << cond << " element " << i;
  }
}

// The branches give results of different lengths: the output's size is the
// taken branch's.
TEST(ControlFlow, IfBranchesOfDifferentShapes) {
  ControlFlowModel m;
  auto* g = m.graph();
  setType(g->add_input(), "cond", TensorProto::BOOL, {});
  setType(g->add_input(), "x", TensorProto::FLOAT, {3});
  auto* node = addNode(g, "If", "choose", {"cond"}, {"y"});
  addOutput(g, "y");
  auto* then_g = addGraphAttr(node, "then_branch");
  addNode(then_g, "Neg", "neg", {"x"}, {"then_y"});
  addOutput(then_g, "then_y");
  auto* else_g = addGraphAttr(node, "else_branch");
  addConstant(else_g, "pair", TensorProto::FLOAT, {2}, {7, 8});
  addOutput(else_g, "pair");
  ASSERT_TRUE(m.compile().isOk()) << m.compile().message();
  auto then_out = m.run({boolScalar(true), tensor<float>(ir::DType::kFloat32, {3}, {1, 2, 3})});
  ASSERT_EQ(then_out.size(), 1u);
  EXPECT_EQ(then_out[0].dims(), (std::vector<int64_t>{3}));
  EXPECT_EQ(elements<float>(then_out[0]), (std::vector<float>{-1, -2, -3}));
  auto else_out = m.run({boolScalar(false), tensor<float>(ir::DType::kFloat32, {3}, {1, 2, 3})});
  ASSERT_EQ(else_out.size(), 1u);
  EXPECT_EQ(else_out[0].dims(), (std::vector<int64_t>{2}));
  EXPECT_EQ(elements<float>(else_out[0]), (std::vector<float>{7, 8}));
}

// Loop with a run-time trip count M, an initial condition, and an early
// exit when the iteration number reaches the outer input `stop`:
//   y_out = y_in + x * float(i); cond_out = (i + 1) < stop; scan: y_out
TEST(ControlFlow, LoopRunTimeTripCountEarlyExitAndScanOutputs) {
  ControlFlowModel m;
  auto* g = m.graph();
  setType(g->add_input(), "M", TensorProto::INT64, {});
  setType(g->add_input(), "cond", TensorProto::BOOL, {});
  setType(g->add_input(), "y0", TensorProto::FLOAT, {2});
  setType(g->add_input(), "x", TensorProto::FLOAT, {2});
  setType(g->add_input(), "stop", TensorProto::INT64, {});
  auto* node = addNode(g, "Loop", "accumulate", {"M", "cond", "y0"}, {"y_final", "y_all"});
  addOutput(g, "y_final");
  addOutput(g, "y_all");
  auto* body = addGraphAttr(node, "body");
  setType(body->add_input(), "i", TensorProto::INT64, {});
  setType(body->add_input(), "c", TensorProto::BOOL, {});
  body->add_input()->set_name("y_in");  // untyped: the Loop's input gives the type
  auto* cast = addNode(body, "Cast", "to_float", {"i"}, {"i_f"});
  addIntAttr(cast, "to", TensorProto::FLOAT);
  addNode(body, "Mul", "scale", {"x", "i_f"}, {"step"});
  addNode(body, "Add", "accumulate", {"y_in", "step"}, {"y_out"});
  addConstant(body, "one", TensorProto::INT64, {}, {1});
  addNode(body, "Add", "next", {"i", "one"}, {"i_next"});
  addNode(body, "Less", "go_on", {"i_next", "stop"}, {"c_out"});
  addNode(body, "Identity", "scan", {"y_out"}, {"y_scan"});
  addOutput(body, "c_out");
  addOutput(body, "y_out");
  addOutput(body, "y_scan");
  ASSERT_TRUE(m.compile().isOk()) << m.compile().message();

  std::vector<float> y0 = {0.5f, -1}, x = {1, 3};
  struct Case { int64_t trips; bool cond; int64_t stop; };
  for (Case c : {Case{5, true, 100}, Case{5, true, 3}, Case{0, true, 100}, Case{4, false, 100}, Case{1, true, 0},
                 Case{-2, true, 100}}) {
    auto out = m.run({int64Scalar(c.trips), boolScalar(c.cond), tensor<float>(ir::DType::kFloat32, {2}, y0),
                      tensor<float>(ir::DType::kFloat32, {2}, x), int64Scalar(c.stop)});
    ASSERT_EQ(out.size(), 2u);
    std::vector<float> y = y0, rows;
    bool go = c.cond;
    for (int64_t i = 0; go && i < c.trips; ++i) {
      for (size_t k = 0; k < 2; ++k) y[k] += x[k] * static_cast<float>(i);
      rows.insert(rows.end(), y.begin(), y.end());
      go = i + 1 < c.stop;
    }
    std::string what = "M=" + std::to_string(c.trips) + " cond=" + std::to_string(c.cond) + " stop=" + std::to_string(c.stop);
    EXPECT_EQ(elements<float>(out[0]), y) << what;
    EXPECT_EQ(out[1].dims(), (std::vector<int64_t>{static_cast<int64_t>(rows.size() / 2), 2})) << what;
    EXPECT_EQ(elements<float>(out[1]), rows) << what;
  }
}

// Two loop-carried values that swap every iteration, and an If nested in
// the body on the iteration's parity: a = a + 1 on even iterations, a * 2
// on odd ones; then (a, b) = (b, a).
TEST(ControlFlow, LoopSwapsStateAndNestsIf) {
  ControlFlowModel m;
  auto* g = m.graph();
  setType(g->add_input(), "M", TensorProto::INT64, {});
  setType(g->add_input(), "a0", TensorProto::FLOAT, {1});
  setType(g->add_input(), "b0", TensorProto::FLOAT, {1});
  auto* node = addNode(g, "Loop", "swap", {"M", "", "a0", "b0"}, {"a", "b"});
  addOutput(g, "a");
  addOutput(g, "b");
  auto* body = addGraphAttr(node, "body");
  setType(body->add_input(), "i", TensorProto::INT64, {});
  setType(body->add_input(), "c", TensorProto::BOOL, {});
  setType(body->add_input(), "a_in", TensorProto::FLOAT, {1});
  setType(body->add_input(), "b_in", TensorProto::FLOAT, {1});
  addConstant(body, "two", TensorProto::INT64, {}, {2});
  addConstant(body, "zero", TensorProto::INT64, {}, {0});
  addNode(body, "Mod", "parity", {"i", "two"}, {"odd"});
  addNode(body, "Equal", "is_even", {"odd", "zero"}, {"even"});
  auto* branch = addNode(body, "If", "step", {"even"}, {"a_new"});
  auto* then_g = addGraphAttr(branch, "then_branch");
  addConstant(then_g, "one_f", TensorProto::FLOAT, {}, {1});
  addNode(then_g, "Add", "inc", {"a_in", "one_f"}, {"inc_out"});
  addOutput(then_g, "inc_out");
  auto* else_g = addGraphAttr(branch, "else_branch");
  addConstant(else_g, "two_f", TensorProto::FLOAT, {}, {2});
  addNode(else_g, "Mul", "dbl", {"a_in", "two_f"}, {"dbl_out"});
  addOutput(else_g, "dbl_out");
  addOutput(body, "c");
  addOutput(body, "b_in");
  addOutput(body, "a_new");
  ASSERT_TRUE(m.compile().isOk()) << m.compile().message();
  for (int64_t trips : {0, 1, 2, 7}) {
    auto out = m.run({int64Scalar(trips), tensor<float>(ir::DType::kFloat32, {1}, {3}),
                      tensor<float>(ir::DType::kFloat32, {1}, {10})});
    ASSERT_EQ(out.size(), 2u);
    float a = 3, b = 10;
    for (int64_t i = 0; i < trips; ++i) {
      float a_new = i % 2 == 0 ? a + 1 : a * 2;
      a = b;
      b = a_new;
    }
    EXPECT_EQ(elements<float>(out[0]), std::vector<float>{a}) << "M=" << trips;
    EXPECT_EQ(elements<float>(out[1]), std::vector<float>{b}) << "M=" << trips;
  }
}

// Scan (opset 11) over two inputs along different axes, one reversed, with
// a scan output written along axis 1 in reverse:
//   s = s + p_t * q_t (p: [L,2] axis 0 forward; q: [2,L] axis 1 backward)
TEST(ControlFlow, ScanSeveralInputsAxesAndDirections) {
  constexpr int64_t L = 4;
  ControlFlowModel m(11);
  auto* g = m.graph();
  setType(g->add_input(), "s0", TensorProto::FLOAT, {2});
  setType(g->add_input(), "p", TensorProto::FLOAT, {L, 2});
  setType(g->add_input(), "q", TensorProto::FLOAT, {2, L});
  auto* node = addNode(g, "Scan", "scan", {"s0", "p", "q"}, {"s", "history"});
  addIntAttr(node, "num_scan_inputs", 2);
  addIntsAttr(node, "scan_input_axes", {0, 1});
  addIntsAttr(node, "scan_input_directions", {0, 1});
  addIntsAttr(node, "scan_output_axes", {1});
  addIntsAttr(node, "scan_output_directions", {1});
  addOutput(g, "s");
  addOutput(g, "history");
  auto* body = addGraphAttr(node, "body");
  setType(body->add_input(), "s_in", TensorProto::FLOAT, {2});
  setType(body->add_input(), "p_t", TensorProto::FLOAT, {2});
  setType(body->add_input(), "q_t", TensorProto::FLOAT, {2});
  addNode(body, "Mul", "prod", {"p_t", "q_t"}, {"pq"});
  addNode(body, "Add", "sum", {"s_in", "pq"}, {"s_out"});
  addNode(body, "Identity", "keep", {"s_out"}, {"s_scan"});
  addOutput(body, "s_out");
  addOutput(body, "s_scan");
  ASSERT_TRUE(m.compile().isOk()) << m.compile().message();
  std::vector<float> s0 = {1, -1}, p(L * 2), q(2 * L);
  for (size_t i = 0; i < p.size(); ++i) p[i] = 0.5f * static_cast<float>(i) - 1;
  for (size_t i = 0; i < q.size(); ++i) q[i] = static_cast<float>((i * 7) % 5) - 2;
  auto out = m.run({tensor<float>(ir::DType::kFloat32, {2}, s0), tensor<float>(ir::DType::kFloat32, {L, 2}, p),
                    tensor<float>(ir::DType::kFloat32, {2, L}, q)});
  ASSERT_EQ(out.size(), 2u);
  std::vector<float> s = s0, history(2 * L);
  for (int64_t t = 0; t < L; ++t) {
    for (int64_t k = 0; k < 2; ++k) {
      s[k] += p[t * 2 + k] * q[k * L + (L - 1 - t)];
      history[k * L + (L - 1 - t)] = s[k];
    }
  }
  EXPECT_EQ(elements<float>(out[0]), s);
  EXPECT_EQ(out[1].dims(), (std::vector<int64_t>{2, L}));
  EXPECT_EQ(elements<float>(out[1]), history);
}

// Scan opset 8: a leading batch axis, each batch row scanned on its own,
// the input read in reverse.
TEST(ControlFlow, Scan8Batches) {
  ControlFlowModel m(8);
  auto* g = m.graph();
  setType(g->add_input(), "s0", TensorProto::FLOAT, {2, 1});
  setType(g->add_input(), "x", TensorProto::FLOAT, {2, 3, 1});
  auto* node = addNode(g, "Scan", "scan", {"", "s0", "x"}, {"s", "running"});
  addIntAttr(node, "num_scan_inputs", 1);
  addIntsAttr(node, "directions", {1});
  addOutput(g, "s");
  addOutput(g, "running");
  auto* body = addGraphAttr(node, "body");
  setType(body->add_input(), "s_in", TensorProto::FLOAT, {1});
  setType(body->add_input(), "x_t", TensorProto::FLOAT, {1});
  addNode(body, "Max", "peak", {"s_in", "x_t"}, {"s_out"});
  addNode(body, "Identity", "keep", {"s_out"}, {"s_scan"});
  addOutput(body, "s_out");
  addOutput(body, "s_scan");
  ASSERT_TRUE(m.compile().isOk()) << m.compile().message();
  std::vector<float> s0 = {0, 100}, x = {3, -1, 2, 5, 150, 7};
  auto out = m.run({tensor<float>(ir::DType::kFloat32, {2, 1}, s0), tensor<float>(ir::DType::kFloat32, {2, 3, 1}, x)});
  ASSERT_EQ(out.size(), 2u);
  std::vector<float> s = s0, running(6);
  for (int b = 0; b < 2; ++b)
    for (int t = 2; t >= 0; --t) {
      s[b] = std::max(s[b], x[b * 3 + t]);
      running[b * 3 + (2 - t)] = s[b];  // opset 8 stacks scan outputs in iteration order
    }
  EXPECT_EQ(elements<float>(out[0]), s);
  EXPECT_EQ(elements<float>(out[1]), running);
}

TEST(ControlFlow, IfBranchesWithDifferentOutputCountsAreRefused) {
  ControlFlowModel m;
  auto* g = m.graph();
  setType(g->add_input(), "cond", TensorProto::BOOL, {});
  setType(g->add_input(), "x", TensorProto::FLOAT, {3});
  auto* node = addNode(g, "If", "bad_if", {"cond"}, {"y"});
  addOutput(g, "y");
  auto* then_g = addGraphAttr(node, "then_branch");
  addNode(then_g, "Neg", "neg", {"x"}, {"a"});
  addNode(then_g, "Abs", "abs", {"x"}, {"b"});
  addOutput(then_g, "a");
  addOutput(then_g, "b");
  auto* else_g = addGraphAttr(node, "else_branch");
  addNode(else_g, "Neg", "neg2", {"x"}, {"c"});
  addOutput(else_g, "c");
  expectError(m.compile(), {"If 'bad_if'", "then_branch", "2 outputs", "the node has 1"});
}

TEST(ControlFlow, IfBranchesOfDifferentTypesAreRefused) {
  ControlFlowModel m;
  auto* g = m.graph();
  setType(g->add_input(), "cond", TensorProto::BOOL, {});
  auto* node = addNode(g, "If", "mixed", {"cond"}, {"y"});
  addOutput(g, "y");
  auto* then_g = addGraphAttr(node, "then_branch");
  addConstant(then_g, "f", TensorProto::FLOAT, {1}, {1});
  addOutput(then_g, "f");
  auto* else_g = addGraphAttr(node, "else_branch");
  addConstant(else_g, "i", TensorProto::INT64, {1}, {1});
  addOutput(else_g, "i");
  expectError(m.compile(), {"If 'mixed'", "output 0", "float32", "then_branch", "int64", "else_branch"});
}

// A loop-carried value whose shape changes: v starts as [1] and becomes
// [n] (n a run-time input) in the first iteration, by broadcasting:
//   v = v + range(n) * i;   rows: v after each iteration ([M, n])
// and a scan output whose rows would not stack (range(i + 1)), refused at
// run time by the check that names the iteration.
TEST(ControlFlow, LoopCarriedValueChangesShape) {
  ControlFlowModel m;
  auto* g = m.graph();
  setType(g->add_input(), "M", TensorProto::INT64, {});
  setType(g->add_input(), "v0", TensorProto::FLOAT, {1});
  setType(g->add_input(), "n", TensorProto::INT64, {});
  auto* node = addNode(g, "Loop", "grow", {"M", "", "v0"}, {"v", "rows"});
  addOutput(g, "v");
  addOutput(g, "rows");
  auto* body = addGraphAttr(node, "body");
  setType(body->add_input(), "i", TensorProto::INT64, {});
  setType(body->add_input(), "c", TensorProto::BOOL, {});
  setType(body->add_input(), "v_in", TensorProto::FLOAT, {1});  // as declared by exporters: the entry shape
  addConstant(body, "zero", TensorProto::INT64, {}, {0});
  addConstant(body, "one", TensorProto::INT64, {}, {1});
  addNode(body, "Range", "positions", {"zero", "n", "one"}, {"r"});
  addIntAttr(addNode(body, "Cast", "r_float", {"r"}, {"r_f"}), "to", TensorProto::FLOAT);
  addIntAttr(addNode(body, "Cast", "i_float", {"i"}, {"i_f"}), "to", TensorProto::FLOAT);
  addNode(body, "Mul", "scale", {"r_f", "i_f"}, {"step"});
  addNode(body, "Add", "accumulate", {"v_in", "step"}, {"v_out"});
  addNode(body, "Identity", "row", {"v_out"}, {"v_row"});
  addOutput(body, "c");
  addOutput(body, "v_out");
  addOutput(body, "v_row");
  ASSERT_TRUE(m.compile().isOk()) << m.compile().message();
  for (int64_t trips : {0, 1, 3}) {
    for (int64_t n : {1, 4}) {
      auto out = m.run({int64Scalar(trips), tensor<float>(ir::DType::kFloat32, {1}, {0.5f}), int64Scalar(n)});
      ASSERT_EQ(out.size(), 2u);
      std::vector<float> v = {0.5f}, rows;
      for (int64_t i = 0; i < trips; ++i) {
        std::vector<float> next;
        for (int64_t k = 0; k < n; ++k) next.push_back(v[v.size() == 1 ? 0 : k] + static_cast<float>(k * i));
        v = next;
        rows.insert(rows.end(), v.begin(), v.end());
      }
      std::string what = "M=" + std::to_string(trips) + " n=" + std::to_string(n);
      EXPECT_EQ(out[0].dims(), (std::vector<int64_t>{static_cast<int64_t>(v.size())})) << what;
      EXPECT_EQ(elements<float>(out[0]), v) << what;
      EXPECT_EQ(out[1].dims()[0], trips) << what;
      EXPECT_EQ(elements<float>(out[1]), rows) << what;
    }
  }
}

TEST(ControlFlow, LoopScanRowsOfChangingShapeAreRefusedAtRunTime) {
  ControlFlowModel m;
  auto* g = m.graph();
  setType(g->add_input(), "M", TensorProto::INT64, {});
  auto* node = addNode(g, "Loop", "ragged", {"M", ""}, {"rows"});
  addOutput(g, "rows");
  auto* body = addGraphAttr(node, "body");
  setType(body->add_input(), "i", TensorProto::INT64, {});
  setType(body->add_input(), "c", TensorProto::BOOL, {});
  addConstant(body, "zero", TensorProto::INT64, {}, {0});
  addConstant(body, "one", TensorProto::INT64, {}, {1});
  addNode(body, "Add", "count", {"i", "one"}, {"n"});
  addNode(body, "Range", "positions", {"zero", "n", "one"}, {"r"});
  addOutput(body, "c");
  addOutput(body, "r");
  ASSERT_TRUE(m.compile().isOk()) << m.compile().message();
  auto one = m.run({int64Scalar(1)});
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].dims(), (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(elements<int64_t>(one[0]), std::vector<int64_t>{0});
  std::string error = m.runError({int64Scalar(3)});
  EXPECT_NE(error.find("Loop 'ragged': scan output 0 has dim 0 = 2 in iteration 1 but 1 in the first"),
            std::string::npos)
      << error;
}

TEST(ControlFlow, LoopCarriedTypeChangeIsRefused) {
  ControlFlowModel m;
  auto* g = m.graph();
  setType(g->add_input(), "M", TensorProto::INT64, {});
  setType(g->add_input(), "v", TensorProto::FLOAT, {1});
  auto* node = addNode(g, "Loop", "bad_loop", {"M", "", "v"}, {"out"});
  addOutput(g, "out");
  auto* body = addGraphAttr(node, "body");
  setType(body->add_input(), "i", TensorProto::INT64, {});
  setType(body->add_input(), "c", TensorProto::BOOL, {});
  setType(body->add_input(), "v_in", TensorProto::FLOAT, {1});
  addConstant(body, "axes", TensorProto::INT64, {1}, {0});
  addNode(body, "Unsqueeze", "widen", {"i", "axes"}, {"v_out"});
  addOutput(body, "c");
  addOutput(body, "v_out");
  expectError(m.compile(), {"Loop 'bad_loop'", "loop-carried value 0", "float32", "int64"});
}

TEST(ControlFlow, ScanOutputsWithoutTripCountAreRefused) {
  ControlFlowModel m;
  auto* g = m.graph();
  setType(g->add_input(), "cond", TensorProto::BOOL, {});
  auto* node = addNode(g, "Loop", "unbounded", {"", "cond"}, {"rows"});
  addOutput(g, "rows");
  auto* body = addGraphAttr(node, "body");
  setType(body->add_input(), "i", TensorProto::INT64, {});
  setType(body->add_input(), "c", TensorProto::BOOL, {});
  addConstant(body, "no", TensorProto::INT64, {}, {0});
  addNode(body, "Equal", "stop", {"i", "no"}, {"c_out"});
  addOutput(body, "c_out");
  addOutput(body, "i");
  expectError(m.compile(), {"Loop 'unbounded'", "trip count"});
}

}  // namespace
}  // namespace kiln::testing
