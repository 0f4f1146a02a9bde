#include "tools/kiln/measure.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "compiler/driver/compile.h"
#include "compiler/support/half.h"
#include "tools/common/input_files.h"
#include "tools/common/test_case.h"

namespace kiln::cli {
namespace {


// splitmix64: the same stream on every platform and standard library.
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float uniform() { return static_cast<float>(next() >> 40) / static_cast<float>(1 << 24) * 2.0f - 1.0f; }

 private:
  uint64_t state_;
};

template <typename T>
void put(std::vector<std::byte>& bytes, size_t i, T value) {
  std::memcpy(bytes.data() + i * sizeof(T), &value, sizeof(T));
}

Expected<ir::Tensor> randomTensor(ir::DType dtype, const std::vector<int64_t>& dims, Random& random,
                                  const std::string& where) {
  size_t elem = kiln_dtype_size(static_cast<kiln_dtype>(dtype));
  if (elem == 0) return unsupported(where + ": no random data for dtype " + std::string(ir::name(dtype)) + "; pass --input");
  KILN_ASSIGN_OR_RETURN(int64_t count, ir::elementCount(dims));
  std::vector<std::byte> bytes(static_cast<size_t>(count) * elem);
  for (size_t i = 0; i < static_cast<size_t>(count); ++i) {
    float f = random.uniform();
    int64_t n = static_cast<int64_t>(random.next() % 64);
    switch (dtype) {
      case ir::DType::kFloat32: put(bytes, i, f); break;
      case ir::DType::kFloat64: put(bytes, i, static_cast<double>(f)); break;
      case ir::DType::kFloat16: put(bytes, i, floatToHalf(f)); break;
      case ir::DType::kBFloat16: put(bytes, i, floatToBfloat16(f)); break;
      case ir::DType::kBool: put(bytes, i, static_cast<uint8_t>(n & 1)); break;
      default:
        // Integers: small non-negative values, valid as indices and token ids of most models.
        if (elem == 1) put(bytes, i, static_cast<uint8_t>(n));
        else if (elem == 2) put(bytes, i, static_cast<uint16_t>(n));
        else if (elem == 4) put(bytes, i, static_cast<uint32_t>(n));
        else put(bytes, i, static_cast<uint64_t>(n));
    }
  }
  return ir::Tensor::fromBytes(dtype, dims, std::move(bytes));
}

// The index of input `name`, or an error listing the model's inputs.
std::string readFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

}  // namespace

void addMeasureOptions(CLI::App& cmd, MeasureOptions& options, const std::string& iters_help) {
  cmd.add_option("artifact", options.artifact, "compiled model (.so)")->required();
  cmd.add_option("-i,--input", options.inputs.files,
                 "input file, in the model's input order, or NAME=FILE (repeatable); other inputs get random data")
      ->allow_extra_args(false);
  cmd.add_option("--shape", options.inputs.shapes, "size of an input with symbolic dims: NAME=1x3x224x224 (repeatable)")
      ->allow_extra_args(false);
  cmd.add_option("--seed", options.inputs.seed, "seed of the random input data")->capture_default_str();
  cmd.add_option("--threads", options.threads, "worker threads (0: one per core)")->check(CLI::Range(0, 1024));
  cmd.add_option("--iters", options.iters, iters_help)->check(CLI::Range(1, 10000000))->capture_default_str();
  cmd.add_option("--warmup", options.warmup, "untimed runs first")->check(CLI::Range(0, 10000000))->capture_default_str();
  cmd.add_option("--peak-gflops", options.peak_gflops,
                 "the fp32 peak in GFLOP/s to compare against, instead of the CPU's estimate (a CUDA artifact has none "
                 "without it)")
      ->check(CLI::Range(0.0, 1e9));
  cmd.add_flag("--json", options.json, "print one JSON object");
}

Expected<std::vector<ir::Tensor>> prepareInputs(const kiln::Model& model, const InputOptions& options) {
  KILN_ASSIGN_OR_RETURN(auto slots, tools::readInputFiles(model, options.files));
  std::vector<std::optional<std::vector<int64_t>>> pinned(model.numInputs());
  for (const std::string& spec : options.shapes) {
    size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0)
      return invalidInput("--shape expects NAME=DIMS such as input=1x3x224x224, got '" + spec + "'");
    KILN_ASSIGN_OR_RETURN(size_t index, tools::inputIndex(model, spec.substr(0, eq), "--shape " + spec));
    KILN_ASSIGN_OR_RETURN(pinned[index], driver::parseDims(spec.substr(eq + 1)));
  }
  Random random(options.seed);
  std::vector<ir::Tensor> inputs;
  for (size_t i = 0; i < slots.size(); ++i) {
    if (slots[i]) {
      inputs.push_back(std::move(*slots[i]));
      continue;
    }
    kiln_tensor_info info = model.input(i);
    std::string where = "input " + std::to_string(i) + " '" + info.name + "'";
    std::vector<int64_t> dims(info.dims, info.dims + info.rank);
    if (pinned[i]) {
      if (pinned[i]->size() != dims.size())
        return invalidInput("--shape for " + where + " has rank " + std::to_string(pinned[i]->size()) + ", the input has rank " +
                            std::to_string(dims.size()));
      for (size_t d = 0; d < dims.size(); ++d)
        if (dims[d] >= 0 && dims[d] != (*pinned[i])[d])
          return invalidInput("--shape for " + where + ": dimension " + std::to_string(d) + " is fixed at " +
                              std::to_string(dims[d]));
      dims = *pinned[i];
    }
    for (size_t d = 0; d < dims.size(); ++d)
      if (dims[d] < 0)
        return invalidInput(where + " has symbolic dimension " + std::to_string(d) + " '" + info.dim_names[d] +
                            "': give its size with --shape " + info.name + "=DIMS or pass --input");
    KILN_ASSIGN_OR_RETURN(ir::Tensor t, randomTensor(static_cast<ir::DType>(info.dtype), dims, random, where));
    inputs.push_back(std::move(t));
  }
  return inputs;
}

Expected<std::unique_ptr<TimingHarness>> TimingHarness::create(const std::string& artifact, int threads,
                                                               const InputOptions& options) {
  std::unique_ptr<TimingHarness> h(new TimingHarness());
  h->artifact_ = artifact;
  auto model = tools::loadArtifact(artifact);
  if (!model) return model.status();
  h->model_ = std::move(*model);
  // Strings come in pointer arrays and go out in blocks the run allocates: timing them is not supported.
  for (size_t i = 0; i < h->model_->numInputs() + h->model_->numOutputs(); ++i) {
    bool input = i < h->model_->numInputs();
    kiln_tensor_info info = input ? h->model_->input(i) : h->model_->output(i - h->model_->numInputs());
    if (info.dtype == KILN_STRING)
      return unsupported(std::string(input ? "input '" : "output '") + info.name +
                         "' is a string tensor; bench and profile time numeric models only (use kiln run)");
  }
  try {
    h->session_ = std::make_unique<kiln::Session>(*h->model_, threads);
  } catch (const kiln::Error& e) {
    return h->failed(e);
  }
  KILN_ASSIGN_OR_RETURN(h->input_tensors_, prepareInputs(*h->model_, options));
  for (size_t i = 0; i < h->input_tensors_.size(); ++i) {
    const ir::Tensor& t = h->input_tensors_[i];
    kiln_tensor view{};
    // numpy has no bfloat16: files carry its bits as uint16.
    bool bfloat16_bits = t.dtype() == ir::DType::kUInt16 && h->model_->input(i).dtype == KILN_BFLOAT16;
    view.dtype = bfloat16_bits ? KILN_BFLOAT16 : static_cast<kiln_dtype>(t.dtype());
    if (t.dims().size() > KILN_MAX_RANK) return invalidInput("input " + std::to_string(i) + " has rank over 16");
    view.rank = static_cast<int32_t>(t.dims().size());
    std::copy(t.dims().begin(), t.dims().end(), view.dims);
    view.data = const_cast<std::byte*>(t.bytes().data());
    view.bytes = t.bytes().size();
    h->inputs_.push_back(view);
  }
  for (size_t i = 0; i < h->model_->numOutputs(); ++i) {
    kiln_tensor_info info = h->model_->output(i);
    kiln_tensor out{};
    size_t bytes = kiln_dtype_size(info.dtype);
    bool known = bytes > 0;
    for (int32_t d = 0; d < info.rank; ++d) {
      if (info.dims[d] < 0) known = false;
      else bytes *= static_cast<size_t>(info.dims[d]);
    }
    h->runtime_allocated_.push_back(!known);
    if (known) {
      h->owned_.emplace_back(static_cast<std::byte*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64)), std::free);
      if (!h->owned_.back())  // a size the model asks for, not a fault of Kiln: exit 2, as `kiln run` does
        return invalidInput("output " + std::to_string(i) + " '" + info.name + "' needs " + std::to_string(bytes) +
                            " bytes, more than this machine can allocate");
      out.data = h->owned_.back().get();
      out.bytes = bytes;
    }
    h->outputs_.push_back(out);
  }
  return h;
}

TimingHarness::~TimingHarness() {
  for (size_t i = 0; i < outputs_.size(); ++i)
    if (runtime_allocated_[i]) kiln_free(outputs_[i].data);
}

// Outputs the runtime allocated last time are released and asked for again.
std::vector<kiln_tensor>& TimingHarness::outputs() {
  for (size_t i = 0; i < outputs_.size(); ++i) {
    if (!runtime_allocated_[i]) continue;
    kiln_free(outputs_[i].data);
    outputs_[i].data = nullptr;
  }
  return outputs_;
}

Status TimingHarness::failed(const kiln::Error& e) const {
  return tools::runtimeStatus(e).withContext("artifact '" + artifact_ + "'");
}

Status TimingHarness::run() {
  try {
    session_->run(inputs_, outputs());
  } catch (const kiln::Error& e) {
    return failed(e);
  }
  return Status::ok();
}

Status TimingHarness::runProfiled(std::vector<uint64_t>& kernel_ns) {
  try {
    session_->runProfiled(inputs_, outputs(), kernel_ns);
  } catch (const kiln::Error& e) {
    return failed(e);
  }
  return Status::ok();
}

LatencyStats summarize(std::vector<double> times_ms) {
  LatencyStats s;
  if (times_ms.empty()) return s;
  std::sort(times_ms.begin(), times_ms.end());
  size_t n = times_ms.size();
  double total = 0;
  for (double t : times_ms) total += t;
  s.iters = static_cast<int>(n);
  s.median_ms = n % 2 ? times_ms[n / 2] : (times_ms[n / 2 - 1] + times_ms[n / 2]) / 2;
  // Nearest rank: the smallest time at least 90% of the runs do not exceed.
  s.p90_ms = times_ms[static_cast<size_t>(std::ceil(0.9 * static_cast<double>(n))) - 1];
  s.min_ms = times_ms.front();
  s.max_ms = times_ms.back();
  s.mean_ms = total / static_cast<double>(n);
  s.throughput_per_s = total > 0 ? 1000.0 * static_cast<double>(n) / total : 0;
  return s;
}

int physicalCores() {
  std::ifstream in("/proc/cpuinfo");
  std::set<std::pair<std::string, std::string>> cores;
  std::string line, package = "0";
  while (std::getline(in, line)) {
    auto value = [&] { return line.substr(line.find(':') + 1); };
    if (line.rfind("physical id", 0) == 0) package = value();
    else if (line.rfind("core id", 0) == 0) cores.insert({package, value()});
  }
  int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return cores.empty() ? hw : std::min(hw, static_cast<int>(cores.size()));
}

namespace {

// Independent FMA chains, enough to cover the FMA latency on both ports, run
// for `iters` rounds; the sum is returned so the work cannot be dropped. `V`
// is a GCC vector type; the callers below pick its width and the ISA, and GCC
// contracts `acc * a + b` into one FMA.
constexpr int kChains = 12;

template <typename V>
[[gnu::always_inline]] inline float fmaChains(long iters) {
  constexpr int kLanes = sizeof(V) / sizeof(float);
  V acc[kChains];
  for (int j = 0; j < kChains; ++j)
    for (int l = 0; l < kLanes; ++l) acc[j][l] = 0.001f * static_cast<float>(j);
  V a, b;
  for (int l = 0; l < kLanes; ++l) a[l] = 0.999999f, b[l] = 1e-7f;
  for (long i = 0; i < iters; ++i) {
#pragma GCC unroll 12  // the accumulators must live in registers
    for (int j = 0; j < kChains; ++j) acc[j] = acc[j] * a + b;
  }
  float total = 0;
  for (int j = 0; j < kChains; ++j)
    for (int l = 0; l < kLanes; ++l) total += acc[j][l];
  return total;
}

typedef float Float16 __attribute__((vector_size(64)));
typedef float Float8 __attribute__((vector_size(32)));

__attribute__((target("avx512f,fma"))) float fmaLoopAvx512(long iters) { return fmaChains<Float16>(iters); }
__attribute__((target("avx2,fma"))) float fmaLoopAvx2(long iters) { return fmaChains<Float8>(iters); }

// GFLOP/s of `threads` threads running the widest FMA loop at once; the best
// of ten short trials (~0.2 s in all), so a disturbance on a shared machine does not lower it.
double measureFmaGflops(int threads, int lanes) {
  const long iters = 2'000'000;  // ~15-30 ms per trial at 3 GHz
  const double flops = static_cast<double>(iters) * kChains * lanes * 2 * threads;
  double best = 0;
  for (int trial = 0; trial < 10; ++trial) {
    std::vector<std::thread> workers;
    auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t)
      workers.emplace_back([&] {
        float total = lanes == 16 ? fmaLoopAvx512(iters) : fmaLoopAvx2(iters);
        asm volatile("" : : "x"(total));  // the result is used, so the loop cannot be dropped
      });
    for (std::thread& w : workers) w.join();
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, flops / seconds / 1e9);
  }
  return best;
}

}  // namespace

MachinePeak artifactPeak(const kiln::Model& model, int threads, double override_gflops) {
  if (model.metadata("target") != "cuda" || override_gflops > 0) return estimatePeak(threads, override_gflops);
  MachinePeak peak;
  peak.how = "none for a CUDA artifact; --peak-gflops gives the GPU's";
  return peak;
}

double percentOfPeak(double gflops, const MachinePeak& peak) {
  return peak.gflops > 0 ? 100 * gflops / peak.gflops : std::nan("");
}

MachinePeak estimatePeak(int threads, double override_gflops) {
  MachinePeak peak;
  peak.cores = std::max(1, std::min(threads, physicalCores()));
  if (override_gflops > 0) {
    peak.gflops = override_gflops;
    peak.how = "given with --peak-gflops";
    return peak;
  }
  double mhz = 0;
  std::string max_khz = readFirstLine("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq");
  if (!max_khz.empty()) mhz = std::atof(max_khz.c_str()) / 1000.0;
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("cpu MHz", 0) == 0) mhz = std::max(mhz, std::atof(line.substr(line.find(':') + 1).c_str()));
  __builtin_cpu_init();
  std::string isa;
  int lanes = 0;
  if (__builtin_cpu_supports("avx512f")) peak.flops_per_cycle = 64, lanes = 16, isa = "AVX-512: 2 FMA x 16 lanes x 2";
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) peak.flops_per_cycle = 32, lanes = 8, isa = "AVX2: 2 FMA x 8 lanes x 2";
  else peak.flops_per_cycle = 8, isa = "SSE: 4 lanes x (add + mul)";
  peak.ghz = mhz / 1000.0;
  double nominal = peak.cores * peak.ghz * peak.flops_per_cycle;
  std::ostringstream how;
  how.precision(3);
  // The nominal figure is only a guess at what the FMA units deliver: the
  // clock the kernel reports is often the base clock, not the one AVX-512
  // code runs at, and some cores (AMD Zen 4) issue one 512-bit FMA per cycle,
  // not two. The measured FMA-loop rate is what this machine delivers, so it
  // is the peak wherever it could be measured (on a busy machine it reads
  // low; --peak-gflops takes a figure of one's own).
  double measured = lanes ? measureFmaGflops(peak.cores, lanes) : 0;
  if (measured > 0) {
    peak.gflops = measured;
    peak.ghz = measured / (peak.cores * peak.flops_per_cycle);
    how << "measured: " << peak.cores << " threads of FMA loops, " << peak.cores << " cores x " << peak.ghz
        << " GHz effective x " << peak.flops_per_cycle << " FLOP/cycle (" << isa << "); nominal " << nominal;
  } else {
    peak.gflops = nominal;
    how << peak.cores << " cores x " << peak.ghz << " GHz x " << peak.flops_per_cycle << " FLOP/cycle (" << isa << ")";
  }
  peak.how = how.str();
  return peak;
}

int effectiveThreads(int requested) {
  return requested > 0 ? requested : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

uint64_t peakRssBytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<uint64_t>(usage.ru_maxrss) * 1024;
}

std::string jsonNumber(double value) {
  if (!std::isfinite(value)) return "null";
  char text[32];
  std::snprintf(text, sizeof(text), "%.6g", value);
  return text;
}

}  // namespace kiln::cli
