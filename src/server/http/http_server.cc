// The HTTP API on cpp-httplib (http_server.h, docs/http-api.md): routing, the authorization hook,
// the stream endpoints, live tails as server-sent events, /health, /metrics and the web UI.
#include "server/http/http_server.h"

#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <charconv>
#include <list>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "cairn/subscription.h"
#include "server/http/prometheus.h"
#include "server/http/web_assets.h"
#include "server/json_format.h"
#include "server/server.h"

namespace cairn::server::http {

std::string_view PermissionName(Permission permission) {
  switch (permission) {
    case Permission::kPublic:
      return "public";
    case Permission::kRead:
      return "read";
    case Permission::kWrite:
      return "write";
    case Permission::kDelete:
      return "delete";
    case Permission::kMetadataRead:
      return "metadata-read";
    case Permission::kMetadataWrite:
      return "metadata-write";
    case Permission::kOperate:
      return "operate";
    case Permission::kMetrics:
      return "metrics";
  }
  return "unknown";
}

namespace {

using Request = httplib::Request;
using Response = httplib::Response;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kAll = "$all";

int HttpStatusOf(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kNotFound:
      return status.detail() == ErrorDetail::kStreamDeleted ? 410 : 404;
    case StatusCode::kAlreadyExists:
    case StatusCode::kConflict:
      return 409;
    case StatusCode::kInvalidArgument:
      return 400;
    case StatusCode::kResourceExhausted:
      return 429;
    case StatusCode::kFailedPrecondition:
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kUnauthenticated:
      return 401;
    case StatusCode::kPermissionDenied:
      return 403;
    case StatusCode::kNotSupported:
      return 501;
    case StatusCode::kCorruption:
    case StatusCode::kIOError:
    case StatusCode::kInternal:
      return 500;
  }
  return 500;
}

void SendJson(Response& res, int http_status, const Json& body) {
  res.status = http_status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(JsonText(body) + "\n", "application/json");
}

void SendError(Response& res, const Status& status, int http_status = 0) {
  SendJson(res, http_status != 0 ? http_status : HttpStatusOf(status), StatusToJson(status));
}

Timestamp Now() {
  return Timestamp{std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count()};
}

// RFC 3986 unreserved characters stay; every other byte becomes %XX.
std::string PercentEncode(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      fmt::format_to(std::back_inserter(out), "%{:02X}", c);
    }
  }
  return out;
}

std::optional<std::string> PercentDecode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    unsigned value = 0;
    auto [end, ec] = std::from_chars(text.data() + i + 1, text.data() + i + 3, value, 16);
    if (ec != std::errc() || end != text.data() + i + 3) return std::nullopt;
    out += static_cast<char>(value);
    i += 2;
  }
  return out;
}

std::optional<uint64_t> ParseUint(std::string_view text) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// One live tail, as /subscriptions and /metrics show it. Written by its own thread, read by others.
struct LiveTail {
  uint64_t id = 0;
  std::string stream;
  std::string remote;
  Timestamp started_at;
  std::unique_ptr<Subscription> subscription;
  std::atomic<uint64_t> delivered{0};
  std::atomic<uint64_t> last_position{0};
  std::atomic<int64_t> last_recorded_nanos{0};
  std::atomic<bool> caught_up{false};
  std::atomic<bool> any_delivered{false};
};

class HttpServerImpl final : public HttpServer {
 public:
  HttpServerImpl(Store* store, HttpOptions options)
      : store_(store), options_(std::move(options)), server_holder_(MakeServer(options_)), server_(*server_holder_) {}
  ~HttpServerImpl() override { Shutdown(); }

  Status Listen(const HostPort& address) {
    if (!server_.is_valid()) {
      return Status::InvalidArgument(fmt::format(
          "--tls-cert/--tls-key: cannot load the certificate \"{}\" and key \"{}\" for HTTPS (PEM files)",
          options_.tls_cert_file, options_.tls_key_file));
    }
    const size_t threads = options_.threads;
    server_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    server_.set_payload_max_length(options_.max_body_bytes);
    auto write_timeout = std::chrono::duration_cast<std::chrono::microseconds>(options_.live_write_timeout);
    server_.set_write_timeout(write_timeout.count() / 1'000'000, write_timeout.count() % 1'000'000);
    server_.set_keep_alive_timeout(5);
    Routes();
    if (address.port == 0) {
      port_ = server_.bind_to_any_port(address.host);
      if (port_ < 0) port_ = 0;
    } else if (server_.bind_to_port(address.host, address.port)) {
      port_ = address.port;
    }
    if (port_ == 0) {
      return Status::Unavailable(
          fmt::format("--http: cannot listen on {}:{} (in use, or not an address of this machine)", address.host,
                      address.port));
    }
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    return Status::Ok();
  }

  int port() const override { return port_; }

  static std::unique_ptr<httplib::Server> MakeServer(const HttpOptions& options) {
    if (options.tls_cert_file.empty()) return std::make_unique<httplib::Server>();
    return std::make_unique<httplib::SSLServer>(options.tls_cert_file.c_str(), options.tls_key_file.c_str());
  }

  void Shutdown() override {
    std::lock_guard<std::mutex> shutdown_lock(shutdown_mu_);
    if (!thread_.joinable()) return;
    stopping_.store(true);
    {
      std::lock_guard<std::mutex> lock(live_mu_);
      for (auto& tail : live_) tail->subscription->Stop();
    }
    server_.stop();
    thread_.join();
  }

 private:
  void Routes() {
    const size_t max_body_bytes = options_.max_body_bytes;
    server_.set_error_handler(httplib::Server::HandlerWithResponse([max_body_bytes](const Request&, Response& res) {
      // Handlers answer errors with a JSON body themselves; this covers what httplib answers on
      // its own (413 for a body over the limit, 404 for no route, 400 for a malformed request).
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      Status status;
      if (res.status == 413) {
        status = Status::InvalidArgument(fmt::format("body: larger than the limit of {} bytes", max_body_bytes));
      } else if (res.status == 404) {
        status = Status::NotFound("no such endpoint (see docs/http-api.md)");
      } else {
        status = Status::InvalidArgument(fmt::format("request: refused with HTTP {}", res.status));
      }
      Json body = StatusToJson(status);
      if (res.status == 413) body["error"] = "PayloadTooLarge";
      res.set_content(JsonText(body) + "\n", "application/json");
      return httplib::Server::HandlerResponse::Handled;
    }));
    server_.set_exception_handler([](const Request&, Response& res, std::exception_ptr) {
      SendError(res, Status::Internal("the request handler failed"));
    });
    server_.set_logger([this](const Request&, const Response& res) {
      size_t bucket = res.status >= 100 && res.status < 600 ? static_cast<size_t>(res.status / 100) : 0;
      requests_by_class_[bucket].fetch_add(1, std::memory_order_relaxed);
    });

    server_.Get("/health", [this](const Request& req, Response& res) { Health(req, res); });
    server_.Get("/metrics", [this](const Request& req, Response& res) { Metrics(req, res); });
    server_.Get("/subscriptions", [this](const Request& req, Response& res) { Subscriptions(req, res); });
    server_.Get("/subscriptions/.+", [this](const Request& req, Response& res) { Group(req, res); });
    server_.Put("/subscriptions/.+", [this](const Request& req, Response& res) { Group(req, res); });
    server_.Delete("/subscriptions/.+", [this](const Request& req, Response& res) { Group(req, res); });
    server_.Get("/stats", [this](const Request& req, Response& res) { Stats(req, res); });
    server_.Get("/streams", [this](const Request& req, Response& res) { ListStreams(req, res); });
    server_.Get("/events/([^/]+)", [this](const Request& req, Response& res) { EventById(req, res); });
    server_.Get("/streams/.+", [this](const Request& req, Response& res) { Streams(req, res); });
    server_.Post("/streams/.+", [this](const Request& req, Response& res) { Streams(req, res); });
    server_.Put("/streams/.+", [this](const Request& req, Response& res) { Streams(req, res); });
    server_.Delete("/streams/.+", [this](const Request& req, Response& res) { Streams(req, res); });
    server_.Get("/.*", [this](const Request& req, Response& res) { Static(req, res); });
  }

  // The authorization hook (http_auth.h). nullopt: the answer (401/403) is already in `res`.
  std::optional<Principal> Authorize(const Request& req, Response& res, Permission permission,
                                     std::string_view stream) {
    if (!options_.authorizer) return Principal{};
    const std::string authorization = req.get_header_value("Authorization");
    Result<Principal> principal = options_.authorizer(AccessRequest{authorization, permission, stream});
    if (principal.ok()) return std::move(principal).value();
    // The web UI asks for no browser login dialog (it shows its own form).
    if (principal.status().code() == StatusCode::kUnauthenticated && !req.has_header("X-Cairn-UI")) {
      res.set_header("WWW-Authenticate", "Basic realm=\"cairn\", charset=\"UTF-8\"");
    }
    SendError(res, principal.status());
    return std::nullopt;
  }

  // /streams/{stream}[/{action}]: the stream is one percent-encoded path segment (a '/' in a name
  // is sent as %2F), taken from the raw target so that it is decoded exactly once.
  void Streams(const Request& req, Response& res) {
    std::string_view target = req.target;
    target = target.substr(0, target.find('?'));
    constexpr std::string_view kPrefix = "/streams/";
    if (!target.starts_with(kPrefix)) return SendError(res, Status::NotFound("no such endpoint"));
    target.remove_prefix(kPrefix.size());
    size_t slash = target.find('/');
    std::string_view encoded = target.substr(0, slash);
    std::string_view action = slash == std::string_view::npos ? "" : target.substr(slash + 1);
    std::optional<std::string> stream = PercentDecode(encoded);
    if (!stream || stream->empty()) {
      return SendError(res, Status::InvalidArgument("stream: the path segment is empty or badly percent-encoded"));
    }
    const std::string& m = req.method;
    if (action.empty()) {
      if (m == "GET") return *stream == kAll ? ReadAll(req, res) : ReadStream(req, res, *stream);
      if (m == "POST") return Append(req, res, *stream);
      if (m == "DELETE") return Delete(req, res, *stream, /*tombstone=*/false);
    } else if (action == "live" && m == "GET") {
      return Live(req, res, *stream);
    } else if (action == "metadata" && m == "GET") {
      return GetMetadata(req, res, *stream);
    } else if (action == "metadata" && m == "PUT") {
      return PutMetadata(req, res, *stream);
    } else if (action == "info" && m == "GET") {
      return Info(req, res, *stream);
    } else if (action == "tombstone" && m == "POST") {
      return Delete(req, res, *stream, /*tombstone=*/true);
    }
    SendError(res, Status::NotFound(fmt::format("no endpoint {} /streams/{{stream}}/{}", m, action)), 404);
  }

  // GET /streams?prefix=P&category=C&after=NAME&max=N: stream names in name order, a page at a
  // time (Store::ListStreams). The authorization hook is asked for `read` on the prefix.
  void ListStreams(const Request& req, Response& res) {
    ListStreamsOptions options;
    options.prefix = req.get_param_value("prefix");
    if (req.has_param("category")) {
      if (!options.prefix.empty()) {
        return SendError(res, Status::InvalidArgument("category: give either prefix or category, not both"));
      }
      options.prefix = req.get_param_value("category") + "-";
    }
    if (!Authorize(req, res, Permission::kRead, options.prefix)) return;
    options.after = req.get_param_value("after");
    if (req.has_param("max")) {
      auto max = ParseUint(req.get_param_value("max"));
      if (!max || *max == 0 || *max > kMaxListStreams) {
        return SendError(res, Status::InvalidArgument(fmt::format("max: \"{}\" is not a number from 1 to {}",
                                                                  req.get_param_value("max"), kMaxListStreams)));
      }
      options.max_count = *max;
    }
    if (req.has_param("system")) {
      const std::string v = req.get_param_value("system");
      if (v != "true" && v != "false") {
        return SendError(res, Status::InvalidArgument(fmt::format("system: \"{}\" is not true or false", v)));
      }
      options.include_system = v == "true";
    }
    Result<std::vector<StreamSummary>> streams = store_->ListStreams(options);
    if (!streams.ok()) return SendError(res, streams.status());
    Json list = Json::array();
    for (const StreamSummary& s : *streams) {
      Json j = Json::object();
      j["name"] = s.name;
      j["last_version"] = s.last_version;
      j["last_position"] = s.last_position.value();
      j["deleted"] = s.deleted;
      j["tombstoned"] = s.tombstoned;
      list.push_back(std::move(j));
    }
    Json next = nullptr;
    if (streams->size() == options.max_count) {
      next = fmt::format("/streams?prefix={}&after={}&max={}{}", PercentEncode(options.prefix),
                         PercentEncode(streams->back().name), options.max_count,
                         options.include_system ? "&system=true" : "");
    }
    Json out = Json::object();
    out["streams"] = std::move(list);
    out["links"] = Json{{"next", std::move(next)}};
    SendJson(res, 200, out);
  }

  // GET /events/{id}: the event with this id, looked for among the newest kMaxEventIdScan events
  // of $all (the store has no lookup by id outside its idempotency window; a bounded scan keeps
  // the cost known). For the web UI's links from $correlationId and $causationId.
  void EventById(const Request& req, Response& res) {
    if (!Authorize(req, res, Permission::kRead, kAll)) return;
    const std::string text = req.matches[1];
    std::optional<Uuid> id = Uuid::Parse(text);
    if (!id) {
      return SendError(res, Status::InvalidArgument(fmt::format("id: \"{}\" is not a UUID (want the 8-4-4-4-12 hex form)", text)));
    }
    ReadAllOptions options;
    options.direction = ReadDirection::kBackward;
    options.from = Position::End();
    options.max_count = kMaxEventIdScan;
    Result<EventCursor> cursor = store_->ReadAll(options);
    if (!cursor.ok()) return SendError(res, cursor.status());
    while (cursor->Next()) {
      if (cursor->event().id == *id) return SendJson(res, 200, RecordedEventToJson(cursor->event()));
    }
    if (!cursor->status().ok()) return SendError(res, cursor->status());
    SendError(res, Status::NotFound(fmt::format("event id {}: not among the newest {} events", text, kMaxEventIdScan)));
  }

  // "expected" as a query parameter (metadata, delete, tombstone); "any" when absent.
  static Result<ExpectedVersion> ExpectedParam(const Request& req) {
    if (!req.has_param("expected")) return ExpectedVersion::Any();
    const std::string text = req.get_param_value("expected");
    auto expected = ExpectedVersion::Parse(text);
    if (!expected) {
      return Status::InvalidArgument(fmt::format(
          "expected: \"{}\" is not valid; want \"any\", \"no-stream\", \"exists\" or a version number", text));
    }
    return *expected;
  }

  void Append(const Request& req, Response& res, const std::string& stream) {
    if (!Authorize(req, res, Permission::kWrite, stream)) return;
    Json body = Json::parse(req.body.begin(), req.body.end(), nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) return SendError(res, Status::InvalidArgument("body: not valid JSON"));
    if (body.is_object()) {
      auto named = body.find("stream");
      if (named == body.end()) {
        body["stream"] = stream;
      } else if (!named->is_string() || named->get_ref<const std::string&>() != stream) {
        return SendError(res, Status::InvalidArgument(fmt::format(
                                  "stream: the body names {}, the path \"{}\"; leave it out", JsonText(*named), stream)));
      }
    }
    Result<AppendRequest> request = ParseAppendRequest(body);
    if (!request.ok()) return SendError(res, request.status());
    if (request->events.empty()) return SendError(res, Status::InvalidArgument("events: empty; give at least one"));
    if (request->events.size() > kMaxAppendEvents) {
      return SendError(res,
                       Status::InvalidArgument(fmt::format("events: {} events, the limit of one append is {}",
                                                           request->events.size(), kMaxAppendEvents)),
                       413);
    }
    uint64_t bytes = 0;
    for (const EventData& e : request->events) bytes += e.data.size() + e.metadata.size();
    if (bytes > kMaxAppendBytes) {
      return SendError(res,
                       Status::InvalidArgument(fmt::format(
                           "events: {} bytes of data and metadata, the limit of one append is {}", bytes, kMaxAppendBytes)),
                       413);
    }
    Result<AppendResult> result = store_->Append(stream, request->expected, request->events);
    if (!result.ok()) return SendError(res, result.status());
    appends_.fetch_add(1, std::memory_order_relaxed);
    events_appended_.fetch_add(request->events.size(), std::memory_order_relaxed);
    bytes_appended_.fetch_add(bytes, std::memory_order_relaxed);
    SendJson(res, 200, AppendResultToJson(stream, *result));
  }

  struct Page {
    uint64_t max = kDefaultPageEvents;
    ReadDirection direction = ReadDirection::kForward;
    std::optional<uint64_t> from;
  };

  static Result<Page> PageParams(const Request& req, std::string_view from_meaning) {
    Page page;
    if (req.has_param("max")) {
      auto max = ParseUint(req.get_param_value("max"));
      if (!max || *max == 0 || *max > kMaxPageEvents) {
        return Status::InvalidArgument(fmt::format("max: \"{}\" is not a number from 1 to {}",
                                                   req.get_param_value("max"), kMaxPageEvents));
      }
      page.max = *max;
    }
    if (req.has_param("direction")) {
      const std::string d = req.get_param_value("direction");
      if (d == "backward") {
        page.direction = ReadDirection::kBackward;
      } else if (d != "forward") {
        return Status::InvalidArgument(fmt::format("direction: \"{}\" is not forward or backward", d));
      }
    }
    if (req.has_param("from")) {
      const std::string f = req.get_param_value("from");
      if (f != "start" && f != "end") {
        page.from = ParseUint(f);
        if (!page.from) return Status::InvalidArgument(fmt::format("from: \"{}\" is not {}", f, from_meaning));
      } else if (f == "end") {
        page.direction = req.has_param("direction") ? page.direction : ReadDirection::kBackward;
      }
    }
    return page;
  }

  static std::string PageLink(std::string_view stream, uint64_t from, const Page& page, std::string_view extra) {
    return fmt::format("/streams/{}?from={}&max={}&direction={}{}", PercentEncode(stream), from, page.max,
                       page.direction == ReadDirection::kForward ? "forward" : "backward", extra);
  }

  void ReadStream(const Request& req, Response& res, const std::string& stream) {
    if (!Authorize(req, res, Permission::kRead, stream)) return;
    Result<Page> page = PageParams(req, "a stream version");
    if (!page.ok()) return SendError(res, page.status());
    ReadStreamOptions options;
    options.direction = page->direction;
    options.from = page->from;
    options.max_count = page->max;
    Result<EventCursor> cursor = store_->ReadStream(stream, options);
    if (!cursor.ok()) return SendError(res, cursor.status());
    Json events = Json::array();
    std::optional<StreamVersion> last;
    while (cursor->Next()) {
      events.push_back(RecordedEventToJson(cursor->event()));
      last = cursor->event().version;
    }
    if (!cursor->status().ok()) return SendError(res, cursor->status());
    CountRead(events.size());
    const bool full = events.size() == page->max;
    Json next = nullptr;
    if (page->direction == ReadDirection::kForward) {
      // Forward pages always link on: past the end, the link is where new events will appear.
      next = PageLink(stream, last ? *last + 1 : page->from.value_or(0), *page, "");
    } else if (full && last && *last > 0) {
      next = PageLink(stream, *last - 1, *page, "");
    }
    Json out = Json::object();
    out["stream"] = stream;
    out["events"] = std::move(events);
    out["end_of_stream"] = !full;
    out["links"] = Json{{"next", std::move(next)}};
    SendJson(res, 200, out);
  }

  static Result<EventFilter> FilterParams(const Request& req) {
    EventFilter filter;
    for (size_t i = 0; i < req.get_param_value_count("prefix"); ++i) {
      filter.stream_prefixes.push_back(req.get_param_value("prefix", i));
    }
    for (size_t i = 0; i < req.get_param_value_count("category"); ++i) {
      filter.categories.push_back(req.get_param_value("category", i));
    }
    for (size_t i = 0; i < req.get_param_value_count("type"); ++i) {
      filter.event_types.push_back(req.get_param_value("type", i));
    }
    if (req.has_param("exclude_system")) {
      const std::string v = req.get_param_value("exclude_system");
      if (v != "true" && v != "false") {
        return Status::InvalidArgument(fmt::format("exclude_system: \"{}\" is not true or false", v));
      }
      filter.exclude_system_events = v == "true";
    }
    return filter;
  }

  // The filter's query parameters again, for next-page links.
  static std::string FilterQuery(const EventFilter& filter) {
    std::string out;
    for (const auto& p : filter.stream_prefixes) out += "&prefix=" + PercentEncode(p);
    for (const auto& c : filter.categories) out += "&category=" + PercentEncode(c);
    for (const auto& t : filter.event_types) out += "&type=" + PercentEncode(t);
    if (filter.exclude_system_events) out += "&exclude_system=true";
    return out;
  }

  void ReadAll(const Request& req, Response& res) {
    if (!Authorize(req, res, Permission::kRead, kAll)) return;
    Result<Page> page = PageParams(req, "a position");
    if (!page.ok()) return SendError(res, page.status());
    Result<EventFilter> filter = FilterParams(req);
    if (!filter.ok()) return SendError(res, filter.status());
    ReadAllOptions options;
    options.direction = page->direction;
    options.max_count = page->max;
    options.filter = *filter;
    if (page->from) {
      options.from = Position(*page->from);
    } else {
      options.from = page->direction == ReadDirection::kForward ? Position::Start() : Position::End();
    }
    Result<EventCursor> cursor = store_->ReadAll(options);
    if (!cursor.ok()) return SendError(res, cursor.status());
    Json events = Json::array();
    std::optional<Position> last;
    while (cursor->Next()) {
      events.push_back(RecordedEventToJson(cursor->event()));
      last = cursor->event().position;
    }
    if (!cursor->status().ok()) return SendError(res, cursor->status());
    CountRead(events.size());
    const bool full = events.size() == page->max;
    Json next = nullptr;
    const std::string extra = FilterQuery(*filter);
    if (page->direction == ReadDirection::kForward) {
      // The cursor's checkpoint is where a later read resumes (past filtered-out events too).
      next = PageLink(kAll, cursor->checkpoint().value(), *page, extra);
    } else if (full && last) {
      next = PageLink(kAll, last->value(), *page, extra);  // backward excludes `from`
    }
    Json out = Json::object();
    out["stream"] = kAll;
    out["events"] = std::move(events);
    out["end_of_stream"] = !full;
    out["links"] = Json{{"next", std::move(next)}};
    SendJson(res, 200, out);
  }

  void Info(const Request& req, Response& res, const std::string& stream) {
    if (!Authorize(req, res, Permission::kRead, stream)) return;
    Result<StreamInfo> info = store_->GetStreamInfo(stream);
    if (!info.ok()) return SendError(res, info.status());
    Json out = Json::object();
    out["stream"] = stream;
    out["exists"] = info->exists;
    out["deleted"] = info->deleted;
    out["tombstoned"] = info->tombstoned;
    out["last_version"] = info->last_version ? Json(*info->last_version) : Json(nullptr);
    out["last_position"] = info->last_position ? Json(info->last_position->value()) : Json(nullptr);
    out["metadata_version"] = info->metadata_version ? Json(*info->metadata_version) : Json(nullptr);
    SendJson(res, 200, out);
  }

  void GetMetadata(const Request& req, Response& res, const std::string& stream) {
    if (!Authorize(req, res, Permission::kMetadataRead, stream)) return;
    Result<StreamInfo> info = store_->GetStreamInfo(stream);
    if (!info.ok()) return SendError(res, info.status());
    Json out = Json::object();
    out["stream"] = stream;
    out["metadata_version"] = info->metadata_version ? Json(*info->metadata_version) : Json(nullptr);
    const std::string text = info->metadata.ToJson();
    Json metadata = Json::parse(text, nullptr, /*allow_exceptions=*/false);
    out["metadata"] = metadata.is_discarded() ? Json::object() : std::move(metadata);
    SendJson(res, 200, out);
  }

  void PutMetadata(const Request& req, Response& res, const std::string& stream) {
    if (!Authorize(req, res, Permission::kMetadataWrite, stream)) return;
    Result<ExpectedVersion> expected = ExpectedParam(req);
    if (!expected.ok()) return SendError(res, expected.status());
    Json body = Json::parse(req.body.begin(), req.body.end(), nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) return SendError(res, Status::InvalidArgument("body: not valid JSON"));
    if (!body.is_object()) return SendError(res, Status::InvalidArgument("body: must be a JSON object of metadata"));
    Result<StreamMetadata> metadata = StreamMetadata::Parse(req.body);
    if (!metadata.ok()) return SendError(res, metadata.status());
    Result<AppendResult> result = store_->SetStreamMetadata(stream, *expected, *metadata);
    if (!result.ok()) return SendError(res, result.status());
    SendJson(res, 200, AppendResultToJson("$$" + stream, *result));
  }

  void Delete(const Request& req, Response& res, const std::string& stream, bool tombstone) {
    if (!Authorize(req, res, Permission::kDelete, stream)) return;
    Result<ExpectedVersion> expected = ExpectedParam(req);
    if (!expected.ok()) return SendError(res, expected.status());
    Result<AppendResult> result =
        tombstone ? store_->TombstoneStream(stream, *expected) : store_->DeleteStream(stream, *expected);
    if (!result.ok()) return SendError(res, result.status());
    Json out = Json::object();
    out["stream"] = stream;
    out["deleted"] = tombstone ? "tombstone" : "soft";
    out["position"] = result->position.value();
    SendJson(res, 200, out);
  }

  // GET /streams/{stream}/live: server-sent events. Each event is one message whose id is its
  // position ($all) or version (a stream), so that a reconnecting EventSource, which sends the
  // last id as Last-Event-ID, resumes right after it.
  void Live(const Request& req, Response& res, const std::string& stream) {
    if (!Authorize(req, res, Permission::kRead, stream)) return;
    const bool all = stream == kAll;
    std::optional<uint64_t> after;
    std::optional<uint64_t> from;
    bool from_start = false;
    if (req.has_header("Last-Event-ID") && !req.get_header_value("Last-Event-ID").empty()) {
      const std::string id = req.get_header_value("Last-Event-ID");
      after = ParseUint(id);
      if (!after) {
        return SendError(res, Status::InvalidArgument(fmt::format(
                                  "Last-Event-ID: \"{}\" is not {}", id, all ? "a position" : "a stream version")));
      }
    } else if (req.has_param("from")) {
      const std::string f = req.get_param_value("from");
      if (f == "start") {
        from_start = true;
      } else if (f != "now") {
        from = ParseUint(f);
        if (!from) {
          return SendError(res, Status::InvalidArgument(fmt::format(
                                    "from: \"{}\" is not \"start\", \"now\" or {}", f, all ? "a position" : "a version")));
        }
      }
    }
    Result<EventFilter> filter = FilterParams(req);
    if (!filter.ok()) return SendError(res, filter.status());

    Result<std::unique_ptr<Subscription>> subscription = Status::Internal("unset");
    if (all) {
      SubscribeToAllOptions options;
      options.filter = *filter;
      options.checkpoint_interval_events = 0;
      options.from = after       ? AllFrom::After(Position(*after))
                     : from      ? AllFrom::Checkpoint(Position(*from))
                     : from_start ? AllFrom::Start()
                                  : AllFrom::Now();
      subscription = SubscribeToAll(*store_, options);
    } else {
      SubscribeToStreamOptions options;
      options.from = after       ? StreamFrom::After(*after)
                     : from      ? StreamFrom::Version(*from)
                     : from_start ? StreamFrom::Start()
                                  : StreamFrom::Now();
      subscription = SubscribeToStream(*store_, stream, options);
    }
    if (!subscription.ok()) return SendError(res, subscription.status());

    if (live_count_.fetch_add(1) >= options_.max_live_clients) {
      live_count_.fetch_sub(1);
      return SendError(res, Status::Unavailable(fmt::format("live tails: {} are running, the limit is {}; retry later",
                                                            options_.max_live_clients, options_.max_live_clients)));
    }
    auto tail = std::make_shared<LiveTail>();
    tail->id = next_tail_id_.fetch_add(1) + 1;
    tail->stream = stream;
    tail->remote = fmt::format("{}:{}", req.remote_addr, req.remote_port);
    tail->started_at = Now();
    tail->subscription = std::move(subscription).value();
    {
      std::lock_guard<std::mutex> lock(live_mu_);
      if (stopping_.load()) tail->subscription->Stop();
      live_.push_back(tail);
    }
    res.set_header("Cache-Control", "no-store");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, tail](size_t, httplib::DataSink& sink) { return ServeLive(*tail, sink); },
        [this, tail](bool) {
          std::lock_guard<std::mutex> lock(live_mu_);
          live_.remove(tail);
          live_count_.fetch_sub(1);
        });
  }

  // Runs one live tail until the client goes, the server stops or the subscription ends.
  // Returns false to drop the connection (the client stopped taking writes).
  bool ServeLive(LiveTail& tail, httplib::DataSink& sink) {
    Subscription& sub = *tail.subscription;
    const bool all = tail.stream == kAll;
    std::string batch = fmt::format(": cairn live tail of {}\nretry: 1000\n\n", tail.stream);
    Clock::time_point last_write = Clock::now();
    auto flush = [&]() {
      if (batch.empty()) return true;
      bool ok = sink.write(batch.data(), batch.size());
      batch.clear();
      last_write = Clock::now();
      return ok;
    };
    while (!stopping_.load(std::memory_order_relaxed)) {
      // Gather what is ready without waiting; wait only with nothing to send.
      const auto wait = batch.empty() ? std::chrono::milliseconds(250) : std::chrono::milliseconds(0);
      if (sub.Next(wait)) {
        const SubscriptionMessage& m = sub.message();
        switch (m.kind) {
          case SubscriptionMessage::Kind::kEvent: {
            const uint64_t id = all ? m.event.position.value() : m.event.version;
            fmt::format_to(std::back_inserter(batch), "id: {}\ndata: {}\n\n", id,
                           JsonText(RecordedEventToJson(m.event)));
            tail.delivered.fetch_add(1, std::memory_order_relaxed);
            tail.last_position.store(m.event.position.value(), std::memory_order_relaxed);
            tail.last_recorded_nanos.store(m.event.recorded_at.nanos, std::memory_order_relaxed);
            tail.any_delivered.store(true, std::memory_order_relaxed);
            break;
          }
          case SubscriptionMessage::Kind::kCaughtUp:
            tail.caught_up.store(true, std::memory_order_relaxed);
            batch += "event: caught-up\ndata: {}\n\n";
            break;
          case SubscriptionMessage::Kind::kFellBehind:
            tail.caught_up.store(false, std::memory_order_relaxed);
            batch += "event: fell-behind\ndata: {}\n\n";
            break;
          case SubscriptionMessage::Kind::kCheckpoint:
            break;
        }
        if (batch.size() < options_.live_batch_bytes) continue;
      } else if (sub.done()) {
        if (!sub.status().ok() && !stopping_.load()) {
          fmt::format_to(std::back_inserter(batch), "event: error\ndata: {}\n\n", JsonText(StatusToJson(sub.status())));
        }
        break;
      }
      if (!batch.empty()) {
        if (!flush()) return false;
      } else if (Clock::now() - last_write >= options_.live_heartbeat) {
        batch = ": heartbeat\n\n";
        if (!flush()) return false;
      }
    }
    if (!flush()) return false;
    sink.done();
    return true;
  }

  void CountRead(size_t events) {
    reads_.fetch_add(1, std::memory_order_relaxed);
    events_read_.fetch_add(events, std::memory_order_relaxed);
  }

  // The recorded time of the newest event, for lag figures; nullopt for an empty store.
  std::optional<Timestamp> HeadTime() {
    ReadAllOptions options;
    options.direction = ReadDirection::kBackward;
    options.from = Position::End();
    options.max_count = 1;
    auto cursor = store_->ReadAll(options);
    if (!cursor.ok() || !cursor->Next()) return std::nullopt;
    return cursor->event().recorded_at;
  }

  struct TailView {
    uint64_t id;
    std::string stream;
    std::string remote;
    Timestamp started_at;
    uint64_t delivered;
    uint64_t last_position;
    bool caught_up;
    double lag_seconds;
  };

  std::vector<TailView> Tails() {
    std::optional<Timestamp> head_time = HeadTime();
    std::vector<TailView> out;
    std::lock_guard<std::mutex> lock(live_mu_);
    for (const auto& t : live_) {
      TailView v{t->id, t->stream, t->remote, t->started_at, t->delivered.load(), t->last_position.load(),
                 t->caught_up.load(), 0.0};
      // Behind: the time between the newest event and the last one this tail delivered.
      if (!v.caught_up && head_time && t->any_delivered.load()) {
        v.lag_seconds = std::max<double>(0.0, static_cast<double>(head_time->nanos - t->last_recorded_nanos.load()) / 1e9);
      }
      out.push_back(std::move(v));
    }
    return out;
  }

  void Health(const Request& req, Response& res) {
    if (!Authorize(req, res, Permission::kPublic, "")) return;
    const bool ready = !stopping_.load();
    Json out = Json::object();
    out["status"] = ready ? "ok" : "stopping";
    out["live"] = true;
    out["ready"] = ready;
    out["head_position"] = store_->HeadPosition().value();
    SendJson(res, ready ? 200 : 503, out);
  }

  // How far a consumer group is behind its source, in events: what it has not read yet (up to
  // the stream's last version, or the $all head, counted with the group's filter), plus what it
  // read and has not seen acknowledged (buffered and in flight, replayed parked events included).
  struct GroupLag {
    uint64_t events = 0;
    bool exact = true;
    uint64_t source_end = 0;  // the stream's next version, or the $all head position
  };

  GroupLag LagOf(const PersistentGroupInfo& g) {
    GroupLag lag;
    const uint64_t read_to = g.last_known.value_or(g.checkpoint.value_or(0));
    uint64_t unread = 0;
    if (g.source == kAllStreamName) {
      lag.source_end = store_->HeadPosition().value();
      if (read_to < lag.source_end) {
        ReadAllOptions options;
        options.from = Position(read_to);
        options.max_count = kMaxLagScanEvents + 1;
        options.filter = g.settings.filter;
        Result<EventCursor> cursor = store_->ReadAll(options);
        if (cursor.ok()) {
          while (cursor->Next()) ++unread;
        }
        if (!cursor.ok() || !cursor->status().ok() || unread > kMaxLagScanEvents) {
          lag.exact = false;
          unread = std::min(unread, kMaxLagScanEvents);
        }
      }
    } else {
      Result<StreamInfo> info = store_->GetStreamInfo(g.source);
      if (info.ok() && info->last_version) lag.source_end = *info->last_version + 1;
      unread = lag.source_end > read_to ? lag.source_end - read_to : 0;
    }
    lag.events = unread + g.buffered + g.in_flight;
    return lag;
  }

  static Json OptionalJson(const std::optional<uint64_t>& value) { return value ? Json(*value) : Json(nullptr); }

  Json GroupToJson(const PersistentGroupInfo& g, bool with_connections) {
    const GroupLag lag = LagOf(g);
    Json j = Json::object();
    j["stream"] = g.source;
    j["group"] = g.group;
    j["strategy"] = std::string(ConsumerStrategyName(g.settings.consumer_strategy));
    j["status"] = g.status;
    j["checkpoint"] = OptionalJson(g.checkpoint);
    j["last_known"] = OptionalJson(g.last_known);
    j["source_end"] = lag.source_end;
    j["consumers"] = g.connections.size();
    j["delivered"] = g.delivered;
    j["in_flight"] = g.in_flight;
    j["buffered"] = g.buffered;
    j["parked"] = g.parked;
    j["lag_events"] = lag.events;
    j["lag_exact"] = lag.exact;
    if (with_connections) {
      Json connections = Json::array();
      for (const PersistentConnectionInfo& c : g.connections) {
        connections.push_back(Json{{"id", c.id},
                                   {"name", c.name},
                                   {"delivered", c.delivered},
                                   {"in_flight", c.in_flight},
                                   {"available_slots", c.available_slots}});
      }
      j["connections"] = std::move(connections);
    }
    return j;
  }

  LiveSubscriptionCounts GrpcSubscriptions() {
    return options_.grpc_subscriptions ? options_.grpc_subscriptions() : LiveSubscriptionCounts{};
  }

  std::vector<HostedProjectionStatus> Projections() {
    return options_.projections ? options_.projections() : std::vector<HostedProjectionStatus>{};
  }

  static Json ProjectionToJson(const HostedProjectionStatus& p) {
    Json j = Json::object();
    j["name"] = p.name;
    j["spec"] = p.spec;
    j["sink"] = p.sink;
    j["state"] = p.state;
    j["error"] = p.error.empty() ? Json(nullptr) : Json(p.error);
    if (p.status) {
      j["position"] = p.status->checkpoint.value();
      j["events_handled"] = p.status->events_handled;
      j["events_parked"] = p.status->events_parked;
      j["lag_events"] = p.status->lag_events;
      j["lag_ms"] = p.status->lag_ms;
      j["last_recorded_at"] = p.status->last_recorded_at ? Json(p.status->last_recorded_at->ToRfc3339()) : Json(nullptr);
    } else {
      for (const char* key : {"position", "events_handled", "events_parked", "lag_events", "lag_ms", "last_recorded_at"}) {
        j[key] = nullptr;
      }
    }
    return j;
  }

  // GET /subscriptions: every consumer group (with its lag), the projections the server runs and
  // the live tails.
  void Subscriptions(const Request& req, Response& res) {
    if (!Authorize(req, res, Permission::kOperate, "")) return;
    Json out = Json::object();
    out["head_position"] = store_->HeadPosition().value();
    Json groups = Json::array();
    if (options_.persistent != nullptr) {
      Result<std::vector<PersistentGroupInfo>> list = options_.persistent->List();
      if (!list.ok()) return SendError(res, list.status().WithContext("persistent subscriptions"));
      for (const PersistentGroupInfo& g : *list) groups.push_back(GroupToJson(g, /*with_connections=*/false));
    }
    out["persistent"] = std::move(groups);
    Json projections = Json::array();
    for (const HostedProjectionStatus& p : Projections()) projections.push_back(ProjectionToJson(p));
    out["projections"] = std::move(projections);
    Json tails = Json::array();
    for (const TailView& t : Tails()) {
      Json j = Json::object();
      j["id"] = t.id;
      j["kind"] = "live-tail";
      j["stream"] = t.stream;
      j["client"] = t.remote;
      j["started_at"] = t.started_at.ToRfc3339();
      j["delivered"] = t.delivered;
      j["last_position"] = t.last_position;
      j["caught_up"] = t.caught_up;
      j["lag_seconds"] = t.lag_seconds;
      tails.push_back(std::move(j));
    }
    out["subscriptions"] = std::move(tails);
    const LiveSubscriptionCounts grpc = GrpcSubscriptions();
    out["grpc"] = Json{{"streams", grpc.streams}, {"all", grpc.all}};
    SendJson(res, 200, out);
  }

  // The settings a PUT /subscriptions/{stream}/{group} body may give (an empty body: defaults).
  static Result<PersistentSubscriptionSettings> GroupSettings(const std::string& text) {
    PersistentSubscriptionSettings settings;
    if (text.empty()) return settings;
    Json body = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) return Status::InvalidArgument("body: not valid JSON");
    if (!body.is_object()) return Status::InvalidArgument("body: must be an object");
    auto count = [](const Json& v, std::string_view key) -> Result<int64_t> {
      if (!v.is_number_integer()) return Status::InvalidArgument(fmt::format("{}: must be an integer", key));
      return v.get<int64_t>();
    };
    for (const auto& [key, value] : body.items()) {
      if (key == "start_from") {
        if (value == "start") {
          settings.start_from = PersistentStart::Start();
        } else if (value == "end") {
          settings.start_from = PersistentStart::End();
        } else if (value.is_number_unsigned()) {
          settings.start_from = PersistentStart::At(value.get<uint64_t>());
        } else {
          return Status::InvalidArgument(fmt::format(
              "start_from: {} is not \"start\", \"end\" or a version ($all: a position)", JsonText(value)));
        }
      } else if (key == "consumer_strategy") {
        std::optional<ConsumerStrategy> strategy =
            value.is_string() ? ParseConsumerStrategy(value.get<std::string>()) : std::nullopt;
        if (!strategy) {
          return Status::InvalidArgument(fmt::format(
              "consumer_strategy: {} is not one of \"DispatchToSingle\", \"RoundRobin\", \"Pinned\"", JsonText(value)));
        }
        settings.consumer_strategy = *strategy;
      } else if (key == "message_timeout_ms") {
        CAIRN_ASSIGN_OR_RETURN(settings.message_timeout_ms, count(value, key));
      } else if (key == "max_retry_count") {
        CAIRN_ASSIGN_OR_RETURN(settings.max_retry_count, count(value, key));
      } else if (key == "max_subscriber_count") {
        CAIRN_ASSIGN_OR_RETURN(settings.max_subscriber_count, count(value, key));
      } else {
        return Status::InvalidArgument(fmt::format(
            "{}: unknown setting (known: start_from, consumer_strategy, message_timeout_ms, max_retry_count, "
            "max_subscriber_count)",
            key));
      }
    }
    return settings;
  }

  // /subscriptions/{stream}/{group}: GET one group (with its consumers), PUT creates it, DELETE
  // deletes it. Both are percent-encoded path segments ($all is %24all, a '/' in a name %2F).
  void Group(const Request& req, Response& res) {
    std::string_view target = req.target;
    target = target.substr(0, target.find('?'));
    constexpr std::string_view kPrefix = "/subscriptions/";
    if (!target.starts_with(kPrefix)) return SendError(res, Status::NotFound("no such endpoint"));
    target.remove_prefix(kPrefix.size());
    const size_t slash = target.find('/');
    if (slash == std::string_view::npos || target.find('/', slash + 1) != std::string_view::npos) {
      return SendError(res, Status::NotFound(fmt::format("no endpoint {} /subscriptions/{}; want "
                                                         "/subscriptions/{{stream}}/{{group}}",
                                                         req.method, target)), 404);
    }
    std::optional<std::string> stream = PercentDecode(target.substr(0, slash));
    std::optional<std::string> group = PercentDecode(target.substr(slash + 1));
    if (!stream || stream->empty()) {
      return SendError(res, Status::InvalidArgument("stream: the path segment is empty or badly percent-encoded"));
    }
    if (!group || group->empty()) {
      return SendError(res, Status::InvalidArgument("group: the path segment is empty or badly percent-encoded"));
    }
    if (!Authorize(req, res, Permission::kOperate, "")) return;
    PersistentSubscriptions* subs = options_.persistent;
    if (subs == nullptr) {
      return SendError(res, Status::NotSupported("persistent subscriptions: this server does not serve them"));
    }
    if (req.method == "PUT") {
      Result<PersistentSubscriptionSettings> settings = GroupSettings(req.body);
      if (!settings.ok()) return SendError(res, settings.status());
      if (Status s = subs->Create(*stream, *group, *settings); !s.ok()) return SendError(res, s);
    } else if (req.method == "DELETE") {
      if (Status s = subs->Delete(*stream, *group); !s.ok()) return SendError(res, s);
      return SendJson(res, 200, Json{{"stream", *stream}, {"group", *group}, {"deleted", true}});
    }
    Result<PersistentGroupInfo> info = subs->GetInfo(*stream, *group);
    if (!info.ok()) return SendError(res, info.status());
    SendJson(res, req.method == "PUT" ? 201 : 200, GroupToJson(*info, /*with_connections=*/true));
  }

  // GET /stats: Store::Stats() as JSON, for the dashboard.
  void Stats(const Request& req, Response& res) {
    if (!Authorize(req, res, Permission::kOperate, "")) return;
    const StoreStats s = store_->Stats();
    Json out = Json::object();
    out["now"] = Now().ToRfc3339();
    out["appends"] = s.appends;
    out["append_errors"] = s.append_errors;
    out["conflicts"] = s.conflicts;
    out["events_written"] = s.events_written;
    out["bytes_written"] = s.bytes_written;
    out["commits"] = s.commits;
    out["fsyncs"] = s.fsyncs;
    out["fsync_seconds_sum"] = s.fsync_seconds.sum;
    out["reads"] = s.reads;
    out["total_events"] = s.total_events;
    out["streams"] = s.streams;
    out["disk_bytes"] = s.disk_bytes;
    out["head_position"] = s.head.value();
    size_t tails = 0;
    {
      std::lock_guard<std::mutex> lock(live_mu_);
      tails = live_.size();
    }
    out["live_tails"] = tails;
    const LiveSubscriptionCounts grpc = GrpcSubscriptions();
    out["grpc_subscriptions"] = grpc.streams + grpc.all;
    size_t groups = 0;
    if (options_.persistent != nullptr) {
      Result<std::vector<PersistentGroupInfo>> list = options_.persistent->List();
      if (list.ok()) groups = list->size();
    }
    out["persistent_groups"] = groups;
    size_t projections = 0;
    size_t failed = 0;
    for (const HostedProjectionStatus& p : Projections()) {
      ++projections;
      if (p.state == "failed") ++failed;
    }
    out["projections"] = projections;
    out["projections_failed"] = failed;
    SendJson(res, 200, out);
  }

  void Metrics(const Request& req, Response& res) {
    if (!Authorize(req, res, Permission::kMetrics, "")) return;
    PrometheusText p;
    const StoreStats s = store_->Stats();
    p.Family("cairn_head_position", "gauge", "The position after the last acknowledged event (opaque, increasing).");
    p.Sample("cairn_head_position", s.head.value());
    p.Family("cairn_appends_total", "counter", "Acknowledged appends since the store was opened.");
    p.Sample("cairn_appends_total", s.appends);
    p.Family("cairn_append_errors_total", "counter", "Appends answered with an error (conflicts among them).");
    p.Sample("cairn_append_errors_total", s.append_errors);
    p.Family("cairn_conflicts_total", "counter", "Appends refused for a wrong expected version.");
    p.Sample("cairn_conflicts_total", s.conflicts);
    p.Family("cairn_events_written_total", "counter", "Events made durable, system events included.");
    p.Sample("cairn_events_written_total", s.events_written);
    p.Family("cairn_bytes_written_total", "counter", "Log bytes written.");
    p.Sample("cairn_bytes_written_total", s.bytes_written);
    p.Family("cairn_commits_total", "counter", "Group commits (one write and, under sync=always, one fdatasync each).");
    p.Sample("cairn_commits_total", s.commits);
    p.Family("cairn_fsyncs_total", "counter", "fdatasync calls of the log.");
    p.Sample("cairn_fsyncs_total", s.fsyncs);
    p.Family("cairn_fsync_seconds", "histogram", "Time of one fdatasync of the log.");
    p.Histogram("cairn_fsync_seconds", s.fsync_seconds.bounds, s.fsync_seconds.counts, s.fsync_seconds.sum);
    p.Family("cairn_batch_events", "histogram", "Events per group commit.");
    p.Histogram("cairn_batch_events", s.batch_events.bounds, s.batch_events.counts, s.batch_events.sum);
    p.Family("cairn_reads_total", "counter", "Stream and $all reads (cursors opened) by every user of the store.");
    p.Sample("cairn_reads_total", s.reads);
    p.Family("cairn_events", "gauge", "Events in the log, system events included.");
    p.Sample("cairn_events", s.total_events);
    p.Family("cairn_streams", "gauge", "Streams ever written to, metastreams included.");
    p.Sample("cairn_streams", s.streams);
    p.Family("cairn_disk_bytes", "gauge", "Bytes of the store's files (log and index); 0 for a memory store.");
    p.Sample("cairn_disk_bytes", s.disk_bytes);
    p.Family("cairn_http_requests_total", "counter", "HTTP requests answered, by status class.");
    static constexpr std::string_view kClasses[] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    for (size_t i = 0; i < requests_by_class_.size(); ++i) {
      p.Sample("cairn_http_requests_total", requests_by_class_[i].load(), {{"code", std::string(kClasses[i])}});
    }
    p.Family("cairn_http_appends_total", "counter", "Appends through the HTTP API.");
    p.Sample("cairn_http_appends_total", appends_.load());
    p.Family("cairn_http_events_appended_total", "counter", "Events appended through the HTTP API.");
    p.Sample("cairn_http_events_appended_total", events_appended_.load());
    p.Family("cairn_http_bytes_appended_total", "counter", "Data and metadata bytes appended through the HTTP API.");
    p.Sample("cairn_http_bytes_appended_total", bytes_appended_.load());
    p.Family("cairn_http_reads_total", "counter", "Reads (pages) through the HTTP API.");
    p.Sample("cairn_http_reads_total", reads_.load());
    p.Family("cairn_http_events_read_total", "counter", "Events read through the HTTP API (pages, not live tails).");
    p.Sample("cairn_http_events_read_total", events_read_.load());
    std::vector<TailView> tails = Tails();
    const LiveSubscriptionCounts grpc = GrpcSubscriptions();
    p.Family("cairn_subscriptions", "gauge",
             "Live subscriptions running now: HTTP live tails, gRPC catch-up subscriptions to a stream and to $all.");
    p.Sample("cairn_subscriptions", static_cast<uint64_t>(tails.size()), {{"kind", "live-tail"}});
    p.Sample("cairn_subscriptions", grpc.streams, {{"kind", "grpc-stream"}});
    p.Sample("cairn_subscriptions", grpc.all, {{"kind", "grpc-all"}});
    if (!tails.empty()) {
      p.Family("cairn_subscription_events_delivered_total", "counter", "Events a subscription has delivered.");
      for (const TailView& t : tails) {
        p.Sample("cairn_subscription_events_delivered_total", t.delivered,
                 {{"id", std::to_string(t.id)}, {"stream", t.stream}});
      }
      p.Family("cairn_subscription_lag_seconds", "gauge",
               "Recorded-time distance from a subscription's last delivered event to the newest event (0 when caught up).");
      for (const TailView& t : tails) {
        p.Sample("cairn_subscription_lag_seconds", t.lag_seconds, {{"id", std::to_string(t.id)}, {"stream", t.stream}});
      }
    }
    SubscriptionMetrics(p);
    res.status = 200;
    res.set_content(p.text(), "text/plain; version=0.0.4; charset=utf-8");
  }

  // The consumer groups and the projections, one series per group or projection.
  void SubscriptionMetrics(PrometheusText& p) {
    std::vector<PersistentGroupInfo> groups;
    if (options_.persistent != nullptr) {
      Result<std::vector<PersistentGroupInfo>> list = options_.persistent->List();
      if (list.ok()) groups = std::move(list).value();
    }
    p.Family("cairn_persistent_subscription_groups", "gauge", "Persistent subscription (consumer) groups.");
    p.Sample("cairn_persistent_subscription_groups", static_cast<uint64_t>(groups.size()));
    if (!groups.empty()) {
      std::vector<GroupLag> lags;
      for (const PersistentGroupInfo& g : groups) lags.push_back(LagOf(g));
      auto labels = [](const PersistentGroupInfo& g) { return Labels{{"stream", g.source}, {"group", g.group}}; };
      p.Family("cairn_persistent_subscription_lag_events", "gauge",
               "Events of a group's source not yet read, or read and not yet acknowledged.");
      for (size_t i = 0; i < groups.size(); ++i) {
        p.Sample("cairn_persistent_subscription_lag_events", lags[i].events, labels(groups[i]));
      }
      p.Family("cairn_persistent_subscription_consumers", "gauge", "Consumers connected to a group.");
      for (const auto& g : groups) {
        p.Sample("cairn_persistent_subscription_consumers", static_cast<uint64_t>(g.connections.size()), labels(g));
      }
      p.Family("cairn_persistent_subscription_in_flight", "gauge", "Events handed to consumers, not yet acknowledged.");
      for (const auto& g : groups) p.Sample("cairn_persistent_subscription_in_flight", g.in_flight, labels(g));
      p.Family("cairn_persistent_subscription_parked_events", "gauge", "Events in a group's parked stream.");
      for (const auto& g : groups) p.Sample("cairn_persistent_subscription_parked_events", g.parked, labels(g));
      p.Family("cairn_persistent_subscription_checkpoint", "gauge",
               "A group's last written checkpoint (a stream version, or a $all position).");
      for (const auto& g : groups) {
        if (g.checkpoint) p.Sample("cairn_persistent_subscription_checkpoint", *g.checkpoint, labels(g));
      }
    }
    std::vector<HostedProjectionStatus> projections = Projections();
    p.Family("cairn_projections", "gauge", "Projections the server runs, by state.");
    for (const char* state : {"catching-up", "live", "failed", "stopped"}) {
      uint64_t n = 0;
      for (const auto& pr : projections) n += pr.state == state ? 1 : 0;
      p.Sample("cairn_projections", n, {{"state", state}});
    }
    if (!projections.empty()) {
      p.Family("cairn_projection_position", "gauge", "A projection's committed checkpoint ($all position).");
      for (const auto& pr : projections) {
        if (pr.status) p.Sample("cairn_projection_position", pr.status->checkpoint.value(), {{"name", pr.name}});
      }
      p.Family("cairn_projection_lag_events", "gauge",
               "Events a projection reads that were not applied at its last pass to the head.");
      for (const auto& pr : projections) {
        if (pr.status) p.Sample("cairn_projection_lag_events", pr.status->lag_events, {{"name", pr.name}});
      }
      p.Family("cairn_projection_events_handled_total", "counter", "Events a projection applied since its last rebuild.");
      for (const auto& pr : projections) {
        if (pr.status) p.Sample("cairn_projection_events_handled_total", pr.status->events_handled, {{"name", pr.name}});
      }
      p.Family("cairn_projection_failed", "gauge", "1 when a projection stopped on an error (see GET /subscriptions).");
      for (const auto& pr : projections) {
        p.Sample("cairn_projection_failed", static_cast<uint64_t>(pr.state == "failed" ? 1 : 0), {{"name", pr.name}});
      }
    }
  }

  void Static(const Request& req, Response& res) {
    if (!Authorize(req, res, Permission::kPublic, "")) return;
    std::string_view path = req.path;
    if (path == "/") path = "/index.html";
    for (const WebAsset& asset : WebAssets()) {
      if (asset.path == path) {
        res.status = 200;
        res.set_header("Cache-Control", "no-cache");
        res.set_content(std::string(asset.bytes), std::string(asset.content_type));
        return;
      }
    }
    SendError(res, Status::NotFound(fmt::format("no such endpoint or file: {}", path)), 404);
  }

  Store* store_;
  HttpOptions options_;
  std::unique_ptr<httplib::Server> server_holder_;  // an SSLServer with TLS
  httplib::Server& server_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::mutex shutdown_mu_;

  std::mutex live_mu_;
  std::list<std::shared_ptr<LiveTail>> live_;  // guarded by live_mu_
  std::atomic<size_t> live_count_{0};
  std::atomic<uint64_t> next_tail_id_{0};

  std::array<std::atomic<uint64_t>, 6> requests_by_class_{};
  std::atomic<uint64_t> appends_{0};
  std::atomic<uint64_t> events_appended_{0};
  std::atomic<uint64_t> bytes_appended_{0};
  std::atomic<uint64_t> reads_{0};
  std::atomic<uint64_t> events_read_{0};
};

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::Start(Store* store, const HttpOptions& options) {
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return Status::InvalidArgument("--tls-cert and --tls-key: give both (the certificate and its private key) or neither");
  }
  const bool tls_and_auth = !options.tls_cert_file.empty() && static_cast<bool>(options.authorizer);
  CAIRN_RETURN_IF_ERROR(CheckListenAddress(options.address, "--http", options.insecure, tls_and_auth));
  CAIRN_ASSIGN_OR_RETURN(HostPort address, ParseHostPort(options.address, "--http"));
  if (options.threads <= options.max_live_clients) {
    return Status::InvalidArgument(fmt::format("http threads: {} must be more than max live clients ({})",
                                               options.threads, options.max_live_clients));
  }
  auto server = std::make_unique<HttpServerImpl>(store, options);
  CAIRN_RETURN_IF_ERROR(server->Listen(address));
  return std::unique_ptr<HttpServer>(std::move(server));
}

}  // namespace cairn::server::http
