// String tensors end to end through the C API: compiled Cast, Identity,
// Concat with a string initializer and StringNormalizer; the input checks
// (NULL, invalid UTF-8) and the ownership rule for string outputs. Also the
// inputs read only for their dtype (CastLike's target) and Dropout whose
// training_mode is a run-time input.
#include <cmath>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "compiler/driver/compile.h"
#include "kiln_runtime.hpp"
#include "tests/onnx/onnx_test_util.h"

namespace kiln {
namespace {

using testing::addNode;
using testing::setType;
using testing::TempDir;

onnx::ModelProto emptyModel(int64_t opset) {
  onnx::ModelProto model;
  model.set_ir_version(8);
  auto* o = model.add_opset_import();
  o->set_domain("");
  o->set_version(opset);
  model.mutable_graph()->set_name("main");
  return model;
}

std::string compileModel(const TempDir& dir, const onnx::ModelProto& model, const std::string& name) {
  std::string onnx_path = dir.file(name + ".onnx"), so_path = dir.file(name + ".so");
  testing::writeFile(onnx_path, model.SerializeAsString());
  std::ostringstream log;
  auto summary = driver::compileFile(onnx_path, so_path, {}, log);
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

kiln_tensor stringView(std::vector<int64_t> dims, const std::vector<const char*>& strings) {
  return view(KILN_STRING, std::move(dims), strings.data(), strings.size() * sizeof(const char*));
}

std::vector<std::string> stringsOf(const kiln_tensor& t) {
  auto* p = static_cast<const char* const*>(t.data);
  return std::vector<std::string>(p, p + t.bytes / sizeof(const char*));
}

// The message of the kiln::Error `body` throws, or "" when it succeeds.
template <typename Body>
std::string errorOf(Body&& body) {
  try {
    body();
  } catch (const kiln::Error& e) {
    return e.what();
  }
  return "";
}

void setStringAttr(onnx::NodeProto* node, const std::string& name, const std::string& value) {
  auto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s(value);
}

void setIntAttr(onnx::NodeProto* node, const std::string& name, int64_t value) {
  auto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(value);
}

// x: float32[4] -> Cast to string (xs); s: string[3] -> Cast to float (sf)
// and Identity (copy); Concat(s, initializer ["k1", "k2"]) (joined).
onnx::ModelProto castModel() {
  onnx::ModelProto model = emptyModel(13);
  auto* g = model.mutable_graph();
  setType(g->add_input(), "x", onnx::TensorProto::FLOAT, {4});
  setType(g->add_input(), "s", onnx::TensorProto::STRING, {3});
  setType(g->add_output(), "xs", onnx::TensorProto::STRING, {4});
  setType(g->add_output(), "sf", onnx::TensorProto::FLOAT, {3});
  setType(g->add_output(), "copy", onnx::TensorProto::STRING, {3});
  setType(g->add_output(), "joined", onnx::TensorProto::STRING, {5});
  auto* k = g->add_initializer();
  k->set_name("k");
  k->set_data_type(onnx::TensorProto::STRING);
  k->add_dims(2);
  k->add_string_data("k1");
  k->add_string_data("k\xC3\xA9");
  setIntAttr(addNode(g, "Cast", "to_string", {"x"}, {"xs"}), "to", onnx::TensorProto::STRING);
  setIntAttr(addNode(g, "Cast", "to_float", {"s"}, {"sf"}), "to", onnx::TensorProto::FLOAT);
  addNode(g, "Identity", "copy", {"s"}, {"copy"});
  setIntAttr(addNode(g, "Concat", "join", {"s", "k"}, {"joined"}), "axis", 0);
  return model;
}

TEST(StringRuntime, CastIdentityAndConstantsRoundTrip) {
  TempDir dir;
  kiln::Model model(compileModel(dir, castModel(), "cast").c_str());
  EXPECT_EQ(model.input(1).dtype, KILN_STRING);
  EXPECT_EQ(kiln_dtype_size(KILN_STRING), sizeof(const char*));
  kiln::Session session(model);
  std::vector<float> x = {0.5f, -2.25f, 1e-5f, 100.0f};
  std::vector<const char*> s = {"1.5", "+INF", "-3e2"};
  std::vector<kiln_tensor> in = {view(KILN_FLOAT32, {4}, x.data(), x.size() * 4), stringView({3}, s)};
  std::vector<kiln_tensor> out(4);
  session.run(in, out);
  EXPECT_EQ(stringsOf(out[0]), (std::vector<std::string>{"0.5", "-2.25", "1e-05", "100.0"}));
  auto* sf = static_cast<const float*>(out[1].data);
  EXPECT_EQ(sf[0], 1.5f);
  EXPECT_TRUE(std::isinf(sf[1]) && sf[1] > 0);
  EXPECT_EQ(sf[2], -300.0f);
  EXPECT_EQ(stringsOf(out[2]), (std::vector<std::string>{"1.5", "+INF", "-3e2"}));
  EXPECT_EQ(stringsOf(out[3]), (std::vector<std::string>{"1.5", "+INF", "-3e2", "k1", "k\xC3\xA9"}));
  EXPECT_EQ(out[3].rank, 1);
  EXPECT_EQ(out[3].dims[0], 5);
  // The copy is the caller's own block: no pointer into the inputs survives the run.
  auto* copied = static_cast<const char* const*>(out[2].data);
  for (size_t i = 0; i < s.size(); ++i) EXPECT_NE(copied[i], s[i]);
  for (kiln_tensor& t : out) kiln_free(t.data);
}

TEST(StringRuntime, BadStringInputsAreRefusedNamingTheInput) {
  TempDir dir;
  kiln::Model model(compileModel(dir, castModel(), "cast").c_str());
  kiln::Session session(model);
  std::vector<float> x(4, 1.0f);
  std::vector<const char*> with_null = {"1", nullptr, "3"};
  std::vector<const char*> bad_utf8 = {"1", "2", "\xC3("};
  for (auto [strings, message] : {std::pair{&with_null, "input 1 's': string 1 is NULL"},
                                  std::pair{&bad_utf8, "input 1 's': string 2 is not valid UTF-8"}}) {
    std::vector<kiln_tensor> in = {view(KILN_FLOAT32, {4}, x.data(), 16), stringView({3}, *strings)};
    std::vector<kiln_tensor> out(4);
    EXPECT_EQ(errorOf([&] { session.run(in, out); }), message);
    for (kiln_tensor& t : out) EXPECT_EQ(t.data, nullptr);
  }
  // A caller buffer for a string output would leave its strings without an owner.
  std::vector<const char*> s = {"1", "2", "3"};
  std::vector<kiln_tensor> in = {view(KILN_FLOAT32, {4}, x.data(), 16), stringView({3}, s)};
  std::vector<const char*> buffer(4);
  std::vector<kiln_tensor> out(4);
  out[0].data = buffer.data();
  out[0].bytes = buffer.size() * sizeof(const char*);
  EXPECT_NE(errorOf([&] { session.run(in, out); }).find("output 0 'xs': string outputs are allocated by the run"),
            std::string::npos);
}

onnx::ModelProto normalizerModel() {
  onnx::ModelProto model = emptyModel(10);
  auto* g = model.mutable_graph();
  setType(g->add_input(), "x", onnx::TensorProto::STRING, {4});
  setType(g->add_output(), "y", onnx::TensorProto::STRING, {3});
  auto* n = addNode(g, "StringNormalizer", "norm", {"x"}, {"y"});
  setStringAttr(n, "case_change_action", "UPPER");
  auto* stop = n->add_attribute();
  stop->set_name("stopwords");
  stop->set_type(onnx::AttributeProto::STRINGS);
  stop->add_strings("monday");
  return model;
}

TEST(StringRuntime, StringNormalizerOutputSizeFollowsTheData) {
  TempDir dir;
  kiln::Model model(compileModel(dir, normalizerModel(), "norm").c_str());
  kiln::Session session(model);
  struct Case {
    std::vector<const char*> x;
    std::vector<std::string> want;
  };
  for (const Case& c : {Case{{"Monday", "tuesday", "MONDAY", "día"}, {"TUESDAY", "DÍA"}},
                        Case{{"monday", "Monday", "MONDAY", "mOnDaY"}, {""}},
                        Case{{"a", "b", "c", "d"}, {"A", "B", "C", "D"}}}) {
    std::vector<kiln_tensor> in = {stringView({4}, c.x)};
    std::vector<kiln_tensor> out(1);
    session.run(in, out);
    EXPECT_EQ(stringsOf(out[0]), c.want);
    EXPECT_EQ(out[0].dims[0], static_cast<int64_t>(c.want.size()));
    kiln_free(out[0].data);
  }
}

// CastLike reads only the dtype of `like`: it takes any shape, while `x`,
// whose data is read, is still checked.
TEST(StringRuntime, CastLikeTargetTakesAnyShape) {
  onnx::ModelProto m = emptyModel(15);
  auto* g = m.mutable_graph();
  setType(g->add_input(), "x", onnx::TensorProto::FLOAT, {2});
  setType(g->add_input(), "like", onnx::TensorProto::STRING, {3, 4});
  setType(g->add_output(), "y", onnx::TensorProto::STRING, {2});
  addNode(g, "CastLike", "cl", {"x", "like"}, {"y"});
  TempDir dir;
  kiln::Model model(compileModel(dir, m, "castlike").c_str());
  kiln::Session session(model);
  std::vector<float> x = {0.25f, 3.0f};
  std::vector<const char*> like = {"anything"};
  std::vector<kiln_tensor> in = {view(KILN_FLOAT32, {2}, x.data(), 8), stringView({1}, like)};
  std::vector<kiln_tensor> out(1);
  session.run(in, out);
  EXPECT_EQ(stringsOf(out[0]), (std::vector<std::string>{"0.25", "3.0"}));
  kiln_free(out[0].data);
  std::vector<float> wrong = {1, 2, 3};
  in[0] = view(KILN_FLOAT32, {3}, wrong.data(), 12);
  EXPECT_EQ(errorOf([&] { session.run(in, out); }), "input 0 'x': shape [3], expected [2]");
  in[0] = view(KILN_FLOAT32, {2}, x.data(), 8);
  in[1] = view(KILN_FLOAT32, {1}, x.data(), 4);
  EXPECT_EQ(errorOf([&] { session.run(in, out); }), "input 1 'like': dtype float32, expected string");
}

// Dropout with ratio and training_mode as inputs: deterministic unless
// training_mode is true and ratio > 0, which the run refuses.
TEST(StringRuntime, DropoutTrainingModeAtRunTime) {
  onnx::ModelProto m = emptyModel(13);
  auto* g = m.mutable_graph();
  setType(g->add_input(), "x", onnx::TensorProto::FLOAT, {3});
  setType(g->add_input(), "r", onnx::TensorProto::FLOAT, {});
  setType(g->add_input(), "t", onnx::TensorProto::BOOL, {});
  setType(g->add_output(), "y", onnx::TensorProto::FLOAT, {3});
  setType(g->add_output(), "mask", onnx::TensorProto::BOOL, {3});
  addNode(g, "Dropout", "drop", {"x", "r", "t"}, {"y", "mask"});
  TempDir dir;
  kiln::Model model(compileModel(dir, m, "dropout").c_str());
  kiln::Session session(model);
  std::vector<float> x = {1, -2, 3};
  for (auto [ratio, training, ok] : {std::tuple{0.0f, true, true}, std::tuple{0.5f, false, true},
                                     std::tuple{0.5f, true, false}}) {
    uint8_t t = training;
    std::vector<kiln_tensor> in = {view(KILN_FLOAT32, {3}, x.data(), 12), view(KILN_FLOAT32, {}, &ratio, 4),
                                   view(KILN_BOOL, {}, &t, 1)};
    std::vector<kiln_tensor> out(2);
    std::string error = errorOf([&] { session.run(in, out); });
    if (!ok) {
      EXPECT_NE(error.find("Dropout 'drop': training_mode (input 2) is true and ratio is above 0"), std::string::npos)
          << error;
      continue;
    }
    ASSERT_EQ(error, "");
    EXPECT_EQ(std::memcmp(out[0].data, x.data(), 12), 0);
    auto* mask = static_cast<const uint8_t*>(out[1].data);
    EXPECT_TRUE(mask[0] && mask[1] && mask[2]);
    for (kiln_tensor& o : out) kiln_free(o.data);
  }
}

}  // namespace
}  // namespace kiln
