// AppendQueue: the way from the threads calling a store's Append (and metadata, delete and
// tombstone) to the store's one writer thread, shared by the embedded store and the PostgreSQL
// store. Callers queue requests, blocking while the queue holds more than its byte budget
// (back-pressure); the writer takes them in groups, one group per commit, and hands back one
// result per request: a blocking caller is woken (all the callers of a group with one notify:
// waking each one separately cost the embedded writer a quarter of its time with 64 writers), an
// AppendAsync caller's callback runs on the writer thread.
//
// Thread-safety: Enqueue/Submit from any thread; Take/Complete from the writer thread only;
// Stop/MarkClosed from the thread closing the store.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "cairn/store.h"

namespace cairn::storage {

struct AppendRequest {
  enum class Kind : uint8_t { kAppend, kMetadata, kDelete, kTombstone };
  Kind kind = Kind::kAppend;
  std::string stream;
  ExpectedVersion expected = ExpectedVersion::Any();
  std::vector<EventData> owned;        // AppendAsync: the caller's events, copied or taken
  std::span<const EventData> events;  // `owned`, or the blocked caller's own events
  StreamMetadata metadata;
  Status error;       // bad input found before queueing: reported in queue order
  uint64_t bytes = 0;  // what the request costs the queue's budget and a group's
  Store::AppendCallback done;                                // AppendAsync
  std::optional<Result<AppendResult>>* sync_slot = nullptr;  // the others: the caller waits
};

class AppendQueue {
 public:
  explicit AppendQueue(uint64_t max_queued_bytes) : max_queued_bytes_(max_queued_bytes) {}

  // Queues `req`, waiting while the queue is over its budget. Once the store is closing the
  // request completes at once with kFailedPrecondition.
  void Enqueue(std::unique_ptr<AppendRequest> req);
  // Queues `req` and waits for its result.
  Result<AppendResult> Submit(std::unique_ptr<AppendRequest> req);

  // What the writer takes as one group.
  struct TakeLimits {
    size_t max_requests = SIZE_MAX;
    uint64_t max_bytes = UINT64_MAX;  // the first request is taken whatever its size
    // Wait at most this long for a first request (nullopt: until one comes or Stop()).
    std::optional<std::chrono::nanoseconds> wait;
    // When fewer than `gather_target` requests wait, wait up to `gather_wait` for that many
    // (PostgreSQL's commit_delay idea: the last group's callers are coming back).
    size_t gather_target = 0;
    std::chrono::nanoseconds gather_wait{0};
  };
  // Moves the next group into `group` (left empty when `wait` ran out first). False once the
  // queue is stopping and empty: the writer's loop ends.
  bool Take(std::vector<std::unique_ptr<AppendRequest>>* group, const TakeLimits& limits);
  // Hands each request of `group` its result (results[i] for group[i]).
  void Complete(std::vector<std::unique_ptr<AppendRequest>>& group, std::vector<Result<AppendResult>>& results);
  // Hands one request not taken by the writer its result.
  void CompleteAlone(AppendRequest& req, Result<AppendResult> result);

  // Closing: Stop() makes new requests fail and Take() return false once the queue is empty;
  // false when the queue was closed already. MarkClosed() after the writer has ended.
  bool Stop();
  void MarkClosed();
  bool closed() const;

 private:
  const uint64_t max_queued_bytes_;
  mutable std::mutex mu_;
  std::condition_variable queue_cv_;  // the writer waits for requests
  std::condition_variable space_cv_;  // callers wait for room
  std::deque<std::unique_ptr<AppendRequest>> queue_;
  uint64_t queued_bytes_ = 0;
  bool stopping_ = false;
  bool closed_ = false;
  std::mutex done_mu_;
  std::condition_variable done_cv_;
};

// Adds a group's results to a store's counters: appends, errors, conflicts.
void CountAppendResults(const std::vector<Result<AppendResult>>& results, StoreStats* stats);

}  // namespace cairn::storage
