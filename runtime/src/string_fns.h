// String primitives of KILN_STRING tensors, shared by the runtime (the
// functions generated code calls through kiln_exec_context::strings) and the
// compiler's reference evaluator, so that both format, parse, compare and
// map case identically. A string is a pointer to NUL-terminated UTF-8.
// Standard library only.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>

extern "C" {

// What generated code calls for kir::StringFn (ABI: appended to
// kiln_exec_context with `string_pool`). Every function takes the run's
// pool first; strings it returns live in that pool until the run ends.
// Integers travel as int64, flags as 0/1.
struct kiln_string_fns {
  const char* (*format_float)(void* pool, double value, int64_t bits);
  const char* (*format_int)(void* pool, int64_t value, int64_t is_unsigned);
  double (*parse_float)(void* pool, const char* s, int64_t bits);
  int64_t (*parse_int)(void* pool, const char* s, int64_t is_unsigned);
  const char* (*change_case)(void* pool, const char* s, int64_t upper);
  int32_t (*equal)(void* pool, const char* a, const char* b, int64_t ignore_case);
};
}

namespace kiln::strings {

// The strings one run makes. Addresses stay valid until the pool dies;
// safe to add to from several threads. When memory runs out, add() returns
// "" and failed() says so, so generated code never sees a null pointer.
class StringPool {
 public:
  const char* add(std::string s);
  bool failed() const { return failed_; }

 private:
  std::mutex mutex_;
  std::deque<std::string> strings_;
  bool failed_ = false;
};

// numpy's str() of a float32 (bits 32) or float64 (bits 64) scalar: the
// shortest decimal that reads back as the same value, positional for
// 1e-4 <= |x| < 1e16 ("0.9767611", "100.0"), else scientific ("1e-05",
// "3.4e+38"); "nan", "inf", "-inf".
std::string formatFloat(double value, int bits);
std::string formatInt(int64_t value, bool is_unsigned);
// Decimal or scientific text, surrounded by spaces or not, with an optional
// sign; "inf", "infinity" and "nan" in any case. Anything else is NaN.
// bits 32 rounds once, to float32, as strtof does.
double parseFloat(std::string_view s, int bits);
// An integer; text with a fraction or exponent is truncated toward zero and
// saturated; anything else is 0.
int64_t parseInt(std::string_view s, bool is_unsigned);
// Simple (one to one) case mapping of ASCII, Latin-1, Latin Extended-A,
// Greek and Cyrillic; other characters and invalid bytes are kept.
std::string changeCase(std::string_view s, bool upper);
bool equal(std::string_view a, std::string_view b, bool ignore_case);
bool isValidUtf8(std::string_view s);
// The code point at s[i] (i < s.size()) into `c` and its length in bytes; 0
// when the bytes there are not valid UTF-8 (overlong forms, surrogates and
// values past U+10FFFF included).
size_t decodeUtf8(std::string_view s, size_t i, char32_t& c);
// Appends code point `c` (at most U+10FFFF) to `out` as UTF-8.
void appendUtf8(char32_t c, std::string& out);

// The table the runtime puts in kiln_exec_context; its pool argument is a StringPool.
const kiln_string_fns& stringFunctions();

}  // namespace kiln::strings
