// The CPU features an artifact may require, by their LLVM names, and what
// this host offers (CPUID plus the OS's XSAVE state, and Linux's permission
// for AMX tile data).
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::cpu {

// Features Kiln records in artifacts and checks at load.
std::span<const std::string_view> knownFeatures();
bool isKnownFeature(std::string_view name);
bool hostHas(std::string_view name);
// Features of `required` that the host lacks.
std::vector<std::string> missingFeatures(const std::vector<std::string>& required);
// Asks Linux for AMX tile state (once per process); false when refused.
bool enableAmx();

}  // namespace kiln::cpu
