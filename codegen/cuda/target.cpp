#include "codegen/cuda/target.h"

#include <algorithm>
#include <regex>
#include <vector>

#include "codegen/cuda/nvrtc_api.h"

namespace kiln::codegen::cuda {

Expected<CudaTarget> resolveTarget(const TargetOptions& options) {
  std::string arch = options.cuda_arch.empty() ? "sm_90" : options.cuda_arch;
  std::smatch m;
  static const std::regex kArch("sm_([1-9][0-9]?)([0-9])");
  if (!std::regex_match(arch, m, kArch))
    return invalidInput("--cuda-arch '" + arch + "' is not a GPU architecture like sm_90");
  CudaTarget target{arch, std::stoi(m[1].str()), std::stoi(m[2].str())};
  static const std::pair<const char*, artifact::CudaPrecision> kPrecisions[] = {
      {"fp32", artifact::CudaPrecision::kFp32},
      {"tf32", artifact::CudaPrecision::kTf32},
      {"fp16", artifact::CudaPrecision::kFp16},
      {"bf16", artifact::CudaPrecision::kBf16}};
  if (!options.cuda_precision.empty()) {
    auto it = std::find_if(std::begin(kPrecisions), std::end(kPrecisions),
                           [&](const auto& p) { return options.cuda_precision == p.first; });
    if (it == std::end(kPrecisions))
      return invalidInput("--cuda-precision '" + options.cuda_precision + "' is not one of fp32, tf32, fp16, bf16");
    target.precision = it->second;
    target.precision_name = it->first;
  }
  KILN_ASSIGN_OR_RETURN(const NvrtcApi* api, nvrtc());
  int count = 0;
  std::vector<int> supported;
  if (api->getNumSupportedArchs(&count) == NVRTC_SUCCESS && count > 0) {
    supported.resize(static_cast<size_t>(count));
    api->getSupportedArchs(supported.data());
  }
  int code = target.major * 10 + target.minor;
  if (!supported.empty() && std::find(supported.begin(), supported.end(), code) == supported.end()) {
    std::string list;
    for (int s : supported) list += (list.empty() ? "" : ", ") + ("sm_" + std::to_string(s));
    return unsupported("--cuda-arch " + arch + " is not supported by this CUDA toolkit's NVRTC (it builds " + list + ")");
  }
  return target;
}

}  // namespace kiln::codegen::cuda
