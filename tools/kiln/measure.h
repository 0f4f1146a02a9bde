// What `kiln bench` and `kiln profile` share: inputs for timing runs (files or
// deterministic random data), caller-owned output buffers, latency statistics,
// the machine's fp32 peak, and JSON numbers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "compiler/ir/tensor.h"
#include "tools/kiln/commands.h"
#include "kiln_runtime.hpp"

namespace kiln::cli {

struct InputOptions {
  std::vector<std::string> files;   // FILE (in input order) or NAME=FILE
  std::vector<std::string> shapes;  // NAME=DIMS for inputs with symbolic dims
  uint64_t seed = 1;
};

// What `kiln bench` and `kiln profile` both take. `iters` and `warmup` keep
// each command's own defaults.
struct MeasureOptions {
  std::string artifact;
  InputOptions inputs;
  int threads = 0;
  int iters = 0;
  int warmup = 0;
  double peak_gflops = 0;
  bool json = false;
};

// Registers the shared options on `cmd` with the same help texts in both
// commands; `iters_help` says what the timed runs are for.
void addMeasureOptions(CLI::App& cmd, MeasureOptions& options, const std::string& iters_help);

// The callback both commands use: measure(args) -> Expected<Result>, then
// print_json or print_text(args, result); an error becomes the exit code.
template <typename Args, typename Measure, typename PrintJson, typename PrintText>
void onMeasure(CLI::App& cmd, std::shared_ptr<Args> args, int& exit_code, Measure measure, PrintJson print_json,
               PrintText print_text) {
  cmd.callback([args, &exit_code, measure, print_json, print_text] {
    auto result = measure(*args);
    if (!result) {
      exit_code = reportError(result.status());
      return;
    }
    if (args->common.json) print_json(*args, *result);
    else print_text(*args, *result);
    exit_code = kExitOk;
  });
}

// One tensor per model input: read from a file where one is given, otherwise
// random data of the input's dtype and shape (floats uniform in [-1, 1],
// integers in [0, 64), booleans 0/1), the same for the same seed. An input
// with a symbolic dimension needs --shape; the error names it.
Expected<std::vector<ir::Tensor>> prepareInputs(const kiln::Model& model, const InputOptions& options);

// An artifact loaded with one session, its inputs and caller-owned output
// buffers, allocated once so that timed runs measure the model and not the
// allocator. Errors name the artifact.
class TimingHarness {
 public:
  static Expected<std::unique_ptr<TimingHarness>> create(const std::string& artifact, int threads,
                                                         const InputOptions& options);
  ~TimingHarness();
  const kiln::Model& model() const { return *model_; }
  Status run();
  // kernel_ns: each kernel's time in this run (kiln_session_run_profiled).
  Status runProfiled(std::vector<uint64_t>& kernel_ns);

 private:
  TimingHarness() = default;
  std::vector<kiln_tensor>& outputs();
  Status failed(const kiln::Error& e) const;

  std::string artifact_;
  std::unique_ptr<kiln::Model> model_;
  std::unique_ptr<kiln::Session> session_;
  std::vector<ir::Tensor> input_tensors_;
  std::vector<kiln_tensor> inputs_;
  std::vector<kiln_tensor> outputs_;
  std::vector<std::unique_ptr<std::byte, void (*)(void*)>> owned_;
  std::vector<bool> runtime_allocated_;  // outputs of symbolic shape
};

struct LatencyStats {
  int iters = 0;
  double median_ms = 0, p90_ms = 0, min_ms = 0, max_ms = 0, mean_ms = 0;
  double throughput_per_s = 0;  // runs per second, back to back on one caller thread
};
LatencyStats summarize(std::vector<double> times_ms);

// The fp32 peak of `cores` cores: the higher of the nominal figure (cores x
// clock x FLOPs per cycle per core, the clock being the highest of cpufreq's
// cpuinfo_max_freq and /proc/cpuinfo's "cpu MHz", FLOPs per cycle following
// the widest FMA the CPU has: AVX-512 2 FMA ports x 16 lanes x 2 = 64,
// AVX2+FMA 32, otherwise 8) and the rate measured by running independent FMA
// chains on that many threads, best of ten ~20 ms trials (the kernel often
// reports the base clock while the FMA units run at turbo clocks). `how` says
// which.
struct MachinePeak {
  double gflops = 0;
  int cores = 0;
  double ghz = 0;
  int flops_per_cycle = 0;
  std::string how;
};
// Physical cores of this machine (hardware threads when unknown).
int physicalCores();
// The peak for `threads` threads (capped at the physical cores), or the
// user's figure when `override_gflops` > 0.
MachinePeak estimatePeak(int threads, double override_gflops);
// The peak `model`'s rate is held against: estimatePeak's for a CPU
// artifact; for a CUDA one only a figure given with --peak-gflops (the
// CPU's FMA rate says nothing of the GPU's), else none (gflops 0, `how`
// saying so).
MachinePeak artifactPeak(const kiln::Model& model, int threads, double override_gflops);
// 100 * gflops / peak, or NaN (JSON null) without a peak.
double percentOfPeak(double gflops, const MachinePeak& peak);

// Threads a session with `requested` (0: one per core) will use.
int effectiveThreads(int requested);

uint64_t peakRssBytes();  // getrusage's ru_maxrss

std::string jsonNumber(double value);  // finite with 6 significant digits, else null

}  // namespace kiln::cli
