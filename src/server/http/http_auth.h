// The one authorization hook of the HTTP API. Every endpoint, before it touches the store, asks
// it whether the request may do what it is about to do: the Authorization header as sent, the
// permission the endpoint needs, and the stream it acts on ("$all" for reads of $all, empty for
// endpoints about the whole server). The answer is the principal the request acts as, or
// kUnauthenticated (answered 401) / kPermissionDenied (answered 403).
//
// Until users and ACLs exist (src/auth, issue 5), the default hook (an empty Authorizer) allows
// everything as an anonymous principal; the server then listens on loopback only unless
// --insecure is given (CheckListenAddress). Plugging in authentication is one Authorizer.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "cairn/status.h"

namespace cairn::server::http {

// What an endpoint needs. The names follow the ACL permissions of issue 5 (read, write, delete,
// metadata read, metadata write); kPublic marks what must work before a login (the UI's static
// files, /health), kOperate the operator's views (metrics, stats, subscriptions).
enum class Permission : uint8_t { kPublic, kRead, kWrite, kDelete, kMetadataRead, kMetadataWrite, kOperate };

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

}  // namespace cairn::server::http
