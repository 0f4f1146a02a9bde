#include "cpu_features.h"

#include <array>
#include <cpuid.h>
#include <cstdint>
#include <sys/syscall.h>
#include <unistd.h>

namespace kiln::cpu {
namespace {

enum Reg { kEax, kEbx, kEcx, kEdx };
enum OsState { kNone, kAvxState, kAvx512State, kAmxState };

struct FeatureBit {
  std::string_view name;
  unsigned leaf, subleaf;
  Reg reg;
  int bit;
  OsState state;
};

constexpr std::array<FeatureBit, 21> kFeatures = {{
    {"sse4.2", 1, 0, kEcx, 20, kNone},
    {"fma", 1, 0, kEcx, 12, kAvxState},
    {"avx", 1, 0, kEcx, 28, kAvxState},
    {"f16c", 1, 0, kEcx, 29, kAvxState},
    {"bmi", 7, 0, kEbx, 3, kNone},
    {"avx2", 7, 0, kEbx, 5, kAvxState},
    {"bmi2", 7, 0, kEbx, 8, kNone},
    {"avx512f", 7, 0, kEbx, 16, kAvx512State},
    {"avx512dq", 7, 0, kEbx, 17, kAvx512State},
    {"avx512cd", 7, 0, kEbx, 28, kAvx512State},
    {"avx512bw", 7, 0, kEbx, 30, kAvx512State},
    {"avx512vl", 7, 0, kEbx, 31, kAvx512State},
    {"avx512vnni", 7, 0, kEcx, 11, kAvx512State},
    {"avx512fp16", 7, 0, kEdx, 23, kAvx512State},
    {"amx-bf16", 7, 0, kEdx, 22, kAmxState},
    {"amx-tile", 7, 0, kEdx, 24, kAmxState},
    {"amx-int8", 7, 0, kEdx, 25, kAmxState},
    {"avxvnni", 7, 1, kEax, 4, kAvxState},
    {"avx512bf16", 7, 1, kEax, 5, kAvx512State},
    {"amx-fp16", 7, 1, kEax, 21, kAmxState},
    {"avx512vbmi", 7, 0, kEcx, 1, kAvx512State},
}};

constexpr std::array<std::string_view, kFeatures.size()> kNames = [] {
  std::array<std::string_view, kFeatures.size()> names{};
  for (size_t i = 0; i < kFeatures.size(); ++i) names[i] = kFeatures[i].name;
  return names;
}();

uint64_t xcr0() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0;  // no OSXSAVE
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

bool osSupports(OsState state) {
  uint64_t x = xcr0();
  switch (state) {
    case kNone: return true;
    case kAvxState: return (x & 0x6) == 0x6;
    case kAvx512State: return (x & 0xe6) == 0xe6;
    case kAmxState: return (x & 0x60000) == 0x60000;
  }
  return false;
}

}  // namespace

std::span<const std::string_view> knownFeatures() { return kNames; }

bool isKnownFeature(std::string_view name) {
  for (const FeatureBit& f : kFeatures)
    if (f.name == name) return true;
  return false;
}

bool hostHas(std::string_view name) {
  for (const FeatureBit& f : kFeatures) {
    if (f.name != name) continue;
    unsigned r[4] = {0, 0, 0, 0};
    if (!__get_cpuid_count(f.leaf, f.subleaf, &r[0], &r[1], &r[2], &r[3])) return false;
    return ((r[f.reg] >> f.bit) & 1u) && osSupports(f.state);
  }
  return false;
}

std::vector<std::string> missingFeatures(const std::vector<std::string>& required) {
  std::vector<std::string> missing;
  for (const std::string& f : required)
    if (!hostHas(f)) missing.push_back(f);
  return missing;
}

bool enableAmx() {
  constexpr int kArchReqXcompPerm = 0x1023;
  constexpr int kXfeatureXtiledata = 18;
  static const bool granted = syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  return granted;
}

}  // namespace kiln::cpu
