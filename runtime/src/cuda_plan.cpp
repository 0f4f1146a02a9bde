#include "cuda_plan.h"

#include <cstring>

namespace kiln::artifact {
namespace {

void putU32(std::vector<uint8_t>& out, uint32_t v) {
  auto b = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), b, b + 4);
}
void putU64(std::vector<uint8_t>& out, uint64_t v) {
  auto b = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), b, b + 8);
}

// Bounds-checked reads; after the first failure every read fails.
class PlanReader {
 public:
  explicit PlanReader(std::span<const uint8_t> bytes) : bytes_(bytes) {}
  bool ok() const { return ok_; }
  uint32_t u32() { uint32_t v = 0; raw(&v, 4); return v; }
  uint64_t u64() { uint64_t v = 0; raw(&v, 8); return v; }
  std::string str() {
    uint32_t n = u32();
    if (!ok_ || n > bytes_.size() - pos_) return ok_ = false, std::string();
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  // A count checked against what is left (each item >= `min_item` bytes).
  uint32_t count(size_t min_item) {
    uint32_t n = u32();
    if (!ok_ || static_cast<uint64_t>(n) * min_item > bytes_.size() - pos_) return ok_ = false, 0u;
    return n;
  }

 private:
  void raw(void* p, size_t n) {
    if (!ok_ || n > bytes_.size() - pos_) {
      ok_ = false;
      std::memset(p, 0, n);
      return;
    }
    std::memcpy(p, bytes_.data() + pos_, n);
    pos_ += n;
  }
  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace

std::vector<uint8_t> serializeCudaPlan(const CudaPlan& plan) {
  std::vector<uint8_t> out(kCudaPlanMagic, kCudaPlanMagic + 8);
  putU32(out, kCudaPlanVersion);
  putU64(out, plan.weights_bytes);
  putU32(out, static_cast<uint32_t>(plan.buffers.size()));
  for (const CudaBuffer& b : plan.buffers) {
    putU32(out, b.kind);
    putU32(out, b.io_index);
    putU64(out, b.offset);
    putU64(out, b.bytes);
  }
  putU32(out, static_cast<uint32_t>(plan.launches.size()));
  for (const CudaLaunch& l : plan.launches) {
    putU32(out, static_cast<uint32_t>(l.function.size()));
    out.insert(out.end(), l.function.begin(), l.function.end());
    putU32(out, l.kernel);
    putU32(out, l.grid);
    putU32(out, l.block);
    putU32(out, static_cast<uint32_t>(l.args.size()));
    for (uint32_t a : l.args) putU32(out, a);
  }
  return out;
}

std::optional<CudaPlan> parseCudaPlan(std::span<const uint8_t> section, std::string* error) {
  if (section.size() < 12 || std::memcmp(section.data(), kCudaPlanMagic, 8) != 0) {
    *error = std::string("the CUDA launch plan (") + kCudaPlanSection + ") is missing or damaged";
    return std::nullopt;
  }
  PlanReader in(section.subspan(8));
  uint32_t version = in.u32();
  if (version != kCudaPlanVersion) {
    *error = "CUDA launch plan version " + std::to_string(version) + " is not supported (this runtime reads version " +
             std::to_string(kCudaPlanVersion) + "); recompile the model with a matching kiln";
    return std::nullopt;
  }
  CudaPlan plan;
  plan.weights_bytes = in.u64();
  for (uint32_t n = in.count(24); n > 0 && in.ok(); --n) {
    CudaBuffer b;
    b.kind = in.u32();
    b.io_index = in.u32();
    b.offset = in.u64();
    b.bytes = in.u64();
    plan.buffers.push_back(b);
  }
  for (uint32_t n = in.count(20); n > 0 && in.ok(); --n) {
    CudaLaunch l;
    l.function = in.str();
    l.kernel = in.u32();
    l.grid = in.u32();
    l.block = in.u32();
    for (uint32_t a = in.count(4); a > 0 && in.ok(); --a) l.args.push_back(in.u32());
    plan.launches.push_back(std::move(l));
  }
  if (!in.ok()) {
    *error = "the CUDA launch plan is malformed";
    return std::nullopt;
  }
  return plan;
}

}  // namespace kiln::artifact
