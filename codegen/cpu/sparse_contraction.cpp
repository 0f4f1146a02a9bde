#include "codegen/cpu/sparse_contraction.h"

#include <algorithm>
#include <numeric>

namespace kiln::codegen::cpu {
namespace {

// Rows per register tile: one accumulator each, plus the weight vector, in
// AVX-512's 32 registers; the activation broadcasts come from memory as FMA
// operands, one cache line per row. 16 rows divide BERT's M = 128 into whole
// tiles and leave registers to spare. But rows K floats apart whose stride is
// a multiple of 4 KB all fall in one L1 set (64 sets of 64 bytes), and 16
// lines overflow its 12 ways (Zen 4/5; 8-12 on Intel cores) on every
// nonzero block: then 8 rows. Measured at density 0.2, M = 128, one thread
// (bench/sparse_gemm.sh's models): K = 3072 (12 KB rows, one set) 1.6 ms
// with 16 rows, 1.2 ms with 8; K = 768 (3 KB rows, four sets) 0.18 ms with
// 16, 0.20 with 8.
constexpr int kSparseRows = 16;
constexpr int kSparseRowsPerL1Set = 8;
constexpr int64_t kL1SetSpanBytes = 4096;  // bytes between addresses of one set

int tileRows(int64_t depth) {
  const int64_t stride = depth * static_cast<int64_t>(sizeof(float)) % kL1SetSpanBytes;
  const int64_t sets = kL1SetSpanBytes / std::gcd(stride == 0 ? kL1SetSpanBytes : stride, kL1SetSpanBytes);
  return static_cast<int>(std::min<int64_t>(kSparseRows, kSparseRowsPerL1Set * sets));
}

// The reduction variable a sparse plan walks: the one of extent above 1
// (MatMul and Gemm have one; a 1x1 convolution's window variables have
// extent 1). -1 when there are several.
int sparseKVar(const ContractionPlan& dense) {
  int k_var = -1;
  for (size_t i = 0; i < dense.k_order.size(); ++i) {
    if (dense.k_order[i].extent == 1) continue;
    if (k_var >= 0) return -1;
    k_var = static_cast<int>(i);
  }
  return k_var < 0 && !dense.k_order.empty() ? 0 : k_var;
}

bool eligible(const ContractionPlan& dense, const ir::Tensor& weights) {
  return dense.packed && dense.dot_group == 1 && !dense.guarded_load && !dense.rows_read_vector &&
         !dense.hoisted_scalar_guard && dense.v_outer_axis < 0 && weights.dtype() == ir::DType::kFloat32 &&
         sparseKVar(dense) >= 0;
}

// Element offset of V[k][v] in the weight tensor.
int64_t weightOffset(const ContractionPlan& dense, int k_var, int64_t k, int64_t v) {
  return dense.pack_offset + dense.pack_v_stride * v + dense.pack_k_strides[static_cast<size_t>(k_var)] * k;
}

}  // namespace

std::optional<SparseMode> parseSparseMode(const std::string& text) {
  if (text.empty() || text == "auto") return SparseMode::kAuto;
  if (text == "off") return SparseMode::kNever;
  if (text == "always") return SparseMode::kAlways;
  return std::nullopt;
}

std::optional<double> blockDensity(const ContractionPlan& dense, const kir::Stage& stage, const ir::Tensor& weights) {
  if (!eligible(dense, weights)) return std::nullopt;
  const int k_var = sparseKVar(dense);
  const int64_t extent_v = stage.axes[dense.v_axis].extent;
  const int64_t depth = dense.k_order[static_cast<size_t>(k_var)].extent;
  const int64_t blocks = (extent_v + kSparseBlockLanes - 1) / kSparseBlockLanes;
  const auto* w = reinterpret_cast<const float*>(weights.bytes().data());
  int64_t nonzero = 0;
  for (int64_t c = 0; c < blocks; ++c)
    for (int64_t k = 0; k < depth; ++k) {
      const int64_t end = std::min(extent_v, (c + 1) * kSparseBlockLanes);
      for (int64_t v = c * kSparseBlockLanes; v < end; ++v)
        if (w[weightOffset(dense, k_var, k, v)] != 0.0f) {
          ++nonzero;
          break;
        }
    }
  return blocks * depth == 0 ? 1.0 : static_cast<double>(nonzero) / static_cast<double>(blocks * depth);
}

std::optional<SparsePlan> planSparseContraction(const ContractionPlan& dense, const kir::Stage& stage,
                                                const ir::Tensor& weights, SparseMode mode) {
  if (mode == SparseMode::kNever) return std::nullopt;
  std::optional<double> density = blockDensity(dense, stage, weights);
  if (!density) return std::nullopt;
  if (mode == SparseMode::kAuto && *density >= kSparseDensityThreshold) return std::nullopt;
  SparsePlan plan;
  plan.k_var = sparseKVar(dense);
  plan.extent_v = stage.axes[dense.v_axis].extent;
  plan.depth = dense.k_order[static_cast<size_t>(plan.k_var)].extent;
  plan.density = *density;
  const int64_t extent_row = rowExtent(stage, dense);
  plan.rows = static_cast<int>(std::min<int64_t>(tileRows(plan.depth), extent_row));
  plan.rows_outer = extent_row * plan.depth * static_cast<int64_t>(sizeof(float)) > kSparseActivationL2Bytes;
  const int64_t blocks = (plan.extent_v + kSparseBlockLanes - 1) / kSparseBlockLanes;
  const auto* w = reinterpret_cast<const float*>(weights.bytes().data());
  plan.starts.push_back(0);
  for (int64_t c = 0; c < blocks; ++c) {
    const int64_t first = c * kSparseBlockLanes;
    const int64_t lanes = std::min<int64_t>(kSparseBlockLanes, plan.extent_v - first);
    for (int64_t k = 0; k < plan.depth; ++k) {
      float block[kSparseBlockLanes] = {};
      bool nonzero = false;
      for (int64_t l = 0; l < lanes; ++l) {
        block[l] = w[weightOffset(dense, plan.k_var, k, first + l)];
        nonzero = nonzero || block[l] != 0.0f;
      }
      if (!nonzero) continue;
      plan.k_index.push_back(static_cast<int32_t>(k));
      plan.values.insert(plan.values.end(), block, block + kSparseBlockLanes);
    }
    plan.starts.push_back(static_cast<int32_t>(plan.k_index.size()));
  }
  return plan;
}

}  // namespace kiln::codegen::cpu
