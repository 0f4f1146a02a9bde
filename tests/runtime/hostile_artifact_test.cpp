// Hostile artifacts: damaged, foreign or tampered files, and files built for
// a CPU this host is not. The runtime must refuse each with its status and a
// one-line message, from the file's bytes, before any of it is mapped or run.
// (The description tampering cases reseal the checksum, as an attacker
// would: they reach the checks behind it.)
#include <elf.h>

#include <cstring>

#include "artifact_format.h"
#include "cpu_features.h"
#include "kiln_runtime.h"
#include "tests/testing/artifact_fixture.h"

namespace kiln {
namespace {

using testing::TempDir;

using testing::LoadResult;
using testing::tryLoad;

class HostileArtifactTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    artifact_ = dir_->file("relu.so");
    testing::compileOrFail(testing::nodeCase("test_relu") + "/model.onnx", artifact_);
    bytes_ = new std::vector<char>(testing::readBytes(artifact_));
  }
  static void TearDownTestSuite() {
    delete bytes_;
    delete dir_;
  }

  // Writes `bytes` as NAME.so and loads it.
  static LoadResult load(const std::string& name, const std::vector<char>& bytes) {
    std::string path = dir_->file(name + ".so");
    testing::writeBytes(path, bytes);
    return tryLoad(path);
  }
  static std::string where(const std::string& name) { return "artifact '" + dir_->file(name + ".so") + "': "; }

  // The artifact with its description changed by `edit`, re-serialized in
  // place (padded to the section's size) and resealed.
  template <typename Edit>
  static std::vector<char> tampered(Edit edit) {
    std::vector<char> bytes = *bytes_;
    std::span<const uint8_t> file(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    std::string error;
    auto section = artifact::findElfSection(file, artifact::kDescSection, &error);
    EXPECT_TRUE(section.has_value()) << error;
    auto desc = artifact::parse(file.subspan(section->offset, section->size), &error);
    EXPECT_TRUE(desc.has_value()) << error;
    edit(*desc);
    std::vector<uint8_t> serialized = artifact::serialize(*desc);
    EXPECT_LE(serialized.size(), section->size) << "the edit made the description larger than its section";
    serialized.resize(section->size, 0);
    std::memcpy(bytes.data() + section->offset, serialized.data(), serialized.size());
    return resealed(bytes);
  }
  static std::vector<char> resealed(std::vector<char> bytes) {
    std::span<const uint8_t> file(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    std::string error;
    auto section = artifact::findElfSection(file, artifact::kDescSection, &error);
    uint64_t hash = artifact::hashArtifact(file, *section);
    std::memcpy(bytes.data() + section->offset + artifact::kContentHashOffset, &hash, sizeof(hash));
    return bytes;
  }

  static TempDir* dir_;
  static std::string artifact_;
  static std::vector<char>* bytes_;
};
TempDir* HostileArtifactTest::dir_ = nullptr;
std::string HostileArtifactTest::artifact_;
std::vector<char>* HostileArtifactTest::bytes_ = nullptr;

TEST_F(HostileArtifactTest, TheUntamperedArtifactLoads) {
  LoadResult r = tryLoad(artifact_);
  EXPECT_EQ(r.status, KILN_OK) << r.message;
}

TEST_F(HostileArtifactTest, TruncatedInsideTheElfHeader) {
  LoadResult r = load("short", std::vector<char>(bytes_->begin(), bytes_->begin() + 40));
  EXPECT_EQ(r.status, KILN_ERROR_INVALID_ARTIFACT);
  EXPECT_EQ(r.message, where("short") + "the file is truncated (40 bytes, shorter than the 64-byte ELF header)");
  r = load("empty", {});
  EXPECT_EQ(r.status, KILN_ERROR_INVALID_ARTIFACT);
  EXPECT_EQ(r.message, where("empty") + "the file is truncated (0 bytes, shorter than the 64-byte ELF header)");
}

TEST_F(HostileArtifactTest, ShortFileThatIsNotElf) {
  std::string text = "hello\n";
  LoadResult r = load("text", std::vector<char>(text.begin(), text.end()));
  EXPECT_EQ(r.status, KILN_ERROR_INVALID_ARTIFACT);
  EXPECT_EQ(r.message, where("text") + "not an ELF shared object (wrong magic): not a Kiln artifact");
}

// The loader reads the whole file: one larger than the machine's memory (a
// sparse file, which costs no disk) is refused before anything is read.
TEST_F(HostileArtifactTest, LargerThanMemory) {
  uint64_t memory_bytes =
      static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<uint64_t>(sysconf(_SC_PAGE_SIZE));
  uint64_t file_bytes = std::max<uint64_t>(memory_bytes * 2, uint64_t{1} << 40);
  std::string path = dir_->file("huge.so");
  testing::writeBytes(path, *bytes_);
  std::filesystem::resize_file(path, file_bytes);
  LoadResult r = tryLoad(path);
  std::filesystem::remove(path);
  EXPECT_EQ(r.status, KILN_ERROR_IO);
  EXPECT_EQ(r.message, "artifact '" + path + "' is " + std::to_string(file_bytes) +
                           " bytes, more than this machine's memory (" + std::to_string(memory_bytes) + " bytes)");
}

TEST_F(HostileArtifactTest, TruncatedBeforeTheSectionTable) {
  LoadResult r = load("half", std::vector<char>(bytes_->begin(), bytes_->begin() + bytes_->size() / 2));
  EXPECT_EQ(r.status, KILN_ERROR_INVALID_ARTIFACT);
  EXPECT_EQ(r.message, where("half") + "the file is truncated or its section table is damaged");
}

// Sampled across the file, and at every byte of the description (whose
// dims, workspace size and kinds size the runtime's buffers), except the 8
// bytes of the checksum itself.
TEST_F(HostileArtifactTest, EveryBitFlipIsCaught) {
  std::span<const uint8_t> file(reinterpret_cast<const uint8_t*>(bytes_->data()), bytes_->size());
  std::string error;
  auto section = artifact::findElfSection(file, artifact::kDescSection, &error);
  ASSERT_TRUE(section.has_value()) << error;
  std::vector<size_t> where;
  for (size_t at = 0; at < bytes_->size(); at += std::max<size_t>(1, bytes_->size() / 300)) where.push_back(at);
  for (size_t at = section->offset; at < section->offset + section->size; ++at) where.push_back(at);
  const size_t hash_field = section->offset + artifact::kContentHashOffset;
  int loaded = 0, tried = 0;
  for (size_t at : where) {
    if (at >= hash_field && at < hash_field + sizeof(uint64_t)) continue;
    for (char bit : {char{0x01}, char{0x40}}) {
      std::vector<char> flipped = *bytes_;
      flipped[at] ^= bit;
      LoadResult r = load("flipped", flipped);
      ++tried;
      if (r.status == KILN_OK) ++loaded;
      EXPECT_NE(r.status, KILN_OK) << "flip of bit " << int{bit} << " at byte " << at << " went unnoticed";
      EXPECT_FALSE(r.message.empty());
      EXPECT_EQ(r.message.find('\n'), std::string::npos) << r.message;
    }
  }
  EXPECT_GT(tried, 300);
  EXPECT_EQ(loaded, 0);
}

// A description that still parses, with an output dim changed: refused by the
// checksum before anything sizes a buffer from it.
TEST_F(HostileArtifactTest, ChangedDescriptionFailsTheChecksum) {
  std::vector<char> bytes = *bytes_;
  std::span<const uint8_t> file(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  std::string error;
  auto section = artifact::findElfSection(file, artifact::kDescSection, &error);
  ASSERT_TRUE(section.has_value()) << error;
  auto desc = artifact::parse(file.subspan(section->offset, section->size), &error);
  ASSERT_TRUE(desc.has_value()) << error;
  ASSERT_FALSE(desc->outputs.empty());
  ASSERT_FALSE(desc->outputs[0].dims.empty());
  desc->outputs[0].dims[0] = 0;
  std::vector<uint8_t> serialized = artifact::serialize(*desc);
  ASSERT_LE(serialized.size(), section->size);
  serialized.resize(section->size, 0);
  std::memcpy(bytes.data() + section->offset, serialized.data(), serialized.size());
  LoadResult r = load("desc_edit", bytes);
  EXPECT_EQ(r.status, KILN_ERROR_INVALID_ARTIFACT);
  EXPECT_EQ(r.message, where("desc_edit") + "checksum mismatch: the file was damaged or modified after compilation");
}

TEST_F(HostileArtifactTest, BitFlipInTheCodeFailsTheChecksum) {
  std::vector<char> flipped = *bytes_;
  flipped[0x1000 < flipped.size() ? 0x1000 : flipped.size() / 2] ^= 0x01;
  LoadResult r = load("code_flip", flipped);
  EXPECT_EQ(r.status, KILN_ERROR_INVALID_ARTIFACT);
  EXPECT_EQ(r.message, where("code_flip") + "checksum mismatch: the file was damaged or modified after compilation");
}

TEST_F(HostileArtifactTest, ForeignSharedObject) {
  LoadResult r = tryLoad(std::string(KILN_BUILD_DIR) + "/lib/libkiln_rt.so");
  EXPECT_EQ(r.status, KILN_ERROR_INVALID_ARTIFACT);
  EXPECT_EQ(r.message, "artifact '" + std::string(KILN_BUILD_DIR) +
                           "/lib/libkiln_rt.so': no .kiln.desc section: a shared object, but not a Kiln artifact");
}

TEST_F(HostileArtifactTest, ElfForAnotherMachine) {
  std::vector<char> bytes = *bytes_;
  uint16_t aarch64 = EM_AARCH64;
  std::memcpy(bytes.data() + offsetof(Elf64_Ehdr, e_machine), &aarch64, sizeof(aarch64));
  LoadResult r = load("arm", bytes);
  EXPECT_EQ(r.status, KILN_ERROR_INVALID_ARTIFACT);
  EXPECT_EQ(r.message, where("arm") + "ELF file for another machine (need x86-64, 64-bit little-endian)");
}

TEST_F(HostileArtifactTest, FutureFormatVersion) {
  std::vector<char> bytes = *bytes_;
  std::span<const uint8_t> file(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  std::string error;
  auto section = artifact::findElfSection(file, artifact::kDescSection, &error);
  uint32_t version = 99;
  std::memcpy(bytes.data() + section->offset + 8, &version, sizeof(version));
  LoadResult r = load("v99", bytes);
  EXPECT_EQ(r.status, KILN_ERROR_UNSUPPORTED);
  EXPECT_EQ(r.message, where("v99") + "artifact format version 99 is not supported (this runtime reads version " +
                           std::to_string(artifact::kFormatVersion) + "); recompile the model with a matching kiln");
}

TEST_F(HostileArtifactTest, OtherRuntimeAbi) {
  LoadResult r = load("abi", tampered([](artifact::ModelDesc& d) { d.abi_version = 99; }));
  EXPECT_EQ(r.status, KILN_ERROR_UNSUPPORTED);
  EXPECT_EQ(r.message, where("abi") + "artifact uses runtime ABI 99, this runtime speaks ABI " +
                           std::to_string(artifact::kAbiVersion) + "; recompile the model");
}

TEST_F(HostileArtifactTest, UnknownCpuFeature) {
  LoadResult r = load("feature", tampered([](artifact::ModelDesc& d) { d.cpu_features = {"warp"}; }));
  EXPECT_EQ(r.status, KILN_ERROR_UNSUPPORTED);
  EXPECT_EQ(r.message, where("feature") + "artifact requires CPU feature 'warp', unknown to this runtime");
}

// Found by fuzz_artifact: the dtype code was cast to the kiln_dtype enum unchecked.
TEST_F(HostileArtifactTest, DescriptionWithUnknownDtype) {
  LoadResult r = load("dtype", tampered([](artifact::ModelDesc& d) { d.outputs[0].dtype = 11777; }));
  EXPECT_EQ(r.status, KILN_ERROR_INVALID_ARTIFACT);
  EXPECT_EQ(r.message, where("dtype") + "the model description's output 0 'y' has unknown dtype 11777");
}

TEST_F(HostileArtifactTest, DescriptionWithRankBeyondTheApi) {
  LoadResult r = load("rank", tampered([](artifact::ModelDesc& d) {
                        // Room for the extra dims: this check comes before the ones that read these.
                        d.options.clear();
                        d.model_hash.clear();
                        d.producer.clear();
                        d.cpu_name.clear();
                        d.cpu_features.clear();
                        d.entry_symbol.clear();
                        for (auto& k : d.kernels) k.name.clear(), k.origin.clear();
                        d.outputs[0].dims.assign(KILN_MAX_RANK + 1, 1);
                        d.outputs[0].dim_names.assign(KILN_MAX_RANK + 1, "");
                      }));
  EXPECT_EQ(r.status, KILN_ERROR_INVALID_ARTIFACT);
  EXPECT_EQ(r.message, where("rank") + "the model description's output 0 'y' has rank 17 (at most 16)");
}

TEST_F(HostileArtifactTest, DescriptionWithNegativeOrHugeDims) {
  LoadResult r = load("dims", tampered([](artifact::ModelDesc& d) { d.inputs[0].dims[0] = -7; }));
  EXPECT_EQ(r.status, KILN_ERROR_INVALID_ARTIFACT);
  EXPECT_EQ(r.message, where("dims") + "the model description's input 0 'x' has a dimension of -7");
  r = load("huge", tampered([](artifact::ModelDesc& d) { d.inputs[0].dims = {int64_t{1} << 40, int64_t{1} << 40, 1}; }));
  EXPECT_EQ(r.status, KILN_ERROR_INVALID_ARTIFACT);
  EXPECT_EQ(r.message, where("huge") + "the model description's input 0 'x' has a dimension of 1099511627776");
  r = load("arena", tampered([](artifact::ModelDesc& d) { d.workspace_bytes = ~uint64_t{0} - 8; }));
  EXPECT_EQ(r.status, KILN_ERROR_INVALID_ARTIFACT);
  EXPECT_EQ(r.message, where("arena") + "the model description asks for a 18446744073709551607-byte workspace");
}

// An artifact compiled with --features for something this CPU lacks is
// refused at load, naming the feature; and the same flags give the same bytes.
TEST(ArtifactTargetTest, CompiledForAFeatureTheHostLacks) {
  std::string absent;
  for (std::string_view f : cpu::knownFeatures())
    if (!cpu::hostHas(f) && f.rfind("amx-", 0) != 0) {  // AMX also needs OS permission: keep to plain ISA features
      absent = std::string(f);
      break;
    }
  if (absent.empty()) GTEST_SKIP() << "this host has every CPU feature Kiln knows; nothing to refuse";
  TempDir dir;
  driver::CompileOptions options;
  options.codegen.features = "+" + absent;
  testing::compileOrFail(testing::nodeCase("test_relu") + "/model.onnx", dir.file("a.so"), options);
  testing::compileOrFail(testing::nodeCase("test_relu") + "/model.onnx", dir.file("b.so"), options);
  EXPECT_EQ(testing::readBytes(dir.file("a.so")), testing::readBytes(dir.file("b.so")));
  LoadResult r = tryLoad(dir.file("a.so"));
  EXPECT_EQ(r.status, KILN_ERROR_UNSUPPORTED) << r.message;
  EXPECT_NE(r.message.find("needs " + absent), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("which this machine lacks; recompile with --cpu/--features for this host"),
            std::string::npos)
      << r.message;
}

TEST(ArtifactTargetTest, RecompilingGivesIdenticalBytesAtEveryOptLevel) {
  TempDir dir;
  for (int level : {0, 3}) {
    driver::CompileOptions options;
    options.codegen.opt_level = level;
    options.pipeline.opt_level = level;
    std::string a = dir.file("a" + std::to_string(level) + ".so"), b = dir.file("b" + std::to_string(level) + ".so");
    testing::compileOrFail(testing::exampleModel(), a, options);
    testing::compileOrFail(testing::exampleModel(), b, options);
    EXPECT_EQ(testing::readBytes(a), testing::readBytes(b)) << "-O" << level;
  }
}

}  // namespace
}  // namespace kiln
