// Per-core throughput of the AVX-512 instructions Kiln's CPU microkernels are
// built on (bench/peak.sh compiles and runs it): vpdpbusd (int8 dot products,
// AVX512-VNNI), vfmadd231ps (float32 FMA) and vdpbf16ps (AVX512-BF16), each
// on 12 independent accumulator chains held in registers, so the loop is
// bound by throughput, not latency. Ops count a multiply-add as two: 128 per
// vpdpbusd zmm, 32 per vfmadd231ps zmm, 64 per vdpbf16ps zmm. These are the
// measured peaks the benchmark tables' fractions should be read against.
#include <immintrin.h>
#include <chrono>
#include <cstdio>
#define R12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
static double seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
int main() {
  const long n = 100000000;
  volatile float sink = 0;
  {
#define D(i) __m512i a##i = _mm512_set1_epi32(i);
    R12(D)
    __m512i b = _mm512_set1_epi32(0x01010101), c = _mm512_set1_epi32(0x02020202);
    auto t0 = std::chrono::steady_clock::now();
    for (long k = 0; k < n; ++k) {
#define S(i) a##i = _mm512_dpbusd_epi32(a##i, b, c);
      R12(S)
      __asm__ volatile("" ::: "memory");
    }
    double s = seconds(t0);
#define A(i) sink += _mm512_reduce_add_epi32(a##i);
    R12(A)
    std::printf("vpdpbusd zmm: %.2f G/s per core = %.0f int8 GOP/s\n", n * 12 / s / 1e9, n * 12 * 128 / s / 1e9);
  }
  {
#undef D
#undef S
#undef A
#define D(i) __m512 f##i = _mm512_set1_ps(i);
    R12(D)
    __m512 b = _mm512_set1_ps(1.0000001f), c = _mm512_set1_ps(1e-9f);
    auto t0 = std::chrono::steady_clock::now();
    for (long k = 0; k < n; ++k) {
#define S(i) f##i = _mm512_fmadd_ps(f##i, b, c);
      R12(S)
      __asm__ volatile("" ::: "memory");
    }
    double s = seconds(t0);
#define A(i) sink += _mm512_reduce_add_ps(f##i);
    R12(A)
    std::printf("vfmadd231ps zmm: %.2f G/s per core = %.0f fp32 GFLOP/s\n", n * 12 / s / 1e9, n * 12 * 32 / s / 1e9);
  }
  {
#undef D
#undef S
#undef A
#define D(i) __m512 h##i = _mm512_set1_ps(i);
    R12(D)
    __m512bh b = (__m512bh)_mm512_set1_epi32(0x3f803f80);
    auto t0 = std::chrono::steady_clock::now();
    for (long k = 0; k < n; ++k) {
#define S(i) h##i = _mm512_dpbf16_ps(h##i, b, b);
      R12(S)
      __asm__ volatile("" ::: "memory");
    }
    double s = seconds(t0);
#define A(i) sink += _mm512_reduce_add_ps(h##i);
    R12(A)
    std::printf("vdpbf16ps zmm: %.2f G/s per core = %.0f bf16 GFLOP/s\n", n * 12 / s / 1e9, n * 12 * 64 / s / 1e9);
  }
}
