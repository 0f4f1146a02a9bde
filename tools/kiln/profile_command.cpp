// `kiln profile`: time per kernel, slowest first, with the GFLOP/s each
// reaches against the machine's fp32 peak. The generated code reports the end
// of every kernel through the runtime's profiling hook
// (kiln_session_run_profiled); names and FLOP counts come from the artifact's
// description.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <iostream>

#include "tools/kiln/commands.h"
#include "tools/kiln/escape.h"
#include "tools/kiln/measure.h"

namespace kiln::cli {
namespace {

struct ProfileArgs {
  MeasureOptions common;
  int top = 25;
};

struct KernelTime {
  size_t index = 0;
  std::string name, origin;
  uint64_t flops = 0;
  double ms = 0;  // mean per run
};

struct Profile {
  int threads = 0;
  int iters = 0;
  double run_ms = 0;  // mean wall time of a profiled run, measured around the runtime call
  double kernel_sum_ms = 0;
  uint64_t flops = 0;
  MachinePeak peak;
  std::vector<KernelTime> kernels;  // slowest first
};

Expected<Profile> measure(const ProfileArgs& args) {
  KILN_ASSIGN_OR_RETURN(auto harness, TimingHarness::create(args.common.artifact, args.common.threads, args.common.inputs));
  const kiln::Model& model = harness->model();
  std::vector<uint64_t> kernel_ns, total_ns(model.numKernels(), 0);
  for (int i = 0; i < args.common.warmup; ++i) KILN_RETURN_IF_ERROR(harness->runProfiled(kernel_ns));
  double run_ms = 0;
  for (int i = 0; i < args.common.iters; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    KILN_RETURN_IF_ERROR(harness->runProfiled(kernel_ns));
    run_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    for (size_t k = 0; k < kernel_ns.size(); ++k) total_ns[k] += kernel_ns[k];
  }
  Profile p;
  p.threads = effectiveThreads(args.common.threads);
  p.iters = args.common.iters;
  p.run_ms = run_ms / args.common.iters;
  p.peak = artifactPeak(model, p.threads, args.common.peak_gflops);
  for (size_t k = 0; k < model.numKernels(); ++k) {
    kiln_kernel_info info = model.kernel(k);
    KernelTime t{k, info.name, info.origin, info.flops, static_cast<double>(total_ns[k]) / 1e6 / args.common.iters};
    p.kernel_sum_ms += t.ms;
    p.flops += t.flops;
    p.kernels.push_back(std::move(t));
  }
  std::stable_sort(p.kernels.begin(), p.kernels.end(), [](const KernelTime& a, const KernelTime& b) { return a.ms > b.ms; });
  return p;
}

double gflopsPerS(uint64_t flops, double ms) { return ms > 0 ? static_cast<double>(flops) / (ms * 1e6) : 0; }

void printJson(const ProfileArgs& args, const Profile& p) {
  std::cout << "{\"artifact\": " << jsonQuote(args.common.artifact) << ", \"threads\": " << p.threads
            << ", \"iters\": " << p.iters << ", \"run_ms\": " << jsonNumber(p.run_ms)
            << ", \"kernel_sum_ms\": " << jsonNumber(p.kernel_sum_ms) << ", \"flops\": " << p.flops
            << ", \"peak_gflops\": " << jsonNumber(p.peak.gflops > 0 ? p.peak.gflops : std::nan(""))
            << ", \"peak_derivation\": " << jsonQuote(p.peak.how) << ", \"kernels\": [";
  for (size_t i = 0; i < p.kernels.size(); ++i) {
    const KernelTime& k = p.kernels[i];
    double gflops = gflopsPerS(k.flops, k.ms);
    std::cout << (i ? ",\n  " : "\n  ") << "{\"index\": " << k.index << ", \"name\": " << jsonQuote(k.name)
              << ", \"origin\": " << jsonQuote(k.origin) << ", \"ms\": " << jsonNumber(k.ms)
              << ", \"percent\": " << jsonNumber(p.kernel_sum_ms > 0 ? 100 * k.ms / p.kernel_sum_ms : 0)
              << ", \"flops\": " << k.flops << ", \"gflops_per_s\": " << jsonNumber(gflops)
              << ", \"percent_of_peak\": " << jsonNumber(percentOfPeak(gflops, p.peak)) << "}";
  }
  std::cout << "]}\n";
}

std::string clip(const std::string& s, size_t width) {
  return s.size() <= width ? s : s.substr(0, width - 3) + "...";
}

void printText(const ProfileArgs& args, const Profile& p) {
  std::cout << std::fixed << std::setprecision(3);
  std::cout << args.common.artifact << ": " << p.kernels.size() << " kernels, mean of " << p.iters << " profiled runs, "
            << p.threads << " threads\n"
            << "run " << p.run_ms << " ms, kernels " << p.kernel_sum_ms << " ms; " << std::setprecision(1)
            << gflopsPerS(p.flops, p.kernel_sum_ms) << " GFLOP/s overall";
  if (p.peak.gflops > 0)
    std::cout << " of a " << p.peak.gflops << " GFLOP/s fp32 peak (" << p.peak.how << ")\n\n";
  else
    std::cout << " (peak: " << p.peak.how << ")\n\n";
  std::cout << std::left << std::setw(5) << "rank" << std::setw(34) << "kernel" << std::setw(30) << "origin" << std::right
            << std::setw(10) << "ms" << std::setw(7) << "%" << std::setw(7) << "cum%" << std::setw(9) << "MFLOP"
            << std::setw(9) << "GFLOP/s" << std::setw(7) << "%peak" << "\n";
  double cumulative = 0;
  size_t shown = args.top > 0 ? std::min<size_t>(p.kernels.size(), static_cast<size_t>(args.top)) : p.kernels.size();
  for (size_t i = 0; i < shown; ++i) {
    const KernelTime& k = p.kernels[i];
    double percent = p.kernel_sum_ms > 0 ? 100 * k.ms / p.kernel_sum_ms : 0;
    cumulative += percent;
    double gflops = gflopsPerS(k.flops, k.ms);
    std::cout << std::left << std::setw(5) << i + 1 << std::setw(34) << clip(k.name, 33) << std::setw(30)
              << clip(k.origin, 29) << std::right << std::setprecision(3) << std::setw(10) << k.ms
              << std::setprecision(1) << std::setw(7) << percent << std::setw(7) << cumulative << std::setw(9)
              << static_cast<double>(k.flops) / 1e6 << std::setw(9) << gflops << std::setw(7);
    if (p.peak.gflops > 0)
      std::cout << percentOfPeak(gflops, p.peak) << "\n";
    else
      std::cout << "-"
                << "\n";
  }
  if (shown < p.kernels.size())
    std::cout << "... " << p.kernels.size() - shown << " more kernels, " << std::setprecision(1) << 100 - cumulative
              << "% of the time (--top 0 lists all)\n";
}

}  // namespace

void addProfileCommand(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<ProfileArgs>();
  CLI::App* cmd = app.add_subcommand("profile", "Time each kernel of an artifact, slowest first, against the fp32 peak");
  args->common.iters = 20;
  args->common.warmup = 3;
  addMeasureOptions(*cmd, args->common, "profiled runs averaged");
  cmd->add_option("--top", args->top, "kernels listed (0: all; --json lists all)")->check(CLI::Range(0, 10000000))
      ->capture_default_str();
  onMeasure(*cmd, args, exit_code, measure, printJson, printText);
}

}  // namespace kiln::cli
