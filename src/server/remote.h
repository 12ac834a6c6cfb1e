// Talking to a running server (cairn, or any EventStoreDB / KurrentDB) over the v1 gRPC protocol:
// what the CLI's --server uses, so that `cairn append`, `read` and `tail` work while `cairn serve`
// owns the data directory.
//
// URLs: esdb://[USER:PASSWORD@]HOST:PORT[?tls=true|false&tlsCAFile=PATH] (also kurrentdb://,
// kdb://). tls defaults to true, as in the official clients; tlsCAFile is a PEM file of the CA
// that signed the server's certificate (else the system's CAs). One host only (no gossip
// discovery). Credentials go as Basic authentication on every call.
//
// A RemoteStore is a Store whose calls are protocol calls. What the protocol cannot say is
// kNotSupported: ListStreams (use the HTTP API's GET /streams), PositionAtTime and temporal reads
// (as_of). WaitForAppend polls the head every 100 ms. $all cursors resume "past" an event at its
// position + 1, which only this client understands; use SubscribeRemote for live following.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "cairn/read.h"
#include "cairn/status.h"
#include "cairn/store.h"
#include "cairn/subscription.h"

namespace cairn::server {

struct RemoteUrl {
  std::string address;  // HOST:PORT
  bool tls = true;
  std::string ca_file;
  std::string user;
  std::string password;
};

// Whether `url` names a server (esdb://, kurrentdb://, kdb://) rather than a store.
bool IsRemoteUrl(std::string_view url);
// kInvalidArgument naming the part that is wrong.
Result<RemoteUrl> ParseRemoteUrl(std::string_view url);

Result<std::unique_ptr<Store>> OpenRemoteStore(std::string_view url);

// A catch-up subscription run by the server: to `stream`, or to "$all" with `filter` (stream
// prefixes or event types, not both; categories become prefixes "category-"). `from`: for a
// stream, the first version to deliver; for $all, 0 is the start and any other value the position
// of an event, delivery starting after it (the protocol's meaning); nullopt: only events from now.
Result<std::unique_ptr<Subscription>> SubscribeRemote(std::string_view url, std::string_view stream,
                                                      std::optional<uint64_t> from, const EventFilter& filter);

}  // namespace cairn::server
