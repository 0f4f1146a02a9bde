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

namespace {

constexpr long kIterations = 100000000;

// Runs `step` on 12 accumulators (starting at 0..11) kIterations times and
// prints the instruction rate; `sum` folds an accumulator so none is dead.
template <typename Vec, typename Step, typename Sum>
void measure(const char* name, int ops_per_instruction, const char* unit, Vec (*init)(int), Step step, Sum sum) {
  Vec a0 = init(0), a1 = init(1), a2 = init(2), a3 = init(3), a4 = init(4), a5 = init(5);
  Vec a6 = init(6), a7 = init(7), a8 = init(8), a9 = init(9), a10 = init(10), a11 = init(11);
  auto t0 = std::chrono::steady_clock::now();
  for (long k = 0; k < kIterations; ++k) {
    a0 = step(a0), a1 = step(a1), a2 = step(a2), a3 = step(a3), a4 = step(a4), a5 = step(a5);
    a6 = step(a6), a7 = step(a7), a8 = step(a8), a9 = step(a9), a10 = step(a10), a11 = step(a11);
    __asm__ volatile("" ::: "memory");
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  volatile double sink = sum(a0) + sum(a1) + sum(a2) + sum(a3) + sum(a4) + sum(a5) + sum(a6) + sum(a7) + sum(a8) +
                         sum(a9) + sum(a10) + sum(a11);
  (void)sink;
  const double rate = kIterations * 12 / s;
  std::printf("%s: %.2f G/s per core = %.0f %s\n", name, rate / 1e9, rate * ops_per_instruction / 1e9, unit);
}

}  // namespace

int main() {
  const __m512i ones = _mm512_set1_epi32(0x01010101), twos = _mm512_set1_epi32(0x02020202);
  measure<__m512i>("vpdpbusd zmm", 128, "int8 GOP/s", [](int i) { return _mm512_set1_epi32(i); },
                   [&](__m512i a) { return _mm512_dpbusd_epi32(a, ones, twos); },
                   [](__m512i a) { return static_cast<double>(_mm512_reduce_add_epi32(a)); });
  const __m512 b = _mm512_set1_ps(1.0000001f), c = _mm512_set1_ps(1e-9f);
  measure<__m512>("vfmadd231ps zmm", 32, "fp32 GFLOP/s", [](int i) { return _mm512_set1_ps(static_cast<float>(i)); },
                  [&](__m512 a) { return _mm512_fmadd_ps(a, b, c); },
                  [](__m512 a) { return static_cast<double>(_mm512_reduce_add_ps(a)); });
  const __m512bh pair = (__m512bh)_mm512_set1_epi32(0x3f803f80);
  measure<__m512>("vdpbf16ps zmm", 64, "bf16 GFLOP/s", [](int i) { return _mm512_set1_ps(static_cast<float>(i)); },
                  [&](__m512 a) { return _mm512_dpbf16_ps(a, pair, pair); },
                  [](__m512 a) { return static_cast<double>(_mm512_reduce_add_ps(a)); });
}
