// Inline float32 approximations of exp, tanh and erf as straight-line LLVM IR
// (no calls, no branches), so that loops using them vectorize: libm's expf,
// tanhf and erff are scalar calls that stop LLVM's loop vectorizer, and made
// the softmax, GELU and sigmoid loops run one element at a time.
//
// Each works on a float or a vector of floats. Measured error against the
// double-precision functions over a dense sweep of [-110, 95], [-1, 1] and
// [-1e-3, 1e-3] (tests/codegen/emit_math_test.cpp asserts the bounds in
// parentheses; docs/architecture.md lists them):
//   exp:  0.8 ulp (2) for results >= FLT_MIN; subnormal results within one
//         subnormal spacing; +inf above ln(FLT_MAX), 0 below -104; NaN -> NaN.
//   tanh: 1.3 ulp (3): odd polynomial below |x| = 0.625, then
//         1 - 2 / (exp(2|x|) + 1); +-1 for large |x|; NaN -> NaN.
//   erf:  3.3e-7 absolute and relative (5e-7): rational minimax on [-4, 4],
//         +-1 outside; NaN -> NaN.
//   sigmoid: 2.3 ulp (4) above x = -87; sigmoid(-87) ~ 1.6e-38 below;
//         NaN -> NaN. The op definitions lower it as 1 / (1 + exp(-x)),
//         which ExprEmitter recognises and emits with emitSigmoidF32.
#pragma once

#include <llvm/IR/IRBuilder.h>

namespace kiln::codegen::cpu {

llvm::Value* emitExpF32(llvm::IRBuilder<>& b, llvm::Value* x);
llvm::Value* emitTanhF32(llvm::IRBuilder<>& b, llvm::Value* x);
llvm::Value* emitErfF32(llvm::IRBuilder<>& b, llvm::Value* x);
llvm::Value* emitSigmoidF32(llvm::IRBuilder<>& b, llvm::Value* x);

}  // namespace kiln::codegen::cpu
