// The one authorization hook of the HTTP API. Every endpoint, before it touches the store, asks
// it whether the request may do what it is about to do: the Authorization header as sent, the
// permission the endpoint needs, and the stream it acts on ("$all" for reads of $all, empty for
// endpoints about the whole server). The answer is the principal the request acts as, or
// kUnauthenticated (answered 401) / kPermissionDenied (answered 403).
//
// An empty Authorizer allows everything as an anonymous principal (authentication off); the
// server then listens on loopback only unless --insecure is given (CheckListenAddress).
// SecurityAuthorizer plugs in the users and permissions of src/auth (docs/security.md), the same
// ones gRPC calls go through.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "cairn/status.h"

namespace cairn::auth {
class Security;
}

namespace cairn::server::http {

// What an endpoint needs. The names follow the ACL permissions of issue 5 (read, write, delete,
// metadata read, metadata write); kPublic marks what must work before a login (the UI's static
// files, /health), kOperate the operator's views and actions (stats, subscriptions, groups),
// kMetrics the Prometheus scrape (/metrics) alone, so that a monitoring user needs no admin rights.
enum class Permission : uint8_t {
  kPublic,
  kRead,
  kWrite,
  kDelete,
  kMetadataRead,
  kMetadataWrite,
  kOperate,
  kMetrics,
};

std::string_view PermissionName(Permission permission);  // "read", "metadata-write", ...

struct AccessRequest {
  std::string_view authorization;  // the Authorization header, empty when absent
  Permission permission = Permission::kPublic;
  std::string_view stream;  // "$all" for $all; empty for the whole server
};

struct Principal {
  std::string name;  // empty: anonymous
};

using Authorizer = std::function<Result<Principal>(const AccessRequest&)>;

// The hook over auth::Security (borrowed; must outlive the server): Basic credentials from the
// header (none: anonymous), then the permission on the stream, mapped to auth::Permission as
// read -> kRead (kReadAll for "$all"), write, delete, metadata-read, metadata-write as they are,
// operate -> kOperate, metrics -> kMetrics ("$admins" and the roles of [security] metrics);
// public needs nothing. Listing streams by a prefix asks `read` on the
// prefix (the rule that covers every stream the list can show).
Authorizer SecurityAuthorizer(const auth::Security* security);

}  // namespace cairn::server::http
