// What `cairn bench` (src/cli/bench_command.cc) and the SQLite baseline cairn_sqlite_bench
// (bench/sqlite_baseline.cc) share, so that both measure the same events and print the same
// table: the generated events and workloads, the result row, the process's CPU time and memory,
// latency percentiles, and the output (a table, or TSV). Built as the cairn_bench_common library.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cairn::bench {

// The event shape: type "Deposited" or "Withdrawn", JSON data and metadata of these sizes.
inline constexpr size_t kDataBytes = 200;
inline constexpr size_t kMetadataBytes = 100;
// Distinct events generated before timing; appends cycle through them.
inline constexpr size_t kPoolEvents = 8192;
// The stream that read-stream reads: written by `fill` interleaved with everything else, so
// that its events lie scattered over the log as a real stream's do.
inline constexpr std::string_view kHotStream = "account-hot";
// Distinct events of kHotStream; its appends cycle through them.
inline constexpr uint64_t kHotPoolEvents = 1024;

// A generated event, before it takes the shape of the store under test.
struct EventText {
  std::string type, data, metadata;
};

// Event `i`: 200 bytes of JSON data about account-<k> for k uniform in [0, streams), 100 bytes
// of JSON metadata. Takes four numbers from `rng`.
EventText MakeEventText(std::mt19937_64& rng, uint64_t i, uint64_t streams);

// Names "account-<k>" of `streams` streams, and the stream of each of `appends` appends, drawn
// from `rng`.
void MakeStreams(std::mt19937_64& rng, uint64_t appends, uint64_t streams, std::vector<std::string>* names,
                 std::vector<uint32_t>* append_streams);

// Whether fill, after the append `append` of `appends` and `hot_done` events of kHotStream,
// appends the next one of its `stream_events`: they are spread evenly over the appends, the rest
// after the last one.
inline bool HotEventDue(uint64_t hot_done, uint64_t stream_events, uint64_t append, uint64_t appends) {
  return hot_done < stream_events && (hot_done * appends <= append * stream_events || append + 1 == appends);
}

// The pre-generated input of an append workload: a pool of events (of type E) that appends take
// `batch` at a time, and the stream of every append.
template <typename E>
struct Workload {
  std::vector<E> pool;
  std::vector<std::string> stream_names;
  std::vector<uint32_t> append_streams;
  uint32_t batch = 1;

  std::span<const E> EventsOf(uint64_t append) const {
    const uint64_t slots = pool.size() / batch;
    return std::span<const E>(pool).subspan((append % slots) * batch, batch);
  }
  const std::string& StreamOf(uint64_t append) const { return stream_names[append_streams[append]]; }
  // Payload bytes of an append: stream name, type, data and metadata of each event.
  uint64_t PayloadBytes(uint64_t append) const {
    uint64_t n = 0;
    for (const E& e : EventsOf(append)) n += StreamOf(append).size() + e.type.size() + e.data.size() + e.metadata.size();
    return n;
  }
};

// The workload of `appends` appends of `batch` events over `streams` streams, from `seed`;
// `convert` turns each EventText into an E.
template <typename E, typename Convert>
Workload<E> MakeWorkload(uint64_t appends, uint32_t batch, uint64_t streams, uint64_t seed, Convert convert) {
  Workload<E> w;
  w.batch = batch;
  std::mt19937_64 rng(seed);
  const size_t pool = std::max<size_t>(batch, kPoolEvents / batch * batch);
  w.pool.reserve(pool);
  for (size_t i = 0; i < pool; ++i) w.pool.push_back(convert(MakeEventText(rng, i, streams)));
  MakeStreams(rng, appends, streams, &w.stream_names, &w.append_streams);
  return w;
}

// One line of the result table.
struct Row {
  std::string name;
  uint64_t events = 0;
  double seconds = 0;
  double events_per_second = 0;
  double mb_per_second = 0;  // payload (stream name, type, data, metadata) in 10^6 bytes
  double p50_us = -1;        // append latency; -1 where it does not apply
  double p99_us = -1;
  double cpu_seconds = -1;  // user + system time of the whole process over the timed part
  double rss_mib = 0;
  double anon_mib = 0;
  double hwm_mib = 0;
  std::string note;
  std::string command;
};

// User plus system CPU time of the whole process (every thread), in seconds.
double CpuSeconds();

// Sets the row's memory figures from VmRSS, RssAnon and VmHWM of /proc/self/status.
void SetMemory(Row* row);

// The `p` quantile (0..1) of latencies in nanoseconds, in microseconds; -1 when there are none.
// Reorders `v`.
double Percentile(std::vector<uint64_t>& v, double p);

// The column names, before note and command.
extern const std::vector<std::string> kHeader;

// The cells of a row under kHeader.
std::vector<std::string> Cells(const Row& r);

// Prints the rows as tab-separated values (cells, note, command), with a header line if asked.
void PrintTsv(const std::vector<Row>& rows, bool header);

// Prints the rows as an aligned table, then each row's command and note.
void PrintTable(const std::vector<Row>& rows);

// Parses a line that PrintTsv printed for one row; false when it has the wrong number of fields.
bool ParseTsvRow(const std::string& line, Row* row);

}  // namespace cairn::bench
