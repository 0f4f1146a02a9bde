// Block-sparse contractions on the CPU: a packed float32 contraction
// (contraction.h) whose constant weight V, viewed as [K][N] (k the reduction,
// n the vectorized output axis — for Gemm with transB the logical [K, N]),
// is mostly made of all-zero 1x16 blocks: one k, 16 consecutive n, the
// AVX-512 vector width. Only the nonzero blocks are stored and visited.
//
// Layout, built at compile time (the repacking path the dense panels use):
// for each column block c (16 columns), its nonzero blocks' k values and
// their 16 weights, in increasing k. Weights past the last column are zero.
//
//   starts  int32 [blocks + 1]       block c's nonzeros are [starts[c], starts[c+1])
//   k_index int32 [nonzeros]         the k of each nonzero block
//   values  float [nonzeros][16]     its 16 weights
//
// The kernel keeps one 16-lane accumulator per output row for `rows` rows of
// M, and for each nonzero block loads its 16 weights once and does one FMA
// per row with the row's activation at that k broadcast: a fixed register
// tile whatever the sparsity pattern. Tasks are (outer point, column block)
// pairs run over the runtime's thread pool, each covering every row, or
// (outer point, row tile, column block) for activations too big for L2.
//
// The choice is a schedule: the sparse plan computes exactly the dense
// definition (zero blocks contribute 0 * x; only an Inf or NaN activation
// read against a zero weight, NaN in IEEE arithmetic, differs).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "codegen/cpu/contraction.h"

namespace kiln::codegen::cpu {

// The block size along the output axis: one AVX-512 register of float32.
inline constexpr int kSparseBlockLanes = kVectorLanes;

// Block density (nonzero 1x16 blocks / all blocks) under which the sparse
// kernel replaces the dense one. Measured with bench/sparse_gemm.sh at
// BERT-base's Linear shapes, M = 128, 2 threads, dense and sparse artifacts
// of the same weights alternating (bench/prune/SPARSE_GEMM.md), on a quiet
// machine: at density 0.2 the sparse kernel is 3.28x, 3.29x and 2.32x faster
// (768x768, 768x3072, 3072x768), at 0.4 still 1.70x, 2.10x and 1.60x, at 0.6
// 1.23x, 1.10x and 1.00x; unstructured 80-90% sparsity leaves most 1x16
// blocks nonzero and the dense kernel wins (0.57-1.05x). 0.4 is the highest
// measured density where the sparse kernel won at every shape.
inline constexpr double kSparseDensityThreshold = 0.40;

// Activation bytes (rows x K float32 per outer point) above which the sparse
// plan walks row tiles outermost (SparsePlan::rows_outer). Measured on
// bench/sparse_gemm.sh's models at density 0.2, one thread: at 128x3072
// (1.5 MB, 8-row tiles) row tiles outermost took 1.03 ms against 1.23 ms
// with column blocks outermost; at 128x768 (384 KB) the activation stays in
// L2 either way and column blocks outermost keeps each block's weights in L1.
inline constexpr int64_t kSparseActivationL2Bytes = 512 * 1024;

// When the sparse kernel is used (--sparse-kernels).
enum class SparseMode {
  kAuto,    // when the weight's block density is under kSparseDensityThreshold
  kNever,   // always the dense kernel
  kAlways,  // every eligible contraction (for measuring)
};

// "auto" (or empty), "off", "always"; nullopt for anything else.
std::optional<SparseMode> parseSparseMode(const std::string& text);

struct SparsePlan {
  int64_t extent_v = 0;   // N
  int64_t depth = 0;      // K
  int k_var = -1;         // position in dense.k_order of the reduction variable (others have extent 1)
  int rows = 1;           // rows per register tile
  // Task order. false: one task per (outer point, column block), covering
  // every row tile, so the column block's weights stay in L1 while the
  // activation rows stream past. true: one task per (outer point, row tile,
  // column block), column block fastest, so a thread's contiguous share of
  // tasks walks every column block with one row tile's activation slice
  // resident in L2 and streams the weights instead — chosen when the
  // activation is too big for L2 (kSparseActivationL2Bytes).
  bool rows_outer = false;
  double density = 1.0;   // nonzero blocks / blocks
  std::vector<int32_t> starts;
  std::vector<int32_t> k_index;
  std::vector<float> values;

  int64_t blocks() const { return static_cast<int64_t>(starts.size()) - 1; }
  int64_t nonzeroBlocks() const { return static_cast<int64_t>(k_index.size()); }
};

// The fraction of V's 1x16 blocks that hold a nonzero, for a packed float32
// plan with one reduction variable of extent above 1; nullopt when the plan
// is not one the sparse kernel takes.
std::optional<double> blockDensity(const ContractionPlan& dense, const kir::Stage& stage, const ir::Tensor& weights);

// The sparse plan replacing `dense`, when `mode` and the density say so.
std::optional<SparsePlan> planSparseContraction(const ContractionPlan& dense, const kir::Stage& stage,
                                                const ir::Tensor& weights, SparseMode mode);

}  // namespace kiln::codegen::cpu
