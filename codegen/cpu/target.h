// Resolving the CPU target: name, feature string, and the features an
// artifact built for it requires at load time.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "codegen/backend.h"

namespace llvm {
class TargetMachine;
}

namespace kiln::codegen::cpu {

struct CpuTarget {
  std::string triple;
  std::string cpu;
  std::string features;                   // full LLVM feature string
  std::vector<std::string> required;      // known features the code may use
  std::unique_ptr<llvm::TargetMachine> machine;
};

// The host by its feature list (LLVM names this hypervisor-hidden CPU
// "rocketlake", which lacks AMX/AVX512-FP16; the feature list is right), or
// the named CPU, plus explicit feature overrides.
Expected<CpuTarget> resolveTarget(const TargetOptions& options);

// Whether an artifact built for `options` loads on this machine: every
// feature its code may use is one the host has, as the runtime checks at load.
Expected<bool> runsOnThisHost(const TargetOptions& options);

}  // namespace kiln::codegen::cpu
