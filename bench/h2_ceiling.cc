// cairn_h2_ceiling: the `$all` read's messages over HTTP/2 with nghttp2 instead of gRPC's C++
// library, to measure what the protocol costs without gRPC's own per-message machinery (the
// question of docs/performance.md, the server's fifth run). The bytes on the wire are gRPC's:
// one Streams.Read call, N ReadResp messages each with gRPC's 5-byte length prefix, trailers with
// grpc-status. The server serializes every message (as gRPC's Write does) and packs as many as fit
// into each DATA frame; the client parses every message. Both ends run in this process, each on
// its own thread, over a loopback TCP connection; a gRPC C++ client can read instead
// (--client grpc), to split the cost between the two ends.
//
//   cairn_h2_ceiling --messages 1000000 [--client h2|grpc]
#include <absl/synchronization/mutex.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

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

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}
double ProcessCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

void Die(const char* what) {
  std::perror(what);
  std::exit(2);
}

pb::ReadResp MakeMessage(uint64_t i) {
  pb::ReadResp resp;
  auto* read_event = resp.mutable_event();
  auto* rec = read_event->mutable_event();
  rec->mutable_id()->mutable_structured()->set_most_significant_bits(0x0123456789abcdefLL);
  rec->mutable_id()->mutable_structured()->set_least_significant_bits(static_cast<int64_t>(i));
  rec->mutable_stream_identifier()->set_stream_name("account-12345");
  rec->set_stream_revision(i);
  rec->set_prepare_position(i);
  rec->set_commit_position(i);
  auto& md = *rec->mutable_metadata();
  md["type"] = "Deposited";
  md["content-type"] = "application/json";
  md["created"] = "17325634560000000";
  rec->set_custom_metadata(std::string(100, 'm'));
  rec->set_data(std::string(200, 'd'));
  read_event->set_commit_position(i);
  return resp;
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

// The server: answers each POST with `count` serialized ReadResp, framed as gRPC does.
struct H2Server {
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
    pb::ReadResp msg;
    while (n < length) {
      if (self->pending_at == self->pending.size()) {
        if (self->next == self->count) break;
        msg = MakeMessageCached(self->next++);
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
  // The message of event i: the same fields as a store event, rebuilt per message the way a
  // server fills one from the store's view (the strings' storage is kept across messages).
  static pb::ReadResp& MakeMessageCached(uint64_t i) {
    static pb::ReadResp m = MakeMessage(0);
    auto* rec = m.mutable_event()->mutable_event();
    rec->mutable_id()->mutable_structured()->set_least_significant_bits(static_cast<int64_t>(i));
    rec->set_stream_revision(i);
    rec->set_prepare_position(i);
    rec->set_commit_position(i);
    m.mutable_event()->set_commit_position(i);
    return m;
  }
};

uint64_t ReadWithGrpc(int port, uint64_t count) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  auto channel = grpc::CreateCustomChannel(fmt::format("127.0.0.1:{}", port), grpc::InsecureChannelCredentials(), args);
  auto stub = pb::Streams::NewStub(channel);
  pb::ReadReq req;
  req.mutable_options()->set_count(count);
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
    void OnDone(const grpc::Status& s) override {
      std::lock_guard lock(mu_);
      if (!s.ok()) std::fprintf(stderr, "grpc read: %s\n", s.error_message().c_str());
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
  Reader r(stub.get(), req);
  return r.Wait();
}

// The client: one Streams.Read call; parses every message.
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
void Serve(int listen_fd, uint64_t count, double* cpu) {
  const int fd = ::accept(listen_fd, nullptr, nullptr);
  if (fd < 0) Die("accept");
  NonBlocking(fd);
  const double cpu0 = ThreadCpuSeconds();
  H2Server server;
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
  *cpu = ThreadCpuSeconds() - cpu0;
}

uint64_t ReadWithH2(int port, uint64_t count, double* cpu) {
  const double cpu0 = ThreadCpuSeconds();
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
  *cpu = ThreadCpuSeconds() - cpu0;
  return client.n;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t messages = 1'000'000;
  std::string client = "h2";
  CLI::App app("The $all read's messages over HTTP/2 with nghttp2: N serialized ReadResp over loopback");
  app.add_option("--messages", messages, "Messages per read. Default: 1000000");
  app.add_option("--client", client, "h2 (nghttp2, parses every message) or grpc (gRPC C++ callback client)");
  CLI11_PARSE(app, argc, argv);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  for (int round = 0; round < 2; ++round) {  // round 0 warms up
    int port = 0;
    const int lfd = Listen(&port);
    double server_cpu = 0, client_cpu = 0;
    std::thread server([&] { Serve(lfd, messages, &server_cpu); });
    const double cpu0 = ProcessCpuSeconds();
    const auto t0 = std::chrono::steady_clock::now();
    const uint64_t n = client == "grpc" ? ReadWithGrpc(port, messages) : ReadWithH2(port, messages, &client_cpu);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu = ProcessCpuSeconds() - cpu0;
    server.join();
    ::close(lfd);
    if (round == 0) continue;
    std::printf("client=%s messages=%llu bytes_each=%zu seconds=%.3f msgs_per_s=%.0f cpu_us_per_msg=%.2f "
                "server_thread_us=%.2f client_thread_us=%.2f\n",
                client.c_str(), static_cast<unsigned long long>(n), MakeMessage(1).ByteSizeLong(), seconds,
                static_cast<double>(n) / seconds, cpu * 1e6 / static_cast<double>(n),
                server_cpu * 1e6 / static_cast<double>(n), client_cpu * 1e6 / static_cast<double>(n));
    if (n != messages) return 1;
  }
  return 0;
}
