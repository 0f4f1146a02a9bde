#!/usr/bin/env python3
"""Fits the polynomial P of codegen/cpu/emit_math.cpp's expOfReduced.

exp(r) ~ 1 + r + r^2 P(r) on |r| <= ln(2) / 2, P minimax for the relative
error of exp, by Lawson's iteratively reweighted least squares in float64.
Prints P's coefficients (highest degree first, as `polynomial` takes them),
the approximation's relative error, and the worst error in ulp once
evaluated in float32 the way the emitter does (Horner's rule for P, then
1 + r (1 + r P)), with the coefficients rounded to float32.

    python3 tools/math/fit_exp_polynomial.py [--degree 4]
"""
import argparse

import numpy as np

HALF_LN2 = np.log(2) / 2


def fit(degree, points=4000, iterations=200):
    r = np.cos(np.linspace(0, np.pi, points)) * HALF_LN2
    r = r[np.abs(r) > 1e-6]
    target = (np.exp(r) - 1 - r) / r**2
    scale = r**2 / np.exp(r)  # P's error times this is exp's relative error
    basis = np.vander(r, degree + 1, increasing=True)
    weights = np.ones_like(r)
    for _ in range(iterations):
        w = np.sqrt(weights) * scale
        coeffs, *_ = np.linalg.lstsq(basis * w[:, None], target * w, rcond=None)
        error = np.abs((basis @ coeffs - target) * scale)
        weights = weights * error
        weights /= weights.sum()
    return coeffs, error.max()


def float32_ulp_error(coeffs):
    c = coeffs.astype(np.float32)
    r = np.linspace(-HALF_LN2, HALF_LN2, 200001).astype(np.float32)
    fma = lambda a, m, b: np.float32(np.float64(a) * np.float64(m) + np.float64(b))
    p = np.full_like(r, c[-1])
    for k in reversed(range(len(c) - 1)):
        p = fma(p, r, c[k])
    e = fma(fma(p, r, np.float32(1)), r, np.float32(1))
    want = np.exp(r.astype(np.float64))
    return np.max(np.abs(e - want) / np.spacing(want.astype(np.float32)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--degree", type=int, default=4, help="degree of P (exp's polynomial is 2 higher)")
    args = parser.parse_args()
    coeffs, error = fit(args.degree)
    print("P, highest degree first:", ", ".join(f"{v:.16e}" for v in reversed(coeffs)))
    print(f"relative error of exp: {error:.3g}")
    print(f"float32 evaluation: {float32_ulp_error(coeffs):.2f} ulp")


if __name__ == "__main__":
    main()
