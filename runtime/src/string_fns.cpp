#include "string_fns.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <new>

namespace kiln::strings {
namespace {

// ---- Case mapping --------------------------------------------------------------

// A range [first, last] of code points whose other case is at `delta`; with
// `alternating`, only every other code point (pairs upper, lower, upper...)
// starting at `first` is of this case.
struct CaseRange {
  char32_t first, last;
  int32_t delta;
  bool alternating;
};

// Upper -> lower. Lower -> upper is the same table read backwards.
constexpr CaseRange kToLower[] = {
    {U'A', U'Z', 32, false},          {0xC0, 0xD6, 32, false},   {0xD8, 0xDE, 32, false},
    {0x100, 0x12E, 1, true},          {0x132, 0x136, 1, true},   {0x139, 0x147, 1, true},
    {0x14A, 0x176, 1, true},          {0x178, 0x178, -121, false}, {0x179, 0x17D, 1, true},
    {0x386, 0x386, 38, false},        {0x388, 0x38A, 37, false}, {0x38C, 0x38C, 64, false},
    {0x38E, 0x38F, 63, false},        {0x391, 0x3A1, 32, false}, {0x3A3, 0x3AB, 32, false},
    {0x400, 0x40F, 80, false},        {0x410, 0x42F, 32, false}, {0x460, 0x480, 1, true},
    {0x48A, 0x4BE, 1, true},
};

bool inRange(const CaseRange& r, char32_t c) {
  return c >= r.first && c <= r.last && (!r.alternating || (c - r.first) % 2 == 0);
}

char32_t mapCase(char32_t c, bool upper) {
  if (upper && c == 0x3C2) return 0x3A3;  // final sigma
  for (const CaseRange& r : kToLower) {
    if (!upper && inRange(r, c)) return static_cast<char32_t>(static_cast<int32_t>(c) + r.delta);
    if (upper) {
      auto from = static_cast<char32_t>(static_cast<int32_t>(c) - r.delta);
      if (from >= r.first && from <= r.last && inRange(r, from)) return from;
    }
  }
  return c;
}



// ---- Numbers -------------------------------------------------------------------

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || (s.front() >= '\t' && s.front() <= '\r'))) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || (s.back() >= '\t' && s.back() <= '\r'))) s.remove_suffix(1);
  return s;
}

// Shortest "%.*e" text of `value` that reads back as the same float32
// (bits 32) or float64: "d.ddde+XX".
std::string shortestScientific(double value, int bits) {
  char text[64];
  int max_digits = bits == 32 ? 9 : 17;
  for (int digits = 1; digits <= max_digits; ++digits) {
    std::snprintf(text, sizeof(text), "%.*e", digits - 1, value);
    double back = std::strtod(text, nullptr);
    bool same = bits == 32 ? static_cast<float>(back) == static_cast<float>(value) : back == value;
    if (same) break;
  }
  return text;
}

}  // namespace

// The code point at s[i] and its length in bytes; 0 when the bytes there are
// not valid UTF-8 (overlong forms, surrogates and values past U+10FFFF
// included).
size_t decodeUtf8(std::string_view s, size_t i, char32_t& c) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char b0 = byte(i);
  if (b0 < 0x80) return c = b0, 1;
  size_t n = b0 >= 0xC2 && b0 <= 0xDF ? 2 : b0 >= 0xE0 && b0 <= 0xEF ? 3 : b0 >= 0xF0 && b0 <= 0xF4 ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  c = b0 & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    c = (c << 6) | (byte(i + k) & 0x3F);
  }
  constexpr char32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (c < kMin[n] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
  return n;
}

const char* StringPool::add(std::string s) {
  std::lock_guard<std::mutex> lock(mutex_);
  try {
    strings_.push_back(std::move(s));
    return strings_.back().c_str();
  } catch (const std::bad_alloc&) {
    failed_ = true;
    return "";
  }
}

std::string formatFloat(double value, int bits) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value < 0 ? "-inf" : "inf";
  if (value == 0) return std::signbit(value) ? "-0.0" : "0.0";
  std::string sci = shortestScientific(value, bits);
  std::string sign = sci[0] == '-' ? "-" : "";
  if (!sign.empty()) sci.erase(0, 1);
  size_t e = sci.find('e');
  std::string digits = sci.substr(0, 1) + (e > 2 ? sci.substr(2, e - 2) : "");
  int exponent = std::atoi(sci.c_str() + e + 1);
  double magnitude = std::fabs(bits == 32 ? static_cast<double>(static_cast<float>(value)) : value);
  if (magnitude < 1e-4 || magnitude >= 1e16) {
    std::string mantissa = digits.substr(0, 1) + (digits.size() > 1 ? "." + digits.substr(1) : "");
    std::string exp_text = std::to_string(std::abs(exponent));
    if (exp_text.size() < 2) exp_text = "0" + exp_text;
    return sign + mantissa + "e" + (exponent < 0 ? "-" : "+") + exp_text;
  }
  if (exponent < 0) return sign + "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
  auto int_digits = static_cast<size_t>(exponent + 1);
  if (digits.size() <= int_digits) return sign + digits + std::string(int_digits - digits.size(), '0') + ".0";
  return sign + digits.substr(0, int_digits) + "." + digits.substr(int_digits);
}

std::string formatInt(int64_t value, bool is_unsigned) {
  return is_unsigned ? std::to_string(static_cast<uint64_t>(value)) : std::to_string(value);
}

double parseFloat(std::string_view s, int bits) {
  s = trim(s);
  bool negative = !s.empty() && s.front() == '-';
  if (!s.empty() && (s.front() == '+' || s.front() == '-')) s.remove_prefix(1);
  if (s.empty() || s.front() == '+' || s.front() == '-') return std::numeric_limits<double>::quiet_NaN();
  double value = 0;
  std::from_chars_result r{};
  if (bits == 32) {
    float f = 0;
    r = std::from_chars(s.data(), s.data() + s.size(), f);
    value = f;
  } else {
    r = std::from_chars(s.data(), s.data() + s.size(), value);
  }
  // from_chars reports out-of-range values without setting them.
  if (r.ec == std::errc::result_out_of_range) {
    value = std::strtod(std::string(s).c_str(), nullptr);
    if (bits == 32) value = static_cast<float>(value);
  } else if (r.ec != std::errc() || r.ptr != s.data() + s.size()) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  return negative ? -value : value;
}

int64_t parseInt(std::string_view s, bool is_unsigned) {
  s = trim(s);
  std::string_view digits = s;
  if (!digits.empty() && digits.front() == '+') digits.remove_prefix(1);
  const char* end = digits.data() + digits.size();
  if (is_unsigned) {
    uint64_t u = 0;
    auto r = std::from_chars(digits.data(), end, u);
    if (r.ec == std::errc() && r.ptr == end) return static_cast<int64_t>(u);
  } else {
    int64_t i = 0;
    auto r = std::from_chars(digits.data(), end, i);
    if (r.ec == std::errc() && r.ptr == end) return i;
  }
  double v = parseFloat(s, 64);
  if (std::isnan(v)) return 0;
  v = std::trunc(v);
  if (is_unsigned) {
    if (v <= 0) return 0;
    return v >= 18446744073709551615.0 ? static_cast<int64_t>(UINT64_MAX) : static_cast<int64_t>(static_cast<uint64_t>(v));
  }
  if (v <= -9223372036854775808.0) return INT64_MIN;
  if (v >= 9223372036854775807.0) return INT64_MAX;
  return static_cast<int64_t>(v);
}

std::string changeCase(std::string_view s, bool upper) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    char32_t c = 0;
    size_t n = decodeUtf8(s, i, c);
    if (n == 0) {
      out += s[i++];
      continue;
    }
    appendUtf8(mapCase(c, upper), out);
    i += n;
  }
  return out;
}

bool equal(std::string_view a, std::string_view b, bool ignore_case) {
  if (!ignore_case) return a == b;
  return changeCase(a, false) == changeCase(b, false);
}

void appendUtf8(char32_t c, std::string& out) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

bool isValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    char32_t c = 0;
    size_t n = decodeUtf8(s, i, c);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

namespace {

const char* pooled(void* pool, std::string s) { return static_cast<StringPool*>(pool)->add(std::move(s)); }

extern "C" const char* formatFloatFn(void* pool, double value, int64_t bits) {
  return pooled(pool, formatFloat(value, static_cast<int>(bits)));
}
extern "C" const char* formatIntFn(void* pool, int64_t value, int64_t is_unsigned) {
  return pooled(pool, formatInt(value, is_unsigned != 0));
}
extern "C" double parseFloatFn(void*, const char* s, int64_t bits) { return parseFloat(s, static_cast<int>(bits)); }
extern "C" int64_t parseIntFn(void*, const char* s, int64_t is_unsigned) { return parseInt(s, is_unsigned != 0); }
extern "C" const char* changeCaseFn(void* pool, const char* s, int64_t upper) {
  return pooled(pool, changeCase(s, upper != 0));
}
extern "C" int32_t equalFn(void*, const char* a, const char* b, int64_t ignore_case) {
  return equal(a, b, ignore_case != 0) ? 1 : 0;
}

}  // namespace

const kiln_string_fns& stringFunctions() {
  static const kiln_string_fns table = {formatFloatFn, formatIntFn, parseFloatFn, parseIntFn, changeCaseFn, equalFn};
  return table;
}

}  // namespace kiln::strings
