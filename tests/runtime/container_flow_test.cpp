// Sequences known only at run time inside the model: SequenceAt and
// SequenceErase at run-time positions, sequences carried through Loop
// iterations and returned by If branches, SequenceMap (rewritten as its
// Loop). Each model is compiled once and run through the C API at
// several lengths and element shapes; expectations are computed here from
// the inputs.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>

#include "tests/runtime/container_values.h"

namespace kiln {
namespace {

using ::testing::HasSubstr;
using testing::addNode;
using testing::TempDir;
using namespace testing::containers;

onnx::GraphProto* addGraphAttribute(onnx::NodeProto* node, const std::string& name) {
  auto* attr = node->add_attribute();
  attr->set_name(name);
  attr->set_type(onnx::AttributeProto::GRAPH);
  attr->mutable_g()->set_name(name);
  return attr->mutable_g();
}

void addInt64Constant(onnx::GraphProto* g, const std::string& name, std::vector<int64_t> values, bool scalar) {
  auto* node = addNode(g, "Constant", name, {}, {name});
  auto* attr = node->add_attribute();
  attr->set_name("value");
  attr->set_type(onnx::AttributeProto::TENSOR);
  auto* t = attr->mutable_t();
  t->set_data_type(onnx::TensorProto::INT64);
  if (!scalar) t->add_dims(static_cast<int64_t>(values.size()));
  for (int64_t v : values) t->add_int64_data(v);
}

void addEmptySequence(onnx::GraphProto* g, const std::string& name) {
  auto* node = addNode(g, "SequenceEmpty", name, {}, {name});
  auto* dtype = node->add_attribute();
  dtype->set_name("dtype");
  dtype->set_type(onnx::AttributeProto::INT);
  dtype->set_i(onnx::TensorProto::FLOAT);
}

std::vector<int64_t> dimsOf(const kiln_tensor& t) { return std::vector<int64_t>(t.dims, t.dims + t.rank); }

// A host tensor with its dims, to build inputs from and compare outputs with.
struct HostTensor {
  std::vector<float> values;
  std::vector<int64_t> dims;
};

HostTensor randomTensor(std::mt19937& rng, std::vector<int64_t> dims) {
  int64_t count = 1;
  for (int64_t d : dims) count *= d;
  std::uniform_real_distribution<float> value(-4, 4);
  HostTensor t{std::vector<float>(static_cast<size_t>(count)), std::move(dims)};
  for (float& v : t.values) v = value(rng);
  return t;
}

std::vector<kiln_tensor> views(const std::vector<HostTensor>& tensors) {
  std::vector<kiln_tensor> out;
  for (const HostTensor& t : tensors) out.push_back(floats(t.values, t.dims));
  return out;
}

void expectSequence(const kiln_value& value, const std::vector<HostTensor>& want, const std::string& what) {
  ASSERT_EQ(value.kind, KILN_KIND_SEQUENCE) << what;
  ASSERT_EQ(value.count, want.size()) << what;
  for (size_t e = 0; e < want.size(); ++e) {
    EXPECT_EQ(dimsOf(value.elements[e]), want[e].dims) << what << " element " << e;
    EXPECT_EQ(floatsOf(value.elements[e]), want[e].values) << what << " element " << e;
  }
}

// seq: sequence of float32[A x B], pos: int64 scalar. at = SequenceAt(seq,
// pos), rest = SequenceErase(seq, pos), n = SequenceLength(rest),
// popped = SequenceErase(seq) (the last element removed).
onnx::ModelProto atEraseModel() {
  onnx::ModelProto model = emptyModel(11);
  auto* g = model.mutable_graph();
  addSequence(g->add_input(), "seq", {"A", "B"}, true);
  addTensor(g->add_input(), "pos", onnx::TensorProto::INT64, {});
  addTensor(g->add_output(), "at", onnx::TensorProto::FLOAT, {"A", "B"});
  addSequence(g->add_output(), "rest", {}, false);
  addTensor(g->add_output(), "n", onnx::TensorProto::INT64, {});
  addSequence(g->add_output(), "popped", {}, false);
  addNode(g, "SequenceAt", "at", {"seq", "pos"}, {"at"});
  addNode(g, "SequenceErase", "erase", {"seq", "pos"}, {"rest"});
  addNode(g, "SequenceLength", "length", {"rest"}, {"n"});
  addNode(g, "SequenceErase", "pop", {"seq"}, {"popped"});
  return model;
}

class SequenceAtErase : public ::testing::Test {
 protected:
  TempDir dir_;
  std::unique_ptr<kiln::Model> model_;
  std::unique_ptr<kiln::Session> session_;

  void SetUp() override {
    model_ = std::make_unique<kiln::Model>(compile(dir_, atEraseModel(), "at_erase"));
    session_ = std::make_unique<kiln::Session>(*model_, 1);
  }

  std::string run(const std::vector<HostTensor>& elements, int64_t pos, std::vector<kiln_value>& out) {
    std::vector<kiln_tensor> tensors = views(elements);
    std::vector<kiln_value> in = {sequenceValue(tensors), tensorValue(view(KILN_INT64, {}, &pos, sizeof(pos)))};
    out.assign(4, kiln_value{});
    return runValues(*session_, in, out);
  }
};

TEST_F(SequenceAtErase, RunTimePositionsOverSeveralLengthsAndShapes) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int64_t> dim(1, 4);
  for (int trial = 0; trial < 12; ++trial) {
    const auto n = static_cast<int64_t>(1 + trial % 4);
    std::vector<HostTensor> elements;
    for (int64_t e = 0; e < n; ++e) elements.push_back(randomTensor(rng, {dim(rng), dim(rng)}));
    int64_t pos = std::uniform_int_distribution<int64_t>(-n, n - 1)(rng);
    const auto at = static_cast<size_t>(pos < 0 ? pos + n : pos);
    std::vector<HostTensor> rest = elements, popped = elements;
    rest.erase(rest.begin() + static_cast<std::ptrdiff_t>(at));
    popped.pop_back();
    std::vector<kiln_value> out;
    ASSERT_EQ(run(elements, pos, out), "") << "trial " << trial;
    EXPECT_EQ(dimsOf(out[0].tensor), elements[at].dims) << "trial " << trial << " pos " << pos;
    EXPECT_EQ(floatsOf(out[0].tensor), elements[at].values) << "trial " << trial << " pos " << pos;
    expectSequence(out[1], rest, "rest");
    EXPECT_EQ(*static_cast<const int64_t*>(out[2].tensor.data), n - 1);
    expectSequence(out[3], popped, "popped");
    for (kiln_value& v : out) kiln_value_release(&v);
  }
}

TEST_F(SequenceAtErase, PositionOutOfRangeNamesTheNode) {
  std::mt19937 rng(3);
  std::vector<HostTensor> elements = {randomTensor(rng, {1, 2}), randomTensor(rng, {2, 2})};
  std::vector<kiln_value> out;
  std::string error = run(elements, 2, out);
  EXPECT_THAT(error, HasSubstr("SequenceAt 'at'"));
  EXPECT_THAT(error, HasSubstr("position 2 is out of range for a sequence of 2 elements (input 1 'pos')"));
  EXPECT_THAT(run(elements, -3, out), HasSubstr("position -3 is out of range"));
  // Nothing to take from an empty sequence.
  EXPECT_THAT(run({}, 0, out), HasSubstr("SequenceAt 'at': position 0 is out of range for a sequence of 0 elements"));
}

// x: float32[5], m: int64 scalar. seq = Loop(m) over an empty sequence whose
// body appends x[0 : i+1] (a slice whose size changes every iteration);
// n = SequenceLength(seq).
onnx::ModelProto loopModel() {
  onnx::ModelProto model = emptyModel(13);
  auto* g = model.mutable_graph();
  addTensor(g->add_input(), "x", onnx::TensorProto::FLOAT, {"5"});
  addTensor(g->add_input(), "m", onnx::TensorProto::INT64, {});
  addSequence(g->add_output(), "seq", {}, false);
  addTensor(g->add_output(), "n", onnx::TensorProto::INT64, {});
  addEmptySequence(g, "empty");
  auto* loop = addNode(g, "Loop", "loop", {"m", "", "empty"}, {"seq"});
  addNode(g, "SequenceLength", "length", {"seq"}, {"n"});
  onnx::GraphProto* body = addGraphAttribute(loop, "body");
  addTensor(body->add_input(), "i", onnx::TensorProto::INT64, {});
  addTensor(body->add_input(), "cond_in", onnx::TensorProto::BOOL, {});
  addSequence(body->add_input(), "seq_in", {}, false);
  addTensor(body->add_output(), "cond_out", onnx::TensorProto::BOOL, {});
  addSequence(body->add_output(), "seq_out", {}, false);
  addNode(body, "Identity", "keep_going", {"cond_in"}, {"cond_out"});
  addInt64Constant(body, "one", {1}, true);
  addInt64Constant(body, "start", {0}, false);
  addInt64Constant(body, "axes", {0}, false);
  addNode(body, "Add", "next", {"i", "one"}, {"end_scalar"});
  addNode(body, "Unsqueeze", "to_1d", {"end_scalar", "axes"}, {"end"});
  addNode(body, "Slice", "prefix", {"x", "start", "end"}, {"piece"});
  addNode(body, "SequenceInsert", "append", {"seq_in", "piece"}, {"seq_out"});
  return model;
}

TEST(LoopCarriedSequence, GrowsByOneRunTimeShapedElementPerIteration) {
  TempDir dir;
  kiln::Model model(compile(dir, loopModel(), "loop"));
  kiln::Session session(model, 1);
  std::mt19937 rng(11);
  HostTensor x = randomTensor(rng, {5});
  for (int64_t m : {0, 1, 3, 7}) {
    std::vector<HostTensor> want;
    for (int64_t i = 0; i < m; ++i) {
      int64_t end = std::min<int64_t>(i + 1, 5);
      want.push_back({std::vector<float>(x.values.begin(), x.values.begin() + end), {end}});
    }
    std::vector<kiln_value> in = {tensorValue(floats(x.values, {5})), tensorValue(view(KILN_INT64, {}, &m, 8))};
    std::vector<kiln_value> out(2);
    ASSERT_EQ(runValues(session, in, out), "") << "m = " << m;
    expectSequence(out[0], want, "m = " + std::to_string(m));
    EXPECT_EQ(*static_cast<const int64_t*>(out[1].tensor.data), m);
    for (kiln_value& v : out) kiln_value_release(&v);
  }
}

// cond: bool, x: float32[3]. out = If(cond) then SequenceConstruct(x) else
// SequenceConstruct(x, Neg(x)).
onnx::ModelProto ifModel() {
  onnx::ModelProto model = emptyModel(13);
  auto* g = model.mutable_graph();
  addTensor(g->add_input(), "cond", onnx::TensorProto::BOOL, {});
  addTensor(g->add_input(), "x", onnx::TensorProto::FLOAT, {"3"});
  addSequence(g->add_output(), "out", {}, false);
  auto* node = addNode(g, "If", "choose", {"cond"}, {"out"});
  onnx::GraphProto* then_branch = addGraphAttribute(node, "then_branch");
  addSequence(then_branch->add_output(), "one", {"3"}, true);
  addNode(then_branch, "SequenceConstruct", "construct_one", {"x"}, {"one"});
  onnx::GraphProto* else_branch = addGraphAttribute(node, "else_branch");
  addSequence(else_branch->add_output(), "two", {"3"}, true);
  addNode(else_branch, "Neg", "negate", {"x"}, {"minus_x"});
  addNode(else_branch, "SequenceConstruct", "construct_two", {"x", "minus_x"}, {"two"});
  return model;
}

TEST(IfSequenceOutput, EachBranchReturnsItsOwnSequence) {
  TempDir dir;
  kiln::Model model(compile(dir, ifModel(), "if"));
  kiln::Session session(model, 1);
  std::mt19937 rng(5);
  HostTensor x = randomTensor(rng, {3});
  HostTensor minus_x = x;
  for (float& v : minus_x.values) v = -v;
  for (bool cond : {true, false, true}) {
    std::vector<kiln_value> in = {tensorValue(view(KILN_BOOL, {}, &cond, 1)), tensorValue(floats(x.values, {3}))};
    std::vector<kiln_value> out(1);
    ASSERT_EQ(runValues(session, in, out), "");
    expectSequence(out[0], cond ? std::vector<HostTensor>{x} : std::vector<HostTensor>{x, minus_x},
                   cond ? "then" : "else");
    kiln_value_release(&out[0]);
  }
}

// seq: sequence of float32[N]. squares = SequenceMap(seq) with the body
// Mul(e, e).
onnx::ModelProto sequenceMapModel() {
  onnx::ModelProto model = emptyModel(17);
  auto* g = model.mutable_graph();
  addSequence(g->add_input(), "seq", {"N"}, true);
  addSequence(g->add_output(), "squares", {}, false);
  auto* map = addNode(g, "SequenceMap", "map", {"seq"}, {"squares"});
  onnx::GraphProto* body = addGraphAttribute(map, "body");
  addTensor(body->add_input(), "e", onnx::TensorProto::FLOAT, {"N"});
  addTensor(body->add_output(), "square", onnx::TensorProto::FLOAT, {"N"});
  addNode(body, "Mul", "square", {"e", "e"}, {"square"});
  return model;
}

// SequenceMap over a run-time sequence becomes a Loop whose body takes
// element i by SequenceAt (a run-time-shaped tensor, its size changing from
// one iteration to the next) and appends the body's result.
TEST(SequenceMapAtRunTime, MapsEveryElementOfAnyLengthAndShape) {
  TempDir dir;
  kiln::Model model(compile(dir, sequenceMapModel(), "map"));
  kiln::Session session(model, 1);
  std::mt19937 rng(13);
  std::uniform_int_distribution<int64_t> size(1, 6);
  for (int64_t n : {0, 1, 2, 5}) {
    std::vector<HostTensor> elements, want;
    for (int64_t e = 0; e < n; ++e) {
      elements.push_back(randomTensor(rng, {size(rng)}));
      want.push_back(elements.back());
      for (float& v : want.back().values) v *= v;
    }
    std::vector<kiln_tensor> tensors = views(elements);
    std::vector<kiln_value> in = {sequenceValue(tensors)};
    std::vector<kiln_value> out(1);
    ASSERT_EQ(runValues(session, in, out), "") << "n = " << n;
    expectSequence(out[0], want, "n = " + std::to_string(n));
    kiln_value_release(&out[0]);
  }
}

// seq: sequence of float32[H x W x C]. shapes = SequenceMap(seq) with the
// body Shape(e): Shape of a tensor whose dims are known only at run time.
onnx::ModelProto shapeMapModel() {
  onnx::ModelProto model = emptyModel(17);
  auto* g = model.mutable_graph();
  addSequence(g->add_input(), "seq", {"H", "W", "C"}, true);
  auto* out = g->add_output();
  out->set_name("shapes");
  setTensorType(out->mutable_type()->mutable_sequence_type()->mutable_elem_type()->mutable_tensor_type(),
                onnx::TensorProto::INT64, {"3"});
  auto* map = addNode(g, "SequenceMap", "map", {"seq"}, {"shapes"});
  onnx::GraphProto* body = addGraphAttribute(map, "body");
  addTensor(body->add_input(), "e", onnx::TensorProto::FLOAT, {"H", "W", "C"});
  addTensor(body->add_output(), "shape", onnx::TensorProto::INT64, {"3"});
  addNode(body, "Shape", "shape_of", {"e"}, {"shape"});
  return model;
}

TEST(SequenceMapAtRunTime, ShapeOfEachElement) {
  TempDir dir;
  kiln::Model model(compile(dir, shapeMapModel(), "shapes"));
  kiln::Session session(model, 1);
  std::mt19937 rng(17);
  std::uniform_int_distribution<int64_t> size(1, 4);
  std::vector<HostTensor> elements;
  for (int e = 0; e < 4; ++e) elements.push_back(randomTensor(rng, {size(rng), size(rng), size(rng)}));
  std::vector<kiln_tensor> tensors = views(elements);
  std::vector<kiln_value> in = {sequenceValue(tensors)};
  std::vector<kiln_value> out(1);
  ASSERT_EQ(runValues(session, in, out), "");
  ASSERT_EQ(out[0].kind, KILN_KIND_SEQUENCE);
  ASSERT_EQ(out[0].count, elements.size());
  for (size_t e = 0; e < elements.size(); ++e) {
    const kiln_tensor& shape = out[0].elements[e];
    ASSERT_EQ(shape.dtype, KILN_INT64);
    ASSERT_EQ(dimsOf(shape), std::vector<int64_t>{3});
    auto* dims = static_cast<const int64_t*>(shape.data);
    EXPECT_EQ(std::vector<int64_t>(dims, dims + 3), elements[e].dims) << "element " << e;
  }
  kiln_value_release(&out[0]);
}

// seq: sequence of float32[N], x: float32[N]. sums = SequenceMap(seq, x)
// with the body Add(e, x): x's symbolic dim is read from it at run time.
onnx::ModelProto mapWithTensorModel() {
  onnx::ModelProto model = emptyModel(17);
  auto* g = model.mutable_graph();
  addSequence(g->add_input(), "seq", {"N"}, true);
  addTensor(g->add_input(), "x", onnx::TensorProto::FLOAT, {"N"});
  addSequence(g->add_output(), "sums", {"N"}, true);
  auto* map = addNode(g, "SequenceMap", "map", {"seq", "x"}, {"sums"});
  onnx::GraphProto* body = addGraphAttribute(map, "body");
  addTensor(body->add_input(), "e", onnx::TensorProto::FLOAT, {"N"});
  addTensor(body->add_input(), "t", onnx::TensorProto::FLOAT, {"N"});
  addTensor(body->add_output(), "sum", onnx::TensorProto::FLOAT, {"N"});
  addNode(body, "Add", "add", {"e", "t"}, {"sum"});
  return model;
}

TEST(SequenceMapAtRunTime, TensorInputWithASymbolicDim) {
  TempDir dir;
  kiln::Model model(compile(dir, mapWithTensorModel(), "map_tensor"));
  kiln::Session session(model, 1);
  std::mt19937 rng(23);
  for (int64_t size : {1, 3, 6}) {
    HostTensor x = randomTensor(rng, {size});
    std::vector<HostTensor> elements, want;
    for (int e = 0; e < 3; ++e) {
      elements.push_back(randomTensor(rng, {size}));
      want.push_back(elements.back());
      for (size_t k = 0; k < x.values.size(); ++k) want.back().values[k] += x.values[k];
    }
    std::vector<kiln_tensor> tensors = views(elements);
    std::vector<kiln_value> in = {sequenceValue(tensors), tensorValue(floats(x.values, {size}))};
    std::vector<kiln_value> out(1);
    ASSERT_EQ(runValues(session, in, out), "") << "N = " << size;
    expectSequence(out[0], want, "N = " + std::to_string(size));
    kiln_value_release(&out[0]);
  }
}

// cond: bool. out = If(cond) then SequenceConstruct(a) else
// SequenceConstruct(b), a and b constants of the branches.
onnx::ModelProto constantBranchesModel() {
  onnx::ModelProto model = emptyModel(13);
  auto* g = model.mutable_graph();
  addTensor(g->add_input(), "cond", onnx::TensorProto::BOOL, {});
  addSequence(g->add_output(), "out", {}, false);
  auto* node = addNode(g, "If", "choose", {"cond"}, {"out"});
  for (const char* branch : {"then_branch", "else_branch"}) {
    onnx::GraphProto* b = addGraphAttribute(node, branch);
    std::string name = std::string(branch) + "_value";
    auto* constant = addNode(b, "Constant", name, {}, {name});
    auto* attr = constant->add_attribute();
    attr->set_name("value");
    attr->set_type(onnx::AttributeProto::TENSOR);
    attr->mutable_t()->set_data_type(onnx::TensorProto::FLOAT);
    attr->mutable_t()->add_dims(2);
    float first = branch[0] == 't' ? 1.5f : -2.5f;
    attr->mutable_t()->add_float_data(first);
    attr->mutable_t()->add_float_data(first * 2);
    addSequence(b->add_output(), std::string(branch) + "_seq", {"2"}, true);
    addNode(b, "SequenceConstruct", std::string(branch) + "_construct", {name}, {std::string(branch) + "_seq"});
  }
  return model;
}

TEST(IfSequenceOutput, ElementsThatAreConstantsOfTheBranch) {
  TempDir dir;
  kiln::Model model(compile(dir, constantBranchesModel(), "constant_branches"));
  kiln::Session session(model, 1);
  for (bool cond : {true, false}) {
    std::vector<kiln_value> in = {tensorValue(view(KILN_BOOL, {}, &cond, 1))};
    std::vector<kiln_value> out(1);
    ASSERT_EQ(runValues(session, in, out), "");
    HostTensor want = cond ? HostTensor{{1.5f, 3.0f}, {2}} : HostTensor{{-2.5f, -5.0f}, {2}};
    expectSequence(out[0], {want}, cond ? "then" : "else");
    kiln_value_release(&out[0]);
  }
}

void setOptionalSequenceType(onnx::ValueInfoProto* info, const std::string& name) {
  info->set_name(name);
  setTensorType(info->mutable_type()->mutable_optional_type()->mutable_elem_type()->mutable_sequence_type()
                    ->mutable_elem_type()->mutable_tensor_type(),
                onnx::TensorProto::FLOAT, {}, false);
}

// m: int64 scalar, opt: optional sequence of float32. seq = Loop(m) over opt
// whose body starts from SequenceConstruct(0) when the state is empty, its
// element otherwise, and appends float(i): the state enters as an optional
// sequence and leaves as a sequence, so the output is a sequence.
onnx::ModelProto optionalStateModel() {
  onnx::ModelProto model = emptyModel(16);
  auto* g = model.mutable_graph();
  addTensor(g->add_input(), "m", onnx::TensorProto::INT64, {});
  setOptionalSequenceType(g->add_input(), "opt");
  addSequence(g->add_output(), "seq", {}, false);
  auto* loop = addNode(g, "Loop", "loop", {"m", "", "opt"}, {"seq"});
  onnx::GraphProto* body = addGraphAttribute(loop, "body");
  addTensor(body->add_input(), "i", onnx::TensorProto::INT64, {});
  addTensor(body->add_input(), "cond_in", onnx::TensorProto::BOOL, {});
  setOptionalSequenceType(body->add_input(), "opt_in");
  addTensor(body->add_output(), "cond_out", onnx::TensorProto::BOOL, {});
  addSequence(body->add_output(), "seq_out", {}, false);
  addNode(body, "Identity", "keep_going", {"cond_in"}, {"cond_out"});
  addNode(body, "OptionalHasElement", "has", {"opt_in"}, {"has"});
  addNode(body, "Not", "none", {"has"}, {"none"});
  auto* choose = addNode(body, "If", "start", {"none"}, {"start_seq"});
  onnx::GraphProto* then_branch = addGraphAttribute(choose, "then_branch");
  auto* zero = addNode(then_branch, "Constant", "zero", {}, {"zero"});
  auto* value = zero->add_attribute();
  value->set_name("value");
  value->set_type(onnx::AttributeProto::TENSOR);
  value->mutable_t()->set_data_type(onnx::TensorProto::FLOAT);
  value->mutable_t()->add_float_data(0);
  addSequence(then_branch->add_output(), "fresh", {}, false);
  addNode(then_branch, "SequenceConstruct", "construct", {"zero"}, {"fresh"});
  onnx::GraphProto* else_branch = addGraphAttribute(choose, "else_branch");
  addSequence(else_branch->add_output(), "held", {}, false);
  addNode(else_branch, "OptionalGetElement", "get", {"opt_in"}, {"held"});
  auto* cast = addNode(body, "Cast", "to_float", {"i"}, {"fi"});
  auto* to = cast->add_attribute();
  to->set_name("to");
  to->set_type(onnx::AttributeProto::INT);
  to->set_i(onnx::TensorProto::FLOAT);
  addNode(body, "SequenceInsert", "append", {"start_seq", "fi"}, {"seq_out"});
  return model;
}

kiln_value optionalSequenceValue(std::vector<kiln_tensor>* elements) {
  kiln_value v{};
  v.kind = KILN_KIND_OPTIONAL_SEQUENCE;
  v.present = elements ? 1 : 0;
  if (elements) {
    v.count = elements->size();
    v.elements = elements->empty() ? nullptr : elements->data();
  }
  return v;
}

TEST(LoopCarriedOptionalSequence, LeavesTheLoopAsASequence) {
  TempDir dir;
  kiln::Model model(compile(dir, optionalStateModel(), "optional_state"));
  ASSERT_EQ(model.outputKind(0), KILN_KIND_SEQUENCE);
  kiln::Session session(model, 1);
  std::mt19937 rng(19);
  std::vector<HostTensor> held = {randomTensor(rng, {2}), randomTensor(rng, {3})};
  for (bool present : {false, true}) {
    for (int64_t m : {1, 4}) {
      std::vector<HostTensor> want = present ? held : std::vector<HostTensor>{{{0.0f}, {}}};
      for (int64_t i = 0; i < m; ++i) want.push_back({{static_cast<float>(i)}, {}});
      std::vector<kiln_tensor> tensors = views(held);
      std::vector<kiln_value> in = {tensorValue(view(KILN_INT64, {}, &m, 8)),
                                    optionalSequenceValue(present ? &tensors : nullptr)};
      std::vector<kiln_value> out(1);
      std::string what = std::string(present ? "present" : "empty") + ", m = " + std::to_string(m);
      ASSERT_EQ(runValues(session, in, out), "") << what;
      expectSequence(out[0], want, what);
      kiln_value_release(&out[0]);
    }
  }
  // No iteration and no value: there is no sequence to return.
  int64_t m = 0;
  std::vector<kiln_value> in = {tensorValue(view(KILN_INT64, {}, &m, 8)), optionalSequenceValue(nullptr)};
  std::vector<kiln_value> out(1);
  EXPECT_THAT(runValues(session, in, out), HasSubstr("is an empty optional after the loop"));
}

// cond: bool, x: float32[2]. out = If(cond) then Optional() typed by its
// 'type' attribute (a TypeProto: sequence of float32[2]) else
// Optional(SequenceConstruct(x)).
onnx::ModelProto optionalBranchesModel() {
  onnx::ModelProto model = emptyModel(16);
  auto* g = model.mutable_graph();
  addTensor(g->add_input(), "cond", onnx::TensorProto::BOOL, {});
  addTensor(g->add_input(), "x", onnx::TensorProto::FLOAT, {"2"});
  setOptionalSequenceType(g->add_output(), "out");
  auto* node = addNode(g, "If", "choose", {"cond"}, {"out"});
  onnx::GraphProto* then_branch = addGraphAttribute(node, "then_branch");
  setOptionalSequenceType(then_branch->add_output(), "nothing");
  auto* empty = addNode(then_branch, "Optional", "empty", {}, {"nothing"});
  auto* type = empty->add_attribute();
  type->set_name("type");
  type->set_type(onnx::AttributeProto::TYPE_PROTO);
  setTensorType(type->mutable_tp()->mutable_sequence_type()->mutable_elem_type()->mutable_tensor_type(),
                onnx::TensorProto::FLOAT, {"2"});
  onnx::GraphProto* else_branch = addGraphAttribute(node, "else_branch");
  setOptionalSequenceType(else_branch->add_output(), "something");
  addNode(else_branch, "SequenceConstruct", "construct", {"x"}, {"seq"});
  addNode(else_branch, "Optional", "wrap", {"seq"}, {"something"});
  return model;
}

TEST(IfOptionalOutput, EmptyOptionalTypedByItsAttribute) {
  TempDir dir;
  kiln::Model model(compile(dir, optionalBranchesModel(), "optional_branches"));
  kiln::Session session(model, 1);
  std::vector<float> x = {0.25f, -7.0f};
  for (bool cond : {true, false, true}) {
    std::vector<kiln_value> in = {tensorValue(view(KILN_BOOL, {}, &cond, 1)), tensorValue(floats(x, {2}))};
    std::vector<kiln_value> out(1);
    ASSERT_EQ(runValues(session, in, out), "");
    ASSERT_EQ(out[0].kind, KILN_KIND_OPTIONAL_SEQUENCE);
    EXPECT_EQ(out[0].present, cond ? 0 : 1);
    if (!cond) {
      ASSERT_EQ(out[0].count, 1u);
      EXPECT_EQ(floatsOf(out[0].elements[0]), x);
    }
    kiln_value_release(&out[0]);
  }
}

}  // namespace
}  // namespace kiln
