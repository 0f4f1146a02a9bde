// Loading an artifact: every check happens on the file's bytes before the
// dynamic loader sees it, and the loader then maps exactly the bytes that were
// checked (a sealed memfd copy), so a file changed after the check is never run.
#include <cerrno>
#include <cstring>
#include <dlfcn.h>
#include <fcntl.h>
#include <fstream>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cpu_features.h"
#include "model.h"

namespace kiln::runtime {
namespace {

uint64_t physicalMemoryBytes() {
  long pages = sysconf(_SC_PHYS_PAGES), page_bytes = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page_bytes <= 0) return UINT64_MAX;  // unknown: leave it to the allocation
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_bytes);
}

// The artifact's bytes, staged once in an anonymous memory file that is
// sealed against change and mapped read-only: every check reads this
// mapping, the dynamic loader maps the same file, and the weights blob is
// read in place from it. So a file changed after the check is never run, and
// the artifact is in memory once.
struct StagedFile {
  int fd = -1;
  const uint8_t* data = nullptr;
  size_t size = 0;

  std::span<const uint8_t> bytes() const { return {data, size}; }
  void release() {
    if (data) munmap(const_cast<uint8_t*>(data), size);
    if (fd >= 0) close(fd);
    *this = {};
  }
};

kiln_status stageFile(const char* path, StagedFile& staged, std::string& message) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below as not regular.
  int in = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (in < 0) {
    message = std::string("cannot open artifact '") + path + "': " + std::strerror(errno);
    return KILN_ERROR_IO;
  }
  struct stat st;
  if (fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(in);
    message = std::string("artifact '") + path + "' is not a regular file";
    return KILN_ERROR_IO;
  }
  // The whole file is staged in memory: one larger than the machine's memory
  // cannot load, and a sparse file can claim terabytes.
  uint64_t memory_bytes = physicalMemoryBytes();
  if (static_cast<uint64_t>(st.st_size) > memory_bytes) {
    close(in);
    message = std::string("artifact '") + path + "' is " + std::to_string(st.st_size) +
              " bytes, more than this machine's memory (" + std::to_string(memory_bytes) + " bytes)";
    return KILN_ERROR_IO;
  }
  staged.fd = memfd_create("kiln-artifact", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (staged.fd < 0) {
    close(in);
    message = std::string("memfd_create failed: ") + std::strerror(errno);
    return KILN_ERROR_IO;
  }
  std::vector<char> piece(1 << 20);
  for (uint64_t left = static_cast<uint64_t>(st.st_size); left > 0;) {
    ssize_t n = read(in, piece.data(), std::min<uint64_t>(left, piece.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(in);
      staged.release();
      message = std::string("cannot read artifact '") + path + "'";
      return KILN_ERROR_IO;
    }
    for (ssize_t done = 0; done < n;) {
      ssize_t w = write(staged.fd, piece.data() + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        close(in);
        staged.release();
        message = "cannot stage the artifact in memory: " + std::string(std::strerror(errno));
        return KILN_ERROR_IO;
      }
      done += w;
    }
    left -= static_cast<uint64_t>(n);
  }
  close(in);
  // Best effort: the seals make the staged bytes immutable even to this process.
  fcntl(staged.fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
  staged.size = static_cast<size_t>(st.st_size);
  if (staged.size > 0) {
    void* p = mmap(nullptr, staged.size, PROT_READ, MAP_SHARED, staged.fd, 0);
    if (p == MAP_FAILED) {
      staged.release();
      message = std::string("cannot map the staged artifact: ") + std::strerror(errno);
      return KILN_ERROR_IO;
    }
    staged.data = static_cast<const uint8_t*>(p);
  }
  return KILN_OK;
}

kiln_status checkHost(const artifact::ModelDesc& desc, std::string& message) {
  if (desc.target != "cpu") {
    message = "artifact targets '" + desc.target + "', which this runtime build cannot run";
    return KILN_ERROR_UNSUPPORTED;
  }
  if (desc.abi_version != artifact::kAbiVersion) {
    message = "artifact uses runtime ABI " + std::to_string(desc.abi_version) + ", this runtime speaks ABI " +
              std::to_string(artifact::kAbiVersion) + "; recompile the model";
    return KILN_ERROR_UNSUPPORTED;
  }
  for (const std::string& f : desc.cpu_features) {
    if (!cpu::isKnownFeature(f)) {
      message = "artifact requires CPU feature '" + f + "', unknown to this runtime";
      return KILN_ERROR_UNSUPPORTED;
    }
  }
  std::vector<std::string> missing = cpu::missingFeatures(desc.cpu_features);
  if (!missing.empty()) {
    std::string list;
    for (const std::string& f : missing) list += (list.empty() ? "" : ", ") + f;
    message = "artifact was compiled for CPU '" + desc.cpu_name + "' and needs " + list +
              ", which this machine lacks; recompile with --cpu/--features for this host";
    return KILN_ERROR_UNSUPPORTED;
  }
  for (const std::string& f : desc.cpu_features) {
    if (f.rfind("amx-", 0) == 0 && !cpu::enableAmx()) {
      message = "artifact uses AMX, but the kernel refused AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM)";
      return KILN_ERROR_UNSUPPORTED;
    }
  }
  return KILN_OK;
}

// Bytes per element of an ONNX dtype code; 0 for strings and unknown codes.
// (Read from the file as an integer: casting an arbitrary value to the
// kiln_dtype enum first would be undefined.)
uint64_t dtypeBytes(int32_t dtype) {
  switch (dtype) {
    case KILN_UINT8: case KILN_INT8: case KILN_BOOL: return 1;
    case KILN_UINT16: case KILN_INT16: case KILN_FLOAT16: case KILN_BFLOAT16: return 2;
    case KILN_FLOAT32: case KILN_INT32: case KILN_UINT32: return 4;
    case KILN_INT64: case KILN_UINT64: case KILN_FLOAT64: return 8;
    case KILN_STRING: return sizeof(const char*);  // a pointer per element
    default: return 0;
  }
}

// The description is sealed by the checksum, but it is read before any code
// runs and then trusted by the C API (kiln_tensor holds KILN_MAX_RANK dims;
// buffer sizes are products of dims): refuse what the API cannot represent.
kiln_status checkDescription(const artifact::ModelDesc& desc, std::string& message) {
  constexpr uint64_t kMaxBytes = uint64_t{1} << 48;  // far beyond any real tensor or arena
  if (desc.workspace_bytes > kMaxBytes) {
    message = "the model description asks for a " + std::to_string(desc.workspace_bytes) + "-byte workspace";
    return KILN_ERROR_INVALID_ARTIFACT;
  }
  if (desc.slot_count > artifact::kMaxSlots || desc.slot_count == 1 || desc.checks.size() > artifact::kMaxChecks) {
    message = "the model description has " + std::to_string(desc.slot_count) + " dim slots and " +
              std::to_string(desc.checks.size()) + " run-time checks";
    return KILN_ERROR_INVALID_ARTIFACT;
  }
  for (const auto* list : {&desc.inputs, &desc.outputs}) {
    const char* role = list == &desc.inputs ? "input" : "output";
    for (size_t i = 0; i < list->size(); ++i) {
      const artifact::TensorDesc& t = (*list)[i];
      std::string where = std::string("the model description's ") + role + " " + std::to_string(i) + " '" + t.name + "'";
      uint64_t bytes = dtypeBytes(t.dtype);
      if (bytes == 0) {
        message = where + " has unknown dtype " + std::to_string(t.dtype);
        return KILN_ERROR_INVALID_ARTIFACT;
      }
      if (t.dims.size() > KILN_MAX_RANK || t.dim_names.size() != t.dims.size() || t.dim_slots.size() != t.dims.size()) {
        message = where + " has rank " + std::to_string(t.dims.size()) + " (at most " + std::to_string(KILN_MAX_RANK) +
                  ")";
        return KILN_ERROR_INVALID_ARTIFACT;
      }
      for (size_t k = 0; k < t.dims.size(); ++k) {
        // A run-time dim (-1) names a slot other than the error slot; a static one none.
        // A sequence's element dims have no slot (each element has its own).
        int32_t slot = t.dim_slots[k];
        bool sequence = t.kind == artifact::kKindSequence || t.kind == artifact::kKindOptionalSequence;
        if ((sequence ? slot != -1 : (t.dims[k] == -1) != (slot >= 0)) || slot < -1 || slot == 0 ||
            (slot > 0 && static_cast<uint32_t>(slot) >= desc.slot_count)) {
          message = where + " has dimension " + std::to_string(k) + " in dim slot " + std::to_string(slot) + " of " +
                    std::to_string(desc.slot_count);
          return KILN_ERROR_INVALID_ARTIFACT;
        }
      }
      for (int64_t d : t.dims) {
        if (d < -1 || (d > 0 && bytes > kMaxBytes / static_cast<uint64_t>(d))) {
          message = where + " has a dimension of " + std::to_string(d);
          return KILN_ERROR_INVALID_ARTIFACT;
        }
        if (d > 0) bytes *= static_cast<uint64_t>(d);
      }
    }
  }
  return KILN_OK;
}

// dlopen()s the staged file. It stays open while the library is loaded: the
// loader knows a library by its path, /proc/self/fd/N, and would hand a later
// model whose memory file got the same descriptor number the first model's
// code.
void* openChecked(const StagedFile& staged, std::string& message) {
  std::string proc_path = "/proc/self/fd/" + std::to_string(staged.fd);
  void* handle = dlopen(proc_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) message = std::string("the dynamic loader refused the artifact: ") + dlerror();
  return handle;
}

void buildViews(kiln_model& model) {
  auto view = [](const artifact::TensorDesc& t) {
    kiln_model::TensorView v;
    v.dims = t.dims;
    for (const std::string& s : t.dim_names) v.dim_names.push_back(s.c_str());
    return v;
  };
  for (const auto& t : model.desc.inputs) model.input_views.push_back(view(t));
  for (const auto& t : model.desc.outputs) model.output_views.push_back(view(t));
  const artifact::ModelDesc& d = model.desc;
  std::string features;
  for (const std::string& f : d.cpu_features) features += (features.empty() ? "" : ",") + f;
  char hash[17];
  std::snprintf(hash, sizeof(hash), "%016llx", static_cast<unsigned long long>(d.content_hash));
  model.metadata = {{"target", d.target},
                    {"cpu", d.cpu_name},
                    {"cpu_features", features},
                    {"cuda_arch", d.cuda_arch},
                    {"producer", d.producer},
                    {"model_hash", d.model_hash},
                    {"options", d.options},
                    {"content_hash", hash},
                    {"workspace_bytes", std::to_string(d.workspace_bytes)},
                    {"kernel_count", std::to_string(d.kernel_count)}};
}

}  // namespace

kiln_status checkArtifact(std::span<const uint8_t> bytes, artifact::ModelDesc& desc, std::string& message) {
  auto section = artifact::findElfSection(bytes, artifact::kDescSection, &message);
  if (!section) return KILN_ERROR_INVALID_ARTIFACT;
  auto parsed = artifact::parse(bytes.subspan(section->offset, section->size), &message);
  if (!parsed) return message.find("version") != std::string::npos ? KILN_ERROR_UNSUPPORTED : KILN_ERROR_INVALID_ARTIFACT;
  if (artifact::hashArtifact(bytes, *section) != parsed->content_hash) {
    message = "checksum mismatch: the file was damaged or modified after compilation";
    return KILN_ERROR_INVALID_ARTIFACT;
  }
  if (kiln_status s = checkDescription(*parsed, message); s != KILN_OK) return s;
  if (!artifact::findWeights(bytes, *parsed, &message)) return KILN_ERROR_INVALID_ARTIFACT;
  kiln_status host = parsed->target == "cuda" ? checkCudaArtifact(bytes, *parsed, message) : checkHost(*parsed, message);
  if (host != KILN_OK) return host;
  desc = std::move(*parsed);
  return KILN_OK;
}

kiln_status loadModel(const char* path, std::unique_ptr<kiln_model>& model, std::string& message) {
  StagedFile staged;
  if (kiln_status s = stageFile(path, staged, message); s != KILN_OK) return s;
  std::string where = std::string("artifact '") + path + "': ";
  std::string error;
  artifact::ModelDesc desc;
  if (kiln_status s = checkArtifact(staged.bytes(), desc, error); s != KILN_OK) {
    staged.release();
    message = where + error;
    return s;
  }
  model = std::make_unique<kiln_model>();
  model->desc = std::move(desc);
  if (model->desc.target == "cuda") {  // GPU kernels from the checked bytes; no host code to map
    kiln_status s = CudaModel::load(staged.bytes(), model->desc, model->cuda, error);
    staged.release();  // the session uploads what it needs from the CudaModel's copies
    if (s != KILN_OK) {
      message = where + error;
      return s;
    }
    buildViews(*model);
    return KILN_OK;
  }
  // The model owns the staged file from here, and frees it with itself.
  model->library_fd = staged.fd;
  model->file = staged.data;
  model->file_bytes = staged.size;
  if (model->desc.weights_bytes > 0) model->weights = staged.data + (staged.size - model->desc.weights_bytes);
  model->library = openChecked(staged, error);
  if (!model->library) {
    message = where + error;
    return KILN_ERROR_INVALID_ARTIFACT;
  }
  model->entry = reinterpret_cast<kiln_entry_fn>(dlsym(model->library, model->desc.entry_symbol.c_str()));
  if (!model->entry) {
    message = where + "entry point '" + model->desc.entry_symbol + "' is missing";
    return KILN_ERROR_INVALID_ARTIFACT;
  }
  buildViews(*model);
  return KILN_OK;
}

}  // namespace kiln::runtime

kiln_model::~kiln_model() {
  if (library) dlclose(library);
  if (file) munmap(const_cast<uint8_t*>(file), file_bytes);
  if (library_fd >= 0) close(library_fd);
}
