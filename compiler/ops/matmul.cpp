// Matrix products: one output element is a dot product over K.
#include <algorithm>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/broadcast.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using kir::Expr;

// ---- MatMul (numpy.matmul) ---------------------------------------------------
// A 1-D A is a row vector [1, K] and a 1-D B a column vector [K, 1]; the
// added dim is dropped from the result. Dims before the last two broadcast.

std::string dimText(const ir::Dim& d) { return ir::toString(ir::Shape{d}); }

Status inferMatMul(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 2, 2));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "A", ctx.opset() >= 9 ? DTypeClass::kNumeric : DTypeClass::kFloat));
  KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, 1, "B"));
  KILN_ASSIGN_OR_RETURN(ir::Shape a, inputShapeOfMinRank(ctx, 0, "A", 1));
  KILN_ASSIGN_OR_RETURN(ir::Shape b, inputShapeOfMinRank(ctx, 1, "B", 1));
  const ir::Dim& k_a = a.back();
  const ir::Dim& k_b = b.size() == 1 ? b[0] : b[b.size() - 2];
  if (conflictingDims(k_a, k_b))
    return ctx.error("A " + ir::toString(a) + " has K=" + dimText(k_a) + " but B " + ir::toString(b) + " has K=" +
                     dimText(k_b));
  std::vector<ir::Shape> batches = {ir::Shape(a.begin(), a.end() - std::min<size_t>(a.size(), 2)),
                                    ir::Shape(b.begin(), b.end() - std::min<size_t>(b.size(), 2))};
  Expected<ir::Shape> out = broadcastShapes(batches);
  if (!out) return ctx.error("batch dims: " + out.status().message());
  if (a.size() >= 2) out->push_back(a[a.size() - 2]);
  if (b.size() >= 2) out->push_back(b.back());
  ctx.setOutputType(0, {ctx.inputType(0).dtype, out.take()});
  return Status::ok();
}

std::vector<int64_t> batchDims(const std::vector<int64_t>& dims) {
  return std::vector<int64_t>(dims.begin(), dims.end() - std::min<size_t>(dims.size(), 2));
}

Status lowerMatMul(LowerContext& ctx) {
  std::vector<int64_t> a_dims = ctx.inputDims(0);
  std::vector<int64_t> b_dims = ctx.inputDims(1);
  bool a_is_matrix = a_dims.size() >= 2;
  bool b_is_matrix = b_dims.size() >= 2;
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer a = ctx.input(0);
  LowerContext::Buffer b = ctx.input(1);
  LowerContext::Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(y.shape());
  std::vector<Expr> out_index = asExprs(axes);
  size_t batch_rank = axes.size() - a_is_matrix - b_is_matrix;
  std::span<const Expr> batch(out_index.data(), batch_rank);
  kir::IterVar k = kb.var("k", a_dims.back());

  std::vector<Expr> a_index = broadcastIndex(batch, batchDims(a_dims));
  if (a_is_matrix) a_index.push_back(out_index[batch_rank]);
  a_index.push_back(k);
  std::vector<Expr> b_index = broadcastIndex(batch, batchDims(b_dims));
  b_index.push_back(k);
  if (b_is_matrix) b_index.push_back(out_index.back());

  Expr product = toCompute(a.load(a_index)) * toCompute(b.load(b_index));
  kb.compute(y, axes, kir::cast(y.dtype(), kir::reduce(kir::ReduceOp::kSum, {k}, product)));
  return Status::ok();
}

// ---- Gemm: Y = alpha * A' * B' + beta * C ----------------------------------------
// A' is A or A transposed (transA), likewise B'; C broadcasts to [M, N] in
// one direction only. C became optional in opset 11.

struct GemmDims {
  ir::Dim m, k_a, k_b, n;
};

GemmDims gemmDims(const NodeView& ctx, const ir::Shape& a, const ir::Shape& b) {
  bool trans_a = ctx.attrInt("transA", 0) != 0;
  bool trans_b = ctx.attrInt("transB", 0) != 0;
  return GemmDims{trans_a ? a[1] : a[0], trans_a ? a[0] : a[1], trans_b ? b[1] : b[0], trans_b ? b[0] : b[1]};
}

Status inferGemm(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, ctx.opset() >= 11 ? 2 : 3, 3));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "A", ctx.opset() >= 9 ? DTypeClass::kNumeric : DTypeClass::kFloat));
  KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, 1, "B"));
  KILN_ASSIGN_OR_RETURN(ir::Shape a, inputShapeOfRank(ctx, 0, "A", 2));
  KILN_ASSIGN_OR_RETURN(ir::Shape b, inputShapeOfRank(ctx, 1, "B", 2));
  GemmDims dims = gemmDims(ctx, a, b);
  if (conflictingDims(dims.k_a, dims.k_b))
    return ctx.error("A " + ir::toString(a) + " and B " + ir::toString(b) +
                     " disagree on K after transA/transB (" + dimText(dims.k_a) + " vs " + dimText(dims.k_b) + ")");
  ir::Shape out = {dims.m, dims.n};
  if (ctx.hasInput(2)) {
    KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, 2, "C"));
    KILN_ASSIGN_OR_RETURN(ir::Shape c, inputShape(ctx, 2, "C"));
    if (!broadcastsTo(c, out))
      return ctx.error("C " + ir::toString(c) + " does not broadcast to the result " + ir::toString(out) +
                       " (input 2)");
  }
  ctx.setOutputType(0, {ctx.inputType(0).dtype, out});
  return Status::ok();
}

Status lowerGemm(LowerContext& ctx) {
  bool trans_a = ctx.attrInt("transA", 0) != 0;
  bool trans_b = ctx.attrInt("transB", 0) != 0;
  double alpha = ctx.attrFloat("alpha", 1.0f);
  double beta = ctx.attrFloat("beta", 1.0f);
  std::vector<int64_t> a_dims = ctx.inputDims(0);
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer a = ctx.input(0);
  LowerContext::Buffer b = ctx.input(1);
  LowerContext::Buffer y = ctx.output(0);
  kir::IterVar m = kb.var("m", y.dim(0));
  kir::IterVar n = kb.var("n", y.dim(1));
  kir::IterVar k = kb.var("k", trans_a ? a_dims[0] : a_dims[1]);
  Expr a_elem = trans_a ? a(k, m) : a(m, k);
  Expr b_elem = trans_b ? b(n, k) : b(k, n);
  Expr value = kir::reduce(kir::ReduceOp::kSum, {k}, toCompute(a_elem) * toCompute(b_elem));
  if (alpha != 1.0) value = value * alpha;
  if (ctx.hasInput(2) && beta != 0.0) {
    LowerContext::Buffer c = ctx.input(2);
    std::vector<Expr> out_index = {m, n};
    Expr c_elem = toCompute(c.load(broadcastIndex(out_index, c.shape())));
    value = value + (beta == 1.0 ? c_elem : c_elem * beta);
  }
  kb.compute(y, {m, n}, kir::cast(y.dtype(), value));
  return Status::ok();
}

}  // namespace

void registerMatMulOps(OpRegistry& registry) {
  registry.add(OpSchema{"", "MatMul", {1, 9, 13}, {}, inferMatMul, lowerMatMul});
  registry.add(OpSchema{"",
                        "Gemm",
                        {1, 6, 7, 9, 11, 13},
                        {{"alpha", Kind::kFloat},
                         {"beta", Kind::kFloat},
                         {"transA", Kind::kInt},
                         {"transB", Kind::kInt},
                         // Opsets 1-6: C broadcast only when set; later C always broadcasts.
                         {"broadcast", Kind::kInt}},
                        inferGemm,
                        lowerGemm});
}

}  // namespace kiln::ops
