// Losses: NegativeLogLikelihoodLoss (opsets 12, 13) and SoftmaxCrossEntropyLoss
// (opsets 12, 13), with reduction none/sum/mean, an optional per-class weight
// and ignore_index. Inputs are [N, C] or [N, C, d1, ..., dk]; targets [N, d1, ..., dk].
//
// One element of the unreduced loss, at target position (n, d...) with class t:
//   loss[n, d] = -logp[n, t, d] * w[t]     (w[t] = 1 without a weight input)
// and 0 where t == ignore_index. `mean` divides the summed loss by the summed
// weights of the non-ignored targets (their count without a weight input).
// For NegativeLogLikelihoodLoss logp is the input itself; for
// SoftmaxCrossEntropyLoss it is the log-softmax of the scores over dim 1, also
// returned as the optional second output log_prob.
//
// Targets are run-time data: a target outside [0, C) that is not ignore_index
// reads 0 (its loss and its weight are 0), never out of bounds. Without a
// weight input it still counts in the mean's denominator, like the ONNX
// reference's plain mean over every element.
#include "compiler/lower/lower_context.h"
#include "compiler/ops/axes.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using kir::Expr;

enum class Reduction { kNone, kSum, kMean };

Expected<Reduction> reductionOf(const NodeView& ctx) {
  std::string reduction = ctx.attrString("reduction", "mean");
  if (reduction == "none") return Reduction::kNone;
  if (reduction == "sum") return Reduction::kSum;
  if (reduction == "mean") return Reduction::kMean;
  return ctx.error("reduction is '" + reduction + "', expected 'none', 'sum' or 'mean'");
}

// Input 0 is the log-probabilities (NLL) or scores (SCE), input 1 the target
// classes, input 2 the optional weights.
Status inferLoss(InferContext& ctx, bool softmax) {
  const char* input_role = softmax ? "scores" : "input";
  const char* target_role = softmax ? "labels" : "target";
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 2, 3));
  KILN_RETURN_IF_ERROR(expectOutputCount(ctx, softmax ? 2 : 1));
  KILN_ASSIGN_OR_RETURN(Reduction reduction, reductionOf(ctx));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, input_role, DTypeClass::kFloat));
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShapeOfMinRank(ctx, 0, input_role, 2));
  ir::DType target_dtype = ctx.inputType(1).dtype;
  if (target_dtype != ir::DType::kInt32 && target_dtype != ir::DType::kInt64)
    return ctx.error(std::string(target_role) + " has dtype " + std::string(ir::name(target_dtype)) +
                     ", expected int32 or int64 (input 1)");
  KILN_ASSIGN_OR_RETURN(ir::Shape target, inputShapeOfRank(ctx, 1, target_role, x.size() - 1));
  for (size_t i = 0; i < target.size(); ++i) {
    size_t xi = i == 0 ? 0 : i + 1;
    if (conflictingDims(target[i], x[xi]))
      return ctx.error(std::string(target_role) + " has shape " + ir::toString(target) + ", expected " +
                       std::string(input_role) + " " + ir::toString(x) + " without dim 1 (input 1)");
  }
  if (ctx.hasInput(2)) {
    KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, 2, "weight"));
    KILN_ASSIGN_OR_RETURN(ir::Shape weight, inputShapeOfRank(ctx, 2, "weight", 1));
    if (conflictingDims(weight[0], x[1]))
      return ctx.error("weight has " + std::to_string(weight[0].value) + " elements, expected " +
                       std::to_string(x[1].value) + " (one per class, dim 1 of " + input_role + " " +
                       ir::toString(x) + ", input 2)");
  }
  ir::DType dtype = ctx.inputType(0).dtype;
  ctx.setOutputType(0, {dtype, reduction == Reduction::kNone ? target : ir::Shape{}});
  if (softmax && ctx.hasOutput(1)) ctx.setOutputType(1, {dtype, x});
  return Status::ok();
}

// x's index for class `c` at target position `pos` = (n, d...).
std::vector<Expr> classIndex(const std::vector<kir::IterVar>& pos, Expr c) {
  std::vector<Expr> index{Expr(pos[0]), std::move(c)};
  for (size_t i = 1; i < pos.size(); ++i) index.push_back(pos[i]);
  return index;
}

Status lowerLoss(LowerContext& ctx, bool softmax) {
  KILN_ASSIGN_OR_RETURN(Reduction reduction, reductionOf(ctx));
  std::vector<int64_t> dims = ctx.inputDims(0);
  int64_t classes = dims[1];
  std::vector<int64_t> pos_dims = ctx.inputDims(1);  // [N, d1, ..., dk]
  bool has_weight = ctx.hasInput(2);
  bool has_ignore = ctx.hasAttr("ignore_index");
  int64_t ignore_index = ctx.attrInt("ignore_index", 0);

  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(0);
  LowerContext::Buffer target = ctx.input(1);
  LowerContext::Buffer weight = has_weight ? ctx.input(2) : LowerContext::Buffer();
  LowerContext::Buffer y = ctx.output(0);
  ir::DType dtype = computeDType(x.dtype());
  Expr zero = Expr::constant(dtype, 0);

  // SoftmaxCrossEntropyLoss: per-position max and sum of exp over the classes,
  // so that logp[n, c, d] = x[n, c, d] - max[n, d] - log(sum[n, d]).
  LowerContext::Buffer row_max, row_sum;
  if (softmax) {
    row_max = ctx.temp("row_max", dtype, pos_dims);
    row_sum = ctx.temp("row_sum", dtype, pos_dims);
    std::vector<kir::IterVar> max_pos = kb.vars(pos_dims, "m");
    kir::IterVar max_c = kb.var("c", classes);
    kb.compute(row_max, max_pos, kir::reduce(kir::ReduceOp::kMax, {max_c}, toCompute(x.load(classIndex(max_pos, max_c)))));
    std::vector<kir::IterVar> sum_pos = kb.vars(pos_dims, "s");
    kir::IterVar sum_c = kb.var("c", classes);
    Expr shifted = toCompute(x.load(classIndex(sum_pos, sum_c))) - row_max.load(asExprs(sum_pos));
    kb.compute(row_sum, sum_pos, kir::reduce(kir::ReduceOp::kSum, {sum_c}, kir::exp(shifted)));
  }
  auto logProb = [&](const std::vector<kir::IterVar>& pos, Expr c) {
    Expr value = toCompute(x.load(classIndex(pos, std::move(c))));
    if (!softmax) return value;
    std::vector<Expr> stat = asExprs(pos);
    return value - row_max.load(stat) - kir::log(row_sum.load(stat));
  };

  if (softmax && ctx.hasOutput(1)) {
    LowerContext::Buffer log_prob = ctx.output(1);
    std::vector<kir::IterVar> axes = kb.vars(dims, "p");
    std::vector<kir::IterVar> pos{axes[0]};
    pos.insert(pos.end(), axes.begin() + 2, axes.end());
    kb.compute(log_prob, axes, kir::cast(log_prob.dtype(), logProb(pos, axes[1])));
  }

  // The loss and the weight of the target at `pos`. A target out of [0, C)
  // reads 0 rather than out of bounds (the select's arms load lazily).
  auto targetClass = [&](const std::vector<kir::IterVar>& pos) {
    return kir::cast(ir::DType::kInt64, target.load(asExprs(pos)));
  };
  auto ignored = [&](const Expr& t) { return kir::eq(t, Expr::index(ignore_index)); };
  auto elementWeight = [&](const std::vector<kir::IterVar>& pos) {
    Expr t = targetClass(pos);
    Expr w = has_weight ? kir::select(kir::inRange(t, classes), toCompute(weight.load({t})), zero)
                        : Expr::constant(dtype, 1);
    return has_ignore ? kir::select(ignored(t), zero, w) : w;
  };
  auto elementLoss = [&](const std::vector<kir::IterVar>& pos) {
    Expr t = targetClass(pos);
    Expr valid = kir::inRange(t, classes);
    if (has_ignore) valid = valid && kir::unary(kir::UnaryOp::kNot, ignored(t));
    Expr loss = -logProb(pos, t);
    if (has_weight) loss = loss * toCompute(weight.load({t}));
    return kir::select(valid, loss, zero);
  };

  if (reduction == Reduction::kNone) {
    std::vector<kir::IterVar> pos = kb.vars(pos_dims, "l");
    kb.compute(y, pos, kir::cast(y.dtype(), elementLoss(pos)));
    return Status::ok();
  }
  std::vector<kir::IterVar> sum_pos = kb.vars(pos_dims, "l");
  Expr total = kir::reduce(kir::ReduceOp::kSum, sum_pos, elementLoss(sum_pos));
  if (reduction == Reduction::kMean) {
    // The denominator: the summed weights of the non-ignored targets.
    LowerContext::Buffer weight_sum = ctx.temp("weight_sum", dtype, {1});
    std::vector<kir::IterVar> one = kb.vars({1}, "w");
    std::vector<kir::IterVar> w_pos = kb.vars(pos_dims, "v");
    kb.compute(weight_sum, one, kir::reduce(kir::ReduceOp::kSum, w_pos, elementWeight(w_pos)));
    total = total / weight_sum(Expr::index(0));
  }
  kb.compute(y, {}, kir::cast(y.dtype(), total));
  return Status::ok();
}

const std::vector<AttrSpec> kLossAttributes = {{"reduction", Kind::kString}, {"ignore_index", Kind::kInt}};

}  // namespace

void registerLossOps(OpRegistry& registry) {
  registry.add(OpSchema{"", "NegativeLogLikelihoodLoss", {12, 13}, kLossAttributes,
                        [](InferContext& ctx) { return inferLoss(ctx, false); },
                        [](LowerContext& ctx) { return lowerLoss(ctx, false); }});
  registry.add(OpSchema{"", "SoftmaxCrossEntropyLoss", {12, 13}, kLossAttributes,
                        [](InferContext& ctx) { return inferLoss(ctx, true); },
                        [](LowerContext& ctx) { return lowerLoss(ctx, true); }});
}

}  // namespace kiln::ops
