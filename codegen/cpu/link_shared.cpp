// Linking with LLD in-process, so compiling needs no external toolchain, and
// sealing the result with its checksum.
#include <filesystem>
#include <fstream>
#include <mutex>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <span>
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

Status sealArtifact(const std::string& path, const WeightBlob* weights) {
  KILN_ASSIGN_OR_RETURN(std::vector<uint8_t> image, readAll(path));
  std::string error;
  auto section = artifact::findElfSection(image, artifact::kDescSection, &error);
  if (!section) return internalError("linked artifact lacks its description: " + error);
  auto desc = artifact::parse(std::span(image).subspan(section->offset, section->size), &error);
  if (!desc) return internalError("linked artifact's description: " + error);
  const uint64_t blob_bytes = weights ? weights->bytes() : 0;
  if (desc->weights_bytes != blob_bytes)
    return internalError("the description counts " + std::to_string(desc->weights_bytes) + " bytes of weights, not " +
                         std::to_string(blob_bytes));
  const uint64_t blob_offset = blob_bytes == 0 ? image.size()
                                               : (image.size() + artifact::kWeightsAlignment - 1) /
                                                     artifact::kWeightsAlignment * artifact::kWeightsAlignment;
  const uint64_t field = section->offset + artifact::kContentHashOffset;
  const uint64_t file_bytes = blob_offset + blob_bytes;
  // artifact::hashArtifact's two parts: the bytes before the hash field, then
  // everything after it, the weights hashed as they are copied.
  std::span<const uint8_t> all(image);
  artifact::Hasher rest(file_bytes - field - sizeof(uint64_t), artifact::hashBytes(all.subspan(0, field), 1));
  rest.update(all.subspan(field + sizeof(uint64_t)));

  int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return ioError("cannot write '" + path + "': " + std::strerror(errno));
  std::string write_error;
  auto put = [&](std::span<const uint8_t> bytes) {
    while (!bytes.empty() && write_error.empty()) {
      ssize_t n = ::write(fd, bytes.data(), bytes.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) write_error = std::strerror(errno);
      else bytes = bytes.subspan(static_cast<size_t>(n));
    }
  };
  static const uint8_t kZeros[4096] = {};
  auto pad = [&](uint64_t count) {
    for (; count > 0; count -= std::min<uint64_t>(count, sizeof(kZeros))) {
      std::span<const uint8_t> zeros(kZeros, std::min<uint64_t>(count, sizeof(kZeros)));
      rest.update(zeros);
      put(zeros);
    }
  };
  put(all);
  pad(blob_offset - image.size());
  image = {};
  Status copied = !weights ? Status::ok() : weights->read([&](std::span<const uint8_t> bytes) {
    rest.update(bytes);
    put(bytes);
  });
  if (!copied.isOk()) {
    ::close(fd);
    return copied;
  }
  uint64_t hash = rest.finish();
  if (write_error.empty() && ::pwrite(fd, &hash, sizeof(hash), static_cast<off_t>(field)) != sizeof(hash))
    write_error = std::strerror(errno);
  if (::close(fd) != 0 && write_error.empty()) write_error = std::strerror(errno);
  if (!write_error.empty()) return ioError("cannot write '" + path + "': " + write_error);
  return Status::ok();
}

}  // namespace kiln::codegen::cpu
