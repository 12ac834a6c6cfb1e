// The Prometheus text format writer (prometheus.h).
#include "server/http/prometheus.h"

#include <fmt/format.h>

#include "util/check.h"

namespace cairn::server::http {

void PrometheusText::Family(std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(std::back_inserter(out_), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

std::string PrometheusText::EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void PrometheusText::Name(std::string_view name, const Labels& labels) {
  out_ += name;
  if (labels.empty()) return;
  out_ += '{';
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) out_ += ',';
    fmt::format_to(std::back_inserter(out_), "{}=\"{}\"", labels[i].first, EscapeLabelValue(labels[i].second));
  }
  out_ += '}';
}

void PrometheusText::Sample(std::string_view name, double value, const Labels& labels) {
  Name(name, labels);
  fmt::format_to(std::back_inserter(out_), " {}\n", value);
}

void PrometheusText::Sample(std::string_view name, uint64_t value, const Labels& labels) {
  Name(name, labels);
  fmt::format_to(std::back_inserter(out_), " {}\n", value);
}

void PrometheusText::Histogram(std::string_view name, std::span<const double> upper_bounds,
                               std::span<const uint64_t> counts, double sum) {
  CAIRN_CHECK_MSG(counts.size() == upper_bounds.size() + 1, "a histogram needs one count per bound plus +Inf");
  uint64_t cumulative = 0;
  const std::string bucket = std::string(name) + "_bucket";
  for (size_t i = 0; i < counts.size(); ++i) {
    cumulative += counts[i];
    std::string le = i < upper_bounds.size() ? fmt::format("{}", upper_bounds[i]) : "+Inf";
    Name(bucket, {{"le", le}});
    fmt::format_to(std::back_inserter(out_), " {}\n", cumulative);
  }
  fmt::format_to(std::back_inserter(out_), "{}_sum {}\n{}_count {}\n", name, sum, name, cumulative);
}

}  // namespace cairn::server::http
