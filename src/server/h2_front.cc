// The HTTP/2 front: see h2_front.h. Everything below runs on the front's one thread unless a
// comment says otherwise; the gRPC backend's callbacks come on gRPC's threads and reach the front
// through Post().
#include "server/h2_front.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <google/protobuf/io/coded_stream.h>
#include <grpcpp/generic/generic_stub.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "server/batch_append_session.h"
#include "server/protocol.h"
#include "server/server.h"
#include "util/thread_name.h"
#include "esdb/streams.pb.h"

namespace cairn::server {
namespace {

namespace pb = event_store::client::streams;
using google::protobuf::io::CodedOutputStream;

constexpr std::string_view kReadPath = "/event_store.client.streams.Streams/Read";
constexpr std::string_view kBatchAppendPath = "/event_store.client.streams.Streams/BatchAppend";
// A call's answers waiting for the client beyond this stop taking more from the backend until
// they drain below the low mark: a client that never reads holds at most this much.
constexpr size_t kHighWater = 1 << 20;
constexpr size_t kLowWater = 256 << 10;
// A native read encodes this much ahead of what HTTP/2 asks for, so that one cursor step serves
// several DATA frames.
constexpr size_t kNativeChunk = 64 << 10;
// The HTTP/2 settings the front announces.
constexpr uint32_t kMaxConcurrentStreams = 1000;
constexpr int32_t kStreamWindow = 4 << 20;
constexpr int32_t kConnectionWindow = 16 << 20;
constexpr uint32_t kMaxFrameSize = 1 << 16;
constexpr uint32_t kMaxHeaderListSize = 64 << 10;

int GrpcCode(const grpc::Status& s) { return static_cast<int>(s.error_code()); }

// grpc-message: percent-encoded outside printable ASCII, as the gRPC wire spec asks.
std::string PercentEncode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

std::string Base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

// grpc-timeout: up to 8 digits and a unit (H M S m u n). nullopt when malformed.
std::optional<std::chrono::nanoseconds> ParseTimeout(std::string_view v) {
  if (v.size() < 2 || v.size() > 9) return std::nullopt;
  int64_t n = 0;
  for (char c : v.substr(0, v.size() - 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  switch (v.back()) {
    case 'H': return std::chrono::hours(n);
    case 'M': return std::chrono::minutes(n);
    case 'S': return std::chrono::seconds(n);
    case 'm': return std::chrono::milliseconds(n);
    case 'u': return std::chrono::microseconds(n);
    case 'n': return std::chrono::nanoseconds(n);
    default: return std::nullopt;
  }
}

// gRPC's form of a peer address: "ipv4:127.0.0.1:50000", "ipv6:[::1]:50000".
std::string PeerText(const sockaddr_storage& a) {
  char host[INET6_ADDRSTRLEN] = {};
  if (a.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    return fmt::format("ipv6:[{}]:{}", host, ntohs(in6->sin6_port));
  }
  const auto* in4 = reinterpret_cast<const sockaddr_in*>(&a);
  inet_ntop(AF_INET, &in4->sin_addr, host, sizeof host);
  return fmt::format("ipv4:{}:{}", host, ntohs(in4->sin_port));
}

void AppendFrameHeader(std::string* out, size_t size) {
  char h[5];
  h[0] = 0;
  const uint32_t be = htonl(static_cast<uint32_t>(size));
  std::memcpy(h + 1, &be, 4);
  out->append(h, 5);
}

// ---- The event answer, encoded straight from the store's view ----
//
// The bytes of ReadResp{event: ReadEvent{event: RecordedEvent{...}, commit_position}} with the
// fields and numbers of proto/esdb/streams.proto, as ReadMessages in streams_service.cc fills them
// (h2_front_test.cc parses both and compares). Zero-valued numbers are written too: parsers accept
// them and the message reads the same.
class EventEncoder {
 public:
  explicit EventEncoder(bool structured_ids) : structured_ids_(structured_ids) {}

  // Appends one gRPC-framed message.
  void Append(const RecordedEventView& e, std::string* out) {
    const uint64_t pos = e.position.value();
    char created[24];
    const size_t created_size =
        static_cast<size_t>(fmt::format_to_n(created, sizeof(created), "{}", TicksSinceEpoch(e.recorded_at)).out - created);
    const std::string_view content_type = e.content_type == ContentType::kJson ? kContentTypeJson : kContentTypeBytes;
    std::string id_text;
    size_t id_size;
    if (structured_ids_) {
      const auto [hi, lo] = IdHalves(e.id);
      id_size = Tagged(1, 1 + Varint(hi) + 1 + Varint(lo));
    } else {
      id_text = e.id.ToString();
      id_size = Tagged(2, id_text.size());
    }
    const size_t stream_id_size = Tagged(3, e.stream.size());
    const size_t md_type = Tagged(1, 4) + Tagged(2, e.type.size());
    const size_t md_ct = Tagged(1, 12) + Tagged(2, content_type.size());
    const size_t md_created = Tagged(1, 7) + Tagged(2, created_size);
    const size_t rec_size = Tagged(1, id_size) + Tagged(1, stream_id_size) + 1 + Varint(e.version) + 1 + Varint(pos) +
                            1 + Varint(pos) + Tagged(1, md_type) + Tagged(1, md_ct) + Tagged(1, md_created) +
                            Tagged(1, e.metadata.size()) + Tagged(1, e.data.size());
    const size_t read_event_size = Tagged(1, rec_size) + 1 + Varint(pos);
    const size_t total = Tagged(1, read_event_size);

    AppendFrameHeader(out, total);
    const size_t at = out->size();
    out->resize(at + total);
    uint8_t* p = reinterpret_cast<uint8_t*>(out->data() + at);
    p = Head(p, 1, read_event_size);       // ReadResp.event
    p = Head(p, 1, rec_size);              // ReadEvent.event
    p = Head(p, 1, id_size);               // RecordedEvent.id
    if (structured_ids_) {
      const auto [hi, lo] = IdHalves(e.id);
      p = Head(p, 1, 1 + Varint(hi) + 1 + Varint(lo));
      p = Number(p, 1, hi);
      p = Number(p, 2, lo);
    } else {
      p = Bytes(p, 2, id_text);
    }
    p = Head(p, 2, stream_id_size);        // RecordedEvent.stream_identifier
    p = Bytes(p, 3, e.stream);
    p = Number(p, 3, e.version);           // stream_revision
    p = Number(p, 4, pos);                 // prepare_position
    p = Number(p, 5, pos);                 // commit_position
    p = Entry(p, "type", e.type);          // metadata (map entries: key 1, value 2)
    p = Entry(p, "content-type", content_type);
    p = Entry(p, "created", std::string_view(created, created_size));
    p = Bytes(p, 7, e.metadata);           // custom_metadata
    p = Bytes(p, 8, e.data);               // data
    p = Number(p, 3, pos);                 // ReadEvent.commit_position
    (void)p;
  }

 private:
  static std::pair<uint64_t, uint64_t> IdHalves(const Uuid& id) {
    uint64_t hi = 0, lo = 0;
    for (int i = 0; i < 8; ++i) hi = hi << 8 | id.bytes[static_cast<size_t>(i)];
    for (int i = 8; i < 16; ++i) lo = lo << 8 | id.bytes[static_cast<size_t>(i)];
    return {hi, lo};
  }
  static size_t Varint(uint64_t v) { return CodedOutputStream::VarintSize64(v); }
  // A length-delimited field of `size` bytes, with its tag (field numbers below 16: one byte).
  static size_t Tagged(int, size_t size) { return 1 + Varint(size) + size; }
  static uint8_t* Head(uint8_t* p, int field, size_t size) {
    p = CodedOutputStream::WriteTagToArray(static_cast<uint32_t>(field << 3 | 2), p);
    return CodedOutputStream::WriteVarint64ToArray(size, p);
  }
  static uint8_t* Bytes(uint8_t* p, int field, std::string_view v) {
    p = Head(p, field, v.size());
    std::memcpy(p, v.data(), v.size());
    return p + v.size();
  }
  static uint8_t* Number(uint8_t* p, int field, uint64_t v) {
    p = CodedOutputStream::WriteTagToArray(static_cast<uint32_t>(field << 3), p);
    return CodedOutputStream::WriteVarint64ToArray(v, p);
  }
  static uint8_t* Entry(uint8_t* p, std::string_view key, std::string_view value) {
    p = Head(p, 6, Tagged(1, key.size()) + Tagged(2, value.size()));
    p = Bytes(p, 1, key);
    return Bytes(p, 2, value);
  }

  bool structured_ids_;
};

// A plain read served on the front's thread: the cursor's events, at most `count`.
class NativeRead {
 public:
  NativeRead(EventCursor cursor, uint64_t count, bool structured_ids, std::string what)
      : cursor_(std::move(cursor)), remaining_(count), encoder_(structured_ids), what_(std::move(what)) {}

  // Appends framed answers until about `budget` bytes; true when the read has ended (trailers()
  // then says how).
  bool Fill(std::string* out, size_t budget) {
    const size_t start = out->size();
    while (remaining_ > 0 && out->size() - start < budget) {
      if (!cursor_.Next()) {
        remaining_ = 0;
        break;
      }
      encoder_.Append(cursor_.event(), out);
      --remaining_;
    }
    return remaining_ == 0;
  }
  Trailers trailers() {
    Trailers t;
    const grpc::Status s = ToGrpcStatus(cursor_.status(), &t, what_);
    t.insert(t.begin(), {"grpc-status", std::to_string(GrpcCode(s))});
    if (!s.ok()) t.insert(t.begin() + 1, {"grpc-message", PercentEncode(s.error_message())});
    return t;
  }

 private:
  EventCursor cursor_;
  uint64_t remaining_;
  EventEncoder encoder_;
  std::string what_;
};

class FrontImpl;

// A call passed on to the gRPC services: its request messages go in through an in-process
// generic call, the answers and the final status come back to the front. Lives until both gRPC
// (OnDone) and the front have let go of it.
class Proxy final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  using Deliver = std::function<void(std::shared_ptr<Proxy>, std::string framed)>;
  // Receives the proxy's last reference from gRPC: the proxy must not be destroyed on one of
  // gRPC's threads (its ClientContext may hold the channel's last reference, and libgrpc++ 1.51
  // frees its callback queue twice when a channel goes on a callback thread: see client.cc).
  using Done = std::function<void(Trailers, std::shared_ptr<Proxy>)>;
  using Consumed = std::function<void(size_t)>;

  static std::shared_ptr<Proxy> Start(grpc::GenericStub* stub, const std::string& path,
                                      const std::vector<std::pair<std::string, std::string>>& metadata,
                                      std::optional<std::chrono::nanoseconds> timeout, Deliver deliver, Consumed consumed,
                                      Done done) {
    std::shared_ptr<Proxy> p(new Proxy(std::move(deliver), std::move(consumed), std::move(done)));
    p->self_ = p;
    for (const auto& [k, v] : metadata) p->ctx_.AddMetadata(k, v);
    if (timeout) p->ctx_.set_deadline(std::chrono::system_clock::now() + *timeout);
    stub->PrepareBidiStreamingCall(&p->ctx_, path, grpc::StubOptions(), p.get());
    p->AddHold();  // released once the front starts no more writes (Pump)
    p->StartRead(&p->resp_);
    p->StartCall();
    return p;
  }

  // Front's thread. A request message (without its 5-byte prefix).
  void Send(std::string message) {
    {
      std::lock_guard lock(mu_);
      if (stop_writes_) return;
      pending_.emplace_back(std::move(message));
    }
    Pump();
  }
  // Front's thread. The request side has ended.
  void EndRequests() {
    {
      std::lock_guard lock(mu_);
      end_requested_ = true;
    }
    Pump();
  }
  // Front's thread. The client went away.
  void Cancel() {
    ctx_.TryCancel();
    {
      std::lock_guard lock(mu_);
      stop_writes_ = true;
      pending_.clear();
    }
    Pump();
  }
  // Front's thread: takes the next answer (after a delivered one; see OnReadDone).
  void ReadNext() {
    StartRead(&resp_);
    RemoveHold();
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      {
        std::lock_guard lock(mu_);
        stop_writes_ = true;  // the call is over: writes would fail
        pending_.clear();
      }
      Pump();
      return;
    }
    std::string framed;
    std::vector<grpc::Slice> slices;
    (void)resp_.Dump(&slices);
    size_t size = 0;
    for (const auto& s : slices) size += s.size();
    framed.reserve(5 + size);
    AppendFrameHeader(&framed, size);
    for (const auto& s : slices) framed.append(reinterpret_cast<const char*>(s.begin()), s.size());
    AddHold();  // until the front asks for the next one (ReadNext)
    deliver_(self_, std::move(framed));
  }
  void OnWriteDone(bool ok) override {
    size_t n;
    {
      std::lock_guard lock(mu_);
      writing_ = false;
      n = 5 + current_size_;
      if (!ok) {
        stop_writes_ = true;
        pending_.clear();
      }
    }
    consumed_(n);
    Pump();
  }
  void OnWritesDoneDone(bool) override {
    {
      std::lock_guard lock(mu_);
      writing_ = false;
    }
    Pump();
  }
  void OnDone(const grpc::Status& status) override {
    Trailers t;
    t.emplace_back("grpc-status", std::to_string(GrpcCode(status)));
    if (!status.error_message().empty()) t.emplace_back("grpc-message", PercentEncode(status.error_message()));
    for (const auto& [k, v] : ctx_.GetServerTrailingMetadata()) {
      std::string key(k.data(), k.size());
      std::string value(v.data(), v.size());
      if (key.ends_with("-bin")) value = Base64(value);
      t.emplace_back(std::move(key), std::move(value));
    }
    done_(std::move(t), std::move(self_));
  }

 private:
  Proxy(Deliver deliver, Consumed consumed, Done done)
      : deliver_(std::move(deliver)), consumed_(std::move(consumed)), done_(std::move(done)) {}

  // Starts the next write, the end of writes, or lets go of the hold once nothing more will be
  // written. One thread at a time acts (writing_), outside the lock.
  void Pump() {
    enum { kNothing, kWrite, kWritesDone, kRelease } action = kNothing;
    {
      std::lock_guard lock(mu_);
      if (writing_ || released_) return;
      if (!pending_.empty() && !stop_writes_) {
        current_size_ = pending_.front().size();
        grpc::Slice slice(std::move(pending_.front()));
        current_ = grpc::ByteBuffer(&slice, 1);
        pending_.pop_front();
        writing_ = true;
        action = kWrite;
      } else if (end_requested_ && !writes_done_ && !stop_writes_) {
        writes_done_ = true;
        writing_ = true;
        action = kWritesDone;
      } else if (writes_done_ || stop_writes_) {
        released_ = true;
        action = kRelease;
      }
    }
    if (action == kWrite) StartWrite(&current_);
    if (action == kWritesDone) StartWritesDone();
    if (action == kRelease) RemoveHold();
  }

  grpc::ClientContext ctx_;
  grpc::ByteBuffer resp_;
  Deliver deliver_;
  Consumed consumed_;
  Done done_;
  std::shared_ptr<Proxy> self_;
  std::mutex mu_;
  std::deque<std::string> pending_;
  grpc::ByteBuffer current_;
  size_t current_size_ = 0;
  bool writing_ = false, end_requested_ = false, writes_done_ = false, stop_writes_ = false, released_ = false;
};

struct Conn;

// One HTTP/2 stream: a call.
struct Call {
  Conn* conn = nullptr;
  int32_t id = 0;
  std::string path;
  std::string method;
  std::string content_type;
  std::string authorization;
  std::vector<std::pair<std::string, std::string>> metadata;  // passed on to the backend
  std::optional<std::chrono::nanoseconds> timeout;
  bool bad_timeout = false;
  std::string in;                  // request bytes not yet a whole message
  std::vector<std::string> early;  // whole messages before the call was routed
  bool routed = false;
  bool request_ended = false;
  bool rejected = false;  // answered with an error; further request bytes are dropped
  // The answer.
  bool response_started = false;
  std::string out;  // framed answers not yet in a DATA frame
  size_t out_at = 0;
  bool deferred = false;
  bool finishing = false;  // the trailers are known; sent once `out` is empty
  Trailers trailers;
  bool closed = false;
  std::shared_ptr<Proxy> proxy;
  bool proxy_paused = false;  // holds an answer's ReadNext until `out` drains
  std::unique_ptr<NativeRead> native;
  // A BatchAppend served here: its session, and whether it reads no messages until read_next.
  std::shared_ptr<BatchAppendSession> batch;
  bool batch_paused = false;      // the session waits for a blocking append (or read its last message)
  bool batch_backlogged = false;  // answers the client has not taken are past kHighWater
  bool batch_counted = false;     // counted in batches_
  bool batch_reads_over = false;  // the server stops or the client left: later messages are dropped
  std::deque<std::string> batch_waiting;  // messages that came meanwhile (not yet consumed)
};

class FrontImpl;

// How an append's acknowledgement, on the store's thread, reaches the front's thread: null once
// the front's thread has ended (a late acknowledgement then goes nowhere).
struct FrontLink {
  std::mutex mu;
  FrontImpl* front = nullptr;
};

struct Conn {
  uint64_t id = 0;
  int fd = -1;
  nghttp2_session* session = nullptr;
  std::string out;
  size_t out_at = 0;
  bool epollout = false;
  std::string peer;  // the client's address, as gRPC writes it
  SSL* ssl = nullptr;  // with TLS; the handshake runs inside the first SSL_read
  bool want_write_to_read = false;  // TLS needs the socket writable to go on reading
  std::unordered_map<int32_t, std::shared_ptr<Call>> calls;
};

class FrontImpl final : public H2Front {
 public:
  explicit FrontImpl(H2FrontOptions options)
      : o_(std::move(options)), stub_(o_.backend), link_(std::make_shared<FrontLink>()) {
    link_->front = this;
  }
  ~FrontImpl() override {
    Stop();
    if (tls_ != nullptr) SSL_CTX_free(tls_);
  }

  Status Listen() {
    CAIRN_ASSIGN_OR_RETURN(HostPort hp, ParseHostPort(o_.address, "--grpc"));
    if (!o_.tls_cert_file.empty()) CAIRN_RETURN_IF_ERROR(LoadTls());
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    const std::string port = std::to_string(hp.port);
    if (getaddrinfo(hp.host.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr) {
      return Status::InvalidArgument(fmt::format("--grpc: cannot resolve \"{}\"", hp.host));
    }
    int fd = -1;
    for (addrinfo* a = res; a != nullptr && fd < 0; a = a->ai_next) {
      fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) continue;
      const int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, 1024) != 0) {
        ::close(fd);
        fd = -1;
        continue;
      }
      sockaddr_storage bound{};
      socklen_t len = sizeof bound;
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
      port_ = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                          : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    }
    freeaddrinfo(res);
    if (fd < 0) {
      return Status::Unavailable(
          fmt::format("grpc: cannot listen on {} (in use, or not an address of this machine)", o_.address));
    }
    listen_fd_ = fd;
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    wake_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    Watch(listen_fd_, kListenKey, EPOLLIN, EPOLL_CTL_ADD);
    Watch(wake_, kWakeKey, EPOLLIN, EPOLL_CTL_ADD);
    thread_ = std::thread([this] {
      util::NameThisThread("cairn-h2-front");
      Run();
    });
    return Status::Ok();
  }

  int port() const override { return port_; }

  // TLS 1.2 or later, HTTP/2 chosen by ALPN (gRPC clients insist on it).
  Status LoadTls() {
    tls_ = SSL_CTX_new(TLS_server_method());
    if (tls_ == nullptr) return Status::Internal("TLS: cannot create a context");
    SSL_CTX_set_min_proto_version(tls_, TLS1_2_VERSION);
    SSL_CTX_set_mode(tls_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate_chain_file(tls_, o_.tls_cert_file.c_str()) != 1) {
      return Status::InvalidArgument(fmt::format("--tls-cert {}: not a PEM certificate (chain) that can be read: {}",
                                                 o_.tls_cert_file, TlsError()));
    }
    if (SSL_CTX_use_PrivateKey_file(tls_, o_.tls_key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(tls_) != 1) {
      return Status::InvalidArgument(fmt::format("--tls-key {}: not the PEM private key of --tls-cert: {}",
                                                 o_.tls_key_file, TlsError()));
    }
    SSL_CTX_set_alpn_select_cb(
        tls_,
        [](SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
           void*) -> int {
          static const unsigned char kH2[] = {2, 'h', '2'};
          unsigned char* chosen = nullptr;
          if (SSL_select_next_proto(&chosen, outlen, kH2, sizeof kH2, in, inlen) != OPENSSL_NPN_NEGOTIATED) {
            return SSL_TLSEXT_ERR_ALERT_FATAL;
          }
          *out = chosen;
          return SSL_TLSEXT_ERR_OK;
        },
        nullptr);
    return Status::Ok();
  }

  static std::string TlsError() {
    const unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) return "unknown error";
    char text[256];
    ERR_error_string_n(e, text, sizeof text);
    return text;
  }

  void StopAccepting() override {
    refusing_.store(true);
    Post([this] {
      if (listen_fd_ >= 0) {
        ::epoll_ctl(epoll_, EPOLL_CTL_DEL, listen_fd_, nullptr);
        ::close(listen_fd_);
        listen_fd_ = -1;
      }
      // BatchAppend calls served here take no more appends; each ends once the appends it
      // took are acknowledged and answered.
      for (auto& [conn_id, c] : conns_) {
        for (auto& [stream_id, call] : c->calls) {
          if (!call->batch || call->closed) continue;
          call->batch_reads_over = true;
          call->batch->EndReads(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down"));
          PumpBatch(call.get());
          dirty_.push_back(conn_id);
        }
      }
    });
  }

  void Stop() override {
    std::lock_guard lock(stop_mu_);
    if (!thread_.joinable()) return;
    StopAccepting();
    // Answers of calls the backend has just ended may still be on their way here.
    WaitForPassedOn(std::chrono::steady_clock::now() + std::chrono::seconds(1));
    // GOAWAY: no new calls; those open finish (their answers and trailers are sent), then each
    // connection closes (Send); whatever is still open two seconds later is cut.
    Post([this] {
      stopping_ = true;
      for (auto& [id, c] : conns_) {
        nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->session),
                              NGHTTP2_NO_ERROR, nullptr, 0);
      }
    });
    thread_.join();
    {
      std::lock_guard lock(link_->mu);
      link_->front = nullptr;  // acknowledgements still on their way go nowhere
    }
    ::close(epoll_);
    ::close(wake_);
  }

  bool WaitForPassedOn(std::chrono::steady_clock::time_point deadline) override {
    while (proxies_.load() > 0 || batches_.load() > 0) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
  }

  // Any thread. Only the task that finds the queue empty wakes the front's thread (the answers of
  // one group commit to many connections are many tasks and one wake-up): the thread takes the
  // whole queue at once.
  void Post(std::function<void()> task) {
    bool first = false;
    {
      std::lock_guard lock(post_mu_);
      first = posted_.empty();
      posted_.push_back(std::move(task));
    }
    if (!first) return;
    const uint64_t one = 1;
    (void)!::write(wake_, &one, sizeof one);
  }

 private:
  static constexpr uint64_t kListenKey = 0, kWakeKey = 1;

  void Watch(int fd, uint64_t key, uint32_t events, int op) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = key;
    ::epoll_ctl(epoll_, op, fd, &ev);
  }

  void Run() {
    std::vector<epoll_event> events(256);
    std::string in(256 << 10, '\0');
    const auto stop_deadline_after = std::chrono::seconds(2);
    std::optional<std::chrono::steady_clock::time_point> stop_deadline;
    for (;;) {
      if (stopping_) {
        if (!stop_deadline) stop_deadline = std::chrono::steady_clock::now() + stop_deadline_after;
        if (conns_.empty() || std::chrono::steady_clock::now() > *stop_deadline) break;
      }
      const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), stopping_ ? 50 : -1);
      for (int i = 0; i < n; ++i) {
        const uint64_t key = events[static_cast<size_t>(i)].data.u64;
        if (key == kListenKey) {
          Accept();
        } else if (key == kWakeKey) {
          uint64_t v;
          (void)!::read(wake_, &v, sizeof v);
          RunPosted();
        } else if (auto it = conns_.find(key); it != conns_.end()) {
          Conn* c = it->second.get();
          if ((events[static_cast<size_t>(i)].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) ||
              (c->want_write_to_read && (events[static_cast<size_t>(i)].events & EPOLLOUT))) {
            if (!Receive(c, &in)) {
              Close(key);
              continue;
            }
          }
          dirty_.push_back(key);
        }
      }
      RunPosted();
      if (stopping_) {
        for (auto& [id, c] : conns_) dirty_.push_back(id);
      }
      FlushDirty();
    }
    std::vector<uint64_t> ids;
    for (auto& [id, c] : conns_) ids.push_back(id);
    for (uint64_t id : ids) Close(id);
    if (listen_fd_ >= 0) ::close(listen_fd_);
    listen_fd_ = -1;
  }

  void RunPosted() {
    std::vector<std::function<void()>> tasks;
    {
      std::lock_guard lock(post_mu_);
      tasks.swap(posted_);
    }
    for (auto& t : tasks) t();
  }

  void FlushDirty() {
    std::vector<uint64_t> ids;
    ids.swap(dirty_);
    for (uint64_t id : ids) {
      if (auto it = conns_.find(id); it != conns_.end()) {
        if (!Send(it->second.get())) Close(id);
      }
    }
  }

  void Accept() {
    for (;;) {
      sockaddr_storage from{};
      socklen_t from_len = sizeof from;
      const int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&from), &from_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto c = std::make_unique<Conn>();
      c->id = next_conn_++;
      c->fd = fd;
      c->peer = PeerText(from);
      if (tls_ != nullptr) {
        c->ssl = SSL_new(tls_);
        SSL_set_fd(c->ssl, fd);
        SSL_set_accept_state(c->ssl);
      }
      nghttp2_session_callbacks* cbs;
      nghttp2_session_callbacks_new(&cbs);
      nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &FrontImpl::OnBeginHeaders);
      nghttp2_session_callbacks_set_on_header_callback(cbs, &FrontImpl::OnHeader);
      nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &FrontImpl::OnFrame);
      nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &FrontImpl::OnData);
      nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &FrontImpl::OnStreamClose);
      nghttp2_option* opt;
      nghttp2_option_new(&opt);
      nghttp2_option_set_no_auto_window_update(opt, 1);
      nghttp2_option_set_max_send_header_block_length(opt, kMaxHeaderListSize);
      current_ = c.get();
      nghttp2_session_server_new2(&c->session, cbs, this, opt);
      nghttp2_option_del(opt);
      nghttp2_session_callbacks_del(cbs);
      const nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, kMaxConcurrentStreams},
                                           {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kStreamWindow},
                                           {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, kMaxFrameSize},
                                           {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, kMaxHeaderListSize}};
      nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]);
      nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
      Watch(fd, c->id, EPOLLIN, EPOLL_CTL_ADD);
      dirty_.push_back(c->id);
      conns_.emplace(c->id, std::move(c));
    }
  }

  // Reads what the socket has and feeds the session. False: close the connection.
  bool Receive(Conn* c, std::string* in) {
    current_ = c;
    if (c->ssl != nullptr) return ReceiveTls(c, in);
    for (int rounds = 0; rounds < 16; ++rounds) {
      const ssize_t r = ::recv(c->fd, in->data(), in->size(), 0);
      if (r == 0) return false;
      if (r < 0) return errno == EAGAIN || errno == EINTR;
      if (nghttp2_session_mem_recv(c->session, reinterpret_cast<const uint8_t*>(in->data()), static_cast<size_t>(r)) < 0) {
        return false;
      }
      if (static_cast<size_t>(r) < in->size()) break;
    }
    return true;
  }

  bool ReceiveTls(Conn* c, std::string* in) {
    c->want_write_to_read = false;
    for (int rounds = 0; rounds < 64; ++rounds) {
      ERR_clear_error();
      const int r = SSL_read(c->ssl, in->data(), static_cast<int>(in->size()));
      if (r > 0) {
        if (nghttp2_session_mem_recv(c->session, reinterpret_cast<const uint8_t*>(in->data()), static_cast<size_t>(r)) < 0) {
          return false;
        }
        continue;
      }
      switch (SSL_get_error(c->ssl, r)) {
        case SSL_ERROR_WANT_READ:
          return true;
        case SSL_ERROR_WANT_WRITE:
          c->want_write_to_read = true;
          return true;
        default:
          return false;  // closed, a failed handshake, or a broken record
      }
    }
    return true;
  }

  // Writes bytes to the socket (through TLS when on). >= 0: bytes taken; -1 would block; -2 failed.
  ssize_t Write(Conn* c, const char* data, size_t size) {
    if (c->ssl == nullptr) {
      const ssize_t w = ::send(c->fd, data, size, MSG_NOSIGNAL);
      if (w >= 0) return w;
      return errno == EAGAIN || errno == EINTR ? -1 : -2;
    }
    if (!SSL_is_init_finished(c->ssl)) return -1;  // HTTP/2 bytes wait for the handshake
    ERR_clear_error();
    const int w = SSL_write(c->ssl, data, static_cast<int>(std::min<size_t>(size, INT32_MAX)));
    if (w > 0) return w;
    const int e = SSL_get_error(c->ssl, w);
    return e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? -1 : -2;
  }

  // Writes what the session has. False: close the connection.
  bool Send(Conn* c) {
    current_ = c;
    for (;;) {
      while (c->out.size() - c->out_at < (256 << 10)) {
        const uint8_t* p = nullptr;
        const ssize_t n = nghttp2_session_mem_send(c->session, &p);
        if (n < 0) return false;
        if (n == 0) break;
        c->out.append(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
      }
      if (c->out_at == c->out.size()) break;
      const ssize_t w = Write(c, c->out.data() + c->out_at, c->out.size() - c->out_at);
      if (w < 0) {
        if (w == -2) return false;
        if (c->ssl != nullptr && !SSL_is_init_finished(c->ssl)) return true;  // the handshake's reads go on
        if (!c->epollout) {
          c->epollout = true;
          Watch(c->fd, c->id, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
        }
        return true;
      }
      c->out_at += static_cast<size_t>(w);
      if (c->out_at == c->out.size()) {
        c->out.clear();
        c->out_at = 0;
      }
    }
    if (c->epollout && !c->want_write_to_read) {
      c->epollout = false;
      Watch(c->fd, c->id, EPOLLIN, EPOLL_CTL_MOD);
    } else if (!c->epollout && c->want_write_to_read) {
      c->epollout = true;
      Watch(c->fd, c->id, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
    }
    return nghttp2_session_want_read(c->session) || nghttp2_session_want_write(c->session);
  }

  void Close(uint64_t id) {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    Conn* c = it->second.get();
    for (auto& [sid, call] : c->calls) Abandon(call.get());
    c->calls.clear();
    ::epoll_ctl(epoll_, EPOLL_CTL_DEL, c->fd, nullptr);
    if (c->ssl != nullptr) SSL_free(c->ssl);
    ::close(c->fd);
    nghttp2_session_del(c->session);
    conns_.erase(it);
  }

  // The client is gone: the backend's call is cancelled and anything held for it let go.
  void Abandon(Call* call) {
    call->closed = true;
    if (call->proxy) {
      call->proxy->Cancel();
      if (call->proxy_paused) {
        call->proxy_paused = false;
        call->proxy->ReadNext();
      }
    }
    call->native.reset();
    if (call->batch) {
      call->batch_reads_over = true;
      call->batch->EndReads();  // the appends it took still reach the store; their answers go nowhere
      ReleaseBatch(call);
    }
  }

  Call* Find(uint64_t conn_id, int32_t stream_id) {
    auto it = conns_.find(conn_id);
    if (it == conns_.end()) return nullptr;
    auto ct = it->second->calls.find(stream_id);
    return ct == it->second->calls.end() ? nullptr : ct->second.get();
  }

  // ---- nghttp2 callbacks (user_data is the front; current_ the connection being fed) ----

  static int OnBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto* self = static_cast<FrontImpl*>(user);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    auto call = std::make_shared<Call>();
    call->conn = self->current_;
    call->id = frame->hd.stream_id;
    call->metadata.emplace_back(kPeerMetadataKey, self->current_->peer);
    self->current_->calls.emplace(call->id, std::move(call));
    return 0;
  }

  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                      const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    auto* self = static_cast<FrontImpl*>(user);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    Call* call = self->Find(self->current_->id, frame->hd.stream_id);
    if (call == nullptr) return 0;
    std::string_view k(reinterpret_cast<const char*>(name), namelen);
    std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    if (k == ":path") {
      call->path.assign(v);
    } else if (k == ":method") {
      call->method.assign(v);
    } else if (k == "content-type") {
      call->content_type.assign(v);
    } else if (k == "grpc-timeout") {
      call->timeout = ParseTimeout(v);
      call->bad_timeout = !call->timeout;
    } else if (k.starts_with(":") || k.starts_with("grpc-") || k == "te" || k == "user-agent" || k == "host" ||
               k.ends_with("-bin") || k == kPeerMetadataKey) {
      // The transport's own headers; not metadata.
    } else {
      if (k == "authorization") call->authorization.assign(v);
      call->metadata.emplace_back(std::string(k), std::string(v));
    }
    return 0;
  }

  static int OnFrame(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto* self = static_cast<FrontImpl*>(user);
    Call* call = self->Find(self->current_->id, frame->hd.stream_id);
    if (call == nullptr) return 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) self->Begin(call);
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
      self->EndOfRequest(call);
    }
    return 0;
  }

  static int OnData(nghttp2_session* s, uint8_t, int32_t stream_id, const uint8_t* data, size_t len, void* user) {
    auto* self = static_cast<FrontImpl*>(user);
    Call* call = self->Find(self->current_->id, stream_id);
    if (call == nullptr || call->rejected) {
      nghttp2_session_consume(s, stream_id, len);
      return 0;
    }
    call->in.append(reinterpret_cast<const char*>(data), len);
    size_t at = 0;
    while (call->in.size() - at >= 5) {
      uint32_t be;
      std::memcpy(&be, call->in.data() + at + 1, 4);
      const size_t size = ntohl(be);
      if (call->in[at] != 0) {
        self->Reject(call, grpc::StatusCode::UNIMPLEMENTED, "compressed messages are not supported (grpc-encoding identity only)");
        break;
      }
      if (size > self->o_.max_message_bytes) {
        self->Reject(call, grpc::StatusCode::RESOURCE_EXHAUSTED,
                     fmt::format("request message of {} bytes exceeds the limit of {} bytes", size, self->o_.max_message_bytes));
        break;
      }
      if (call->in.size() - at - 5 < size) break;
      if (call->batch) {
        self->BatchMessage(call, std::string_view(call->in).substr(at + 5, size));
        at += 5 + size;
        continue;
      }
      std::string message = call->in.substr(at + 5, size);
      at += 5 + size;
      if (call->proxy) {
        call->proxy->Send(std::move(message));  // consumed once the backend took it
      } else {
        nghttp2_session_consume(s, stream_id, 5 + size);
        call->early.push_back(std::move(message));
      }
    }
    if (call->rejected) {
      nghttp2_session_consume(s, stream_id, call->in.size());
      call->in.clear();
    } else {
      call->in.erase(0, at);
    }
    return 0;
  }

  static int OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t, void* user) {
    auto* self = static_cast<FrontImpl*>(user);
    auto& calls = self->current_->calls;
    auto it = calls.find(stream_id);
    if (it == calls.end()) return 0;
    self->Abandon(it->second.get());
    calls.erase(it);
    return 0;
  }

  // ---- Calls ----

  // The request's headers are in.
  void Begin(Call* call) {
    if (call->method != "POST" || !call->content_type.starts_with("application/grpc")) {
      static const std::string status = "415";
      nghttp2_nv nv[] = {Nv(":status", status)};
      call->rejected = true;
      nghttp2_submit_response(call->conn->session, call->id, nv, 1, nullptr);
      return;
    }
    if (call->bad_timeout) {
      Reject(call, grpc::StatusCode::INVALID_ARGUMENT, "grpc-timeout: not a gRPC timeout");
      return;
    }
    if (refusing_.load()) {
      Reject(call, grpc::StatusCode::UNAVAILABLE, "the server is shutting down");
      return;
    }
    // A read is routed once its request is whole; BatchAppend is served here (unless it has a
    // deadline, which gRPC's library keeps); anything else goes to the backend now.
    if (call->path == kBatchAppendPath && o_.store != nullptr && o_.blocking_tasks != nullptr && !call->timeout) {
      StartBatch(call);
    } else if (call->path != kReadPath) {
      StartProxy(call);
    }
  }

  void EndOfRequest(Call* call) {
    call->request_ended = true;
    if (call->rejected) return;
    if (call->batch) {
      if (!call->batch_reads_over && !call->batch_paused && !call->batch_backlogged && call->batch_waiting.empty()) {
        call->batch->EndReads();
        PumpBatch(call);
      }
      return;
    }
    if (!call->routed) {
      if (!TryNativeRead(call)) StartProxy(call);
    }
    if (call->proxy) call->proxy->EndRequests();
  }

  void StartProxy(Call* call) {
    call->routed = true;
    const uint64_t conn_id = call->conn->id;
    const int32_t stream_id = call->id;
    proxies_.fetch_add(1);
    call->proxy = Proxy::Start(
        &stub_, call->path, call->metadata, call->timeout,
        [this, conn_id, stream_id](std::shared_ptr<Proxy> proxy, std::string framed) {
          Post([this, conn_id, stream_id, proxy = std::move(proxy), framed = std::move(framed)]() mutable {
            Call* c = Find(conn_id, stream_id);
            if (c == nullptr || c->closed || c->finishing) {  // gone, or ended by the front
              proxy->ReadNext();
              return;
            }
            c->out += framed;
            StartOrResume(c);
            if (c->out.size() - c->out_at > kHighWater) {
              c->proxy_paused = true;
            } else {
              proxy->ReadNext();
            }
            dirty_.push_back(conn_id);
          });
        },
        [this, conn_id, stream_id](size_t n) {
          Post([this, conn_id, stream_id, n] {
            auto it = conns_.find(conn_id);
            if (it == conns_.end()) return;
            if (Find(conn_id, stream_id) != nullptr) {
              nghttp2_session_consume(it->second->session, stream_id, n);
            } else {
              nghttp2_session_consume_connection(it->second->session, n);
            }
            dirty_.push_back(conn_id);
          });
        },
        [this, conn_id, stream_id](Trailers trailers, std::shared_ptr<Proxy> last) {
          Post([this, conn_id, stream_id, trailers = std::move(trailers), last = std::move(last)]() mutable {
            last.reset();
            proxies_.fetch_sub(1);
            Call* c = Find(conn_id, stream_id);
            if (c == nullptr || c->closed) return;
            Finish(c, std::move(trailers));
            dirty_.push_back(conn_id);
          });
        });
    for (auto& m : call->early) call->proxy->Send(std::move(m));
    call->early.clear();
  }

  // ---- BatchAppend served here (batch_append_session.h) ----

  // Runs `fn` on the front's thread, if the front still runs.
  static void PostVia(FrontLink& link, std::function<void(FrontImpl*)> fn) {
    std::lock_guard lock(link.mu);
    if (link.front == nullptr) return;
    FrontImpl* front = link.front;
    front->Post([front, fn = std::move(fn)] { fn(front); });
  }

  void StartBatch(Call* call) {
    call->routed = true;
    call->batch_counted = true;
    batches_.fetch_add(1);
    const uint64_t conn_id = call->conn->id;
    const int32_t stream_id = call->id;
    // One wake-up of the front's thread for the answers of a whole group commit.
    auto scheduled = std::make_shared<std::atomic<bool>>(false);
    BatchAppendSession::Hooks hooks;
    hooks.answers_ready = [link = link_, scheduled, conn_id, stream_id] {
      if (scheduled->exchange(true)) return;
      PostVia(*link, [scheduled, conn_id, stream_id](FrontImpl* f) {
        scheduled->store(false);
        if (Call* c = f->Find(conn_id, stream_id)) {
          f->PumpBatch(c);
          f->dirty_.push_back(conn_id);
        }
      });
    };
    hooks.read_next = [link = link_, conn_id, stream_id] {
      PostVia(*link, [conn_id, stream_id](FrontImpl* f) {
        if (Call* c = f->Find(conn_id, stream_id)) {
          c->batch_paused = false;
          f->ResumeBatch(c);
          f->dirty_.push_back(conn_id);
        }
      });
    };
    hooks.authorize_write = [this, authorization = call->authorization](const std::string& stream) {
      return AuthorizeWrite(authorization, stream);
    };
    call->batch = BatchAppendSession::Create(o_.store, o_.blocking_tasks, std::move(hooks));
  }

  grpc::Status AuthorizeWrite(const std::string& authorization, const std::string& stream) const {
    if (o_.security == nullptr || !o_.security->enabled()) return grpc::Status::OK;
    Trailers unused;
    auto who = o_.security->Authenticate(authorization);
    if (!who.ok()) return ToGrpcStatus(who.status(), &unused, stream);
    Status allowed = o_.security->Authorize(*who, auth::Permission::kWrite, stream);
    if (!allowed.ok()) return ToGrpcStatus(allowed, &unused, stream);
    return grpc::Status::OK;
  }

  // A whole request message of a batch call: to the session now, or queued (unconsumed, so that
  // HTTP/2 flow control holds the client back) while the session waits or answers pile up.
  void BatchMessage(Call* call, std::string_view message) {
    if (call->closed || call->finishing || call->batch_reads_over) {
      nghttp2_session_consume(call->conn->session, call->id, 5 + message.size());
      return;
    }
    if (call->batch_paused || call->batch_backlogged || !call->batch_waiting.empty()) {
      call->batch_waiting.emplace_back(message);
      return;
    }
    DeliverBatch(call, message);
  }

  void DeliverBatch(Call* call, std::string_view message) {
    nghttp2_session_consume(call->conn->session, call->id, 5 + message.size());
    if (!call->batch->OnMessage(message)) call->batch_paused = true;
    if (call->out.size() - call->out_at > kHighWater) call->batch_backlogged = true;
    PumpBatch(call);  // an answer that needed no store, or the end after bad bytes
  }

  // The session reads again (a blocking append ended, or the answers drained): the messages
  // that waited, then the end of the request if it came.
  void ResumeBatch(Call* call) {
    if (call->closed || call->finishing) return;
    if (call->batch_reads_over) {
      for (const std::string& m : call->batch_waiting) nghttp2_session_consume(call->conn->session, call->id, 5 + m.size());
      call->batch_waiting.clear();
      PumpBatch(call);
      return;
    }
    while (!call->batch_paused && !call->batch_backlogged && !call->batch_waiting.empty()) {
      std::string message = std::move(call->batch_waiting.front());
      call->batch_waiting.pop_front();
      DeliverBatch(call, message);
    }
    if (call->request_ended && !call->batch_paused && !call->batch_backlogged && call->batch_waiting.empty()) {
      call->batch->EndReads();
    }
    PumpBatch(call);
  }

  // Frames the session's answers that are due, and ends the call when it is over.
  void PumpBatch(Call* call) {
    if (call->closed || call->finishing || !call->batch) return;
    std::vector<std::string> answers;
    call->batch->TakeAnswers(&answers);
    for (const std::string& a : answers) {
      AppendFrameHeader(&call->out, a.size());
      call->out += a;
    }
    if (!answers.empty()) StartOrResume(call);
    grpc::Status end;
    if (call->batch->TakeFinish(&end)) {
      Trailers t{{"grpc-status", std::to_string(GrpcCode(end))}};
      if (!end.ok()) t.emplace_back("grpc-message", PercentEncode(end.error_message()));
      Finish(call, std::move(t));
      ReleaseBatch(call);
    }
  }

  void ReleaseBatch(Call* call) {
    if (!call->batch_counted) return;
    call->batch_counted = false;
    batches_.fetch_sub(1);
  }

  // A plain read that will succeed, served here; false to pass the call on.
  bool TryNativeRead(Call* call) {
    if (call->early.size() != 1 || o_.store == nullptr) return false;
    pb::ReadReq req;
    if (!req.ParseFromString(call->early.front())) return false;
    const auto& o = req.options();
    if (o.count_option_case() != pb::ReadReq::Options::kCount) return false;
    if (o.filter_option_case() == pb::ReadReq::Options::kFilter) return false;
    std::optional<EventCursor> cursor;
    std::string what;
    if (o.has_stream()) {
      what = o.stream().stream_identifier().stream_name();
      if (!Allowed(call, auth::Permission::kRead, what)) return false;
      const std::optional<ReadStreamOptions> ro = PlainStreamReadOptions(o);
      if (!ro) return false;  // nothing after the end: the services' empty answer
      auto c = o_.store->ReadStream(what, *ro);
      if (!c.ok()) return false;
      cursor.emplace(std::move(*c));
    } else if (o.has_all()) {
      what = "$all";
      if (!Allowed(call, auth::Permission::kReadAll, "")) return false;
      const std::optional<ReadAllOptions> ro = PlainAllReadOptions(o);
      if (!ro) return false;
      auto c = o_.store->ReadAll(*ro);
      if (!c.ok()) return false;
      cursor.emplace(std::move(*c));
    } else {
      return false;
    }
    call->routed = true;
    call->early.clear();
    call->native = std::make_unique<NativeRead>(std::move(*cursor), o.count(), o.uuid_option().has_structured(), what);
    StartOrResume(call);
    return true;
  }

  bool Allowed(Call* call, auth::Permission what, std::string_view stream) const {
    if (o_.security == nullptr || !o_.security->enabled()) return true;
    auto who = o_.security->Authenticate(call->authorization);
    return who.ok() && o_.security->Authorize(*who, what, stream).ok();
  }

  // Ends the call with an error before (or instead of) any answer.
  void Reject(Call* call, grpc::StatusCode code, const std::string& message) {
    call->rejected = true;
    if (call->proxy) call->proxy->Cancel();
    Trailers t{{"grpc-status", std::to_string(static_cast<int>(code))}, {"grpc-message", PercentEncode(message)}};
    // After the answers already under way, if any. The rest of the request is read and dropped:
    // a reset after the status makes gRPC's C++ client report the reset instead of the status.
    Finish(call, std::move(t));
  }

  void Finish(Call* call, Trailers trailers) {
    if (call->finishing) return;
    call->finishing = true;
    call->trailers = std::move(trailers);
    if (!call->response_started) {
      // Trailers-Only: one HEADERS frame with the status, ending the stream.
      static const std::string status = "200", type = "application/grpc";
      std::vector<nghttp2_nv> nv{Nv(":status", status), Nv("content-type", type)};
      for (const auto& [k, v] : call->trailers) nv.push_back(Nv(k, v));
      call->response_started = true;
      nghttp2_submit_response(call->conn->session, call->id, nv.data(), nv.size(), nullptr);
      return;
    }
    if (call->deferred) {
      call->deferred = false;
      nghttp2_session_resume_data(call->conn->session, call->id);
    }
  }

  // Answers are waiting: sends the response headers once, or wakes the paused data source.
  void StartOrResume(Call* call) {
    if (!call->response_started) {
      call->response_started = true;
      static const std::string status = "200", type = "application/grpc";
      nghttp2_nv nv[] = {Nv(":status", status), Nv("content-type", type)};
      nghttp2_data_provider prd{};
      prd.source.ptr = call;
      prd.read_callback = &FrontImpl::ReadAnswer;
      nghttp2_submit_response(call->conn->session, call->id, nv, 2, &prd);
    } else if (call->deferred) {
      call->deferred = false;
      nghttp2_session_resume_data(call->conn->session, call->id);
    }
  }

  static ssize_t ReadAnswer(nghttp2_session* s, int32_t stream_id, uint8_t* buf, size_t length, uint32_t* flags,
                            nghttp2_data_source* source, void* user) {
    auto* call = static_cast<Call*>(source->ptr);
    size_t n = 0;
    while (n < length) {
      if (call->out_at == call->out.size()) {
        call->out.clear();
        call->out_at = 0;
        if (call->native && !call->finishing) {
          if (call->native->Fill(&call->out, std::max(length - n, kNativeChunk))) {
            Trailers t = call->native->trailers();
            call->native.reset();
            call->finishing = true;
            call->trailers = std::move(t);
          }
        }
        if (call->out.empty()) break;
      }
      const size_t take = std::min(length - n, call->out.size() - call->out_at);
      std::memcpy(buf + n, call->out.data() + call->out_at, take);
      n += take;
      call->out_at += take;
    }
    if (call->proxy_paused && call->out.size() - call->out_at < kLowWater) {
      call->proxy_paused = false;
      call->proxy->ReadNext();
    }
    if (call->batch_backlogged && call->out.size() - call->out_at < kLowWater) {
      call->batch_backlogged = false;
      auto* front = static_cast<FrontImpl*>(user);
      const uint64_t conn_id = call->conn->id;
      front->Post([front, conn_id, stream_id] {
        if (Call* c = front->Find(conn_id, stream_id)) {
          front->ResumeBatch(c);
          front->dirty_.push_back(conn_id);
        }
      });
    }
    if (call->finishing && call->out_at == call->out.size()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
      std::vector<nghttp2_nv> nv;
      for (const auto& [k, v] : call->trailers) nv.push_back(Nv(k, v));
      nghttp2_submit_trailer(s, stream_id, nv.data(), nv.size());
      return static_cast<ssize_t>(n);
    }
    if (n == 0) {
      call->deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    return static_cast<ssize_t>(n);
  }

  static nghttp2_nv Nv(const std::string& name, const std::string& value) {
    return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                      reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
                      NGHTTP2_NV_FLAG_NONE};
  }
  static nghttp2_nv Nv(const char* name, const std::string& value) {
    return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name)),
                      reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), std::strlen(name), value.size(),
                      NGHTTP2_NV_FLAG_NONE};
  }

  H2FrontOptions o_;
  grpc::GenericStub stub_;
  int port_ = 0;
  SSL_CTX* tls_ = nullptr;
  int listen_fd_ = -1;
  int epoll_ = -1;
  int wake_ = -1;
  std::thread thread_;
  std::mutex stop_mu_;
  std::mutex post_mu_;
  std::vector<std::function<void()>> posted_;
  std::atomic<int> proxies_{0};  // calls passed on and not yet ended here
  std::atomic<int> batches_{0};  // BatchAppend calls served here and not yet ended
  std::shared_ptr<FrontLink> link_;
  std::atomic<bool> refusing_{false};
  // The front's thread only.
  bool stopping_ = false;
  uint64_t next_conn_ = 2;
  Conn* current_ = nullptr;
  std::unordered_map<uint64_t, std::unique_ptr<Conn>> conns_;
  std::vector<uint64_t> dirty_;
};

}  // namespace

Result<std::unique_ptr<H2Front>> H2Front::Start(H2FrontOptions options) {
  auto front = std::make_unique<FrontImpl>(std::move(options));
  CAIRN_RETURN_IF_ERROR(front->Listen());
  return std::unique_ptr<H2Front>(std::move(front));
}

}  // namespace cairn::server
