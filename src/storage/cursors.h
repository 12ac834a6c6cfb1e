// The embedded engine's cursors: one over a stream's versions, one over the log ($all).
#pragma once

#include "cairn/read.h"
#include "storage/embedded_store.h"

namespace cairn::storage {

// Versions [lo, hi) of `entry` are visible; the caller holds the index lock (shared).
Result<EventCursor> MakeStreamCursor(const EmbeddedStore& store, StreamEntry* entry, uint64_t lo, uint64_t hi,
                                     const ReadStreamOptions& options);

// Events of the log below `limit`, per the options.
Result<EventCursor> MakeAllCursor(const EmbeddedStore& store, const ReadAllOptions& options, uint64_t limit);

}  // namespace cairn::storage
