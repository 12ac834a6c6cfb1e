// Input validation at the API boundary: every limit of cairn/store.h, with messages that name the
// field and the limit. Nothing reaches the writer unless it passed.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "cairn/store.h"

namespace cairn::storage {

Status ValidateStreamName(std::string_view stream, bool allow_system);
Status ValidateExpected(ExpectedVersion expected);
// Checks a whole append; returns the bytes its records will take in the log.
Result<uint64_t> ValidateAppend(std::string_view stream, ExpectedVersion expected, std::span<const EventData> events,
                                const AppendOptions& options, uint64_t segment_capacity);

}  // namespace cairn::storage
