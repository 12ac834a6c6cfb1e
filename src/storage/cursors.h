// The embedded engine's cursors: one over a stream's versions, one over the log ($all).
#pragma once

#include "cairn/read.h"
#include "storage/embedded_store.h"

namespace cairn::storage {

// Versions [lo, hi) of `stream` are visible (and published: their positions never change).
Result<EventCursor> MakeStreamCursor(const EmbeddedStore& store, std::string stream, uint64_t lo, uint64_t hi,
                                     const ReadStreamOptions& options);

// Events of the log below `limit`, per the options.
Result<EventCursor> MakeAllCursor(const EmbeddedStore& store, const ReadAllOptions& options, uint64_t limit);

}  // namespace cairn::storage
