// Security: who is calling (authentication) and what they may do (authorization), for the
// server's gRPC and HTTP fronts alike.
//
// Users live in the store itself, in the system stream "$users" (events $UserCreated,
// $PasswordChanged, $UserGroupsChanged, $UserDeleted), so every server on one store (also on
// PostgreSQL) sees the same users. Passwords are kept only as scrypt hashes (OpenSSL; random
// 16-byte salt; N, r, p stored with each hash). Checking a password costs tens of milliseconds
// on purpose; a successful check is remembered (as a keyed hash, never the password) so that a
// client sending the same credentials on every call pays it once.
//
// Permissions (Permission below) are granted per stream by, in order:
//   1. membership in the group "$admins": everything;
//   2. the stream's own "$acl" metadata, EventStoreDB's keys "$r", "$w", "$d", "$mr", "$mw"
//      (a role or a list of roles), when it has the key for the permission;
//   3. the longest matching prefix rule of the policy (AclRule, from the server's config);
//   4. otherwise denied.
// A role is a user name, a group name, "$authenticated" (any signed-in user) or "$everyone"
// (also anonymous callers). Reading $all is its own permission (SecurityPolicy::read_all), and so
// is operating the server (users, subscription groups, projections): "$admins" only. Scraping
// the metrics (kMetrics) is allowed to "$admins" and the roles of SecurityPolicy::metrics, so a
// monitoring user need not be an admin.
//
// When authentication is off (SecurityOptions::enabled false), every caller is the anonymous
// admin and everything is allowed: the server then listens on loopback only (docs/security.md).
//
// Thread-safety: all methods may be called from any number of threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cairn/status.h"
#include "cairn/store.h"

namespace cairn::auth {

enum class Permission : uint8_t {
  kRead,           // read a stream (and subscribe to it)
  kWrite,          // append to a stream
  kDelete,         // soft delete or tombstone a stream
  kMetadataRead,   // read "$$stream"
  kMetadataWrite,  // write "$$stream"
  kReadAll,        // read or subscribe to $all (the stream argument is ignored)
  kOperate,        // users, persistent subscription groups, projections (stream ignored)
  kMetrics,        // scrape the server's Prometheus metrics (stream ignored); kOperate implies it
};
std::string_view PermissionName(Permission p);  // "read", "write", ...

struct Principal {
  std::string name;  // empty for anonymous
  std::vector<std::string> groups;
  bool anonymous() const { return name.empty(); }
  bool admin() const;  // in "$admins"
};

struct AclRule {
  std::string prefix;  // stream name prefix; "" matches every stream
  std::vector<std::string> read, write, del, metadata_read, metadata_write;
};

struct SecurityPolicy {
  std::vector<AclRule> rules;
  std::vector<std::string> read_all;  // who may read $all (besides "$admins")
  std::vector<std::string> metrics;   // who may scrape /metrics (besides "$admins")
};

struct SecurityOptions {
  bool enabled = false;
  SecurityPolicy policy;
  // The admin's password at first start (no user exists yet); empty: generate one and report it
  // through `on_generated_password` (printed once by `cairn serve`).
  std::string initial_admin_password;
  // scrypt cost: N = 2^kdf_log2_n. 15 in production (about 32 MiB and 50-100 ms a check); tests
  // lower it. Hashes keep their own parameters, so changing it affects only new passwords.
  uint8_t kdf_log2_n = 15;
};

inline constexpr size_t kMinPasswordBytes = 8;
inline constexpr size_t kMaxPasswordBytes = 1024;
inline constexpr size_t kMaxUserNameBytes = 128;

struct UserInfo {
  std::string name;
  std::vector<std::string> groups;
};

// The Authorization header value a client sends: "Basic base64(user:password)".
std::string BasicCredentials(std::string_view user, std::string_view password);

class Security {
 public:
  // Loads the users from `store` (borrowed; must outlive this). With security enabled and no user
  // in "$admins" yet, creates "admin" in "$admins" with the initial password, or a generated one
  // returned in *generated_password (kAlreadyExists if a user "admin" exists outside "$admins"). kInvalidArgument for a bad policy (naming the rule and field).
  static Result<std::unique_ptr<Security>> Open(Store* store, const SecurityOptions& options,
                                                std::string* generated_password = nullptr);

  bool enabled() const { return options_.enabled; }

  // The caller of a request carrying this Authorization header value ("" when none). "Basic
  // base64(user:password)" -> the user; "" -> anonymous. kUnauthenticated for a malformed header,
  // an unknown user or a wrong password (the message does not say which).
  Result<Principal> Authenticate(std::string_view authorization) const;
  // The same with user and password given apart (gRPC call credentials, the CLI).
  Result<Principal> Authenticate(std::string_view user, std::string_view password) const;

  // OK, or kPermissionDenied naming the permission and the stream (kUnauthenticated when the
  // caller is anonymous and a signed-in user might have been allowed).
  Status Authorize(const Principal& who, Permission what, std::string_view stream) const;

  // User management (the caller checks kOperate first).
  Status CreateUser(std::string_view name, std::string_view password, const std::vector<std::string>& groups);
  Status ChangePassword(std::string_view name, std::string_view password);
  Status SetGroups(std::string_view name, const std::vector<std::string>& groups);
  Status DeleteUser(std::string_view name);
  Result<std::vector<UserInfo>> ListUsers() const;

  ~Security();
  Security(const Security&) = delete;
  Security& operator=(const Security&) = delete;

 private:
  struct User {
    std::string name;
    std::vector<std::string> groups;
    std::string salt;  // raw bytes
    std::string hash;  // raw bytes
    uint8_t log2_n = 15;
    uint32_t r = 8, p = 1;
  };
  Security(Store* store, SecurityOptions options);
  Status Refresh() const;  // reads "$users" events appended since the last refresh
  Status RefreshIfChanged() const;
  Status AppendUserEvent(std::string_view type, const std::string& json, std::optional<uint64_t> expected_last);
  Result<User> HashNew(std::string_view name, std::string_view password, const std::vector<std::string>& groups) const;
  bool Allowed(const Principal& who, const std::vector<std::string>& roles) const;
  Result<std::optional<std::vector<std::string>>> StreamAclRoles(std::string_view stream, Permission what) const;

  Store* store_;
  SecurityOptions options_;
  std::string cache_key_;  // random, per process: keys the remembered-credentials hashes
  mutable std::mutex mu_;
  mutable std::unordered_map<std::string, User> users_;  // under mu_
  mutable std::optional<uint64_t> users_version_;        // last "$users" version applied
  struct Verified {
    std::chrono::steady_clock::time_point expiry;
    std::string keyed;  // HMAC(cache_key_, user, password): never the password itself
  };
  mutable std::unordered_map<std::string, Verified> verified_;  // user -> a recent good password
};

}  // namespace cairn::auth
