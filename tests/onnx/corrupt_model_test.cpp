// Truncated and bit-flipped model files must give an error (or, where the
// damage happens to stay valid, a model), never a crash or a hang. Run under
// ASan/UBSan to catch the quiet kind of crash as well.
#include <gtest/gtest.h>

#include "compiler/ir/printer.h"
#include "compiler/onnx/writer.h"
#include "tests/onnx/onnx_test_util.h"

namespace kiln::testing {
namespace {

std::string testModelBytes(const std::string& name) {
  return readFile(std::string(KILN_TESTDATA_DIR) + "/" + name + "/model.onnx");
}

// Whatever the importer makes of the bytes must also be printable and
// writable: a damaged model must not leave the IR half-built.
void importDamaged(const std::string& bytes) {
  auto model = frontend::importOnnxBytes(asBytes(bytes), "", "damaged.onnx");
  if (!model) {
    EXPECT_FALSE(model.status().message().empty());
    return;
  }
  (void)ir::printModel(**model);
  (void)frontend::serializeOnnx(**model);
}

class CorruptModelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CorruptModelTest, TruncatedFilesFailCleanly) {
  std::string bytes = testModelBytes(GetParam());
  ASSERT_FALSE(bytes.empty());
  size_t step = std::max<size_t>(1, bytes.size() / 400);
  for (size_t length = 0; length < bytes.size(); length += step) {
    auto model = frontend::importOnnxBytes(asBytes(bytes.substr(0, length)), "", "truncated.onnx");
    if (length < bytes.size() / 2) {  // cut through the graph: can never be valid
      EXPECT_FALSE(model.isOk()) << "length " << length;
    } else if (model) {
      (void)ir::printModel(**model);
    }
  }
}

TEST_P(CorruptModelTest, BitFlippedFilesNeverCrash) {
  std::string original = testModelBytes(GetParam());
  ASSERT_FALSE(original.empty());
  size_t step = std::max<size_t>(1, original.size() / 500);
  for (size_t at = 0; at < original.size(); at += step) {
    for (unsigned mask : {0x01u, 0x10u, 0x80u, 0xffu}) {
      std::string bytes = original;
      bytes[at] = static_cast<char>(static_cast<unsigned char>(bytes[at]) ^ mask);
      importDamaged(bytes);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(OnnxTestData, CorruptModelTest,
                         ::testing::Values("pytorch-converted/test_Conv2d", "node/test_loop11", "node/test_if"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return name;
                         });

TEST(CorruptModelTest, EmptyFile) {
  TempDir dir;
  writeFile(dir.file("empty.onnx"), "");
  // An empty message parses as a model without a graph.
  expectError(frontend::importOnnxFile(dir.file("empty.onnx")), {"empty.onnx", "no graph"});
}

}  // namespace
}  // namespace kiln::testing
