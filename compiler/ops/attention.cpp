// kiln.Attention: scaled-dot-product attention as one kernel, which the
// recognize-attention pass (passes/recognize_attention.cpp) writes in place
// of MatMul -> [Div|Mul by a scalar] -> [Add mask] -> Softmax -> MatMul:
//
//   kiln.Attention(Q [..., Sq, D], Kt [..., D, Sk], V [..., Sk, Dv], scale?, mask?, keep?, fill?) -> [..., Sq, Dv]
//   scores = (Q @ Kt) / scale             (scale_divides = 1; times scale when 0; no scale when absent)
//   scores = where(keep, scores, fill)    (keep: bool, broadcast; fill: one value; both or neither;
//                                          fill_when_true = 1: where(keep, fill, scores))
//   scores = scores + mask                (mask broadcast to [..., Sq, Sk])
//   Y      = softmax(scores, last axis) @ V
//
// The batch dims (`...`) of Q, Kt and V are the same. Kt is K already
// transposed, as exporters write it (MatMul(Q, Transpose(K))).
//
// One kernel of six stages, every one of them indexed by the batch dims
// first, so the CPU backend runs all six for one batch point (one head) in
// one task, with the head's scores in cache between them (codegen/cpu,
// "stage groups"):
//
//   keys[.., d, j]   = Kt[.., d, j]                 Kt laid out here: fusion folds K's
//                                                   transpose into this copy
//   scores[.., i, j] = sum_d Q[.., i, d] * keys[.., d, j]  (scaled, masked)
//   row_max[.., i]   = max_j scores[.., i, j]
//   scores[.., i, j] = exp(scores[.., i, j] - row_max[.., i])   in place
//   row_sum[.., i]   = sum_j scores[.., i, j]
//   Y[.., i, e]      = sum_j scores[.., i, j] * V[.., j, e] / row_sum[.., i]
//
// The exponentials overwrite the scores, each element read where it is
// written, so one head's working set is its keys and one score matrix.
// Dividing after the product rather than before rounds differently from
// Softmax then MatMul, within a few float32 ulps of the row sum's.
#include <algorithm>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/broadcast.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using kir::Expr;

constexpr size_t kScale = 3;
constexpr size_t kMask = 4;
constexpr size_t kKeep = 5;
constexpr size_t kFill = 6;

// Input `i` (scale, fill) is one value.
Status expectOneValue(InferContext& ctx, size_t i, const std::string& role) {
  KILN_ASSIGN_OR_RETURN(ir::Shape shape, inputShape(ctx, i, role));
  std::optional<std::vector<int64_t>> dims = ir::knownDims(shape);
  if (!dims || std::any_of(dims->begin(), dims->end(), [](int64_t d) { return d != 1; }))
    return ctx.error(role + " must be one value, got " + ir::toString(shape));
  return Status::ok();
}

// Input `i` (mask, keep) broadcasts to the scores without widening them.
Status expectBroadcastToScores(InferContext& ctx, size_t i, const std::string& role, const ir::Shape& scores) {
  KILN_ASSIGN_OR_RETURN(ir::Shape shape, inputShape(ctx, i, role));
  if (!ir::knownDims(shape) || !broadcastsTo(shape, scores))
    return ctx.error(role + " " + ir::toString(shape) + " does not broadcast to the scores' shape " +
                     ir::toString(scores));
  return Status::ok();
}

Status inferAttention(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 3, 7));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "Q", DTypeClass::kFloat));
  KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, 1, "Kt"));
  KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, 2, "V"));
  KILN_ASSIGN_OR_RETURN(ir::Shape q, inputShapeOfMinRank(ctx, 0, "Q", 2));
  KILN_ASSIGN_OR_RETURN(ir::Shape kt, inputShapeOfRank(ctx, 1, "Kt", q.size()));
  KILN_ASSIGN_OR_RETURN(ir::Shape v, inputShapeOfRank(ctx, 2, "V", q.size()));
  std::optional<std::vector<int64_t>> qd = ir::knownDims(q), kd = ir::knownDims(kt), vd = ir::knownDims(v);
  if (!qd || !kd || !vd)
    return ctx.unsupportedError("Attention needs known shapes, got Q " + ir::toString(q) + ", Kt " + ir::toString(kt) +
                                ", V " + ir::toString(v));
  const size_t rank = q.size();
  bool batch_agrees = true;
  for (size_t i = 0; i + 2 < rank; ++i) batch_agrees = batch_agrees && (*qd)[i] == (*kd)[i] && (*qd)[i] == (*vd)[i];
  if (!batch_agrees || (*qd)[rank - 1] != (*kd)[rank - 2] || (*kd)[rank - 1] != (*vd)[rank - 2])
    return ctx.error("expected Q [..., Sq, D], Kt [..., D, Sk] and V [..., Sk, Dv] with the same batch dims, got " +
                     ir::toString(q) + ", " + ir::toString(kt) + " and " + ir::toString(v));
  if (ctx.hasInput(kScale)) {
    KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, kScale, "scale"));
    KILN_RETURN_IF_ERROR(expectOneValue(ctx, kScale, "scale"));
  }
  std::vector<int64_t> score_dims = *qd;
  score_dims[rank - 1] = (*kd)[rank - 1];
  const ir::Shape scores = ir::makeShape(score_dims);
  if (ctx.hasInput(kMask)) {
    KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, kMask, "mask"));
    KILN_RETURN_IF_ERROR(expectBroadcastToScores(ctx, kMask, "mask", scores));
  }
  if (ctx.hasInput(kKeep) != ctx.hasInput(kFill))
    return ctx.error("keep and fill come together: scores where keep holds, fill where it does not");
  if (ctx.hasInput(kKeep)) {
    if (ctx.inputType(kKeep).dtype != ir::DType::kBool) return ctx.error("keep must be bool");
    KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, kFill, "fill"));
    KILN_RETURN_IF_ERROR(expectBroadcastToScores(ctx, kKeep, "keep", scores));
    KILN_RETURN_IF_ERROR(expectOneValue(ctx, kFill, "fill"));
  }
  std::vector<int64_t> out = *qd;
  out[rank - 1] = (*vd)[rank - 1];
  ctx.setOutputType(0, {ctx.inputType(0).dtype, ir::makeShape(out)});
  return Status::ok();
}

// `vars` of the batch dims followed by `rest`.
std::vector<Expr> indexOf(const std::vector<kir::IterVar>& vars, size_t batch, std::initializer_list<Expr> rest) {
  std::vector<Expr> index(vars.begin(), vars.begin() + static_cast<std::ptrdiff_t>(batch));
  index.insert(index.end(), rest);
  return index;
}

Status lowerAttention(LowerContext& ctx) {
  const std::vector<int64_t> qd = ctx.inputDims(0), kd = ctx.inputDims(1), vd = ctx.inputDims(2);
  const size_t rank = qd.size(), batch = rank - 2;
  const int64_t sq = qd[rank - 2], depth = qd[rank - 1], sk = kd[rank - 1], dv = vd[rank - 1];
  std::vector<int64_t> batch_dims(qd.begin(), qd.begin() + static_cast<std::ptrdiff_t>(batch));
  auto dims = [&](std::initializer_list<int64_t> rest) {
    std::vector<int64_t> d = batch_dims;
    d.insert(d.end(), rest);
    return d;
  };

  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer q = ctx.input(0), kt = ctx.input(1), v = ctx.input(2), y = ctx.output(0);
  const ir::DType dtype = computeDType(q.dtype());
  LowerContext::Buffer keys = ctx.temp("keys", dtype, dims({depth, sk}));
  LowerContext::Buffer scores = ctx.temp("scores", dtype, dims({sq, sk}));
  LowerContext::Buffer row_max = ctx.temp("row_max", dtype, dims({sq, 1}));
  LowerContext::Buffer row_sum = ctx.temp("row_sum", dtype, dims({sq, 1}));

  {  // keys = Kt
    std::vector<kir::IterVar> a = kb.vars(dims({depth, sk}), "k");
    kb.compute(keys, a, toCompute(kt.load(std::vector<Expr>(a.begin(), a.end()))));
  }
  {  // scores = Q @ keys, scaled, masked
    std::vector<kir::IterVar> a = kb.vars(dims({sq, sk}), "s");
    kir::IterVar d = kb.var("d", depth);
    Expr i = a[batch], j = a[batch + 1];
    Expr value = kir::reduce(kir::ReduceOp::kSum, {d},
                             toCompute(q.load(indexOf(a, batch, {i, d}))) * keys.load(indexOf(a, batch, {d, j})));
    // Inputs of one value (scale, fill), and inputs broadcast over the scores (keep, mask).
    auto one_value = [&](size_t input) {
      LowerContext::Buffer b = ctx.input(input);
      return toCompute(b.load(std::vector<Expr>(b.rank(), Expr::index(0))));
    };
    const std::vector<Expr> at(a.begin(), a.end());
    auto at_score = [&](size_t input) {
      LowerContext::Buffer b = ctx.input(input);
      return b.load(broadcastIndex(at, b.shape()));
    };
    if (ctx.hasInput(kScale))
      value = ctx.attrInt("scale_divides", 0) ? value / one_value(kScale) : value * one_value(kScale);
    if (ctx.hasInput(kKeep)) {
      Expr keep = at_score(kKeep), fill = one_value(kFill);
      value = ctx.attrInt("fill_when_true", 0) ? kir::select(keep, fill, value) : kir::select(keep, value, fill);
    }
    if (ctx.hasInput(kMask)) value = value + toCompute(at_score(kMask));
    kb.compute(scores, a, value);
  }
  {  // row_max
    std::vector<kir::IterVar> a = kb.vars(dims({sq, 1}), "m");
    kir::IterVar j = kb.var("j", sk);
    kb.compute(row_max, a, kir::reduce(kir::ReduceOp::kMax, {j}, scores.load(indexOf(a, batch, {a[batch], j}))));
  }
  const LowerContext::Buffer& probs = scores;
  {  // probs = exp(scores - row_max), over the scores
    std::vector<kir::IterVar> a = kb.vars(dims({sq, sk}), "p");
    Expr i = a[batch];
    kb.compute(probs, a,
               kir::exp(scores.load(std::vector<Expr>(a.begin(), a.end())) -
                        row_max.load(indexOf(a, batch, {i, Expr::index(0)}))));
  }
  {  // row_sum
    std::vector<kir::IterVar> a = kb.vars(dims({sq, 1}), "r");
    kir::IterVar j = kb.var("j", sk);
    kb.compute(row_sum, a, kir::reduce(kir::ReduceOp::kSum, {j}, probs.load(indexOf(a, batch, {a[batch], j}))));
  }
  {  // Y = probs @ V / row_sum
    std::vector<kir::IterVar> a = kb.vars(dims({sq, dv}), "y");
    kir::IterVar j = kb.var("j", sk);
    Expr i = a[batch], e = a[batch + 1];
    Expr sum = kir::reduce(kir::ReduceOp::kSum, {j},
                           probs.load(indexOf(a, batch, {i, j})) * toCompute(v.load(indexOf(a, batch, {j, e}))));
    kb.compute(y, a, kir::cast(y.dtype(), sum / row_sum.load(indexOf(a, batch, {i, Expr::index(0)}))));
  }
  return Status::ok();
}

}  // namespace

void registerAttentionOps(OpRegistry& registry) {
  registry.add(OpSchema{kKilnDomain,
                        "Attention",
                        {1},
                        {{"scale_divides", Kind::kInt}, {"fill_when_true", Kind::kInt}},
                        inferAttention,
                        lowerAttention});
}

}  // namespace kiln::ops
