// A small writer of the Prometheus text exposition format (version 0.0.4): families with HELP
// and TYPE lines, samples with escaped label values, histograms as cumulative _bucket lines with
// _sum and _count. Not in Debian 12, so written here and kept small (DESIGN.md).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cairn::server::http {

using Labels = std::vector<std::pair<std::string_view, std::string>>;

class PrometheusText {
 public:
  // Starts a metric family; `type` is "counter", "gauge" or "histogram".
  void Family(std::string_view name, std::string_view type, std::string_view help);
  void Sample(std::string_view name, double value, const Labels& labels = {});
  void Sample(std::string_view name, uint64_t value, const Labels& labels = {});
  // `upper_bounds` ascending, `counts` per bucket (not cumulative); one more count than bounds
  // for the +Inf bucket.
  void Histogram(std::string_view name, std::span<const double> upper_bounds, std::span<const uint64_t> counts,
                 double sum);

  const std::string& text() const { return out_; }

  // A label value with backslash, double quote and newline escaped.
  static std::string EscapeLabelValue(std::string_view value);

 private:
  void Name(std::string_view name, const Labels& labels);
  std::string out_;
};

}  // namespace cairn::server::http
