// Proves that `cairn tail` prints the same JSON lines as `cairn read`, from --from on, keeps
// running until SIGINT or SIGTERM and then exits 0, and rejects bad arguments with exit 2. How: the
// built binary as a child process on a temp store. (Live delivery of new appends is proved in
// process by src/subscription/subscription_test.cc and test/subscription/gap_test.cc: a data
// directory is open in one process at a time, so another process cannot append while tail runs.)
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "util/test_util.h"

namespace cairn {
namespace {

using nlohmann::json;
using testing::CliPath;
using testing::CommandResult;
using testing::RunCommand;

class TailTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string input =
        R"({"stream":"account-1","events":[{"type":"Opened","data":{"owner":"ann"}},{"type":"Deposited","data":{"amount":5}}]})"
        "\n"
        R"({"stream":"account-2","events":[{"type":"Opened","data":{"owner":"bob"}}]})"
        "\n"
        R"({"stream":"account-1","events":[{"type":"Withdrawn","data":{"amount":2}}]})"
        "\n";
    CommandResult r = Cairn({"append", "-"}, input);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  std::string Db() const { return "file:" + dir_.Sub("data"); }

  CommandResult Cairn(std::vector<std::string> args, const std::string& input = "") const {
    args.insert(args.begin() + 1, {"--db", Db()});
    args.insert(args.begin(), CliPath());
    return RunCommand(args, input);
  }

  static std::vector<std::string> Lines(const std::string& out) {
    std::vector<std::string> lines;
    std::istringstream in(out);
    std::string line;
    while (std::getline(in, line)) lines.push_back(line);
    return lines;
  }

  // Starts `cairn tail ARGS`, waits until it printed `lines` lines (or 10 s), sends `sig`, and
  // returns its exit code and output.
  CommandResult TailUntilSignal(std::vector<std::string> args, size_t lines, int sig) {
    args.insert(args.begin(), {CliPath(), "tail", "--db", Db()});
    int out_pipe[2];
    EXPECT_EQ(pipe2(out_pipe, O_CLOEXEC), 0);
    int null_in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int err_fd = open(dir_.Sub("tail-stderr.txt").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const int pid = testing::SpawnProcess(args, null_in, out_pipe[1], err_fd);
    close(out_pipe[1]);
    close(null_in);
    close(err_fd);
    CommandResult result;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (Lines(result.out).size() < lines && std::chrono::steady_clock::now() < deadline) {
      struct pollfd p = {out_pipe[0], POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char buf[4096];
      ssize_t n = read(out_pipe[0], buf, sizeof buf);
      if (n <= 0) break;
      result.out.append(buf, static_cast<size_t>(n));
    }
    // Signal only once tail handles it (its SigCgt mask in /proc shows the handler): before that
    // the default action would kill it, which says nothing about tail.
    while (!Catches(pid, sig) && std::chrono::steady_clock::now() < deadline) usleep(5000);
    // Still running: a tail does not end by itself.
    int status = 0;
    EXPECT_EQ(waitpid(pid, &status, WNOHANG), 0) << "tail exited before the signal";
    kill(pid, sig);
    char buf[4096];
    ssize_t n;
    while ((n = read(out_pipe[0], buf, sizeof buf)) > 0) result.out.append(buf, static_cast<size_t>(n));
    close(out_pipe[0]);
    while (waitpid(pid, &status, 0) < 0) {
    }
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return result;
  }

  static bool Catches(int pid, int sig) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("SigCgt:", 0) == 0) {
        const uint64_t mask = std::strtoull(line.c_str() + 7, nullptr, 16);
        return (mask >> (sig - 1)) & 1;
      }
    }
    return false;
  }

  testing::TempDir dir_;
};

TEST_F(TailTest, FromStartPrintsTheSameLinesAsReadAndRunsUntilSigint) {
  const std::vector<std::string> expected = Lines(Cairn({"read", "$all"}).out);
  ASSERT_EQ(expected.size(), 4u);
  CommandResult r = TailUntilSignal({"$all", "--from", "0"}, expected.size(), SIGINT);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(Lines(r.out), expected);
}

TEST_F(TailTest, StreamFromAVersionUntilSigterm) {
  std::vector<std::string> expected = Lines(Cairn({"read", "account-1", "--from", "1"}).out);
  ASSERT_EQ(expected.size(), 2u);
  CommandResult r = TailUntilSignal({"account-1", "--from", "1"}, expected.size(), SIGTERM);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(Lines(r.out), expected);
}

TEST_F(TailTest, WithoutFromOnlyNewEventsArePrinted) {
  CommandResult r = TailUntilSignal({"$all"}, 0, SIGINT);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "");
}

TEST_F(TailTest, MaxEndsAfterNEventsAndFiltersApply) {
  CommandResult r = Cairn({"tail", "$all", "--from", "0", "--type", "Opened", "--max", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(json::parse(lines[0])["stream"], "account-1");
  EXPECT_EQ(json::parse(lines[1])["stream"], "account-2");
  EXPECT_EQ(json::parse(lines[1])["type"], "Opened");
}

TEST_F(TailTest, BadArgumentsExit2) {
  CommandResult filter_on_stream = Cairn({"tail", "account-1", "--type", "Opened"});
  EXPECT_EQ(filter_on_stream.exit_code, 2);
  EXPECT_NE(filter_on_stream.err.find("--type"), std::string::npos) << filter_on_stream.err;
  // A position inside an event, not at its start.
  const uint64_t inside = json::parse(Lines(Cairn({"read", "$all"}).out).at(0))["position"].get<uint64_t>() + 1;
  CommandResult bad_position = Cairn({"tail", "$all", "--from", std::to_string(inside)});
  EXPECT_EQ(bad_position.exit_code, 2) << bad_position.err;
  EXPECT_NE(bad_position.err.find("position " + std::to_string(inside)), std::string::npos) << bad_position.err;
  CommandResult missing = Cairn({"tail"});
  EXPECT_EQ(missing.exit_code, 2);
}

}  // namespace
}  // namespace cairn
