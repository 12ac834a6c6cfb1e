// Proves that the `cairn` command keeps its documented behaviour: output formats, exit codes,
// in-order pipelined stdin appends, verify. Runs the built binary as a child process on a temp dir.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cairn/types.h"
#include "util/test_util.h"

namespace cairn {
namespace {

using nlohmann::json;
using testing::CliPath;
using testing::CommandResult;
using testing::RunCommand;
using testing::TempDir;

class CliTest : public ::testing::Test {
 protected:
  std::string Db() const { return "file:" + dir_.Sub("data"); }

  // Runs `cairn args...` with --db pointing at this test's store.
  CommandResult Cairn(std::vector<std::string> args, const std::string& input = "") const {
    args.insert(args.begin() + 1, {"--db", Db()});
    args.insert(args.begin(), CliPath());
    return RunCommand(args, input);
  }

  static std::vector<json> Lines(const std::string& out) {
    std::vector<json> lines;
    std::istringstream in(out);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      lines.push_back(json::parse(line));
    }
    return lines;
  }

  std::vector<json> ReadStream(const std::string& stream) const {
    CommandResult r = Cairn({"read", stream});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return Lines(r.out);
  }

  TempDir dir_;
};

TEST_F(CliTest, AppendThenReadRoundTrips) {
  const std::string id = Uuid::V7().ToString();
  CommandResult a =
      Cairn({"append", "account-1", "--type", "Deposited", "--id", id, "--expected", "no-stream",
             "--metadata", R"({"$user":"alice"})", R"({"amount": 1000, "note": "héllo"})"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  std::vector<json> appended = Lines(a.out);
  ASSERT_EQ(appended.size(), 1u);
  EXPECT_EQ(appended[0]["stream"], "account-1");
  EXPECT_EQ(appended[0]["first_version"], 0);
  EXPECT_EQ(appended[0]["next_version"], 1);
  ASSERT_TRUE(appended[0]["position"].is_number_unsigned());

  CommandResult b = Cairn({"append", "account-1", "--expected", "0", "[1, 2, 3]"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(Lines(b.out)[0]["first_version"], 1);

  std::vector<json> events = ReadStream("account-1");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0]["stream"], "account-1");
  EXPECT_EQ(events[0]["version"], 0);
  EXPECT_EQ(events[0]["position"], appended[0]["position"]);
  EXPECT_EQ(events[0]["id"], id);
  EXPECT_EQ(events[0]["type"], "Deposited");
  EXPECT_EQ(events[0]["data"], json::parse(R"({"amount": 1000, "note": "héllo"})"));
  EXPECT_EQ(events[0]["metadata"], json::parse(R"({"$user":"alice"})"));
  EXPECT_TRUE(Timestamp::ParseRfc3339(events[0]["recorded_at"].get<std::string>()).has_value());
  EXPECT_FALSE(events[0].contains("content_type"));
  EXPECT_EQ(events[1]["version"], 1);
  EXPECT_EQ(events[1]["type"], "event");  // the default type
  EXPECT_EQ(events[1]["data"], json::parse("[1,2,3]"));
  EXPECT_TRUE(events[1]["metadata"].is_null());
  EXPECT_GT(events[1]["position"].get<uint64_t>(), events[0]["position"].get<uint64_t>());

  // Backward and --max.
  CommandResult back = Cairn({"read", "account-1", "--backward", "--max", "1"});
  ASSERT_EQ(back.exit_code, 0) << back.err;
  std::vector<json> newest = Lines(back.out);
  ASSERT_EQ(newest.size(), 1u);
  EXPECT_EQ(newest[0]["version"], 1);
  // --from on a stream is a version.
  std::vector<json> from1 = Lines(Cairn({"read", "account-1", "--from", "1"}).out);
  ASSERT_EQ(from1.size(), 1u);
  EXPECT_EQ(from1[0]["version"], 1);
}

TEST_F(CliTest, ReadAllListsEveryStreamInCommitOrder) {
  ASSERT_EQ(Cairn({"append", "a-1", R"({"n":1})"}).exit_code, 0);
  ASSERT_EQ(Cairn({"append", "b-1", R"({"n":2})"}).exit_code, 0);
  ASSERT_EQ(Cairn({"append", "a-1", R"({"n":3})"}).exit_code, 0);
  std::vector<json> all = ReadStream("$all");
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0]["stream"], "a-1");
  EXPECT_EQ(all[1]["stream"], "b-1");
  EXPECT_EQ(all[2]["stream"], "a-1");
  EXPECT_EQ(all[2]["version"], 1);
  EXPECT_EQ(all[2]["data"]["n"], 3);

  std::vector<json> backward = Lines(Cairn({"read", "$all", "--backward"}).out);
  ASSERT_EQ(backward.size(), 3u);
  EXPECT_EQ(backward[0]["data"]["n"], 3);
  // --from on $all is a position: forward from the second event's position gives the last two.
  std::string second = std::to_string(all[1]["position"].get<uint64_t>());
  std::vector<json> tail = Lines(Cairn({"read", "$all", "--from", second}).out);
  ASSERT_EQ(tail.size(), 2u);
  EXPECT_EQ(tail[0]["data"]["n"], 2);
}

TEST_F(CliTest, WrongExpectedVersionExits3AndWritesNothing) {
  ASSERT_EQ(Cairn({"append", "order-7", "--expected", "no-stream", R"({"v":0})"}).exit_code, 0);

  CommandResult again = Cairn({"append", "order-7", "--expected", "no-stream", R"({"v":1})"});
  EXPECT_EQ(again.exit_code, 3);
  EXPECT_NE(again.err.find("cairn: Conflict"), std::string::npos) << again.err;
  EXPECT_TRUE(again.out.empty()) << again.out;

  CommandResult stale = Cairn({"append", "order-7", "--expected", "5", R"({"v":2})"});
  EXPECT_EQ(stale.exit_code, 3) << stale.err;

  CommandResult none = Cairn({"append", "order-8", "--expected", "exists", R"({"v":3})"});
  EXPECT_EQ(none.exit_code, 3) << none.err;

  std::vector<json> events = ReadStream("order-7");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["data"]["v"], 0);
  EXPECT_EQ(Cairn({"read", "order-8"}).exit_code, 4);
}

TEST_F(CliTest, ReadOfMissingStreamExits4) {
  ASSERT_EQ(Cairn({"append", "present-1", "{}"}).exit_code, 0);
  CommandResult r = Cairn({"read", "absent-1"});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_NE(r.err.find("cairn: NotFound"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty());
}

TEST_F(CliTest, StdinModeAnswersPipelinedRequestsInOrder) {
  // Hundreds of requests to a few streams with exact expected versions, so that any reordering
  // would show up as a conflict, mixed with bad lines at known places.
  constexpr int kRequests = 600;
  std::string input;
  std::vector<std::string> expect_error(kRequests);  // "" for a success, else a word of the message
  std::vector<std::string> stream_of(kRequests);
  std::vector<int> version_of(kRequests, -1);
  std::vector<std::vector<std::string>> ids_of(kRequests);
  std::set<std::string> rejected_ids;
  int next_version[3] = {0, 0, 0};
  for (int i = 0; i < kRequests; ++i) {
    std::string id = Uuid::V7().ToString();
    int s = i % 3;
    std::string stream = fmt::format("pipe-{}", s);
    json request = {{"stream", stream},
                    {"expected", next_version[s] == 0 ? json("no-stream") : json(next_version[s] - 1)},
                    {"events", json::array({{{"id", id}, {"type", "Ticked"}, {"data", {{"i", i}}}}})}};
    switch (i % 97) {
      case 10:
        input += "{\"stream\": \"pipe-0\", \"events\": [\n";  // malformed JSON
        expect_error[i] = "JSON";
        break;
      case 20:
        request["events"][0].erase("type");
        expect_error[i] = "type";
        break;
      case 30:
        request["expected"] = "sometimes";
        expect_error[i] = "expected";
        break;
      case 40:
        request["stream"] = "";  // not a valid stream name
        expect_error[i] = "InvalidArgument";
        break;
      default:
        break;
    }
    if (expect_error[i] != "JSON") input += request.dump() + "\n";
    if (expect_error[i].empty()) {
      stream_of[i] = stream;
      version_of[i] = next_version[s]++;
      ids_of[i].push_back(id);
    } else {
      rejected_ids.insert(id);
    }
    if (i == 5) input += "\n";  // blank lines are not requests
  }

  CommandResult r = Cairn({"append", "-"}, input);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> raw;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) raw.push_back(line);
  ASSERT_EQ(raw.size(), static_cast<size_t>(kRequests));
  for (int i = 0; i < kRequests; ++i) {
    json line = json::parse(raw[i]);
    if (expect_error[i].empty()) {
      ASSERT_FALSE(line.contains("error")) << "request " << i << ": " << raw[i];
      EXPECT_EQ(line["stream"], stream_of[i]) << i;
      EXPECT_EQ(line["first_version"], version_of[i]) << i;
      EXPECT_EQ(line["next_version"], version_of[i] + 1) << i;
    } else {
      ASSERT_TRUE(line.contains("error")) << "request " << i << ": " << raw[i];
      EXPECT_EQ(line["error"], "InvalidArgument") << raw[i];
      std::string text = line["error"].get<std::string>() + " " + line["message"].get<std::string>();
      EXPECT_NE(text.find(expect_error[i]), std::string::npos) << raw[i];
    }
  }

  // Exactly the accepted events are stored, in order; nothing of the rejected requests.
  for (int s = 0; s < 3; ++s) {
    std::vector<json> events = ReadStream(fmt::format("pipe-{}", s));
    ASSERT_EQ(events.size(), static_cast<size_t>(next_version[s]));
    size_t k = 0;
    for (int i = 0; i < kRequests; ++i) {
      if (stream_of[i] != fmt::format("pipe-{}", s)) continue;
      ASSERT_LT(k, events.size());
      EXPECT_EQ(events[k]["id"], ids_of[i][0]);
      EXPECT_EQ(events[k]["data"]["i"], i);
      ++k;
    }
  }
  for (const json& event : ReadStream("$all"))
    EXPECT_EQ(rejected_ids.count(event["id"].get<std::string>()), 0u);
}

TEST_F(CliTest, StdinModeReportsConflictsWithActualVersion) {
  std::string input =
      R"({"stream":"c-1","expected":"no-stream","events":[{"type":"A","data":1},{"type":"B","data":"two"}]})"
      "\n"
      R"({"stream":"c-1","expected":0,"events":[{"type":"C","data":null}]})"
      "\n"
      R"({"stream":"c-2","expected":"exists","events":[{"type":"D","data":{}}]})"
      "\n"
      R"({"stream":"c-1","events":[{"type":"E","data":[],"metadata":{"k":"v"}}]})"
      "\n";
  CommandResult r = Cairn({"append", "-"}, input);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<json> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0]["first_version"], 0);
  EXPECT_EQ(lines[0]["next_version"], 2);
  EXPECT_EQ(lines[1]["error"], "Conflict");
  EXPECT_EQ(lines[1]["actual_version"], 1);
  EXPECT_EQ(lines[2]["error"], "Conflict");
  EXPECT_TRUE(lines[2].contains("actual_version"));
  EXPECT_TRUE(lines[2]["actual_version"].is_null());
  EXPECT_EQ(lines[3]["first_version"], 2);

  std::vector<json> events = ReadStream("c-1");
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0]["data"], 1);
  EXPECT_EQ(events[1]["data"], "two");
  EXPECT_EQ(events[2]["type"], "E");
  EXPECT_EQ(events[2]["metadata"]["k"], "v");
}

TEST_F(CliTest, UsageErrorsExit2) {
  CommandResult unknown = Cairn({"append", "--bogus", "s-1", "{}"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("--bogus"), std::string::npos) << unknown.err;
  EXPECT_NE(unknown.err.find("Usage"), std::string::npos) << unknown.err;

  EXPECT_EQ(RunCommand({CliPath()}).exit_code, 2);
  EXPECT_EQ(RunCommand({CliPath(), "frobnicate"}).exit_code, 2);
  EXPECT_EQ(Cairn({"append", "s-1"}).exit_code, 2);               // no DATA_JSON
  EXPECT_EQ(Cairn({"append", "s-1", "{not json"}).exit_code, 2);  // bad DATA_JSON
  EXPECT_EQ(Cairn({"append", "s-1", "--expected", "maybe", "{}"}).exit_code, 2);
  EXPECT_EQ(Cairn({"append", "s-1", "--id", "nope", "{}"}).exit_code, 2);
  EXPECT_EQ(Cairn({"append", "-", "--type", "T"}).exit_code, 2);  // flags do not apply to '-'
  EXPECT_EQ(Cairn({"read"}).exit_code, 2);
  EXPECT_EQ(Cairn({"read", "s-1", "--max", "lots"}).exit_code, 2);
  // Nothing was written by any of them.
  EXPECT_EQ(Cairn({"read", "s-1"}).exit_code, 4);
}

TEST_F(CliTest, HelpExits0) {
  for (const char* command : {"append", "read", "verify", "tour"}) {
    CommandResult r = RunCommand({CliPath(), command, "--help"});
    EXPECT_EQ(r.exit_code, 0) << command;
    EXPECT_NE(r.out.find("--db"), std::string::npos) << command << ": " << r.out;
  }
  EXPECT_EQ(RunCommand({CliPath(), "--help"}).exit_code, 0);
}

TEST_F(CliTest, VerifyIntactStoreExits0) {
  ASSERT_EQ(Cairn({"append", "v-1", R"({"x":1})"}).exit_code, 0);
  CommandResult r = Cairn({"verify"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("ok: ", 0), 0u) << r.out;
  CommandResult j = Cairn({"verify", "--json"});
  EXPECT_EQ(j.exit_code, 0) << j.err;
  json line = json::parse(j.out);
  EXPECT_EQ(line["ok"], true);
  EXPECT_GT(line["bytes_checked"].get<uint64_t>(), 0u);
}

TEST_F(CliTest, VerifyReportsAFlippedByteWithItsFile) {
  // Three events with distinctive data; the byte flipped is inside the second, so intact records
  // follow the damage: verify must report it (never treat it as a torn tail).
  for (const char* marker : {"FIRST", "SECOND", "THIRD"}) {
    std::string data = fmt::format(R"({{"marker":"{}-{}"}})", marker, std::string(64, 'x'));
    ASSERT_EQ(Cairn({"append", "damaged-1", data}).exit_code, 0);
  }
  ASSERT_EQ(Cairn({"verify"}).exit_code, 0);

  std::string segment;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_.Sub("data") + "/log", ec)) {
    if (entry.path().extension() == ".seg") segment = entry.path().string();
  }
  ASSERT_FALSE(segment.empty()) << "no *.seg file under " << dir_.Sub("data") << "/log";
  std::string bytes;
  {
    std::ifstream in(segment, std::ios::binary);
    // The records are at the start of the segment; the rest is unused (possibly sparse) space.
    bytes.resize(1 << 20);
    in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    bytes.resize(static_cast<size_t>(in.gcount()));
  }
  size_t at = bytes.find("SECOND-");
  ASSERT_NE(at, std::string::npos) << "event data not found in " << segment;
  ASSERT_GT(at, 64u);  // past the segment header
  at += 20;
  {
    std::fstream io(segment, std::ios::binary | std::ios::in | std::ios::out);
    io.seekp(static_cast<std::streamoff>(at));
    char flipped = static_cast<char>(bytes[at] ^ 0x01);
    io.write(&flipped, 1);
  }

  CommandResult r = Cairn({"verify"});
  EXPECT_EQ(r.exit_code, 5) << r.out << r.err;
  EXPECT_NE(r.err.find("cairn: Corruption"), std::string::npos) << r.err;
  std::string name = std::filesystem::path(segment).filename().string();
  EXPECT_NE(r.err.find(name), std::string::npos) << r.err;
  CommandResult j = Cairn({"verify", "--json"});
  EXPECT_EQ(j.exit_code, 5);
  EXPECT_EQ(json::parse(j.out)["error"], "Corruption");
}

TEST_F(CliTest, CairnDbEnvironmentVariableIsHonoured) {
  std::string env_db = "CAIRN_DB=file:" + dir_.Sub("from-env");
  CommandResult a = RunCommand({"/usr/bin/env", env_db, CliPath(), "append", "env-1", R"({"e":1})"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_TRUE(std::filesystem::exists(dir_.Sub("from-env")));
  CommandResult r = RunCommand({"/usr/bin/env", env_db, CliPath(), "read", "env-1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Lines(r.out).size(), 1u);
  // --db wins over the environment.
  CommandResult other = RunCommand({"/usr/bin/env", env_db, CliPath(), "read", "--db", Db(), "env-1"});
  EXPECT_EQ(other.exit_code, 4) << other.err;
}

TEST_F(CliTest, BenchAsyncWritersAppendEveryEventExactlyOnce) {
  // 8 concurrent writers, each with one AppendAsync in flight: 100 appends of 3 events.
  auto r = Cairn({"bench", "--workload", "append", "--async", "--writers", "8", "--batch", "3", "--events", "300",
                  "--streams", "5", "--sync", "none", "--tsv"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("append-8x3-nosync-async\t300\t"), std::string::npos) << r.out;
  r = Cairn({"stats", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json stats = json::parse(r.out);
  EXPECT_EQ(stats["total_events"], 300);
  EXPECT_EQ(stats["streams"], 5);
  EXPECT_EQ(Cairn({"verify"}).exit_code, 0);

  // --async drives the embedded store's AppendAsync: not a thing a gRPC client has.
  r = Cairn({"bench", "--workload", "append", "--async", "--server", "--events", "10"});
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.err.find("--async"), std::string::npos) << r.err;
}

TEST_F(CliTest, TourRunsTwiceAndRebuildsTheBalance) {
  for (int run = 0; run < 2; ++run) {
    CommandResult r = Cairn({"tour"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("850"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("Conflict"), std::string::npos) << r.out;
  }
  EXPECT_EQ(Cairn({"verify"}).exit_code, 0);
}

}  // namespace
}  // namespace cairn

namespace cairn {
namespace {

class AdminCliTest : public ::testing::Test {
 protected:
  std::string Db() const { return "file:" + dir_.Sub("data"); }
  testing::CommandResult Cairn(std::vector<std::string> args, const std::string& input = "") const {
    args.insert(args.begin() + 1, {"--db", Db()});
    args.insert(args.begin(), testing::CliPath());
    return testing::RunCommand(args, input);
  }
  // `cairn user SUB ...`: --db goes after the subcommand's subcommand.
  testing::CommandResult User(std::vector<std::string> args, const std::string& input = "") const {
    std::vector<std::string> full{testing::CliPath(), "user"};
    full.insert(full.end(), args.begin(), args.end());
    full.push_back("--db");
    full.push_back(Db());
    return testing::RunCommand(full, input);
  }
  testing::TempDir dir_;
};

TEST_F(AdminCliTest, StreamsListsByPrefixInOrderAndPages) {
  for (const char* s : {"order-2", "order-1", "customer-1", "order-3"}) {
    ASSERT_EQ(Cairn({"append", s, "--type", "T", "{}"}).exit_code, 0);
  }
  ASSERT_EQ(Cairn({"append", "order-1", "--type", "T", "{}"}).exit_code, 0);
  auto r = Cairn({"streams", "--prefix", "order-", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<json> lines;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["stream"], "order-1");
  EXPECT_EQ(lines[0]["last_version"], 1);
  EXPECT_EQ(lines[2]["stream"], "order-3");
  r = Cairn({"streams", "--after", "customer-1", "--max", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "order-1\t1\n");
  r = Cairn({"streams", "--max", "0"});
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.err.find("max_count"), std::string::npos) << r.err;
}

TEST_F(AdminCliTest, StatsReportsTheStoreTotals) {
  ASSERT_EQ(Cairn({"append", "a-1", "--type", "T", "{}"}).exit_code, 0);
  ASSERT_EQ(Cairn({"append", "a-2", "--type", "T", "{}"}).exit_code, 0);
  auto r = Cairn({"stats", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["total_events"], 2);
  EXPECT_EQ(j["streams"], 2);
  EXPECT_GT(j["disk_bytes"].get<uint64_t>(), 0u);
  EXPECT_EQ(j["since_open"]["appends"], 0);  // this process appended nothing
}

TEST_F(AdminCliTest, UsersAreAddedListedChangedAndRemovedWithoutPasswordsInTheStore) {
  auto r = User({"add", "alice", "--group", "ops", "--group", "$admins"}, "alice-password\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = User({"add", "bob", "--password", "bob-password"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = User({"add", "carol"}, "short\n");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("password"), std::string::npos) << r.err;
  r = User({"add", "bob", "--password", "other-password"});
  EXPECT_NE(r.exit_code, 0);
  r = User({"list", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "{\"name\":\"alice\",\"groups\":[\"ops\",\"$admins\"]}\n"
            "{\"name\":\"bob\",\"groups\":[]}\n");
  ASSERT_EQ(User({"groups", "bob", "tellers"}).exit_code, 0);
  ASSERT_EQ(User({"passwd", "alice"}, "new-alice-password\n").exit_code, 0);
  ASSERT_EQ(User({"remove", "alice"}).exit_code, 0);
  EXPECT_NE(User({"remove", "alice"}).exit_code, 0);
  r = User({"list"});
  EXPECT_EQ(r.out, "bob\ttellers\n");
  // What the store keeps: hashes, not passwords.
  r = Cairn({"read", "$users"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("alice-password"), std::string::npos);
  EXPECT_EQ(r.out.find("bob-password"), std::string::npos);
  EXPECT_NE(r.out.find("scrypt"), std::string::npos);
}

}  // namespace
}  // namespace cairn
