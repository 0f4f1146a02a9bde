// Text ops: TfIdfVectorizer over integer tokens, and StringNormalizer.
//
// TfIdfVectorizer:
// The pool of n-grams is an attribute, so its tokens become constants of the
// kernel: one stage per pool n-gram p of length n adds its count
//   count_p[b] = sum_{s, i} prod_{t<n} (X[b, i + t*(s+1)] == pool_p[t])
// (s over 0..max_skip_count for n > 1, s = 0 for unigrams; only n-grams that
// fit in the row) to Y[b, ngram_indexes[p]]. A last stage per output column
// applies the mode: TF keeps counts (weights unused), IDF gives the weight
// where the count is positive, TFIDF multiplies by it (weights default to 1).
#include <algorithm>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"
#include "compiler/ops/run_time_shapes.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using kir::Expr;
using Buffer = LowerContext::Buffer;

struct NGram {
  std::vector<int64_t> tokens;
  int64_t column = 0;
};

struct TfIdfSpec {
  std::vector<NGram> ngrams;  // only lengths in [min_gram_length, max_gram_length]
  int64_t columns = 0;        // max(ngram_indexes) + 1
  int64_t min_n = 1, max_n = 1, max_skip = 0;
  std::string mode;
  std::vector<float> weights;
};

Expected<TfIdfSpec> tfIdfSpec(const NodeView& ctx) {
  TfIdfSpec spec;
  spec.min_n = ctx.attrInt("min_gram_length", 0);
  spec.max_n = ctx.attrInt("max_gram_length", 0);
  spec.max_skip = ctx.attrInt("max_skip_count", 0);
  spec.mode = ctx.attrString("mode", "");
  spec.weights = ctx.attrFloats("weights");
  if (spec.min_n < 1 || spec.max_n < spec.min_n)
    return ctx.error("min_gram_length " + std::to_string(spec.min_n) + " and max_gram_length " +
                     std::to_string(spec.max_n) + " must satisfy 1 <= min <= max");
  if (spec.max_skip < 0) return ctx.error("max_skip_count must not be negative");
  if (spec.mode != "TF" && spec.mode != "IDF" && spec.mode != "TFIDF")
    return ctx.error("unknown mode '" + spec.mode + "' (expected TF, IDF or TFIDF)");
  if (ctx.hasAttr("pool_strings")) return ctx.unsupportedError("string pools (pool_strings) are not supported");
  std::vector<int64_t> pool = ctx.attrInts("pool_int64s");
  std::vector<int64_t> counts = ctx.attrInts("ngram_counts");
  std::vector<int64_t> indexes = ctx.attrInts("ngram_indexes");
  if (!spec.weights.empty() && spec.weights.size() != indexes.size())
    return ctx.error("weights has " + std::to_string(spec.weights.size()) + " values, expected one per n-gram (" +
                     std::to_string(indexes.size()) + ")");
  size_t next = 0;
  for (size_t level = 0; level < counts.size(); ++level) {
    int64_t n = static_cast<int64_t>(level) + 1;
    int64_t begin = counts[level];
    int64_t end = level + 1 < counts.size() ? counts[level + 1] : static_cast<int64_t>(pool.size());
    if (begin < 0 || end < begin || end > static_cast<int64_t>(pool.size()) || (end - begin) % n != 0)
      return ctx.error("ngram_counts " + std::to_string(begin) + " does not split pool_int64s into " +
                       std::to_string(n) + "-grams");
    for (int64_t at = begin; at < end; at += n, ++next) {
      if (next >= indexes.size()) return ctx.error("ngram_indexes has fewer values than the pool has n-grams");
      if (indexes[next] < 0) return ctx.error("ngram_indexes must not be negative");
      spec.columns = std::max(spec.columns, indexes[next] + 1);
      if (n < spec.min_n || n > spec.max_n) continue;
      spec.ngrams.push_back({std::vector<int64_t>(pool.begin() + at, pool.begin() + at + n), indexes[next]});
    }
  }
  if (next != indexes.size()) return ctx.error("ngram_indexes has more values than the pool has n-grams");
  return spec;
}

Status inferTfIdf(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 1));
  ir::DType dtype = ctx.hasInput(0) ? ctx.inputType(0).dtype : ir::DType::kUndefined;
  if (dtype == ir::DType::kString) return ctx.unsupportedError("string inputs are not supported (input 0)");
  if (dtype != ir::DType::kInt32 && dtype != ir::DType::kInt64)
    return ctx.error("X has dtype " + std::string(ir::name(dtype)) + ", expected int32 or int64 (input 0)");
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShape(ctx, 0, "X"));
  if (x.empty() || x.size() > 2) return ctx.error("X has rank " + std::to_string(x.size()) + ", expected 1 or 2 (input 0)");
  KILN_ASSIGN_OR_RETURN(TfIdfSpec spec, tfIdfSpec(ctx));
  ir::Shape out = x.size() == 2 ? ir::Shape{x[0], ir::Dim::known(spec.columns)} : ir::Shape{ir::Dim::known(spec.columns)};
  ctx.setOutputType(0, {ir::DType::kFloat32, out});
  return Status::ok();
}

// Occurrences of one n-gram in row b.
Expr countOf(kir::KernelBuilder& kb, const Buffer& x, const NGram& gram, Expr b, int64_t width, int64_t max_skip) {
  int64_t n = static_cast<int64_t>(gram.tokens.size());
  int64_t skips = n == 1 ? 1 : max_skip + 1;
  kir::IterVar s = kb.var("s", skips);
  kir::IterVar i = kb.var("i", width);
  Expr step = Expr(s) + 1.0;
  Expr fits = Expr(i) + step * static_cast<double>(n - 1) < Expr::index(width);
  Expr match = fits;
  for (int64_t t = 0; t < n; ++t) {
    Expr at = kir::min(Expr(i) + step * static_cast<double>(t), Expr::index(width - 1));
    Expr token = kir::cast(ir::DType::kInt64, x.load({b, at}));
    match = match && kir::eq(token, Expr::index(gram.tokens[t]));
  }
  return kir::reduce(kir::ReduceOp::kSum, {s, i}, kir::cast(ir::DType::kFloat32, match));
}

Status lowerTfIdf(LowerContext& ctx) {
  KILN_ASSIGN_OR_RETURN(TfIdfSpec spec, tfIdfSpec(ctx));
  std::vector<int64_t> in = ctx.inputDims(0);
  int64_t rows = in.size() == 2 ? in[0] : 1;
  int64_t width = in.back();
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer x = ctx.input(0, {rows, width});
  Buffer y = ctx.output(0, {rows, spec.columns});
  std::vector<kir::IterVar> all = kb.vars(y.shape(), "z");
  kb.compute(y, all, Expr::constant(ir::DType::kFloat32, 0));
  if (width == 0) return Status::ok();
  for (const NGram& gram : spec.ngrams) {
    kir::IterVar b = kb.var("b", rows);
    Expr column = Expr::index(gram.column);
    kb.computeAt(y, {b}, {Expr(b), column}, y(b, column) + countOf(kb, x, gram, b, width, spec.max_skip));
  }
  if (spec.mode == "TF") return Status::ok();  // weights apply to IDF and TFIDF only
  for (int64_t j = 0; j < spec.columns; ++j) {
    size_t at = static_cast<size_t>(j);
    double w = at < spec.weights.size() ? static_cast<double>(spec.weights[at]) : 1.0;
    kir::IterVar b = kb.var("b", rows);
    Expr column = Expr::index(j);
    Expr count = y(b, column);
    Expr value = spec.mode == "IDF" ? kir::select(count > Expr::constant(ir::DType::kFloat32, 0),
                                                   Expr::constant(ir::DType::kFloat32, w),
                                                   Expr::constant(ir::DType::kFloat32, 0))
                                    : count * w;
    kb.computeAt(y, {b}, {Expr(b), column}, value);
  }
  return Status::ok();
}

const std::vector<AttrSpec> kTfIdfAttrs = {
    {"max_gram_length", Kind::kInt, true}, {"min_gram_length", Kind::kInt, true}, {"max_skip_count", Kind::kInt, true},
    {"mode", Kind::kString, true},         {"ngram_counts", Kind::kInts, true},   {"ngram_indexes", Kind::kInts, true},
    {"pool_int64s", Kind::kInts},          {"pool_strings", Kind::kStrings},      {"weights", Kind::kFloats}};

// ---- StringNormalizer ------------------------------------------------------------
// X is [C] or [1, C] strings. Stopwords (compared case-sensitively or not)
// are removed, then case_change_action maps the rest to LOWER or UPPER case
// (NONE keeps them). The output keeps X's rank; when every string is a
// stopword it is one empty string. With stopwords the output size is a
// count over the data, lowered as NonZero's (run_time_shapes.h): a count
// kernel, then a kernel that gathers the kept strings. Comparison and case
// mapping are the run's string functions (kir::StringFn): simple Unicode
// case mapping of Latin, Greek and Cyrillic, the same in every locale, so a
// locale whose rules differ (Turkish, Azeri, Lithuanian) is refused.

enum class CaseChange { kNone, kLower, kUpper };

Expected<CaseChange> caseChange(const NodeView& ctx) {
  std::string action = ctx.attrString("case_change_action", "NONE");
  if (action == "NONE") return CaseChange::kNone;
  if (action == "LOWER") return CaseChange::kLower;
  if (action == "UPPER") return CaseChange::kUpper;
  return ctx.error("case_change_action '" + action + "' is not LOWER, UPPER or NONE");
}

Status checkLocale(const NodeView& ctx) {
  std::string locale = ctx.attrString("locale", "");
  std::string language = locale.substr(0, locale.find_first_of("_.@"));
  if (language == "tr" || language == "az" || language == "lt")
    return ctx.unsupportedError("locale '" + locale +
                                "' is not supported: its case rules differ from the locale-independent mapping Kiln "
                                "uses (Latin, Greek, Cyrillic)");
  return Status::ok();
}

std::vector<std::string> stopwords(const NodeView& ctx) {
  const ir::Attribute* a = ctx.node().attribute("stopwords");
  return a ? a->strings : std::vector<std::string>{};
}

Status inferStringNormalizer(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 1));
  if (ctx.inputType(0).dtype != ir::DType::kString)
    return ctx.error("X has dtype " + std::string(ir::name(ctx.inputType(0).dtype)) + ", expected string (input 0)");
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShape(ctx, 0, "X"));
  if (x.empty() || x.size() > 2 || (x.size() == 2 && x[0].isKnown() && x[0].value != 1))
    return ctx.error("X has shape " + ir::toString(x) + ", expected [C] or [1, C] (input 0)");
  KILN_ASSIGN_OR_RETURN(CaseChange change, caseChange(ctx));
  (void)change;
  KILN_RETURN_IF_ERROR(checkLocale(ctx));
  if (!stopwords(ctx).empty()) x.back() = ir::Dim{};  // how many remain depends on the data
  ctx.setOutputType(0, {ir::DType::kString, x});
  return Status::ok();
}

Status lowerStringNormalizer(LowerContext& ctx) {
  if (ctx.isDynamicInput(0)) return ctx.unsupportedError("X (input 0) has a run-time shape; Kiln needs it static");
  std::vector<int64_t> dims = ctx.inputDims(0);
  int64_t n = dims.back();
  KILN_ASSIGN_OR_RETURN(CaseChange change, caseChange(ctx));
  auto flag = [](bool on) { return Expr::index(on ? 1 : 0); };
  auto normalize = [&](Expr s) {
    if (change == CaseChange::kNone) return s;
    return kir::stringCall(kir::StringFn::kChangeCase, {s, flag(change == CaseChange::kUpper)});
  };
  std::vector<std::string> words = stopwords(ctx);
  if (words.empty()) {
    kir::KernelBuilder& kb = ctx.newKernel();
    Buffer x = ctx.input(0, {n});
    Buffer y = ctx.output(0, {n});
    kir::IterVar i = kb.var("i", n);
    kb.compute(y, {i}, normalize(x(i)));
    return Status::ok();
  }
  // The stopwords, then the empty string an all-stopword input gives.
  auto m = static_cast<int64_t>(words.size());
  words.emplace_back();
  ir::Tensor table = ir::Tensor::fromStrings({m + 1}, words);
  bool ignore_case = ctx.attrInt("is_case_sensitive", 0) == 0;
  Buffer x, stop;
  auto kept = [&](Expr i) {
    kir::IterVar k = ctx.builder().var("k", m);
    Expr same = kir::stringCall(kir::StringFn::kEqual, {x(i), stop(k), flag(ignore_case)});
    return kir::eq(kir::reduce(kir::ReduceOp::kSum, {k}, kir::cast(ir::DType::kInt64, same)), Expr::index(0));
  };

  ctx.newKernel("count");
  x = ctx.input(0, {n});
  stop = ctx.constant("stopwords", table);
  Buffer pos = prefixCount(ctx, "pos", n, kept);
  Expr count = kir::max(pos(Expr::index(n)), Expr::index(1));
  setOutputDims(ctx, 0, dims.size() == 2 ? std::vector<Expr>{Expr::index(1), count} : std::vector<Expr>{count});

  kir::KernelBuilder& kb = ctx.newKernel();
  x = ctx.input(0, {n});
  stop = ctx.constant("stopwords", table);
  pos = prefixCount(ctx, "pos", n, kept);
  Buffer src = scatterIndices(ctx, "src", n, kept, [&pos](Expr i) { return pos(i); });
  Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = ctx.outputVars(0);
  Expr source = kir::min(kir::max(src(axes.back()), Expr::index(0)), Expr::index(n - 1));
  Expr none_kept = kir::eq(pos(Expr::index(n)), Expr::index(0));
  kb.compute(y, axes, kir::select(none_kept, stop(Expr::index(m)), normalize(x(source))));
  return Status::ok();
}

const std::vector<AttrSpec> kStringNormalizerAttrs = {{"case_change_action", Kind::kString},
                                                      {"is_case_sensitive", Kind::kInt},
                                                      {"locale", Kind::kString},
                                                      {"stopwords", Kind::kStrings}};

}  // namespace

void registerTextOps(OpRegistry& registry) {
  registry.add(OpSchema{"", "TfIdfVectorizer", {9}, kTfIdfAttrs, inferTfIdf, lowerTfIdf});
  registry.add(OpSchema{"", "StringNormalizer", {10}, kStringNormalizerAttrs, inferStringNormalizer,
                        lowerStringNormalizer});
}

}  // namespace kiln::ops
