// What `cairn bench` and cairn_sqlite_bench share (bench_report.h): event generation, process
// measurements and the output format.
#include "cli/bench_report.h"

#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include <fmt/format.h>

namespace cairn::bench {
namespace {

std::string HexId(std::mt19937_64& rng) {
  const uint64_t a = rng(), b = rng();
  return fmt::format("{:08x}-{:04x}-7{:03x}-{:04x}-{:012x}", a >> 32, (a >> 16) & 0xffff, a & 0xfff,
                     0x8000 | (b >> 48 & 0x3fff), b & 0xffffffffffffULL);
}

// A JSON object of exactly `size` bytes: `prefix` (an object without its closing brace) and a
// padding string field.
std::string PadJson(std::string prefix, std::string_view key, size_t size) {
  const size_t fixed = prefix.size() + key.size() + 6;  // ,"key":"" and }
  return fmt::format("{},\"{}\":\"{}\"}}", prefix, key, std::string(size > fixed ? size - fixed : 0, 'x'));
}

std::string Num(double v, int decimals = 0) {
  if (v < 0) return "-";
  return fmt::format("{:.{}f}", v, decimals);
}

void Write(const std::string& out) {
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
}

}  // namespace

EventText MakeEventText(std::mt19937_64& rng, uint64_t i, uint64_t streams) {
  EventText e;
  const bool deposit = rng() % 3 != 0;
  e.type = deposit ? "Deposited" : "Withdrawn";
  e.data = PadJson(fmt::format("{{\"account\":\"account-{}\",\"amount\":{},\"currency\":\"EUR\",\"reference\":\"bench-{:010}\"",
                               rng() % streams, rng() % 100'000, i),
                   "note", kDataBytes);
  e.metadata = PadJson(fmt::format("{{\"$correlationId\":\"{}\"", HexId(rng)), "$user", kMetadataBytes);
  return e;
}

void MakeStreams(std::mt19937_64& rng, uint64_t appends, uint64_t streams, std::vector<std::string>* names,
                 std::vector<uint32_t>* append_streams) {
  names->reserve(streams);
  for (uint64_t k = 0; k < streams; ++k) names->push_back(fmt::format("account-{}", k));
  append_streams->resize(appends);
  for (auto& s : *append_streams) s = static_cast<uint32_t>(rng() % streams);
}

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

void SetMemory(Row* row) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    auto value = [&](std::string_view key, double* out) {
      if (line.rfind(key, 0) == 0) *out = std::strtod(line.c_str() + key.size(), nullptr) / 1024.0;
    };
    value("VmRSS:", &row->rss_mib);
    value("RssAnon:", &row->anon_mib);
    value("VmHWM:", &row->hwm_mib);
  }
}

double Percentile(std::vector<uint64_t>& v, double p) {
  if (v.empty()) return -1;
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return static_cast<double>(v[k]) / 1000.0;
}

const std::vector<std::string> kHeader = {"name", "events", "seconds", "events/s", "MB/s", "p50_us", "p99_us",
                                          "cpu_s", "rss_MiB", "anon_MiB", "hwm_MiB"};

std::vector<std::string> Cells(const Row& r) {
  return {r.name, fmt::format("{}", r.events), Num(r.seconds, 3), Num(r.events_per_second), Num(r.mb_per_second, 1),
          Num(r.p50_us, 1), Num(r.p99_us, 1), Num(r.cpu_seconds, 3), Num(r.rss_mib, 1), Num(r.anon_mib, 1), Num(r.hwm_mib, 1)};
}

void PrintTsv(const std::vector<Row>& rows, bool header) {
  std::string out;
  if (header) {
    for (const auto& h : kHeader) out += h + "\t";
    out += "note\tcommand\n";
  }
  for (const Row& r : rows) {
    for (const auto& c : Cells(r)) out += c + "\t";
    out += r.note + "\t" + r.command + "\n";
  }
  Write(out);
}

void PrintTable(const std::vector<Row>& rows) {
  std::vector<size_t> width;
  for (const auto& h : kHeader) width.push_back(h.size());
  for (const Row& r : rows) {
    auto cells = Cells(r);
    for (size_t i = 0; i < cells.size(); ++i) width[i] = std::max(width[i], cells[i].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (size_t i = 0; i < cells.size(); ++i) {
      s += i == 0 ? fmt::format("{:<{}}", cells[i], width[i]) : fmt::format("  {:>{}}", cells[i], width[i]);
    }
    return s + "\n";
  };
  std::string out = line(kHeader);
  for (const Row& r : rows) out += line(Cells(r));
  out += "\n";
  for (const Row& r : rows) {
    out += fmt::format("{}: {}\n", r.name, r.command);
    if (!r.note.empty()) out += fmt::format("  ({})\n", r.note);
  }
  Write(out);
}

bool ParseTsvRow(const std::string& line, Row* row) {
  std::vector<std::string> cells;
  for (size_t at = 0;;) {
    size_t tab = line.find('\t', at);
    cells.push_back(line.substr(at, tab == std::string::npos ? std::string::npos : tab - at));
    if (tab == std::string::npos) break;
    at = tab + 1;
  }
  if (cells.size() != kHeader.size() + 2) return false;
  auto num = [](const std::string& s) { return s == "-" ? -1.0 : std::strtod(s.c_str(), nullptr); };
  Row r;
  r.name = cells[0];
  r.events = std::strtoull(cells[1].c_str(), nullptr, 10);
  r.seconds = num(cells[2]);
  r.events_per_second = num(cells[3]);
  r.mb_per_second = num(cells[4]);
  r.p50_us = num(cells[5]);
  r.p99_us = num(cells[6]);
  r.cpu_seconds = num(cells[7]);
  r.rss_mib = num(cells[8]);
  r.anon_mib = num(cells[9]);
  r.hwm_mib = num(cells[10]);
  r.note = cells[11];
  r.command = cells[12];
  *row = std::move(r);
  return true;
}

}  // namespace cairn::bench
