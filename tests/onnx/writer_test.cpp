// Graph IR -> ONNX: import -> write -> import gives the same graph, and what
// is written passes the ONNX checker.
#include "compiler/onnx/writer.h"

#include <gtest/gtest.h>

#include "compiler/ir/printer.h"
#include "tests/onnx/onnx_test_util.h"

namespace kiln::testing {
namespace {

std::unique_ptr<ir::Model> importOrDie(const std::string& path) {
  auto model = frontend::importOnnxFile(path);
  EXPECT_TRUE(model.isOk()) << model.status().message();
  return model.isOk() ? model.take() : nullptr;
}

void expectSameConstants(const ir::Graph& a, const ir::Graph& b) {
  for (const auto& value : a.values()) {
    if (!value->isConstant()) continue;
    const ir::Value* other = b.findValue(value->name);
    ASSERT_NE(other, nullptr) << value->name;
    ASSERT_TRUE(other->isConstant()) << value->name;
    auto x = value->constant->bytes(), y = other->constant->bytes();
    EXPECT_TRUE(x.size() == y.size() && std::equal(x.begin(), x.end(), y.begin())) << value->name;
    EXPECT_EQ(value->constant->strings(), other->constant->strings());
  }
}

void checkWithOnnx(const std::string& path) {
  if (!pythonOnnxAvailable()) {
    std::printf("skipping the ONNX checker: /usr/bin/python3 with onnx is not available\n");
    return;
  }
  std::string command =
      "/usr/bin/python3 -c \"import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]))\" '" + path + "'";
  EXPECT_EQ(std::system(command.c_str()), 0) << "onnx.checker rejected " << path;
}

class RoundTripTest : public ::testing::TestWithParam<std::string> {};

TEST_P(RoundTripTest, ImportWriteImportIsIdentity) {
  std::string source = std::string(KILN_TESTDATA_DIR) + "/" + GetParam() + "/model.onnx";
  auto first = importOrDie(source);
  ASSERT_TRUE(first);
  TempDir dir;
  std::string written = dir.file("model.onnx");
  Status status = frontend::writeOnnxFile(*first, written);
  ASSERT_TRUE(status.isOk()) << status.message();
  auto second = importOrDie(written);
  ASSERT_TRUE(second);
  EXPECT_EQ(ir::printModel(*first), ir::printModel(*second));
  expectSameConstants(first->graph, second->graph);
  checkWithOnnx(written);
}

INSTANTIATE_TEST_SUITE_P(OnnxTestData, RoundTripTest,
                         ::testing::Values("node/test_conv_with_strides_padding", "pytorch-converted/test_Conv2d",
                                           "pytorch-converted/test_BatchNorm2d_eval", "node/test_if",
                                           "node/test_loop11", "node/test_scan9_sum", "node/test_constant",
                                           "node/test_if_opt",  // Optional's TYPE_PROTO 'type', inside a branch
                                           "simple/test_single_relu_model"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return name;
                         });

TEST(WriterTest, RoundTripsSymbolicDimsAttributesAndStrings) {
  onnx::ModelProto model = reluModel();
  auto* graph = model.mutable_graph();
  auto* dims = graph->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape();
  dims->mutable_dim(0)->set_dim_param("batch");
  auto* node = graph->mutable_node(0);
  auto* attr = node->add_attribute();
  attr->set_name("strings");
  attr->set_type(onnx::AttributeProto::STRINGS);
  attr->add_strings("x\"y");
  auto* labels = graph->add_initializer();
  labels->set_name("labels");
  labels->set_data_type(onnx::TensorProto::STRING);
  labels->add_dims(2);
  labels->add_string_data("cat");
  labels->add_string_data("dog");
  auto first = importProto(model);
  ASSERT_TRUE(first.isOk()) << first.status().message();
  auto bytes = frontend::serializeOnnx(**first);
  ASSERT_TRUE(bytes.isOk()) << bytes.status().message();
  auto second = frontend::importOnnxBytes(asBytes(*bytes), "", "written.onnx");
  ASSERT_TRUE(second.isOk()) << second.status().message();
  EXPECT_EQ(ir::printModel(**first), ir::printModel(**second));
  EXPECT_EQ((*second)->graph.inputs[0]->type.toString(), "float32[batchx3]");
}

// Passes create values without names, or with names already taken; the
// writer must still produce a valid model.
TEST(WriterTest, NamesUnnamedAndClashingValues) {
  ir::Model model;
  model.ir_version = 8;
  model.opset_imports[""] = 13;
  ir::Graph& g = model.graph;
  g.name = "main";
  ir::Value* x = g.addValue("x", {ir::DType::kFloat32, ir::makeShape(std::vector<int64_t>{4})});
  g.inputs.push_back(x);
  ir::Node* relu = g.addNode("Relu", "relu");
  ir::Value* anonymous = g.addValue("", x->type);
  relu->inputs = {x};
  relu->outputs = {anonymous};
  anonymous->producer = relu;
  ir::Node* neg = g.addNode("Neg", "neg");
  ir::Value* clash = g.addValue("x", x->type);  // same name as the input
  neg->inputs = {anonymous};
  neg->outputs = {clash};
  clash->producer = neg;
  g.outputs.push_back(clash);

  auto bytes = frontend::serializeOnnx(model);
  ASSERT_TRUE(bytes.isOk()) << bytes.status().message();
  auto back = frontend::importOnnxBytes(asBytes(*bytes), "", "written.onnx");
  ASSERT_TRUE(back.isOk()) << back.status().message();
  EXPECT_EQ((*back)->graph.nodes().size(), 2u);
  TempDir dir;
  writeFile(dir.file("m.onnx"), *bytes);
  checkWithOnnx(dir.file("m.onnx"));
}

TEST(WriterTest, UnwritablePath) {
  ir::Model model;
  expectError(frontend::writeOnnxFile(model, "/nonexistent-dir/x.onnx"), {"/nonexistent-dir/x.onnx"});
}

}  // namespace
}  // namespace kiln::testing
