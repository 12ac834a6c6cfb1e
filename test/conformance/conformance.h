// The conformance suite's fixture and helpers. Every TEST_P(ConformanceTest, Name) runs once per
// backend of AllBackends() (backend.h), on a fresh store opened with the backend's BaseOptions().
//
// Helpers here only call the public Store API (include/cairn), so that they hold for every
// backend. Results are checked with ASSERT_OK / ASSERT_OK_AND_ASSIGN and IsError(...).
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/event.h"
#include "cairn/read.h"
#include "cairn/status.h"
#include "cairn/store.h"
#include "cairn/stream.h"
#include "cairn/types.h"
#include "conformance/backend.h"

// Printers, so that failures show values instead of bytes. Found by ADL.
namespace cairn {
inline void PrintTo(StatusCode code, std::ostream* os) { *os << StatusCodeName(code); }
inline void PrintTo(ErrorDetail detail, std::ostream* os) { *os << "ErrorDetail(" << static_cast<int>(detail) << ")"; }
inline void PrintTo(const Status& s, std::ostream* os) { *os << s.ToString(); }
inline void PrintTo(const Position& p, std::ostream* os) {
  if (p == Position::End()) {
    *os << "Position::End()";
  } else {
    *os << "Position(" << p.value() << ")";
  }
}
inline void PrintTo(const Uuid& id, std::ostream* os) { *os << id.ToString(); }
inline void PrintTo(const Timestamp& t, std::ostream* os) { *os << t.ToRfc3339() << " (" << t.nanos << "ns)"; }
inline void PrintTo(const AppendResult& r, std::ostream* os) {
  *os << "{first_version " << r.first_version << ", next_version " << r.next_version << ", position ";
  PrintTo(r.position, os);
  *os << "}";
}
inline void PrintTo(const RecordedEvent& e, std::ostream* os) {
  *os << "{" << e.stream << "@" << e.version << ", ";
  PrintTo(e.position, os);
  *os << ", " << e.type << ", id " << e.id.ToString() << "}";
}
}  // namespace cairn

namespace cairn::conformance {

using enum StatusCode;
using enum ErrorDetail;

// The segment size of "file-small-segments" (and of tests that need a small segment).
inline constexpr uint64_t kSmallSegmentBytes = 64 << 10;

inline const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}

#define CONF_CONCAT_INNER_(a, b) a##b
#define CONF_CONCAT_(a, b) CONF_CONCAT_INNER_(a, b)

// ASSERT_OK(expr) / EXPECT_OK(expr): expr is a Status or a Result<T> and must be OK.
#define ASSERT_OK(...)                                                                        \
  do {                                                                                        \
    const auto& conf_r_ = (__VA_ARGS__);                                                      \
    ASSERT_TRUE(::cairn::conformance::StatusOf(conf_r_).ok())                                 \
        << #__VA_ARGS__ << ": " << ::cairn::conformance::StatusOf(conf_r_).ToString();        \
  } while (0)
#define EXPECT_OK(...)                                                                        \
  do {                                                                                        \
    const auto& conf_r_ = (__VA_ARGS__);                                                      \
    EXPECT_TRUE(::cairn::conformance::StatusOf(conf_r_).ok())                                 \
        << #__VA_ARGS__ << ": " << ::cairn::conformance::StatusOf(conf_r_).ToString();        \
  } while (0)

// ASSERT_OK_AND_ASSIGN(auto x, expr): expr is a Result<T> that must be OK; declares x.
#define ASSERT_OK_AND_ASSIGN(lhs, ...) \
  CONF_ASSERT_OK_AND_ASSIGN_IMPL_(CONF_CONCAT_(conf_result_, __LINE__), lhs, __VA_ARGS__)
#define CONF_ASSERT_OK_AND_ASSIGN_IMPL_(tmp, lhs, ...)                                \
  auto tmp = (__VA_ARGS__);                                                           \
  ASSERT_TRUE(tmp.ok()) << #__VA_ARGS__ << ": " << tmp.status().ToString();           \
  lhs = std::move(tmp).value()

// Skips the test on a backend whose clock the test cannot set.
#define CONF_REQUIRE_CLOCK()                                                          \
  do {                                                                                \
    if (!backend().has_clock()) GTEST_SKIP() << "backend has no settable clock";     \
  } while (0)
#define CONF_REQUIRE_PERSISTENT()                                                     \
  do {                                                                                \
    if (!backend().persistent()) GTEST_SKIP() << "backend does not persist";          \
  } while (0)

// Success when `s` has `code` and, if given, `detail`.
::testing::AssertionResult IsError(const Status& s, StatusCode code, std::optional<ErrorDetail> detail = std::nullopt);
template <typename T>
::testing::AssertionResult IsError(const Result<T>& r, StatusCode code,
                                   std::optional<ErrorDetail> detail = std::nullopt) {
  return IsError(r.status(), code, detail);
}
// A conflict with kWrongExpectedVersion carrying `actual`.
::testing::AssertionResult IsWrongExpectedVersion(const Status& s, std::optional<StreamVersion> actual);
template <typename T>
::testing::AssertionResult IsWrongExpectedVersion(const Result<T>& r, std::optional<StreamVersion> actual) {
  return IsWrongExpectedVersion(r.status(), actual);
}
// kInvalidArgument whose message contains every one of `words` (case-insensitive).
::testing::AssertionResult IsInvalidArgumentNaming(const Status& s, const std::vector<std::string>& words);
template <typename T>
::testing::AssertionResult IsInvalidArgumentNaming(const Result<T>& r, const std::vector<std::string>& words) {
  return IsInvalidArgumentNaming(r.status(), words);
}

// An event with a fresh UUIDv7 id.
EventData NewEvent(std::string type = "Tested", std::string data = R"({"n":1})", std::string metadata = "");
// `count` events of `type`, data {"i":<index>}, each with a fresh id.
std::vector<EventData> NewEvents(size_t count, const std::string& type = "Tested");

// Reads into owned events.
Result<std::vector<RecordedEvent>> ReadStreamEvents(Store& store, std::string_view stream,
                                                    const ReadStreamOptions& options = {});
Result<std::vector<RecordedEvent>> ReadAllEvents(Store& store, const ReadAllOptions& options = {});
ReadStreamOptions Backward(std::optional<StreamVersion> from = std::nullopt);
ReadAllOptions AllFrom(Position from, ReadDirection direction = ReadDirection::kForward);

std::vector<StreamVersion> Versions(const std::vector<RecordedEvent>& events);
std::vector<Position> Positions(const std::vector<RecordedEvent>& events);
std::vector<Uuid> Ids(const std::vector<RecordedEvent>& events);
std::vector<Uuid> Ids(const std::vector<EventData>& events);
// [first, first + count)
std::vector<StreamVersion> Range(StreamVersion first, size_t count);
template <typename T>
std::vector<T> Reversed(std::vector<T> v) {
  std::reverse(v.begin(), v.end());
  return v;
}

// Every field of the two lists of events is equal.
::testing::AssertionResult SameEvents(const std::vector<RecordedEvent>& expected,
                                      const std::vector<RecordedEvent>& actual);

// The observable state of the whole log: to check that a rejected call wrote nothing.
struct LogState {
  Position head;
  std::vector<RecordedEvent> events;  // $all forward, unfiltered
};
LogState CaptureLog(Store& store);
::testing::AssertionResult LogUnchanged(const LogState& before, Store& store);

class ConformanceTest : public ::testing::TestWithParam<BackendFactory> {
 protected:
  void SetUp() override;
  void TearDown() override;

  Backend& backend() { return *backend_; }
  Store& store() { return *store_; }
  Options BaseOptions() const { return backend_->BaseOptions(); }

  // Replaces the store with a new, empty one opened with `options`.
  [[nodiscard]] ::testing::AssertionResult OpenFresh(const Options& options);
  // Closes the store and opens the same one again (persistent backends only).
  [[nodiscard]] ::testing::AssertionResult CloseAndReopen(const Options& options);
  [[nodiscard]] ::testing::AssertionResult CloseAndReopen() { return CloseAndReopen(BaseOptions()); }

  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Store> store_;
};

}  // namespace cairn::conformance
