// Values whose shapes a run computes, through the elementwise ops and the ops
// whose size parameters arrive at run time (Resize/Upsample scales and
// sizes, the window sizes, STFT's frame_step, MelWeightMatrix's sizes,
// MaxUnpool's output_shape). Each model is compiled to an artifact and run
// through the runtime at several sizes; the oracle is computed here, or is
// the reference evaluator on the same node with those parameters given as
// constants. Bad run-time shapes stop the run with a message naming the node.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <sstream>

#include "compiler/driver/compile.h"
#include "compiler/kir/evaluator.h"
#include "kiln_runtime.hpp"
#include "tests/onnx/onnx_test_util.h"

namespace kiln {
namespace {

using testing::addNode;
using testing::TempDir;

// A named tensor: a graph input (given at run time) or an initializer.
struct Named {
  std::string name;
  ir::Tensor value;
};

template <typename T>
Named tensor(std::string name, ir::DType dtype, std::vector<int64_t> dims, std::vector<T> values) {
  return {std::move(name), ir::Tensor::fromValues<T>(dtype, std::move(dims), std::span<const T>(values))};
}
Named floats(std::string name, std::vector<int64_t> dims, std::vector<float> values) {
  return tensor<float>(std::move(name), ir::DType::kFloat32, std::move(dims), std::move(values));
}
Named ints(std::string name, std::vector<int64_t> dims, std::vector<int64_t> values) {
  return tensor<int64_t>(std::move(name), ir::DType::kInt64, std::move(dims), std::move(values));
}
Named scalar(std::string name, int64_t value) { return ints(std::move(name), {}, {value}); }

void setTensorType(onnx::ValueInfoProto* info, const std::string& name, ir::DType dtype,
                   const std::vector<int64_t>& dims) {
  info->set_name(name);
  auto* t = info->mutable_type()->mutable_tensor_type();
  t->set_elem_type(static_cast<int>(dtype));
  t->mutable_shape();  // a scalar has a shape with no dims
  for (int64_t d : dims) t->mutable_shape()->add_dim()->set_dim_value(d);
}

void addInitializer(onnx::GraphProto* g, const Named& n) {
  auto* t = g->add_initializer();
  t->set_name(n.name);
  t->set_data_type(static_cast<int>(n.value.dtype()));
  for (int64_t d : n.value.dims()) t->add_dims(d);
  std::span<const std::byte> bytes = n.value.bytes();
  t->set_raw_data(std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

// A model builder: inputs, initializers, nodes, outputs of a given rank
// whose dims are left to the run.
class ModelBuilder {
 public:
  explicit ModelBuilder(int opset) {
    proto_.set_ir_version(8);
    auto* o = proto_.add_opset_import();
    o->set_domain("");
    o->set_version(opset);
    proto_.mutable_graph()->set_name("main");
  }
  ModelBuilder& input(const Named& n) {
    setTensorType(proto_.mutable_graph()->add_input(), n.name, n.value.dtype(), n.value.dims());
    run_inputs_.push_back(n.value);
    return *this;
  }
  ModelBuilder& constant(const Named& n) {
    addInitializer(proto_.mutable_graph(), n);
    return *this;
  }
  onnx::NodeProto* node(const std::string& op, const std::string& name, std::initializer_list<std::string> in,
                        std::initializer_list<std::string> out) {
    return addNode(proto_.mutable_graph(), op, name, in, out);
  }
  ModelBuilder& output(const std::string& name, ir::DType dtype, size_t rank) {
    auto* info = proto_.mutable_graph()->add_output();
    info->set_name(name);
    auto* t = info->mutable_type()->mutable_tensor_type();
    t->set_elem_type(static_cast<int>(dtype));
    for (size_t d = 0; d < rank; ++d) t->mutable_shape()->add_dim()->set_dim_param(name + "_d" + std::to_string(d));
    return *this;
  }
  const onnx::ModelProto& proto() const { return proto_; }
  const std::vector<ir::Tensor>& runInputs() const { return run_inputs_; }

 private:
  onnx::ModelProto proto_;
  std::vector<ir::Tensor> run_inputs_;
};

void setInts(onnx::NodeProto* node, const std::string& name, std::vector<int64_t> values) {
  auto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t v : values) a->add_ints(v);
}
void setInt(onnx::NodeProto* node, const std::string& name, int64_t value) {
  auto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(value);
}
void setString(onnx::NodeProto* node, const std::string& name, const std::string& value) {
  auto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s(value);
}

// A compiled artifact and a session on it.
class Compiled {
 public:
  explicit Compiled(const onnx::ModelProto& proto) {
    std::string onnx_path = dir_.file("m.onnx"), so_path = dir_.file("m.so");
    testing::writeFile(onnx_path, proto.SerializeAsString());
    std::ostringstream log;
    auto summary = driver::compileFile(onnx_path, so_path, {}, log);
    if (!summary) {
      error_ = summary.status().message();
      return;
    }
    model_ = std::make_unique<kiln::Model>(so_path.c_str());
    session_ = std::make_unique<kiln::Session>(*model_);
  }
  const std::string& compileError() const { return error_; }
  bool ok() const { return session_ != nullptr; }

  // Output 0 (dims and float32 values), or the run's error message.
  struct Result {
    std::vector<int64_t> dims;
    std::vector<double> values;
    std::string error;
  };
  Result run(const std::vector<ir::Tensor>& inputs) {
    std::vector<kiln_tensor> in;
    for (const ir::Tensor& t : inputs) {
      kiln_tensor k{};
      k.dtype = static_cast<kiln_dtype>(t.dtype());
      k.rank = static_cast<int32_t>(t.dims().size());
      std::copy(t.dims().begin(), t.dims().end(), k.dims);
      k.data = const_cast<std::byte*>(t.bytes().data());
      k.bytes = t.bytes().size();
      in.push_back(k);
    }
    std::vector<kiln_tensor> out(model_->numOutputs());
    Result r;
    try {
      session_->run(in, out);
    } catch (const kiln::Error& e) {
      r.error = e.what();
      return r;
    }
    r.dims.assign(out[0].dims, out[0].dims + out[0].rank);
    int64_t count = 1;
    for (int64_t d : r.dims) count *= d;
    for (int64_t i = 0; i < count; ++i) {
      if (out[0].dtype == KILN_FLOAT32)
        r.values.push_back(static_cast<const float*>(out[0].data)[i]);
      else if (out[0].dtype == KILN_FLOAT64)
        r.values.push_back(static_cast<const double*>(out[0].data)[i]);
      else if (out[0].dtype == KILN_INT64)
        r.values.push_back(static_cast<double>(static_cast<const int64_t*>(out[0].data)[i]));
      else if (out[0].dtype == KILN_BOOL)
        r.values.push_back(static_cast<const bool*>(out[0].data)[i]);
    }
    for (kiln_tensor& t : out) kiln_free(t.data);
    return r;
  }

 private:
  TempDir dir_;
  std::string error_;
  std::unique_ptr<kiln::Model> model_;
  std::unique_ptr<kiln::Session> session_;
};

// The reference evaluator's output 0 for a model whose run-time parameters
// are initializers (the oracle for the run-time versions).
Compiled::Result evaluate(const ModelBuilder& builder) {
  Compiled::Result r;
  auto imported = testing::importProto(builder.proto());
  if (!imported) {
    r.error = imported.status().message();
    return r;
  }
  std::ostringstream log;
  auto program = driver::buildProgram(**imported, {}, log);
  if (!program) {
    r.error = program.status().message();
    return r;
  }
  auto outputs = lower::evaluateProgram(*program, builder.runInputs());
  if (!outputs) {
    r.error = outputs.status().message();
    return r;
  }
  const ir::Tensor& t = (*outputs)[0];
  r.dims = t.dims();
  for (int64_t i = 0; i < t.elementCount(); ++i) r.values.push_back(t.floatAt(i));
  return r;
}

void expectSame(const Compiled::Result& got, const Compiled::Result& want, double tolerance, const std::string& where) {
  ASSERT_TRUE(got.error.empty()) << where << ": " << got.error;
  ASSERT_TRUE(want.error.empty()) << where << ": " << want.error;
  ASSERT_EQ(got.dims, want.dims) << where;
  ASSERT_EQ(got.values.size(), want.values.size()) << where;
  for (size_t i = 0; i < got.values.size(); ++i)
    EXPECT_NEAR(got.values[i], want.values[i], tolerance * (1 + std::abs(want.values[i]))) << where << " element " << i;
}

// ---- Elementwise ops on run-time-shaped values ----------------------------------

// r = Range(0, n, 1) as float32; y = Cos(r * 0.5) + Cast(Clip(r, 1, 3)) * Sqrt(r)
ModelBuilder rangeChain(int64_t n) {
  ModelBuilder b(13);
  b.input(scalar("n", n));
  b.constant(scalar("zero", 0)).constant(scalar("one", 1));
  b.constant(floats("half", {}, {0.5f})).constant(floats("lo", {}, {1.0f})).constant(floats("hi", {}, {3.0f}));
  b.node("Range", "range", {"zero", "n", "one"}, {"ri"});
  setInt(b.node("Cast", "to_float", {"ri"}, {"r"}), "to", 1);
  b.node("Mul", "scale", {"r", "half"}, {"rh"});
  b.node("Cos", "cos", {"rh"}, {"c"});
  b.node("Clip", "clip", {"r", "lo", "hi"}, {"k"});
  b.node("Sqrt", "sqrt", {"r"}, {"s"});
  b.node("Mul", "ks", {"k", "s"}, {"p"});
  b.node("Add", "sum", {"c", "p"}, {"y"});
  b.output("y", ir::DType::kFloat32, 1);
  return b;
}

TEST(RunTimeElementwise, ChainOverARangeRunsAtSeveralLengths) {
  Compiled compiled(rangeChain(4).proto());
  ASSERT_TRUE(compiled.ok()) << compiled.compileError();
  for (int64_t n : {0, 1, 5, 33}) {
    Compiled::Result r =
        compiled.run({ir::Tensor::fromValues<int64_t>(ir::DType::kInt64, {}, std::vector<int64_t>{n})});
    ASSERT_TRUE(r.error.empty()) << r.error;
    ASSERT_EQ(r.dims, std::vector<int64_t>{n});
    for (int64_t i = 0; i < n; ++i) {
      double x = static_cast<double>(i);
      double want = std::cos(x * 0.5) + std::clamp(x, 1.0, 3.0) * std::sqrt(x);
      EXPECT_NEAR(r.values[static_cast<size_t>(i)], want, 1e-5 * (1 + std::abs(want))) << "n=" << n << " i=" << i;
    }
  }
}

TEST(RunTimeElementwise, ReferenceEvaluatorAgreesWithGeneratedCode) {
  for (int64_t n : {3, 10}) {
    ModelBuilder b = rangeChain(n);
    Compiled compiled(b.proto());
    ASSERT_TRUE(compiled.ok()) << compiled.compileError();
    expectSame(compiled.run(b.runInputs()), evaluate(b), 1e-6, "n=" + std::to_string(n));
  }
}

// a = Range(0, n) [n], b = Range(0, m) * 10 [m]; y = ones [n, 1] * b [n, m];
// z = Where(a > 1, a, b) needs n and m to broadcast.
ModelBuilder twoRanges(int64_t n, int64_t m, bool outer) {
  ModelBuilder b(13);
  b.input(floats("n", {}, {static_cast<float>(n)})).input(floats("m", {}, {static_cast<float>(m)}));
  b.constant(floats("zero", {}, {0})).constant(floats("one", {}, {1})).constant(floats("ten", {}, {10}));
  b.node("Range", "range_a", {"zero", "n", "one"}, {"a"});
  b.node("Range", "range_b", {"zero", "m", "one"}, {"rb"});
  b.node("Mul", "tens", {"rb", "ten"}, {"b"});
  if (outer) {  // a column of n ones [n, 1] (its shape given at run time) times b
    b.input(ints("column_shape", {2}, {n, 1})).constant(floats("one_by_one", {1, 1}, {1}));
    b.node("Expand", "column", {"one_by_one", "column_shape"}, {"ac"});
    b.node("Mul", "outer", {"ac", "b"}, {"y"});
    b.output("y", ir::DType::kFloat32, 2);
  } else {
    b.node("Greater", "big", {"a", "one"}, {"g"});
    b.node("Where", "pick", {"g", "a", "b"}, {"y"});
    b.output("y", ir::DType::kFloat32, 1);
  }
  return b;
}

std::vector<ir::Tensor> sizes(int64_t n, int64_t m) {
  return {ir::Tensor::fromValues<float>(ir::DType::kFloat32, {}, std::vector<float>{static_cast<float>(n)}),
          ir::Tensor::fromValues<float>(ir::DType::kFloat32, {}, std::vector<float>{static_cast<float>(m)})};
}

TEST(RunTimeElementwise, TwoRunTimeDimsBroadcast) {
  Compiled compiled(twoRanges(2, 3, true).proto());
  ASSERT_TRUE(compiled.ok()) << compiled.compileError();
  for (auto [n, m] : {std::pair<int64_t, int64_t>{2, 3}, {1, 4}, {5, 1}, {0, 3}}) {
    std::vector<ir::Tensor> in = sizes(n, m);
    in.push_back(ir::Tensor::fromValues<int64_t>(ir::DType::kInt64, {2}, std::vector<int64_t>{n, 1}));
    Compiled::Result r = compiled.run(in);
    ASSERT_TRUE(r.error.empty()) << r.error;
    ASSERT_EQ(r.dims, (std::vector<int64_t>{n, m}));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < m; ++j)
        EXPECT_EQ(r.values[static_cast<size_t>(i * m + j)], static_cast<double>(10 * j)) << n << "x" << m;
  }
}

TEST(RunTimeElementwise, RunTimeDimsThatDoNotBroadcastStopTheRunNamingTheNode) {
  Compiled compiled(twoRanges(3, 3, false).proto());
  ASSERT_TRUE(compiled.ok()) << compiled.compileError();
  Compiled::Result same = compiled.run(sizes(3, 3));
  ASSERT_TRUE(same.error.empty()) << same.error;
  EXPECT_EQ(same.values, (std::vector<double>{0, 10, 2}));
  Compiled::Result stretched = compiled.run(sizes(1, 3));  // a of length 1 broadcasts
  ASSERT_TRUE(stretched.error.empty()) << stretched.error;
  EXPECT_EQ(stretched.values, (std::vector<double>{0, 10, 20}));
  Compiled::Result bad = compiled.run(sizes(3, 4));
  ASSERT_FALSE(bad.error.empty()) << "lengths 3 and 4 were broadcast";
  EXPECT_NE(bad.error.find("Where 'pick'"), std::string::npos) << bad.error;
  EXPECT_NE(bad.error.find("[3]"), std::string::npos) << bad.error;
  EXPECT_NE(bad.error.find("[4]"), std::string::npos) << bad.error;
  EXPECT_NE(bad.error.find("do not broadcast"), std::string::npos) << bad.error;
}

TEST(RunTimeElementwise, RunTimeDimAgainstAStaticDimIsChecked) {
  ModelBuilder b(13);
  b.input(floats("n", {}, {4}));
  b.constant(floats("zero", {}, {0})).constant(floats("one", {}, {1}));
  b.constant(floats("w", {4}, {1, 2, 3, 4}));
  b.node("Range", "range", {"zero", "n", "one"}, {"a"});
  b.node("Mul", "weigh", {"a", "w"}, {"y"});
  b.output("y", ir::DType::kFloat32, 1);
  Compiled compiled(b.proto());
  ASSERT_TRUE(compiled.ok()) << compiled.compileError();
  auto length = [](float n) {
    return std::vector<ir::Tensor>{ir::Tensor::fromValues<float>(ir::DType::kFloat32, {}, std::vector<float>{n})};
  };
  Compiled::Result four = compiled.run(length(4));
  ASSERT_TRUE(four.error.empty()) << four.error;
  EXPECT_EQ(four.values, (std::vector<double>{0, 2, 6, 12}));
  Compiled::Result one = compiled.run(length(1));
  ASSERT_TRUE(one.error.empty()) << one.error;
  EXPECT_EQ(one.dims, std::vector<int64_t>{4});
  EXPECT_EQ(one.values, (std::vector<double>{0, 0, 0, 0}));
  Compiled::Result three = compiled.run(length(3));
  EXPECT_NE(three.error.find("Mul 'weigh'"), std::string::npos) << three.error;
}

// Checks only where two dims may really differ: x * x shares its slots, a
// run-time dim against 1 broadcasts without one.
TEST(RunTimeElementwise, NoCheckWhereTheDimsCannotDisagree) {
  ModelBuilder b(13);
  b.input(floats("n", {}, {4}));
  b.constant(floats("zero", {}, {0})).constant(floats("one", {}, {1})).constant(floats("w", {1}, {2}));
  b.node("Range", "range", {"zero", "n", "one"}, {"a"});
  b.node("Mul", "square", {"a", "a"}, {"s"});
  b.node("Add", "shift", {"s", "w"}, {"y"});
  b.output("y", ir::DType::kFloat32, 1);
  auto imported = testing::importProto(b.proto());
  ASSERT_TRUE(imported.isOk()) << imported.status().message();
  std::ostringstream log;
  auto program = driver::buildProgram(**imported, {}, log);
  ASSERT_TRUE(program.isOk()) << program.status().message();
  for (const std::string& check : program->checks) {
    EXPECT_EQ(check.find("Mul 'square'"), std::string::npos) << check;
    EXPECT_EQ(check.find("Add 'shift'"), std::string::npos) << check;
  }
  auto outputs = lower::evaluateProgram(*program, b.runInputs());
  ASSERT_TRUE(outputs.isOk()) << outputs.status().message();
  ASSERT_EQ((*outputs)[0].dims(), std::vector<int64_t>{4});
  for (int64_t i = 0; i < 4; ++i) EXPECT_EQ((*outputs)[0].floatAt(i), static_cast<double>(i * i + 2));
}

// ---- Size parameters read at run time, against the same node with constants ------

// Compiles `make(true)` (parameters as graph inputs) and checks it against the
// reference evaluator on `make(false)` (the same parameters as initializers).
void expectRunTimeMatchesConstant(const std::function<ModelBuilder(bool)>& make, double tolerance,
                                  const std::string& where) {
  ModelBuilder run_time = make(true);
  Compiled compiled(run_time.proto());
  ASSERT_TRUE(compiled.ok()) << where << ": " << compiled.compileError();
  expectSame(compiled.run(run_time.runInputs()), evaluate(make(false)), tolerance, where);
}

TEST(RunTimeSizeParameters, WindowsTakeTheirSizeAtRunTime) {
  for (const char* op : {"HannWindow", "HammingWindow", "BlackmanWindow"})
    for (int64_t periodic : {0, 1})
      for (int64_t size : {1, 2, 10}) {
        auto make = [&](bool run_time) {
          ModelBuilder b(17);
          Named n = scalar("size", size);
          run_time ? b.input(n) : b.constant(n);
          setInt(b.node(op, "window", {"size"}, {"y"}), "periodic", periodic);
          b.output("y", ir::DType::kFloat32, 1);
          return b;
        };
        expectRunTimeMatchesConstant(make, 1e-6, std::string(op) + " size " + std::to_string(size));
      }
}

TEST(RunTimeSizeParameters, ResizeScalesAndSizesAtRunTime) {
  struct Case {
    const char* mode;
    const char* transform;
    std::vector<float> scales;  // empty: use sizes
    std::vector<int64_t> sizes;
  };
  const Case cases[] = {
      {"nearest", "asymmetric", {1, 1, 2.0f, 3.0f}, {}},        {"nearest", "half_pixel", {1, 1, 0.6f, 0.5f}, {}},
      {"linear", "half_pixel", {1, 1, 1.7f, 0.8f}, {}},         {"linear", "align_corners", {1, 1, 2.5f, 1.5f}, {}},
      {"cubic", "pytorch_half_pixel", {1, 1, 0.75f, 2.0f}, {}}, {"nearest", "pytorch_half_pixel", {}, {1, 1, 7, 2}},
      {"linear", "half_pixel_symmetric", {}, {1, 2, 5, 3}},     {"cubic", "asymmetric", {}, {1, 1, 3, 8}},
  };
  std::vector<float> x(24);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(static_cast<float>(i)) * 4.0f;
  for (const Case& c : cases) {
    auto make = [&](bool run_time) {
      ModelBuilder b(19);
      b.input(floats("X", {1, 2, 3, 4}, x));
      Named given = c.scales.empty() ? ints("sizes", {4}, c.sizes) : floats("scales", {4}, c.scales);
      run_time ? b.input(given) : b.constant(given);
      onnx::NodeProto* node = c.scales.empty() ? b.node("Resize", "resize", {"X", "", "", "sizes"}, {"Y"})
                                               : b.node("Resize", "resize", {"X", "", "scales"}, {"Y"});
      setString(node, "mode", c.mode);
      setString(node, "coordinate_transformation_mode", c.transform);
      b.output("Y", ir::DType::kFloat32, 4);
      return b;
    };
    expectRunTimeMatchesConstant(make, 1e-5, std::string(c.mode) + "/" + c.transform);
  }
}

TEST(RunTimeSizeParameters, UpsampleScalesAtRunTimeAreChecked) {
  ModelBuilder b(9);
  b.input(floats("X", {1, 1, 2, 2}, {1, 2, 3, 4})).input(floats("scales", {4}, {1, 1, 2, 3}));
  b.node("Upsample", "up", {"X", "scales"}, {"Y"});
  b.output("Y", ir::DType::kFloat32, 4);
  Compiled compiled(b.proto());
  ASSERT_TRUE(compiled.ok()) << compiled.compileError();
  std::vector<ir::Tensor> in = b.runInputs();
  Compiled::Result r = compiled.run(in);
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.dims, (std::vector<int64_t>{1, 1, 4, 6}));
  EXPECT_EQ(r.values[0], 1);
  EXPECT_EQ(r.values[3], 2);
  EXPECT_EQ(r.values[23], 4);
  in[1] = ir::Tensor::fromValues<float>(ir::DType::kFloat32, {4}, std::vector<float>{1, 1, 0.5f, 1});
  Compiled::Result shrunk = compiled.run(in);
  EXPECT_NE(shrunk.error.find("Upsample 'up'"), std::string::npos) << shrunk.error;
  EXPECT_NE(shrunk.error.find("at least 1"), std::string::npos) << shrunk.error;
}

TEST(RunTimeSizeParameters, StftMelWeightMatrixAndMaxUnpool) {
  std::vector<float> signal(64);
  for (size_t i = 0; i < signal.size(); ++i)
    signal[i] = std::cos(0.3f * static_cast<float>(i)) + 0.1f * static_cast<float>(i % 5);
  for (int64_t step : {3, 8}) {
    auto make = [&](bool run_time) {
      ModelBuilder b(17);
      b.input(floats("signal", {1, 64, 1}, signal));
      Named s = scalar("step", step), length = scalar("length", 16);
      run_time ? b.input(s).input(length) : b.constant(s).constant(length);
      b.node("STFT", "stft", {"signal", "step", "", "length"}, {"Y"});
      b.output("Y", ir::DType::kFloat32, 4);
      return b;
    };
    expectRunTimeMatchesConstant(make, 1e-4, "STFT step " + std::to_string(step));
  }
  for (int64_t mels : {4, 8}) {
    auto make = [&](bool run_time) {
      ModelBuilder b(17);
      Named m = scalar("mels", mels), length = scalar("length", 32);
      run_time ? b.input(m).input(length) : b.constant(m).constant(length);
      b.constant(scalar("rate", 8000)).constant(floats("lo", {}, {50})).constant(floats("hi", {}, {3000}));
      b.node("MelWeightMatrix", "mel", {"mels", "length", "rate", "lo", "hi"}, {"W"});
      b.output("W", ir::DType::kFloat32, 2);
      return b;
    };
    expectRunTimeMatchesConstant(make, 1e-6, "MelWeightMatrix mels " + std::to_string(mels));
  }
  auto unpool = [&](bool run_time) {
    ModelBuilder b(11);
    b.input(floats("X", {1, 1, 2, 2}, {5, 6, 7, 8}));
    b.input(ints("I", {1, 1, 2, 2}, {5, 7, 13, 15}));
    Named shape = ints("shape", {4}, {1, 1, 5, 6});
    run_time ? b.input(shape) : b.constant(shape);
    auto* node = b.node("MaxUnpool", "unpool", {"X", "I", "shape"}, {"Y"});
    setInts(node, "kernel_shape", {2, 2});
    setInts(node, "strides", {2, 2});
    b.output("Y", ir::DType::kFloat32, 4);
    return b;
  };
  expectRunTimeMatchesConstant(unpool, 0, "MaxUnpool");
  ModelBuilder small = unpool(true);
  Compiled compiled(small.proto());
  ASSERT_TRUE(compiled.ok()) << compiled.compileError();
  std::vector<ir::Tensor> in = small.runInputs();
  in[2] = ir::Tensor::fromValues<int64_t>(ir::DType::kInt64, {4}, std::vector<int64_t>{1, 1, 3, 3});
  Compiled::Result r = compiled.run(in);
  EXPECT_NE(r.error.find("MaxUnpool 'unpool'"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("smaller than the unpooled shape"), std::string::npos) << r.error;
}

}  // namespace
}  // namespace kiln
