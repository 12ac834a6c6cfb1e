// Snapshots: an aggregate's state at a stream version, so that loading replays only the events
// after it. Repository (repository.h) writes them by policy and reads the latest on Load.
//
// SnapshotStore is the interface; NewStoreSnapshotStore keeps snapshots in the cairn store itself,
// in the system stream "$snapshot-<stream>" (one event of type "$snapshot" per snapshot: data is
// the state's JSON, metadata {"$streamVersion": v, "$stateVersion": n}). So snapshots are as
// durable as the events, travel with backups, and need nothing besides the store. Deleting a
// stream's snapshots sets truncate-before on the snapshot stream (EventStoreDB's meaning), so they
// are no longer read; a later snapshot is visible again.
//
// A snapshot is a cache: losing one costs a longer replay, never correctness. Implementations are
// thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "cairn/status.h"
#include "cairn/store.h"
#include "cairn/types.h"

namespace cairn::es {

struct Snapshot {
  StreamVersion version = 0;   // the version of the last event folded into the state
  uint32_t state_version = 1;  // the schema of the state (the aggregate's kStateVersion then)
  std::string state_json;      // the state, as JSON text
};

class SnapshotStore {
 public:
  virtual ~SnapshotStore() = default;
  virtual Status Save(std::string_view stream, const Snapshot& snapshot) = 0;
  // The newest snapshot of the stream, nullopt when there is none (or they were deleted).
  virtual Result<std::optional<Snapshot>> Latest(std::string_view stream) = 0;
  // Deletes every snapshot of the stream (OK when there is none).
  virtual Status Delete(std::string_view stream) = 0;
};

// Snapshots in `store` (which must outlive the result), in "$snapshot-<stream>".
std::unique_ptr<SnapshotStore> NewStoreSnapshotStore(Store& store);

// The stream that holds a stream's snapshots in a store: "$snapshot-<stream>".
std::string SnapshotStreamOf(std::string_view stream);

// When the repository takes a snapshot by itself (it can always be asked: Repository::TakeSnapshot).
struct SnapshotPolicy {
  // Take one after a save that crosses a multiple of `every_events` (by stream version); 0: never
  // by itself, only on demand.
  uint64_t every_events = 0;

  static SnapshotPolicy OnDemand() { return {}; }
  static SnapshotPolicy Every(uint64_t events) { return SnapshotPolicy{events}; }
};

}  // namespace cairn::es
