// The process's resident memory, for --time-passes and the compile report:
// where a compile's memory goes is as much a part of its cost as its time.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>

namespace kiln {

// Bytes of this process's memory resident now (/proc/self/statm), or 0
// where that cannot be read.
inline uint64_t residentBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long long size = 0, resident = 0;
  const bool read = std::fscanf(f, "%llu %llu", &size, &resident) == 2;
  std::fclose(f);
  const long page = ::sysconf(_SC_PAGESIZE);
  return read && page > 0 ? resident * static_cast<uint64_t>(page) : 0;
}

}  // namespace kiln
