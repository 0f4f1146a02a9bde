// The `prune` step: parses --prune and runs the magnitude or channel step.
#include "passes/prune.h"

#include <charconv>
#include <sstream>

namespace kiln::passes {
namespace {

std::vector<std::string> splitColons(std::string_view text) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in{std::string(text)};
  while (std::getline(in, part, ':')) parts.push_back(part);
  if (!text.empty() && text.back() == ':') parts.emplace_back();
  return parts;
}

constexpr const char* kSyntax =
    "expected magnitude:R, magnitude:R:block, magnitude:R:per-layer or channels:R with 0 < R < 1";

}  // namespace

Expected<PruneSpec> parsePruneSpec(std::string_view text) {
  std::vector<std::string> parts = splitColons(text);
  auto bad = [&](const std::string& why) { return invalidInput("--prune '" + std::string(text) + "': " + why); };
  if (parts.size() < 2) return bad(kSyntax);
  PruneSpec spec;
  spec.text = std::string(text);
  if (parts[0] == "magnitude")
    spec.method = PruneSpec::Method::kMagnitude;
  else if (parts[0] == "channels")
    spec.method = PruneSpec::Method::kChannels;
  else
    return bad("unknown method '" + parts[0] + "' (" + kSyntax + ")");
  const std::string& r = parts[1];
  double ratio = 0;
  auto [end, ec] = std::from_chars(r.data(), r.data() + r.size(), ratio);
  if (r.empty() || ec != std::errc() || end != r.data() + r.size())
    return bad("'" + r + "' is not a ratio (" + kSyntax + ")");
  if (!(ratio > 0 && ratio < 1))
    return bad("ratio " + r + " is out of range (0 < R < 1: the share of weights removed)");
  spec.ratio = ratio;
  for (size_t i = 2; i < parts.size(); ++i) {
    const std::string& option = parts[i];
    bool magnitude = spec.method == PruneSpec::Method::kMagnitude;
    if (magnitude && option == "block" && !spec.blocks)
      spec.blocks = true;
    else if (magnitude && option == "per-layer" && !spec.per_layer)
      spec.per_layer = true;
    else if (!magnitude)
      return bad("channels takes no option ('" + option + "'); " + kSyntax);
    else
      return bad("unknown or repeated option '" + option + "' (block, per-layer)");
  }
  return spec;
}

Expected<bool> runPrune(ir::Model& model, const PruneSpec& spec) {
  PruneReport report;
  report.method = spec.text;
  Expected<bool> changed = spec.method == PruneSpec::Method::kChannels ? pruneChannels(model, spec, report)
                                                                       : pruneMagnitude(model, spec, report);
  if (!changed) return changed;
  if (spec.report) *spec.report = std::move(report);
  return changed;
}

}  // namespace kiln::passes
