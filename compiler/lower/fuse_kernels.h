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
FusionStats fuseKernels(Program& program);

}  // namespace kiln::lower
