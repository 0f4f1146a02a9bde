// Sequences and optionals at the graph boundary, end to end: models whose
// inputs and outputs are containers compiled once and run through the C API
// (kiln_session_run_values) at several sequence lengths and element shapes,
// with the C API's checks of what a caller passes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <numeric>
#include <sstream>

#include "tests/runtime/container_values.h"

namespace kiln {
namespace {

using ::testing::HasSubstr;
using testing::addNode;
using testing::TempDir;
using namespace testing::containers;

// seq: sequence of float32 tensors of any shape, t: float32[3], pos: int64
// scalar. out = SequenceInsert(seq, t, pos), n = SequenceLength(out),
// same = Identity(seq).
onnx::ModelProto insertModel(bool rank_known) {
  onnx::ModelProto model = emptyModel(16);  // Identity takes sequences from opset 14
  auto* g = model.mutable_graph();
  addSequence(g->add_input(), "seq", {"N"}, rank_known);
  addTensor(g->add_input(), "t", onnx::TensorProto::FLOAT, {"3"});
  addTensor(g->add_input(), "pos", onnx::TensorProto::INT64, {});
  addSequence(g->add_output(), "out", {}, false);
  addTensor(g->add_output(), "n", onnx::TensorProto::INT64, {});
  addSequence(g->add_output(), "same", {}, false);
  addNode(g, "SequenceInsert", "insert", {"seq", "t", "pos"}, {"out"});
  addNode(g, "SequenceLength", "length", {"out"}, {"n"});
  addNode(g, "Identity", "copy", {"seq"}, {"same"});
  return model;
}

// opt: optional float32[4]. has = OptionalHasElement(opt); with `get`,
// also value = OptionalGetElement(opt).
onnx::ModelProto optionalModel(bool get) {
  onnx::ModelProto model = emptyModel(15);
  auto* g = model.mutable_graph();
  auto* in = g->add_input();
  in->set_name("opt");
  setTensorType(in->mutable_type()->mutable_optional_type()->mutable_elem_type()->mutable_tensor_type(),
                onnx::TensorProto::FLOAT, {"4"});
  addTensor(g->add_output(), "has", onnx::TensorProto::BOOL, {});
  addNode(g, "OptionalHasElement", "has_element", {"opt"}, {"has"});
  if (get) {
    addTensor(g->add_output(), "value", onnx::TensorProto::FLOAT, {"4"});
    addNode(g, "OptionalGetElement", "get_element", {"opt"}, {"value"});
  }
  return model;
}

class SequenceInsertRun : public ::testing::Test {
 protected:
  TempDir dir_;
  std::unique_ptr<kiln::Model> model_;
  std::unique_ptr<kiln::Session> session_;
  std::vector<float> t_ = {7, 8, 9};

  void SetUp() override {
    model_ = std::make_unique<kiln::Model>(compile(dir_, insertModel(false), "insert"));
    session_ = std::make_unique<kiln::Session>(*model_, 1);
  }

  // Inserts t at `pos` into `elements`; out holds out, n and same.
  std::string run(std::vector<kiln_tensor>& elements, int64_t pos, std::vector<kiln_value>& out) {
    std::vector<kiln_value> in = {sequenceValue(elements), tensorValue(floats(t_, {3})),
                                  tensorValue(view(KILN_INT64, {}, &pos, sizeof(pos)))};
    out.assign(3, kiln_value{});
    return runValues(*session_, in, out);
  }
};

TEST_F(SequenceInsertRun, DescribesItsContainers) {
  EXPECT_EQ(model_->inputKind(0), KILN_KIND_SEQUENCE);
  EXPECT_EQ(model_->inputKind(1), KILN_KIND_TENSOR);
  EXPECT_EQ(model_->outputKind(0), KILN_KIND_SEQUENCE);
  EXPECT_EQ(model_->outputKind(1), KILN_KIND_TENSOR);
  EXPECT_EQ(kiln_model_input_kind(model_->get(), 3), -1);
}

TEST_F(SequenceInsertRun, OneArtifactRunsSeveralLengthsAndElementShapes) {
  std::vector<float> a = {1, 2, 3, 4, 5, 6}, b = {10}, c = {-1, -2};
  struct Case {
    std::vector<kiln_tensor> elements;
    int64_t pos;
    std::vector<std::vector<float>> want;
    std::vector<std::vector<int64_t>> want_dims;
  };
  std::vector<Case> cases = {
      {{}, 0, {t_}, {{3}}},
      {{floats(a, {2, 3})}, 1, {a, t_}, {{2, 3}, {3}}},
      {{floats(a, {2, 3}), floats(b, {}), floats(c, {1, 1, 2})}, -1, {a, b, t_, c}, {{2, 3}, {}, {3}, {1, 1, 2}}},
      {{floats(b, {1}), floats(c, {2})}, 0, {t_, b, c}, {{3}, {1}, {2}}},
  };
  for (Case& k : cases) {
    std::vector<kiln_value> out;
    ASSERT_EQ(run(k.elements, k.pos, out), "");
    ASSERT_EQ(out[0].kind, KILN_KIND_SEQUENCE);
    ASSERT_EQ(out[0].count, k.want.size());
    for (size_t e = 0; e < k.want.size(); ++e) {
      EXPECT_EQ(floatsOf(out[0].elements[e]), k.want[e]) << "element " << e;
      EXPECT_EQ(std::vector<int64_t>(out[0].elements[e].dims, out[0].elements[e].dims + out[0].elements[e].rank),
                k.want_dims[e]);
    }
    EXPECT_EQ(*static_cast<const int64_t*>(out[1].tensor.data), static_cast<int64_t>(k.want.size()));
    ASSERT_EQ(out[2].count, k.elements.size());  // Identity: the input sequence, copied out
    for (size_t e = 0; e < k.elements.size(); ++e) {
      EXPECT_EQ(floatsOf(out[2].elements[e]), floatsOf(k.elements[e]));
      EXPECT_NE(out[2].elements[e].data, k.elements[e].data);
    }
    for (kiln_value& v : out) kiln_value_release(&v);
  }
}

TEST_F(SequenceInsertRun, PositionOutOfRangeNamesTheNode) {
  std::vector<float> a = {1};
  std::vector<kiln_tensor> elements = {floats(a, {1}), floats(a, {1})};
  std::vector<kiln_value> out;
  EXPECT_EQ(run(elements, 2, out), "");
  for (kiln_value& v : out) kiln_value_release(&v);
  std::string error = run(elements, 3, out);
  EXPECT_THAT(error, HasSubstr("SequenceInsert 'insert'"));
  EXPECT_THAT(error, HasSubstr("position 3 is out of range for a sequence of 2 elements"));
  EXPECT_THAT(run(elements, -3, out), HasSubstr("position -3 is out of range"));
}

TEST_F(SequenceInsertRun, BadSequencesAreOneLineErrorsNamingInputAndElement) {
  std::vector<float> a = {1, 2};
  std::vector<int32_t> ints = {1, 2};
  int64_t pos = 0;
  auto runWith = [&](kiln_value seq) {
    std::vector<kiln_value> in = {seq, tensorValue(floats(t_, {3})), tensorValue(view(KILN_INT64, {}, &pos, 8))};
    std::vector<kiln_value> out(3);
    return runValues(*session_, in, out);
  };
  kiln_value null_table{};
  null_table.kind = KILN_KIND_SEQUENCE;
  null_table.count = 2;
  EXPECT_EQ(runWith(null_table), "input 0 'seq': elements is NULL for a sequence of 2 elements");
  std::vector<kiln_tensor> wrong_dtype = {floats(a, {2}), view(KILN_INT32, {2}, ints.data(), 8)};
  EXPECT_EQ(runWith(sequenceValue(wrong_dtype)), "input 0 'seq' element 1: dtype int32, expected float32");
  std::vector<kiln_tensor> wrong_bytes = {view(KILN_FLOAT32, {3}, a.data(), 8)};
  EXPECT_EQ(runWith(sequenceValue(wrong_bytes)), "input 0 'seq' element 0: 8 bytes, expected 12");
  std::vector<kiln_tensor> null_data = {view(KILN_FLOAT32, {2}, nullptr, 8)};
  EXPECT_EQ(runWith(sequenceValue(null_data)), "input 0 'seq' element 0: data is NULL");
  EXPECT_EQ(runWith(tensorValue(floats(a, {2}))), "input 0 'seq' is a sequence, got a tensor");
  // Numbers that name no enumerator are refused by value (the C++ enums have
  // a fixed underlying type, so storing them is defined).
  kiln_value bad_kind = sequenceValue(wrong_dtype);
  bad_kind.kind = static_cast<kiln_value_kind>(99);
  EXPECT_EQ(runWith(bad_kind), "input 0 'seq' is a sequence, got kind 99, which names no kiln_value_kind");
  std::vector<kiln_tensor> unknown_dtype = {view(static_cast<kiln_dtype>(99), {2}, a.data(), 8)};
  EXPECT_EQ(runWith(sequenceValue(unknown_dtype)), "input 0 'seq' element 0: dtype unknown, expected float32");
  // The tensor entry point refuses a model with containers, naming the input.
  std::vector<kiln_tensor> in(3), out(3);
  kiln_error* error = nullptr;
  EXPECT_EQ(kiln_session_run(session_->get(), in.data(), 3, out.data(), 3, &error), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(std::string(kiln_error_message(error)),
            "input 0 'seq' is a sequence: run this model with kiln_session_run_values");
  kiln_error_free(error);
}

TEST(SequenceInput, ElementShapeCheckedWhereTheModelDeclaresIt) {
  TempDir dir;
  kiln::Model model(compile(dir, insertModel(true), "ranked"));
  kiln::Session session(model, 1);
  std::vector<float> a = {1, 2, 3, 4}, t = {7, 8, 9};
  int64_t pos = 0;
  std::vector<kiln_tensor> elements = {floats(a, {4}), floats(a, {2, 2})};
  std::vector<kiln_value> in = {sequenceValue(elements), tensorValue(floats(t, {3})),
                                tensorValue(view(KILN_INT64, {}, &pos, 8))};
  std::vector<kiln_value> out(3);
  EXPECT_EQ(runValues(session, in, out), "input 0 'seq' element 1: shape [2x2], expected [N]");
  elements.pop_back();
  in[0] = sequenceValue(elements);
  ASSERT_EQ(runValues(session, in, out), "");
  EXPECT_EQ(out[0].count, 2u);
  for (kiln_value& v : out) kiln_value_release(&v);
}

// x: float32[2], z: float32[3]. out = SequenceConstruct(x, Relu(z),
// Neg(Relu(z))), empty = SequenceEmpty(): tensors the model computes, put
// into a sequence output, outlive the kernels that read them.
onnx::ModelProto constructModel() {
  onnx::ModelProto model = emptyModel(11);
  auto* g = model.mutable_graph();
  addTensor(g->add_input(), "x", onnx::TensorProto::FLOAT, {"2"});
  addTensor(g->add_input(), "z", onnx::TensorProto::FLOAT, {"3"});
  addSequence(g->add_output(), "out", {}, false);
  addSequence(g->add_output(), "empty", {}, false);
  addNode(g, "Relu", "relu", {"z"}, {"r"});
  addNode(g, "Neg", "neg", {"r"}, {"w"});
  addNode(g, "SequenceConstruct", "construct", {"x", "r", "w"}, {"out"});
  auto* empty = addNode(g, "SequenceEmpty", "nothing", {}, {"empty"});
  auto* dtype = empty->add_attribute();
  dtype->set_name("dtype");
  dtype->set_type(onnx::AttributeProto::INT);
  dtype->set_i(onnx::TensorProto::FLOAT);
  return model;
}

TEST(SequenceOutput, ConstructedFromInputsAndComputedTensors) {
  TempDir dir;
  kiln::Model model(compile(dir, constructModel(), "construct"));
  kiln::Session session(model, 1);
  std::vector<float> x = {1, 2}, z = {-1, 0.5f, 3};
  std::vector<kiln_value> in = {tensorValue(floats(x, {2})), tensorValue(floats(z, {3}))}, out(2);
  ASSERT_EQ(runValues(session, in, out), "");
  ASSERT_EQ(out[0].count, 3u);
  EXPECT_EQ(floatsOf(out[0].elements[0]), x);
  EXPECT_EQ(floatsOf(out[0].elements[1]), (std::vector<float>{0, 0.5f, 3}));
  EXPECT_EQ(floatsOf(out[0].elements[2]), (std::vector<float>{-0.0f, -0.5f, -3}));
  EXPECT_EQ(out[0].elements[1].rank, 1);
  EXPECT_EQ(out[0].elements[1].dims[0], 3);
  EXPECT_EQ(out[1].kind, KILN_KIND_SEQUENCE);
  EXPECT_EQ(out[1].count, 0u);
  for (kiln_value& v : out) kiln_value_release(&v);
}

kiln_value optionalValue(const std::vector<float>* values) {
  kiln_value v{};
  v.kind = KILN_KIND_OPTIONAL_TENSOR;
  v.present = values ? 1 : 0;
  if (values) v.tensor = floats(*values, {4});
  return v;
}

TEST(OptionalInput, PresenceIsReadAtRunTime) {
  TempDir dir;
  kiln::Model model(compile(dir, optionalModel(true), "get"));
  EXPECT_EQ(model.inputKind(0), KILN_KIND_OPTIONAL_TENSOR);
  kiln::Session session(model, 1);
  std::vector<float> x = {1, -2, 3, 0.5f};
  std::vector<kiln_value> in = {optionalValue(&x)}, out(2);
  ASSERT_EQ(runValues(session, in, out), "");
  EXPECT_TRUE(*static_cast<const bool*>(out[0].tensor.data));
  EXPECT_EQ(floatsOf(out[1].tensor), x);
  for (kiln_value& v : out) kiln_value_release(&v);
  in = {optionalValue(nullptr)};
  out.assign(2, kiln_value{});
  EXPECT_EQ(runValues(session, in, out), "OptionalGetElement 'get_element': the optional input 'opt' is empty");
}

TEST(OptionalInput, HasElementOfAnEmptyOptional) {
  TempDir dir;
  kiln::Model model(compile(dir, optionalModel(false), "has"));
  kiln::Session session(model, 1);
  std::vector<float> x = {1, 2, 3, 4};
  for (bool present : {false, true, false}) {
    std::vector<kiln_value> in = {optionalValue(present ? &x : nullptr)}, out(1);
    ASSERT_EQ(runValues(session, in, out), "");
    EXPECT_EQ(*static_cast<const bool*>(out[0].tensor.data), present);
    kiln_value_release(&out[0]);
  }
  // A present optional is checked like a tensor.
  std::vector<float> short_x = {1, 2};
  std::vector<kiln_value> in = {optionalValue(&short_x)}, out(1);
  in[0].tensor = floats(short_x, {2});
  EXPECT_EQ(runValues(session, in, out), "input 0 'opt': shape [2], expected [4]");
}

}  // namespace
}  // namespace kiln
