// The CLI's names for the JSON shapes of events, append requests and results. The shapes live in
// server/json_format.h (one layer down, shared with the HTTP API); this header only brings them
// into cairn::cli so that the commands keep their short names.
#pragma once

#include "server/json_format.h"

namespace cairn::cli {

using server::AppendRequest;
using server::AppendResultToJson;
using server::Base64Encode;
using server::Json;
using server::JsonText;
using server::ParseAppendRequest;
using server::ParseAppendRequestLine;
using server::ParseExpectedVersion;
using server::RecordedEventToJson;
using server::StatusToJson;

}  // namespace cairn::cli
