#include "compiler/ops/window.h"

#include <algorithm>
#include <string>
#include <string_view>

namespace kiln::ops {
namespace {

enum class AutoPad { kNotSet, kSameUpper, kSameLower, kValid };

struct AutoPadName {
  std::string_view name;
  AutoPad mode;
};
constexpr AutoPadName kAutoPads[] = {
    {"NOTSET", AutoPad::kNotSet}, {"SAME_UPPER", AutoPad::kSameUpper},
    {"SAME_LOWER", AutoPad::kSameLower}, {"VALID", AutoPad::kValid}};

std::optional<AutoPad> parseAutoPad(std::string_view name) {
  for (const AutoPadName& entry : kAutoPads)
    if (entry.name == name) return entry.mode;
  return std::nullopt;
}


Status explicitPads(const NodeView& node, Window& w) {
  size_t n = w.rank();
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> pads, perDim(node, "pads", 2 * n, 0, 0));
  w.pads_begin.assign(pads.begin(), pads.begin() + n);
  w.pads_end.assign(pads.begin() + n, pads.end());
  return Status::ok();
}

// SAME_*: the output has ceil(in / stride) positions and the padding needed
// for that is split evenly; the odd one goes at the end (UPPER) or the
// beginning (LOWER).
void samePads(Window& w, std::span<const int64_t> in, bool upper) {
  for (size_t i = 0; i < w.rank(); ++i) {
    if (in[i] < 0) continue;
    int64_t out = (in[i] + w.strides[i] - 1) / w.strides[i];
    int64_t total = std::max<int64_t>(0, (out - 1) * w.strides[i] + w.span(i) - in[i]);
    w.pads_begin[i] = upper ? total / 2 : total - total / 2;
    w.pads_end[i] = total - w.pads_begin[i];
  }
}

int64_t outputSize(const Window& w, size_t i, int64_t in, bool ceil_mode) {
  int64_t room = in + w.pads_begin[i] + w.pads_end[i] - w.span(i);
  if (room < 0) return 0;
  int64_t out = (ceil_mode ? (room + w.strides[i] - 1) / w.strides[i] : room / w.strides[i]) + 1;
  // With ceil_mode the last window may start past the input and the left
  // padding, where it would see only right padding: drop it (as PyTorch does).
  if (ceil_mode && (out - 1) * w.strides[i] >= in + w.pads_begin[i]) --out;
  return out;
}

}  // namespace

Expected<std::vector<int64_t>> perDim(const NodeView& node, const char* name, size_t count, int64_t fallback,
                                      int64_t min_value) {
  std::vector<int64_t> values = node.attrInts(name, std::vector<int64_t>(count, fallback));
  if (values.size() != count)
    return node.error(std::string(name) + " has " + std::to_string(values.size()) + " values, expected " +
                      std::to_string(count) + " (one per spatial dim)");
  for (int64_t v : values)
    if (v < min_value)
      return node.error(std::string(name) + " value " + std::to_string(v) + " must be at least " +
                        std::to_string(min_value));
  return values;
}

std::vector<int64_t> spatialSizes(const ir::Shape& shape) {
  std::vector<int64_t> sizes;
  for (size_t i = 2; i < shape.size(); ++i) sizes.push_back(shape[i].value);  // -1 when unknown
  return sizes;
}

Expected<Window> resolveWindow(const NodeView& node, std::span<const int64_t> in, std::vector<int64_t> kernel,
                               bool ceil_mode) {
  Window w;
  size_t n = kernel.size();
  w.kernel = std::move(kernel);
  for (int64_t k : w.kernel)
    if (k < 1) return node.error("kernel size " + std::to_string(k) + " must be positive");
  KILN_ASSIGN_OR_RETURN(w.strides, perDim(node, "strides", n, 1, 1));
  KILN_ASSIGN_OR_RETURN(w.dilations, perDim(node, "dilations", n, 1, 1));
  std::string auto_pad_name = node.attrString("auto_pad", "NOTSET");
  std::optional<AutoPad> auto_pad = parseAutoPad(auto_pad_name);
  if (!auto_pad)
    return node.error("auto_pad '" + auto_pad_name + "' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID");
  w.pads_begin.assign(n, 0);
  w.pads_end.assign(n, 0);
  if (*auto_pad == AutoPad::kNotSet) KILN_RETURN_IF_ERROR(explicitPads(node, w));
  if (*auto_pad == AutoPad::kSameUpper || *auto_pad == AutoPad::kSameLower)
    samePads(w, in, *auto_pad == AutoPad::kSameUpper);
  for (size_t i = 0; i < n; ++i) {
    if (in[i] < 0) {
      w.out.push_back(-1);
      continue;
    }
    int64_t out = outputSize(w, i, in[i], ceil_mode && *auto_pad == AutoPad::kNotSet);
    if (out < 1)
      return node.error("spatial dim " + std::to_string(i) + " of size " + std::to_string(in[i]) +
                        " is smaller than the window (" + std::to_string(w.span(i)) + " positions with padding " +
                        std::to_string(w.pads_begin[i]) + "+" + std::to_string(w.pads_end[i]) + ")");
    w.out.push_back(out);
  }
  return w;
}

kir::Expr inputPosition(const Window& w, size_t i, kir::Expr out, kir::Expr offset) {
  kir::Expr pos = w.strides[i] == 1 ? out : out * static_cast<double>(w.strides[i]);
  pos = pos + (w.dilations[i] == 1 ? offset : offset * static_cast<double>(w.dilations[i]));
  return w.pads_begin[i] == 0 ? pos : pos - static_cast<double>(w.pads_begin[i]);
}

bool mayLeaveInput(const Window& w, size_t i, int64_t in) {
  return w.pads_begin[i] > 0 || (w.out[i] - 1) * w.strides[i] + w.span(i) - w.pads_begin[i] > in;
}

std::optional<kir::Expr> insideInput(const Window& w, std::span<const kir::Expr> positions,
                                     std::span<const int64_t> in) {
  std::optional<kir::Expr> guard;
  for (size_t i = 0; i < w.rank(); ++i) {
    if (!mayLeaveInput(w, i, in[i])) continue;
    kir::Expr inside = kir::inRange(positions[i], in[i]);
    guard = guard ? *guard && inside : inside;
  }
  return guard;
}

}  // namespace kiln::ops
