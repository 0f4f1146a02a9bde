// Contractions on the CPU: register-blocked AVX-512 microkernels for stages of
// the form
//
//   out[axes] = epilogue( sum_k S(axes, k) * V(v, k) )
//
// which is what MatMul, Gemm and Conv lower to, with any fused bias,
// activation or residual around the sum. One output axis `v` is vectorized:
// V is read as vectors along it, S (anything that does not depend on v) is
// broadcast, and a tile of `rows` x `vectors` accumulators stays in registers
// for the whole reduction. When V is a weight (a constant buffer whose index is
// affine in v and k), it is repacked at compile time into panels
// [v-block][k][lanes] so the inner loop reads it sequentially, and the original
// layout is dropped from the artifact when nothing else reads it.
//
// Integer contractions, sum_k cast<i32>(S) * cast<i32>(V) with V a constant
// int8 weight and S an 8-bit activation read contiguously along one
// reduction variable k, run as dot products of four along k (AVX512-VNNI
// vpdpbusd: u8 x s8 -> i32, the "dot group" 4); other reduction variables (a
// channels-last convolution's kernel offsets) loop outside k. V is packed as
// [v-block][outer points][ceil(K/4)][lanes][4] bytes, zero padded in k, so
// one 32-bit word per lane holds its four k values; S is broadcast four
// bytes at a time. vpdpbusd's activation operand is unsigned:
// an int8 S is fed as S + 128 (a xor of the sign bits) and the accumulators
// start at -128 * sum_k V, stored ahead of the panels.
//
// On a CPU with AMX-INT8 the same plan runs on tiles instead (`amx`): the
// panel's [K/4][lanes][4] bytes of one vector are exactly a B tile (16 rows
// of 16 lanes x 4 k), S's rows are an A tile (one row per output row, 64
// k each), and 2 x 2 accumulator tiles of 16 x 16 int32 cover 32 rows x 32
// lanes per step of 64 k. The innermost variable's rest (K % 64 per outer
// point) runs through vpdpbusd after the tiles' sums go to memory; an int8
// S is multiplied as such on tiles (tdpbssd), so only the rest's sum of V
// enters the accumulators' initial values. The epilogue is the VNNI plan's.
//
// With --precision bf16 on a CPU with AMX-BF16, a bf16 plan with output
// rows and a multiple of 32 k along the innermost variable runs on tiles
// the same way (tdpbf16ps, float32 accumulator tiles, 32 k per step; the
// pair panels below are B tiles as they stand): each task holds up to
// 512 KiB of rows in bf16 (useAmxBf16) and first converts its rows of S, every reduction point, to bf16
// in a buffer of its own ([row][point][k], the A tiles' source), which all
// the task's vector blocks then read.
//
// Under --precision bf16, float32 contractions of the same MatMul shape (V a
// constant weight, S a float32 load contiguous along the one reduction
// variable) run as bfloat16 dot products of pairs along k with float32
// accumulation (AVX512-BF16 vdpbf16ps, dot group 2): V is rounded to bf16
// (nearest even) and packed as [v-block][ceil(K/2)][lanes][2]; S is converted
// 32 values at a time (vcvtne2ps2bf16) and each pair broadcast.
//
// This is a schedule: it changes how the definition is computed, never what.
// Stages that do not fit take the generic loop-nest path.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "compiler/ir/tensor.h"
#include "compiler/kir/kir.h"

namespace kiln::codegen::cpu {

inline constexpr int kVectorLanes = 16;  // fp32 lanes of one AVX-512 register

struct ContractionPlan {
  const kir::ExprNode* reduce = nullptr;  // the sum the epilogue wraps
  kir::Expr scalar;                       // S: broadcast across the vector axis
  kir::Expr vector;                       // V: a load (or a guarded load), vectorized along v
  int v_axis = -1;                        // position in stage.axes
  int row_axis = -1;                      // position in stage.axes; -1: one row
  std::vector<int> outer_axes;            // the remaining axes, outermost first
  std::vector<kir::IterVar> k_order;      // reduction loops, outermost first
  // V packed at compile time: flat element index of V = pack_offset +
  // pack_v_stride * v + sum(pack_k_strides[i] * k_order[i]).
  bool packed = false;
  int64_t pack_offset = 0;
  int64_t pack_v_stride = 0;
  std::vector<int64_t> pack_k_strides;
  // Streaming V read under a padding guard (a padded convolution's input):
  // V is select(guard, load, 0) and the guard a conjunction of affine
  // comparisons `difference op 0`. Each lane's guard is evaluated from
  // `difference` at the vector's first lane plus v_coeff per lane; masked-off
  // lanes read nothing, so the load may start outside the buffer.
  struct LaneCondition {
    kir::Expr difference;     // int64, affine
    int64_t v_coeff = 0;      // its coefficient of v
    int64_t outer_coeff = 0;  // its coefficient of the merged outer axis (v_outer_axis)
    kir::BinaryOp op = kir::BinaryOp::kGe;
  };
  std::vector<LaneCondition> guard;
  const kir::ExprNode* guarded_load = nullptr;  // V's load when guarded
  kir::Expr flat_index;                         // its element offset, affine
  int64_t v_stride = 1;                         // flat_index's coefficient of v
  // Every guard difference and the vector axis's extent fit int32, so lane
  // masks are computed on 16 x i32 (one register) rather than 16 x i64.
  bool narrow_guard = false;
  // Rows index V rather than S (a depthwise convolution, whose weight does
  // not depend on any output axis but the channel): S is broadcast once per
  // reduction step and every row loads its own V vectors. Rows are output
  // rows, so a guard's per-lane part is the same for all of them.
  bool rows_read_vector = false;
  // S read as a vector along v rather than broadcast: a channels-last
  // depthwise convolution, whose weight is contiguous along the channel as
  // its input is. S is then a float32 load at unit stride in v; each
  // reduction step loads it once per vector for the whole tile.
  bool scalar_vector = false;
  // A packed plan whose S is select(guard, load, 0) with a guard that does
  // not depend on the innermost reduction variable (a channels-last
  // convolution's padded input; k_order runs the kernel offsets, then the
  // channels): each row's guard and address are computed once before the
  // innermost loop, the address pointing at zeros where the guard fails, so
  // the loop itself only loads and broadcasts.
  bool hoisted_scalar_guard = false;
  int64_t scalar_k_stride = 0;  // S's flat index coefficient of the innermost reduction variable
  // A float32 plan with output rows and one reduction variable whose S is
  // computed from several loads (x * s: a squeeze-and-excitation scale
  // fused into the 1x1 projection after it): each tile first writes S for
  // its rows at every k into a stack buffer [rows][K], in one loop that
  // LLVM vectorizes along k, and the FMAs broadcast from there. Computed in
  // the tile loop, S cost a scalar multiply and a register broadcast on the
  // FMA ports per row and k, against `vectors` FMAs: EfficientNet-B0's
  // projections ran 10-40% slower than without the scale.
  bool staged_scalar = false;
  // Products per accumulator lane per instruction, consecutive along the
  // innermost reduction variable: 1 is a float32 FMA; 2 a bfloat16 dot
  // product (AVX512-BF16, one reduction variable); 4 an int8 dot product
  // (VNNI). With a group above 1, `vector` and `scalar` are V's and S's
  // loads, and S is contiguous along the innermost reduction variable.
  int dot_group = 1;
  bool scalar_signed = false;  // dot_group 4: S is int8 (fed as S + 128)
  // dot_group 4 on AMX tiles (see above): rows are output rows along
  // row_axis, read at scalar_row_stride bytes apart; the innermost reduction
  // variable's extent is a multiple of 4.
  // dot_group 2 on AMX-BF16 tiles likewise, S's rows first converted to
  // bf16 per task (see above; the innermost extent is a multiple of 32).
  bool amx = false;
  int64_t scalar_row_stride = 0;
  std::vector<int64_t> scalar_k_strides;  // amx int8: S's flat index coefficient of each of k_order
  int vectors = 1;  // accumulator vectors per row (block = vectors * kVectorLanes)
  int rows = 1;     // rows per register tile
  // Streaming V along two output axes at once (an NCHW convolution's output
  // rows and columns): the vector index is q = outer * extent(v) + v over
  // v_outer_axis x v_axis, which every read of V and every store sees as one
  // contiguous run (V's flat index has coefficient extent(v) for the outer
  // axis and 1 for v). A 7x7 or 14x14 feature map then fills whole vectors
  // instead of 7 or 14 lanes of 16. -1: v alone.
  int v_outer_axis = -1;
  // How the tasks split the work: `row_chunks` ranges of row tiles times
  // `block_groups` ranges of vector blocks per outer-axis point. With
  // rows_outside_blocks a task sweeps all its vector blocks for each row
  // tile, so the broadcast operand's rows (a streaming convolution's
  // weights, the large operand of late layers) are read once per task
  // rather than once per block.
  int64_t row_chunks = 1;
  int64_t block_groups = 0;  // 0: one block per task
  bool rows_outside_blocks = false;
  // A float32 packed plan of one block whose last vector holds at most 8
  // live lanes (24, 40 or 56 output channels) keeps that vector as 8 lanes
  // (a ymm register): cores that split 512-bit operations in two (AMD Zen 4)
  // then spend half the work on it, where 16 lanes cost as much as a whole
  // vector more (a 1x1 convolution to 24 channels took as long as one to 32).
  bool half_last = false;

  int64_t blockLanes() const { return int64_t{vectors} * kVectorLanes; }
};

// The vectorized index's extent: extent(v), times extent(v_outer_axis) when merged.
int64_t vectorExtent(const kir::Stage& stage, const ContractionPlan& plan);
// The row axis's extent (1 without one).
int64_t rowExtent(const kir::Stage& stage, const ContractionPlan& plan);

// The dot-product instructions the target offers the planner.
struct ContractionIsa {
  bool int8_dot = false;  // AVX512-VNNI
  bool amx_int8 = false;  // AMX-TILE and AMX-INT8 (with int8_dot)
  bool amx_bf16 = false;  // AMX-TILE and AMX-BF16 (with bf16_dot)
  bool bf16_dot = false;  // AVX512-BF16, chosen by --precision bf16
};

// The constant data bound to a kernel parameter, or nullptr.
using ConstantOf = std::function<const ir::Tensor*(int param)>;

// A plan when `stage` is a float32 contraction worth vectorizing.
std::optional<ContractionPlan> planContraction(const kir::Kernel& kernel, const kir::Stage& stage,
                                               const ConstantOf& constant_of, const ContractionIsa& isa = {});

// V's weights in panel layout [ceil(extent_v / block)][K][block], zero padded.
std::vector<float> packPanels(const ContractionPlan& plan, const kir::Stage& stage, const ir::Tensor& weights);
// The same panels passed to `sink` one block at a time, so a large weight is
// packed without a second copy of it in memory.
void packPanels(const ContractionPlan& plan, const kir::Stage& stage, const ir::Tensor& weights,
                const std::function<void(std::span<const float>)>& sink);

// Panels of a plan with dot_group > 1, as bytes: for 4, the accumulators'
// initial values (int32 [blocks][block]) then [blocks][ceil(K/4)][block][4]
// int8 weights; for 2, [blocks][ceil(K/2)][block][2] bfloat16 weights.
std::vector<uint8_t> packDotPanels(const ContractionPlan& plan, const kir::Stage& stage, const ir::Tensor& weights);

// The dot groups of one block's panel: the points of the outer reduction
// variables times ceil(extent of the innermost / dot_group).
int64_t dotGroups(const ContractionPlan& plan);

// The points of all reduction variables (K of a GEMM, C * kh * kw of a convolution).
int64_t reductionPoints(const ContractionPlan& plan);

// An AMX-BF16 plan's per-task buffer of S's rows in bf16, in bytes.
int64_t amxBf16RowsBytes(const kir::Stage& stage, const ContractionPlan& plan);

// Bytes of packPanels' (dot_group <= 1) or packDotPanels' output.
int64_t packedPanelsBytes(const ContractionPlan& plan, const kir::Stage& stage);

// Bytes of packDotPanels' output before the panels themselves.
int64_t dotPanelsHeaderBytes(const ContractionPlan& plan, const kir::Stage& stage);

}  // namespace kiln::codegen::cpu
