// Linking with LLD in-process, so compiling needs no external toolchain, and
// sealing the result with its checksum.
#include <filesystem>
#include <fstream>
#include <mutex>
#include <cstring>
#include <unistd.h>

#include <lld/Common/Driver.h>
#include <llvm/Support/raw_ostream.h>

#include "artifact_format.h"
#include "codegen/cpu/compile_object.h"

LLD_HAS_DRIVER(elf)

namespace kiln::codegen::cpu {
namespace {

Expected<std::vector<uint8_t>> readAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ioError("cannot read '" + path + "'");
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

Status writeAll(const std::string& path, const void* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) return ioError("cannot write '" + path + "'");
  return Status::ok();
}

}  // namespace

Status linkSharedObject(const std::vector<char>& object, const std::string& path) {
  namespace fs = std::filesystem;
  // LLD keeps global state: one link at a time per process.
  static std::mutex link_mutex;
  std::lock_guard<std::mutex> lock(link_mutex);
  std::error_code ec;
  fs::path dir = fs::temp_directory_path(ec) / ("kiln-link-" + std::to_string(::getpid()));
  fs::create_directories(dir, ec);
  if (ec) return ioError("cannot create a temporary folder for linking: " + ec.message());
  // The object's name is not recorded in the output, so artifacts stay byte-identical.
  std::string object_path = (dir / "model.o").string();
  KILN_RETURN_IF_ERROR(writeAll(object_path, object.data(), object.size()));

  std::vector<const char*> args = {"ld.lld", "-shared", "--build-id=none", "-z", "noexecstack", "-z", "now",
                                   "--hash-style=gnu", "-O1", "-o", path.c_str(), object_path.c_str()};
  std::string out_text, err_text;
  llvm::raw_string_ostream out(out_text), err(err_text);
  lld::Result result = lld::lldMain(args, out, err, {{lld::Gnu, &lld::elf::link}});
  fs::remove_all(dir, ec);
  if (result.retCode != 0) return ioError("linking '" + path + "' failed: " + err.str());
  return Status::ok();
}

Status sealArtifact(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, readAll(path));
  std::string error;
  auto section = artifact::findElfSection(bytes, artifact::kDescSection, &error);
  if (!section) return internalError("linked artifact lacks its description: " + error);
  if (section->size < artifact::kHeaderBytes) return internalError("description section too small");
  uint64_t hash = artifact::hashArtifact(bytes, *section);
  std::memcpy(bytes.data() + section->offset + artifact::kContentHashOffset, &hash, sizeof(hash));
  return writeAll(path, bytes.data(), bytes.size());
}

}  // namespace kiln::codegen::cpu
