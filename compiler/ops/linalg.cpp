// Linear algebra: Det.
//
// Det of each trailing M x M matrix by Gaussian elimination with partial
// pivoting, unrolled over the M pivot steps (M is static). Step k is four
// stages over every matrix of the batch at once:
//   pivot[b]   = the first row i >= k whose |A[b,i,k]| is largest
//   T[b,i,j]   = A[b,i,j] with rows k and pivot[b] swapped
//   sign[b]   *= -1 when a swap happened
//   A[b,i,j]   = T[b,i,j] - T[b,i,k] / T[b,k,k] * T[b,k,j]  for i > k
// and det[b] = sign[b] * prod_i A[b,i,i]. A zero pivot column leaves the
// matrix as it is (the product is then 0), so no step divides by zero.
#include "compiler/lower/lower_context.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"

namespace kiln::ops {
namespace {

using kir::Expr;
using Buffer = LowerContext::Buffer;

Status inferDet(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 1));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "X", DTypeClass::kFloat));
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShapeOfMinRank(ctx, 0, "X", 2));
  const ir::Dim& rows = x[x.size() - 2];
  const ir::Dim& cols = x[x.size() - 1];
  if (conflictingDims(rows, cols))
    return ctx.error("X " + ir::toString(x) + " must hold square matrices in its last two dims (input 0)");
  ctx.setOutputType(0, {ctx.inputType(0).dtype, ir::Shape(x.begin(), x.end() - 2)});
  return Status::ok();
}

Status lowerDet(LowerContext& ctx) {
  std::vector<int64_t> dims = ctx.inputDims(0);
  int64_t m = dims.back();
  int64_t batch = 1;
  for (size_t i = 0; i + 2 < dims.size(); ++i) batch *= dims[i];
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer x = ctx.input(0, {batch, m, m});
  Buffer y = ctx.output(0, {batch});
  ir::DType dtype = computeDType(x.dtype());
  if (m == 0) {
    kb.compute(y, {kb.var("b", batch)}, kir::cast(y.dtype(), Expr::constant(dtype, 1)));
    return Status::ok();
  }
  Buffer a = ctx.temp("lu", dtype, {batch, m, m});
  Buffer t = ctx.temp("swapped", dtype, {batch, m, m});
  Buffer pivot = ctx.temp("pivot", ir::DType::kInt64, {batch});
  Buffer peak = ctx.temp("peak", dtype, {batch});
  Buffer sign = ctx.temp("sign", dtype, {batch});
  auto matrixVars = [&](const char* tag) {
    std::string s(tag);
    return std::vector<kir::IterVar>{kb.var("b" + s, batch), kb.var("i" + s, m), kb.var("j" + s, m)};
  };
  std::vector<kir::IterVar> c = matrixVars("c");
  kb.compute(a, c, toCompute(x(c[0], c[1], c[2])));
  kir::IterVar sb = kb.var("b", batch);
  kb.compute(sign, {sb}, Expr::constant(dtype, 1));
  for (int64_t k = 0; k + 1 < m; ++k) {
    Expr kk = Expr::index(k);
    kir::IterVar b = kb.var("b", batch);
    kir::IterVar r = kb.var("r", m);
    Expr below = Expr(r) >= kk;
    kb.compute(peak, {b}, kir::reduce(kir::ReduceOp::kMax, {r},
                                      kir::select(below, kir::abs(a(b, r, kk)), Expr::constant(dtype, -1))));
    kir::IterVar b2 = kb.var("b", batch);
    kir::IterVar r2 = kb.var("r", m);
    Expr hit = (Expr(r2) >= kk) && kir::eq(kir::abs(a(b2, r2, kk)), peak(b2));
    Expr first = kir::reduce(kir::ReduceOp::kMin, {r2}, kir::select(hit, Expr(r2), Expr::index(m - 1)));
    kb.compute(pivot, {b2}, first);
    std::vector<kir::IterVar> s = matrixVars("s");
    Expr p = pivot(s[0]);
    Expr row = kir::select(kir::eq(Expr(s[1]), kk), p, kir::select(kir::eq(Expr(s[1]), p), kk, Expr(s[1])));
    kb.compute(t, s, a(s[0], row, s[2]));
    kir::IterVar b3 = kb.var("b", batch);
    kb.compute(sign, {b3}, kir::select(kir::eq(pivot(b3), kk), sign(b3), -sign(b3)));
    std::vector<kir::IterVar> e = matrixVars("e");
    Expr diag = t(e[0], kk, kk);
    Expr zero = Expr::constant(dtype, 0);
    Expr factor = kir::select(kir::eq(diag, zero), zero, t(e[0], e[1], kk) / diag);
    Expr eliminated = t(e[0], e[1], e[2]) - factor * t(e[0], kk, e[2]);
    kb.compute(a, e, kir::select(Expr(e[1]) > kk, eliminated, t(e[0], e[1], e[2])));
  }
  kir::IterVar b = kb.var("b", batch);
  kir::IterVar d = kb.var("d", m);
  kb.compute(y, {b}, kir::cast(y.dtype(), sign(b) * kir::reduce(kir::ReduceOp::kProd, {d}, a(b, d, d))));
  return Status::ok();
}

}  // namespace

void registerLinalgOps(OpRegistry& registry) {
  registry.add(OpSchema{"", "Det", {11}, {}, inferDet, lowerDet});
}

}  // namespace kiln::ops
