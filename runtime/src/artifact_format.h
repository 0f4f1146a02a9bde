// The artifact's model description and its place in the ELF file.
//
// A Kiln artifact is an ELF shared object. Its `.kiln.desc` section holds a
// ModelDesc in the binary layout below, so the runtime can read and check it
// (format version, checksum, CPU features) from the file bytes alone, before
// anything in the artifact is mapped or run. This file is shared by the
// compiler (writer) and the runtime (reader) and depends on the C++ standard
// library only.
//
// Section layout (little-endian):
//   0  char[8]  magic "KILNDSC\0"
//   8  u32      format version
//   12 u32      reserved (0)
//   16 u64      payload bytes
//   24 u64      content hash: over every byte of the file outside this section
//   32 ...      payload: fields in ModelDesc order, strings as u32 length + bytes
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace kiln::artifact {

inline constexpr char kMagic[8] = {'K', 'I', 'L', 'N', 'D', 'S', 'C', '\0'};
// 2: the per-kernel list (name, origin, FLOPs) after the outputs.
// 3: run-time shapes: a dim slot per symbolic dim of the inputs and outputs,
// the slot count and the run-time checks' messages after the kernels.
// 4: the inputs read only for their dtype (any shape) after the checks.
// 5: containers at the graph boundary: each input's and output's kind
// (tensor, sequence, optional tensor, optional sequence) and present slot
// after the any-shape list.
// 6: the checksum covers the description too, all but its own field.
// 7: CPU artifacts keep their large weights in a blob after the ELF image
// (`weights_bytes`, the description's last field).
inline constexpr uint32_t kFormatVersion = 7;
// Version of the calling convention between runtime and generated code
// (kiln_exec_context and the entry point's signature). 2: the profiling hook.
// 3: the dim slot table and the allocator for run-time-shaped buffers.
// 4: the string functions and the run's string pool.
// 5: sequences at the graph boundary: a sequence input or output is passed
// as a kiln_sequence (exec_context.h) instead of tensor data.
// 6: the address of the weights blob in the context.
inline constexpr uint32_t kAbiVersion = 6;
// Limits the runtime checks a description against.
inline constexpr uint32_t kMaxSlots = 1u << 16;
inline constexpr uint32_t kMaxChecks = 1u << 16;
inline constexpr const char* kDescSection = ".kiln.desc";
inline constexpr size_t kHeaderBytes = 32;
inline constexpr size_t kContentHashOffset = 24;
// The weights blob starts at a multiple of this, so the runtime maps it in
// place (a page on x86-64); each weight in it at a multiple of 64.
inline constexpr uint64_t kWeightsAlignment = 4096;

// TensorDesc::kind, numbered as ir::ValueKind.
inline constexpr uint8_t kKindTensor = 0;
inline constexpr uint8_t kKindSequence = 1;
inline constexpr uint8_t kKindOptionalTensor = 2;
inline constexpr uint8_t kKindOptionalSequence = 3;

struct TensorDesc {
  std::string name;
  int32_t dtype = 0;                   // ONNX TensorProto code (= kiln_dtype)
  std::vector<int64_t> dims;           // -1 where symbolic
  std::vector<std::string> dim_names;  // symbol per dim, "" where static
  // Per dim: the dim slot that holds its size at run time (dims[d] == -1),
  // or -1 where static. Inputs' slots are filled from the caller's shapes.
  std::vector<int32_t> dim_slots;
  // An input the model reads only for its dtype (CastLike's target_type):
  // the run accepts it at any shape. Listed after the checks.
  bool any_shape = false;
  // Containers (format 5), listed after the any-shape inputs. For a
  // container, dtype and dims describe its tensors (every element of a
  // sequence has the dtype; `dims` may be empty when the rank is unknown,
  // and the elements' dims are then not checked). An optional's
  // present_slot holds 1 when it has a value.
  uint8_t kind = kKindTensor;
  int32_t present_slot = -1;
};

// One kernel of the artifact, in execution order: what `kiln profile` names
// and measures against.
struct KernelDesc {
  std::string name;    // the generated function, unique in the artifact
  std::string origin;  // the graph node(s) it implements
  uint64_t flops = 0;  // estimated floating-point operations per run (multiply-add = 2)
};

struct ModelDesc {
  uint32_t abi_version = kAbiVersion;
  std::string target;                     // "cpu" or "cuda"
  std::string cpu_name;                   // LLVM CPU the code was tuned for
  std::vector<std::string> cpu_features;  // features the code needs, e.g. "avx512f"
  std::string cuda_arch;                  // "sm_90" for CUDA artifacts
  std::string producer;                   // "kiln 0.1.0"
  std::string model_hash;                 // hex digest of the source ONNX model
  std::string options;                    // the compile options that shaped the code
  std::string entry_symbol;               // the run function
  uint64_t workspace_bytes = 0;
  uint64_t kernel_count = 0;
  std::vector<TensorDesc> inputs;
  std::vector<TensorDesc> outputs;
  std::vector<KernelDesc> kernels;  // kernel_count entries, in execution order
  uint32_t slot_count = 0;          // dim slots of a run (0: static shapes)
  std::vector<std::string> checks;  // run-time check messages; "{$k}" is slot k's value
  // CPU artifacts (format 7): the weights blob, the last `weights_bytes` bytes
  // of the file, starting at a multiple of kWeightsAlignment past the ELF
  // image. Generated code finds it through kiln_exec_context::weights.
  uint64_t weights_bytes = 0;
  uint64_t content_hash = 0;  // filled in after linking
};

std::vector<uint8_t> serialize(const ModelDesc& desc);
// Parses a `.kiln.desc` section; nullopt with `error` set when malformed.
std::optional<ModelDesc> parse(std::span<const uint8_t> section, std::string* error);

struct SectionRef {
  uint64_t offset = 0;
  uint64_t size = 0;
};

// Finds a section of an ELF64 little-endian file by name, checking that the
// headers and the section lie inside the file.
std::optional<SectionRef> findElfSection(std::span<const uint8_t> file, const char* name, std::string* error);

// Where the weights blob lies in `file`: its last desc.weights_bytes bytes,
// at a multiple of kWeightsAlignment, after every byte of the ELF image
// (headers, sections, segments); nullopt with `error` set otherwise.
std::optional<SectionRef> findWeights(std::span<const uint8_t> file, const ModelDesc& desc, std::string* error);

// 64-bit hash of the whole file but the description section's own hash
// field (its 8 bytes at kContentHashOffset): code, weights and the
// description (shapes, workspace size, kinds, which the runtime sizes
// buffers from) alike.
uint64_t hashArtifact(std::span<const uint8_t> file, SectionRef desc);

uint64_t hashBytes(std::span<const uint8_t> bytes, uint64_t seed = 0);

// hashBytes over bytes that arrive in pieces: `total` of them in all, fed to
// update() in order. The compiler hashes weights while it writes them.
class Hasher {
 public:
  Hasher(uint64_t total, uint64_t seed);
  void update(std::span<const uint8_t> bytes);
  uint64_t finish();

 private:
  uint64_t h_;
  uint8_t pending_[8] = {};  // the bytes of a word not yet complete
  size_t pending_size_ = 0;
};

}  // namespace kiln::artifact
