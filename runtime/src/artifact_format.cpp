#include "artifact_format.h"

#include <algorithm>
#include <cstring>
#include <elf.h>

#include "byte_io.h"

namespace kiln::artifact {
namespace {

class Writer : public ByteWriter {
 public:
  void tensor(const TensorDesc& t) {
    str(t.name);
    u32(static_cast<uint32_t>(t.dtype));
    u32(static_cast<uint32_t>(t.dims.size()));
    for (size_t d = 0; d < t.dims.size(); ++d) {
      i64(t.dims[d]);
      str(d < t.dim_names.size() ? t.dim_names[d] : std::string());
      u32(static_cast<uint32_t>(d < t.dim_slots.size() ? t.dim_slots[d] : -1));
    }
  }
};

class Reader : public ByteReader {
 public:
  using ByteReader::ByteReader;
  bool tensor(TensorDesc& t) {
    t.name = str();
    t.dtype = static_cast<int32_t>(u32());
    uint32_t rank = u32();
    if (!ok() || rank > 64) return fail(), false;
    for (uint32_t d = 0; d < rank; ++d) {
      t.dims.push_back(i64());
      t.dim_names.push_back(str());
      t.dim_slots.push_back(static_cast<int32_t>(u32()));
    }
    return ok();
  }
};

uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
constexpr uint64_t kPrime1 = 0x9E3779B185EBCA87ull;
constexpr uint64_t kPrime2 = 0xC2B2AE3D27D4EB4Full;

}  // namespace

std::vector<uint8_t> serialize(const ModelDesc& desc) {
  Writer payload;
  payload.u32(desc.abi_version);
  for (const std::string* s : {&desc.target, &desc.cpu_name}) payload.str(*s);
  payload.u32(static_cast<uint32_t>(desc.cpu_features.size()));
  for (const std::string& f : desc.cpu_features) payload.str(f);
  for (const std::string* s : {&desc.cuda_arch, &desc.producer, &desc.model_hash, &desc.options, &desc.entry_symbol})
    payload.str(*s);
  payload.u64(desc.workspace_bytes);
  payload.u64(desc.kernel_count);
  for (const auto* list : {&desc.inputs, &desc.outputs}) {
    payload.u32(static_cast<uint32_t>(list->size()));
    for (const TensorDesc& t : *list) payload.tensor(t);
  }
  payload.u32(static_cast<uint32_t>(desc.kernels.size()));
  for (const KernelDesc& k : desc.kernels) {
    payload.str(k.name);
    payload.str(k.origin);
    payload.u64(k.flops);
  }
  payload.u32(desc.slot_count);
  payload.u32(static_cast<uint32_t>(desc.checks.size()));
  for (const std::string& c : desc.checks) payload.str(c);
  // The inputs whose shape the run does not check (TensorDesc::any_shape).
  std::vector<uint32_t> any_shape;
  for (size_t i = 0; i < desc.inputs.size(); ++i)
    if (desc.inputs[i].any_shape) any_shape.push_back(static_cast<uint32_t>(i));
  payload.u32(static_cast<uint32_t>(any_shape.size()));
  for (uint32_t i : any_shape) payload.u32(i);
  for (const auto* list : {&desc.inputs, &desc.outputs})
    for (const TensorDesc& t : *list) {
      payload.u32(t.kind);
      payload.u32(static_cast<uint32_t>(t.present_slot));
    }
  payload.u64(desc.weights_bytes);
  Writer out;
  out.bytes.assign(kMagic, kMagic + 8);
  out.u32(kFormatVersion);
  out.u32(0);
  out.u64(payload.bytes.size());
  out.u64(desc.content_hash);
  out.bytes.insert(out.bytes.end(), payload.bytes.begin(), payload.bytes.end());
  return out.bytes;
}

std::optional<ModelDesc> parse(std::span<const uint8_t> section, std::string* error) {
  if (section.size() < kHeaderBytes || std::memcmp(section.data(), kMagic, 8) != 0) {
    *error = "the model description is missing or damaged";
    return std::nullopt;
  }
  Reader header(section.subspan(8, kHeaderBytes - 8));
  uint32_t version = header.u32();
  header.u32();
  uint64_t payload_bytes = header.u64();
  uint64_t content_hash = header.u64();
  if (version != kFormatVersion) {
    *error = "artifact format version " + std::to_string(version) + " is not supported (this runtime reads version " +
             std::to_string(kFormatVersion) + "); recompile the model with a matching kiln";
    return std::nullopt;
  }
  if (payload_bytes > section.size() - kHeaderBytes) {
    *error = "the model description is truncated";
    return std::nullopt;
  }
  Reader in(section.subspan(kHeaderBytes, payload_bytes));
  ModelDesc desc;
  desc.content_hash = content_hash;
  desc.abi_version = in.u32();
  desc.target = in.str();
  desc.cpu_name = in.str();
  for (uint32_t n = in.count(4); n > 0 && in.ok(); --n) desc.cpu_features.push_back(in.str());
  for (std::string* s : {&desc.cuda_arch, &desc.producer, &desc.model_hash, &desc.options, &desc.entry_symbol})
    *s = in.str();
  desc.workspace_bytes = in.u64();
  desc.kernel_count = in.u64();
  for (auto* list : {&desc.inputs, &desc.outputs}) {
    for (uint32_t n = in.count(12); n > 0 && in.ok(); --n) {
      TensorDesc t;
      if (!in.tensor(t)) break;
      list->push_back(std::move(t));
    }
  }
  for (uint32_t n = in.count(16); n > 0 && in.ok(); --n) {
    KernelDesc k;
    k.name = in.str();
    k.origin = in.str();
    k.flops = in.u64();
    desc.kernels.push_back(std::move(k));
  }
  desc.slot_count = in.u32();
  for (uint32_t n = in.count(4); n > 0 && in.ok(); --n) desc.checks.push_back(in.str());
  for (uint32_t n = in.count(4); n > 0 && in.ok(); --n) {
    uint32_t i = in.u32();
    if (i >= desc.inputs.size()) {
      *error = "the model description is malformed (input " + std::to_string(i) + " of " +
               std::to_string(desc.inputs.size()) + " takes any shape)";
      return std::nullopt;
    }
    desc.inputs[i].any_shape = true;
  }
  for (auto* list : {&desc.inputs, &desc.outputs})
    for (TensorDesc& t : *list) {
      uint32_t kind = in.u32();
      t.present_slot = static_cast<int32_t>(in.u32());
      bool optional = kind == kKindOptionalTensor || kind == kKindOptionalSequence;
      if (in.ok() && (kind > kKindOptionalSequence || (optional && (t.present_slot <= 0 || static_cast<uint32_t>(t.present_slot) >= desc.slot_count)) ||
                      (!optional && t.present_slot != -1))) {
        *error = "the model description is malformed ('" + t.name + "' has kind " + std::to_string(kind) +
                 " and present slot " + std::to_string(t.present_slot) + ")";
        return std::nullopt;
      }
      t.kind = static_cast<uint8_t>(kind);
    }
  desc.weights_bytes = in.u64();
  if (!in.ok()) {
    *error = "the model description is malformed";
    return std::nullopt;
  }
  if (desc.kernels.size() != desc.kernel_count) {
    *error = "the model description is malformed (it lists " + std::to_string(desc.kernels.size()) + " kernels of " +
             std::to_string(desc.kernel_count) + ")";
    return std::nullopt;
  }
  return desc;
}

std::optional<SectionRef> findElfSection(std::span<const uint8_t> file, const char* name, std::string* error) {
  Elf64_Ehdr eh;
  // The magic is judged on the bytes there are: a file cut inside the header
  // is truncated, one that starts otherwise is something else.
  if (!file.empty() && std::memcmp(file.data(), ELFMAG, std::min<size_t>(file.size(), SELFMAG)) != 0) {
    *error = "not an ELF shared object (wrong magic): not a Kiln artifact";
    return std::nullopt;
  }
  if (file.size() < sizeof(eh)) {
    *error = "the file is truncated (" + std::to_string(file.size()) + " bytes, shorter than the " +
             std::to_string(sizeof(eh)) + "-byte ELF header)";
    return std::nullopt;
  }
  std::memcpy(&eh, file.data(), sizeof(eh));
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_machine != EM_X86_64) {
    *error = "ELF file for another machine (need x86-64, 64-bit little-endian)";
    return std::nullopt;
  }
  uint64_t table_end = eh.e_shoff + static_cast<uint64_t>(eh.e_shnum) * sizeof(Elf64_Shdr);
  if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shoff > file.size() || table_end > file.size() ||
      eh.e_shstrndx >= eh.e_shnum) {
    *error = "the file is truncated or its section table is damaged";
    return std::nullopt;
  }
  auto section = [&](size_t i) {
    Elf64_Shdr sh;
    std::memcpy(&sh, file.data() + eh.e_shoff + i * sizeof(Elf64_Shdr), sizeof(sh));
    return sh;
  };
  Elf64_Shdr names = section(eh.e_shstrndx);
  if (names.sh_offset > file.size() || names.sh_size > file.size() - names.sh_offset) {
    *error = "the file is truncated (section names lie past its end)";
    return std::nullopt;
  }
  for (size_t i = 0; i < eh.e_shnum; ++i) {
    Elf64_Shdr sh = section(i);
    if (sh.sh_name >= names.sh_size) continue;
    const char* sname = reinterpret_cast<const char*>(file.data() + names.sh_offset + sh.sh_name);
    size_t max_len = names.sh_size - sh.sh_name;
    if (strnlen(sname, max_len) == max_len || std::strcmp(sname, name) != 0) continue;
    if (sh.sh_offset > file.size() || sh.sh_size > file.size() - sh.sh_offset) {
      *error = std::string("the file is truncated (section ") + name + " lies past its end)";
      return std::nullopt;
    }
    return SectionRef{sh.sh_offset, sh.sh_size};
  }
  *error = std::string("no ") + name + " section: a shared object, but not a Kiln artifact";
  return std::nullopt;
}

namespace {

// One past the last byte the ELF image uses: its headers, program and section
// tables, every section with file contents and every segment. Called after
// findElfSection accepted the headers.
uint64_t elfImageEnd(std::span<const uint8_t> file) {
  Elf64_Ehdr eh;
  std::memcpy(&eh, file.data(), sizeof(eh));
  auto end_of = [](uint64_t offset, uint64_t size) { return size > UINT64_MAX - offset ? UINT64_MAX : offset + size; };
  uint64_t end = sizeof(eh);
  end = std::max(end, end_of(eh.e_shoff, static_cast<uint64_t>(eh.e_shnum) * sizeof(Elf64_Shdr)));
  uint64_t program_table = static_cast<uint64_t>(eh.e_phnum) * sizeof(Elf64_Phdr);
  if (eh.e_phentsize != sizeof(Elf64_Phdr) || end_of(eh.e_phoff, program_table) > file.size()) return UINT64_MAX;
  end = std::max(end, eh.e_phoff + program_table);
  for (size_t i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    std::memcpy(&ph, file.data() + eh.e_phoff + i * sizeof(ph), sizeof(ph));
    end = std::max(end, end_of(ph.p_offset, ph.p_filesz));
  }
  for (size_t i = 0; i < eh.e_shnum; ++i) {
    Elf64_Shdr sh;
    std::memcpy(&sh, file.data() + eh.e_shoff + i * sizeof(sh), sizeof(sh));
    if (sh.sh_type != SHT_NOBITS) end = std::max(end, end_of(sh.sh_offset, sh.sh_size));
  }
  return end;
}

}  // namespace

std::optional<SectionRef> findWeights(std::span<const uint8_t> file, const ModelDesc& desc, std::string* error) {
  if (desc.weights_bytes == 0) return SectionRef{file.size(), 0};
  if (desc.weights_bytes > file.size()) {
    *error = "the file is truncated (" + std::to_string(file.size()) + " bytes, but its weights alone take " +
             std::to_string(desc.weights_bytes) + ")";
    return std::nullopt;
  }
  const uint64_t offset = file.size() - desc.weights_bytes;
  if (offset % kWeightsAlignment != 0 || elfImageEnd(file) > offset) {
    *error = "the weights (the last " + std::to_string(desc.weights_bytes) + " bytes) do not start on a " +
             std::to_string(kWeightsAlignment) + "-byte boundary after the code: the file was truncated or extended";
    return std::nullopt;
  }
  return SectionRef{offset, desc.weights_bytes};
}

Hasher::Hasher(uint64_t total, uint64_t seed) : h_(seed ^ (total * kPrime1)) {}

void Hasher::update(std::span<const uint8_t> bytes) {
  auto word = [&](const uint8_t* p) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h_ = rotl(h_ ^ (w * kPrime2), 31) * kPrime1;
  };
  size_t i = 0;
  if (pending_size_ > 0) {
    while (pending_size_ < 8 && i < bytes.size()) pending_[pending_size_++] = bytes[i++];
    if (pending_size_ < 8) return;
    word(pending_);
    pending_size_ = 0;
  }
  for (; i + 8 <= bytes.size(); i += 8) word(bytes.data() + i);
  for (; i < bytes.size(); ++i) pending_[pending_size_++] = bytes[i];
}

uint64_t Hasher::finish() {
  for (size_t i = 0; i < pending_size_; ++i) h_ = rotl(h_ ^ (pending_[i] * kPrime1), 11) * kPrime2;
  pending_size_ = 0;
  h_ ^= h_ >> 33;
  h_ *= kPrime2;
  h_ ^= h_ >> 29;
  return h_;
}

uint64_t hashBytes(std::span<const uint8_t> bytes, uint64_t seed) {
  Hasher h(bytes.size(), seed);
  h.update(bytes);
  return h.finish();
}

uint64_t hashArtifact(std::span<const uint8_t> file, SectionRef desc) {
  const uint64_t field = desc.offset + kContentHashOffset;
  if (desc.size < kHeaderBytes || field + sizeof(uint64_t) > file.size()) return hashBytes(file, 1);
  uint64_t h = hashBytes(file.subspan(0, field), 1);
  return hashBytes(file.subspan(field + sizeof(uint64_t)), h);
}

}  // namespace kiln::artifact
