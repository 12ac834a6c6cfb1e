#include "cairn/event.h"

#include "cairn/read.h"

namespace cairn {

RecordedEvent RecordedEventView::ToOwned() const {
  return RecordedEvent{std::string(stream), version,           position,     id, std::string(type),
                       std::string(data),   std::string(metadata), content_type, recorded_at};
}

RecordedEventView RecordedEvent::View() const {
  return RecordedEventView{stream, version, position, id, type, data, metadata, content_type, recorded_at};
}

std::string_view StreamCategory(std::string_view stream) {
  size_t dash = stream.find('-');
  return dash == std::string_view::npos ? stream : stream.substr(0, dash);
}

bool EventFilter::Matches(std::string_view stream, std::string_view type) const {
  if (exclude_system_events && !type.empty() && type[0] == '$') return false;
  if (!stream_prefixes.empty()) {
    bool any = false;
    for (const auto& p : stream_prefixes) any = any || stream.starts_with(p);
    if (!any) return false;
  }
  if (!categories.empty()) {
    std::string_view cat = StreamCategory(stream);
    bool any = false;
    for (const auto& c : categories) any = any || cat == c;
    if (!any) return false;
  }
  if (!event_types.empty()) {
    bool any = false;
    for (const auto& t : event_types) any = any || type == t;
    if (!any) return false;
  }
  return true;
}

Result<std::vector<RecordedEvent>> EventCursor::Collect() {
  std::vector<RecordedEvent> out;
  while (Next()) out.push_back(event().ToOwned());
  Status s = status();
  if (!s.ok()) return s;
  return out;
}

}  // namespace cairn
