// Pad's padding as its lowering reads it, for passes that look at a Pad
// (fold-pad): every opset's form, 'paddings' (1), 'pads' (2-10), the pads
// input (11 on, a constant here) and the axes input (18 on).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compiler/ops/op_registry.h"

namespace kiln::ops {

struct PadSpec {
  std::vector<int64_t> begin;  // per axis of the input; negative crops
  std::vector<int64_t> end;
  std::string mode;
};

// The pads of a Pad node over an input of `rank` axes; an error naming the
// node where they are malformed or not constant.
Expected<PadSpec> padSpec(const NodeView& ctx, size_t rank);

}  // namespace kiln::ops
