// Einsum: one reduction stage. Every subscript letter is an iteration
// variable; the output's letters are the stage's axes and the others are
// summed over:
//   out[o..] = sum_{r..} prod_k in_k[letters of term k]
// A letter repeated within one term reads a diagonal; '...' stands for the
// same broadcast dims in every term (right-aligned, size 1 broadcasting).
// Without '->' the output is the letters used once, in alphabetical order,
// after the ellipsis dims.
#include <algorithm>
#include <map>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using kir::Expr;

constexpr char kEllipsis = '.';  // one '.' stands for '...' once parsed

struct Equation {
  std::vector<std::string> inputs;  // letters, '.' for the ellipsis
  std::string output;
};

bool isLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// One term: letters and at most one '...'.
Expected<std::string> parseTerm(const NodeView& ctx, const std::string& text) {
  std::string term;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == ' ') continue;
    if (isLetter(c)) {
      term += c;
    } else if (c == '.' && text.compare(i, 3, "...") == 0) {
      if (term.find(kEllipsis) != std::string::npos) return ctx.error("equation term '" + text + "' has two '...'");
      term += kEllipsis;
      i += 2;
    } else {
      return ctx.error("equation has an unexpected character '" + std::string(1, c) + "'");
    }
  }
  return term;
}

Expected<Equation> parseEquation(const NodeView& ctx) {
  std::string text = ctx.attrString("equation", "");
  Equation eq;
  size_t arrow = text.find("->");
  std::string lhs = text.substr(0, arrow);
  for (size_t start = 0;;) {
    size_t comma = lhs.find(',', start);
    KILN_ASSIGN_OR_RETURN(std::string term, parseTerm(ctx, lhs.substr(start, comma - start)));
    eq.inputs.push_back(term);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (arrow != std::string::npos) {
    KILN_ASSIGN_OR_RETURN(eq.output, parseTerm(ctx, text.substr(arrow + 2)));
    for (size_t i = 0; i < eq.output.size(); ++i)
      if (eq.output.find(eq.output[i], i + 1) != std::string::npos)
        return ctx.error("output subscript '" + std::string(1, eq.output[i]) + "' appears twice");
    return eq;
  }
  std::map<char, int> uses;
  bool ellipsis = false;
  for (const std::string& term : eq.inputs)
    for (char c : term) c == kEllipsis ? void(ellipsis = true) : void(++uses[c]);
  if (ellipsis) eq.output += kEllipsis;
  for (const auto& [c, n] : uses)  // std::map: alphabetical (upper case first)
    if (n == 1) eq.output += c;
  return eq;
}

// The size of every letter and of the broadcast ellipsis dims.
struct Extents {
  std::map<char, int64_t> letters;
  std::vector<int64_t> ellipsis;
};

Expected<Extents> resolveExtents(const NodeView& ctx, const Equation& eq, const std::vector<std::vector<int64_t>>& dims) {
  Extents ext;
  for (size_t k = 0; k < eq.inputs.size(); ++k) {
    const std::string& term = eq.inputs[k];
    bool has_ellipsis = term.find(kEllipsis) != std::string::npos;
    size_t letters = term.size() - (has_ellipsis ? 1 : 0);
    if (has_ellipsis ? dims[k].size() < letters : dims[k].size() != letters)
      return ctx.error("equation term " + std::to_string(k) + " has " + std::to_string(letters) +
                       " subscripts, input of rank " + std::to_string(dims[k].size()) + " (input " +
                       std::to_string(k) + ")");
    size_t ell_rank = dims[k].size() - letters, d = 0;
    for (char c : term) {
      if (c == kEllipsis) {
        if (ell_rank > ext.ellipsis.size()) ext.ellipsis.insert(ext.ellipsis.begin(), ell_rank - ext.ellipsis.size(), 1);
        for (size_t e = 0; e < ell_rank; ++e) {
          int64_t& have = ext.ellipsis[ext.ellipsis.size() - ell_rank + e];
          int64_t size = dims[k][d + e];
          if (have != size && have != 1 && size != 1)
            return ctx.error("the '...' dims of input " + std::to_string(k) + " do not broadcast");
          if (size != 1) have = size;
        }
        d += ell_rank;
        continue;
      }
      int64_t size = dims[k][d++];
      auto [it, added] = ext.letters.emplace(c, size);
      if (!added && it->second != size && it->second != 1 && size != 1)
        return ctx.error("subscript '" + std::string(1, c) + "' has sizes " + std::to_string(it->second) + " and " +
                         std::to_string(size));
      if (size != 1) it->second = size;
    }
  }
  for (char c : eq.output)
    if (c != kEllipsis && !ext.letters.count(c))
      return ctx.error("output subscript '" + std::string(1, c) + "' is in no input");
  return ext;
}

std::vector<std::vector<int64_t>> knownInputDims(const std::vector<ir::Shape>& shapes) {
  std::vector<std::vector<int64_t>> out;
  for (const ir::Shape& s : shapes) {
    std::vector<int64_t> dims;
    for (const ir::Dim& d : s) dims.push_back(d.isKnown() ? d.value : 1);
    out.push_back(dims);
  }
  return out;
}

Status inferEinsum(InferContext& ctx) {
  if (ctx.numInputs() < 1) return ctx.error("expects at least 1 input, got 0");
  KILN_ASSIGN_OR_RETURN(Equation eq, parseEquation(ctx));
  if (eq.inputs.size() != ctx.numInputs())
    return ctx.error("equation has " + std::to_string(eq.inputs.size()) + " terms for " +
                     std::to_string(ctx.numInputs()) + " inputs");
  std::vector<ir::Shape> shapes;
  for (size_t k = 0; k < ctx.numInputs(); ++k) {
    KILN_RETURN_IF_ERROR(expectDType(ctx, k, "Inputs", DTypeClass::kNumeric));
    if (k > 0) KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, k, "Inputs"));
    KILN_ASSIGN_OR_RETURN(ir::Shape s, inputShape(ctx, k, "Inputs"));
    for (const ir::Dim& d : s)
      if (!d.isKnown()) return ctx.unsupportedError("input " + std::to_string(k) + " has a dim of unknown size");
    shapes.push_back(s);
  }
  KILN_ASSIGN_OR_RETURN(Extents ext, resolveExtents(ctx, eq, knownInputDims(shapes)));
  ir::Shape out;
  for (char c : eq.output) {
    if (c == kEllipsis)
      for (int64_t e : ext.ellipsis) out.push_back(ir::Dim::known(e));
    else
      out.push_back(ir::Dim::known(ext.letters.at(c)));
  }
  ctx.setOutputType(0, {ctx.inputType(0).dtype, out});
  return Status::ok();
}

Status lowerEinsum(LowerContext& ctx) {
  KILN_ASSIGN_OR_RETURN(Equation eq, parseEquation(ctx));
  std::vector<std::vector<int64_t>> dims;
  for (size_t k = 0; k < ctx.numInputs(); ++k) dims.push_back(ctx.inputDims(k));
  KILN_ASSIGN_OR_RETURN(Extents ext, resolveExtents(ctx, eq, dims));
  kir::KernelBuilder& kb = ctx.newKernel();
  std::vector<LowerContext::Buffer> ins;
  for (size_t k = 0; k < ctx.numInputs(); ++k) ins.push_back(ctx.input(k));
  LowerContext::Buffer y = ctx.output(0);

  std::map<char, kir::IterVar> vars;
  std::vector<kir::IterVar> ell_vars, axes, summed;
  for (size_t e = 0; e < ext.ellipsis.size(); ++e)
    ell_vars.push_back(kb.var("e" + std::to_string(e), ext.ellipsis[e]));
  bool ellipsis_out = eq.output.find(kEllipsis) != std::string::npos;
  for (char c : eq.output) {
    if (c == kEllipsis) {
      axes.insert(axes.end(), ell_vars.begin(), ell_vars.end());
      continue;
    }
    vars[c] = kb.var(std::string(1, c), ext.letters.at(c));
    axes.push_back(vars[c]);
  }
  if (!ellipsis_out) summed = ell_vars;
  for (const auto& [c, size] : ext.letters)
    if (!vars.count(c)) summed.push_back(vars[c] = kb.var(std::string(1, c), size));

  ir::DType dtype = computeDType(y.dtype());
  std::vector<Expr> factors;
  for (size_t k = 0; k < ins.size(); ++k) {
    std::vector<Expr> index;
    size_t d = 0, ell_rank = ins[k].rank() - (eq.inputs[k].size() - (eq.inputs[k].find(kEllipsis) != std::string::npos));
    auto at = [&](const kir::IterVar& v) {  // size-1 dims broadcast
      index.push_back(ins[k].dim(d++) == 1 ? Expr::index(0) : Expr(v));
    };
    for (char c : eq.inputs[k]) {
      if (c != kEllipsis) {
        at(vars.at(c));
        continue;
      }
      for (size_t e = 0; e < ell_rank; ++e) at(ell_vars[ell_vars.size() - ell_rank + e]);
    }
    factors.push_back(toCompute(ins[k].load(index)));
  }
  Expr product = combinePairwise(kir::BinaryOp::kMul, std::move(factors));
  if (!summed.empty()) product = kir::reduce(kir::ReduceOp::kSum, summed, product);
  kb.compute(y, axes, kir::cast(y.dtype(), kir::cast(dtype, product)));
  return Status::ok();
}

}  // namespace

void registerEinsumOps(OpRegistry& registry) {
  registry.add(OpSchema{"", "Einsum", {12}, {{"equation", Kind::kString, true}}, inferEinsum, lowerEinsum});
}

}  // namespace kiln::ops
