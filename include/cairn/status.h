// Status and Result<T>: how every cairn call reports success or failure.
//
// A Status is a code from a closed set (the caller's action for each is in docs/errors.md), a
// message that names the field, limit, file or stream involved, and an optional detail that
// tells apart cases a caller handles differently (a wrong expected version, a deleted stream).
// A conflict also carries the stream's actual version. Result<T> holds either a T or a non-OK
// Status. Both are values: cheap to move, safe to copy, not thread-safe to mutate concurrently.
//
// The library never throws. Programmer errors (calling value() on an error) abort through
// CAIRN_CHECK; they are never turned into a Status.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace cairn {

// Codes follow Abseil's meanings. The numbers appear in logs and in the server's error mapping:
// never change or reuse them.
enum class StatusCode : uint8_t {
  kOk = 0,
  kNotFound = 1,            // the stream, event or file does not exist (or is deleted)
  kAlreadyExists = 2,       // an event id is already stored with different content
  kInvalidArgument = 3,     // bad input: the message names the field and the limit
  kFailedPrecondition = 4,  // the store is not in a state for this call (closed, read-only)
  kConflict = 5,            // optimistic concurrency: re-read and retry
  kCorruption = 6,          // stored bytes fail their checksum or structure
  kIOError = 7,             // the OS refused a read, write or sync
  kResourceExhausted = 8,   // a queue, batch or disk limit was hit
  kUnavailable = 9,         // transient: retry the same call (store locked by another process)
  kUnauthenticated = 10,
  kPermissionDenied = 11,
  kNotSupported = 12,
  kInternal = 13,
};

// Refines a code where callers act differently. Never change or reuse the numbers.
enum class ErrorDetail : uint8_t {
  kNone = 0,
  kWrongExpectedVersion = 1,  // with kConflict; actual_version() tells the stream's state
  kStreamNotFound = 2,        // with kNotFound: never written, or soft-deleted
  kStreamDeleted = 3,         // with kNotFound: tombstoned, gone for good
  kDuplicateEventId = 4,      // with kAlreadyExists or kInvalidArgument
  kWriterStopped = 5,         // with kIOError: a failed fsync stopped the writer (fail-stop)
  kStoreLocked = 6,           // with kUnavailable: another process holds the data directory
};

std::string_view StatusCodeName(StatusCode code);  // "NotFound", "Conflict", ...

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message, ErrorDetail detail = ErrorDetail::kNone)
      : code_(code), detail_(detail), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status NotFound(std::string m, ErrorDetail d = ErrorDetail::kNone) { return {StatusCode::kNotFound, std::move(m), d}; }
  static Status AlreadyExists(std::string m, ErrorDetail d = ErrorDetail::kNone) { return {StatusCode::kAlreadyExists, std::move(m), d}; }
  static Status InvalidArgument(std::string m, ErrorDetail d = ErrorDetail::kNone) { return {StatusCode::kInvalidArgument, std::move(m), d}; }
  static Status FailedPrecondition(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
  static Status Corruption(std::string m) { return {StatusCode::kCorruption, std::move(m)}; }
  static Status IOError(std::string m, ErrorDetail d = ErrorDetail::kNone) { return {StatusCode::kIOError, std::move(m), d}; }
  static Status ResourceExhausted(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
  static Status Unavailable(std::string m, ErrorDetail d = ErrorDetail::kNone) { return {StatusCode::kUnavailable, std::move(m), d}; }
  static Status NotSupported(std::string m) { return {StatusCode::kNotSupported, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
  // A wrong expected version. `actual` is the stream's last version, or nullopt when the stream
  // does not exist (never written, or soft-deleted).
  static Status WrongExpectedVersion(std::string m, std::optional<uint64_t> actual) {
    Status s(StatusCode::kConflict, std::move(m), ErrorDetail::kWrongExpectedVersion);
    s.actual_version_ = actual;
    return s;
  }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  ErrorDetail detail() const { return detail_; }
  const std::string& message() const { return message_; }
  // For kWrongExpectedVersion: the stream's last version, nullopt when it has none.
  std::optional<uint64_t> actual_version() const { return actual_version_; }

  bool IsNotFound() const { return code_ == StatusCode::kNotFound; }
  bool IsConflict() const { return code_ == StatusCode::kConflict; }
  bool IsCorruption() const { return code_ == StatusCode::kCorruption; }
  bool IsInvalidArgument() const { return code_ == StatusCode::kInvalidArgument; }

  // "Conflict: append to account-1: expected version 3, actual 5"
  std::string ToString() const;

  // Returns a copy whose message is "context: message" (adds file, stream or offset on the way up).
  Status WithContext(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  ErrorDetail detail_ = ErrorDetail::kNone;
  std::string message_;
  std::optional<uint64_t> actual_version_;
};

[[noreturn]] void CheckFailed(const char* file, int line, const char* expr, std::string_view message);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design, like StatusOr
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    if (std::get<Status>(v_).ok()) CheckFailed(__FILE__, __LINE__, "!status.ok()", "Result built from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }

  T& value() & { Check(); return std::get<T>(v_); }
  const T& value() const& { Check(); return std::get<T>(v_); }
  T&& value() && { Check(); return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  void Check() const {
    if (!ok()) CheckFailed(__FILE__, __LINE__, "result.ok()", std::get<Status>(v_).ToString());
  }
  std::variant<T, Status> v_;
};

}  // namespace cairn

// Returns early from the enclosing function with the status if it is not OK.
#define CAIRN_RETURN_IF_ERROR(expr)                  \
  do {                                                \
    ::cairn::Status cairn_status_ = (expr);           \
    if (!cairn_status_.ok()) return cairn_status_;    \
  } while (0)

#define CAIRN_CONCAT_INNER_(a, b) a##b
#define CAIRN_CONCAT_(a, b) CAIRN_CONCAT_INNER_(a, b)
// CAIRN_ASSIGN_OR_RETURN(auto x, MakeX()); declares x from the Result or returns its status.
#define CAIRN_ASSIGN_OR_RETURN(lhs, expr) \
  CAIRN_ASSIGN_OR_RETURN_IMPL_(CAIRN_CONCAT_(cairn_result_, __LINE__), lhs, expr)
#define CAIRN_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()
