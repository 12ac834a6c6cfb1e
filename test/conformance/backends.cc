// Proves nothing by itself: it defines the backends the conformance suite runs on and
// instantiates every TEST_P(ConformanceTest, ...) once per backend.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "conformance/backend.h"
#include "conformance/conformance.h"
#include "env/env.h"
#include "postgres/pg_store.h"
#include "storage/engine.h"
#include "util/pg_test_util.h"
#include "util/test_util.h"

namespace cairn::conformance {
namespace {

// The embedded engine through storage::OpenEmbedded, on a ManualClockEnv so that tests set the
// time. On memory the MemEnv lives as long as the backend, so its files survive a reopen too:
// that runs recovery on the memory env as well as on the real file system.
class EmbeddedBackend : public Backend {
 public:
  enum class Files { kMemory, kPosix };

  EmbeddedBackend(Files files, uint64_t segment_size_bytes, bool tiny_index_memory = false)
      : segment_size_bytes_(segment_size_bytes), tiny_index_memory_(tiny_index_memory) {
    if (files == Files::kMemory) {
      mem_ = env::NewMemEnv();
      root_ = "/db";
    } else {
      tmp_ = std::make_unique<testing::TempDir>();
      root_ = tmp_->Sub("db");
    }
    clock_ = std::make_unique<env::ManualClockEnv>(mem_ ? mem_.get() : env::Env::Posix(), kClockStart.nanos);
  }

  Options BaseOptions() const override {
    Options options;
    if (segment_size_bytes_ != 0) options.segment_size_bytes = segment_size_bytes_;
    // The memtable goes to the on-disk index after every group commit: every lookup then also
    // goes through the persistent tier.
    if (tiny_index_memory_) options.index_memory_bytes = 0;
    return options;
  }

  Result<std::unique_ptr<Store>> OpenFresh(const Options& options) override {
    dir_ = root_ + (fresh_count_ == 0 ? "" : "-" + std::to_string(fresh_count_));
    ++fresh_count_;
    return storage::OpenEmbedded(clock_.get(), dir_, options);
  }

  bool persistent() const override { return true; }
  Result<std::unique_ptr<Store>> Reopen(const Options& options) override {
    return storage::OpenEmbedded(clock_.get(), dir_, options);
  }

  bool exclusive_open() const override { return true; }
  bool has_clock() const override { return true; }
  Timestamp Now() const override { return Timestamp{clock_->NowNanos()}; }
  void SetClock(Timestamp time) override { clock_->SetNowNanos(time.nanos); }

 private:
  uint64_t segment_size_bytes_;  // 0: Options' default
  bool tiny_index_memory_;
  std::unique_ptr<env::Env> mem_;
  std::unique_ptr<testing::TempDir> tmp_;
  std::unique_ptr<env::ManualClockEnv> clock_;
  std::string root_;
  std::string dir_;
  int fresh_count_ = 0;
};

// The PostgreSQL backend on the test cluster (util/pg_test_util.h): each OpenFresh is a new
// schema of the one database, dropped with the backend. Several processes may open one store, so
// there is no lock to test; the clock is a ManualClockEnv as for the engine.
class PostgresBackend : public Backend {
 public:
  explicit PostgresBackend(std::string url)
      : url_(std::move(url)), clock_(std::make_unique<env::ManualClockEnv>(env::Env::Posix(), kClockStart.nanos)) {}
  ~PostgresBackend() override {
    for (const auto& s : schemas_) testing::DropSchema(url_, s);
  }

  Result<std::unique_ptr<Store>> OpenFresh(const Options& options) override {
    schemas_.push_back(testing::UniqueSchema("conf"));
    return Reopen(options);
  }
  bool persistent() const override { return true; }
  Result<std::unique_ptr<Store>> Reopen(const Options& options) override {
    return postgres::OpenPgStore(testing::WithSchema(url_, schemas_.back()), options, clock_.get());
  }
  bool exclusive_open() const override { return false; }
  bool has_clock() const override { return true; }
  Timestamp Now() const override { return Timestamp{clock_->NowNanos()}; }
  void SetClock(Timestamp time) override { clock_->SetNowNanos(time.nanos); }

 private:
  std::string url_;
  std::unique_ptr<env::ManualClockEnv> clock_;
  std::vector<std::string> schemas_;
};

}  // namespace

const std::vector<BackendFactory>& AllBackends() {
  static const std::vector<BackendFactory> backends = {
      {"memory", [] { return std::make_unique<EmbeddedBackend>(EmbeddedBackend::Files::kMemory, 0); }},
      {"file", [] { return std::make_unique<EmbeddedBackend>(EmbeddedBackend::Files::kPosix, 0); }},
      // Small segments make ordinary tests cross many segment boundaries.
      {"file-small-segments",
       [] { return std::make_unique<EmbeddedBackend>(EmbeddedBackend::Files::kPosix, kSmallSegmentBytes); }},
      // The index's persistent tier after every group: LMDB on files, maps in memory.
      {"file-index-always",
       [] { return std::make_unique<EmbeddedBackend>(EmbeddedBackend::Files::kPosix, kSmallSegmentBytes, true); }},
      {"memory-index-always",
       [] { return std::make_unique<EmbeddedBackend>(EmbeddedBackend::Files::kMemory, 0, true); }},
      // Needs a test database: ctest starts one (test/postgres/pg_cluster.sh); else skipped.
      {"postgres",
       []() -> std::unique_ptr<Backend> {
         auto url = testing::TestPostgresUrl();
         if (!url) return nullptr;
         return std::make_unique<PostgresBackend>(*url);
       }},
  };
  return backends;
}

INSTANTIATE_TEST_SUITE_P(Backends, ConformanceTest, ::testing::ValuesIn(AllBackends()),
                         [](const ::testing::TestParamInfo<BackendFactory>& info) {
                           std::string name = info.param.name;
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

}  // namespace cairn::conformance
