// libFuzzer target: bytes -> every check the runtime makes on an artifact
// before it maps any of it (runtime::checkArtifact: ELF headers, section
// table, the .kiln.desc description, versions, checksum, description limits,
// CPU features). Nothing fuzzed is ever dlopen()ed or run.
//
// A mutated file almost never keeps its checksum, which would stop the
// fuzzer at the checksum compare. So each input is checked twice: as it is,
// and with its checksum recomputed ("resealed"), which lets mutations of the
// description reach the checks behind the checksum.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "artifact_format.h"
#include "model.h"

namespace {

void check(std::span<const uint8_t> bytes) {
  kiln::artifact::ModelDesc desc;
  std::string message;
  kiln_status status = kiln::runtime::checkArtifact(bytes, desc, message);
  if (status != KILN_OK && message.empty()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  check(bytes);
  std::string error;
  auto section = kiln::artifact::findElfSection(bytes, kiln::artifact::kDescSection, &error);
  if (!section || section->size < kiln::artifact::kHeaderBytes) return 0;
  std::vector<uint8_t> resealed(bytes.begin(), bytes.end());
  uint64_t hash = kiln::artifact::hashArtifact(resealed, *section);
  std::memcpy(resealed.data() + section->offset + kiln::artifact::kContentHashOffset, &hash, sizeof(hash));
  check(resealed);
  return 0;
}
