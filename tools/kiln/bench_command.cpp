// `kiln bench`: latency percentiles, throughput and peak memory of an
// artifact, measured through the runtime's public API the way an embedding
// application runs it (one session, caller-owned buffers, back-to-back runs).
#include <chrono>
#include <iomanip>
#include <iostream>

#include "tools/kiln/commands.h"
#include "tools/kiln/escape.h"
#include "tools/kiln/measure.h"

namespace kiln::cli {
namespace {

struct BenchArgs {
  std::string artifact;
  InputOptions inputs;
  int threads = 0;
  int iters = 100;
  int warmup = 10;
  double max_time_s = 0;
  double peak_gflops = 0;
  bool json = false;
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
  result.rss_before_load_bytes = currentRssBytes();
  KILN_ASSIGN_OR_RETURN(auto harness, TimingHarness::create(args.artifact, args.threads, args.inputs));
  using Clock = std::chrono::steady_clock;
  // With --max-time, warm-up stops after a fifth of it and the timed runs
  // after all of it (at least one of each), as bench/ort_bench.js and
  // bench/torch_bench.py do.
  auto start = Clock::now();
  for (int i = 0; i < args.warmup; ++i) {
    KILN_RETURN_IF_ERROR(harness->run());
    ++result.warmup;
    if (args.max_time_s > 0 && std::chrono::duration<double>(Clock::now() - start).count() >= args.max_time_s / 5) break;
  }
  std::vector<double> times_ms;
  start = Clock::now();
  for (int i = 0; i < args.iters; ++i) {
    auto t0 = Clock::now();
    KILN_RETURN_IF_ERROR(harness->run());
    auto t1 = Clock::now();
    times_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    if (args.max_time_s > 0 && std::chrono::duration<double>(t1 - start).count() >= args.max_time_s) break;
  }
  result.latency = summarize(std::move(times_ms));
  result.threads = effectiveThreads(args.threads);
  const kiln::Model& model = harness->model();
  for (size_t k = 0; k < model.numKernels(); ++k) result.flops += model.kernel(k).flops;
  result.peak = estimatePeak(result.threads, args.peak_gflops);
  result.peak_rss_bytes = peakRssBytes();
  return result;
}

void printJson(const BenchArgs& args, const BenchResult& r) {
  const LatencyStats& l = r.latency;
  double gflops = l.median_ms > 0 ? static_cast<double>(r.flops) / (l.median_ms * 1e6) : 0;
  std::cout << "{\"artifact\": " << jsonQuote(args.artifact) << ", \"threads\": " << r.threads
            << ", \"warmup\": " << r.warmup << ", \"iters\": " << l.iters << ", \"median_ms\": " << jsonNumber(l.median_ms)
            << ", \"p90_ms\": " << jsonNumber(l.p90_ms) << ", \"min_ms\": " << jsonNumber(l.min_ms)
            << ", \"max_ms\": " << jsonNumber(l.max_ms) << ", \"mean_ms\": " << jsonNumber(l.mean_ms)
            << ", \"throughput_per_s\": " << jsonNumber(l.throughput_per_s) << ", \"peak_rss_bytes\": " << r.peak_rss_bytes
            << ", \"rss_before_load_bytes\": " << r.rss_before_load_bytes << ", \"flops\": " << r.flops
            << ", \"gflops_per_s\": " << jsonNumber(gflops) << ", \"peak_gflops\": " << jsonNumber(r.peak.gflops)
            << ", \"percent_of_peak\": " << jsonNumber(r.peak.gflops > 0 ? 100 * gflops / r.peak.gflops : 0)
            << ", \"peak_derivation\": " << jsonQuote(r.peak.how) << "}\n";
}

void printText(const BenchArgs& args, const BenchResult& r) {
  const LatencyStats& l = r.latency;
  double gflops = l.median_ms > 0 ? static_cast<double>(r.flops) / (l.median_ms * 1e6) : 0;
  std::cout << std::fixed << std::setprecision(3);
  std::cout << args.artifact << ": " << l.iters << " runs after " << r.warmup << " warm-up, " << r.threads << " threads\n"
            << "  latency     median " << l.median_ms << " ms   p90 " << l.p90_ms << " ms   min " << l.min_ms
            << " ms   max " << l.max_ms << " ms\n"
            << "  throughput  " << std::setprecision(1) << l.throughput_per_s << " runs/s\n"
            << "  compute     " << static_cast<double>(r.flops) / 1e6 << " MFLOP/run, " << gflops << " GFLOP/s = "
            << (r.peak.gflops > 0 ? 100 * gflops / r.peak.gflops : 0) << "% of " << r.peak.gflops << " GFLOP/s peak ("
            << r.peak.how << ")\n"
            << "  memory      peak RSS " << static_cast<double>(r.peak_rss_bytes) / (1 << 20) << " MiB ("
            << static_cast<double>(r.rss_before_load_bytes) / (1 << 20) << " MiB before loading the model)\n";
}

}  // namespace

void addBenchCommand(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand("bench", "Measure an artifact's latency (median, p90, min), throughput and peak memory");
  cmd->add_option("artifact", args->artifact, "compiled model (.so)")->required();
  cmd->add_option("-i,--input", args->inputs.files,
                  "input file, in the model's input order, or NAME=FILE (repeatable); other inputs get random data");
  cmd->add_option("--shape", args->inputs.shapes, "size of an input with symbolic dims: NAME=1x3x224x224 (repeatable)");
  cmd->add_option("--seed", args->inputs.seed, "seed of the random input data")->capture_default_str();
  cmd->add_option("--threads", args->threads, "worker threads (0: one per core)")->check(CLI::Range(0, 1024));
  cmd->add_option("--iters", args->iters, "timed runs")->check(CLI::Range(1, 10000000))->capture_default_str();
  cmd->add_option("--warmup", args->warmup, "untimed runs first")->check(CLI::Range(0, 10000000))->capture_default_str();
  cmd->add_option("--max-time", args->max_time_s, "time budget in seconds: warm-up stops after a fifth, timed runs after all of it (0: none)")
      ->check(CLI::Range(0.0, 1e6));
  cmd->add_option("--peak-gflops", args->peak_gflops, "the machine's fp32 peak, instead of the estimate")
      ->check(CLI::Range(0.0, 1e9));
  cmd->add_flag("--json", args->json, "print one JSON object");
  cmd->callback([args, &exit_code] {
    auto result = measure(*args);
    if (!result) {
      exit_code = reportError(result.status());
      return;
    }
    if (args->json) printJson(*args, *result);
    else printText(*args, *result);
    exit_code = kExitOk;
  });
}

}  // namespace kiln::cli
