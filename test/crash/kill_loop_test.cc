// Proves that an acknowledged append survives kill -9: every acknowledged event is stored exactly
// once, in acknowledged order, and nothing unacknowledged appears out of order. How: a seeded loop
// feeds `cairn append -` pipelined requests, SIGKILLs it at a random moment, then checks the store
// through the library (Store::Open) against the acknowledgements and runs `cairn verify`.
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "cairn/store.h"
#include "util/test_util.h"

namespace cairn {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// A child process with pipes to its stdin and from its stdout; stderr goes to a file.
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv, const std::string& stderr_path) {
    int in_pipe[2], out_pipe[2];
    if (pipe2(in_pipe, O_CLOEXEC) != 0 || pipe2(out_pipe, O_CLOEXEC) != 0) std::abort();
    int err_fd = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (err_fd < 0) std::abort();
    pid_ = testing::SpawnProcess(argv, in_pipe[0], out_pipe[1], err_fd);
    close(in_pipe[0]);
    close(out_pipe[1]);
    close(err_fd);
    in_fd_ = in_pipe[1];
    out_fd_ = out_pipe[0];
    fcntl(in_fd_, F_SETFL, fcntl(in_fd_, F_GETFL) | O_NONBLOCK);
  }
  ~ChildProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      Wait();
    }
    if (in_fd_ >= 0) close(in_fd_);
    if (out_fd_ >= 0) close(out_fd_);
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  int in_fd() const { return in_fd_; }
  int out_fd() const { return out_fd_; }
  // Whether the child has already exited on its own (then exit_status() says how).
  bool Exited() {
    if (pid_ <= 0) return true;
    if (waitpid(pid_, &exit_status_, WNOHANG) == pid_) {
      pid_ = -1;
      return true;
    }
    return false;
  }
  int exit_status() const { return exit_status_; }
  void Kill() {
    if (pid_ > 0) kill(pid_, SIGKILL);
  }
  void Wait() {
    if (pid_ <= 0) return;
    while (waitpid(pid_, &exit_status_, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }
  void CloseStdin() {
    if (in_fd_ >= 0) close(in_fd_);
    in_fd_ = -1;
  }

 private:
  pid_t pid_ = -1;
  int exit_status_ = 0;
  int in_fd_ = -1;
  int out_fd_ = -1;
};

constexpr int kCycles = 50;
constexpr int kStreams = 4;  // streams 0 and 1 append with exact expected versions, 2 and 3 with any
constexpr int kMaxRequestsPerCycle = 1500;
constexpr int kMaxKillDelayMs = 150;
constexpr auto kFirstAckTimeout = std::chrono::seconds(10);

struct SentRequest {
  int stream = 0;
  std::vector<std::string> ids;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string StreamName(int s) { return fmt::format("crash-{}", s); }

struct StoredEvent {
  std::string id;
  StreamVersion version;
  Position position;
};

class KillLoopTest : public ::testing::Test {
 protected:
  std::string Db() const { return "file:" + dir_.Sub("data"); }

  // Reads every stream through the library. Fails the test on any read error.
  std::map<int, std::vector<StoredEvent>> ReadStreams(Store& store) {
    std::map<int, std::vector<StoredEvent>> out;
    for (int s = 0; s < kStreams; ++s) {
      auto cursor = store.ReadStream(StreamName(s));
      if (!cursor.ok()) {
        EXPECT_TRUE(cursor.status().IsNotFound()) << cursor.status().ToString();
        out[s];
        continue;
      }
      while (cursor->Next()) {
        const auto& e = cursor->event();
        out[s].push_back({e.id.ToString(), e.version, e.position});
      }
      EXPECT_TRUE(cursor->status().ok()) << cursor->status().ToString();
    }
    return out;
  }

  testing::TempDir dir_;
};

TEST_F(KillLoopTest, AcknowledgedAppendsSurviveKill9) {
  uint64_t seed = std::random_device{}();
  if (const char* env = std::getenv("CAIRN_CRASH_SEED")) seed = std::strtoull(env, nullptr, 10);
  std::printf("kill loop seed: %llu (rerun with CAIRN_CRASH_SEED=%llu)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  RecordProperty("seed", std::to_string(seed));
  std::mt19937_64 rng(seed);
  signal(SIGPIPE, SIG_IGN);

  // What the store held after the last cycle, per stream (event ids in version order).
  std::map<int, std::vector<std::string>> confirmed;
  uint64_t total_acked = 0;
  const auto test_start = Clock::now();

  for (int cycle = 0; cycle < kCycles; ++cycle) {
    SCOPED_TRACE(fmt::format("cycle {} (seed {})", cycle, seed));
    const std::string stderr_path = dir_.Sub(fmt::format("stderr-{}.txt", cycle));
    std::vector<SentRequest> sent;
    std::vector<json> acks;
    uint64_t next_version[kStreams];
    for (int s = 0; s < kStreams; ++s) next_version[s] = confirmed[s].size();

    // When to kill: a fifth of the cycles at a random time from the start, which often lands
    // while the store opens or recovers; the rest at a random time after the first
    // acknowledgement, or right after a random number of acknowledgements.
    const bool from_start = rng() % 5 == 0;
    const int kill_delay_ms = static_cast<int>(rng() % (kMaxKillDelayMs + 1));
    // 0: no limit. (A plain number rather than an optional: g++ -O2 warns a false
    // maybe-uninitialized on the optional, and warnings are errors.)
    const size_t kill_after_acks = !from_start && rng() % 3 == 0 ? 1 + rng() % 500 : 0;
    {
      // Odd cycles write the on-disk index after every group commit, so that kills also land
      // while the flusher thread writes it (the next open must catch up or rebuild, never lose).
      const std::string db = cycle % 2 == 1 ? Db() + "?index_memory=0" : Db();
      ChildProcess child({testing::CliPath(), "append", "--db", db, "-"}, stderr_path);
      const auto start = Clock::now();
      auto deadline =
          from_start ? start + std::chrono::milliseconds(kill_delay_ms) : start + kFirstAckTimeout;
      bool first_ack_seen = false;
      std::string pending;  // bytes of requests not yet written to the child
      size_t pending_offset = 0;
      std::string received;
      bool exited = false;
      while (!(kill_after_acks != 0 && acks.size() >= kill_after_acks)) {
        if (!from_start && !first_ack_seen && !acks.empty()) {
          first_ack_seen = true;
          deadline = Clock::now() + std::chrono::milliseconds(kill_delay_ms);
        }
        if (Clock::now() >= deadline) break;
        if (pending_offset == pending.size() && sent.size() < kMaxRequestsPerCycle) {
          // The next request: 1 to 3 events, unique ids, to a random stream.
          SentRequest request;
          request.stream = static_cast<int>(rng() % kStreams);
          int count = 1 + static_cast<int>(rng() % 3);
          json events = json::array();
          for (int j = 0; j < count; ++j) {
            request.ids.push_back(Uuid::V7().ToString());
            events.push_back(
                {{"id", request.ids.back()}, {"type", "Tick"}, {"data", {{"cycle", cycle}, {"j", j}}}});
          }
          json expected = "any";
          uint64_t& next = next_version[request.stream];
          if (request.stream < 2) expected = next == 0 ? json("no-stream") : json(next - 1);
          next += static_cast<uint64_t>(count);
          pending =
              json{{"stream", StreamName(request.stream)}, {"expected", expected}, {"events", events}}.dump();
          pending += '\n';
          pending_offset = 0;
          sent.push_back(std::move(request));
        }
        struct pollfd fds[2] = {{child.out_fd(), POLLIN, 0}, {child.in_fd(), POLLOUT, 0}};
        int nfds = pending_offset < pending.size() ? 2 : 1;
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (poll(fds, nfds, static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(left, 20)))) < 0)
          continue;
        if (nfds == 2 && (fds[1].revents & POLLOUT)) {
          ssize_t w = write(child.in_fd(), pending.data() + pending_offset, pending.size() - pending_offset);
          if (w > 0) pending_offset += static_cast<size_t>(w);
        }
        if (fds[0].revents & (POLLIN | POLLHUP)) {
          char buf[65536];
          ssize_t k = read(child.out_fd(), buf, sizeof buf);
          if (k > 0) {
            received.append(buf, static_cast<size_t>(k));
            size_t newline;
            while ((newline = received.find('\n')) != std::string::npos) {
              acks.push_back(json::parse(received.substr(0, newline)));
              received.erase(0, newline + 1);
            }
          } else if (k == 0) {
            exited = true;
            break;
          }
        }
      }
      if (exited) child.Wait();
      ASSERT_FALSE(exited || child.Exited()) << "cairn append exited on its own (wait status "
                                             << child.exit_status() << "): " << ReadFile(stderr_path);
      ASSERT_TRUE(from_start || !acks.empty())
          << "no acknowledgement within the timeout: " << ReadFile(stderr_path);
      child.Kill();
      child.Wait();
      // Lines already in the pipe were printed, so acknowledged, before the kill. A partial last
      // line was not finished: it does not count.
      char buf[65536];
      ssize_t k;
      while ((k = read(child.out_fd(), buf, sizeof buf)) > 0) received.append(buf, static_cast<size_t>(k));
      size_t newline;
      while ((newline = received.find('\n')) != std::string::npos) {
        acks.push_back(json::parse(received.substr(0, newline)));
        received.erase(0, newline + 1);
      }
    }
    ASSERT_LE(acks.size(), sent.size());
    total_acked += acks.size();

    // Check the store against the acknowledgements.
    auto opened = Store::Open(Db());
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    std::map<int, std::vector<StoredEvent>> stored = ReadStreams(**opened);

    // Per stream: the old events unchanged, then the new requests' events in send order, each
    // request whole or not at all, covering at least every acknowledged request.
    std::vector<bool> present(sent.size(), false);
    for (int s = 0; s < kStreams; ++s) {
      const std::vector<StoredEvent>& events = stored[s];
      const std::vector<std::string>& old = confirmed[s];
      ASSERT_GE(events.size(), old.size()) << StreamName(s) << " lost events of earlier cycles";
      for (size_t v = 0; v < events.size(); ++v) {
        ASSERT_EQ(events[v].version, v) << StreamName(s);
        if (v < old.size()) {
          ASSERT_EQ(events[v].id, old[v]) << StreamName(s) << " changed at version " << v;
        }
      }
      size_t v = old.size();
      for (size_t r = 0; r < sent.size() && v < events.size(); ++r) {
        if (sent[r].stream != s) continue;
        for (const std::string& id : sent[r].ids) {
          ASSERT_LT(v, events.size()) << StreamName(s) << ": request " << r << " stored in part";
          ASSERT_EQ(events[v].id, id)
              << StreamName(s) << " version " << v << ": not request " << r << "'s event";
          ++v;
        }
        present[r] = true;
      }
      ASSERT_EQ(v, events.size()) << StreamName(s) << " holds events nobody sent";
    }
    // Acknowledged requests are present, with the versions and positions their acks reported.
    for (size_t r = 0; r < acks.size(); ++r) {
      const json& ack = acks[r];
      ASSERT_FALSE(ack.contains("error")) << "request " << r << ": " << ack.dump();
      ASSERT_TRUE(present[r]) << "acknowledged request " << r << " is missing: " << ack.dump();
      ASSERT_EQ(ack["stream"], StreamName(sent[r].stream));
      uint64_t first = ack["first_version"].get<uint64_t>();
      const auto& events = stored[sent[r].stream];
      ASSERT_LT(first, events.size());
      EXPECT_EQ(events[first].id, sent[r].ids[0]) << "request " << r;
      EXPECT_EQ(events[first].position.value(), ack["position"].get<uint64_t>()) << "request " << r;
      EXPECT_EQ(ack["next_version"].get<uint64_t>(), first + sent[r].ids.size());
    }
    // One reader fed the requests in order, so the durable ones are a prefix of the send order:
    // an unacknowledged request is only there if every one sent before it is.
    for (size_t r = 1; r < sent.size(); ++r) {
      ASSERT_FALSE(present[r] && !present[r - 1])
          << "request " << r << " stored but earlier " << r - 1 << " not";
    }
    // Exactly once across the whole store, and $all agrees with the streams.
    {
      auto all = (*opened)->ReadAll();
      ASSERT_TRUE(all.ok()) << all.status().ToString();
      std::set<std::string> ids;
      size_t count = 0;
      Position last = Position::Start();
      while (all->Next()) {
        const auto& e = all->event();
        if (count > 0) {
          ASSERT_GT(e.position, last);
        }
        last = e.position;
        ++count;
        ASSERT_TRUE(ids.insert(e.id.ToString()).second) << "event " << e.id.ToString() << " stored twice";
      }
      ASSERT_TRUE(all->status().ok()) << all->status().ToString();
      size_t in_streams = 0;
      for (const auto& [s, events] : stored) in_streams += events.size();
      ASSERT_EQ(count, in_streams);
    }
    ASSERT_TRUE((*opened)->Close().ok());
    opened = Status::Internal("closed");

    for (int s = 0; s < kStreams; ++s) {
      confirmed[s].clear();
      for (const StoredEvent& e : stored[s]) confirmed[s].push_back(e.id);
    }

    testing::CommandResult verify = testing::RunCommand({testing::CliPath(), "verify", "--db", Db()});
    ASSERT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  }

  double seconds = std::chrono::duration<double>(Clock::now() - test_start).count();
  std::printf("kill loop: %d cycles, %llu acknowledged requests, %.1f s\n", kCycles,
              static_cast<unsigned long long>(total_acked), seconds);
  EXPECT_GT(total_acked, 0u) << "no cycle got an acknowledgement: the loop tested nothing";
}

}  // namespace
}  // namespace cairn
