// The gRPC services of the v1 client protocol (internal to src/server). Each borrows the Store
// and a stop flag that Server::Shutdown raises to end live subscriptions.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "auth/security.h"
#include "cairn/persistent_subscription.h"
#include "cairn/store.h"
#include "esdb/gossip.grpc.pb.h"
#include "esdb/persistent.grpc.pb.h"
#include "esdb/serverfeatures.grpc.pb.h"
#include "esdb/streams.grpc.pb.h"

namespace cairn::server {

// The version clients see. They compare it as a semantic version to pick code paths, so it is
// the protocol level cairn follows, not cairn's own version.
inline constexpr const char* kProtocolServerVersion = "24.10.0";

// One thread that runs tasks in order: the few steps of a callback-API call that must block on
// the store (a metadata write, a version check) run here instead of on gRPC's threads.
class TaskThread {
 public:
  TaskThread();
  ~TaskThread();  // runs what was posted, then joins
  void Post(std::function<void()> task);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stop_ = false;
  std::thread thread_;
};

// Streams. Read, Append and BatchAppend are on gRPC's callback API (reactors, no thread per
// call: see streams_service.cc), BatchAppend as a raw method (its request bytes are read without
// the generated message: batch_append_wire.h); Delete and Tombstone are synchronous handlers.
class StreamsService final
    : public event_store::client::streams::Streams::WithCallbackMethod_Read<
          event_store::client::streams::Streams::WithRawCallbackMethod_BatchAppend<
              event_store::client::streams::Streams::WithCallbackMethod_Append<
                  event_store::client::streams::Streams::Service>>> {
 public:
  StreamsService(Store* store, const std::atomic<bool>* stopping, const auth::Security* security)
      : store_(store), stopping_(stopping), security_(security) {}

  grpc::ServerWriteReactor<event_store::client::streams::ReadResp>* Read(
      grpc::CallbackServerContext* context, const event_store::client::streams::ReadReq* request) override;
  grpc::ServerReadReactor<event_store::client::streams::AppendReq>* Append(
      grpc::CallbackServerContext* context, event_store::client::streams::AppendResp* response) override;
  // Raw bytes both ways: requests are read by batch_append_wire.h, answers serialized here.
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* BatchAppend(grpc::CallbackServerContext* context) override;
  grpc::Status Delete(grpc::ServerContext* context, const event_store::client::streams::DeleteReq* request,
                      event_store::client::streams::DeleteResp* response) override;
  grpc::Status Tombstone(grpc::ServerContext* context, const event_store::client::streams::TombstoneReq* request,
                         event_store::client::streams::TombstoneResp* response) override;

  // Catch-up subscriptions (Read with subscription options) running now, to a stream and to $all.
  uint64_t live_stream_subscriptions() const { return live_stream_.load(std::memory_order_relaxed); }
  uint64_t live_all_subscriptions() const { return live_all_.load(std::memory_order_relaxed); }
  Store* store() const { return store_; }
  const std::atomic<bool>* stopping() const { return stopping_; }
  const auth::Security* security() const { return security_; }
  TaskThread* blocking_tasks() { return &blocking_tasks_; }
  // Live subscriptions each hold a thread while they wait for appends; beyond this many, a new
  // one is refused with RESOURCE_EXHAUSTED rather than starting threads without bound.
  static constexpr int kMaxSubscriptionThreads = 512;
  std::atomic<int>& subscription_threads() { return subscription_threads_; }

 private:
  Store* store_;
  const std::atomic<bool>* stopping_;
  const auth::Security* security_;  // null: no authentication
  std::atomic<uint64_t> live_stream_{0};
  std::atomic<uint64_t> live_all_{0};
  std::atomic<int> subscription_threads_{0};
  TaskThread blocking_tasks_;
};

// Consumer groups (persistent_service.cc). Open() before serving; Close() after the last call,
// which writes the groups' checkpoints. Read is a callback (reactor) method, so that a consumer
// the server cuts off gets the protocol's "persistent subscription dropped" status while its
// client may still be sending (a synchronous handler could only cancel the call).
class PersistentService final
    : public event_store::client::persistent_subscriptions::PersistentSubscriptions::WithCallbackMethod_Read<
          event_store::client::persistent_subscriptions::PersistentSubscriptions::Service> {
 public:
  PersistentService(Store* store, const std::atomic<bool>* stopping, const auth::Security* security)
      : store_(store), stopping_(stopping), security_(security) {}
  Status Open();
  void Close();
  // The groups served (null before Open()).
  PersistentSubscriptions* subscriptions() const { return subs_.get(); }

  grpc::Status Create(grpc::ServerContext* context, const event_store::client::persistent_subscriptions::CreateReq* request,
                      event_store::client::persistent_subscriptions::CreateResp* response) override;
  grpc::Status Update(grpc::ServerContext* context, const event_store::client::persistent_subscriptions::UpdateReq* request,
                      event_store::client::persistent_subscriptions::UpdateResp* response) override;
  grpc::Status Delete(grpc::ServerContext* context, const event_store::client::persistent_subscriptions::DeleteReq* request,
                      event_store::client::persistent_subscriptions::DeleteResp* response) override;
  grpc::ServerBidiReactor<event_store::client::persistent_subscriptions::ReadReq,
                          event_store::client::persistent_subscriptions::ReadResp>*
  Read(grpc::CallbackServerContext* context) override;
  grpc::Status GetInfo(grpc::ServerContext* context, const event_store::client::persistent_subscriptions::GetInfoReq* request,
                       event_store::client::persistent_subscriptions::GetInfoResp* response) override;
  grpc::Status ReplayParked(grpc::ServerContext* context,
                            const event_store::client::persistent_subscriptions::ReplayParkedReq* request,
                            event_store::client::persistent_subscriptions::ReplayParkedResp* response) override;
  grpc::Status List(grpc::ServerContext* context, const event_store::client::persistent_subscriptions::ListReq* request,
                    event_store::client::persistent_subscriptions::ListResp* response) override;
  grpc::Status RestartSubsystem(grpc::ServerContext* context, const event_store::client::Empty* request,
                                event_store::client::Empty* response) override;

 private:
  Store* store_;
  const std::atomic<bool>* stopping_;
  const auth::Security* security_;  // null: no authentication
  std::unique_ptr<PersistentSubscriptions> subs_;
  friend class PersistentReadReactor;
};

class ServerFeaturesService final : public event_store::client::server_features::ServerFeatures::Service {
 public:
  grpc::Status GetSupportedMethods(grpc::ServerContext* context, const event_store::client::Empty* request,
                                   event_store::client::server_features::SupportedMethods* response) override;
};

class GossipService final : public event_store::client::gossip::Gossip::Service {
 public:
  GossipService(std::string host, int port) : host_(std::move(host)), port_(port) {}
  void set_port(int port) { port_ = port; }
  grpc::Status Read(grpc::ServerContext* context, const event_store::client::Empty* request,
                    event_store::client::gossip::ClusterInfo* response) override;

 private:
  std::string host_;
  int port_;
  Uuid instance_id_ = Uuid::V7();
};

}  // namespace cairn::server
