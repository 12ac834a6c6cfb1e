// cairn_grpc_ceiling: gRPC's own ceiling for the `$all` read's message shape on this machine. A
// server in this process answers Streams.Read with N copies of one prebuilt ReadResp (the event
// shape of `cairn bench`: 200 B data, 100 B metadata, three metadata entries), no store behind
// it; a client on a loopback connection reads them. What `cairn bench --server --workload
// read-all` reaches is compared with this in docs/performance.md. With --server-api h2 and/or
// --client-api h2 the same bytes go over HTTP/2 with nghttp2 instead of gRPC's library (each
// message still serialized and parsed by protobuf): what HTTP/2 itself costs.
//
//   cairn_grpc_ceiling --messages 500000 --server-api callback|async|h2 --client-api sync|callback|async|h2
#include <absl/synchronization/mutex.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "esdb/streams.grpc.pb.h"

namespace {

namespace pb = event_store::client::streams;

double CpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

pb::ReadResp MakeMessage() {
  pb::ReadResp resp;
  auto* read_event = resp.mutable_event();
  auto* rec = read_event->mutable_event();
  rec->mutable_id()->mutable_structured()->set_most_significant_bits(0x0123456789abcdefLL);
  rec->mutable_id()->mutable_structured()->set_least_significant_bits(0x0fedcba987654321LL);
  rec->mutable_stream_identifier()->set_stream_name("account-12345");
  rec->set_stream_revision(17);
  rec->set_prepare_position(123456789);
  rec->set_commit_position(123456789);
  auto& md = *rec->mutable_metadata();
  md["type"] = "Deposited";
  md["content-type"] = "application/json";
  md["created"] = "17325634560000000";
  rec->set_custom_metadata(std::string(100, 'm'));
  rec->set_data(std::string(200, 'd'));
  read_event->set_commit_position(123456789);
  return resp;
}

struct Flags {
  uint64_t messages = 500'000;
  std::string server_api = "callback";
  std::string client_api = "sync";
  int window = 0;        // GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES (0: gRPC's default)
  int frame = 0;         // GRPC_ARG_HTTP2_MAX_FRAME_SIZE (0: default)
  int bdp = -1;          // GRPC_ARG_HTTP2_BDP_PROBE (-1: default)
  int write_buffer = -1; // GRPC_ARG_HTTP2_WRITE_BUFFER_SIZE on the server (-1: default)
  uint64_t cork = 0;     // server: buffer hint on all but every cork-th message (0: none)
  bool absl_checks = false;  // keep absl's mutex deadlock detection on (Debian's build has it on)
};

// Callback API: the next write as the previous one completes.
class CallbackService final : public pb::Streams::CallbackService {
 public:
  CallbackService(const pb::ReadResp* m, uint64_t cork) : m_(m), cork_(cork) {}
  grpc::ServerWriteReactor<pb::ReadResp>* Read(grpc::CallbackServerContext*, const pb::ReadReq* req) override {
    class Writer final : public grpc::ServerWriteReactor<pb::ReadResp> {
     public:
      Writer(const pb::ReadResp* m, uint64_t n, uint64_t cork) : m_(m), left_(n), cork_(cork) { Next(); }
      void OnWriteDone(bool ok) override {
        if (!ok) {
          Finish(grpc::Status::CANCELLED);
          return;
        }
        Next();
      }
      void OnDone() override { delete this; }

     private:
      void Next() {
        if (left_ == 0) {
          Finish(grpc::Status::OK);
          return;
        }
        --left_;
        grpc::WriteOptions options;
        if (cork_ > 0 && ++written_ % cork_ != 0 && left_ > 0 && written_ > 1) options.set_buffer_hint();
        StartWrite(m_, options);
      }
      const pb::ReadResp* m_;
      uint64_t left_;
      uint64_t cork_;
      uint64_t written_ = 0;
    };
    return new Writer(m_, req->options().count(), cork_);
  }

 private:
  const pb::ReadResp* m_;
  uint64_t cork_;
};

// Async API: one thread drives a completion queue; a write's completion comes back on it.
class AsyncServer {
 public:
  AsyncServer(pb::Streams::AsyncService* service, std::unique_ptr<grpc::ServerCompletionQueue> cq,
              const pb::ReadResp* m)
      : service_(service), cq_(std::move(cq)), m_(m) {
    thread_ = std::thread([this] { Run(); });
  }
  // After the server's Shutdown: ends the queue and its thread.
  ~AsyncServer() {
    cq_->Shutdown();
    thread_.join();
  }
  grpc::ServerCompletionQueue* cq() { return cq_.get(); }

 private:
  struct CallState {
    grpc::ServerContext ctx;
    pb::ReadReq req;
    grpc::ServerAsyncWriter<pb::ReadResp> writer{&ctx};
    uint64_t left = 0;
    int stage = 0;  // 0 requested, 1 writing, 2 finishing
  };
  void Run() {
    auto* call = new CallState;
    service_->RequestRead(&call->ctx, &call->req, &call->writer, cq_.get(), cq_.get(), call);
    void* tag;
    bool ok;
    while (cq_->Next(&tag, &ok)) {
      auto* c = static_cast<CallState*>(tag);
      if (c->stage == 0) {
        if (!ok) {
          delete c;
          continue;
        }
        auto* next = new CallState;
        service_->RequestRead(&next->ctx, &next->req, &next->writer, cq_.get(), cq_.get(), next);
        c->left = c->req.options().count();
        c->stage = 1;
      } else if (c->stage == 2) {
        delete c;
        continue;
      }
      if (!ok || c->left == 0) {
        c->stage = 2;
        c->writer.Finish(grpc::Status::OK, c);
        continue;
      }
      --c->left;
      c->writer.Write(*m_, c);
    }
  }
  pb::Streams::AsyncService* service_;
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  const pb::ReadResp* m_;
  std::thread thread_;
};

uint64_t ReadSync(pb::Streams::Stub* stub, const pb::ReadReq& req) {
  grpc::ClientContext ctx;
  auto reader = stub->Read(&ctx, req);
  pb::ReadResp resp;
  uint64_t n = 0;
  while (reader->Read(&resp)) n += resp.event().event().data().size() > 0;
  reader->Finish();
  return n;
}

uint64_t ReadCallback(pb::Streams::Stub* stub, const pb::ReadReq& req) {
  class Reader final : public grpc::ClientReadReactor<pb::ReadResp> {
   public:
    Reader(pb::Streams::Stub* stub, const pb::ReadReq& req) {
      stub->async()->Read(&ctx_, &req, this);
      StartRead(&resp_);
      StartCall();
    }
    void OnReadDone(bool ok) override {
      if (!ok) return;
      n_ += resp_.event().event().data().size() > 0;
      StartRead(&resp_);
    }
    void OnDone(const grpc::Status&) override {
      std::lock_guard lock(mu_);
      done_ = true;
      cv_.notify_one();
    }
    uint64_t Wait() {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return done_; });
      return n_;
    }

   private:
    grpc::ClientContext ctx_;
    pb::ReadResp resp_;
    uint64_t n_ = 0;
    std::mutex mu_;
    std::condition_variable cv_;
    bool done_ = false;
  };
  Reader r(stub, req);
  return r.Wait();
}

uint64_t ReadAsync(pb::Streams::Stub* stub, const pb::ReadReq& req) {
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  auto reader = stub->AsyncRead(&ctx, req, &cq, reinterpret_cast<void*>(1));
  pb::ReadResp resp;
  uint64_t n = 0;
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
    if (tag == reinterpret_cast<void*>(1) || tag == reinterpret_cast<void*>(2)) {
      if (tag == reinterpret_cast<void*>(2)) n += resp.event().event().data().size() > 0;
      if (ok) {
        reader->Read(&resp, reinterpret_cast<void*>(2));
        continue;
      }
      grpc::Status s;
      reader->Finish(&s, reinterpret_cast<void*>(3));
      continue;
    }
    break;  // finished
  }
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return n;
}


// ---- The same messages over nghttp2 (HTTP/2 only), without gRPC's library ----

void Die(const char* what) {
  std::perror(what);
  std::exit(2);
}

// One nghttp2 session on a non-blocking socket: sends what the session has, feeds it what
// arrives, until the session wants neither or `done` says so.
void Pump(nghttp2_session* s, int fd, const bool& done) {
  std::string out;
  std::string in(256 * 1024, '\0');
  while (!done) {
    while (out.size() < 256 * 1024) {
      const uint8_t* p = nullptr;
      const ssize_t n = nghttp2_session_mem_send(s, &p);
      if (n < 0) Die("nghttp2_session_mem_send");
      if (n == 0) break;
      out.append(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
    }
    if (!out.empty()) {
      const ssize_t w = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
      if (w > 0) out.erase(0, static_cast<size_t>(w));
      else if (w < 0 && errno != EAGAIN) return;
    }
    if (done) break;
    if (!nghttp2_session_want_read(s) && !nghttp2_session_want_write(s) && out.empty()) break;
    const ssize_t r = ::recv(fd, in.data(), in.size(), 0);
    if (r > 0) {
      if (nghttp2_session_mem_recv(s, reinterpret_cast<const uint8_t*>(in.data()), static_cast<size_t>(r)) < 0) {
        Die("nghttp2_session_mem_recv");
      }
      continue;
    }
    if (r == 0) return;
    if (errno != EAGAIN) return;
    // Nothing to read: wait for input, or for room to write if output is pending.
    if (out.empty() && nghttp2_session_want_write(s)) continue;
    pollfd pfd{fd, static_cast<short>(POLLIN | (out.empty() ? 0 : POLLOUT)), 0};
    ::poll(&pfd, 1, 100);
  }
}

nghttp2_nv Nv(const char* name, const std::string& value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name)),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), std::strlen(name), value.size(),
                    NGHTTP2_NV_FLAG_NO_COPY_NAME};
}

// --server-api h2: answers each POST with `count` copies of the message, framed as gRPC does.
struct H2Server {
  const pb::ReadResp* message = nullptr;
  uint64_t count = 0;
  uint64_t next = 0;  // messages produced
  std::string pending;  // framed bytes not yet copied into a DATA frame
  size_t pending_at = 0;
  int32_t stream = -1;
  bool done = false;
  std::string status_value = "0";

  static ssize_t ReadData(nghttp2_session* s, int32_t stream_id, uint8_t* buf, size_t length, uint32_t* flags,
                          nghttp2_data_source*, void* user) {
    auto* self = static_cast<H2Server*>(user);
    size_t n = 0;
    while (n < length) {
      if (self->pending_at == self->pending.size()) {
        if (self->next == self->count) break;
        ++self->next;
        const pb::ReadResp& msg = *self->message;  // serialized anew each time, as gRPC's Write does
        const size_t size = msg.ByteSizeLong();
        self->pending.resize(5 + size);
        self->pending[0] = 0;
        const uint32_t be = htonl(static_cast<uint32_t>(size));
        std::memcpy(self->pending.data() + 1, &be, 4);
        msg.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(self->pending.data() + 5));
        self->pending_at = 0;
      }
      const size_t take = std::min(length - n, self->pending.size() - self->pending_at);
      std::memcpy(buf + n, self->pending.data() + self->pending_at, take);
      n += take;
      self->pending_at += take;
    }
    if (self->next == self->count && self->pending_at == self->pending.size()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
      nghttp2_nv trailers[] = {Nv("grpc-status", self->status_value)};
      nghttp2_submit_trailer(s, stream_id, trailers, 1);
    }
    return static_cast<ssize_t>(n);
  }
};

// --client-api h2: one Streams.Read call over nghttp2; parses every message with protobuf.
struct H2Client {
  std::string buf;  // bytes of the response body not yet parsed
  pb::ReadResp resp;
  uint64_t n = 0;
  std::string request;
  size_t request_at = 0;
  bool done = false;

  static int OnData(nghttp2_session* s, uint8_t, int32_t stream_id, const uint8_t* data, size_t len, void* user) {
    auto* self = static_cast<H2Client*>(user);
    size_t at = 0;
    // Whole messages straight from the frame; a message split across frames goes through buf.
    if (!self->buf.empty()) {
      self->buf.append(reinterpret_cast<const char*>(data), len);
      data = reinterpret_cast<const uint8_t*>(self->buf.data());
      len = self->buf.size();
    }
    while (len - at >= 5) {
      uint32_t be;
      std::memcpy(&be, data + at + 1, 4);
      const size_t size = ntohl(be);
      if (len - at - 5 < size) break;
      if (!self->resp.ParseFromArray(data + at + 5, static_cast<int>(size))) Die("ParseFromArray");
      self->n += self->resp.event().event().data().size() > 0;
      at += 5 + size;
    }
    std::string rest(reinterpret_cast<const char*>(data) + at, len - at);
    self->buf = std::move(rest);
    nghttp2_session_consume(s, stream_id, 0);
    return 0;
  }
  static int OnClose(nghttp2_session*, int32_t, uint32_t, void* user) {
    static_cast<H2Client*>(user)->done = true;
    return 0;
  }
  static ssize_t ReadRequest(nghttp2_session*, int32_t, uint8_t* out, size_t length, uint32_t* flags,
                             nghttp2_data_source*, void* user) {
    auto* self = static_cast<H2Client*>(user);
    const size_t take = std::min(length, self->request.size() - self->request_at);
    std::memcpy(out, self->request.data() + self->request_at, take);
    self->request_at += take;
    if (self->request_at == self->request.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(take);
  }
};

int Listen(int* port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 4) != 0) Die("listen");
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

void NonBlocking(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::fcntl(fd, F_SETFL, O_NONBLOCK);
}

// Serves one connection (one or more calls) until the peer closes it.
void ServeH2Connection(int fd, const pb::ReadResp* message, uint64_t count) {
  NonBlocking(fd);
  H2Server server;
  server.message = message;
  server.count = count;
  nghttp2_session_callbacks* cbs;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_frame_recv_callback(
      cbs, [](nghttp2_session* s, const nghttp2_frame* frame, void* user) -> int {
        auto* self = static_cast<H2Server*>(user);
        // The request's end: answer it (the ReadReq itself is not needed here).
        if ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) &&
            (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
          self->stream = frame->hd.stream_id;
          self->next = 0;
          self->pending.clear();
          self->pending_at = 0;
          static const std::string status = "200", type = "application/grpc";
          nghttp2_nv headers[] = {Nv(":status", status), Nv("content-type", type)};
          nghttp2_data_provider prd{};
          prd.read_callback = &H2Server::ReadData;
          nghttp2_submit_response(s, frame->hd.stream_id, headers, 2, &prd);
        }
        return 0;
      });
  nghttp2_session* s;
  nghttp2_session_server_new(&s, cbs, &server);
  nghttp2_session_callbacks_del(cbs);
  nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};
  nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, iv, 1);
  bool never = false;
  Pump(s, fd, never);
  nghttp2_session_del(s);
  ::close(fd);
}

uint64_t ReadH2(int port, uint64_t count) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) Die("connect");
  NonBlocking(fd);
  H2Client client;
  pb::ReadReq req;
  req.mutable_options()->set_count(count);
  req.mutable_options()->mutable_all()->mutable_start();
  const std::string body = req.SerializeAsString();
  client.request.assign(5, '\0');
  const uint32_t be = htonl(static_cast<uint32_t>(body.size()));
  std::memcpy(client.request.data() + 1, &be, 4);
  client.request += body;

  nghttp2_session_callbacks* cbs;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &H2Client::OnData);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &H2Client::OnClose);
  nghttp2_session* s;
  nghttp2_option* opt;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 0);
  nghttp2_session_client_new2(&s, cbs, &client, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 8 << 20},
                                 {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, 1 << 20}};
  nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, iv, 2);
  nghttp2_session_set_local_window_size(s, NGHTTP2_FLAG_NONE, 0, 32 << 20);
  static const std::string post = "POST", scheme = "http", path = "/event_store.client.streams.Streams/Read",
                           authority = fmt::format("127.0.0.1:{}", port), type = "application/grpc",
                           te = "trailers";
  nghttp2_nv headers[] = {Nv(":method", post), Nv(":scheme", scheme), Nv(":path", path),
                          Nv(":authority", authority), Nv("content-type", type), Nv("te", te)};
  nghttp2_data_provider prd{};
  prd.read_callback = &H2Client::ReadRequest;
  if (nghttp2_submit_request(s, nullptr, headers, 6, &prd, &client) < 0) Die("submit_request");
  Pump(s, fd, client.done);
  nghttp2_session_del(s);
  ::close(fd);
  return client.n;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app("gRPC's ceiling for the $all read's messages: N prebuilt ReadResp over loopback");
  app.add_option("--messages", f.messages, "Messages per read. Default: 500000");
  app.add_option("--server-api", f.server_api, "callback, async or h2 (nghttp2, no gRPC library). Default: callback");
  app.add_option("--client-api", f.client_api, "sync, callback, async or h2 (nghttp2, protobuf parse). Default: sync");
  app.add_option("--window", f.window, "Client and server stream window (lookahead) in bytes; 0: gRPC's default");
  app.add_option("--frame", f.frame, "Max HTTP/2 frame size; 0: gRPC's default");
  app.add_option("--bdp", f.bdp, "BDP probe 0 or 1; -1: gRPC's default");
  app.add_option("--write-buffer", f.write_buffer, "Server's HTTP/2 write buffer size; -1: gRPC's default");
  app.add_option("--cork", f.cork, "Callback server: buffer hint on all but every N-th message (0: none)");
  app.add_flag("--absl-checks", f.absl_checks, "Keep absl's mutex deadlock detection (on in Debian's build)");
  CLI11_PARSE(app, argc, argv);
  if (!f.absl_checks) absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  const pb::ReadResp message = MakeMessage();
  auto tune = [&](auto& args) {
    if (f.window > 0) args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, f.window);
    if (f.frame > 0) args.SetInt(GRPC_ARG_HTTP2_MAX_FRAME_SIZE, f.frame);
    if (f.bdp >= 0) args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, f.bdp);
  };
  grpc::ServerBuilder builder;
  int port = 0;
  // --server-api h2: a thread of nghttp2 connections answers instead of gRPC's server.
  const bool h2_server = f.server_api == "h2";
  int h2_listen = -1;
  std::thread h2_thread;
  if (h2_server) {
    h2_listen = Listen(&port);
    h2_thread = std::thread([&] {
      for (;;) {
        const int fd = ::accept(h2_listen, nullptr, nullptr);
        if (fd < 0) return;  // the listening socket was shut down
        ServeH2Connection(fd, &message, f.messages);
      }
    });
  } else {
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  }
  CallbackService callback_service(&message, f.cork);
  pb::Streams::AsyncService async_service;
  std::unique_ptr<grpc::ServerCompletionQueue> cq;
  if (f.server_api == "async") {
    builder.RegisterService(&async_service);
    cq = builder.AddCompletionQueue();
  } else {
    builder.RegisterService(&callback_service);
  }
  if (f.window > 0) builder.AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, f.window);
  if (f.frame > 0) builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_FRAME_SIZE, f.frame);
  if (f.bdp >= 0) builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, f.bdp);
  if (f.write_buffer >= 0) builder.AddChannelArgument(GRPC_ARG_HTTP2_WRITE_BUFFER_SIZE, f.write_buffer);
  auto server = h2_server ? nullptr : builder.BuildAndStart();
  std::unique_ptr<AsyncServer> async_server;
  if (cq) async_server = std::make_unique<AsyncServer>(&async_service, std::move(cq), &message);

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  tune(args);
  auto channel = grpc::CreateCustomChannel(fmt::format("127.0.0.1:{}", port), grpc::InsecureChannelCredentials(), args);
  auto stub = pb::Streams::NewStub(channel);
  pb::ReadReq req;
  req.mutable_options()->set_count(f.messages);
  req.mutable_options()->mutable_all()->mutable_start();

  auto read = [&] {
    if (f.client_api == "callback") return ReadCallback(stub.get(), req);
    if (f.client_api == "async") return ReadAsync(stub.get(), req);
    if (f.client_api == "h2") return ReadH2(port, f.messages);
    return ReadSync(stub.get(), req);
  };
  read();  // warm-up: connection, allocators
  const double cpu0 = CpuSeconds();
  const auto t0 = std::chrono::steady_clock::now();
  const uint64_t n = read();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = CpuSeconds() - cpu0;
  std::printf("server=%s client=%s messages=%llu bytes_each=%zu seconds=%.3f msgs_per_s=%.0f cpu_s=%.3f cpu_us_per_msg=%.2f\n",
              f.server_api.c_str(), f.client_api.c_str(), static_cast<unsigned long long>(n), message.ByteSizeLong(),
              seconds, static_cast<double>(n) / seconds, cpu, cpu * 1e6 / static_cast<double>(n));
  if (server) server->Shutdown(std::chrono::system_clock::now());
  async_server.reset();
  if (h2_server) {
    channel.reset();  // closes the gRPC client's connection, if it had one
    stub.reset();
    ::shutdown(h2_listen, SHUT_RDWR);
    h2_thread.join();
    ::close(h2_listen);
  }
  return 0;
}
