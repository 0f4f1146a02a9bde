// .npy and TensorProto .pb tensor files (tools/common/tensor_files).
#include "tools/common/tensor_files.h"

#include <gtest/gtest.h>

#include <span>

#include "compiler/support/half.h"
#include "tests/onnx/onnx_test_util.h"

namespace kiln::testing {
namespace {

template <typename T>
ir::Tensor makeTensor(ir::DType dtype, std::vector<T> values, std::vector<int64_t> dims) {
  return ir::Tensor::fromValues<T>(dtype, std::move(dims), values);
}

bool sameBytes(const ir::Tensor& a, const ir::Tensor& b) {
  auto x = a.bytes(), y = b.bytes();
  return x.size() == y.size() && std::equal(x.begin(), x.end(), y.begin());
}

TEST(NpyTest, RoundTripsEveryDtype) {
  TempDir dir;
  const std::vector<ir::Tensor> tensors = {
      makeTensor<float>(ir::DType::kFloat32, {1.5f, -2, 0, 3, 4, 5}, {2, 3}),
      makeTensor<double>(ir::DType::kFloat64, {0.1, 0.2}, {2}),
      makeTensor<uint16_t>(ir::DType::kFloat16, {floatToHalf(1.0f), floatToHalf(-0.5f)}, {2, 1}),
      makeTensor<int8_t>(ir::DType::kInt8, {-128, 127}, {2}),
      makeTensor<int16_t>(ir::DType::kInt16, {-300, 300}, {2}),
      makeTensor<int32_t>(ir::DType::kInt32, {-70000}, {1}),
      makeTensor<int64_t>(ir::DType::kInt64, {int64_t{1} << 40}, {}),
      makeTensor<uint8_t>(ir::DType::kUInt8, {0, 255}, {1, 2}),
      makeTensor<uint16_t>(ir::DType::kUInt16, {65535}, {1}),
      makeTensor<uint32_t>(ir::DType::kUInt32, {4000000000u}, {1}),
      makeTensor<uint64_t>(ir::DType::kUInt64, {uint64_t{1} << 63}, {1}),
      makeTensor<uint8_t>(ir::DType::kBool, {1, 0, 1}, {3}),
      makeTensor<float>(ir::DType::kFloat32, {}, {0, 4}),
  };
  for (const ir::Tensor& tensor : tensors) {
    std::string path = dir.file(std::string(ir::name(tensor.dtype())) + ".npy");
    Status status = tools::writeNpy(path, tensor);
    ASSERT_TRUE(status.isOk()) << status.message();
    auto back = tools::readTensorFile(path);
    ASSERT_TRUE(back.isOk()) << back.status().message();
    EXPECT_EQ(back->dtype(), tensor.dtype());
    EXPECT_EQ(back->dims(), tensor.dims());
    EXPECT_TRUE(sameBytes(*back, tensor)) << ir::name(tensor.dtype());
  }
}

TEST(NpyTest, Bfloat16IsWrittenAsFloat32) {
  TempDir dir;
  ir::Tensor bf16 = makeTensor<uint16_t>(ir::DType::kBFloat16, {floatToBfloat16(2.5f)}, {1});
  ASSERT_TRUE(tools::writeNpy(dir.file("b.npy"), bf16).isOk());
  auto back = tools::readNpy(dir.file("b.npy"));
  ASSERT_TRUE(back.isOk()) << back.status().message();
  EXPECT_EQ(back->dtype(), ir::DType::kFloat32);
  EXPECT_EQ(back->floatAt(0), 2.5);
}

TEST(NpyTest, StringsRoundTrip) {
  TempDir dir;
  ir::Tensor text = ir::Tensor::fromStrings({2, 2}, {"a", "", "Grüße", "longer text"});
  ASSERT_TRUE(tools::writeNpy(dir.file("s.npy"), text).isOk());
  auto back = tools::readNpy(dir.file("s.npy"));
  ASSERT_TRUE(back.isOk()) << back.status().message();
  EXPECT_EQ(back->dims(), text.dims());
  EXPECT_EQ(back->strings(), text.strings());
}

// Bytes that are not UTF-8 (a lone continuation byte, a truncated sequence,
// an overlong form, a surrogate) are written as U+FFFD, one per bad byte, and
// the valid characters around them are kept.
TEST(NpyTest, InvalidUtf8IsWrittenAsReplacementCharacters) {
  TempDir dir;
  ir::Tensor text = ir::Tensor::fromStrings({4}, {"a\x80" "b", "\xC3", "\xC0\xAF!", "\xED\xA0\x80\xC3\xA9"});
  ASSERT_TRUE(tools::writeNpy(dir.file("s.npy"), text).isOk());
  auto back = tools::readNpy(dir.file("s.npy"));
  ASSERT_TRUE(back.isOk()) << back.status().message();
  EXPECT_EQ(back->strings(), (std::vector<std::string>{"a\uFFFD" "b", "\uFFFD", "\uFFFD\uFFFD!",
                                                        "\uFFFD\uFFFD\uFFFD\u00E9"}));
}

TEST(NpyTest, ReadsWhatNumpyWrites) {
  if (!pythonOnnxAvailable()) GTEST_SKIP() << "/usr/bin/python3 with numpy/onnx is not available";
  TempDir dir;
  std::string script =
      "import numpy as np, sys; d = sys.argv[1]\n"
      "np.save(d + '/v1.npy', np.arange(6, dtype='<f4').reshape(2, 3))\n"
      "with open(d + '/v2.npy', 'wb') as f: np.lib.format.write_array(f, np.array([True, False]), version=(2, 0))\n"
      "np.save(d + '/fortran.npy', np.asfortranarray(np.ones((2, 3), dtype='<f4')))\n"
      "np.save(d + '/big.npy', np.ones(3, dtype='>i4'))\n";
  writeFile(dir.file("make.py"), script);
  ASSERT_EQ(std::system(("/usr/bin/python3 " + dir.file("make.py") + " " + dir.path().string()).c_str()), 0);
  auto v1 = tools::readNpy(dir.file("v1.npy"));
  ASSERT_TRUE(v1.isOk()) << v1.status().message();
  EXPECT_EQ(v1->dims(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(v1->floatAt(5), 5.0);
  auto v2 = tools::readNpy(dir.file("v2.npy"));
  ASSERT_TRUE(v2.isOk()) << v2.status().message();
  EXPECT_EQ(v2->dtype(), ir::DType::kBool);
  EXPECT_EQ(v2->intAt(0), 1);
  expectError(tools::readNpy(dir.file("fortran.npy")), {"fortran.npy", "Fortran"});
  expectError(tools::readNpy(dir.file("big.npy")), {"big.npy", "big-endian"});
}

TEST(NpyTest, NumpyReadsWhatWeWrite) {
  if (!pythonOnnxAvailable()) GTEST_SKIP() << "/usr/bin/python3 with numpy/onnx is not available";
  TempDir dir;
  ASSERT_TRUE(tools::writeNpy(dir.file("x.npy"), makeTensor<int16_t>(ir::DType::kInt16, {1, -2, 3}, {3, 1})).isOk());
  std::string check =
      "/usr/bin/python3 -c \"import numpy as np, sys; a = np.load(sys.argv[1]); "
      "sys.exit(0 if a.dtype == np.int16 and a.shape == (3, 1) and a[1, 0] == -2 else 1)\" " +
      dir.file("x.npy");
  EXPECT_EQ(std::system(check.c_str()), 0);
}

TEST(NpyTest, TruncatedFilesFailCleanly) {
  TempDir dir;
  ASSERT_TRUE(tools::writeNpy(dir.file("x.npy"), makeTensor<float>(ir::DType::kFloat32, {1, 2, 3}, {3})).isOk());
  std::string full = readFile(dir.file("x.npy"));
  for (size_t length = 0; length < full.size(); ++length) {
    writeFile(dir.file("cut.npy"), full.substr(0, length));
    auto result = tools::readNpy(dir.file("cut.npy"));
    EXPECT_FALSE(result.isOk()) << "length " << length;
    if (!result) {
      EXPECT_NE(result.status().message().find("cut.npy"), std::string::npos);
    }
  }
  writeFile(dir.file("long.npy"), full + "xx");
  expectError(tools::readNpy(dir.file("long.npy")), {"long.npy", "bytes"});
}

// Found by fuzz_npy: a '|U2' array whose code points are valid but unusual
// (a private-use one, one in an unassigned plane) and whose second string is
// empty. The reader keeps them; the fuzz target's own check, which counted
// bytes for every dtype, now counts strings for strings.
TEST(NpyTest, UnusualCodePointsAndEmptyStringsAreKept) {
  std::string npy = "\x93NUMPY\x01";
  npy += '\0';
  const std::string header = "{'descr': '|U2', 'fortran_order': False, 'shape': (1, 1, 2 ) ,}";
  npy += static_cast<char>(header.size());
  npy += '\0';
  npy += header;
  const unsigned char data[] = {0xff, 0xe7, 0, 0, 0x25, 0, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  npy.append(reinterpret_cast<const char*>(data), sizeof data);
  auto tensor = tools::parseNpyBytes(std::as_bytes(std::span(npy.data(), npy.size())));
  ASSERT_TRUE(tensor.isOk()) << tensor.status().message();
  EXPECT_EQ(tensor->type().toString(), "string[1x1x2]");
  EXPECT_EQ(tensor->strings(), (std::vector<std::string>{"\xEE\x9F\xBF\xF2\x80\x80\xA5", ""}));
}

TEST(NpyTest, MalformedHeaders) {
  TempDir dir;
  auto npy = [&](const std::string& header) {
    std::string out = "\x93NUMPY";
    out += '\x01';
    out += '\0';
    out += static_cast<char>(header.size() & 0xff);
    out += static_cast<char>(header.size() >> 8);
    writeFile(dir.file("h.npy"), out + header);
    return tools::readNpy(dir.file("h.npy"));
  };
  expectError(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }"), {"malformed .npy header"});
  expectError(npy("{'descr': '<f4', 'shape': (), }"), {"required"});
  expectError(npy("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"), {"object arrays (dtype 'O') are not supported"});
  expectError(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 1099511627776), }"), {"h.npy"});
  expectError(npy("{'descr': '<f4"), {"unterminated"});
}

TEST(TensorFileTest, ReadsOnnxTensorProtoFiles) {
  std::string dir = std::string(KILN_TESTDATA_DIR) + "/node/test_conv_with_strides_padding/test_data_set_0/";
  auto input = tools::readTensorFile(dir + "input_0.pb");
  ASSERT_TRUE(input.isOk()) << input.status().message();
  EXPECT_EQ(input->type().toString(), "float32[1x1x7x5]");
  auto output = tools::readTensorFile(dir + "output_0.pb");
  ASSERT_TRUE(output.isOk()) << output.status().message();
  EXPECT_EQ(output->dims(), (std::vector<int64_t>{1, 1, 4, 3}));
}

TEST(TensorFileTest, RefusesBadPbAndUnknownExtension) {
  TempDir dir;
  writeFile(dir.file("bad.pb"), "\xff\xff\xff");
  expectError(tools::readTensorFile(dir.file("bad.pb")), {"bad.pb", "not a valid ONNX TensorProto"});
  expectError(tools::readTensorFile(dir.file("x.txt")), {"x.txt", "expected .npy or .pb"});
  expectError(tools::readTensorFile(dir.file("missing.npy")), {"missing.npy"});
}

}  // namespace
}  // namespace kiln::testing
