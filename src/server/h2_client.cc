// See h2_client.h.
#include "server/h2_client.h"

#include <arpa/inet.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/grpcpp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <cstring>
#include <optional>
#include <string>

#include "esdb/streams.pb.h"
#include "server/client_calls.h"
#include "server/protocol.h"
#include "server/server.h"

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
  CAIRN_ASSIGN_OR_RETURN(HostPort hp, ParseHostPort(address, "server address"));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(hp.port);
  if (getaddrinfo(hp.host.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr) {
    return Unavailable(address, "cannot resolve the host");
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
  if (fd < 0) return Unavailable(address, fmt::format("cannot connect: {}", std::strerror(errno)));
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

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

}  // namespace cairn::server
