// Proves the h2 front (server/h2_front.h) and its client-side reader (server/h2_client.h):
// - its natively served reads answer with the same messages as the gRPC services, field for
//   field, for every event shape and id form, forwards and backwards, $all and one stream;
// - its natively served BatchAppend answers a script of appends (every path) as the service does;
// - the reader decodes what protobuf encodes, and refuses bytes that are not a ReadResp;
// - bad requests get a gRPC error naming the limit (compressed message, oversized message), a
//   client that goes away mid-read leaves the server serving, and Shutdown ends its calls.
// (TLS through the front: authz_test.cc's TlsTest, run again as h2.TlsTest.*.)
// How: two real Servers over one memory store, one per transport, on loopback ports, driven by
// gRPC's own C++ client.
#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "cairn/store.h"
#include "esdb/streams.grpc.pb.h"
#include "loopback_server.h"
#include "server/client.h"
#include "server/h2_client.h"
#include "server/server.h"

namespace cairn::server {
namespace {

namespace pb = event_store::client::streams;

class H2FrontTest : public testing::LoopbackServerTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(LoopbackServerTest::SetUp());
    ServerOptions grpc;
    grpc.grpc_address = "127.0.0.1:0";
    grpc.transport = "grpc";
    ServerOptions h2 = grpc;
    h2.transport = "h2";
    grpc_ = std::move(Server::Start(store_.get(), grpc)).value();
    h2_ = std::move(Server::Start(store_.get(), h2)).value();
  }
  void TearDown() override {
    if (h2_) h2_->Shutdown();
    if (grpc_) grpc_->Shutdown();
  }

  static std::unique_ptr<pb::Streams::Stub> Stub(const Server& s) {
    return pb::Streams::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(s.grpc_port()), grpc::InsecureChannelCredentials()));
  }

  // Every answer of one Read, and its status.
  static std::vector<pb::ReadResp> Read(const Server& s, const pb::ReadReq& req, grpc::Status* status) {
    auto stub = Stub(s);
    grpc::ClientContext ctx;
    auto reader = stub->Read(&ctx, req);
    std::vector<pb::ReadResp> out;
    pb::ReadResp resp;
    while (reader->Read(&resp)) out.push_back(resp);
    *status = reader->Finish();
    return out;
  }

  void Fill() {
    std::vector<EventData> events;
    for (int i = 0; i < 40; ++i) {
      EventData e;
      e.type = i % 3 == 0 ? "Opened" : "Deposited-\xC3\xA9";
      e.data = i % 5 == 0 ? std::string() : std::string(static_cast<size_t>(i * 37), static_cast<char>('a' + i % 26));
      e.metadata = i % 2 == 0 ? std::string() : R"({"by":"h2_front_test"})";
      e.content_type = i % 4 == 0 ? ContentType::kBytes : ContentType::kJson;
      events.push_back(e);
    }
    ASSERT_TRUE(store_->Append("acct-\xC3\xA9-1", ExpectedVersion::Any(), events).ok());
    ASSERT_TRUE(store_->Append("acct-2", ExpectedVersion::Any(), std::span<const EventData>(events.data(), 7)).ok());
    EventData big;
    big.type = "Big";
    big.data = std::string(300 << 10, 'x');  // larger than one HTTP/2 frame
    ASSERT_TRUE(store_->Append("acct-2", ExpectedVersion::Any(), std::span<const EventData>(&big, 1)).ok());
  }

  std::unique_ptr<Server> grpc_;
  std::unique_ptr<Server> h2_;
};

pb::ReadReq AllRequest(bool forward, bool structured, uint64_t count) {
  pb::ReadReq req;
  auto* o = req.mutable_options();
  if (forward) {
    o->mutable_all()->mutable_start();
  } else {
    o->mutable_all()->mutable_end();
  }
  o->set_read_direction(forward ? pb::ReadReq::Options::Forwards : pb::ReadReq::Options::Backwards);
  o->set_count(count);
  o->mutable_no_filter();
  if (structured) {
    o->mutable_uuid_option()->mutable_structured();
  } else {
    o->mutable_uuid_option()->mutable_string();
  }
  return req;
}

pb::ReadReq StreamRequest(const std::string& stream, bool forward, bool structured, uint64_t count) {
  pb::ReadReq req = AllRequest(forward, structured, count);
  auto* o = req.mutable_options();
  o->mutable_stream()->mutable_stream_identifier()->set_stream_name(stream);
  if (forward) {
    o->mutable_stream()->mutable_start();
  } else {
    o->mutable_stream()->mutable_end();
  }
  return req;
}

void ExpectSameAnswers(const std::vector<pb::ReadResp>& want, const std::vector<pb::ReadResp>& got) {
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(want[i], got[i]))
        << "answer " << i << "\nservices: " << want[i].ShortDebugString().substr(0, 400)
        << "\nh2 front: " << got[i].ShortDebugString().substr(0, 400);
  }
}

TEST_F(H2FrontTest, NativeReadsAnswerAsTheServicesDo) {
  ASSERT_NO_FATAL_FAILURE(Fill());
  for (bool forward : {true, false}) {
    for (bool structured : {true, false}) {
      for (const pb::ReadReq& req :
           {AllRequest(forward, structured, 1000), AllRequest(forward, structured, 5),
            StreamRequest("acct-\xC3\xA9-1", forward, structured, 1000), StreamRequest("acct-2", forward, structured, 3)}) {
        SCOPED_TRACE(req.ShortDebugString());
        grpc::Status want_status, got_status;
        auto want = Read(*grpc_, req, &want_status);
        auto got = Read(*h2_, req, &got_status);
        ASSERT_TRUE(want_status.ok()) << want_status.error_message();
        ASSERT_TRUE(got_status.ok()) << got_status.error_message();
        EXPECT_FALSE(got.empty());
        ExpectSameAnswers(want, got);
      }
    }
  }
}

TEST_F(H2FrontTest, ReadsThatFailAnswerAsTheServicesDo) {
  ASSERT_NO_FATAL_FAILURE(Fill());
  ASSERT_TRUE(store_->TombstoneStream("acct-2", ExpectedVersion::Any()).ok());
  // Not found (an answer, then OK), deleted (an error with trailers), a subscription and a filter
  // (passed on to the services): the same messages, codes and messages from both.
  pb::ReadReq filtered = AllRequest(true, true, 100);
  filtered.mutable_options()->mutable_filter()->mutable_stream_identifier()->add_prefix("acct-2");
  filtered.mutable_options()->mutable_filter()->set_max(10);
  for (const pb::ReadReq& req : {StreamRequest("never-written", true, true, 10), StreamRequest("acct-2", true, true, 10),
                                 StreamRequest("acct-2", false, false, 10), filtered}) {
    SCOPED_TRACE(req.ShortDebugString());
    grpc::Status want_status, got_status;
    auto want = Read(*grpc_, req, &want_status);
    auto got = Read(*h2_, req, &got_status);
    EXPECT_EQ(want_status.error_code(), got_status.error_code());
    EXPECT_EQ(want_status.error_message(), got_status.error_message());
    ExpectSameAnswers(want, got);
  }
}

TEST_F(H2FrontTest, ClientReaderDecodesWhatProtobufEncodes) {
  pb::ReadResp resp;
  auto* e = resp.mutable_event()->mutable_event();
  e->mutable_id()->mutable_structured()->set_most_significant_bits(static_cast<int64_t>(0x8123456789abcdefULL));
  e->mutable_id()->mutable_structured()->set_least_significant_bits(0x0fedcba987654321LL);
  e->mutable_stream_identifier()->set_stream_name("orders-7");
  e->set_stream_revision(41);
  e->set_prepare_position(1234);
  e->set_commit_position(1234);
  (*e->mutable_metadata())["type"] = "Shipped";
  (*e->mutable_metadata())["content-type"] = "application/octet-stream";
  (*e->mutable_metadata())["created"] = "17325634560000000";
  e->set_custom_metadata("meta");
  e->set_data(std::string(100000, 'd'));
  resp.mutable_event()->set_commit_position(1234);
  const std::string bytes = resp.SerializeAsString();
  RecordedEventView v;
  auto decoded = DecodeReadEvent(bytes, &v);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  ASSERT_TRUE(*decoded);
  EXPECT_EQ(v.stream, "orders-7");
  EXPECT_EQ(v.version, 41u);
  EXPECT_EQ(v.position.value(), 1234u);
  EXPECT_EQ(v.type, "Shipped");
  EXPECT_EQ(v.content_type, ContentType::kBytes);
  EXPECT_EQ(v.recorded_at.nanos, 1732563456000000000LL);
  EXPECT_EQ(v.metadata, "meta");
  EXPECT_EQ(v.data.size(), 100000u);
  EXPECT_EQ(v.id.bytes[0], 0x81);
  EXPECT_EQ(v.id.bytes[15], 0x21);

  pb::ReadResp caught_up;
  caught_up.mutable_caught_up();
  auto other = DecodeReadEvent(caught_up.SerializeAsString(), &v);
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(*other);

  // Truncated bytes and a length past the end are corruption, not a short event.
  auto truncated = DecodeReadEvent(std::string_view(bytes).substr(0, bytes.size() / 2), &v);
  EXPECT_EQ(truncated.status().code(), StatusCode::kCorruption);
  auto garbage = DecodeReadEvent(std::string("\x0a\xff\xff\xff\x0f", 5), &v);
  EXPECT_EQ(garbage.status().code(), StatusCode::kCorruption);
  // A nested length past the end of its enclosing message (though within the bytes given).
  auto overlong = DecodeReadEvent(std::string("\x0a\x03\x0a\x05\x01\x02\x03\x04\x05\x06", 10), &v);
  EXPECT_EQ(overlong.status().code(), StatusCode::kCorruption);
}

TEST_F(H2FrontTest, ClientReadAllOverHttp2ReadsEveryEventFromBothTransports) {
  ASSERT_NO_FATAL_FAILURE(Fill());
  for (const Server* s : {grpc_.get(), h2_.get()}) {
    std::vector<uint64_t> positions;
    size_t big = 0;
    Status st = ReadAllOverHttp2("127.0.0.1:" + std::to_string(s->grpc_port()), 1000, [&](const RecordedEventView& e) {
      positions.push_back(e.position.value());
      if (e.type == "Big") big = e.data.size();
    });
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_EQ(positions.size(), 48u);
    EXPECT_TRUE(std::is_sorted(positions.begin(), positions.end()));
    EXPECT_EQ(big, size_t{300 << 10});
  }
  // Nothing listening: unavailable, naming the address.
  Status refused = ReadAllOverHttp2("127.0.0.1:1", 10, [](const RecordedEventView&) {});
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable);
  EXPECT_NE(refused.ToString().find("127.0.0.1:1"), std::string::npos);
}

TEST_F(H2FrontTest, CompressedRequestIsUnimplementedAndWritesNothing) {
  auto stub = Stub(*h2_);
  grpc::ClientContext ctx;
  ctx.set_compression_algorithm(GRPC_COMPRESS_GZIP);  // gRPC compresses what gets smaller
  auto call = stub->BatchAppend(&ctx);
  pb::BatchAppendReq req;
  req.mutable_options()->mutable_stream_identifier()->set_stream_name("gzipped");
  req.mutable_options()->mutable_any();
  req.set_is_final(true);
  req.add_proposed_messages()->set_data(std::string(100000, 'z'));
  call->Write(req);
  call->WritesDone();
  pb::BatchAppendResp resp;
  while (call->Read(&resp)) {
  }
  grpc::Status s = call->Finish();
  EXPECT_FALSE(store_->GetStreamInfo("gzipped")->exists);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_NE(s.error_message().find("compressed"), std::string::npos) << s.error_message();
}

TEST_F(H2FrontTest, OversizedRequestNamesTheLimitAndWritesNothing) {
  auto stub = Stub(*h2_);
  grpc::ClientContext ctx;
  pb::BatchAppendResp resp;
  auto call = stub->BatchAppend(&ctx);
  pb::BatchAppendReq req;
  req.mutable_options()->mutable_stream_identifier()->set_stream_name("too-big");
  auto* m = req.add_proposed_messages();
  m->set_data(std::string(kMaxEventBytes + (128 << 10), 'x'));
  call->Write(req);
  call->WritesDone();
  while (call->Read(&resp)) {
  }
  grpc::Status s = call->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("exceeds the limit"), std::string::npos) << s.error_message();
  EXPECT_FALSE(store_->GetStreamInfo("too-big")->exists);
}

TEST_F(H2FrontTest, ClientGoingAwayMidReadLeavesTheServerServing) {
  std::vector<EventData> events(1000);
  for (auto& e : events) {
    e.type = "Tick";
    e.data = std::string(2000, 't');
  }
  ASSERT_TRUE(store_->Append("ticks", ExpectedVersion::Any(), events).ok());
  for (int round = 0; round < 5; ++round) {
    auto stub = Stub(*h2_);
    grpc::ClientContext ctx;
    auto reader = stub->Read(&ctx, AllRequest(true, true, 1000));
    pb::ReadResp resp;
    ASSERT_TRUE(reader->Read(&resp));
    ctx.TryCancel();
    while (reader->Read(&resp)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  grpc::Status status;
  auto all = Read(*h2_, AllRequest(true, true, 5000), &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(all.size(), 1000u);
}

// BatchAppend is served by the front itself (batch_append_session.h), the same logic as the gRPC
// service: one script of appends, sent to each transport over a fresh store of its own, gets the
// same answers, message for message, and leaves the same events. The script takes every path:
// plain appends (several in flight), a wrong expected version, an append split over several
// messages with another in between, a correlation id without options, a missing "type", a
// metastream write and an empty append (both blocking on the store), and a system stream.
TEST_F(H2FrontTest, NativeBatchAppendAnswersAsTheServiceDoes) {
  auto message = [](const std::string& type, const std::string& data) {
    pb::BatchAppendReq::ProposedMessage m;
    if (!type.empty()) (*m.mutable_metadata())["type"] = type;
    (*m.mutable_metadata())["content-type"] = "application/json";
    m.set_data(data);
    return m;
  };
  std::vector<pb::BatchAppendReq> script;
  auto add = [&](int id, const std::string& stream, auto expect, std::vector<pb::BatchAppendReq::ProposedMessage> ms,
                 bool final_message, bool options = true) {
    pb::BatchAppendReq r;
    r.mutable_correlation_id()->set_string(fmt::format("0190d7a8-8c3e-7b1a-9f00-{:012d}", id));
    if (options) {
      r.mutable_options()->mutable_stream_identifier()->set_stream_name(stream);
      expect(r.mutable_options());
    }
    for (auto& m : ms) *r.add_proposed_messages() = m;
    r.set_is_final(final_message);
    script.push_back(r);
  };
  using O = pb::BatchAppendReq::Options;
  auto any = [](O* o) { o->mutable_any(); };
  auto none = [](O* o) { o->mutable_no_stream(); };
  auto exists = [](O* o) { o->mutable_stream_exists(); };
  auto at = [](uint64_t v) { return [v](O* o) { o->set_stream_position(v); }; };
  add(1, "ba-1", none, {message("Opened", "{}"), message("Deposited", "{\"n\":1}")}, true);
  add(2, "ba-2", any, {message("Opened", "{}")}, true);
  add(3, "ba-1", at(5), {message("Deposited", "{\"n\":2}")}, true);  // wrong expected version
  add(4, "ba-3", any, {message("Part", "{\"p\":1}")}, false);        // split: first part
  add(5, "ba-2", at(0), {message("Deposited", "{\"n\":3}")}, true);
  add(4, "", any, {message("Part", "{\"p\":2}")}, true, false);      // ... its last part
  add(6, "", any, {message("X", "{}")}, true, false);                // no options for a new id
  add(7, "ba-2", any, {message("", "{}")}, true);                    // no "type"
  add(8, "$$ba-1", any, {message("$metadata", "{\"$maxCount\":3}")}, true);
  add(9, "ba-1", exists, {}, true);                                   // empty: checks the version
  add(10, "ba-1", at(1), {message("Deposited", "{\"n\":4}")}, true);
  add(11, "$system-1", any, {message("X", "{}")}, true);
  add(12, "ba-9", exists, {}, true);                                  // empty, no such stream

  struct Outcome {
    std::vector<pb::BatchAppendResp> answers;
    grpc::Status status;
    std::vector<std::string> events;  // stream, version, type, data of every event in $all
  };
  auto run = [&](const std::string& transport) {
    Outcome out;
    auto store = std::move(Store::Open("memory:")).value();
    ServerOptions o;
    o.grpc_address = "127.0.0.1:0";
    o.transport = transport;
    auto server = std::move(Server::Start(store.get(), o)).value();
    {
      auto stub = Stub(*server);
      grpc::ClientContext ctx;
      auto call = stub->BatchAppend(&ctx);
      for (const auto& r : script) EXPECT_TRUE(call->Write(r));
      call->WritesDone();
      pb::BatchAppendResp resp;
      while (call->Read(&resp)) out.answers.push_back(resp);
      out.status = call->Finish();
    }
    server->Shutdown();
    auto all = store->ReadAll({});
    EXPECT_TRUE(all.ok());
    auto events = all->Collect();
    EXPECT_TRUE(events.ok());
    const std::vector<RecordedEvent> listed = events.ok() ? std::move(*events) : std::vector<RecordedEvent>();
    for (const auto& e : listed) out.events.push_back(fmt::format("{} {} {} {}", e.stream, e.version, e.type, e.data));
    return out;
  };
  const Outcome want = run("grpc");
  const Outcome got = run("h2");
  ASSERT_TRUE(want.status.ok()) << want.status.error_message();
  EXPECT_EQ(got.status.error_code(), want.status.error_code()) << got.status.error_message();
  // One answer per append (ids 1-12, id 4 once), in the order of their last messages.
  ASSERT_EQ(want.answers.size(), 12u);
  ASSERT_EQ(got.answers.size(), want.answers.size());
  int successes = 0, errors = 0;
  for (size_t i = 0; i < want.answers.size(); ++i) {
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(want.answers[i], got.answers[i]))
        << "answer " << i << "\nservice:  " << want.answers[i].ShortDebugString()
        << "\nh2 front: " << got.answers[i].ShortDebugString();
    (want.answers[i].has_success() ? successes : errors)++;
  }
  EXPECT_GE(successes, 6);  // the script takes both kinds of path
  EXPECT_GE(errors, 4);
  EXPECT_EQ(got.events, want.events);
  EXPECT_GE(want.events.size(), 6u);
}

// A BatchAppend call the client keeps open (as the official clients do) does not hold the
// server's shutdown for its grace period: it takes no more appends, its last acknowledged append is
// answered and stored, and it ends with UNAVAILABLE.
TEST_F(H2FrontTest, ShutdownEndsAnOpenBatchAppendCallOnceItsAppendsAreAnswered) {
  auto stub = Stub(*h2_);
  grpc::ClientContext ctx;
  auto call = stub->BatchAppend(&ctx);
  pb::BatchAppendReq req;
  req.mutable_correlation_id()->set_string("0190d7a8-8c3e-7b1a-9f00-000000000042");
  req.mutable_options()->mutable_stream_identifier()->set_stream_name("open-1");
  req.mutable_options()->mutable_any();
  auto* m = req.add_proposed_messages();
  (*m->mutable_metadata())["type"] = "Kept";
  (*m->mutable_metadata())["content-type"] = "application/json";
  m->set_data("{}");
  req.set_is_final(true);
  ASSERT_TRUE(call->Write(req));
  pb::BatchAppendResp resp;
  ASSERT_TRUE(call->Read(&resp));
  EXPECT_TRUE(resp.has_success()) << resp.ShortDebugString();
  const auto started = std::chrono::steady_clock::now();
  h2_->Shutdown();  // the default grace is 5 s
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(3));
  EXPECT_FALSE(call->Read(&resp));
  const grpc::Status end = call->Finish();
  EXPECT_EQ(end.error_code(), grpc::StatusCode::UNAVAILABLE) << end.error_message();
  auto info = store_->GetStreamInfo("open-1");
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(info->exists);
}

// A BatchAppend client that sends and never reads its answers: the front stops taking its
// appends once about 1 MiB of answers wait (HTTP/2's flow control then stops the client), so
// neither the answers nor the appends pile up without bound; other clients are served meanwhile,
// and the call ends when the client cancels.
TEST_F(H2FrontTest, ABatchAppendClientThatNeverReadsIsHeldBack) {
  constexpr int kTries = 200'000;
  // gRPC's client takes answers into its own buffer as far as its HTTP/2 window goes; with its
  // bandwidth-delay probe off that window stays at 64 KiB, so what the front holds is what counts.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  auto stub = pb::Streams::NewStub(grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(h2_->grpc_port()),
                                                            grpc::InsecureChannelCredentials(), args));
  grpc::ClientContext ctx;
  auto call = stub->BatchAppend(&ctx);
  std::atomic<int> written{0};
  std::thread writer([&] {
    pb::BatchAppendReq req;
    req.mutable_options()->mutable_stream_identifier()->set_stream_name("deaf-1");
    req.mutable_options()->mutable_any();
    auto* m = req.add_proposed_messages();
    (*m->mutable_metadata())["type"] = "Unread";
    (*m->mutable_metadata())["content-type"] = "application/json";
    m->set_data("{}");
    req.set_is_final(true);
    for (int i = 0; i < kTries; ++i) {
      req.mutable_correlation_id()->set_string(fmt::format("0190d7a8-8c3e-7b1a-9f00-{:012d}", i));
      if (!call->Write(req)) return;
      written++;
    }
  });
  // The stream stops growing well short of what the client tried to send.
  auto count = [&] {
    auto info = store_->GetStreamInfo("deaf-1");
    return info.ok() && info->last_version ? *info->last_version + 1 : uint64_t{0};
  };
  uint64_t last = 0;
  for (int stable = 0; stable < 5;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const uint64_t now = count();
    stable = now == last && now > 0 ? stable + 1 : 0;
    last = now;
  }
  EXPECT_GT(last, 1000u);
  // About 16,000 here: 1 MiB of answers in the front and 64 KiB in the client.
  EXPECT_LT(last, static_cast<uint64_t>(kTries) / 4) << "the front kept taking appends nobody read the answers of";
  EXPECT_LT(written.load(), kTries);
  // Others are served meanwhile.
  auto client = Client::Connect("127.0.0.1:" + std::to_string(h2_->grpc_port()));
  ASSERT_TRUE(client.ok());
  EventData e;
  e.type = "Heard";
  e.data = "{}";
  auto other = (*client)->Append("heard-1", ExpectedVersion::Any(), std::span<const EventData>(&e, 1));
  EXPECT_TRUE(other.ok()) << other.status().ToString();
  ctx.TryCancel();
  writer.join();
  EXPECT_FALSE(call->Finish().ok());
}

TEST_F(H2FrontTest, UnknownTransportNamesTheFlag) {
  ServerOptions o;
  o.grpc_address = "127.0.0.1:0";
  o.transport = "quic";
  auto bad = Server::Start(store_.get(), o);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().ToString().find("--transport"), std::string::npos) << bad.status().ToString();
}

}  // namespace
}  // namespace cairn::server
