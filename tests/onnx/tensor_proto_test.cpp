// TensorProto decoding: every data encoding, external data (and the paths it
// must refuse), sparse initializers, zero-copy borrowing from the model file.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>

#include "compiler/support/half.h"
#include "tests/onnx/onnx_test_util.h"

namespace kiln::testing {
namespace {

onnx::TensorProto makeProto(int data_type, std::initializer_list<int64_t> dims) {
  onnx::TensorProto proto;
  proto.set_name("t");
  proto.set_data_type(data_type);
  for (int64_t d : dims) proto.add_dims(d);
  return proto;
}

ir::Tensor convert(const onnx::TensorProto& proto, const std::string& base_dir = "") {
  auto tensor = frontend::tensorFromProto(proto, base_dir);
  EXPECT_TRUE(tensor.isOk()) << tensor.status().message();
  return tensor.isOk() ? tensor.take() : ir::Tensor();
}

TEST(TensorProtoTest, FloatData) {
  auto proto = makeProto(onnx::TensorProto::FLOAT, {2});
  proto.add_float_data(1.5f);
  proto.add_float_data(-2.0f);
  ir::Tensor t = convert(proto);
  EXPECT_EQ(t.dtype(), ir::DType::kFloat32);
  EXPECT_EQ(t.floatAt(0), 1.5);
  EXPECT_EQ(t.floatAt(1), -2.0);
}

TEST(TensorProtoTest, Int32DataHoldsNarrowTypes) {
  struct Case {
    int onnx_type;
    ir::DType dtype;
    int32_t stored;
    int64_t expected;
  };
  const Case cases[] = {
      {onnx::TensorProto::INT32, ir::DType::kInt32, -70000, -70000},
      {onnx::TensorProto::INT16, ir::DType::kInt16, -300, -300},
      {onnx::TensorProto::INT8, ir::DType::kInt8, -5, -5},
      {onnx::TensorProto::UINT16, ir::DType::kUInt16, 65535, 65535},
      {onnx::TensorProto::UINT8, ir::DType::kUInt8, 200, 200},
      {onnx::TensorProto::BOOL, ir::DType::kBool, 1, 1},
  };
  for (const Case& c : cases) {
    auto proto = makeProto(c.onnx_type, {1});
    proto.add_int32_data(c.stored);
    ir::Tensor t = convert(proto);
    EXPECT_EQ(t.dtype(), c.dtype);
    EXPECT_EQ(static_cast<int64_t>(t.bytes().size()), ir::byteSize(c.dtype));
    EXPECT_EQ(t.intAt(0), c.expected) << ir::name(c.dtype);
  }
}

TEST(TensorProtoTest, HalfAndBfloat16BitPatternsInInt32Data) {
  auto half = makeProto(onnx::TensorProto::FLOAT16, {1});
  half.add_int32_data(floatToHalf(0.25f));
  EXPECT_EQ(convert(half).floatAt(0), 0.25);
  auto bf16 = makeProto(onnx::TensorProto::BFLOAT16, {1});
  bf16.add_int32_data(floatToBfloat16(-3.0f));
  EXPECT_EQ(convert(bf16).floatAt(0), -3.0);
}

TEST(TensorProtoTest, Int64DoubleUint64Data) {
  auto i64 = makeProto(onnx::TensorProto::INT64, {2});
  i64.add_int64_data(int64_t{1} << 40);
  i64.add_int64_data(-1);
  EXPECT_EQ(convert(i64).toInts(), (std::vector<int64_t>{int64_t{1} << 40, -1}));
  auto f64 = makeProto(onnx::TensorProto::DOUBLE, {1});
  f64.add_double_data(0.1);
  EXPECT_EQ(convert(f64).floatAt(0), 0.1);
  auto u64 = makeProto(onnx::TensorProto::UINT64, {1});
  u64.add_uint64_data(uint64_t{1} << 63);
  EXPECT_EQ(convert(u64).floatAt(0), 9223372036854775808.0);
  auto u32 = makeProto(onnx::TensorProto::UINT32, {1});
  u32.add_uint64_data(4000000000u);
  ir::Tensor t32 = convert(u32);
  EXPECT_EQ(t32.bytes().size(), 4u);
  EXPECT_EQ(t32.intAt(0), 4000000000);
}

TEST(TensorProtoTest, StringData) {
  auto proto = makeProto(onnx::TensorProto::STRING, {2});
  proto.add_string_data("hello");
  proto.add_string_data("");
  ir::Tensor t = convert(proto);
  EXPECT_EQ(t.dtype(), ir::DType::kString);
  EXPECT_EQ(t.strings(), (std::vector<std::string>{"hello", ""}));
}

TEST(TensorProtoTest, RawData) {
  auto proto = makeProto(onnx::TensorProto::INT16, {3});
  const int16_t values[] = {1, -2, 300};
  proto.set_raw_data(std::string(reinterpret_cast<const char*>(values), sizeof(values)));
  EXPECT_EQ(convert(proto).toInts(), (std::vector<int64_t>{1, -2, 300}));
}

TEST(TensorProtoTest, ScalarAndEmpty) {
  auto scalar = makeProto(onnx::TensorProto::FLOAT, {});
  scalar.add_float_data(4.0f);
  ir::Tensor s = convert(scalar);
  EXPECT_TRUE(s.dims().empty());
  EXPECT_EQ(s.floatAt(0), 4.0);
  auto empty = makeProto(onnx::TensorProto::FLOAT, {0, 3});
  EXPECT_EQ(convert(empty).elementCount(), 0);
}

TEST(TensorProtoTest, TypedFieldCountMismatch) {
  auto proto = makeProto(onnx::TensorProto::FLOAT, {3});
  proto.add_float_data(1.0f);
  expectError(frontend::tensorFromProto(proto, ""), {"tensor 't'", "1 values in float_data", "holds 3"});
}

TEST(TensorProtoTest, NegativeDimension) {
  auto proto = makeProto(onnx::TensorProto::FLOAT, {-1});
  expectError(frontend::tensorFromProto(proto, ""), {"tensor 't'", "negative"});
}

// ---- external data --------------------------------------------------------

void setExternal(onnx::TensorProto& proto, const std::string& location, std::optional<int64_t> offset = {},
                 std::optional<int64_t> length = {}) {
  proto.set_data_location(onnx::TensorProto::EXTERNAL);
  auto add = [&](const std::string& key, const std::string& value) {
    auto* entry = proto.add_external_data();
    entry->set_key(key);
    entry->set_value(value);
  };
  add("location", location);
  if (offset) add("offset", std::to_string(*offset));
  if (length) add("length", std::to_string(*length));
}

class ExternalDataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string data(16, '\0');
    const float values[] = {1.0f, 2.0f, 3.0f, 4.0f};
    std::memcpy(data.data(), values, sizeof(values));
    writeFile(dir_.file("weights.bin"), data);
  }
  TempDir dir_;
};

TEST_F(ExternalDataTest, ReadsWithOffsetAndLength) {
  auto proto = makeProto(onnx::TensorProto::FLOAT, {2});
  setExternal(proto, "weights.bin", 8, 8);
  ir::Tensor t = convert(proto, dir_.path().string());
  EXPECT_EQ(t.floatAt(0), 3.0);
  EXPECT_EQ(t.floatAt(1), 4.0);
}

TEST_F(ExternalDataTest, WholeFileWithoutOffsetAndLength) {
  auto proto = makeProto(onnx::TensorProto::FLOAT, {4});
  setExternal(proto, "weights.bin");
  EXPECT_EQ(convert(proto, dir_.path().string()).floatAt(3), 4.0);
}

TEST_F(ExternalDataTest, ThroughAModelFile) {
  onnx::ModelProto model = reluModel();
  auto* init = model.mutable_graph()->add_initializer();
  *init = makeProto(onnx::TensorProto::FLOAT, {2, 2});
  init->set_name("w");
  setExternal(*init, "weights.bin", 0, 16);
  writeFile(dir_.file("model.onnx"), model.SerializeAsString());
  auto imported = frontend::importOnnxFile(dir_.file("model.onnx"));
  ASSERT_TRUE(imported.isOk()) << imported.status().message();
  EXPECT_EQ((*imported)->graph.findValue("w")->constant->floatAt(2), 3.0);
}

TEST_F(ExternalDataTest, RefusesPastEndOfFile) {
  auto proto = makeProto(onnx::TensorProto::FLOAT, {2});
  setExternal(proto, "weights.bin", 12, 8);
  expectError(frontend::tensorFromProto(proto, dir_.path().string()), {"tensor 't'", "runs past the end"});
  auto far = makeProto(onnx::TensorProto::FLOAT, {1});
  setExternal(far, "weights.bin", 100);
  expectError(frontend::tensorFromProto(far, dir_.path().string()), {"offset 100 is past the end"});
}

TEST_F(ExternalDataTest, RefusesLengthThatDisagreesWithShape) {
  auto proto = makeProto(onnx::TensorProto::FLOAT, {3});
  setExternal(proto, "weights.bin", 0, 16);
  expectError(frontend::tensorFromProto(proto, dir_.path().string()), {"16 bytes", "needs 12"});
}

TEST_F(ExternalDataTest, RefusesAbsolutePath) {
  auto proto = makeProto(onnx::TensorProto::FLOAT, {1});
  setExternal(proto, dir_.file("weights.bin"));
  expectError(frontend::tensorFromProto(proto, dir_.path().string()), {"relative to the model's folder"});
}

TEST_F(ExternalDataTest, RefusesDotDotEscape) {
  std::filesystem::create_directory(dir_.path() / "model");
  auto proto = makeProto(onnx::TensorProto::FLOAT, {1});
  setExternal(proto, "../weights.bin");
  expectError(frontend::tensorFromProto(proto, (dir_.path() / "model").string()), {"leaves the model's folder"});
  auto sneaky = makeProto(onnx::TensorProto::FLOAT, {1});
  setExternal(sneaky, "sub/../../weights.bin");
  expectError(frontend::tensorFromProto(sneaky, (dir_.path() / "model").string()), {"leaves the model's folder"});
}

TEST_F(ExternalDataTest, RefusesSymlinkOutOfFolder) {
  std::filesystem::create_directory(dir_.path() / "model");
  std::filesystem::create_symlink(dir_.path() / "weights.bin", dir_.path() / "model" / "link.bin");
  auto proto = makeProto(onnx::TensorProto::FLOAT, {1});
  setExternal(proto, "link.bin", 0, 4);
  expectError(frontend::tensorFromProto(proto, (dir_.path() / "model").string()), {"outside the model's folder"});
}

TEST_F(ExternalDataTest, AcceptsSymlinkInsideFolder) {
  std::filesystem::create_symlink(dir_.path() / "weights.bin", dir_.path() / "link.bin");
  auto proto = makeProto(onnx::TensorProto::FLOAT, {1});
  setExternal(proto, "link.bin", 4, 4);
  EXPECT_EQ(convert(proto, dir_.path().string()).floatAt(0), 2.0);
}

TEST_F(ExternalDataTest, MissingFileAndNoFolder) {
  auto proto = makeProto(onnx::TensorProto::FLOAT, {1});
  setExternal(proto, "absent.bin");
  expectError(frontend::tensorFromProto(proto, dir_.path().string()), {"absent.bin"});
  setExternal(proto, "weights.bin");
  expectError(frontend::tensorFromProto(proto, ""), {"not loaded from a folder"});
}

TEST_F(ExternalDataTest, RefusesMalformedOffset) {
  auto proto = makeProto(onnx::TensorProto::FLOAT, {1});
  proto.set_data_location(onnx::TensorProto::EXTERNAL);
  auto* loc = proto.add_external_data();
  loc->set_key("location");
  loc->set_value("weights.bin");
  auto* off = proto.add_external_data();
  off->set_key("offset");
  off->set_value("-4");
  expectError(frontend::tensorFromProto(proto, dir_.path().string()), {"'offset' is '-4'"});
}

// ---- sparse initializers ----------------------------------------------------

onnx::ModelProto modelWithSparse(std::initializer_list<int64_t> index_dims, std::initializer_list<int64_t> indices) {
  onnx::ModelProto model = reluModel();
  auto* sparse = model.mutable_graph()->add_sparse_initializer();
  sparse->add_dims(2);
  sparse->add_dims(3);
  auto* values = sparse->mutable_values();
  *values = makeProto(onnx::TensorProto::FLOAT, {2});
  values->set_name("sp");
  values->add_float_data(5.0f);
  values->add_float_data(7.0f);
  auto* idx = sparse->mutable_indices();
  *idx = makeProto(onnx::TensorProto::INT64, index_dims);
  for (int64_t i : indices) idx->add_int64_data(i);
  return model;
}

TEST(SparseInitializerTest, LinearIndices) {
  auto imported = importProto(modelWithSparse({2}, {1, 5}));
  ASSERT_TRUE(imported.isOk()) << imported.status().message();
  const ir::Tensor& t = *(*imported)->graph.findValue("sp")->constant;
  EXPECT_EQ(t.dims(), (std::vector<int64_t>{2, 3}));
  std::vector<double> dense;
  for (int i = 0; i < 6; ++i) dense.push_back(t.floatAt(i));
  EXPECT_EQ(dense, (std::vector<double>{0, 5, 0, 0, 0, 7}));
}

TEST(SparseInitializerTest, CoordinateIndices) {
  auto imported = importProto(modelWithSparse({2, 2}, {0, 2, 1, 0}));
  ASSERT_TRUE(imported.isOk()) << imported.status().message();
  const ir::Tensor& t = *(*imported)->graph.findValue("sp")->constant;
  EXPECT_EQ(t.floatAt(2), 5.0);
  EXPECT_EQ(t.floatAt(3), 7.0);
}

TEST(SparseInitializerTest, IndexOutOfRange) {
  expectError(importProto(modelWithSparse({2}, {1, 6})), {"sparse initializer 'sp'", "outside the shape"});
  expectError(importProto(modelWithSparse({2, 2}, {0, 3, 1, 0})), {"sparse initializer 'sp'", "outside the shape"});
}

// ---- zero-copy ---------------------------------------------------------------

// The path of the file mapped at `address` in this process, from /proc/self/maps.
std::string mappedFileAt(const void* address) {
  FILE* maps = std::fopen("/proc/self/maps", "r");
  if (!maps) return "";
  char line[4096];
  std::string found;
  auto target = reinterpret_cast<uintptr_t>(address);
  while (std::fgets(line, sizeof(line), maps)) {
    uintptr_t begin = 0, end = 0;
    if (std::sscanf(line, "%lx-%lx", &begin, &end) != 2 || target < begin || target >= end) continue;
    std::string text(line);
    size_t slash = text.find('/');
    if (slash != std::string::npos) found = text.substr(slash, text.find('\n') - slash);
  }
  std::fclose(maps);
  return found;
}

TEST(ZeroCopyTest, RawDataInitializersBorrowTheMappedModel) {
  TempDir dir;
  onnx::ModelProto model = reluModel();
  auto* init = model.mutable_graph()->add_initializer();
  *init = makeProto(onnx::TensorProto::FLOAT, {1024});
  init->set_name("w");
  std::vector<float> values(1024);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i);
  // Pad the graph name (serialized before the initializers) so that the raw
  // data lands 4-byte aligned in the file.
  std::string bytes;
  for (int pad = 0; pad < 4; ++pad) {
    model.mutable_graph()->set_name("main" + std::string(static_cast<size_t>(pad), 'p'));
    init->set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * 4));
    bytes = model.SerializeAsString();
    size_t at = bytes.find(init->raw_data());
    if (at % 4 == 0) break;
  }
  writeFile(dir.file("model.onnx"), bytes);
  std::unique_ptr<ir::Model> imported;
  {
    auto result = frontend::importOnnxFile(dir.file("model.onnx"));
    ASSERT_TRUE(result.isOk()) << result.status().message();
    imported = result.take();
  }
  const ir::Tensor& w = *imported->graph.findValue("w")->constant;
  ASSERT_EQ(bytes.find(init->raw_data()) % 4, 0u);
  EXPECT_EQ(w.floatAt(1023), 1023.0);
  std::string canonical = std::filesystem::canonical(dir.file("model.onnx")).string();
  EXPECT_EQ(mappedFileAt(w.bytes().data()), canonical);
}

}  // namespace
}  // namespace kiln::testing
