// Hostile ONNX models: each must give one clear error (or, for limits that
// are not errors, a model the compiler handles without blowing up), never a
// crash, a hang, an allocation the file does not justify, or a read outside
// the model's folder. The fuzz targets in tests/fuzz explore the same ground
// at random; these pin the exact errors.
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
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

// ---- graph structure -------------------------------------------------------------

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
