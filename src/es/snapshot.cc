// Snapshots kept in the cairn store, in the system stream "$snapshot-<stream>" (snapshot.h).
#include "cairn/es/snapshot.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

namespace cairn::es {
namespace {

constexpr std::string_view kSnapshotType = "$snapshot";
constexpr std::string_view kStreamVersionKey = "$streamVersion";
constexpr std::string_view kStateVersionKey = "$stateVersion";

class StoreSnapshotStore final : public SnapshotStore {
 public:
  explicit StoreSnapshotStore(Store& store) : store_(store) {}

  Status Save(std::string_view stream, const Snapshot& snapshot) override {
    EventData e;
    e.id = Uuid::V7();
    e.type = std::string(kSnapshotType);
    e.data = snapshot.state_json;
    e.metadata = nlohmann::json{{kStreamVersionKey, snapshot.version}, {kStateVersionKey, snapshot.state_version}}.dump();
    AppendOptions options;
    options.allow_system_stream = true;
    auto r = store_.Append(SnapshotStreamOf(stream), ExpectedVersion::Any(), std::span(&e, 1), options);
    if (!r.ok()) return r.status().WithContext(fmt::format("save snapshot of {}", stream));
    return Status::Ok();
  }

  Result<std::optional<Snapshot>> Latest(std::string_view stream) override {
    const std::string name = SnapshotStreamOf(stream);
    ReadStreamOptions read;
    read.direction = ReadDirection::kBackward;
    read.max_count = 1;
    auto cursor = store_.ReadStream(name, read);
    if (!cursor.ok()) {
      if (cursor.status().IsNotFound()) return std::optional<Snapshot>();
      return cursor.status().WithContext(fmt::format("read snapshot of {}", stream));
    }
    if (!cursor->Next()) {
      if (!cursor->status().ok()) return cursor->status().WithContext(fmt::format("read snapshot of {}", stream));
      return std::optional<Snapshot>();
    }
    const RecordedEventView& e = cursor->event();
    nlohmann::json m = nlohmann::json::parse(e.metadata, nullptr, false);
    if (!m.is_object() || !m.contains(kStreamVersionKey) || !m[kStreamVersionKey].is_number_unsigned() ||
        !m.contains(kStateVersionKey) || !m[kStateVersionKey].is_number_unsigned()) {
      return Status::InvalidArgument(fmt::format("snapshot of {} at {} version {}: metadata lacks \"{}\" or \"{}\"",
                                                 stream, name, e.version, kStreamVersionKey, kStateVersionKey));
    }
    Snapshot s;
    s.version = m[kStreamVersionKey].get<uint64_t>();
    s.state_version = m[kStateVersionKey].get<uint32_t>();
    s.state_json = std::string(e.data);
    return std::optional<Snapshot>(std::move(s));
  }

  Status Delete(std::string_view stream) override {
    const std::string name = SnapshotStreamOf(stream);
    auto info = store_.GetStreamInfo(name);
    if (!info.ok()) return info.status().WithContext(fmt::format("delete snapshots of {}", stream));
    if (!info->last_version) return Status::Ok();
    // Truncate-before past the last snapshot hides them all (reads honour $tb); the next snapshot
    // appended is visible again. The metastream is the system's, so its metadata write is allowed.
    StreamMetadata metadata = info->metadata;
    metadata.truncate_before = *info->last_version + 1;
    auto r = store_.SetStreamMetadata(name, ExpectedVersion::Any(), metadata);
    if (!r.ok()) return r.status().WithContext(fmt::format("delete snapshots of {}", stream));
    return Status::Ok();
  }

 private:
  Store& store_;
};

}  // namespace

std::string SnapshotStreamOf(std::string_view stream) { return fmt::format("$snapshot-{}", stream); }

std::unique_ptr<SnapshotStore> NewStoreSnapshotStore(Store& store) { return std::make_unique<StoreSnapshotStore>(store); }

}  // namespace cairn::es
