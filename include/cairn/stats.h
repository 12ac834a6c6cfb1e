// StoreStats: what a store has done since it was opened, for metrics (the server's /metrics),
// dashboards and `cairn stats`. Store::Stats() takes a snapshot; counters only grow while the
// store is open and start from zero at each open (except the totals marked "of the store").
#pragma once

#include <array>
#include <cstdint>

#include "cairn/types.h"

namespace cairn {

// A histogram with fixed bucket bounds: counts[i] observations were <= bounds[i] and above the
// bound before it; counts[kBuckets] were above the last bound. Not cumulative (Prometheus'
// buckets are: sum the counts up to each bound).
template <size_t N>
struct Histogram {
  static constexpr size_t kBuckets = N;
  std::array<double, N> bounds{};
  std::array<uint64_t, N + 1> counts{};
  double sum = 0;      // of all observations
  uint64_t count = 0;  // observations

  void Observe(double v) {
    size_t i = 0;
    while (i < N && v > bounds[i]) ++i;
    ++counts[i];
    sum += v;
    ++count;
  }
};

// Seconds, from 50 µs to 1 s.
inline constexpr std::array<double, 12> kFsyncSecondsBounds = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                                               0.005,   0.01,   0.025,   0.05,   0.1,   1.0};
// Events per group commit, powers of 4 up to 16384.
inline constexpr std::array<double, 8> kBatchEventsBounds = {1, 4, 16, 64, 256, 1024, 4096, 16384};

struct StoreStats {
  // Since open.
  uint64_t appends = 0;         // acknowledged appends (each Append/AppendAsync call that wrote)
  uint64_t append_errors = 0;   // appends answered with an error (conflicts among them)
  uint64_t conflicts = 0;       // wrong expected version
  uint64_t events_written = 0;  // events (records) made durable, system ones included
  uint64_t bytes_written = 0;   // log bytes written
  uint64_t commits = 0;         // group commits (one write + one fdatasync each under sync=always)
  uint64_t fsyncs = 0;
  uint64_t reads = 0;           // ReadStream and ReadAll calls
  Histogram<kFsyncSecondsBounds.size()> fsync_seconds{kFsyncSecondsBounds, {}, 0, 0};
  Histogram<kBatchEventsBounds.size()> batch_events{kBatchEventsBounds, {}, 0, 0};

  // Of the store.
  uint64_t total_events = 0;  // records in the log, system ones included
  uint64_t streams = 0;       // streams ever written to, metastreams included
  uint64_t disk_bytes = 0;    // files of the store (log and index); 0 when not on a file system
  Position head;              // HeadPosition()
};

}  // namespace cairn
