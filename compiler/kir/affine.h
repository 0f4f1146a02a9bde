// Affine index analysis on kernel IR: an int64 expression as
// offset + sum(coeff * variable), and the flat element index of a load.
// Schedules use it to recognise strided access (a contraction's operands as
// matrices, weights that can be repacked).
#pragma once

#include <cstdint>
#include <map>
#include <optional>

#include "compiler/kir/kir.h"

namespace kiln::kir {

struct Affine {
  int64_t offset = 0;
  std::map<int, int64_t> coeff;  // variable id -> coefficient

  int64_t of(int var_id) const {
    auto it = coeff.find(var_id);
    return it == coeff.end() ? 0 : it->second;
  }
};

// `e` as an affine form of its variables, or nullopt when it is not one
// (a load, a division, a product of two variables...).
std::optional<Affine> affine(const Expr& e);

// The flat (row-major) element index of a load of `kernel`'s parameter, when affine.
std::optional<Affine> flatIndex(const Kernel& kernel, const ExprNode& load);

// The flat (row-major) element index a store stage writes, when affine.
std::optional<Affine> flatStoreIndex(const Kernel& kernel, const Stage& stage);

// Whether the stage writes each element at most once: writesDistinctElements,
// or store indices affine in the axes with each axis in one index and each
// index's coefficients nesting as a mixed radix does (`[b, s, h*64 + d]`
// with d < 64: a transposed and reshaped layout).
bool storesDistinctAffine(const Stage& stage);

// Whether `e` reads iteration variable `var_id`.
bool dependsOn(const Expr& e, int var_id);

}  // namespace kiln::kir
