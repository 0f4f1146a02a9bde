// If, Loop and Scan: shared between their inference (control_flow.cpp) and
// their lowering (control_flow_lower.cpp).
#pragma once

#include <vector>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/op_registry.h"

namespace kiln::ops {

// Scan's layout from its attributes and input shapes, opset 8 (a leading
// batch axis, attribute "directions", sequence_lens refused) or 9 and later.
struct ScanLayout {
  size_t state = 0, scan_inputs = 0, scan_outputs = 0;
  size_t first_input = 0;  // 1 in opset 8: input 0 is the omitted sequence_lens
  int64_t batch = 1;       // opset 8: the leading axis of every input and output
  int64_t length = 0;      // the number of steps
  std::vector<int64_t> input_axes, input_reverse, output_axes, output_reverse;  // axes normalized (inputs)
};
Expected<ScanLayout> scanLayout(const NodeView& node);
int64_t normalizedAxis(int64_t axis, size_t rank);

Status lowerIf(LowerContext& ctx);
Status lowerLoop(LowerContext& ctx);
Status lowerScan(LowerContext& ctx);

}  // namespace kiln::ops
