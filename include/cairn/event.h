// Events: what the caller appends (EventData) and what the store gives back (RecordedEvent, and
// RecordedEventView for zero-copy reads).
//
// The store treats data and metadata as opaque bytes; content_type says whether they are JSON.
// Metadata keys the whole of cairn understands (set by the toolkit and the server, readable by
// anyone): "$correlationId", "$causationId" and "$user" (EventStoreDB's spelling). Keys beginning
// with "$" are reserved.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "cairn/types.h"

namespace cairn {

// On disk (a record's content-type byte): never change or reuse.
enum class ContentType : uint8_t { kBytes = 0, kJson = 1 };

// Reserved metadata keys (see the header comment).
inline constexpr std::string_view kMetadataCorrelationId = "$correlationId";
inline constexpr std::string_view kMetadataCausationId = "$causationId";
inline constexpr std::string_view kMetadataUser = "$user";

// An event to append. A nil id asks the store to generate a UUIDv7. Give your own id to make
// retries idempotent (see Store::Append).
struct EventData {
  Uuid id;
  std::string type;  // what happened, past tense: "Deposited"
  std::string data;
  std::string metadata;
  ContentType content_type = ContentType::kJson;
};

// A stored event, borrowed. The string views point into the store's memory (for the embedded
// engine, into the mapped log): they stay valid until the cursor that produced the view advances
// or is destroyed. Copy with ToOwned() to keep it longer.
struct RecordedEventView {
  std::string_view stream;
  StreamVersion version = 0;
  Position position;
  Uuid id;
  std::string_view type;
  std::string_view data;
  std::string_view metadata;
  ContentType content_type = ContentType::kJson;
  Timestamp recorded_at;

  struct RecordedEvent ToOwned() const;
};

// A stored event, owned.
struct RecordedEvent {
  std::string stream;
  StreamVersion version = 0;
  Position position;
  Uuid id;
  std::string type;
  std::string data;
  std::string metadata;
  ContentType content_type = ContentType::kJson;
  Timestamp recorded_at;

  RecordedEventView View() const;
};

// The category of a stream: the part before the first '-' ("account-123" -> "account"); the
// whole name when it has no '-'.
std::string_view StreamCategory(std::string_view stream);

}  // namespace cairn
