// Little-endian byte streams for the artifact's own sections (the model
// description, the CUDA launch plan). The reader is bounds-checked: after the
// first read past the end every read fails and returns zeros, so a parser
// reads on and checks ok() once. Standard library only.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

namespace kiln::artifact {

class ByteWriter {
 public:
  void u32(uint32_t v) { raw(&v, 4); }
  void u64(uint64_t v) { raw(&v, 8); }
  void i64(int64_t v) { raw(&v, 8); }
  void str(const std::string& s) {
    u32(static_cast<uint32_t>(s.size()));
    raw(s.data(), s.size());
  }
  void raw(const void* p, size_t n) {
    auto b = static_cast<const uint8_t*>(p);
    bytes.insert(bytes.end(), b, b + n);
  }
  std::vector<uint8_t> bytes;
};

class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> bytes) : bytes_(bytes) {}
  bool ok() const { return ok_; }
  void fail() { ok_ = false; }
  uint32_t u32() { uint32_t v = 0; raw(&v, 4); return v; }
  uint64_t u64() { uint64_t v = 0; raw(&v, 8); return v; }
  int64_t i64() { int64_t v = 0; raw(&v, 8); return v; }
  std::string str() {
    uint32_t n = u32();
    if (!ok_ || n > bytes_.size() - pos_) return fail(), std::string();
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  // Reads a count and checks it against what is left (each item >= `min_item` bytes).
  uint32_t count(size_t min_item) {
    uint32_t n = u32();
    if (!ok_ || static_cast<uint64_t>(n) * min_item > bytes_.size() - pos_) return fail(), 0u;
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

}  // namespace kiln::artifact
