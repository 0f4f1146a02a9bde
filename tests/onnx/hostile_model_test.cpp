// Hostile ONNX models: each must give one clear error (or, for limits that
// are not errors, a model the compiler handles without blowing up), never a
// crash, a hang, an allocation the file does not justify, or a read outside
// the model's folder. The fuzz targets in tests/fuzz explore the same ground
// at random; these pin the exact errors.
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <set>
#include <sstream>

#include "compiler/driver/compile.h"
#include "compiler/ir/printer.h"
#include "passes/infer_shapes.h"
#include "tests/onnx/onnx_test_util.h"
#include "tools/common/run_artifact.h"

namespace kiln::testing {
namespace {

void expectMessage(const Status& status, const std::string& want) {
  ASSERT_FALSE(status.isOk()) << "expected: " << want;
  EXPECT_EQ(status.message(), want);
}
template <typename T>
void expectMessage(const Expected<T>& result, const std::string& want) {
  ASSERT_FALSE(result.isOk()) << "expected: " << want;
  EXPECT_EQ(result.status().message(), want);
}

// x: float32[2x3] -> Relu -> y, plus an initializer 'w' of 6 floats.
onnx::ModelProto modelWithInitializer() {
  onnx::ModelProto model = reluModel();
  auto* init = model.mutable_graph()->add_initializer();
  init->set_name("w");
  init->set_data_type(onnx::TensorProto::FLOAT);
  init->add_dims(2);
  init->add_dims(3);
  init->set_raw_data(std::string(24, '\x01'));
  return model;
}

// ---- damaged files ----------------------------------------------------------

TEST(HostileModelTest, TruncatedFile) {
  std::string bytes = modelWithInitializer().SerializeAsString();
  std::string cut = bytes.substr(0, bytes.size() - 5);
  expectMessage(frontend::importOnnxBytes(asBytes(cut), "", "cut.onnx"),
                "'cut.onnx' is not a valid ONNX model: truncated varint (at byte " + std::to_string(cut.size()) +
                    " of a " + std::to_string(cut.size()) + "-byte message)");
}

TEST(HostileModelTest, BitFlippedLengthPrefix) {
  std::string bytes = modelWithInitializer().SerializeAsString();
  // The byte after the graph's tag is its length: make it claim more than the file holds.
  size_t graph_tag = bytes.find('\x3a');  // field 7, length-delimited
  ASSERT_NE(graph_tag, std::string::npos);
  bytes[graph_tag + 1] = static_cast<char>(static_cast<unsigned char>(bytes[graph_tag + 1]) ^ 0x40);
  auto result = frontend::importOnnxBytes(asBytes(bytes), "", "flipped.onnx");
  expectMessage(result,
                "'flipped.onnx' is not a valid ONNX model: a field runs past the end of its message (at byte 28 of a "
                "41-byte message)");
}

TEST(HostileModelTest, BitFlippedDataType) {
  onnx::ModelProto model = modelWithInitializer();
  model.mutable_graph()->mutable_initializer(0)->set_data_type(1 ^ 0x40);  // 65: no such type
  expectMessage(importProto(model), "'test.onnx': initializer 'w' has data type 65 (unknown), which Kiln does not support");
}

// ---- protobuf nesting and size bombs ------------------------------------------

// `depth` If nodes, each holding the next in its then_branch.
onnx::ModelProto nestedIfs(int depth) {
  onnx::ModelProto model = reluModel();
  onnx::GraphProto* graph = model.mutable_graph();
  for (int i = 0; i < depth; ++i) {
    auto* node = addNode(graph, "If", "if" + std::to_string(i), {"x"}, {"o" + std::to_string(i)});
    auto* attr = node->add_attribute();
    attr->set_name("then_branch");
    attr->set_type(onnx::AttributeProto::GRAPH);
    graph = attr->mutable_g();
  }
  return model;
}

TEST(HostileModelTest, NestingBombStopsAtProtobufRecursionLimit) {
  expectMessage(importProto(nestedIfs(2000)), "'test.onnx' is not a valid ONNX model: malformed onnx.GraphProto message");
}

TEST(HostileModelTest, ModerateNestingImports) {
  auto model = importProto(nestedIfs(20));
  ASSERT_TRUE(model.isOk()) << model.status().message();
}

TEST(HostileModelTest, LengthPrefixClaimingTwoGigabytes) {
  // ModelProto.graph (field 7) claiming 0x7fffffff bytes, followed by 3.
  std::string bytes = "\x3a\xff\xff\xff\xff\x07" "abc";
  expectMessage(frontend::importOnnxBytes(asBytes(bytes), "", "bomb.onnx"),
                "'bomb.onnx' is not a valid ONNX model: a field runs past the end of its message (at byte 6 of a "
                "9-byte message)");
}

TEST(HostileModelTest, HugeShapeWithoutDataAllocatesNothing) {
  onnx::ModelProto model = reluModel();
  auto* init = model.mutable_graph()->add_initializer();
  init->set_name("big");
  init->set_data_type(onnx::TensorProto::FLOAT);
  init->add_dims(int64_t{1} << 40);
  expectMessage(importProto(model), "'test.onnx': initializer 'big' has 0 values in float_data, but its shape holds "
                                    "1099511627776");
}

TEST(HostileModelTest, SparseTensorDensifyBomb) {
  // 1 non-zero, densifying to 2^29 floats (2 GiB) from a few bytes.
  onnx::ModelProto model = reluModel();
  auto* sparse = model.mutable_graph()->add_sparse_initializer();
  sparse->add_dims(int64_t{1} << 29);
  auto* values = sparse->mutable_values();
  values->set_name("s");
  values->set_data_type(onnx::TensorProto::FLOAT);
  values->add_dims(1);
  values->add_float_data(1.0f);
  auto* indices = sparse->mutable_indices();
  indices->set_data_type(onnx::TensorProto::INT64);
  indices->add_dims(1);
  indices->add_int64_data(7);
  expectMessage(importProto(model),
                "'test.onnx': sparse initializer 's' stores 1 non-zeros (12 bytes) for a dense 536870912 tensor of "
                "2147483648 bytes; Kiln densifies a sparse tensor to at most 1024 times its stored size (or 64 MiB)");
}

// ---- shapes ------------------------------------------------------------------------

// No tensor holds more than 2^63 elements: a declared type saying otherwise
// is refused at import, so later products of its dims stay in range.
TEST(HostileModelTest, GraphInputWhoseElementCountOverflowsInt64) {
  onnx::ModelProto model = reluModel();
  auto* graph = model.mutable_graph();
  graph->clear_input();
  setType(graph->add_input(), "x", onnx::TensorProto::FLOAT, {112590849, int64_t{27021597764222977}});
  expectMessage(importProto(model), "'test.onnx': graph input 'x' has shape 112590849x27021597764222977, whose element "
                                    "count overflows 64 bits");
}

// A ConstantOfShape node filling a side x side float output from a constant shape.
onnx::ModelProto constantOfShapeModel(int64_t side) {
  onnx::ModelProto model = reluModel();
  auto* graph = model.mutable_graph();
  graph->clear_node();
  graph->clear_output();
  auto* shape = graph->add_initializer();
  shape->set_name("shape");
  shape->set_data_type(onnx::TensorProto::INT64);
  shape->add_dims(2);
  shape->add_int64_data(side);
  shape->add_int64_data(side);
  addNode(graph, "ConstantOfShape", "fill", {"shape"}, {"y"});
  setType(graph->add_output(), "y", onnx::TensorProto::FLOAT, {});
  return model;
}

// 2^62 floats count fine in int64 but are 2^64 bytes: beyond ir::kMaxTensorBytes,
// refused before any arena size is computed from them.
TEST(HostileModelTest, GraphInputOfMoreThanTheByteLimit) {
  onnx::ModelProto model = reluModel();
  auto* graph = model.mutable_graph();
  graph->clear_input();
  setType(graph->add_input(), "x", onnx::TensorProto::FLOAT, {int64_t{1} << 31, int64_t{1} << 31});
  expectMessage(importProto(model), "'test.onnx': graph input 'x' has shape 2147483648x2147483648, of more than 2^48 bytes");
}

// Every op's output shape is checked in one place (InferContext::setOutputType).
TEST(HostileModelTest, OutputOfMoreThanTheByteLimit) {
  auto imported = importProto(constantOfShapeModel(int64_t{1} << 25));
  ASSERT_TRUE(imported.isOk()) << imported.status().message();
  Status status = passes::inferShapes(**imported);
  ASSERT_FALSE(status.isOk());
  EXPECT_NE(status.message().find("ConstantOfShape 'fill': output 0 would have shape 33554432x33554432, of more than 2^48 bytes"),
            std::string::npos)
      << status.message();
}

// Found by fuzz_onnx_infer: Reshape's inference multiplied the target shape's
// dims unchecked (compiler/ops/infer_checks.cpp productDim); every output shape
// is now checked in InferContext::setOutputType.
TEST(HostileModelTest, ReshapeTargetWhoseProductOverflows) {
  onnx::ModelProto model = reluModel();
  auto* graph = model.mutable_graph();
  graph->clear_node();
  auto* shape = graph->add_initializer();
  shape->set_name("shape");
  shape->set_data_type(onnx::TensorProto::INT64);
  shape->add_dims(3);
  for (int64_t d : {int64_t{112590849}, int64_t{27021597764222977}, int64_t{3}}) shape->add_int64_data(d);
  addNode(graph, "Reshape", "reshape", {"x", "shape"}, {"y"});
  auto imported = importProto(model);
  ASSERT_TRUE(imported.isOk()) << imported.status().message();
  Status status = passes::inferShapes(**imported);
  ASSERT_FALSE(status.isOk());
  EXPECT_NE(status.message().find("Reshape 'reshape'"), std::string::npos) << status.message();
}

TEST(HostileModelTest, ConstantOfShapeBeyondFoldLimitsIsNotMaterialized) {
  auto imported = importProto(constantOfShapeModel(int64_t{1} << 20));
  ASSERT_TRUE(imported.isOk()) << imported.status().message();
  ASSERT_TRUE(passes::inferShapes(**imported).isOk());
  const ir::Value* y = (*imported)->graph.outputs[0];
  EXPECT_FALSE(y->isConstant()) << "a 4 TiB constant must not be folded";
  ASSERT_TRUE(y->type.shape.has_value());
  EXPECT_EQ(ir::toString(*y->type.shape), "1048576x1048576");
}

// Found by fuzz_onnx_infer: Tile's shape inference multiplied a dim by the
// repeat count unchecked (signed overflow, then a wrapped shape).
TEST(HostileModelTest, TileRepeatsOverflowingTheShape) {
  onnx::ModelProto model = reluModel();
  auto* graph = model.mutable_graph();
  graph->clear_node();
  auto* repeats = graph->add_initializer();
  repeats->set_name("repeats");
  repeats->set_data_type(onnx::TensorProto::INT64);
  repeats->add_dims(2);
  repeats->add_int64_data(1);
  repeats->add_int64_data(int64_t{7349874591868649475});
  addNode(graph, "Tile", "tile", {"x", "repeats"}, {"y"});
  auto imported = importProto(model);
  ASSERT_TRUE(imported.isOk()) << imported.status().message();
  Status status = passes::inferShapes(**imported);
  ASSERT_FALSE(status.isOk()) << "3 * 7349874591868649475 elements must not be accepted";
  EXPECT_NE(status.message().find("Tile 'tile'"), std::string::npos) << status.message();
}

// ---- constants at the edges of int64 and double ---------------------------------
// Found by an audit under UBSan: shape inference of Pad, Slice, Range, Resize
// and OneHot did signed arithmetic or float-to-int casts that overflow on
// extreme constants (undefined behaviour; in a release build a wrapped shape
// or a wrong Range).

void addInt64s(onnx::GraphProto* graph, const std::string& name, std::vector<int64_t> values, bool scalar = false) {
  auto* init = graph->add_initializer();
  init->set_name(name);
  init->set_data_type(onnx::TensorProto::INT64);
  if (!scalar) init->add_dims(static_cast<int64_t>(values.size()));
  for (int64_t v : values) init->add_int64_data(v);
}

// x: float32[2x3] -> `op` (x, then the named int64 initializers) -> y, shape left to inference.
onnx::ModelProto opOnX(const std::string& op, std::vector<std::pair<std::string, std::vector<int64_t>>> constants) {
  onnx::ModelProto model = reluModel();
  auto* graph = model.mutable_graph();
  graph->clear_node();
  graph->clear_output();
  auto* node = addNode(graph, op, "n", {"x"}, {"y"});
  for (auto& [name, values] : constants) {
    addInt64s(graph, name, values);
    node->add_input(name);
  }
  setType(graph->add_output(), "y", onnx::TensorProto::FLOAT, {});
  return model;
}

Status inferModel(const onnx::ModelProto& model) {
  auto imported = importProto(model);
  if (!imported) return imported.status();
  return passes::inferShapes(**imported);
}

TEST(HostileModelTest, PadsOverflowingInt64) {
  constexpr int64_t kHuge = int64_t{1} << 62;  // begin + end = 2^63
  expectError(inferModel(opOnX("Pad", {{"pads", {kHuge, 0, kHuge, 0}}})),
              {"Pad 'n'", "pads value 4611686018427387904 is beyond any tensor's size"});
}

TEST(HostileModelTest, SliceStepsAtTheInt64Extremes) {
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min(), kMax = std::numeric_limits<int64_t>::max();
  for (auto [step, dims] : {std::pair{kMin, "2x0"}, std::pair{kMax, "2x1"}}) {
    auto imported = importProto(opOnX("Slice", {{"starts", {step < 0 ? kMin : 0}}, {"ends", {kMax}}, {"axes", {1}},
                                                {"steps", {step}}}));
    ASSERT_TRUE(imported.isOk()) << imported.status().message();
    Status status = passes::inferShapes(**imported);
    ASSERT_TRUE(status.isOk()) << status.message();
    EXPECT_EQ(ir::toString(*(*imported)->graph.outputs[0]->type.shape), dims) << "step " << step;
  }
}

TEST(HostileModelTest, ResizeScaleThatOverflowsInt64) {
  onnx::ModelProto model = reluModel();
  auto* graph = model.mutable_graph();
  graph->clear_node();
  graph->clear_output();
  auto* scales = graph->add_initializer();
  scales->set_name("scales");
  scales->set_data_type(onnx::TensorProto::FLOAT);
  scales->add_dims(2);
  scales->add_float_data(1);
  scales->add_float_data(std::numeric_limits<float>::infinity());
  addNode(graph, "Resize", "up", {"x", "", "scales"}, {"y"});
  setType(graph->add_output(), "y", onnx::TensorProto::FLOAT, {});
  expectError(inferModel(model), {"Resize 'up'", "scale inf makes dim 1 of size 3 overflow 64 bits"});
}

TEST(HostileModelTest, OneHotDepthThatIsNotASize) {
  onnx::ModelProto model = reluModel();
  auto* graph = model.mutable_graph();
  graph->clear_node();
  graph->clear_output();
  auto* depth = graph->add_initializer();
  depth->set_name("depth");
  depth->set_data_type(onnx::TensorProto::FLOAT);
  depth->add_float_data(std::numeric_limits<float>::quiet_NaN());
  addInt64s(graph, "values", {0, 1});
  addNode(graph, "OneHot", "hot", {"x", "depth", "values"}, {"y"});
  setType(graph->add_output(), "y", onnx::TensorProto::INT64, {});
  expectError(inferModel(model), {"OneHot 'hot'", "depth nan is not a size (input 1)"});
}

// start, limit, delta -> Range 'range' -> y (int64): constants, or graph inputs when `run_time`.
onnx::ModelProto int64RangeModel(int64_t start, int64_t limit, int64_t delta, bool run_time) {
  onnx::ModelProto model = reluModel();
  auto* graph = model.mutable_graph();
  graph->clear_node();
  graph->clear_input();
  graph->clear_output();
  const char* names[] = {"start", "limit", "delta"};
  int64_t values[] = {start, limit, delta};
  for (int i = 0; i < 3; ++i) {
    if (run_time) setType(graph->add_input(), names[i], onnx::TensorProto::INT64, {});
    else addInt64s(graph, names[i], {values[i]}, /*scalar=*/true);
  }
  addNode(graph, "Range", "range", {"start", "limit", "delta"}, {"y"});
  setType(graph->add_output(), "y", onnx::TensorProto::INT64, {});
  return model;
}

// limit - start and i * delta may leave int64 although every element lies
// between start and limit; doubles round bounds near 2^62.
const std::vector<std::pair<std::array<int64_t, 3>, std::vector<int64_t>>> kInt64Ranges = {
    {{INT64_MIN, INT64_MAX, int64_t{1} << 62}, {INT64_MIN, -(int64_t{1} << 62), 0, int64_t{1} << 62}},
    {{INT64_MAX, INT64_MIN, INT64_MIN}, {INT64_MAX, -1}},
    {{0, INT64_MAX, int64_t{1} << 62}, {0, int64_t{1} << 62}},
    {{INT64_MIN, 0, INT64_MAX}, {INT64_MIN, -1}},
    {{int64_t{1} << 62, (int64_t{1} << 62) + 3, 1}, {int64_t{1} << 62, (int64_t{1} << 62) + 1, (int64_t{1} << 62) + 2}},
    {{INT64_MIN, INT64_MAX, -1}, {}},
};

TEST(HostileModelTest, ConstantRangeAtTheInt64ExtremesIsExact) {
  for (const auto& [bounds, want] : kInt64Ranges) {
    auto imported = importProto(int64RangeModel(bounds[0], bounds[1], bounds[2], false));
    ASSERT_TRUE(imported.isOk()) << imported.status().message();
    Status status = passes::inferShapes(**imported);
    ASSERT_TRUE(status.isOk()) << status.message();
    const ir::Value* y = (*imported)->graph.outputs[0];
    ASSERT_TRUE(y->isConstant());
    std::vector<int64_t> got;
    for (int64_t i = 0; i < y->constant->elementCount(); ++i) got.push_back(y->constant->intAt(i));
    EXPECT_EQ(got, want) << bounds[0] << ", " << bounds[1] << ", " << bounds[2];
  }
}

TEST(HostileModelTest, RunTimeRangeAtTheInt64ExtremesIsExact) {
  TempDir dir;
  writeFile(dir.file("model.onnx"), int64RangeModel(0, 0, 0, true).SerializeAsString());
  std::ostringstream log;
  ASSERT_TRUE(driver::compileFile(dir.file("model.onnx"), dir.file("model.so"), {}, log).isOk()) << log.str();
  kiln::Model artifact(dir.file("model.so"));
  kiln::Session session(artifact, 1);
  auto scalar = [](int64_t v) { return ir::Tensor::fromValues<int64_t>(ir::DType::kInt64, {}, std::vector{v}); };
  auto run = [&](int64_t start, int64_t limit, int64_t delta) {
    return tools::runArtifact(artifact, session, std::vector{scalar(start), scalar(limit), scalar(delta)});
  };
  for (const auto& [bounds, want] : kInt64Ranges) {
    auto outputs = run(bounds[0], bounds[1], bounds[2]);
    ASSERT_TRUE(outputs.isOk()) << outputs.status().message();
    std::vector<int64_t> got;
    for (int64_t i = 0; i < outputs->at(0).elementCount(); ++i) got.push_back(outputs->at(0).intAt(i));
    EXPECT_EQ(got, want) << bounds[0] << ", " << bounds[1] << ", " << bounds[2];
  }
  // 2^63 and 2^64 - 1 elements: refused, not wrapped to an empty range.
  expectError(run(0, INT64_MIN, -1), {"Range 'range'", "too large"});
  expectError(run(INT64_MIN, INT64_MAX, 1), {"Range 'range'", "too large"});
}

// Kernel IR constants are doubles, exact to 2^53: a Clip bound of INT64_MAX
// became 2^63, then INT64_MIN (every element clipped to it), and
// ConstantOfShape's 2^60 + 1 came out 2^60.
TEST(HostileModelTest, Int64ConstantsPast2To53StayExactInKernels) {
  constexpr int64_t kBig = (int64_t{1} << 60) + 1;
  onnx::ModelProto model = reluModel();
  auto* graph = model.mutable_graph();
  graph->clear_node();
  graph->clear_input();
  graph->clear_output();
  setType(graph->add_input(), "x", onnx::TensorProto::INT64, {3});
  setType(graph->add_input(), "shape", onnx::TensorProto::INT64, {1});
  addInt64s(graph, "lowest", {INT64_MIN}, /*scalar=*/true);
  addInt64s(graph, "highest", {INT64_MAX}, /*scalar=*/true);
  addInt64s(graph, "big", {kBig}, /*scalar=*/true);
  addNode(graph, "Clip", "keep", {"x", "lowest", "highest"}, {"kept"});
  addNode(graph, "Clip", "cap", {"x", "", "big"}, {"capped"});
  auto* fill = addNode(graph, "ConstantOfShape", "fill", {"shape"}, {"filled"});
  auto* value = fill->add_attribute();
  value->set_name("value");
  value->set_type(onnx::AttributeProto::TENSOR);
  value->mutable_t()->set_data_type(onnx::TensorProto::INT64);
  value->mutable_t()->add_dims(1);
  value->mutable_t()->add_int64_data(kBig);
  for (const char* name : {"kept", "capped", "filled"})
    setType(graph->add_output(), name, onnx::TensorProto::INT64, {});
  TempDir dir;
  writeFile(dir.file("model.onnx"), model.SerializeAsString());
  std::ostringstream log;
  ASSERT_TRUE(driver::compileFile(dir.file("model.onnx"), dir.file("model.so"), {}, log).isOk()) << log.str();
  kiln::Model artifact(dir.file("model.so"));
  kiln::Session session(artifact, 1);
  std::vector<int64_t> x = {INT64_MAX, kBig + 1, -5};
  std::vector<int64_t> shape = {2};
  auto outputs = tools::runArtifact(artifact, session,
                                    std::vector{ir::Tensor::fromValues<int64_t>(ir::DType::kInt64, {3}, x),
                                                ir::Tensor::fromValues<int64_t>(ir::DType::kInt64, {1}, shape)});
  ASSERT_TRUE(outputs.isOk()) << outputs.status().message();
  auto values = [](const ir::Tensor& t) {
    std::vector<int64_t> v;
    for (int64_t i = 0; i < t.elementCount(); ++i) v.push_back(t.intAt(i));
    return v;
  };
  EXPECT_EQ(values(outputs->at(0)), x);
  EXPECT_EQ(values(outputs->at(1)), (std::vector<int64_t>{kBig, kBig, -5}));
  EXPECT_EQ(values(outputs->at(2)), (std::vector<int64_t>{kBig, kBig}));
}

// The runtime's tensors hold at most KILN_MAX_RANK dims; a rank-17 input or
// output compiled to an artifact that every load refused.
// Compiles `model` (written to a temporary folder) to an artifact.
Status compileModel(const onnx::ModelProto& model) {
  TempDir dir;
  writeFile(dir.file("model.onnx"), model.SerializeAsString());
  std::ostringstream log;
  return driver::compileFile(dir.file("model.onnx"), dir.file("model.so"), {}, log).status();
}

TEST(HostileModelTest, InterfaceRankAboveTheRuntimeLimit) {
  auto ones = [](onnx::ValueInfoProto* info, const std::string& name, int rank) {
    setType(info, name, onnx::TensorProto::FLOAT, {});
    auto* shape = info->mutable_type()->mutable_tensor_type()->mutable_shape();
    for (int d = 0; d < rank; ++d) shape->add_dim()->set_dim_value(1);
  };
  onnx::ModelProto model = reluModel();
  auto* graph = model.mutable_graph();
  graph->clear_input();
  graph->clear_output();
  ones(graph->add_input(), "x", 17);
  ones(graph->add_output(), "y", 17);
  expectError(compileModel(model), {"input 'x' has rank 17; a compiled model's inputs and outputs have rank at most 16"});

  graph->clear_input();
  ones(graph->add_input(), "x", 16);
  graph->clear_node();
  addInt64s(graph, "axes", {0});
  addNode(graph, "Unsqueeze", "up", {"x", "axes"}, {"y"});
  expectError(compileModel(model), {"output 'y' has rank 17"});
}

// ---- graph structure -------------------------------------------------------------

// A graph output declared with another element type than its nodes compute
// is malformed; compiling it as inferred would answer in a type nobody asked
// for. Shapes are the exporter's placeholders: the computed one wins.
TEST(HostileModelTest, OutputDeclaredUnlikeWhatItsNodesCompute) {
  onnx::ModelProto model = reluModel();
  auto* graph = model.mutable_graph();
  graph->clear_output();
  setType(graph->add_output(), "y", onnx::TensorProto::INT64, {9, 9});
  expectError(compileModel(model),
              {"graph output 'y' is declared int64, but it is computed by ", "'relu'", " as float32[2x3]"});
  graph->clear_output();
  setType(graph->add_output(), "y", onnx::TensorProto::FLOAT, {2, 4});
  Status shape_only = compileModel(model);
  EXPECT_TRUE(shape_only.isOk()) << shape_only.message();
}

TEST(HostileModelTest, NodeReadingItsOwnOutputIsACycle) {
  onnx::ModelProto model = reluModel();
  auto* graph = model.mutable_graph();
  graph->clear_node();
  addNode(graph, "Add", "loop", {"x", "y"}, {"y"});
  expectMessage(importProto(model), "'test.onnx': graph 'main' has a cycle through node Add 'loop'");
}

TEST(HostileModelTest, OpMissingARequiredAttribute) {
  onnx::ModelProto model = reluModel();
  auto* graph = model.mutable_graph();
  graph->clear_node();
  addNode(graph, "Cast", "cast", {"x"}, {"y"});  // Cast needs 'to'
  auto imported = importProto(model);
  ASSERT_TRUE(imported.isOk()) << imported.status().message();
  expectMessage(passes::inferShapes(**imported), "Cast 'cast' (opset 13): missing required attribute 'to'");
}

// A required input left out (an empty name) is an error naming the node and
// the input, found by inference before lowering reads the input.
TEST(HostileModelTest, RequiredInputLeftOut) {
  onnx::ModelProto model = reluModel();
  auto* graph = model.mutable_graph();
  graph->clear_node();
  addNode(graph, "Add", "add", {"", "x"}, {"y"});
  auto imported = importProto(model);
  ASSERT_TRUE(imported.isOk()) << imported.status().message();
  expectMessage(passes::inferShapes(**imported), "Add 'add': input 0 is required, but the node leaves it out");

  graph->clear_node();
  addNode(graph, "Slice", "slice", {"x", "", "x"}, {"y"});  // Slice-13 needs starts
  imported = importProto(model);
  ASSERT_TRUE(imported.isOk()) << imported.status().message();
  expectMessage(passes::inferShapes(**imported), "Slice 'slice': input 1 is required, but the node leaves it out");
}

// A node that writes nothing is refused before inference folds or lowers it.
TEST(HostileModelTest, NodeWithoutOutputs) {
  for (bool empty_name : {false, true}) {
    onnx::ModelProto model = reluModel();
    auto* graph = model.mutable_graph();
    addNode(graph, "Add", "add", {"x", "x"}, {});
    if (empty_name) graph->mutable_node(1)->add_output("");
    auto imported = importProto(model);
    ASSERT_TRUE(imported.isOk()) << imported.status().message();
    expectMessage(passes::inferShapes(**imported), "Add 'add': the node has no outputs; every op writes at least one");
  }
}

// Every input of every node in the ONNX node tests, left out one at a time:
// each model either compiles (the input was optional) or gets an error, and
// inference and lowering never read the missing value. Before inference
// checked this, 445 such models crashed the compiler; libFuzzer found the
// first one. One model per op and input position keeps the test short.
TEST(HostileModelTest, EachInputLeftOutInTurn) {
  namespace fs = std::filesystem;
  fs::path root = fs::path(KILN_TESTDATA_DIR) / "node";
  if (!fs::exists(root)) GTEST_SKIP() << "no ONNX test data at " << root << " (Debian's libonnx-testdata)";
  std::vector<fs::path> models;
  for (const auto& entry : fs::directory_iterator(root))
    if (fs::exists(entry.path() / "model.onnx")) models.push_back(entry.path() / "model.onnx");
  std::sort(models.begin(), models.end());
  std::set<std::pair<std::string, int>> tried;
  int compiled = 0, refused = 0;
  for (const fs::path& path : models) {
    onnx::ModelProto original;
    ASSERT_TRUE(original.ParseFromString(readFile(path.string()))) << path;
    for (int n = 0; n < original.graph().node_size(); ++n) {
      for (int i = 0; i < original.graph().node(n).input_size(); ++i) {
        if (original.graph().node(n).input(i).empty()) continue;
        if (!tried.insert({original.graph().node(n).op_type(), i}).second) continue;
        onnx::ModelProto model = original;
        model.mutable_graph()->mutable_node(n)->set_input(i, "");
        SCOPED_TRACE(path.string() + ": node " + std::to_string(n) + " input " + std::to_string(i) + " left out");
        auto imported = importProto(model, path.parent_path().string());
        if (!imported) {
          EXPECT_FALSE(imported.status().message().empty());
          ++refused;
          continue;
        }
        std::ostringstream log;
        auto program = driver::buildProgram(**imported, driver::CompileOptions{}, log);
        if (program) {
          ++compiled;
        } else {
          EXPECT_FALSE(program.status().message().empty());
          ++refused;
        }
      }
    }
  }
  std::printf("%zu op/input pairs left out: %d compiled, %d refused\n", tried.size(), compiled, refused);
  EXPECT_GT(refused, compiled) << "most inputs of the node tests are required";
}

// ---- variadic ops ------------------------------------------------------------------

// x: float32[2x3] read `inputs` times by one `op` node 'big' writing y.
onnx::ModelProto variadicModel(const std::string& op, size_t inputs, std::initializer_list<int64_t> y_dims) {
  onnx::ModelProto model = reluModel();
  auto* graph = model.mutable_graph();
  graph->clear_node();
  graph->clear_output();
  auto* node = addNode(graph, op, "big", {}, {"y"});
  for (size_t i = 0; i < inputs; ++i) node->add_input("x");
  setType(graph->add_output(), "y", onnx::TensorProto::FLOAT, y_dims);
  return model;
}

onnx::ModelProto concatModel(size_t inputs) {
  onnx::ModelProto model = variadicModel("Concat", inputs, {2 * static_cast<int64_t>(inputs), 3});
  auto* axis = model.mutable_graph()->mutable_node(0)->add_attribute();
  axis->set_name("axis");
  axis->set_type(onnx::AttributeProto::INT);
  axis->set_i(0);
  return model;
}

// ONNX puts no bound on a variadic op's inputs; Kiln takes ir::kMaxNodeInputs,
// checked for every op where the op table resolves a node. A Sum of 300000
// inputs (a 900 KB file) used to overflow the stack, 10000 took a minute.
TEST(HostileModelTest, SumOfMoreInputsThanTheBound) {
  auto imported = importProto(variadicModel("Sum", ir::kMaxNodeInputs + 1, {2, 3}));
  ASSERT_TRUE(imported.isOk()) << imported.status().message();
  expectMessage(passes::inferShapes(**imported),
                "Sum 'big': has 1025 inputs, more than the 1024 Kiln accepts per node; split it into several nodes");
}

TEST(HostileModelTest, ConcatOfMoreInputsThanTheBound) {
  auto imported = importProto(concatModel(ir::kMaxNodeInputs + 1));
  ASSERT_TRUE(imported.isOk()) << imported.status().message();
  expectMessage(passes::inferShapes(**imported),
                "Concat 'big': has 1025 inputs, more than the 1024 Kiln accepts per node; split it into several nodes");
}

TEST(HostileModelTest, SplitIntoMoreOutputsThanTheBound) {
  onnx::ModelProto model = reluModel();
  auto* graph = model.mutable_graph();
  graph->clear_node();
  auto* split = addNode(graph, "Split", "big", {"x"}, {"y"});
  for (size_t i = 1; i <= ir::kMaxNodeOutputs; ++i) split->add_output("piece" + std::to_string(i));
  auto imported = importProto(model);
  ASSERT_TRUE(imported.isOk()) << imported.status().message();
  expectMessage(passes::inferShapes(**imported),
                "Split 'big': has 1025 outputs, more than the 1024 Kiln accepts per node; split it into several nodes");
}

// Depth of the deepest stage expression, walked with an explicit stack.
size_t deepestExpression(const lower::Program& program) {
  size_t deepest = 0;
  std::vector<std::pair<const kir::ExprNode*, size_t>> pending;
  for (const lower::KernelCall& call : program.calls) {
    for (const kir::Stage& stage : call.kernel.stages) {
      pending.emplace_back(stage.value.node().get(), 1);
      while (!pending.empty()) {
        auto [node, depth] = pending.back();
        pending.pop_back();
        deepest = std::max(deepest, depth);
        for (const kir::Expr& operand : node->operands) pending.emplace_back(operand.node().get(), depth + 1);
      }
    }
  }
  return deepest;
}

// At the bound, the variadic ops lower to shallow expressions: their inputs
// combine pairwise (10 levels for 1024), so the compiler's recursive walks
// over kernel IR need little stack. A left fold was one level per input.
TEST(HostileModelTest, VariadicOpsAtTheBoundLowerToShallowExpressions) {
  onnx::ModelProto einsum = variadicModel("Einsum", ir::kMaxNodeInputs, {2, 3});
  auto* equation = einsum.mutable_graph()->mutable_node(0)->add_attribute();
  equation->set_name("equation");
  equation->set_type(onnx::AttributeProto::STRING);
  std::string terms;
  for (size_t i = 0; i < ir::kMaxNodeInputs; ++i) terms += i ? ",ij" : "ij";
  equation->set_s(terms + "->ij");
  std::vector<std::pair<std::string, onnx::ModelProto>> models = {
      {"Sum", variadicModel("Sum", ir::kMaxNodeInputs, {2, 3})},
      {"Mean", variadicModel("Mean", ir::kMaxNodeInputs, {2, 3})},
      {"Max", variadicModel("Max", ir::kMaxNodeInputs, {2, 3})},
      {"Concat", concatModel(ir::kMaxNodeInputs)},
      {"Einsum", einsum}};
  for (const auto& [op, model] : models) {
    SCOPED_TRACE(op);
    auto imported = importProto(model);
    ASSERT_TRUE(imported.isOk()) << imported.status().message();
    std::ostringstream log;
    auto program = driver::buildProgram(**imported, driver::CompileOptions{}, log);
    ASSERT_TRUE(program.isOk()) << program.status().message();
    EXPECT_LE(deepestExpression(*program), 20u);
  }
}

// `model` compiled and run on x; its one output.
Expected<ir::Tensor> compileAndRun(const onnx::ModelProto& model, const std::vector<float>& x) {
  TempDir dir;
  writeFile(dir.file("model.onnx"), model.SerializeAsString());
  std::ostringstream log;
  KILN_RETURN_IF_ERROR(driver::compileFile(dir.file("model.onnx"), dir.file("model.so"), {}, log).status());
  kiln::Model artifact(dir.file("model.so"));
  kiln::Session session(artifact, 1);
  KILN_ASSIGN_OR_RETURN(
      std::vector<ir::Tensor> outputs,
      tools::runArtifact(artifact, session, {ir::Tensor::fromValues<float>(ir::DType::kFloat32, {2, 3}, x)}));
  return std::move(outputs.at(0));
}

const std::vector<float> kX = {0.5f, -1.25f, 3.0f, 0.0f, -0.75f, 2.5f};

// A Sum of exactly the bound compiles (about a second) and adds right: every
// partial sum of equal terms is a power-of-two multiple of one, so exact.
TEST(HostileModelTest, SumAtTheBoundCompilesAndRuns) {
  auto y = compileAndRun(variadicModel("Sum", ir::kMaxNodeInputs, {2, 3}), kX);
  ASSERT_TRUE(y.isOk()) << y.status().message();
  for (size_t i = 0; i < kX.size(); ++i)
    EXPECT_EQ(y->floatAt(static_cast<int64_t>(i)), static_cast<double>(ir::kMaxNodeInputs) * kX[i]) << i;
}

// A Concat of the bound: 1024 stages, about 3 s (it was minutes at 1000
// before stage functions took only their own buffers).
TEST(HostileModelTest, ConcatAtTheBoundCompilesAndRuns) {
  auto y = compileAndRun(concatModel(ir::kMaxNodeInputs), kX);
  ASSERT_TRUE(y.isOk()) << y.status().message();
  ASSERT_EQ(y->elementCount(), static_cast<int64_t>(ir::kMaxNodeInputs * kX.size()));
  for (int64_t i = 0; i < y->elementCount(); ++i) ASSERT_EQ(y->floatAt(i), kX[i % 6]) << i;
}

// ---- external data -----------------------------------------------------------------

class HostileExternalDataTest : public ::testing::Test {
 protected:
  void SetUp() override { writeFile(dir_.file("weights.bin"), std::string(64, '\x02')); }

  onnx::ModelProto modelWithExternal(const std::string& location, const std::string& offset,
                                     const std::string& length) {
    onnx::ModelProto model = reluModel();
    auto* init = model.mutable_graph()->add_initializer();
    init->set_name("w");
    init->set_data_type(onnx::TensorProto::FLOAT);
    init->add_dims(4);
    init->set_data_location(onnx::TensorProto::EXTERNAL);
    auto add = [&](const std::string& key, const std::string& value) {
      auto* entry = init->add_external_data();
      entry->set_key(key);
      entry->set_value(value);
    };
    add("location", location);
    if (!offset.empty()) add("offset", offset);
    if (!length.empty()) add("length", length);
    return model;
  }

  TempDir dir_;
};

TEST_F(HostileExternalDataTest, OffsetPlusLengthOverflowing) {
  expectMessage(importProto(modelWithExternal("weights.bin", "9223372036854775807", "16"), dir_.path().string()),
                "'test.onnx': initializer 'w': external data offset 9223372036854775807 is past the end of "
                "'weights.bin' (64 bytes)");
}

TEST_F(HostileExternalDataTest, LengthPastTheEnd) {
  expectMessage(importProto(modelWithExternal("weights.bin", "56", "16"), dir_.path().string()),
                "'test.onnx': initializer 'w': external data at offset 56 with length 16 runs past the end of "
                "'weights.bin' (64 bytes)");
}

TEST_F(HostileExternalDataTest, DotDotInTheMiddleOfThePath) {
  expectMessage(importProto(modelWithExternal("a/../../weights.bin", "", "16"), dir_.path().string()),
                "'test.onnx': initializer 'w': external data location 'a/../../weights.bin' leaves the model's folder");
}

TEST_F(HostileExternalDataTest, FolderInsteadOfFile) {
  std::filesystem::create_directory(dir_.file("sub"));
  auto result = importProto(modelWithExternal("sub", "", "16"), dir_.path().string());
  expectMessage(result, "'test.onnx': initializer 'w': '" + dir_.file("sub") + "' is not a regular file");
}

TEST_F(HostileExternalDataTest, FifoDoesNotHang) {
  // A FIFO (which a tar archive can carry) would block open() forever.
  ASSERT_EQ(::mkfifo(dir_.file("pipe").c_str(), 0600), 0);
  auto result = importProto(modelWithExternal("pipe", "", "16"), dir_.path().string());
  expectMessage(result, "'test.onnx': initializer 'w': '" + dir_.file("pipe") + "' is not a regular file");
}

}  // namespace
}  // namespace kiln::testing
