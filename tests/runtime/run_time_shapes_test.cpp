// Run-time shapes end to end: a model with a symbolic batch dim compiled
// once and run at several batch sizes through the C API (and the reference
// evaluator), outputs whose shape a run computes from input data, and the
// clean errors bad run-time values give.
#include <cmath>
#include <cstring>
#include <sstream>

#include <gtest/gtest.h>

#include "compiler/driver/compile.h"
#include "compiler/kir/evaluator.h"
#include "kiln_runtime.hpp"
#include "tests/onnx/onnx_test_util.h"
#include "tools/common/run_artifact.h"

namespace kiln {
namespace {

using testing::addNode;
using testing::TempDir;

void setSymbolicType(onnx::ValueInfoProto* info, const std::string& name, int elem_type,
                     std::vector<std::string> dims) {
  info->set_name(name);
  auto* tensor = info->mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(elem_type);
  auto* shape = tensor->mutable_shape();
  for (const std::string& d : dims) {
    auto* dim = shape->add_dim();
    if (!d.empty() && std::isdigit(static_cast<unsigned char>(d[0]))) dim->set_dim_value(std::stoll(d));
    else dim->set_dim_param(d);
  }
}

void addFloatInitializer(onnx::GraphProto* graph, const std::string& name, std::vector<int64_t> dims,
                         const std::vector<float>& values) {
  auto* t = graph->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) t->add_dims(d);
  for (float v : values) t->add_float_data(v);
}

void addIntInitializer(onnx::GraphProto* graph, const std::string& name, const std::vector<int64_t>& values) {
  auto* t = graph->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::INT64);
  t->add_dims(static_cast<int64_t>(values.size()));
  for (int64_t v : values) t->add_int64_data(v);
}

onnx::ModelProto emptyModel() {
  onnx::ModelProto model;
  model.set_ir_version(8);
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(14);
  model.mutable_graph()->set_name("main");
  return model;
}

// x: float32[N, 4], s: float32[N]. y = Relu(x @ W + b) * s[:, None], then
// flattened through the Shape -> Gather -> Concat -> Reshape chain exporters
// write for a dynamic batch: y: float32[N, 3].
constexpr float kW[12] = {0.5f, -1.0f, 0.25f, 1.0f, 0.5f, -0.5f, -0.25f, 2.0f, 1.0f, 0.75f, 0.0f, -1.5f};
constexpr float kB[3] = {0.1f, -0.2f, 0.3f};

onnx::ModelProto batchModel() {
  onnx::ModelProto model = emptyModel();
  auto* g = model.mutable_graph();
  setSymbolicType(g->add_input(), "x", onnx::TensorProto::FLOAT, {"N", "4"});
  setSymbolicType(g->add_input(), "s", onnx::TensorProto::FLOAT, {"N"});
  setSymbolicType(g->add_output(), "y", onnx::TensorProto::FLOAT, {"N", "3"});
  addFloatInitializer(g, "W", {4, 3}, std::vector<float>(kW, kW + 12));
  addFloatInitializer(g, "b", {3}, std::vector<float>(kB, kB + 3));
  addIntInitializer(g, "zero", {0});
  addIntInitializer(g, "one", {1});
  addIntInitializer(g, "minus_one", {-1});
  addNode(g, "MatMul", "mm", {"x", "W"}, {"xw"});
  addNode(g, "Add", "bias", {"xw", "b"}, {"xwb"});
  addNode(g, "Relu", "relu", {"xwb"}, {"r"});
  addNode(g, "Unsqueeze", "col", {"s", "one"}, {"s2"});
  addNode(g, "Mul", "scale", {"r", "s2"}, {"m"});
  addNode(g, "Shape", "shape", {"m"}, {"m_shape"});
  addNode(g, "Gather", "batch", {"m_shape", "zero"}, {"n"});
  addNode(g, "Concat", "target", {"n", "minus_one"}, {"t"})->add_attribute()->set_name("axis");
  g->mutable_node(g->node_size() - 1)->mutable_attribute(0)->set_type(onnx::AttributeProto::INT);
  g->mutable_node(g->node_size() - 1)->mutable_attribute(0)->set_i(0);
  addNode(g, "Reshape", "flatten", {"m", "t"}, {"y"});
  return model;
}

std::vector<float> expectedBatch(const std::vector<float>& x, const std::vector<float>& s) {
  size_t n = s.size();
  std::vector<float> y(n * 3);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < 3; ++j) {
      float acc = 0;
      for (size_t k = 0; k < 4; ++k) acc += x[i * 4 + k] * kW[k * 3 + j];
      y[i * 3 + j] = std::max(acc + kB[j], 0.0f) * s[i];
    }
  return y;
}

std::string compileModel(const TempDir& dir, const onnx::ModelProto& model, const std::string& name,
                         driver::CompileOptions options = {}) {
  std::string onnx_path = dir.file(name + ".onnx"), so_path = dir.file(name + ".so");
  testing::writeFile(onnx_path, model.SerializeAsString());
  std::ostringstream log;
  auto summary = driver::compileFile(onnx_path, so_path, options, log);
  EXPECT_TRUE(summary.isOk()) << summary.status().message();
  return so_path;
}

kiln_tensor view(kiln_dtype dtype, std::vector<int64_t> dims, const void* data, size_t bytes) {
  kiln_tensor t{};
  t.dtype = dtype;
  t.rank = static_cast<int32_t>(dims.size());
  std::copy(dims.begin(), dims.end(), t.dims);
  t.data = const_cast<void*>(data);
  t.bytes = bytes;
  return t;
}

TEST(RunTimeShapes, BatchDimCompilesOnceAndRunsAtSeveralSizes) {
  TempDir dir;
  std::string so = compileModel(dir, batchModel(), "batch");
  kiln::Model model(so.c_str());
  kiln_tensor_info x_info = model.input(0), y_info = model.output(0);
  ASSERT_EQ(x_info.dims[0], -1);
  EXPECT_STREQ(x_info.dim_names[0], "N");
  ASSERT_EQ(y_info.dims[0], -1);
  EXPECT_STREQ(y_info.dim_names[0], "N");
  EXPECT_EQ(y_info.dims[1], 3);
  kiln::Session session(model);
  for (int64_t n : {1, 2, 7, 64, 0}) {
    std::vector<float> x(static_cast<size_t>(n) * 4), s(static_cast<size_t>(n));
    for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(static_cast<float>(i) * 0.7f) * 2.0f;
    for (size_t i = 0; i < s.size(); ++i) s[i] = 0.5f + static_cast<float>(i % 3);
    std::vector<kiln_tensor> in = {view(KILN_FLOAT32, {n, 4}, x.data(), x.size() * 4),
                                   view(KILN_FLOAT32, {n}, s.data(), s.size() * 4)};
    std::vector<kiln_tensor> out(1);  // runtime-allocated
    session.run(in, out);
    ASSERT_EQ(out[0].rank, 2);
    EXPECT_EQ(out[0].dims[0], n);
    EXPECT_EQ(out[0].dims[1], 3);
    ASSERT_EQ(out[0].bytes, static_cast<size_t>(n) * 3 * 4);
    std::vector<float> want = expectedBatch(x, s);
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_NEAR(static_cast<float*>(out[0].data)[i], want[i], 1e-5f) << "n=" << n << " element " << i;
    kiln_free(out[0].data);
    // Into a caller buffer: large enough is used, too small is an error.
    std::vector<float> y(want.size() + 5, -1.0f);
    std::vector<kiln_tensor> caller = {view(KILN_FLOAT32, {}, y.data(), y.size() * 4)};
    session.run(in, caller);
    EXPECT_EQ(caller[0].data, y.data());
    EXPECT_EQ(caller[0].dims[0], n);
    if (n > 0) {
      EXPECT_NEAR(y[0], want[0], 1e-5f);
      std::vector<kiln_tensor> small = {view(KILN_FLOAT32, {}, y.data(), 4)};
      try {
        session.run(in, small);
        ADD_FAILURE() << "a 4-byte output buffer was accepted for n=" << n;
      } catch (const kiln::Error& e) {
        EXPECT_NE(std::string(e.what()).find("output 0 'y': buffer of 4 bytes"), std::string::npos) << e.what();
      }
    }
  }
}

TEST(RunTimeShapes, SymbolsMustAgreeAcrossInputs) {
  TempDir dir;
  std::string so = compileModel(dir, batchModel(), "batch");
  kiln::Model model(so.c_str());
  kiln::Session session(model);
  std::vector<float> x(8), s(3);
  std::vector<kiln_tensor> in = {view(KILN_FLOAT32, {2, 4}, x.data(), 32), view(KILN_FLOAT32, {3}, s.data(), 12)};
  std::vector<kiln_tensor> out(1);
  try {
    session.run(in, out);
    FAIL() << "inputs disagreeing on N were accepted";
  } catch (const kiln::Error& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("input 1 's'"), std::string::npos) << message;
    EXPECT_NE(message.find("N is 2 in an earlier input"), std::string::npos) << message;
  }
  in[0] = view(KILN_FLOAT32, {2, 5}, x.data(), 40);  // the static dim still must match
  EXPECT_THROW(session.run(in, out), kiln::Error);
}

TEST(RunTimeShapes, ReferenceEvaluatorRunsTheSameProgram) {
  auto imported = testing::importProto(batchModel());
  ASSERT_TRUE(imported.isOk()) << imported.status().message();
  std::ostringstream log;
  auto program = driver::buildProgram(**imported, {}, log);
  ASSERT_TRUE(program.isOk()) << program.status().message();
  EXPECT_TRUE(program->isDynamic());
  std::vector<float> x = {1, -2, 3, 0.5f, 0, 1, 1, 1, 2, 2, -1, 0}, s = {1, 2, 0.5f};
  std::vector<ir::Tensor> inputs = {
      ir::Tensor::fromValues<float>(ir::DType::kFloat32, {3, 4}, std::span<const float>(x)),
      ir::Tensor::fromValues<float>(ir::DType::kFloat32, {3}, std::span<const float>(s))};
  auto outputs = lower::evaluateProgram(*program, inputs);
  ASSERT_TRUE(outputs.isOk()) << outputs.status().message();
  ASSERT_EQ((*outputs)[0].dims(), (std::vector<int64_t>{3, 3}));
  std::vector<float> want = expectedBatch(x, s);
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR((*outputs)[0].floatAt(static_cast<int64_t>(i)), want[i], 1e-5);
}

TEST(RunTimeShapes, PinnedShapeStaysStatic) {
  TempDir dir;
  driver::CompileOptions options;
  options.shapes["x"] = {2, 4};
  options.shapes["s"] = {2};
  std::string so = compileModel(dir, batchModel(), "pinned", options);
  kiln::Model model(so.c_str());
  EXPECT_EQ(model.input(0).dims[0], 2);
  EXPECT_EQ(model.output(0).dims[0], 2);
  EXPECT_STREQ(kiln_model_metadata(model.get(), "kernel_count"), std::to_string(model.numKernels()).c_str());
}

// data: float32[2, 3, 4], target: int64[3] given at run time.
onnx::ModelProto reshapeModel() {
  onnx::ModelProto model = emptyModel();
  auto* g = model.mutable_graph();
  setSymbolicType(g->add_input(), "data", onnx::TensorProto::FLOAT, {"2", "3", "4"});
  setSymbolicType(g->add_input(), "target", onnx::TensorProto::INT64, {"3"});
  setSymbolicType(g->add_output(), "y", onnx::TensorProto::FLOAT, {"a", "b", "c"});
  addNode(g, "Reshape", "r", {"data", "target"}, {"y"});
  return model;
}

struct ReshapeRun {
  std::vector<int64_t> dims;
  std::string error;
};

ReshapeRun runReshape(kiln::Session& session, std::vector<int64_t> target) {
  std::vector<float> data(24);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<float>(i);
  std::vector<kiln_tensor> in = {view(KILN_FLOAT32, {2, 3, 4}, data.data(), 96),
                                 view(KILN_INT64, {3}, target.data(), 24)};
  std::vector<kiln_tensor> out(1);
  try {
    session.run(in, out);
  } catch (const kiln::Error& e) {
    return {{}, e.what()};
  }
  ReshapeRun r{std::vector<int64_t>(out[0].dims, out[0].dims + out[0].rank), ""};
  for (size_t i = 0; i < 24; ++i)
    EXPECT_EQ(static_cast<float*>(out[0].data)[i], static_cast<float>(i));
  kiln_free(out[0].data);
  return r;
}

TEST(RunTimeShapes, ReshapeTargetReadAtRunTime) {
  TempDir dir;
  std::string so = compileModel(dir, reshapeModel(), "reshape");
  kiln::Model model(so.c_str());
  EXPECT_EQ(model.output(0).dims[0], -1);
  kiln::Session session(model);
  EXPECT_EQ(runReshape(session, {4, -1, 2}).dims, (std::vector<int64_t>{4, 3, 2}));
  EXPECT_EQ(runReshape(session, {0, 0, -1}).dims, (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(runReshape(session, {1, 24, 1}).dims, (std::vector<int64_t>{1, 24, 1}));
}

TEST(RunTimeShapes, BadRunTimeValuesAreCleanErrorsNamingTheNode) {
  TempDir dir;
  std::string so = compileModel(dir, reshapeModel(), "reshape");
  kiln::Model model(so.c_str());
  kiln::Session session(model);
  struct Case {
    std::vector<int64_t> target;
    std::string expect;
  };
  const int64_t huge = int64_t{1} << 40;
  for (const Case& c : std::vector<Case>{
           {{5, 5, 5}, "does not hold the 24 elements"},        // element count mismatch
           {{-1, -1, 6}, "more than one -1"},                    // two -1
           {{-3, 2, 4}, "entry below -1"},                       // a negative size
           {{huge, huge, huge}, "a negative or too large size"},  // product overflows int64
           {{-4, -6, 1}, "entry below -1"},                      // negative product equal to 24
       }) {
    ReshapeRun r = runReshape(session, c.target);
    EXPECT_TRUE(r.dims.empty());
    EXPECT_NE(r.error.find("Reshape 'r'"), std::string::npos) << r.error;
    EXPECT_NE(r.error.find(c.expect), std::string::npos) << r.error;
  }
  // The session still works after refused runs.
  EXPECT_EQ(runReshape(session, {3, 8, 1}).dims, (std::vector<int64_t>{3, 8, 1}));
}

TEST(RunTimeShapes, ReshapeChecksInTheReferenceEvaluator) {
  auto imported = testing::importProto(reshapeModel());
  ASSERT_TRUE(imported.isOk()) << imported.status().message();
  std::ostringstream log;
  auto program = driver::buildProgram(**imported, {}, log);
  ASSERT_TRUE(program.isOk()) << program.status().message();
  std::vector<float> data(24, 1.0f);
  std::vector<int64_t> bad = {5, 5, 5};
  std::vector<ir::Tensor> inputs = {
      ir::Tensor::fromValues<float>(ir::DType::kFloat32, {2, 3, 4}, std::span<const float>(data)),
      ir::Tensor::fromValues<int64_t>(ir::DType::kInt64, {3}, std::span<const int64_t>(bad))};
  auto outputs = lower::evaluateProgram(*program, inputs);
  ASSERT_FALSE(outputs.isOk());
  EXPECT_NE(outputs.status().message().find("Reshape 'r'"), std::string::npos) << outputs.status().message();
}

}  // namespace
}  // namespace kiln
