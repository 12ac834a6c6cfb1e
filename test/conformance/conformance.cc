// Proves nothing by itself: the fixture and helpers of conformance.h, written only against the
// public Store API so that they hold for every backend.
#include "conformance/conformance.h"

#include <cctype>
#include <utility>

namespace cairn::conformance {

namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

::testing::AssertionResult IsError(const Status& s, StatusCode code, std::optional<ErrorDetail> detail) {
  if (s.code() != code || (detail && s.detail() != *detail)) {
    auto failure = ::testing::AssertionFailure() << "expected code " << StatusCodeName(code);
    if (detail) failure << " with detail " << static_cast<int>(*detail);
    return failure << ", got " << (s.ok() ? std::string("OK") : s.ToString()) << " (detail "
                   << static_cast<int>(s.detail()) << ")";
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult IsWrongExpectedVersion(const Status& s, std::optional<StreamVersion> actual) {
  auto error = IsError(s, kConflict, kWrongExpectedVersion);
  if (!error) return error;
  if (s.actual_version() != actual) {
    auto failure = ::testing::AssertionFailure() << "expected actual_version ";
    if (actual) {
      failure << *actual;
    } else {
      failure << "nullopt";
    }
    failure << ", got ";
    if (s.actual_version()) {
      failure << *s.actual_version();
    } else {
      failure << "nullopt";
    }
    return failure << " (" << s.ToString() << ")";
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult IsInvalidArgumentNaming(const Status& s, const std::vector<std::string>& words) {
  auto error = IsError(s, kInvalidArgument);
  if (!error) return error;
  std::string message = Lower(s.message());
  for (const auto& w : words) {
    if (message.find(Lower(w)) == std::string::npos) {
      return ::testing::AssertionFailure() << "message \"" << s.message() << "\" does not name \"" << w << "\"";
    }
  }
  return ::testing::AssertionSuccess();
}

EventData NewEvent(std::string type, std::string data, std::string metadata) {
  EventData e;
  e.id = Uuid::V7();
  e.type = std::move(type);
  e.data = std::move(data);
  e.metadata = std::move(metadata);
  return e;
}

std::vector<EventData> NewEvents(size_t count, const std::string& type) {
  std::vector<EventData> events;
  events.reserve(count);
  for (size_t i = 0; i < count; ++i) events.push_back(NewEvent(type, R"({"i":)" + std::to_string(i) + "}"));
  return events;
}

Result<std::vector<RecordedEvent>> ReadStreamEvents(Store& store, std::string_view stream,
                                                    const ReadStreamOptions& options) {
  auto cursor = store.ReadStream(stream, options);
  if (!cursor.ok()) return cursor.status();
  return cursor->Collect();
}

Result<std::vector<RecordedEvent>> ReadAllEvents(Store& store, const ReadAllOptions& options) {
  auto cursor = store.ReadAll(options);
  if (!cursor.ok()) return cursor.status();
  return cursor->Collect();
}

ReadStreamOptions Backward(std::optional<StreamVersion> from) {
  ReadStreamOptions options;
  options.direction = ReadDirection::kBackward;
  options.from = from;
  return options;
}

ReadAllOptions AllFrom(Position from, ReadDirection direction) {
  ReadAllOptions options;
  options.from = from;
  options.direction = direction;
  return options;
}

std::vector<StreamVersion> Versions(const std::vector<RecordedEvent>& events) {
  std::vector<StreamVersion> out;
  for (const auto& e : events) out.push_back(e.version);
  return out;
}

std::vector<Position> Positions(const std::vector<RecordedEvent>& events) {
  std::vector<Position> out;
  for (const auto& e : events) out.push_back(e.position);
  return out;
}

std::vector<Uuid> Ids(const std::vector<RecordedEvent>& events) {
  std::vector<Uuid> out;
  for (const auto& e : events) out.push_back(e.id);
  return out;
}

std::vector<Uuid> Ids(const std::vector<EventData>& events) {
  std::vector<Uuid> out;
  for (const auto& e : events) out.push_back(e.id);
  return out;
}

std::vector<StreamVersion> Range(StreamVersion first, size_t count) {
  std::vector<StreamVersion> out;
  for (size_t i = 0; i < count; ++i) out.push_back(first + i);
  return out;
}

::testing::AssertionResult SameEvents(const std::vector<RecordedEvent>& expected,
                                      const std::vector<RecordedEvent>& actual) {
  if (expected.size() != actual.size()) {
    return ::testing::AssertionFailure() << "expected " << expected.size() << " events, got " << actual.size();
  }
  for (size_t i = 0; i < expected.size(); ++i) {
    const RecordedEvent& a = expected[i];
    const RecordedEvent& b = actual[i];
    if (a.stream != b.stream || a.version != b.version || a.position != b.position || a.id != b.id ||
        a.type != b.type || a.data != b.data || a.metadata != b.metadata || a.content_type != b.content_type ||
        a.recorded_at != b.recorded_at) {
      return ::testing::AssertionFailure() << "event " << i << " differs: expected "
                                           << ::testing::PrintToString(a) << ", got "
                                           << ::testing::PrintToString(b);
    }
  }
  return ::testing::AssertionSuccess();
}

LogState CaptureLog(Store& store) {
  LogState state;
  state.head = store.HeadPosition();
  auto events = ReadAllEvents(store);
  EXPECT_TRUE(events.ok()) << events.status().ToString();
  if (events.ok()) state.events = std::move(events).value();
  return state;
}

::testing::AssertionResult LogUnchanged(const LogState& before, Store& store) {
  LogState now = CaptureLog(store);
  if (now.head != before.head) {
    return ::testing::AssertionFailure() << "head moved from " << ::testing::PrintToString(before.head) << " to "
                                         << ::testing::PrintToString(now.head);
  }
  auto same = SameEvents(before.events, now.events);
  if (!same) return ::testing::AssertionFailure() << "$all changed: " << same.message();
  return ::testing::AssertionSuccess();
}

void ConformanceTest::SetUp() {
  backend_ = GetParam().make();
  if (!backend_) GTEST_SKIP() << "backend " << GetParam().name << " is not available here";
  auto store = backend_->OpenFresh(BaseOptions());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  store_ = std::move(store).value();
}

void ConformanceTest::TearDown() {
  store_.reset();
  backend_.reset();
}

::testing::AssertionResult ConformanceTest::OpenFresh(const Options& options) {
  store_.reset();
  auto store = backend_->OpenFresh(options);
  if (!store.ok()) return ::testing::AssertionFailure() << "OpenFresh: " << store.status().ToString();
  store_ = std::move(store).value();
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult ConformanceTest::CloseAndReopen(const Options& options) {
  if (store_) {
    Status closed = store_->Close();
    if (!closed.ok()) return ::testing::AssertionFailure() << "Close: " << closed.ToString();
    store_.reset();
  }
  auto store = backend_->Reopen(options);
  if (!store.ok()) return ::testing::AssertionFailure() << "Reopen: " << store.status().ToString();
  store_ = std::move(store).value();
  return ::testing::AssertionSuccess();
}

}  // namespace cairn::conformance
