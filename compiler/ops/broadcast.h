// Numpy-style (multidirectional) broadcasting, used by the elementwise ops,
// MatMul's batch dims and Gemm's bias.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "compiler/ir/tensor.h"
#include "compiler/kir/kir.h"
#include "compiler/support/status.h"

namespace kiln::ops {

// The broadcast of `shapes`: shapes are aligned at their last dim; a dim of 1
// stretches; symbolic dims broadcast when they name the same symbol (a symbol
// against a known size > 1 takes the size, as the model promises they match).
// The error says which dims conflict, without node context.
Expected<ir::Shape> broadcastShapes(std::span<const ir::Shape> shapes);

// Whether `from` broadcasts to `to` without changing `to` (ONNX's
// "unidirectional" broadcasting, e.g. Gemm's C).
bool broadcastsTo(const ir::Shape& from, const ir::Shape& to);

// The index into an input of dims `in_dims` that element `out_index` of the
// broadcast result reads: trailing dims aligned, size-1 dims read index 0.
std::vector<kir::Expr> broadcastIndex(std::span<const kir::Expr> out_index, std::span<const int64_t> in_dims);

}  // namespace kiln::ops
