// The launch plan of a CUDA artifact: which buffers exist, where the weights
// lie, and which generated kernel runs on which buffers, in order.
//
// A CUDA artifact is the same ELF container as a CPU one (`.kiln.desc`,
// checksum over the whole file) with no host code in it. Its GPU side lives
// in four sections:
//   .kiln.cuda     this plan (layout below)
//   .kiln.cubin    the kernels compiled for the description's cuda_arch
//   .kiln.ptx      the same kernels as PTX (for inspection and later JIT)
//   .kiln.weights  every constant buffer, each at a 256-byte aligned offset
// The runtime reads all of it from the checked bytes; nothing in the file is
// mapped as host code. Shared by codegen/cuda (writer) and the runtime
// (reader); standard library only.
//
// Plan layout (little-endian): magic "KILNCUDA", u32 version, then the
// payload: u64 weights bytes, u32 buffer count, buffers (u32 kind, u32 io
// index, u64 offset, u64 bytes), u32 launch count, launches (string function,
// u32 kernel index, u32 grid, u32 block, u32 arg count, u32 buffer per arg,
// u32 launch kind, and for a GEMM its CudaGemm fields in declaration order:
// u32 for the enums, batch and accumulate, f64 for alpha, u64/i64 for the
// rest). Strings are u32 length + bytes. Version 4 added each GEMM's operand
// element types (16-bit A and B in the fp16/bf16 precisions); version 5 the
// type of D (16-bit where only GEMMs read it, in those precisions).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace kiln::artifact {

inline constexpr char kCudaPlanMagic[8] = {'K', 'I', 'L', 'N', 'C', 'U', 'D', 'A'};
inline constexpr uint32_t kCudaPlanVersion = 5;
inline constexpr const char* kCudaPlanSection = ".kiln.cuda";
inline constexpr const char* kCubinSection = ".kiln.cubin";
inline constexpr const char* kPtxSection = ".kiln.ptx";
inline constexpr const char* kWeightsSection = ".kiln.weights";
inline constexpr uint64_t kCudaWeightAlignment = 256;

struct CudaBuffer {
  enum Kind : uint32_t { kInput = 0, kOutput = 1, kConstant = 2, kWorkspace = 3 };
  uint32_t kind = kWorkspace;
  uint32_t io_index = 0;  // kInput/kOutput: position among the model's inputs/outputs
  uint64_t offset = 0;    // kConstant: in .kiln.weights; kWorkspace: in the arena
  uint64_t bytes = 0;
};

// The arithmetic a GEMM may use: exact fp32, or tensor cores on inputs
// rounded to tf32, fp16 or bf16, always accumulating in fp32.
enum class CudaPrecision : uint32_t { kFp32 = 0, kTf32 = 1, kFp16 = 2, kBf16 = 3 };

// What cuBLASLt applies to the product before it stores D: a bias vector
// (one value per row of D, broadcast over its columns) and/or ReLU.
enum class GemmEpilogue : uint32_t { kNone = 0, kBias = 1, kRelu = 2, kReluBias = 3 };

// How a GEMM's A or B operand is stored: float32, or (in the fp16/bf16
// precisions) already rounded to 16 bits by the compiler (a weight) or by the
// kernel that produced it (an activation) or the GEMM that did (type_d).
enum class GemmOperand : uint32_t { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };

inline uint64_t operandBytes(GemmOperand t) { return t == GemmOperand::kFloat32 ? 4 : 2; }

inline bool hasBias(GemmEpilogue e) { return e == GemmEpilogue::kBias || e == GemmEpilogue::kReluBias; }

// One matrix product through cuBLASLt, in its column-major terms:
// for each of `batch` problems,
//   D (m x n, ldc) = relu?(alpha * op(A) (m x k) * op(B) (k x n) + C + bias)
// where op transposes a stored column-major matrix when trans_* is set. A, B
// and D are the launch's first three buffers, starting `offset_*` elements
// in, each problem `stride_*` elements after the previous one (0: the same
// matrix). With a bias epilogue the next buffer holds the bias (m elements
// from offset_bias, the same for every problem); with `accumulate` the last
// buffer holds C, laid out as D (ldc, stride_c) from offset_cin. A and B
// hold `type_a`/`type_b` elements (their offsets and strides count those);
// D, the bias and C hold `type_d` elements (cuBLASLt's C has D's type):
// float32, or in the fp16/bf16 precisions the 16-bit type when D is an
// intermediate only GEMMs and their packings read, or a scratch matrix.
struct CudaGemm {
  uint32_t trans_a = 0, trans_b = 0;
  CudaPrecision precision = CudaPrecision::kFp32;
  uint32_t batch = 1;
  uint64_t m = 1, n = 1, k = 1;
  int64_t lda = 1, ldb = 1, ldc = 1;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;
  uint64_t offset_a = 0, offset_b = 0, offset_c = 0;
  GemmEpilogue epilogue = GemmEpilogue::kNone;
  uint32_t accumulate = 0;
  double alpha = 1.0;
  uint64_t offset_bias = 0, offset_cin = 0;
  GemmOperand type_a = GemmOperand::kFloat32, type_b = GemmOperand::kFloat32;
  GemmOperand type_d = GemmOperand::kFloat32;

  size_t bufferCount() const { return 3 + (hasBias(epilogue) ? 1 : 0) + (accumulate ? 1 : 0); }
};

// One step of the plan: a generated __global__ function (one kernel-IR
// stage, or a stage's packing or epilogue part), or a cuBLASLt GEMM.
struct CudaLaunch {
  enum Kind : uint32_t { kKernel = 0, kGemm = 1 };
  std::string function;  // extern "C" name in the cubin; a GEMM's label
  uint32_t kernel = 0;   // index into the description's kernel list
  uint32_t grid = 1;     // blocks (x only)
  uint32_t block = 1;    // threads per block
  std::vector<uint32_t> args;  // buffer index per kernel parameter; A, B, D for a GEMM
  uint32_t kind = kKernel;
  CudaGemm gemm;  // kGemm
};

// The element ranges a GEMM reads and writes (one past the last element of
// A, B, D, the bias and C, counted from each buffer's start), for bounds checks.
struct GemmExtents {
  uint64_t a = 0, b = 0, c = 0, bias = 0, cin = 0;
};
GemmExtents gemmExtents(const CudaGemm& g);

struct CudaPlan {
  uint64_t weights_bytes = 0;
  std::vector<CudaBuffer> buffers;
  std::vector<CudaLaunch> launches;
};

std::vector<uint8_t> serializeCudaPlan(const CudaPlan& plan);
// Parses a `.kiln.cuda` section; nullopt with `error` set when malformed.
std::optional<CudaPlan> parseCudaPlan(std::span<const uint8_t> section, std::string* error);

}  // namespace kiln::artifact
