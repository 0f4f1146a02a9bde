// The weights blob of a CPU artifact (artifact format 7): weights of 64 KiB
// or more are written after the ELF image, packed panels and plain constants
// alike, and generated code reads them through the context. An artifact with
// a blob must compute what the reference evaluator does, keep its blob at a
// page boundary as the file's last bytes, come out byte-identical twice, and
// be refused when its description places the blob anywhere else.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <random>

#include "artifact_format.h"
#include "codegen/cpu/weight_blob.h"
#include "compiler/kir/evaluator.h"
#include "compiler/onnx/writer.h"
#include "tests/passes/model_check.h"
#include "tests/testing/artifact_fixture.h"
#include "tools/common/run_artifact.h"

namespace kiln::testing {
namespace {

constexpr int64_t kRows = 8, kDepth = 256, kColumns = 320;  // MatMul weight: 320 KiB of packed panels
constexpr int64_t kTableRows = 64, kTableColumns = 1024;    // Add constant: 256 KiB, read as it is

// y = x @ w + b (w packed into panels, b small enough to stay an LLVM
// constant); z = u + table (a plain constant of the input's shape).
std::unique_ptr<ir::Model> blobModel() {
  TestGraph g;
  ir::Value* x = g.input("x", {kRows, kDepth});
  ir::Value* u = g.input("u", {kTableRows, kTableColumns});
  ir::Value* product = g.op("MatMul", {x, g.randomConstant("w", {kDepth, kColumns})}, "product");
  g.output(g.op("Add", {product, g.randomConstant("b", {kColumns})}, "y"));
  g.output(g.op("Add", {u, g.randomConstant("table", {kTableRows, kTableColumns})}, "z"));
  return g.take();
}

std::span<const uint8_t> asBytes(const std::vector<char>& bytes) {
  return {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()};
}

artifact::ModelDesc descriptionOf(const std::vector<char>& file) {
  std::string error;
  auto section = artifact::findElfSection(asBytes(file), artifact::kDescSection, &error);
  EXPECT_TRUE(section.has_value()) << error;
  if (!section) return {};
  auto desc = artifact::parse(asBytes(file).subspan(section->offset, section->size), &error);
  EXPECT_TRUE(desc.has_value()) << error;
  return desc ? *desc : artifact::ModelDesc{};
}

// `file` with its description's weights_bytes set to `weights_bytes` and the
// checksum recomputed, as a deliberate edit would: it reaches the checks
// behind the checksum.
std::vector<char> withWeightsBytes(std::vector<char> file, uint64_t weights_bytes) {
  std::string error;
  auto section = artifact::findElfSection(asBytes(file), artifact::kDescSection, &error);
  artifact::ModelDesc desc = descriptionOf(file);
  desc.weights_bytes = weights_bytes;
  std::vector<uint8_t> serialized = artifact::serialize(desc);
  EXPECT_EQ(serialized.size(), section->size);
  std::memcpy(file.data() + section->offset, serialized.data(), serialized.size());
  uint64_t hash = artifact::hashArtifact(asBytes(file), *section);
  std::memcpy(file.data() + section->offset + artifact::kContentHashOffset, &hash, sizeof(hash));
  return file;
}

class WeightsBlobTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    ASSERT_TRUE(frontend::writeOnnxFile(*blobModel(), dir_->file("model.onnx")).isOk());
    compileOrFail(dir_->file("model.onnx"), dir_->file("model.so"));
    file_ = new std::vector<char>(readBytes(dir_->file("model.so")));
  }
  static void TearDownTestSuite() {
    delete file_;
    delete dir_;
  }
  static LoadResult load(const std::string& name, const std::vector<char>& bytes) {
    writeBytes(dir_->file(name), bytes);
    return tryLoad(dir_->file(name));
  }
  static std::string where(const std::string& name) { return "artifact '" + dir_->file(name) + "': "; }

  static TempDir* dir_;
  static std::vector<char>* file_;
};
TempDir* WeightsBlobTest::dir_ = nullptr;
std::vector<char>* WeightsBlobTest::file_ = nullptr;

TEST_F(WeightsBlobTest, LargeWeightsAreTheFilesLastBytesAtAPageBoundary) {
  const artifact::ModelDesc desc = descriptionOf(*file_);
  const uint64_t panels = kDepth * kColumns * 4, table = kTableRows * kTableColumns * 4;
  // Both large weights, each at a multiple of 64; the 1.25 KiB bias is not in it.
  EXPECT_GE(desc.weights_bytes, panels + table);
  EXPECT_LT(desc.weights_bytes, panels + table + 2 * 64 + kColumns * 4);
  ASSERT_LE(desc.weights_bytes, file_->size());
  EXPECT_EQ((file_->size() - desc.weights_bytes) % artifact::kWeightsAlignment, 0u);
  std::string error;
  auto blob = artifact::findWeights(asBytes(*file_), desc, &error);
  ASSERT_TRUE(blob.has_value()) << error;
  EXPECT_EQ(blob->offset + blob->size, file_->size());
}

TEST_F(WeightsBlobTest, ComputesWhatTheReferenceDoes) {
  std::vector<ir::Tensor> inputs = {randomInput({kRows, kDepth}, 3), randomInput({kTableRows, kTableColumns}, 4)};
  auto program = compileProgram(blobModel, {});
  ASSERT_TRUE(program.isOk()) << program.status().message();
  auto want = lower::evaluateProgram(*program, inputs);
  ASSERT_TRUE(want.isOk()) << want.status().message();
  kiln::Model artifact(dir_->file("model.so"));
  kiln::Session session(artifact, 2);
  auto got = tools::runArtifact(artifact, session, inputs);
  ASSERT_TRUE(got.isOk()) << got.status().message();
  ASSERT_EQ(got->size(), 2u);
  // y: sums of 256 products in another order; z: one exact addition.
  auto y_diff = tools::compareTensors((*got)[0], (*want)[0], {1e-4, 1e-5});
  EXPECT_FALSE(y_diff.has_value()) << "y: " << *y_diff;
  auto z_diff = tools::compareTensors((*got)[1], (*want)[1], {0, 0});
  EXPECT_FALSE(z_diff.has_value()) << "z: " << *z_diff;
}

TEST_F(WeightsBlobTest, SameModelSameBytes) {
  compileOrFail(dir_->file("model.onnx"), dir_->file("again.so"));
  EXPECT_TRUE(readBytes(dir_->file("again.so")) == *file_) << "two compiles of one model differ";
}

TEST_F(WeightsBlobTest, ABlobTheDescriptionMisplacesIsRefused) {
  const uint64_t weights = descriptionOf(*file_).weights_bytes;
  const uint64_t size = file_->size();
  LoadResult r = load("longer.so", withWeightsBytes(*file_, weights + 64));
  EXPECT_EQ(r.status, KILN_ERROR_INVALID_ARTIFACT);
  EXPECT_EQ(r.message, where("longer.so") + "the weights (the last " + std::to_string(weights + 64) +
                           " bytes) do not start on a 4096-byte boundary after the code: the file was truncated "
                           "or extended");
  // At a page boundary, but over the code.
  r = load("over_code.so", withWeightsBytes(*file_, size));
  EXPECT_EQ(r.status, KILN_ERROR_INVALID_ARTIFACT);
  EXPECT_EQ(r.message, where("over_code.so") + "the weights (the last " + std::to_string(size) +
                           " bytes) do not start on a 4096-byte boundary after the code: the file was truncated "
                           "or extended");
  r = load("past_start.so", withWeightsBytes(*file_, size + 4096));
  EXPECT_EQ(r.status, KILN_ERROR_INVALID_ARTIFACT);
  EXPECT_EQ(r.message, where("past_start.so") + "the file is truncated (" + std::to_string(size) +
                           " bytes, but its weights alone take " + std::to_string(size + 4096) + ")");
}

TEST_F(WeightsBlobTest, ACutBlobFailsTheChecksum) {
  std::vector<char> cut(file_->begin(), file_->end() - 4096);
  LoadResult r = load("cut.so", cut);
  EXPECT_EQ(r.status, KILN_ERROR_INVALID_ARTIFACT);
  EXPECT_EQ(r.message, where("cut.so") + "checksum mismatch: the file was damaged or modified after compilation");
}

// --emit llvm has no blob beside it: every weight stays in the module.
TEST_F(WeightsBlobTest, EmittedLlvmHoldsEveryWeight) {
  driver::CompileOptions options;
  options.emit = driver::Stage::kLlvm;
  compileOrFail(dir_->file("model.onnx"), dir_->file("model.ll"), options);
  std::vector<char> text = readBytes(dir_->file("model.ll"));
  const std::string ir(text.begin(), text.end());
  EXPECT_EQ(ir.find("%weights = load"), std::string::npos) << "the module reads a weights blob";
  // Every float of the panels and the table is printed: at least 4 characters each.
  EXPECT_GT(ir.size(), size_t{4} * (kDepth * kColumns + kTableRows * kTableColumns));
}

// p * erf(p), p = x @ w (GELU's shape): fusion makes one stage that reads the
// product twice through one shared sum, so the weight is read only by the
// packed panels and ships once, not also as it is.
TEST(WeightsBlobSharingTest, AProductReadTwiceShipsItsWeightOnce) {
  auto make = [] {
    TestGraph g;
    ir::Value* x = g.input("x", {kRows, kDepth});
    ir::Value* p = g.op("MatMul", {x, g.randomConstant("w", {kDepth, kColumns})}, "p");
    g.output(g.op("Mul", {p, g.op("Erf", {p}, "erf")}, "y"));
    return g.take();
  };
  TempDir tmp;
  ASSERT_TRUE(frontend::writeOnnxFile(*make(), tmp.file("gelu.onnx")).isOk());
  compileOrFail(tmp.file("gelu.onnx"), tmp.file("gelu.so"));
  std::vector<char> file = readBytes(tmp.file("gelu.so"));
  EXPECT_EQ(descriptionOf(file).weights_bytes, uint64_t{kDepth * kColumns * 4});

  std::vector<ir::Tensor> inputs = {randomInput({kRows, kDepth}, 5)};
  auto program = compileProgram(make, {});
  ASSERT_TRUE(program.isOk()) << program.status().message();
  auto want = lower::evaluateProgram(*program, inputs);
  ASSERT_TRUE(want.isOk()) << want.status().message();
  kiln::Model artifact(tmp.file("gelu.so"));
  kiln::Session session(artifact, 2);
  auto got = tools::runArtifact(artifact, session, inputs);
  ASSERT_TRUE(got.isOk()) << got.status().message();
  auto diff = tools::compareTensors((*got)[0], (*want)[0], {1e-4, 1e-5});
  EXPECT_FALSE(diff.has_value()) << *diff;
}

TEST_F(WeightsBlobTest, TheBlobsTemporaryFileLeavesNothingBehind) {
  for (const auto& entry : std::filesystem::directory_iterator(dir_->path()))
    EXPECT_EQ(entry.path().filename().string().rfind(".kiln-weights", 0), std::string::npos) << entry.path();
}

// The blob on its own: weights written as they are added, each at the next
// multiple of 64 bytes, read back in order with zeros between them.
TEST(WeightBlobFileTest, WeightsLandAtMultiplesOfSixtyFourAndReadBackInOrder) {
  TempDir dir;
  codegen::cpu::WeightBlob blob(dir.path());
  auto fill = [](uint64_t bytes, uint8_t first, size_t piece) {
    return [=](const codegen::cpu::WeightBlob::Sink& sink) {
      std::vector<uint8_t> data(bytes);
      for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(first + i);
      for (size_t at = 0; at < data.size(); at += piece)
        sink(std::span(data).subspan(at, std::min(piece, data.size() - at)));
    };
  };
  EXPECT_EQ(blob.add(100, fill(100, 1, 7)), 0u);
  EXPECT_EQ(blob.add(64, fill(64, 50, 64)), 128u);
  EXPECT_EQ(blob.add(3000000, fill(3000000, 9, 1 << 16)), 192u);
  ASSERT_TRUE(blob.status().isOk()) << blob.status().message();
  EXPECT_EQ(blob.bytes(), 192u + 3000000u);
  std::vector<uint8_t> want(blob.bytes(), 0);
  for (size_t i = 0; i < 100; ++i) want[i] = static_cast<uint8_t>(1 + i);
  for (size_t i = 0; i < 64; ++i) want[128 + i] = static_cast<uint8_t>(50 + i);
  for (size_t i = 0; i < 3000000; ++i) want[192 + i] = static_cast<uint8_t>(9 + i);
  std::vector<uint8_t> got;
  size_t pieces = 0;
  ASSERT_TRUE(blob.read([&](std::span<const uint8_t> piece) {
                    got.insert(got.end(), piece.begin(), piece.end());
                    ++pieces;
                  })
                  .isOk());
  EXPECT_EQ(got, want);
  EXPECT_EQ(pieces, 3u);  // 1 MiB at a time
  // Nothing named is left in the folder: the file has no name.
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(WeightBlobFileTest, AWriterOfTheWrongSizeIsAnInternalError) {
  TempDir dir;
  codegen::cpu::WeightBlob blob(dir.path());
  const uint8_t byte = 7;
  blob.add(2, [&](const codegen::cpu::WeightBlob::Sink& sink) { sink({&byte, 1}); });
  ASSERT_FALSE(blob.status().isOk());
  EXPECT_EQ(blob.status().kind(), ErrorKind::kInternal);
  EXPECT_EQ(blob.status().message(), "a weight at blob offset 0 wrote 1 bytes of 2");
  // Later weights are counted, not written, and the first failure stays.
  EXPECT_EQ(blob.add(10, [&](const codegen::cpu::WeightBlob::Sink& sink) { sink({&byte, 1}); }), 64u);
  EXPECT_EQ(blob.status().message(), "a weight at blob offset 0 wrote 1 bytes of 2");
  EXPECT_FALSE(blob.read([](std::span<const uint8_t>) {}).isOk());
}

TEST(WeightBlobFileTest, AFolderThatCannotHoldTheBlobIsAnIoErrorNamingIt) {
  TempDir dir;
  const std::string missing = dir.path() + "/no-such-folder";
  codegen::cpu::WeightBlob blob(missing);
  const uint8_t byte = 7;
  blob.add(1, [&](const codegen::cpu::WeightBlob::Sink& sink) { sink({&byte, 1}); });
  ASSERT_FALSE(blob.status().isOk());
  EXPECT_EQ(blob.status().kind(), ErrorKind::kIO);
  EXPECT_EQ(blob.status().message(),
            "cannot create a temporary file for the weights in '" + missing + "': No such file or directory");
}

TEST(ArtifactHasherTest, PiecesHashLikeTheWhole) {
  std::vector<uint8_t> bytes(1000);
  std::mt19937 rng(9);
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
  const uint64_t whole = artifact::hashBytes(bytes, 5);
  for (std::vector<size_t> cuts : {std::vector<size_t>{}, {0, 0, 1}, {3, 5, 7, 999}, {8, 16, 17, 600}, {1000}}) {
    artifact::Hasher h(bytes.size(), 5);
    size_t at = 0;
    for (size_t cut : cuts) {
      h.update(std::span(bytes).subspan(at, cut - at));
      at = cut;
    }
    h.update(std::span(bytes).subspan(at));
    EXPECT_EQ(h.finish(), whole) << cuts.size() << " cuts";
  }
  EXPECT_NE(artifact::hashBytes(std::span(bytes).subspan(1), 5), whole);
}

}  // namespace
}  // namespace kiln::testing
