// Errors travel as values through the compiler: a Status says what went wrong
// and where, an Expected<T> carries either a value or that Status.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace kiln {

enum class ErrorKind {
  kInvalidInput,  // the model or artifact is malformed
  kUnsupported,   // well-formed, but Kiln does not handle it (yet)
  kIO,            // file could not be read or written
  kInternal,      // a bug in Kiln
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status ok() { return Status(); }

  bool isOk() const { return !failed_; }
  explicit operator bool() const { return isOk(); }
  ErrorKind kind() const { return kind_; }
  const std::string& message() const { return message_; }

  // Prepends context: "while importing 'x.onnx': " + message.
  Status withContext(const std::string& context) const {
    Status s = *this;
    if (failed_) s.message_ = context + ": " + message_;
    return s;
  }

  friend Status makeError(ErrorKind kind, std::string message);

 private:
  bool failed_ = false;
  ErrorKind kind_ = ErrorKind::kInternal;
  std::string message_;
};

inline Status makeError(ErrorKind kind, std::string message) {
  Status s;
  s.failed_ = true;
  s.kind_ = kind;
  s.message_ = std::move(message);
  return s;
}
inline Status invalidInput(std::string m) { return makeError(ErrorKind::kInvalidInput, std::move(m)); }
inline Status unsupported(std::string m) { return makeError(ErrorKind::kUnsupported, std::move(m)); }
inline Status ioError(std::string m) { return makeError(ErrorKind::kIO, std::move(m)); }
inline Status internalError(std::string m) { return makeError(ErrorKind::kInternal, std::move(m)); }

template <typename T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : data_(std::move(value)) {}
  Expected(Status error) : data_(std::move(error)) { assert(!std::get<Status>(data_).isOk()); }

  bool isOk() const { return std::holds_alternative<T>(data_); }
  explicit operator bool() const { return isOk(); }
  // The error, or an ok Status when this holds a value.
  const Status& status() const {
    static const Status kOk;
    return isOk() ? kOk : std::get<Status>(data_);
  }
  T& value() { return std::get<T>(data_); }
  const T& value() const { return std::get<T>(data_); }
  T& operator*() { return value(); }
  T* operator->() { return &value(); }
  T take() { return std::move(std::get<T>(data_)); }

 private:
  std::variant<T, Status> data_;
};

}  // namespace kiln

#define KILN_CONCAT_INNER(a, b) a##b
#define KILN_CONCAT(a, b) KILN_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function when `expr` failed.
#define KILN_RETURN_IF_ERROR(expr)                \
  do {                                            \
    ::kiln::Status kiln_status_ = (expr);         \
    if (!kiln_status_.isOk()) return kiln_status_; \
  } while (0)

// `KILN_ASSIGN_OR_RETURN(auto x, makeX());`
#define KILN_ASSIGN_OR_RETURN(lhs, expr) \
  KILN_ASSIGN_OR_RETURN_IMPL(KILN_CONCAT(kiln_expected_, __LINE__), lhs, expr)
#define KILN_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.isOk()) return tmp.status();            \
  lhs = tmp.take()
