// Proves that a persistent subscription delivers at least once across kill -9: a consumer process
// takes events from a group and acknowledges all but one (chosen at random), the process is
// killed (sometimes while it is still taking events, sometimes after its checkpoints were
// written), and after a restart the unacknowledged event is delivered again and nothing after
// the written checkpoint is skipped. How: fork a child that opens the file store, SIGKILL it,
// reopen the store in the parent; seeded, 8 cycles.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "cairn/persistent_subscription.h"
#include "cairn/store.h"
#include "util/test_util.h"

namespace cairn {
namespace {

using namespace std::chrono_literals;

constexpr int kCycles = 8;
constexpr int kEvents = 40;

class PersistentKillTest : public ::testing::Test {
 protected:
  std::string Url() const { return "file:" + dir_.Sub("data"); }

  // The child: consumes group `group`, acknowledging every event but version `unacked`, whose
  // id it writes to `fd` once it has it; then keeps acknowledging the rest until killed.
  [[noreturn]] void Consume(const std::string& group, StreamVersion unacked, int fd) {
    auto store = Store::Open(Url());
    if (!store.ok()) _exit(10);
    auto subs = PersistentSubscriptions::Open(**store);
    if (!subs.ok()) _exit(11);
    ConsumerOptions o;
    o.buffer_size = 5;
    auto consumer = (*subs)->Connect("orders", group, o);
    if (!consumer.ok()) _exit(12);
    for (;;) {
      if (!(*consumer)->Next(std::chrono::milliseconds(1000))) continue;
      const PersistentEvent& e = (*consumer)->event();
      if (e.event.version == unacked) {
        const std::string line = fmt::format("{}\n", e.event.version);
        if (write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) _exit(13);
        continue;
      }
      if (!(*consumer)->Ack({&e.event.id, 1}).ok()) _exit(14);
    }
  }

  testing::TempDir dir_;
};

TEST_F(PersistentKillTest, UnackedEventIsRedeliveredAfterKill) {
  uint64_t seed = std::random_device{}();
  if (const char* env = std::getenv("CAIRN_CRASH_SEED")) seed = std::strtoull(env, nullptr, 10);
  std::printf("persistent kill seed: %llu (rerun with CAIRN_CRASH_SEED=%llu)\n", static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  std::mt19937_64 rng(seed);

  {
    auto store = Store::Open(Url());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    for (int i = 0; i < kEvents; ++i) {
      EventData e;
      e.type = "OrderPlaced";
      e.data = fmt::format(R"({{"n":{}}})", i);
      ASSERT_TRUE((*store)->Append("orders", ExpectedVersion::Any(), {&e, 1}).ok());
    }
    auto subs = PersistentSubscriptions::Open(**store);
    ASSERT_TRUE(subs.ok());
    for (int cycle = 0; cycle < kCycles; ++cycle) {
      PersistentSubscriptionSettings s;
      s.start_from = PersistentStart::Start();
      // Checkpoint after every acknowledgement: the most chances to move past the unacked event.
      s.min_checkpoint_count = 1;
      s.max_checkpoint_count = 1;
      s.checkpoint_after_ms = 0;
      ASSERT_TRUE((*subs)->Create("orders", fmt::format("g{}", cycle), s).ok());
    }
  }

  for (int cycle = 0; cycle < kCycles; ++cycle) {
    SCOPED_TRACE(fmt::format("cycle {} (seed {})", cycle, seed));
    const std::string group = fmt::format("g{}", cycle);
    const StreamVersion unacked = rng() % kEvents;
    // Half the kills land right after the delivery, half after the checkpoints had time to be
    // written for everything acknowledged after it.
    const auto linger = (cycle % 2 == 0) ? std::chrono::milliseconds(rng() % 20) : 300ms;
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      Consume(group, unacked, fds[1]);
    }
    close(fds[1]);
    char buf[64] = {};
    const ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    std::this_thread::sleep_for(linger);
    kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
    }
    ASSERT_GT(n, 0) << "the consumer ended before its delivery; status " << status;
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "exit status " << status;
    ASSERT_EQ(std::strtoull(buf, nullptr, 10), unacked);

    auto store = Store::Open(Url());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto subs = PersistentSubscriptions::Open(**store);
    ASSERT_TRUE(subs.ok());
    auto info = (*subs)->GetInfo("orders", group);
    ASSERT_TRUE(info.ok());
    ASSERT_TRUE(info->checkpoint);
    EXPECT_LE(*info->checkpoint, unacked) << "the checkpoint passed an unacknowledged event";
    const StreamVersion from = *info->checkpoint;
    auto consumer = (*subs)->Connect("orders", group);
    ASSERT_TRUE(consumer.ok());
    std::set<StreamVersion> again;
    while ((*consumer)->Next(300ms)) {
      const PersistentEvent& e = (*consumer)->event();
      again.insert(e.event.version);
      ASSERT_TRUE((*consumer)->Ack({&e.event.id, 1}).ok());
    }
    EXPECT_TRUE(again.contains(unacked)) << "the unacknowledged event was not delivered again";
    // Nothing from the checkpoint on is skipped.
    for (StreamVersion v = from; v < kEvents; ++v) EXPECT_TRUE(again.contains(v)) << "skipped " << v;
    std::printf("cycle %d: unacked %llu, checkpoint %llu, %zu redelivered\n", cycle,
                static_cast<unsigned long long>(unacked), static_cast<unsigned long long>(from), again.size());
  }
}

}  // namespace
}  // namespace cairn
