// See h2_client.h.
#include "server/h2_client.h"

#include <arpa/inet.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/grpcpp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "esdb/streams.pb.h"
#include "server/batch_append_wire.h"
#include "server/client_calls.h"
#include "server/protocol.h"
#include "server/server.h"
#include "util/thread_name.h"

namespace cairn::server {
namespace {

namespace pb = event_store::client::streams;
using google::protobuf::io::CodedInputStream;
using google::protobuf::internal::WireFormatLite;

// The bytes of a length-delimited field, without copying.
bool ReadBytes(CodedInputStream* in, std::string_view* out) {
  uint32_t len;
  if (!in->ReadVarint32(&len)) return false;
  const void* p;
  int avail;
  if (!in->GetDirectBufferPointer(&p, &avail) || static_cast<uint32_t>(avail) < len) {
    if (len == 0) {
      *out = {};
      return true;
    }
    return false;
  }
  *out = std::string_view(static_cast<const char*>(p), len);
  return in->Skip(static_cast<int>(len));
}

// Reads the fields of the message under the stream's current limit: `field(number, wire_type,
// in, known)` reads the ones it knows (returning false on bad bytes) and sets `known`; unknown
// ones are skipped. One CodedInputStream walks the whole answer; nested messages are limits on it.
template <typename F>
bool Fields(CodedInputStream* in, F field) {
  while (uint32_t tag = in->ReadTag()) {
    const int number = static_cast<int>(WireFormatLite::GetTagFieldNumber(tag));
    const auto type = WireFormatLite::GetTagWireType(tag);
    bool known = false;
    if (!field(number, type, in, &known)) return false;
    if (!known && !WireFormatLite::SkipField(in, tag)) return false;
  }
  return in->BytesUntilLimit() == 0;  // a tag of 0 or bytes missing before the limit: malformed
}

// A nested message: its length, then its fields within that length.
template <typename F>
bool Nested(WireFormatLite::WireType type, CodedInputStream* in, F field) {
  uint32_t len;
  if (type != WireFormatLite::WIRETYPE_LENGTH_DELIMITED || !in->ReadVarint32(&len)) return false;
  // Within the enclosing message (a limit past it would silently shrink to it).
  if (static_cast<int64_t>(len) > in->BytesUntilLimit()) return false;
  const auto limit = in->PushLimit(static_cast<int>(len));
  const bool ok = Fields(in, field);
  in->PopLimit(limit);
  return ok;
}

bool Sub(WireFormatLite::WireType type, CodedInputStream* in, std::string_view* out) {
  return type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED && ReadBytes(in, out);
}

bool Number(WireFormatLite::WireType type, CodedInputStream* in, uint64_t* out) {
  return type == WireFormatLite::WIRETYPE_VARINT && in->ReadVarint64(out);
}

using WireType = WireFormatLite::WireType;

bool DecodeRecorded(WireType type, CodedInputStream* in, RecordedEventView* out) {
  return Nested(type, in, [&](int n, WireType t, CodedInputStream* in, bool* known) {
    *known = true;
    uint64_t v;
    switch (n) {
      case 1: {  // id: structured { msb = 1, lsb = 2 } = 1, or string = 2
        uint64_t hi = 0, lo = 0;
        std::string_view text;
        bool structured = false, textual = false;
        const bool ok = Nested(t, in, [&](int n2, WireType t2, CodedInputStream* in, bool* k2) {
          *k2 = n2 == 1 || n2 == 2;
          if (n2 == 1) {
            structured = true;
            return Nested(t2, in, [&](int n3, WireType t3, CodedInputStream* in, bool* k3) {
              *k3 = n3 == 1 || n3 == 2;
              if (n3 == 1) return Number(t3, in, &hi);
              if (n3 == 2) return Number(t3, in, &lo);
              return true;
            });
          }
          if (n2 == 2) {
            textual = true;
            return Sub(t2, in, &text);
          }
          return true;
        });
        if (!ok) return false;
        if (structured) {
          for (int i = 0; i < 8; ++i) out->id.bytes[static_cast<size_t>(i)] = static_cast<uint8_t>(hi >> (56 - 8 * i));
          for (int i = 0; i < 8; ++i) out->id.bytes[static_cast<size_t>(8 + i)] = static_cast<uint8_t>(lo >> (56 - 8 * i));
        } else if (textual) {
          auto id = Uuid::Parse(text);
          if (!id) return false;
          out->id = *id;
        }
        return true;
      }
      case 2:  // stream_identifier { bytes stream_name = 3 }
        return Nested(t, in, [&](int n2, WireType t2, CodedInputStream* in, bool* k2) {
          *k2 = n2 == 3;
          return n2 == 3 ? Sub(t2, in, &out->stream) : true;
        });
      case 3:
        if (!Number(t, in, &v)) return false;
        out->version = v;
        return true;
      case 5:
        if (!Number(t, in, &v)) return false;
        out->position = Position(v);
        return true;
      case 6: {  // metadata entry { key = 1, value = 2 }
        std::string_view key, value;
        if (!Nested(t, in, [&](int n2, WireType t2, CodedInputStream* in, bool* k2) {
              *k2 = n2 == 1 || n2 == 2;
              if (n2 == 1) return Sub(t2, in, &key);
              if (n2 == 2) return Sub(t2, in, &value);
              return true;
            })) {
          return false;
        }
        if (key == "type") {
          out->type = value;
        } else if (key == "content-type") {
          out->content_type = value == kContentTypeJson ? ContentType::kJson : ContentType::kBytes;
        } else if (key == "created") {
          int64_t ticks = 0;
          std::from_chars(value.data(), value.data() + value.size(), ticks);
          out->recorded_at = Timestamp{ticks * 100};
        }
        return true;
      }
      case 7:
        return Sub(t, in, &out->metadata);
      case 8:
        return Sub(t, in, &out->data);
      default:
        *known = false;
        return true;
    }
  });
}

std::string PercentDecode(std::string_view v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '%' && i + 2 < v.size()) {
      int x = 0;
      if (std::from_chars(v.data() + i + 1, v.data() + i + 3, x, 16).ec == std::errc()) {
        out.push_back(static_cast<char>(x));
        i += 2;
        continue;
      }
    }
    out.push_back(v[i]);
  }
  return out;
}

struct Reader {
  const std::function<void(const RecordedEventView&)>* fn = nullptr;
  std::string carry;  // a message split across DATA frames
  Status problem;
  std::string http_status, grpc_status, grpc_message, exception;
  bool closed = false;
  std::string request;
  size_t request_at = 0;

  void Messages(std::string_view bytes) {
    while (problem.ok() && bytes.size() >= 5) {
      uint32_t be;
      std::memcpy(&be, bytes.data() + 1, 4);
      const size_t size = ntohl(be);
      if (bytes.size() - 5 < size) break;
      RecordedEventView view;
      auto event = DecodeReadEvent(bytes.substr(5, size), &view);
      if (!event.ok()) {
        problem = event.status();
      } else if (*event) {
        (*fn)(view);
      }
      bytes.remove_prefix(5 + size);
    }
    carry.assign(bytes);
  }
};

Status Unavailable(std::string_view address, std::string_view what) {
  return Status::Unavailable(fmt::format("read $all from {}: {}", address, what));
}

// A TCP connection to HOST:PORT with TCP_NODELAY (blocking); kUnavailable "<what> <address>: ..."
// when it cannot be made.
Result<int> Dial(std::string_view address, std::string_view what) {
  CAIRN_ASSIGN_OR_RETURN(HostPort hp, ParseHostPort(address, "server address"));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(hp.port);
  if (getaddrinfo(hp.host.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr) {
    return Status::Unavailable(fmt::format("{} {}: cannot resolve the host", what, address));
  }
  int fd = -1;
  for (addrinfo* a = res; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, 0);
    if (fd >= 0 && ::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      ::close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0) return Status::Unavailable(fmt::format("{} {}: cannot connect: {}", what, address, std::strerror(errno)));
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

}  // namespace

Result<bool> DecodeReadEvent(std::string_view message, RecordedEventView* out) {
  if (message.size() > INT32_MAX) return Status::Corruption("read $all: an answer is larger than a protobuf message can be");
  CodedInputStream in(reinterpret_cast<const uint8_t*>(message.data()), static_cast<int>(message.size()));
  in.PushLimit(static_cast<int>(message.size()));
  bool event = false;
  *out = RecordedEventView{};
  // ReadResp { ReadEvent event = 1 { RecordedEvent event = 1 } }; other answers have no event.
  const bool ok = Fields(&in, [&](int n, WireType t, CodedInputStream* in, bool* known) {
    *known = n == 1;
    if (n != 1) return true;
    event = true;
    return Nested(t, in, [&](int n2, WireType t2, CodedInputStream* in, bool* k2) {
      *k2 = n2 == 1;
      return n2 == 1 ? DecodeRecorded(t2, in, out) : true;
    });
  });
  if (!ok) return Status::Corruption("read $all: an answer is not a ReadResp message");
  return event;
}

Status ReadAllOverHttp2(std::string_view address, uint64_t max_count,
                        const std::function<void(const RecordedEventView&)>& fn) {
  CAIRN_ASSIGN_OR_RETURN(const int fd, Dial(address, "read $all from"));

  Reader reader;
  reader.fn = &fn;
  pb::ReadReq req;
  auto* o = req.mutable_options();
  o->mutable_all()->mutable_start();
  o->set_read_direction(pb::ReadReq::Options::Forwards);
  o->set_count(max_count);
  o->mutable_no_filter();
  o->mutable_uuid_option()->mutable_structured();
  const std::string body = req.SerializeAsString();
  reader.request.assign(5, '\0');
  const uint32_t be = htonl(static_cast<uint32_t>(body.size()));
  std::memcpy(reader.request.data() + 1, &be, 4);
  reader.request += body;

  nghttp2_session_callbacks* cbs;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
      cbs, [](nghttp2_session*, uint8_t, int32_t, const uint8_t* data, size_t len, void* user) -> int {
        auto* r = static_cast<Reader*>(user);
        std::string_view bytes(reinterpret_cast<const char*>(data), len);
        if (r->carry.empty()) {
          r->Messages(bytes);
        } else {
          std::string joined = std::move(r->carry);
          joined.append(bytes);
          r->Messages(joined);
        }
        return 0;
      });
  nghttp2_session_callbacks_set_on_header_callback(
      cbs, [](nghttp2_session*, const nghttp2_frame*, const uint8_t* name, size_t namelen, const uint8_t* value,
              size_t valuelen, uint8_t, void* user) -> int {
        auto* r = static_cast<Reader*>(user);
        std::string_view k(reinterpret_cast<const char*>(name), namelen);
        std::string v(reinterpret_cast<const char*>(value), valuelen);
        if (k == ":status") r->http_status = v;
        if (k == "grpc-status") r->grpc_status = v;
        if (k == "grpc-message") r->grpc_message = PercentDecode(v);
        if (k == "exception") r->exception = v;
        return 0;
      });
  nghttp2_session_callbacks_set_on_stream_close_callback(
      cbs, [](nghttp2_session*, int32_t, uint32_t, void* user) -> int {
        static_cast<Reader*>(user)->closed = true;
        return 0;
      });
  nghttp2_session* s;
  nghttp2_session_client_new(&s, cbs, &reader);
  nghttp2_session_callbacks_del(cbs);
  const nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 8 << 20},
                                       {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, 1 << 20}};
  nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, iv, 2);
  nghttp2_session_set_local_window_size(s, NGHTTP2_FLAG_NONE, 0, 32 << 20);
  const std::string authority = std::string(address);
  auto nv = [](const char* name, const std::string& value) {
    return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name)),
                      reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), std::strlen(name), value.size(),
                      NGHTTP2_NV_FLAG_NONE};
  };
  static const std::string kPost = "POST", kScheme = "http", kPath = "/event_store.client.streams.Streams/Read",
                           kType = "application/grpc", kTe = "trailers";
  const nghttp2_nv headers[] = {nv(":method", kPost), nv(":scheme", kScheme), nv(":path", kPath),
                                nv(":authority", authority), nv("content-type", kType), nv("te", kTe)};
  nghttp2_data_provider prd{};
  prd.read_callback = [](nghttp2_session*, int32_t, uint8_t* out, size_t length, uint32_t* flags,
                         nghttp2_data_source*, void* user) -> ssize_t {
    auto* r = static_cast<Reader*>(user);
    const size_t take = std::min(length, r->request.size() - r->request_at);
    std::memcpy(out, r->request.data() + r->request_at, take);
    r->request_at += take;
    if (r->request_at == r->request.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(take);
  };
  Status status = Status::Ok();
  if (nghttp2_submit_request(s, nullptr, headers, sizeof headers / sizeof headers[0], &prd, &reader) < 0) {
    status = Status::Internal("read $all: cannot start the request");
  }
  std::string in(256 << 10, '\0');
  while (status.ok() && !reader.closed) {
    for (;;) {  // everything the session has to send (settings, window updates, the request)
      const uint8_t* p = nullptr;
      const ssize_t n = nghttp2_session_mem_send(s, &p);
      if (n <= 0) break;
      if (::send(fd, p, static_cast<size_t>(n), MSG_NOSIGNAL) != n) {
        status = Unavailable(address, "the connection failed while sending");
        break;
      }
    }
    if (!status.ok()) break;
    const ssize_t r = ::recv(fd, in.data(), in.size(), 0);
    if (r <= 0) {
      status = Unavailable(address, "the server closed the connection before the call ended");
      break;
    }
    if (nghttp2_session_mem_recv(s, reinterpret_cast<const uint8_t*>(in.data()), static_cast<size_t>(r)) < 0) {
      status = Unavailable(address, "the server's HTTP/2 frames are malformed");
    }
  }
  nghttp2_session_del(s);
  ::close(fd);
  if (!status.ok()) return status;
  if (!reader.problem.ok()) return reader.problem;
  if (reader.http_status != "200") return Unavailable(address, fmt::format("HTTP status {}", reader.http_status));
  int code = 2;  // UNKNOWN when the trailers are missing
  if (!reader.grpc_status.empty()) std::from_chars(reader.grpc_status.data(), reader.grpc_status.data() + reader.grpc_status.size(), code);
  if (code == 0) return Status::Ok();
  return FromGrpcCode(grpc::Status(static_cast<grpc::StatusCode>(code), reader.grpc_message), reader.exception, "read $all");
}

// ---------------------------------------------------------------------------------------------
// H2Appender

class Reactor;

namespace {

namespace pb_streams = event_store::client::streams;

// The reactor whose thread is running this code (a `done` calling AppendAsync needs no wake-up).
thread_local const Reactor* t_running_reactor = nullptr;

constexpr auto kCloseWait = std::chrono::seconds(2);     // the destructor's wait for answers
constexpr size_t kMaxAnswer = 64u << 20;                 // a larger gRPC message is malformed
constexpr size_t kSendChunk = 1u << 20;                  // gathered per send()

int64_t HighHalf(const Uuid& u) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | u.bytes[static_cast<size_t>(i)];
  return static_cast<int64_t>(v);
}

nghttp2_nv Header(std::string_view name, std::string_view value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
                    NGHTTP2_NV_FLAG_NONE};
}

}  // namespace

// One thread for every H2Appender of the process: a poll() loop over their sockets and an
// eventfd that appends from other threads ring. One thread rather than one per connection: the
// answers of one group commit reach many connections at once, and one wake-up then serves them
// all (docs/performance.md, the server's sixth run). Shared by the live appenders; the last one
// to go stops it.
class Reactor {
 public:
  static std::shared_ptr<Reactor> Get();
  Reactor();
  ~Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  bool OnThread() const { return t_running_reactor == this; }
  // Takes `loop` onto the thread (which connects it). `loop` stays valid until it is finished.
  void Add(H2Appender::Loop* loop);
  // The thread looks at every connection again soon (queued appends, a close).
  void Wake();

 private:
  void Run();

  const int wake_fd_;
  std::mutex mu_;  // guards what follows
  std::vector<H2Appender::Loop*> added_;
  bool wake_pending_ = false;
  bool stop_ = false;
  std::thread thread_;
};

class H2Appender::Loop {
 public:
  Loop(std::string address, std::string authorization, std::shared_ptr<Reactor> reactor)
      : address_(std::move(address)), authorization_(std::move(authorization)), reactor_(std::move(reactor)),
        id_high_(HighHalf(Uuid::V7())) {}

  ~Loop() {
    if (session_ != nullptr) nghttp2_session_del(session_);
    if (fd_ >= 0) ::close(fd_);
  }

  void Start() { reactor_->Add(this); }

  // Ends the call and waits until the reactor is done with this connection (see ~H2Appender).
  void Close() {
    {
      std::lock_guard lock(mu_);
      closing_ = true;
    }
    reactor_->Wake();
    std::unique_lock lock(mu_);
    finished_cv_.wait(lock, [&] { return finished_; });
  }

  void Append(std::string_view stream, ExpectedVersion expected, std::span<const EventData> events, Done done) {
    const uint64_t key = next_id_.fetch_add(1, std::memory_order_relaxed);
    const std::string body = EncodeBatchAppendReq(id_high_, static_cast<int64_t>(key), stream, expected, events);
    char prefix[5] = {0};  // gRPC's framing: not compressed, then the length, big-endian
    const uint32_t be = htonl(static_cast<uint32_t>(body.size()));
    std::memcpy(prefix + 1, &be, 4);
    bool wake = false;
    {
      std::unique_lock lock(mu_);
      if (failed_ || closing_) {
        const Status status = failed_ ? *failed_ : Status::Unavailable("the client is closing");
        lock.unlock();
        done(status.WithContext(fmt::format("append to {}", stream)));
        return;
      }
      waiting_.emplace(key, Waiting{std::string(stream), events.size(), std::move(done)});
      queued_.append(prefix, sizeof prefix);
      queued_.append(body);
      wake = !reactor_->OnThread();
    }
    if (wake) reactor_->Wake();
  }

  // --- On the reactor's thread from here on.

  // Connects and starts the call; false (every append failed) when it cannot.
  bool Begin() {
    if (Status s = Setup(); !s.ok()) {
      FailAll(s);
      return false;
    }
    return true;
  }

  int fd() const { return fd_; }
  void Fail(const Status& status) { FailAll(status); }
  bool has_output() const { return !send_buf_.empty(); }

  // Hands the queued appends to nghttp2 and sends what it makes. False when the connection is over
  // (every append failed).
  bool Pump() {
    {
      std::lock_guard lock(mu_);
      if (out_.empty()) {
        out_.swap(queued_);
      } else {
        out_.append(queued_);
        queued_.clear();
      }
      closing_seen_ = closing_;
    }
    if (closing_seen_ && !close_by_) close_by_ = std::chrono::steady_clock::now() + kCloseWait;
    if (deferred_ && (out_at_ < out_.size() || closing_seen_)) {
      deferred_ = false;
      nghttp2_session_resume_data(session_, stream_id_);
    }
    if (!Flush()) {
      FailAll(Broken("the connection failed while sending"));
      return false;
    }
    if (stream_closed_) {
      FailAll(closing_seen_ ? Broken("the client closed") : Ended());
      return false;
    }
    if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) {
      FailAll(Broken(h2_error_.empty() ? "the server ended the connection"
                                       : "the server's HTTP/2 frames are malformed: " + h2_error_));
      return false;
    }
    if (close_by_ && std::chrono::steady_clock::now() >= *close_by_) {
      FailAll(Broken("the client closed before the answer"));
      return false;
    }
    return true;
  }

  // When the reactor must look at this connection again without news from it (a close's deadline).
  std::optional<std::chrono::steady_clock::time_point> deadline() const { return close_by_; }

  // The socket is readable: takes what came into `in` and runs the answers' callbacks. False when
  // the connection is over (every append failed).
  bool Read(std::string* in) {
    const ssize_t r = ::recv(fd_, in->data(), in->size(), 0);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return true;
    if (r <= 0) {
      FailAll(Broken(r == 0 ? "the server closed the connection" : fmt::format("the connection failed: {}", std::strerror(errno))));
      return false;
    }
    const ssize_t used = nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(in->data()), static_cast<size_t>(r));
    RunReady();  // the answers before any problem are the appends' own
    if (used < 0) {
      FailAll(Broken(fmt::format("the server's HTTP/2 frames are malformed ({})", nghttp2_strerror(static_cast<int>(used)))));
      return false;
    }
    if (!problem_.ok()) {
      FailAll(problem_);
      return false;
    }
    return true;
  }

  // The reactor is done with this connection: Close() may return, and the Loop may go.
  void Finish() {
    std::lock_guard lock(mu_);
    finished_ = true;
    finished_cv_.notify_all();  // under the lock: the waiter destroys this once it has it
  }

 private:
  struct Waiting {
    std::string stream;
    size_t events = 0;
    Done done;
  };

  Status Broken(std::string_view what) const {
    return Status::Unavailable(fmt::format("batch append to {}: {}", address_, what));
  }

  // Every append waiting, and every later one, gets `status` (each `done` once, here).
  void FailAll(const Status& status) {
    std::unordered_map<uint64_t, Waiting> failed;
    {
      std::lock_guard lock(mu_);
      if (!failed_) failed_ = status;
      failed.swap(waiting_);
      queued_.clear();
    }
    for (auto& [key, w] : failed) w.done(status.WithContext(fmt::format("append to {}", w.stream)));
  }

  void RunReady() {
    for (auto& [done, result] : ready_) done(std::move(result));
    ready_.clear();
  }

  Status Setup() {
    CAIRN_ASSIGN_OR_RETURN(fd_, Dial(address_, "batch append to"));
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
    nghttp2_session_callbacks* cbs;
    if (nghttp2_session_callbacks_new(&cbs) != 0) return Status::Internal("batch append: out of memory");
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cbs, [](nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len, void* user) -> int {
          auto* l = static_cast<Loop*>(user);
          if (id == l->stream_id_) l->Received(std::string_view(reinterpret_cast<const char*>(data), len));
          return 0;
        });
    nghttp2_session_callbacks_set_on_header_callback(
        cbs, [](nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                const uint8_t* value, size_t valuelen, uint8_t, void* user) -> int {
          auto* l = static_cast<Loop*>(user);
          if (frame->hd.stream_id != l->stream_id_) return 0;
          const std::string_view k(reinterpret_cast<const char*>(name), namelen);
          std::string v(reinterpret_cast<const char*>(value), valuelen);
          if (k == ":status") l->http_status_ = std::move(v);
          if (k == "grpc-status") l->grpc_status_ = std::move(v);
          if (k == "grpc-message") l->grpc_message_ = PercentDecode(v);
          if (k == "exception") l->exception_ = std::move(v);
          return 0;
        });
    nghttp2_session_callbacks_set_on_stream_close_callback(
        cbs, [](nghttp2_session*, int32_t id, uint32_t error_code, void* user) -> int {
          auto* l = static_cast<Loop*>(user);
          if (id == l->stream_id_) {
            l->stream_closed_ = true;
            l->stream_error_ = error_code;
          }
          return 0;
        });
    nghttp2_session_callbacks_set_error_callback2(
        cbs, [](nghttp2_session*, int, const char* msg, size_t len, void* user) -> int {
          static_cast<Loop*>(user)->h2_error_.assign(msg, len);
          return 0;
        });
    const int rv = nghttp2_session_client_new(&session_, cbs, this);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0) return Status::Internal("batch append: cannot make an HTTP/2 session");
    const nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                         {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 8 << 20}};
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, 2);
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, 32 << 20);
    std::vector<nghttp2_nv> headers = {Header(":method", "POST"),
                                       Header(":scheme", "http"),
                                       Header(":path", "/event_store.client.streams.Streams/BatchAppend"),
                                       Header(":authority", address_),
                                       Header("content-type", "application/grpc"),
                                       Header("te", "trailers")};
    if (!authorization_.empty()) headers.push_back(Header("authorization", authorization_));
    nghttp2_data_provider provider{};
    provider.read_callback = [](nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                                nghttp2_data_source*, void* user) -> ssize_t {
      return static_cast<Loop*>(user)->Provide(buf, length, flags);
    };
    stream_id_ = nghttp2_submit_request(session_, nullptr, headers.data(), headers.size(), &provider, this);
    if (stream_id_ < 0) return Status::Internal("batch append: cannot start the call");
    return Status::Ok();
  }

  // nghttp2 asks for the request's next bytes: what is queued, or deferred until more is.
  ssize_t Provide(uint8_t* buf, size_t length, uint32_t* flags) {
    const size_t avail = out_.size() - out_at_;
    if (avail == 0) {
      out_.clear();
      out_at_ = 0;
      if (closing_seen_) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        return 0;
      }
      deferred_ = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    const size_t take = std::min(length, avail);
    std::memcpy(buf, out_.data() + out_at_, take);
    out_at_ += take;
    return static_cast<ssize_t>(take);
  }

  // DATA of the call: gRPC messages, which may be split across frames or several to a frame.
  void Received(std::string_view data) {
    if (!problem_.ok()) return;
    std::string_view bytes = data;
    if (!carry_.empty()) {
      carry_.append(data);
      bytes = carry_;
    }
    size_t used = 0;
    while (bytes.size() - used >= 5) {
      if (bytes[used] != 0) {
        problem_ = Broken("the server sent a compressed answer, which was not asked for");
        return;
      }
      uint32_t be;
      std::memcpy(&be, bytes.data() + used + 1, 4);
      const size_t size = ntohl(be);
      if (size > kMaxAnswer) {
        problem_ = Broken(fmt::format("an answer of {} bytes is past the limit of {}", size, kMaxAnswer));
        return;
      }
      if (bytes.size() - used - 5 < size) break;
      const std::string_view answer = bytes.substr(used + 5, size);
      // The usual answer, a success, is read in place; anything else the generated way.
      const bool success = ReadBatchAppendSuccess(answer, &success_);
      if (!success && !resp_.ParseFromArray(answer.data(), static_cast<int>(answer.size()))) {
        problem_ = Broken("an answer is not a BatchAppendResp message");
        return;
      }
      used += 5 + size;
      const auto key = success ? success_.correlation_least
                               : static_cast<uint64_t>(resp_.correlation_id().structured().least_significant_bits());
      std::optional<Waiting> w;
      {
        std::lock_guard lock(mu_);
        auto it = waiting_.find(key);
        if (it != waiting_.end()) {
          w.emplace(std::move(it->second));
          waiting_.erase(it);
        }
      }
      if (w) {
        ready_.emplace_back(std::move(w->done), success ? BatchAppendResult(success_, w->events)
                                                        : BatchAppendResult(resp_, w->stream, w->events));
      }
    }
    if (bytes.data() == carry_.data()) {
      carry_.erase(0, used);
    } else {
      carry_.assign(bytes.substr(used));
    }
  }

  // How the call ended, for the appends it leaves unanswered.
  Status Ended() const {
    if (!http_status_.empty() && http_status_ != "200") return Broken(fmt::format("HTTP status {}", http_status_));
    int code = 0;
    if (!grpc_status_.empty()) std::from_chars(grpc_status_.data(), grpc_status_.data() + grpc_status_.size(), code);
    // As the gRPC-library client (client.cc): an append still waiting has an unknown outcome,
    // kUnavailable, unless the server refused the caller (credentials, permissions).
    if (code == grpc::StatusCode::UNAUTHENTICATED || code == grpc::StatusCode::PERMISSION_DENIED) {
      return FromGrpcCode(grpc::Status(static_cast<grpc::StatusCode>(code), grpc_message_), exception_, "batch append");
    }
    if (code != 0) {
      return Broken(fmt::format("the call ended before the answer: {} (gRPC code {}{})", grpc_message_, code,
                                exception_.empty() ? "" : ", exception " + exception_));
    }
    if (stream_error_ != 0) {
      return Broken(fmt::format("the server reset the call (HTTP/2 error {})", nghttp2_http2_strerror(stream_error_)));
    }
    return Broken("the server ended the call before the answer");
  }

  // What nghttp2 has to send, gathered and written with as few send() calls as the socket takes.
  bool Flush() {
    while (send_buf_.size() - send_at_ < kSendChunk) {
      const uint8_t* p = nullptr;
      const ssize_t n = nghttp2_session_mem_send(session_, &p);
      if (n < 0) return false;
      if (n == 0) break;
      send_buf_.append(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
    }
    while (send_at_ < send_buf_.size()) {
      const ssize_t n = ::send(fd_, send_buf_.data() + send_at_, send_buf_.size() - send_at_, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        return false;
      }
      send_at_ += static_cast<size_t>(n);
    }
    if (send_at_ == send_buf_.size()) {
      send_buf_.clear();
      send_at_ = 0;
    }
    return true;
  }

  const std::string address_;
  const std::string authorization_;
  const std::shared_ptr<Reactor> reactor_;
  const int64_t id_high_;      // the correlation ids' high half; the low half counts
  std::atomic<uint64_t> next_id_{1};

  std::mutex mu_;  // guards what follows, up to the loop's own
  std::string queued_;  // gRPC-framed requests the loop has not taken yet
  std::unordered_map<uint64_t, Waiting> waiting_;  // by correlation id (low half)
  std::optional<Status> failed_;  // the call is over: every later append gets this
  bool closing_ = false;
  bool finished_ = false;  // the reactor is done with this connection
  std::condition_variable finished_cv_;

  // The loop thread's own.
  int fd_ = -1;
  nghttp2_session* session_ = nullptr;
  int32_t stream_id_ = -1;
  std::string out_;  // requests taken from queued_, handed to nghttp2 from out_at_ on
  size_t out_at_ = 0;
  bool deferred_ = false;      // the data provider is waiting for bytes
  bool closing_seen_ = false;  // closing_ as the loop last saw it: the request ends when out_ is sent
  std::optional<std::chrono::steady_clock::time_point> close_by_;  // closing: the answers' deadline
  std::string send_buf_;       // frames nghttp2 made, not yet taken by the socket
  size_t send_at_ = 0;
  std::string carry_;          // the start of an answer whose rest is in a later DATA frame
  pb_streams::BatchAppendResp resp_;
  BatchAppendSuccessView success_;  // the last answer, when ReadBatchAppendSuccess read it
  std::vector<std::pair<Done, Result<AppendResult>>> ready_;  // answers to run after the frames
  Status problem_;
  std::string http_status_, grpc_status_, grpc_message_, exception_;
  bool stream_closed_ = false;
  uint32_t stream_error_ = 0;
  std::string h2_error_;  // nghttp2's word on the last protocol error it saw
};

Result<std::unique_ptr<H2Appender>> H2Appender::Start(std::string_view address, std::string authorization) {
  CAIRN_RETURN_IF_ERROR(ParseHostPort(address, "server address").status());
  auto loop = std::make_unique<Loop>(std::string(address), std::move(authorization), Reactor::Get());
  loop->Start();
  return std::unique_ptr<H2Appender>(new H2Appender(std::move(loop)));
}

namespace {

std::mutex g_reactor_mu;
std::weak_ptr<Reactor> g_reactor;  // the live appenders' reactor, if any

}  // namespace

std::shared_ptr<Reactor> Reactor::Get() {
  std::lock_guard lock(g_reactor_mu);
  auto r = g_reactor.lock();
  if (!r) {
    r = std::make_shared<Reactor>();
    g_reactor = r;
  }
  return r;
}

Reactor::Reactor() : wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  thread_ = std::thread([this] {
    util::NameThisThread("cairn-h2-client");
    Run();
  });
}

Reactor::~Reactor() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(wake_fd_, &one, sizeof one);
  thread_.join();
  ::close(wake_fd_);
}

void Reactor::Add(H2Appender::Loop* loop) {
  {
    std::lock_guard lock(mu_);
    added_.push_back(loop);
  }
  Wake();
}

void Reactor::Wake() {
  {
    std::lock_guard lock(mu_);
    if (wake_pending_) return;
    wake_pending_ = true;
  }
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

void Reactor::Run() {
  t_running_reactor = this;
  std::vector<H2Appender::Loop*> loops, added;
  std::vector<pollfd> fds;
  std::string in(256 << 10, '\0');
  for (;;) {
    {
      std::lock_guard lock(mu_);
      // Every loop stops only once its appender is gone, and the last appender's going stops the
      // reactor: nothing is left by then.
      if (stop_) break;
      added.swap(added_);
      wake_pending_ = false;
    }
    for (H2Appender::Loop* l : added) {
      if (l->Begin()) {
        loops.push_back(l);
      } else {
        l->Finish();
      }
    }
    added.clear();
    // Every connection hands its queued appends to nghttp2 and sends (one send() each).
    std::optional<std::chrono::steady_clock::time_point> next_deadline;
    std::erase_if(loops, [&](H2Appender::Loop* l) {
      if (!l->Pump()) {
        l->Finish();
        return true;
      }
      if (auto d = l->deadline(); d && (!next_deadline || *d < *next_deadline)) next_deadline = d;
      return false;
    });
    int timeout = -1;
    if (next_deadline) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*next_deadline - std::chrono::steady_clock::now());
      timeout = static_cast<int>(std::max<int64_t>(0, left.count())) + 1;
    }
    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    for (H2Appender::Loop* l : loops) fds.push_back({l->fd(), static_cast<short>(POLLIN | (l->has_output() ? POLLOUT : 0)), 0});
    if (::poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) {
      const Status status = Status::Unavailable(fmt::format("batch append: poll: {}", std::strerror(errno)));
      for (H2Appender::Loop* l : loops) {
        l->Fail(status);
        l->Finish();
      }
      loops.clear();
      continue;
    }
    if (fds[0].revents & POLLIN) {
      uint64_t count;
      [[maybe_unused]] const ssize_t n = ::read(wake_fd_, &count, sizeof count);
    }
    // Readable connections: their answers' callbacks run here, and the appends they make are
    // sent by the Pump at the top of the next turn, together.
    size_t k = 1;
    std::erase_if(loops, [&](H2Appender::Loop* l) {
      const pollfd& p = fds[k++];
      if ((p.revents & (POLLIN | POLLHUP | POLLERR)) && !l->Read(&in)) {
        l->Finish();
        return true;
      }
      return false;
    });
  }
}

H2Appender::H2Appender(std::unique_ptr<Loop> loop) : loop_(std::move(loop)) {}

H2Appender::~H2Appender() { loop_->Close(); }

void H2Appender::AppendAsync(std::string_view stream, ExpectedVersion expected, std::span<const EventData> events,
                             Done done) {
  loop_->Append(stream, expected, events, std::move(done));
}

}  // namespace cairn::server
