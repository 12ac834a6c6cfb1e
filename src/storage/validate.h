// Input validation at the API boundary: every limit of cairn/store.h, with messages that name the
// field and the limit. Nothing reaches the writer unless it passed.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "cairn/store.h"

namespace cairn::storage {

Status ValidateStreamName(std::string_view stream, bool allow_system);
Status ValidateExpected(ExpectedVersion expected);
// Checks a whole append; returns the bytes its records will take in the log.
Result<uint64_t> ValidateAppend(std::string_view stream, ExpectedVersion expected, std::span<const EventData> events,
                                const AppendOptions& options, uint64_t segment_capacity);

// The rules both stores' writers decide appends by (the embedded engine and PostgreSQL alike).
inline constexpr std::string_view kMetadataType = "$metadata";      // a metastream's events
inline constexpr std::string_view kTombstoneType = "$streamDeleted";  // the tombstone record
std::string MetastreamName(std::string_view stream);                 // "$$" + stream
// Checks `expected` against a stream whose last version is `actual` (nullopt: no stream);
// kConflict with ErrorDetail::kWrongExpectedVersion and the actual version when it does not hold.
Status CheckExpected(std::string_view stream, ExpectedVersion expected, std::optional<uint64_t> actual);
Status StreamDeleted(std::string_view stream);   // kNotFound, ErrorDetail::kStreamDeleted
Status StreamNotFound(std::string_view stream);  // kNotFound, ErrorDetail::kStreamNotFound

}  // namespace cairn::storage
