// `kiln bench`: latency percentiles, throughput and peak memory of an
// artifact, measured through the runtime's public API the way an embedding
// application runs it (one session, caller-owned buffers, back-to-back runs).
#include <chrono>
#include <cmath>
#include <iomanip>
#include <iostream>

#include "compiler/support/resident_memory.h"
#include "tools/kiln/commands.h"
#include "tools/kiln/escape.h"
#include "tools/kiln/measure.h"

namespace kiln::cli {
namespace {

struct BenchArgs {
  MeasureOptions common;
  double max_time_s = 0;
};

struct BenchResult {
  LatencyStats latency;
  int threads = 0;
  int warmup = 0;  // runs done: --max-time may cut them short
  uint64_t flops = 0;
  MachinePeak peak;
  uint64_t rss_before_load_bytes = 0;
  uint64_t peak_rss_bytes = 0;
};

Expected<BenchResult> measure(const BenchArgs& args) {
  BenchResult result;
  result.rss_before_load_bytes = residentBytes();
  KILN_ASSIGN_OR_RETURN(auto harness, TimingHarness::create(args.common.artifact, args.common.threads, args.common.inputs));
  using Clock = std::chrono::steady_clock;
  // With --max-time, warm-up stops after a fifth of it and the timed runs
  // after all of it (at least one of each), as bench/ort_bench.js and
  // bench/torch_bench.py do.
  auto start = Clock::now();
  for (int i = 0; i < args.common.warmup; ++i) {
    KILN_RETURN_IF_ERROR(harness->run());
    ++result.warmup;
    if (args.max_time_s > 0 && std::chrono::duration<double>(Clock::now() - start).count() >= args.max_time_s / 5) break;
  }
  std::vector<double> times_ms;
  start = Clock::now();
  for (int i = 0; i < args.common.iters; ++i) {
    auto t0 = Clock::now();
    KILN_RETURN_IF_ERROR(harness->run());
    auto t1 = Clock::now();
    times_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    if (args.max_time_s > 0 && std::chrono::duration<double>(t1 - start).count() >= args.max_time_s) break;
  }
  result.latency = summarize(std::move(times_ms));
  result.threads = effectiveThreads(args.common.threads);
  const kiln::Model& model = harness->model();
  for (size_t k = 0; k < model.numKernels(); ++k) result.flops += model.kernel(k).flops;
  result.peak = artifactPeak(model, result.threads, args.common.peak_gflops);
  result.peak_rss_bytes = peakRssBytes();
  return result;
}

void printJson(const BenchArgs& args, const BenchResult& r) {
  const LatencyStats& l = r.latency;
  double gflops = l.median_ms > 0 ? static_cast<double>(r.flops) / (l.median_ms * 1e6) : 0;
  std::cout << "{\"artifact\": " << jsonQuote(args.common.artifact) << ", \"threads\": " << r.threads
            << ", \"warmup\": " << r.warmup << ", \"iters\": " << l.iters
            << ", \"median_ms\": " << jsonNumber(l.median_ms) << ", \"p90_ms\": " << jsonNumber(l.p90_ms)
            << ", \"min_ms\": " << jsonNumber(l.min_ms) << ", \"max_ms\": " << jsonNumber(l.max_ms)
            << ", \"mean_ms\": " << jsonNumber(l.mean_ms)
            << ", \"throughput_per_s\": " << jsonNumber(l.throughput_per_s)
            << ", \"peak_rss_bytes\": " << r.peak_rss_bytes
            << ", \"rss_before_load_bytes\": " << r.rss_before_load_bytes << ", \"flops\": " << r.flops
            << ", \"gflops_per_s\": " << jsonNumber(gflops)
            << ", \"peak_gflops\": " << jsonNumber(r.peak.gflops > 0 ? r.peak.gflops : std::nan(""))
            << ", \"percent_of_peak\": " << jsonNumber(percentOfPeak(gflops, r.peak))
            << ", \"peak_derivation\": " << jsonQuote(r.peak.how) << "}\n";
}

void printText(const BenchArgs& args, const BenchResult& r) {
  const LatencyStats& l = r.latency;
  double gflops = l.median_ms > 0 ? static_cast<double>(r.flops) / (l.median_ms * 1e6) : 0;
  std::cout << std::fixed << std::setprecision(3);
  std::cout << args.common.artifact << ": " << l.iters << " runs after " << r.warmup << " warm-up, " << r.threads
            << " threads\n"
            << "  latency     median " << l.median_ms << " ms   p90 " << l.p90_ms << " ms   min " << l.min_ms
            << " ms   max " << l.max_ms << " ms\n"
            << "  throughput  " << std::setprecision(1) << l.throughput_per_s << " runs/s\n"
            << "  compute     " << static_cast<double>(r.flops) / 1e6 << " MFLOP/run, " << gflops << " GFLOP/s";
  if (r.peak.gflops > 0)
    std::cout << " = " << percentOfPeak(gflops, r.peak) << "% of " << r.peak.gflops << " GFLOP/s peak (" << r.peak.how
              << ")\n";
  else
    std::cout << " (peak: " << r.peak.how << ")\n";
  std::cout << "  memory      peak RSS " << static_cast<double>(r.peak_rss_bytes) / (1 << 20) << " MiB ("
            << static_cast<double>(r.rss_before_load_bytes) / (1 << 20) << " MiB before loading the model)\n";
}

}  // namespace

void addBenchCommand(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand("bench", "Measure an artifact's latency (median, p90, min), throughput and peak memory");
  args->common.iters = 100;
  args->common.warmup = 10;
  addMeasureOptions(*cmd, args->common, "timed runs");
  cmd->add_option("--max-time", args->max_time_s, "time budget in seconds: warm-up stops after a fifth, timed runs after all of it (0: none)")
      ->check(CLI::Range(0.0, 1e6));
  onMeasure(*cmd, args, exit_code, measure, printJson, printText);
}

}  // namespace kiln::cli
