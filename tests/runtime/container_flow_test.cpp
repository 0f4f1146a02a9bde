// Sequences known only at run time inside the model: SequenceAt and
// SequenceErase at run-time positions, sequences carried through Loop
// iterations and returned by If branches; SequenceMap (rewritten as its
// Loop) is refused for now. Each model is compiled once and run through the C API at
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
// element i by SequenceAt; SequenceAt inside a loop body is not compiled
// yet, and the refusal names the node.
TEST(SequenceMapAtRunTime, RefusedNamingTheNode) {
  TempDir dir;
  std::string onnx_path = dir.file("map.onnx");
  testing::writeFile(onnx_path, sequenceMapModel().SerializeAsString());
  std::ostringstream log;
  auto summary = driver::compileFile(onnx_path, dir.file("map.so"), driver::CompileOptions{}, log);
  ASSERT_FALSE(summary.isOk());
  EXPECT_EQ(summary.status().kind(), ErrorKind::kUnsupported);
  EXPECT_THAT(summary.status().message(), HasSubstr("Loop 'map'"));
  EXPECT_THAT(summary.status().message(), HasSubstr("SequenceAt"));
}

}  // namespace
}  // namespace kiln
