// The ONNX importer on real test models and on hand-built malformed ones.
#include "compiler/onnx/importer.h"

#include <gtest/gtest.h>

#include "compiler/ir/printer.h"
#include "compiler/ir/type_attribute.h"
#include "tests/onnx/onnx_test_util.h"

namespace kiln::testing {
namespace {

std::string testModel(const std::string& suite_and_case) {
  return std::string(KILN_TESTDATA_DIR) + "/" + suite_and_case + "/model.onnx";
}

TEST(ImporterTest, ImportsConvNodeCase) {
  auto model = frontend::importOnnxFile(testModel("node/test_conv_with_strides_padding"));
  ASSERT_TRUE(model.isOk()) << model.status().message();
  const ir::Graph& graph = (*model)->graph;
  EXPECT_EQ((*model)->opsetFor(""), 11);
  ASSERT_EQ(graph.inputs.size(), 2u);
  EXPECT_EQ(graph.inputs[0]->name, "x");
  EXPECT_EQ(graph.inputs[0]->type.toString(), "float32[1x1x7x5]");
  ASSERT_EQ(graph.nodes().size(), 1u);
  const ir::Node& conv = *graph.nodes()[0];
  EXPECT_EQ(conv.op_type, "Conv");
  EXPECT_EQ(conv.name, "Conv_0");  // synthesized: the file leaves it empty
  ASSERT_NE(conv.attribute("strides"), nullptr);
  EXPECT_EQ(conv.attribute("strides")->ints, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(conv.attribute("pads")->kind, ir::Attribute::Kind::kInts);
  ASSERT_EQ(graph.outputs.size(), 1u);
  EXPECT_EQ(graph.outputs[0]->producer, &conv);
  EXPECT_EQ(graph.outputs[0]->type.toString(), "float32[1x1x4x3]");
  EXPECT_TRUE(graph.verify().isOk());
}

// IR version 3: initializers are listed among the inputs too; they must come
// out as constants, not runtime inputs.
TEST(ImporterTest, ImportsPytorchModelWithInitializers) {
  auto model = frontend::importOnnxFile(testModel("pytorch-converted/test_Conv2d"));
  ASSERT_TRUE(model.isOk()) << model.status().message();
  const ir::Graph& graph = (*model)->graph;
  EXPECT_EQ((*model)->ir_version, 3);
  EXPECT_EQ((*model)->producer_name, "pytorch");
  ASSERT_EQ(graph.inputs.size(), 1u);
  EXPECT_EQ(graph.inputs[0]->name, "0");
  const ir::Value* weight = graph.findValue("1");
  ASSERT_NE(weight, nullptr);
  ASSERT_TRUE(weight->isConstant());
  EXPECT_EQ(weight->constant->dtype(), ir::DType::kFloat32);
  EXPECT_EQ(weight->type.shape->size(), 4u);
  EXPECT_EQ(static_cast<int64_t>(weight->constant->bytes().size()), weight->constant->elementCount() * 4);
  const ir::Node& conv = *graph.nodes()[0];
  EXPECT_EQ(conv.inputs[1], weight);
}

TEST(ImporterTest, ImportsIfWithSubgraphs) {
  auto model = frontend::importOnnxFile(testModel("node/test_if"));
  ASSERT_TRUE(model.isOk()) << model.status().message();
  const ir::Node& node = *(*model)->graph.nodes()[0];
  ASSERT_EQ(node.op_type, "If");
  const ir::Attribute* then_branch = node.attribute("then_branch");
  ASSERT_NE(then_branch, nullptr);
  ASSERT_EQ(then_branch->kind, ir::Attribute::Kind::kGraph);
  ASSERT_EQ(then_branch->graphs.size(), 1u);
  const ir::Graph& body = *then_branch->graphs[0];
  EXPECT_EQ(body.parent, &(*model)->graph);
  ASSERT_EQ(body.nodes().size(), 1u);
  EXPECT_EQ(body.nodes()[0]->op_type, "Constant");  // Constant nodes stay nodes
  EXPECT_EQ(body.nodes()[0]->attribute("value")->kind, ir::Attribute::Kind::kTensor);
  EXPECT_EQ(body.outputs[0]->name, "then_out");
}

TEST(ImporterTest, ImportsLoopBody) {
  auto model = frontend::importOnnxFile(testModel("node/test_loop11"));
  ASSERT_TRUE(model.isOk()) << model.status().message();
  const ir::Graph& body = *(*model)->graph.nodes()[0]->attribute("body")->graphs[0];
  EXPECT_EQ(body.inputs.size(), 3u);
  EXPECT_EQ(body.outputs.size(), 3u);
  EXPECT_EQ(body.nodes().size(), 9u);
  EXPECT_TRUE(body.verify().isOk());
}

// A subgraph node reads a value of the enclosing graph by name (not as an
// input of the If node).
TEST(ImporterTest, SubgraphReadsOuterScopeValue) {
  onnx::ModelProto model = reluModel();
  auto* graph = model.mutable_graph();
  setType(graph->add_input(), "cond", onnx::TensorProto::BOOL, {});
  auto* if_node = addNode(graph, "If", "branch", {"cond"}, {"z"});
  setType(graph->add_output(), "z", onnx::TensorProto::FLOAT, {2, 3});
  for (const char* key : {"then_branch", "else_branch"}) {
    auto* attr = if_node->add_attribute();
    attr->set_name(key);
    attr->set_type(onnx::AttributeProto::GRAPH);
    auto* body = attr->mutable_g();
    body->set_name(std::string(key) + "_body");
    addNode(body, "Neg", "neg", {"y"}, {std::string(key) + "_out"});
    setType(body->add_output(), std::string(key) + "_out", onnx::TensorProto::FLOAT, {2, 3});
  }
  auto imported = importProto(model);
  ASSERT_TRUE(imported.isOk()) << imported.status().message();
  const ir::Graph& main = (*imported)->graph;
  const ir::Graph& then_body = *main.nodes()[1]->attribute("then_branch")->graphs[0];
  EXPECT_EQ(then_body.nodes()[0]->inputs[0], main.findValue("y"));
}

TEST(ImporterTest, ReadsModelMetadata) {
  onnx::ModelProto model = reluModel();
  model.set_producer_name("kiln-test");
  model.set_producer_version("1.0");
  model.set_doc_string("a relu");
  auto* extra = model.add_opset_import();
  extra->set_domain("ai.onnx");  // the same default domain, spelled out
  extra->set_version(13);
  auto* ms = model.add_opset_import();
  ms->set_domain("com.microsoft");
  ms->set_version(1);
  auto* prop = model.add_metadata_props();
  prop->set_key("author");
  prop->set_value("me");
  auto imported = importProto(model);
  ASSERT_TRUE(imported.isOk()) << imported.status().message();
  EXPECT_EQ((*imported)->opset_imports.size(), 2u);
  EXPECT_EQ((*imported)->opsetFor(""), 13);
  EXPECT_EQ((*imported)->opsetFor("com.microsoft"), 1);
  EXPECT_EQ((*imported)->producer_version, "1.0");
  EXPECT_EQ((*imported)->doc_string, "a relu");
  EXPECT_EQ((*imported)->metadata.at("author"), "me");
}

TEST(ImporterTest, SymbolicAndUnknownDims) {
  onnx::ModelProto model = reluModel();
  auto* shape = model.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape();
  shape->mutable_dim(0)->set_dim_param("batch");
  shape->mutable_dim(1)->clear_dim_value();
  auto imported = importProto(model);
  ASSERT_TRUE(imported.isOk()) << imported.status().message();
  const ir::Shape& dims = *(*imported)->graph.inputs[0]->type.shape;
  EXPECT_EQ(dims[0], ir::Dim::named("batch"));
  EXPECT_FALSE(dims[1].isKnown());
  EXPECT_TRUE(dims[1].symbol.empty());
  EXPECT_EQ((*imported)->graph.inputs[0]->type.toString(), "float32[batchx?]");
}

TEST(ImporterTest, ValueInfoTypesIntermediateValues) {
  onnx::ModelProto model = reluModel();
  auto* graph = model.mutable_graph();
  graph->mutable_node(0)->set_output(0, "mid");
  addNode(graph, "Neg", "", {"mid"}, {"y"});
  setType(graph->add_value_info(), "mid", onnx::TensorProto::FLOAT, {2, 3});
  setType(graph->add_value_info(), "stale", onnx::TensorProto::FLOAT, {1});  // ignored
  auto imported = importProto(model);
  ASSERT_TRUE(imported.isOk()) << imported.status().message();
  EXPECT_EQ((*imported)->graph.findValue("mid")->type.toString(), "float32[2x3]");
  EXPECT_EQ((*imported)->graph.nodes()[1]->name, "Neg_1");
}

TEST(ImporterTest, EmptyNamesAreOmittedOptionals) {
  onnx::ModelProto model = reluModel();
  auto* graph = model.mutable_graph();
  graph->clear_node();
  addNode(graph, "Clip", "clip", {"x", "", "x"}, {"y"});
  addNode(graph, "Dropout", "drop", {"y"}, {"d", ""});
  auto imported = importProto(model);
  ASSERT_TRUE(imported.isOk()) << imported.status().message();
  const auto& nodes = (*imported)->graph.nodes();
  EXPECT_EQ(nodes[0]->inputs.size(), 3u);
  EXPECT_EQ(nodes[0]->inputs[1], nullptr);
  EXPECT_EQ(nodes[1]->outputs.size(), 2u);
  EXPECT_EQ(nodes[1]->outputs[1], nullptr);
}

TEST(ImporterTest, AttributesOfEveryKind) {
  onnx::ModelProto model = reluModel();
  auto* node = model.mutable_graph()->mutable_node(0);
  auto add = [&](const std::string& name, onnx::AttributeProto::AttributeType type) {
    auto* attr = node->add_attribute();
    attr->set_name(name);
    attr->set_type(type);
    return attr;
  };
  add("i", onnx::AttributeProto::INT)->set_i(7);
  add("f", onnx::AttributeProto::FLOAT)->set_f(0.5f);
  add("s", onnx::AttributeProto::STRING)->set_s("same");
  auto* ints = add("ints", onnx::AttributeProto::INTS);
  ints->add_ints(1);
  ints->add_ints(-2);
  auto* floats = add("floats", onnx::AttributeProto::FLOATS);
  floats->add_floats(1.5f);
  auto* strings = add("strings", onnx::AttributeProto::STRINGS);
  strings->add_strings("a");
  strings->add_strings("b");
  auto* t = add("t", onnx::AttributeProto::TENSOR)->mutable_t();
  t->set_data_type(onnx::TensorProto::INT64);
  t->add_int64_data(42);
  auto* tensors = add("tensors", onnx::AttributeProto::TENSORS);
  for (int i = 0; i < 2; ++i) {
    auto* each = tensors->add_tensors();
    each->set_data_type(onnx::TensorProto::FLOAT);
    each->add_dims(1);
    each->add_float_data(static_cast<float>(i));
  }
  auto* sparse = add("sparse", onnx::AttributeProto::SPARSE_TENSOR)->mutable_sparse_tensor();
  sparse->add_dims(4);
  sparse->mutable_values()->set_data_type(onnx::TensorProto::FLOAT);
  sparse->mutable_values()->add_dims(1);
  sparse->mutable_values()->add_float_data(9.0f);
  sparse->mutable_indices()->set_data_type(onnx::TensorProto::INT64);
  sparse->mutable_indices()->add_dims(1);
  sparse->mutable_indices()->add_int64_data(2);
  auto* graphs = add("graphs", onnx::AttributeProto::GRAPHS);
  for (int i = 0; i < 2; ++i) {
    auto* g = graphs->add_graphs();
    g->set_name("g" + std::to_string(i));
    setType(g->add_input(), "in" + std::to_string(i), onnx::TensorProto::FLOAT, {1});
    g->add_output()->set_name("in" + std::to_string(i));
  }
  // A type (Optional's 'type'): a sequence of float32[5 x ?].
  auto* tp = add("tp", onnx::AttributeProto::TYPE_PROTO)->mutable_tp();
  auto* element = tp->mutable_sequence_type()->mutable_elem_type()->mutable_tensor_type();
  element->set_elem_type(onnx::TensorProto::FLOAT);
  element->mutable_shape()->add_dim()->set_dim_value(5);
  element->mutable_shape()->add_dim()->set_dim_param("n");
  // Before IR version 2 attributes had no type field.
  auto* untyped = node->add_attribute();
  untyped->set_name("legacy");
  untyped->set_f(2.0f);

  auto imported = importProto(model);
  ASSERT_TRUE(imported.isOk()) << imported.status().message();
  const ir::Node& relu = *(*imported)->graph.nodes()[0];
  using Kind = ir::Attribute::Kind;
  EXPECT_EQ(relu.attribute("i")->i, 7);
  EXPECT_EQ(relu.attribute("f")->f, 0.5f);
  EXPECT_EQ(relu.attribute("s")->s, "same");
  EXPECT_EQ(relu.attribute("ints")->ints, (std::vector<int64_t>{1, -2}));
  EXPECT_EQ(relu.attribute("floats")->floats, (std::vector<float>{1.5f}));
  EXPECT_EQ(relu.attribute("strings")->strings, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(relu.attribute("t")->t.intAt(0), 42);
  EXPECT_EQ(relu.attribute("tensors")->tensors.size(), 2u);
  EXPECT_EQ(relu.attribute("tensors")->tensors[1].floatAt(0), 1.0);
  const ir::Attribute* dense = relu.attribute("sparse");
  EXPECT_EQ(dense->kind, Kind::kTensor);
  EXPECT_EQ(dense->t.dims(), (std::vector<int64_t>{4}));
  EXPECT_EQ(dense->t.floatAt(2), 9.0);
  EXPECT_EQ(dense->t.floatAt(0), 0.0);
  EXPECT_EQ(relu.attribute("graphs")->kind, Kind::kGraphs);
  EXPECT_EQ(relu.attribute("graphs")->graphs.size(), 2u);
  EXPECT_EQ(relu.attribute("graphs")->graphs[1]->name, "g1");
  EXPECT_EQ(relu.attribute("legacy")->kind, Kind::kFloat);
  std::optional<ir::TensorType> type = ir::decodeTypeAttribute(relu.attribute("tp")->ints);
  ASSERT_TRUE(type.has_value());
  EXPECT_EQ(type->kind, ir::ValueKind::kSequence);
  EXPECT_EQ(type->dtype, ir::DType::kFloat32);
  ASSERT_TRUE(type->shape.has_value());
  ASSERT_EQ(type->shape->size(), 2u);
  EXPECT_EQ((*type->shape)[0], ir::Dim::known(5));
  EXPECT_FALSE((*type->shape)[1].isKnown());
}

// ---- errors that name the culprit -------------------------------------

TEST(ImporterErrorTest, UnparsableFile) {
  std::string junk = "this is not a protobuf \xff\xff\xff\xff";
  auto result = frontend::importOnnxBytes(asBytes(junk), "", "x.onnx");
  expectError(result, {"'x.onnx' is not a valid ONNX model"});
}

TEST(ImporterErrorTest, MissingFile) {
  expectError(frontend::importOnnxFile("/nonexistent/model.onnx"), {"/nonexistent/model.onnx"});
}

TEST(ImporterErrorTest, MissingGraph) {
  onnx::ModelProto model = reluModel();
  model.clear_graph();
  expectError(importProto(model), {"test.onnx", "no graph"});
}

TEST(ImporterErrorTest, InputThatNothingProduces) {
  onnx::ModelProto model = reluModel();
  addNode(model.mutable_graph(), "Conv", "conv1", {"y", "w"}, {"z"});
  expectError(importProto(model), {"test.onnx", "node Conv 'conv1' reads 'w', which nothing produces"});
}

TEST(ImporterErrorTest, DuplicateValueName) {
  onnx::ModelProto model = reluModel();
  addNode(model.mutable_graph(), "Neg", "neg", {"x"}, {"y"});
  expectError(importProto(model), {"'y' twice", "Relu 'relu'", "Neg 'neg'"});
}

TEST(ImporterErrorTest, OutputThatNothingProduces) {
  onnx::ModelProto model = reluModel();
  setType(model.mutable_graph()->add_output(), "ghost", onnx::TensorProto::FLOAT, {1});
  expectError(importProto(model), {"output 'ghost' is produced by nothing"});
}

TEST(ImporterErrorTest, Cycle) {
  onnx::ModelProto model = reluModel();
  auto* graph = model.mutable_graph();
  graph->clear_node();
  addNode(graph, "Add", "a", {"x", "b_out"}, {"a_out"});
  addNode(graph, "Relu", "b", {"a_out"}, {"b_out"});
  addNode(graph, "Relu", "c", {"a_out"}, {"y"});
  expectError(importProto(model), {"cycle", "node"});
}

TEST(ImporterErrorTest, NodesOutOfOrderAreSorted) {
  onnx::ModelProto model = reluModel();
  auto* graph = model.mutable_graph();
  graph->clear_node();
  addNode(graph, "Neg", "second", {"mid"}, {"y"});
  addNode(graph, "Relu", "first", {"x"}, {"mid"});
  auto imported = importProto(model);
  ASSERT_TRUE(imported.isOk()) << imported.status().message();
  EXPECT_EQ((*imported)->graph.nodes()[0]->name, "first");
}

TEST(ImporterErrorTest, UnknownDataType) {
  onnx::ModelProto model = reluModel();
  auto* init = model.mutable_graph()->add_initializer();
  init->set_name("w");
  init->set_data_type(onnx::TensorProto::COMPLEX64);
  init->add_dims(1);
  init->set_raw_data(std::string(8, '\0'));
  expectError(importProto(model), {"initializer 'w'", "COMPLEX64"});
}

TEST(ImporterErrorTest, ElementCountOverflow) {
  onnx::ModelProto model = reluModel();
  auto* init = model.mutable_graph()->add_initializer();
  init->set_name("huge");
  init->set_data_type(onnx::TensorProto::FLOAT);
  for (int i = 0; i < 4; ++i) init->add_dims(int64_t{1} << 20);
  expectError(importProto(model), {"initializer 'huge'", "overflow"});
}

TEST(ImporterErrorTest, DataLengthDisagreesWithShape) {
  onnx::ModelProto model = reluModel();
  auto* init = model.mutable_graph()->add_initializer();
  init->set_name("w");
  init->set_data_type(onnx::TensorProto::FLOAT);
  init->add_dims(3);
  init->set_raw_data(std::string(8, '\0'));
  expectError(importProto(model), {"initializer 'w'", "8 bytes", "needs 12"});
}

TEST(ImporterErrorTest, NonTensorGraphInput) {
  onnx::ModelProto model = reluModel();
  auto* input = model.mutable_graph()->add_input();
  input->set_name("m");
  input->mutable_type()->mutable_map_type()->set_key_type(onnx::TensorProto::INT64);
  expectError(importProto(model), {"graph input 'm' is a map", "sequences of tensors and optionals"});
}

TEST(ImporterErrorTest, SequenceOfSequencesGraphInput) {
  onnx::ModelProto model = reluModel();
  auto* input = model.mutable_graph()->add_input();
  input->set_name("seqs");
  input->mutable_type()->mutable_sequence_type()->mutable_elem_type()->mutable_sequence_type();
  expectError(importProto(model), {"graph input 'seqs' is a sequence of non-tensors"});
}

TEST(ImporterErrorTest, ErrorInsideSubgraphNamesTheNode) {
  onnx::ModelProto model = reluModel();
  auto* if_node = addNode(model.mutable_graph(), "If", "branch", {"x"}, {"z"});
  auto* attr = if_node->add_attribute();
  attr->set_name("then_branch");
  attr->set_type(onnx::AttributeProto::GRAPH);
  addNode(attr->mutable_g(), "Neg", "inner", {"nowhere"}, {"o"});
  expectError(importProto(model), {"If 'branch'", "then_branch", "Neg 'inner' reads 'nowhere'"});
}

}  // namespace
}  // namespace kiln::testing
