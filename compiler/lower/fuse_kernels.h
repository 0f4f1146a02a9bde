// Kernel fusion on a lowered Program: a producer kernel whose single stage is
// a pure element definition (`t[axes] = value(axes)`, every element written
// once) and whose result is read by exactly one later kernel is inlined into
// that consumer — each load `t[idx]` becomes `value` with the producer's axes
// replaced by `idx` — and the intermediate buffer disappears.
//
// Guards against recomputation:
// - a producer whose value contains a reduction (Conv, MatMul, pooling) is
//   inlined only where the consumer reads it exactly once per element at the
//   consumer's own axes, outside any reduction, into a consumer without a
//   reduction of its own: the epilogue case, giving
//   `out = relu(reduce(sum, a*b) + bias)` in one stage (two sums in one stage,
//   as a residual Add of two convolutions would give, fit no tiled kernel);
// - a reduction-free producer (elementwise, broadcast, cast, reshape) is
//   inlined where each consumer element reads it at most twice, outside any
//   reduction, and the merged expression stays small. A producer that the
//   consumer broadcasts (fewer elements than the consumer's iteration space)
//   is inlined only when it is cheap to recompute.
//
// With `permutations_into_reductions` (the CUDA backend asks for it), a
// producer that only permutes axes (a Transpose: `t[axes] = x[perm(axes)]`)
// is also inlined where a consumer reads it at the same shape with plain
// variables, inside a reduction: the merged load is one load of `x` with the
// permuted index, no arithmetic recomputed, and the GEMM that runs the
// reduction then reads `x` in place through its leading dimension, batch
// stride and transpose flags instead of launching a transpose
// (codegen/cuda/contraction.h). With `views_into_stores`, the other side: a
// contraction (one stage, `epilogue(sum(a * b))`) whose one reader is a
// pure view of it (a Transpose, a Reshape: `t[axes] = x[a permutation of
// axes]`, x possibly viewed in another shape) stores straight into the
// view's buffer, at the index the view would have read it from, when that
// index stays affine (attention's context `[B, H, S, D] -> [B, S, H*D]`:
// the GEMM writes D with a leading dimension of H*D). With
// `permutations_keep_innermost` (the CPU asks for it with both), only
// permutations that leave the innermost axis in place qualify: the CPU's
// tiled kernels vectorize along it, so attention's head transposes of Q, V
// and the context go, while K's, which moves the innermost axis, stays a
// kernel that lays K out for the scores' vector loads. With `copies_into_stores` (the CPU asks for it), a
// contraction whose one reader copies it whole into a part of its own
// output, in one of several stages (a Concat: `out[.., c + 64] = x[.., c]`),
// stores straight into that part and the copy stage goes; the reader's
// earlier stages must store outside the part, which the boxes of their
// affine store indices show. With `scales_into_contractions` (CPU), a
// product of two loads `x * s` read once, as the activation operand of a
// sum against a constant weight, is inlined into that sum (EfficientNet's
// squeeze-and-excitation scale before its projection): the tiled kernel
// multiplies each broadcast operand once more, where the kernel it replaces
// wrote and read back all of x * s.
#pragma once

#include <cstddef>

#include "compiler/lower/program.h"

namespace kiln::lower {

struct FusionStats {
  size_t kernels_before = 0;
  size_t kernels_after = 0;
};

// Fuses in place, drops the buffers that became dead and re-plans the arena
// (by lifetimes only; in-place reuse is planArena's separate option).
// The result computes the same outputs (the reference evaluator agrees).
struct FusionOptions {
  bool permutations_into_reductions = false;
  bool views_into_stores = false;
  bool permutations_keep_innermost = false;
  bool copies_into_stores = false;
  bool scales_into_contractions = false;
};

FusionStats fuseKernels(Program& program, const FusionOptions& options = {});

}  // namespace kiln::lower
