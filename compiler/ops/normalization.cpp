// Normalizations: BatchNormalization (inference and training mode) and Softmax/LogSoftmax.
#include <optional>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/axes.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using kir::Expr;

// ---- BatchNormalization --------------------------------------------------------
//   Y[n, c, ...] = (X[n, c, ...] - mean[c]) / sqrt(var[c] + epsilon) * scale[c] + B[c]
// In inference, mean and var are the running statistics of a trained model
// (inputs 3 and 4). With training_mode=1 (opset 14 on) they are this batch's
// statistics over every dim but the channel (the population variance), and
// the optional outputs 1 and 2 are the updated running statistics,
//   running = input * momentum + batch * (1 - momentum)   (momentum 0.9).
// The training outputs of opsets 1-13 (saved mean and variance, chosen by
// the number of outputs) are not supported.

constexpr const char* kBatchNormParams[] = {"scale", "B", "input_mean", "input_var"};

bool trainingMode(const NodeView& ctx) { return ctx.opset() >= 14 && ctx.attrInt("training_mode", 0) != 0; }

Status checkBatchNormMode(const NodeView& ctx) {
  bool training = trainingMode(ctx);
  if (ctx.attrInt("training_mode", 0) != 0 && !training)
    return ctx.error("training_mode is an attribute of opset 14 on; this model imports opset " +
                     std::to_string(ctx.opset()));
  for (size_t i = 1; i < ctx.numOutputs(); ++i)
    if (ctx.hasOutput(i) && !(training && i <= 2))
      return ctx.unsupportedError(
          "output " + std::to_string(i) +
          (training ? " is not an output of BatchNormalization in training mode"
                    : " (batch statistics) is only computed in training mode; set training_mode=1 (opset 14 on) "
                      "for the running statistics"));
  // Opsets 1-7: spatial=0 means per-activation statistics of shape C x D1 x ...
  if (ctx.attrInt("spatial", 1) == 0) return ctx.unsupportedError("spatial=0 (per-activation statistics) is not supported");
  return Status::ok();
}

Status inferBatchNorm(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 5, 5));
  KILN_RETURN_IF_ERROR(checkBatchNormMode(ctx));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "X", DTypeClass::kFloat));
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShapeOfMinRank(ctx, 0, "X", 2));
  for (size_t i = 1; i < 5; ++i) {
    const char* role = kBatchNormParams[i - 1];
    // Opset 15 lets scale/B and mean/var have their own float types.
    if (ctx.opset() >= 15) KILN_RETURN_IF_ERROR(expectDType(ctx, i, role, DTypeClass::kFloat));
    else KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, i, role));
    KILN_ASSIGN_OR_RETURN(ir::Shape param, inputShapeOfRank(ctx, i, role, 1));
    if (conflictingDims(param[0], x[1]))
      return ctx.error(std::string(role) + " has " + std::to_string(param[0].value) + " elements, expected " +
                       std::to_string(x[1].value) + " (one per channel of X " + ir::toString(x) + ", input " +
                       std::to_string(i) + ")");
  }
  ctx.setOutputType(0, {ctx.inputType(0).dtype, x});
  // running_mean and running_var have the type of input_mean and input_var.
  for (size_t i = 1; i <= 2 && i < ctx.numOutputs(); ++i)
    if (ctx.hasOutput(i)) ctx.setOutputType(i, {ctx.inputType(i + 2).dtype, ir::Shape{x[1]}});
  return Status::ok();
}

// The batch's per-channel mean and population variance, in temps of the
// statistics' shape (1, C, 1, ...).
struct BatchStats {
  LowerContext::Buffer mean;
  LowerContext::Buffer var;
  std::vector<bool> reduced;
};

BatchStats lowerBatchStats(LowerContext& ctx, kir::KernelBuilder& kb, const LowerContext::Buffer& x) {
  std::vector<int64_t> dims = ctx.inputDims(0);
  std::vector<bool> reduced(dims.size(), true);
  reduced[1] = false;
  RowShape shape = rowShape(dims, reduced);
  ir::DType dtype = computeDType(x.dtype());
  auto count = static_cast<double>(shape.count);
  BatchStats stats{ctx.temp("batch_mean", dtype, shape.stat), ctx.temp("batch_var", dtype, shape.stat), reduced};

  std::vector<kir::IterVar> mean_axes = kb.vars(shape.stat, "m");
  std::vector<kir::IterVar> mean_row = kb.vars(shape.row, "r");
  Expr sum = kir::reduce(kir::ReduceOp::kSum, mean_row, toCompute(x.load(rowIndex(reduced, mean_axes, mean_row))));
  kb.compute(stats.mean, mean_axes, sum / count);

  std::vector<kir::IterVar> var_axes = kb.vars(shape.stat, "v");
  std::vector<kir::IterVar> var_row = kb.vars(shape.row, "r");
  Expr centered = toCompute(x.load(rowIndex(reduced, var_axes, var_row))) - stats.mean.load(asExprs(var_axes));
  kb.compute(stats.var, var_axes, kir::reduce(kir::ReduceOp::kSum, var_row, centered * centered) / count);
  return stats;
}

Status lowerBatchNorm(LowerContext& ctx) {
  double epsilon = ctx.attrFloat("epsilon", 1e-5f);
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(0);
  LowerContext::Buffer scale = ctx.input(1);
  LowerContext::Buffer bias = ctx.input(2);
  LowerContext::Buffer mean = ctx.input(3);
  LowerContext::Buffer var = ctx.input(4);
  ir::DType dtype = computeDType(x.dtype());
  auto param = [&](const LowerContext::Buffer& b, Expr c) { return kir::cast(dtype, b(c)); };
  bool training = trainingMode(ctx);
  std::optional<BatchStats> stats;
  if (training) stats = lowerBatchStats(ctx, kb, x);

  LowerContext::Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(y.shape());
  Expr c = axes[1];
  Expr mean_c = training ? stats->mean.load(statIndex(stats->reduced, axes)) : param(mean, c);
  Expr var_c = training ? stats->var.load(statIndex(stats->reduced, axes)) : param(var, c);
  Expr normalized = (toCompute(x.load(asExprs(axes))) - mean_c) / kir::sqrt(var_c + epsilon);
  kb.compute(y, axes, kir::cast(y.dtype(), normalized * param(scale, c) + param(bias, c)));
  if (!training) return Status::ok();

  double momentum = ctx.attrFloat("momentum", 0.9f);
  const LowerContext::Buffer* running[] = {&mean, &var};
  const LowerContext::Buffer* batch[] = {&stats->mean, &stats->var};
  for (size_t i = 1; i <= 2 && i < ctx.numOutputs(); ++i) {
    if (!ctx.hasOutput(i)) continue;
    LowerContext::Buffer out = ctx.output(i);
    kir::IterVar channel = kb.var("c", out.dim(0));
    std::vector<Expr> stat(y.rank(), Expr::index(0));
    stat[1] = channel;
    Expr updated = param(*running[i - 1], channel) * momentum + batch[i - 1]->load(stat) * (1 - momentum);
    kb.compute(out, {channel}, kir::cast(out.dtype(), updated));
  }
  return Status::ok();
}

// ---- Softmax / LogSoftmax ------------------------------------------------------
// Opsets 1 and 11 flatten the input to 2-D at `axis` (default 1) and
// normalize over everything from `axis` on; opset 13 normalizes over the one
// dim `axis` (default -1). Both subtract the max first so exp never overflows.

int64_t defaultSoftmaxAxis(const NodeView& ctx) { return ctx.opset() >= 13 ? -1 : 1; }

Status inferSoftmax(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 1));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "input", DTypeClass::kFloat));
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShapeOfMinRank(ctx, 0, "input", 1));
  int64_t rank = static_cast<int64_t>(x.size());
  Expected<int64_t> axis = normalizeAxis(ctx, ctx.attrInt("axis", defaultSoftmaxAxis(ctx)), rank);
  if (!axis) return axis.status();
  ctx.setOutputType(0, {ctx.inputType(0).dtype, x});
  return Status::ok();
}

// Whether dim i is one of the normalized dims.
std::vector<bool> softmaxDims(const NodeView& ctx, size_t rank, int64_t axis) {
  std::vector<bool> reduced(rank, false);
  if (ctx.opset() >= 13) reduced[static_cast<size_t>(axis)] = true;
  else
    for (size_t i = static_cast<size_t>(axis); i < rank; ++i) reduced[i] = true;
  return reduced;
}

Status lowerSoftmax(LowerContext& ctx, bool log_output) {
  std::vector<int64_t> dims = ctx.inputDims(0);
  KILN_ASSIGN_OR_RETURN(int64_t axis,
                        normalizeAxis(ctx, ctx.attrInt("axis", defaultSoftmaxAxis(ctx)), static_cast<int64_t>(dims.size())));
  std::vector<bool> reduced = softmaxDims(ctx, dims.size(), axis);
  std::vector<int64_t> stat_dims = dims;
  std::vector<int64_t> row_dims;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (!reduced[i]) continue;
    row_dims.push_back(dims[i]);
    stat_dims[i] = 1;
  }

  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(0);
  LowerContext::Buffer y = ctx.output(0);
  ir::DType dtype = computeDType(x.dtype());
  LowerContext::Buffer row_max = ctx.temp("row_max", dtype, stat_dims);
  LowerContext::Buffer row_sum = ctx.temp("row_sum", dtype, stat_dims);

  std::vector<kir::IterVar> max_axes = kb.vars(stat_dims, "m");
  std::vector<kir::IterVar> max_row = kb.vars(row_dims, "r");
  Expr x_in_row = toCompute(x.load(rowIndex(reduced, max_axes, max_row)));
  kb.compute(row_max, max_axes, kir::reduce(kir::ReduceOp::kMax, max_row, x_in_row));

  std::vector<kir::IterVar> sum_axes = kb.vars(stat_dims, "s");
  std::vector<kir::IterVar> sum_row = kb.vars(row_dims, "r");
  Expr shifted = toCompute(x.load(rowIndex(reduced, sum_axes, sum_row))) - row_max.load(asExprs(sum_axes));
  kb.compute(row_sum, sum_axes, kir::reduce(kir::ReduceOp::kSum, sum_row, kir::exp(shifted)));

  std::vector<kir::IterVar> axes = kb.vars(dims);
  std::vector<Expr> stat = statIndex(reduced, axes);
  Expr x_shifted = toCompute(x.load(asExprs(axes))) - row_max.load(stat);
  Expr value = log_output ? x_shifted - kir::log(row_sum.load(stat)) : kir::exp(x_shifted) / row_sum.load(stat);
  kb.compute(y, axes, kir::cast(y.dtype(), value));
  return Status::ok();
}

}  // namespace

void registerNormalizationOps(OpRegistry& registry) {
  registry.add(OpSchema{"",
                        "BatchNormalization",
                        {1, 6, 7, 9, 14, 15},
                        {{"epsilon", Kind::kFloat},
                         {"momentum", Kind::kFloat},
                         {"training_mode", Kind::kInt},
                         // Opsets 1-6 / 1-7 only; is_test picked training
                         // outputs that we reject anyway when requested.
                         {"is_test", Kind::kInt},
                         {"spatial", Kind::kInt},
                         {"consumed_inputs", Kind::kInts}},
                        inferBatchNorm,
                        lowerBatchNorm});
  registry.add(OpSchema{"", "Softmax", {1, 11, 13}, {{"axis", Kind::kInt}}, inferSoftmax,
                        [](LowerContext& ctx) { return lowerSoftmax(ctx, false); }});
  registry.add(OpSchema{"", "LogSoftmax", {1, 11, 13}, {{"axis", Kind::kInt}}, inferSoftmax,
                        [](LowerContext& ctx) { return lowerSoftmax(ctx, true); }});
}

}  // namespace kiln::ops
