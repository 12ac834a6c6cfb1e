// cairn_grpc_ceiling: gRPC's own ceiling for the `$all` read's message shape on this machine. A
// server in this process answers Streams.Read with N copies of one prebuilt ReadResp (the event
// shape of `cairn bench`: 200 B data, 100 B metadata, three metadata entries), no store behind
// it; a client on a loopback connection reads them. What `cairn bench --server --workload
// read-all` reaches is compared with this in docs/performance.md.
//
//   cairn_grpc_ceiling --messages 500000 --server-api callback|async --client-api sync|callback|async
#include <absl/synchronization/mutex.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
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

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app("gRPC's ceiling for the $all read's messages: N prebuilt ReadResp over loopback");
  app.add_option("--messages", f.messages, "Messages per read. Default: 500000");
  app.add_option("--server-api", f.server_api, "callback or async. Default: callback");
  app.add_option("--client-api", f.client_api, "sync, callback or async. Default: sync");
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
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
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
  auto server = builder.BuildAndStart();
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
  server->Shutdown(std::chrono::system_clock::now());
  async_server.reset();
  return 0;
}
