#include "compiler/ops/broadcast.h"

#include <algorithm>
#include <optional>
#include <string>

namespace kiln::ops {
namespace {

bool isOne(const ir::Dim& d) { return d.isKnown() && d.value == 1; }

// The broadcast of two aligned dims, or nullopt when both are known and differ.
std::optional<ir::Dim> broadcastDim(const ir::Dim& a, const ir::Dim& b) {
  if (isOne(a)) return b;
  if (isOne(b)) return a;
  if (a.isKnown() && b.isKnown()) return a.value == b.value ? std::optional<ir::Dim>(a) : std::nullopt;
  if (a.isKnown()) return a;
  if (b.isKnown()) return b;
  if (a.symbol == b.symbol) return a;
  return ir::Dim{};  // two different symbols: only the run time knows
}

}  // namespace

Expected<ir::Shape> broadcastShapes(std::span<const ir::Shape> shapes) {
  size_t rank = 0;
  for (const ir::Shape& s : shapes) rank = std::max(rank, s.size());
  ir::Shape out(rank, ir::Dim::known(1));
  for (const ir::Shape& s : shapes) {
    size_t offset = rank - s.size();
    for (size_t i = 0; i < s.size(); ++i) {
      std::optional<ir::Dim> d = broadcastDim(out[offset + i], s[i]);
      if (!d) {
        std::string list;
        for (const ir::Shape& t : shapes) list += (list.empty() ? "" : ", ") + ir::toString(t);
        return invalidInput("shapes " + list + " do not broadcast (dim " + std::to_string(offset + i) + ": " +
                            std::to_string(out[offset + i].value) + " vs " + std::to_string(s[i].value) + ")");
      }
      out[offset + i] = *d;
    }
  }
  return out;
}

bool broadcastsTo(const ir::Shape& from, const ir::Shape& to) {
  if (from.size() > to.size()) return false;
  size_t offset = to.size() - from.size();
  for (size_t i = 0; i < from.size(); ++i) {
    const ir::Dim& f = from[i];
    const ir::Dim& t = to[offset + i];
    if (isOne(f)) continue;
    if (f.isKnown() && t.isKnown() && f.value != t.value) return false;
  }
  return true;
}

std::vector<kir::Expr> broadcastIndex(std::span<const kir::Expr> out_index, std::span<const int64_t> in_dims) {
  size_t offset = out_index.size() - in_dims.size();
  std::vector<kir::Expr> index;
  index.reserve(in_dims.size());
  for (size_t i = 0; i < in_dims.size(); ++i)
    index.push_back(in_dims[i] == 1 ? kir::Expr::index(0) : out_index[offset + i]);
  return index;
}

}  // namespace kiln::ops
