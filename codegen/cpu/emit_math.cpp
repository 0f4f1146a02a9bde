#include "codegen/cpu/emit_math.h"

#include <initializer_list>

#include <llvm/IR/Intrinsics.h>

namespace kiln::codegen::cpu {
namespace {

llvm::Value* constant(llvm::Value* like, double v) { return llvm::ConstantFP::get(like->getType(), v); }

// a * b + c, contracted to one FMA where the target has it.
llvm::Value* fma(llvm::IRBuilder<>& b, llvm::Value* a, llvm::Value* m, llvm::Value* c) {
  return b.CreateIntrinsic(llvm::Intrinsic::fmuladd, {a->getType()}, {a, m, c});
}

// Horner's rule over `coeffs`, highest degree first.
llvm::Value* polynomial(llvm::IRBuilder<>& b, llvm::Value* x, std::initializer_list<double> coeffs) {
  auto it = coeffs.begin();
  llvm::Value* p = constant(x, *it++);
  for (; it != coeffs.end(); ++it) p = fma(b, p, x, constant(x, *it));
  return p;
}

// min/max written as compare+select in the operand order of x86's
// vminps/vmaxps: a NaN `x` yields the bound (callers restore NaN at the end).
llvm::Value* clamp(llvm::IRBuilder<>& b, llvm::Value* x, double lo, double hi) {
  llvm::Value* upper = constant(x, hi);
  llvm::Value* lower = constant(x, lo);
  llvm::Value* y = b.CreateSelect(b.CreateFCmpOLT(x, upper), x, upper);
  return b.CreateSelect(b.CreateFCmpOGT(y, lower), y, lower);
}

llvm::Value* keepNaN(llvm::IRBuilder<>& b, llvm::Value* x, llvm::Value* result) {
  return b.CreateSelect(b.CreateFCmpUNO(x, x), x, result);
}

llvm::Type* intTypeLike(llvm::Value* x) {
  llvm::Type* i32 = llvm::Type::getInt32Ty(x->getContext());
  if (auto* v = llvm::dyn_cast<llvm::VectorType>(x->getType())) return llvm::VectorType::get(i32, v->getElementCount());
  return i32;
}

// 2^n for an integer-valued float n in [-254, 254], as the float whose
// exponent field is n + 127.
llvm::Value* powerOfTwo(llvm::IRBuilder<>& b, llvm::Value* n_int, llvm::Type* float_type) {
  llvm::Value* biased = b.CreateAdd(n_int, llvm::ConstantInt::get(n_int->getType(), 127));
  return b.CreateBitCast(b.CreateShl(biased, llvm::ConstantInt::get(n_int->getType(), 23)), float_type);
}

// exp(t - n ln 2) for an integer-valued float n = round(t / ln 2), so that
// |r| <= ln(2) / 2: ln 2 split in two so r is exact, then 1 + r + r^2 P(r)
// with P of degree 4, minimax for relative error: 3.1e-9 from exp, 0.71
// ulp once evaluated in float (tools/math/fit_exp_polynomial.py fits and
// checks it). Cephes' degree-5 P took one FMA more per element for 0.68
// ulp, and a SiLU epilogue is bound by its FMAs (EfficientNet-B0: 2% of
// the run).
llvm::Value* expOfReduced(llvm::IRBuilder<>& b, llvm::Value* t, llvm::Value* n) {
  llvm::Value* r = fma(b, n, constant(t, -0.693359375), t);
  r = fma(b, n, constant(t, 2.12194440e-4), r);
  llvm::Value* p = polynomial(b, r,
                              {1.3814613088981124e-3, 8.3687099613458140e-3, 4.1668387373970495e-2,
                               1.6666520688656622e-1, 4.9999993451625520e-1});
  return fma(b, fma(b, p, r, constant(t, 1.0)), r, constant(t, 1.0));
}

}  // namespace

// exp(x) = 2^n exp(r) (expOfReduced); 2^n is applied as two factors 2^(n/2)
// so that results down into the subnormals (n >= -150) and up to the
// overflow (n <= 129) round once.
llvm::Value* emitExpF32(llvm::IRBuilder<>& b, llvm::Value* x) {
  llvm::Value* t = clamp(b, x, -104.0, 89.0);  // beyond: exp is 0 or +inf in float
  llvm::Value* n = b.CreateIntrinsic(llvm::Intrinsic::roundeven, {x->getType()},
                                     {b.CreateFMul(t, constant(x, 1.44269504088896341))});
  llvm::Value* p = expOfReduced(b, t, n);
  llvm::Value* n_int = b.CreateFPToSI(n, intTypeLike(x));
  llvm::Value* half = b.CreateAShr(n_int, llvm::ConstantInt::get(n_int->getType(), 1));
  llvm::Value* scaled = b.CreateFMul(b.CreateFMul(p, powerOfTwo(b, half, x->getType())),
                                     powerOfTwo(b, b.CreateSub(n_int, half), x->getType()));
  return keepNaN(b, x, scaled);
}

// 1 / (1 + exp(-x)), in fewer operations than exp and a divide (it is most
// of an expand convolution's SiLU epilogue):
// - -x is clamped to [-87, 87] with NaN passed through (no NaN fix-up at the
//   end). There 2^n is one normal float, |n| <= 126, and 1 + exp(-x) is
//   finite; below -87 the result is sigmoid(-87) ~ 1.6e-38, where the true
//   value is subnormal or 0.
// - n = round(-x / ln 2) comes from adding 1.5 * 2^23 + 127: the sum's low
//   mantissa bits are then n + 127, and shifting them into the exponent
//   field is 2^n (no float-to-int conversion, no separate rounding).
// - exp(r) as expOfReduced computes it.
// - The reciprocal may be an estimate refined by one Newton step (`arcp`:
//   AVX-512 vectors get vrcp14ps and two FMAs; scalar code divides).
llvm::Value* emitSigmoidF32(llvm::IRBuilder<>& b, llvm::Value* x) {
  llvm::Value* hi = constant(x, 87.0);
  llvm::Value* lo = constant(x, -87.0);
  llvm::Value* t = b.CreateFNeg(x);
  t = b.CreateSelect(b.CreateFCmpOGT(t, hi), hi, t);  // vminps(hi, t): a NaN t stays
  t = b.CreateSelect(b.CreateFCmpOLT(t, lo), lo, t);  // vmaxps(lo, t)
  const double shifter = 12582912.0 + 127.0;
  llvm::Value* f = fma(b, t, constant(x, 1.44269504088896341), constant(x, shifter));
  llvm::Value* n = b.CreateFSub(f, constant(x, shifter));
  llvm::Value* p = expOfReduced(b, t, n);
  llvm::Type* ints = intTypeLike(x);
  llvm::Value* scale =
      b.CreateBitCast(b.CreateShl(b.CreateBitCast(f, ints), llvm::ConstantInt::get(ints, 23)), x->getType());
  llvm::Value* d = fma(b, p, scale, constant(x, 1.0));
  llvm::Value* reciprocal = b.CreateFDiv(constant(x, 1.0), d);
  if (auto* div = llvm::dyn_cast<llvm::Instruction>(reciprocal)) {
    div->setHasAllowReciprocal(true);
    div->setHasAllowContract(true);
    div->setHasNoInfs(true);
  }
  return reciprocal;
}

// Small |x|: Cephes' odd polynomial x + x^3 P(x^2) (no cancellation near 0).
// Otherwise 1 - 2 / (exp(2|x|) + 1) with x's sign; exp's overflow gives 1.
llvm::Value* emitTanhF32(llvm::IRBuilder<>& b, llvm::Value* x) {
  llvm::Value* ax = b.CreateIntrinsic(llvm::Intrinsic::fabs, {x->getType()}, {x});
  llvm::Value* z = b.CreateFMul(x, x);
  llvm::Value* p = polynomial(b, z, {-5.70498872745E-3, 2.06390887954E-2, -5.37397155531E-2, 1.33314422036E-1,
                                     -3.33332819422E-1});
  llvm::Value* small = fma(b, b.CreateFMul(p, z), x, x);
  llvm::Value* e = emitExpF32(b, b.CreateFAdd(ax, ax));
  llvm::Value* large = b.CreateFSub(constant(x, 1.0), b.CreateFDiv(constant(x, 2.0), b.CreateFAdd(e, constant(x, 1.0))));
  large = b.CreateIntrinsic(llvm::Intrinsic::copysign, {x->getType()}, {large, x});
  return b.CreateSelect(b.CreateFCmpOLT(ax, constant(x, 0.625)), small, large);
}

// erf(x) = x P(x^2) / Q(x^2) on [-4, 4] (odd degree-13 over even degree-8
// minimax; erf rounds to +-1 in float beyond 3.92).
llvm::Value* emitErfF32(llvm::IRBuilder<>& b, llvm::Value* x) {
  llvm::Value* t = clamp(b, x, -4.0, 4.0);
  llvm::Value* z = b.CreateFMul(t, t);
  llvm::Value* p = polynomial(b, z, {-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
                                     -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
                                     -1.60960333262415e-02});
  llvm::Value* q = polynomial(b, z, {-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
                                     -7.37332916720468e-03, -1.42647390514189e-02});
  return keepNaN(b, x, b.CreateFDiv(b.CreateFMul(t, p), q));
}

}  // namespace kiln::codegen::cpu
