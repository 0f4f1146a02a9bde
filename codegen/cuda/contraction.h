// Contractions on the GPU: stages of the form
//
//   out[axes] = epilogue( sum_k S(axes, k) * V(axes, k) )
//
// (what MatMul, Gemm and Conv lower to, with any fused bias, activation or
// residual around the sum) run as one cuBLASLt matrix product. The output
// axes split into batch axes (S and V both read them), rows (S only) and
// columns (V only); the reduction variables are the inner dimension. An
// operand that is a plain load whose index is a strided matrix in those
// groups is read in place (weights, MatMul inputs, transposed views);
// anything else (a padded convolution's input windows, a computed operand)
// is first packed into a scratch matrix by a generated kernel that evaluates
// the operand's own definition. The product lands in the output itself when
// the output's layout is a strided matrix and the epilogue is one cuBLASLt
// applies (a constant scale, a bias along D's rows, a residual laid out as
// the output, ReLU), else in a scratch matrix that a generated epilogue
// kernel reads in place of the sum.
//
// In the fp16 and bf16 precisions A and B are 16-bit: an operand read in
// place must have a 16-bit copy (a weight converted at compile time, or an
// activation whose producer also stores it rounded); any other operand is
// packed into a 16-bit scratch matrix. D is float32 when it is the output
// (or a 16-bit copy that only GEMMs read, emit_module.cpp); a scratch D that
// an epilogue kernel finishes is 16-bit too, the sum rounded once as the
// 16-bit precisions round every GEMM operand.
//
// This is a schedule: it changes how the definition is computed, never what.
// Stages that do not fit (another reduction, a non-float32 sum, a scatter)
// take the thread-per-element path.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "compiler/kir/kir.h"
#include "cuda_plan.h"

namespace kiln::codegen::cuda {

// A matrix product of fewer floating-point operations than this runs faster
// as the plain thread-per-element kernel than as pack + GEMM + epilogue
// launches (each launch costs a few microseconds).
inline constexpr int64_t kMinGemmFlops = int64_t{1} << 18;

// A batch of products with fewer rows or columns than this (a depthwise
// convolution: a batch of channels, each one column of pixels) runs as the
// thread-per-element kernel too: a tensor-core tile of 64 or more columns
// would compute one, and the operand packing would copy the input once per
// kernel offset.
inline constexpr int64_t kMinBatchedGemmSide = 8;

// cuBLASLt's Hopper kernels want every operand's rows 16-byte aligned. A
// product whose inner dimension K breaks that (a 7x7 stem convolution over
// 3 channels: K = 147) is padded with zeros to a multiple of this many
// bytes when both operands are packed anyway or are constants (whose
// packing is done at compile time): the padded product is the same sum,
// and cuBLASLt picks a tensor-core kernel over twice as fast for it.
inline constexpr int64_t kGemmAlignBytes = 16;

struct GemmStage {
  // Scratch matrices, as parameters appended after the kernel's own
  // (parameter kernel.params.size() + i is scratch[i]).
  std::vector<kir::BufferParam> scratch;
  std::vector<kir::Stage> packs;        // fill scratch operands before the GEMM
  artifact::CudaGemm gemm;              // offsets in elements of each buffer
  int a = -1, b = -1, c = -1;           // parameters read as A, B and written as D
  int bias = -1, cin = -1;              // the bias vector and the accumulated C, when the GEMM's epilogue has them
  std::optional<kir::Stage> epilogue;   // writes the stage's output from the product
};

// What the planner may ask about the kernel's parameters (by index).
struct GemmBindings {
  // Whether parameters i and j are bound to the same buffer.
  std::function<bool(int, int)> aliases;
  // Parameter i's value when it is a one-element float32 constant (a scale
  // the epilogue may fold into alpha).
  std::function<std::optional<double>(int)> scalar;
  // In the 16-bit precisions, whether parameter i has a 16-bit copy a GEMM
  // may read in its place.
  std::function<bool(int)> half_copy;
  // Whether parameter i holds data known at compile time (a packing that
  // reads only such parameters is computed by the compiler).
  std::function<bool(int)> constant;
};

// A plan when `stage` is a float32 contraction worth a GEMM.
std::optional<GemmStage> planGemm(const kir::Kernel& kernel, const kir::Stage& stage, artifact::CudaPrecision precision,
                                  const GemmBindings& bindings);

// Whether every parameter `e` loads is a compile-time constant.
bool readsOnlyConstants(const kir::Expr& e, const std::function<bool(int)>& constant);

// The element type of GEMM operands in `precision`: float16 or bfloat16 for
// the 16-bit modes, else float32.
ir::DType operandType(artifact::CudaPrecision precision);

}  // namespace kiln::codegen::cuda
