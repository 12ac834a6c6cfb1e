#include "auth/security.h"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

#include "cairn/read.h"

namespace cairn::auth {

namespace {

using nlohmann::json;

constexpr std::string_view kUsersStream = "$users";
constexpr std::string_view kAdmins = "$admins";
constexpr std::string_view kAuthenticated = "$authenticated";
constexpr std::string_view kEveryone = "$everyone";
constexpr size_t kSaltBytes = 16;
constexpr size_t kHashBytes = 32;
constexpr uint64_t kScryptMaxMem = 256ull << 20;

const Status& WrongCredentials() {
  static const Status s(StatusCode::kUnauthenticated, "wrong user name or password");
  return s;
}

std::string Hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

std::optional<std::string> Unhex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi << 4 | lo));
  }
  return out;
}

std::optional<std::string> DecodeBase64(std::string_view in) {
  if (in.empty() || in.size() % 4 != 0 || in.size() > 4 * kMaxPasswordBytes) return std::nullopt;
  std::string out(in.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  if (n < 0) return std::nullopt;
  size_t pad = 0;
  if (in.back() == '=') pad = in[in.size() - 2] == '=' ? 2 : 1;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    throw std::runtime_error("RAND_bytes failed");
  }
  return out;
}

Result<std::string> Scrypt(std::string_view password, std::string_view salt, uint8_t log2_n, uint32_t r, uint32_t p) {
  std::string out(kHashBytes, '\0');
  if (EVP_PBE_scrypt(password.data(), password.size(), reinterpret_cast<const unsigned char*>(salt.data()),
                     salt.size(), uint64_t{1} << log2_n, r, p, kScryptMaxMem,
                     reinterpret_cast<unsigned char*>(out.data()), out.size()) != 1) {
    return Status::Internal(fmt::format("scrypt failed (N=2^{}, r={}, p={})", log2_n, r, p));
  }
  return out;
}

std::string Keyed(std::string_view key, std::string_view user, std::string_view password) {
  std::string msg(user);
  msg.push_back('\0');
  msg.append(password);
  unsigned char out[EVP_MAX_MD_SIZE];
  size_t len = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(),
                reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out, sizeof(out), &len) == nullptr) {
    return {};
  }
  return std::string(reinterpret_cast<char*>(out), len);
}

bool SameBytes(std::string_view a, std::string_view b) {
  return a.size() == b.size() && !a.empty() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool NameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-' || c == '@';
}

Status CheckName(std::string_view name, std::string_view field) {
  if (name.empty() || name.size() > kMaxUserNameBytes) {
    return Status::InvalidArgument(fmt::format("{} must have 1 to {} bytes (got {})", field, kMaxUserNameBytes, name.size()));
  }
  if (!std::all_of(name.begin(), name.end(), NameChar)) {
    return Status::InvalidArgument(fmt::format("{} \"{}\" may contain only letters, digits and . _ - @", field, name));
  }
  return Status::Ok();
}

Status CheckGroups(const std::vector<std::string>& groups) {
  for (const auto& g : groups) {
    if (g == kAdmins) continue;
    CAIRN_RETURN_IF_ERROR(CheckName(g, "group"));
  }
  return Status::Ok();
}

Status CheckPassword(std::string_view password) {
  if (password.size() < kMinPasswordBytes || password.size() > kMaxPasswordBytes) {
    return Status::InvalidArgument(fmt::format("password must have {} to {} bytes (got {})", kMinPasswordBytes,
                                               kMaxPasswordBytes, password.size()));
  }
  return Status::Ok();
}

const std::vector<std::string>& RuleRoles(const AclRule& rule, Permission p) {
  switch (p) {
    case Permission::kRead: return rule.read;
    case Permission::kWrite: return rule.write;
    case Permission::kDelete: return rule.del;
    case Permission::kMetadataRead: return rule.metadata_read;
    case Permission::kMetadataWrite: return rule.metadata_write;
    default: break;
  }
  static const std::vector<std::string> kNone;
  return kNone;
}

std::string_view AclKey(Permission p) {
  switch (p) {
    case Permission::kRead: return "$r";
    case Permission::kWrite: return "$w";
    case Permission::kDelete: return "$d";
    case Permission::kMetadataRead: return "$mr";
    case Permission::kMetadataWrite: return "$mw";
    default: return "";
  }
}

constexpr auto kVerifiedFor = std::chrono::seconds(60);

}  // namespace

std::string_view PermissionName(Permission p) {
  switch (p) {
    case Permission::kRead: return "read";
    case Permission::kWrite: return "write";
    case Permission::kDelete: return "delete";
    case Permission::kMetadataRead: return "metadata read";
    case Permission::kMetadataWrite: return "metadata write";
    case Permission::kReadAll: return "read $all";
    case Permission::kOperate: return "operate";
    case Permission::kMetrics: return "scrape";
  }
  return "?";
}

std::string BasicCredentials(std::string_view user, std::string_view password) {
  std::string raw(user);
  raw.push_back(':');
  raw.append(password);
  std::string out(4 * ((raw.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(raw.data()), static_cast<int>(raw.size()));
  out.resize(static_cast<size_t>(n));
  return "Basic " + out;
}

bool Principal::admin() const { return std::find(groups.begin(), groups.end(), kAdmins) != groups.end(); }

Security::Security(Store* store, SecurityOptions options)
    : store_(store), options_(std::move(options)), cache_key_(RandomBytes(32)) {}

Security::~Security() = default;

Result<std::unique_ptr<Security>> Security::Open(Store* store, const SecurityOptions& options,
                                                 std::string* generated_password) {
  for (size_t i = 0; i < options.policy.rules.size(); ++i) {
    const AclRule& rule = options.policy.rules[i];
    if (rule.prefix.size() > kMaxStreamNameBytes) {
      return Status::InvalidArgument(fmt::format("acl rule {}: prefix of {} bytes exceeds the limit of {} bytes", i + 1,
                                                 rule.prefix.size(), kMaxStreamNameBytes));
    }
    for (size_t j = 0; j < i; ++j) {
      if (options.policy.rules[j].prefix == rule.prefix) {
        return Status::InvalidArgument(
            fmt::format("acl rule {}: prefix \"{}\" is already the prefix of rule {}", i + 1, rule.prefix, j + 1));
      }
    }
    for (Permission p : {Permission::kRead, Permission::kWrite, Permission::kDelete, Permission::kMetadataRead,
                         Permission::kMetadataWrite}) {
      for (const auto& role : RuleRoles(rule, p)) {
        if (role.empty()) {
          return Status::InvalidArgument(fmt::format("acl rule {} ({}): an empty role", i + 1, PermissionName(p)));
        }
      }
    }
  }
  if (options.kdf_log2_n < 10 || options.kdf_log2_n > 20) {
    return Status::InvalidArgument(fmt::format("kdf_log2_n {} is outside 10..20", options.kdf_log2_n));
  }
  std::unique_ptr<Security> s(new Security(store, options));
  {
    std::lock_guard lock(s->mu_);
    CAIRN_RETURN_IF_ERROR(s->Refresh());
  }
  if (options.enabled) {
    // No administrator yet (the first start, or only users added offline with `cairn user`).
    bool no_admin = true;
    {
      std::lock_guard lock(s->mu_);
      for (const auto& [name, u] : s->users_) {
        if (std::find(u.groups.begin(), u.groups.end(), kAdmins) != u.groups.end()) no_admin = false;
      }
    }
    if (no_admin) {
      std::string password = options.initial_admin_password;
      if (password.empty()) {
        // 18 random bytes as base64url: 24 characters.
        const std::string raw = RandomBytes(18);
        std::string b64(32, '\0');
        const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()),
                                      reinterpret_cast<const unsigned char*>(raw.data()), static_cast<int>(raw.size()));
        b64.resize(static_cast<size_t>(n));
        std::replace(b64.begin(), b64.end(), '+', '-');
        std::replace(b64.begin(), b64.end(), '/', '_');
        password = b64;
        if (generated_password != nullptr) *generated_password = password;
      }
      Status created = s->CreateUser("admin", password, {std::string(kAdmins)});
      if (!created.ok()) {
        return Status(created.code(), "creating the first user \"admin\": " + created.message());
      }
    }
  }
  return s;
}

Status Security::Refresh() const {
  ReadStreamOptions o;
  o.from = users_version_ ? *users_version_ + 1 : 0;
  auto cursor = store_->ReadStream(kUsersStream, o);
  if (!cursor.ok()) {
    if (cursor.status().code() == StatusCode::kNotFound) return Status::Ok();
    return cursor.status();
  }
  while (cursor->Next()) {
    const RecordedEventView* e = &cursor->event();
    users_version_ = e->version;
    json j = json::parse(e->data, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("name") || !j["name"].is_string()) {
      return Status::Corruption(fmt::format("{} event {} is not a user event", kUsersStream, e->version));
    }
    const std::string name = j["name"].get<std::string>();
    auto read_hash = [&](User* u) -> Status {
      try {
        auto salt = Unhex(j.at("salt").get<std::string>());
        auto hash = Unhex(j.at("hash").get<std::string>());
        if (!salt || !hash) throw std::runtime_error("hex");
        u->salt = *salt;
        u->hash = *hash;
        u->log2_n = j.at("log2_n").get<uint8_t>();
        u->r = j.at("r").get<uint32_t>();
        u->p = j.at("p").get<uint32_t>();
      } catch (const std::exception&) {
        return Status::Corruption(fmt::format("{} event {}: the password hash of {} does not decode", kUsersStream,
                                              e->version, name));
      }
      return Status::Ok();
    };
    if (e->type == "$UserCreated") {
      User u;
      u.name = name;
      if (j.contains("groups") && j["groups"].is_array()) {
        for (const auto& g : j["groups"]) {
          if (g.is_string()) u.groups.push_back(g.get<std::string>());
        }
      }
      CAIRN_RETURN_IF_ERROR(read_hash(&u));
      users_[name] = std::move(u);
    } else if (e->type == "$PasswordChanged") {
      auto it = users_.find(name);
      if (it != users_.end()) CAIRN_RETURN_IF_ERROR(read_hash(&it->second));
    } else if (e->type == "$UserGroupsChanged") {
      auto it = users_.find(name);
      if (it != users_.end() && j.contains("groups") && j["groups"].is_array()) {
        it->second.groups.clear();
        for (const auto& g : j["groups"]) {
          if (g.is_string()) it->second.groups.push_back(g.get<std::string>());
        }
      }
    } else if (e->type == "$UserDeleted") {
      users_.erase(name);
    }
    verified_.erase(name);
  }
  return cursor->status();
}

Status Security::RefreshIfChanged() const {
  auto info = store_->GetStreamInfo(kUsersStream);
  if (!info.ok()) return info.status();
  if (info->last_version == users_version_) return Status::Ok();
  return Refresh();
}

Result<Security::User> Security::HashNew(std::string_view name, std::string_view password,
                                         const std::vector<std::string>& groups) const {
  User u;
  u.name = std::string(name);
  u.groups = groups;
  u.salt = RandomBytes(kSaltBytes);
  u.log2_n = options_.kdf_log2_n;
  CAIRN_ASSIGN_OR_RETURN(u.hash, Scrypt(password, u.salt, u.log2_n, u.r, u.p));
  return u;
}

Status Security::AppendUserEvent(std::string_view type, const std::string& data, std::optional<uint64_t> expected_last) {
  EventData e{Uuid::V7(), std::string(type), data, "", ContentType::kJson};
  AppendOptions ao;
  ao.allow_system_stream = true;
  const ExpectedVersion expected = expected_last ? ExpectedVersion::Exact(*expected_last) : ExpectedVersion::NoStream();
  auto r = store_->Append(kUsersStream, expected, std::span<const EventData>(&e, 1), ao);
  return r.status();
}

namespace {
json HashJson(const std::string& name, std::string_view salt, std::string_view hash, uint8_t log2_n, uint32_t r,
              uint32_t p) {
  return json{{"name", name}, {"kdf", "scrypt"}, {"log2_n", log2_n}, {"r", r},
              {"p", p},       {"salt", Hex(salt)}, {"hash", Hex(hash)}};
}
}  // namespace

Status Security::CreateUser(std::string_view name, std::string_view password, const std::vector<std::string>& groups) {
  CAIRN_RETURN_IF_ERROR(CheckName(name, "user name"));
  CAIRN_RETURN_IF_ERROR(CheckPassword(password));
  CAIRN_RETURN_IF_ERROR(CheckGroups(groups));
  CAIRN_ASSIGN_OR_RETURN(User u, HashNew(name, password, groups));
  json j = HashJson(u.name, u.salt, u.hash, u.log2_n, u.r, u.p);
  j["groups"] = groups;
  // Optimistic concurrency on "$users": another server on the same store may add users too.
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::lock_guard lock(mu_);
    CAIRN_RETURN_IF_ERROR(Refresh());
    if (users_.contains(u.name)) return Status::AlreadyExists(fmt::format("user {} already exists", name));
    Status s = AppendUserEvent("$UserCreated", j.dump(), users_version_);
    if (s.code() == StatusCode::kConflict) continue;
    CAIRN_RETURN_IF_ERROR(s);
    return Refresh();
  }
  return Status::Unavailable("the users stream kept changing; try again");
}

Status Security::ChangePassword(std::string_view name, std::string_view password) {
  CAIRN_RETURN_IF_ERROR(CheckPassword(password));
  CAIRN_ASSIGN_OR_RETURN(User u, HashNew(name, password, {}));
  const std::string data = HashJson(u.name, u.salt, u.hash, u.log2_n, u.r, u.p).dump();
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::lock_guard lock(mu_);
    CAIRN_RETURN_IF_ERROR(Refresh());
    if (!users_.contains(u.name)) return Status::NotFound(fmt::format("user {} does not exist", name));
    Status s = AppendUserEvent("$PasswordChanged", data, users_version_);
    if (s.code() == StatusCode::kConflict) continue;
    CAIRN_RETURN_IF_ERROR(s);
    return Refresh();
  }
  return Status::Unavailable("the users stream kept changing; try again");
}

Status Security::SetGroups(std::string_view name, const std::vector<std::string>& groups) {
  CAIRN_RETURN_IF_ERROR(CheckGroups(groups));
  const std::string data = json{{"name", name}, {"groups", groups}}.dump();
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::lock_guard lock(mu_);
    CAIRN_RETURN_IF_ERROR(Refresh());
    if (!users_.contains(std::string(name))) return Status::NotFound(fmt::format("user {} does not exist", name));
    Status s = AppendUserEvent("$UserGroupsChanged", data, users_version_);
    if (s.code() == StatusCode::kConflict) continue;
    CAIRN_RETURN_IF_ERROR(s);
    return Refresh();
  }
  return Status::Unavailable("the users stream kept changing; try again");
}

Status Security::DeleteUser(std::string_view name) {
  const std::string data = json{{"name", name}}.dump();
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::lock_guard lock(mu_);
    CAIRN_RETURN_IF_ERROR(Refresh());
    if (!users_.contains(std::string(name))) return Status::NotFound(fmt::format("user {} does not exist", name));
    Status s = AppendUserEvent("$UserDeleted", data, users_version_);
    if (s.code() == StatusCode::kConflict) continue;
    CAIRN_RETURN_IF_ERROR(s);
    return Refresh();
  }
  return Status::Unavailable("the users stream kept changing; try again");
}

Result<std::vector<UserInfo>> Security::ListUsers() const {
  std::lock_guard lock(mu_);
  CAIRN_RETURN_IF_ERROR(Refresh());
  std::vector<UserInfo> out;
  for (const auto& [name, u] : users_) out.push_back(UserInfo{name, u.groups});
  std::sort(out.begin(), out.end(), [](const UserInfo& a, const UserInfo& b) { return a.name < b.name; });
  return out;
}

Result<Principal> Security::Authenticate(std::string_view authorization) const {
  if (authorization.empty()) return Principal{};
  constexpr std::string_view kBasic = "basic ";
  if (authorization.size() <= kBasic.size() ||
      !std::equal(kBasic.begin(), kBasic.end(), authorization.begin(),
                  [](char a, char b) { return a == (b >= 'A' && b <= 'Z' ? b - 'A' + 'a' : b); })) {
    return Status(StatusCode::kUnauthenticated, "unsupported authorization: expected \"Basic base64(user:password)\"");
  }
  std::string_view b64 = authorization.substr(kBasic.size());
  while (!b64.empty() && b64.front() == ' ') b64.remove_prefix(1);
  while (!b64.empty() && b64.back() == ' ') b64.remove_suffix(1);
  auto decoded = DecodeBase64(b64);
  if (!decoded) return Status(StatusCode::kUnauthenticated, "malformed Basic credentials (not base64)");
  const size_t colon = decoded->find(':');
  if (colon == std::string::npos) {
    return Status(StatusCode::kUnauthenticated, "malformed Basic credentials (no ':' between user and password)");
  }
  return Authenticate(std::string_view(*decoded).substr(0, colon), std::string_view(*decoded).substr(colon + 1));
}

Result<Principal> Security::Authenticate(std::string_view user, std::string_view password) const {
  if (user.empty() || user.size() > kMaxUserNameBytes || password.size() > kMaxPasswordBytes) return WrongCredentials();
  const std::string name(user);
  const std::string keyed = Keyed(cache_key_, user, password);
  User u;
  {
    std::lock_guard lock(mu_);
    // Users change rarely but may change in another server on the same store: one cheap look at
    // the stream's last version per call keeps every decision current.
    CAIRN_RETURN_IF_ERROR(RefreshIfChanged());
    auto it = users_.find(name);
    if (it == users_.end()) return WrongCredentials();
    auto v = verified_.find(name);
    if (v != verified_.end() && std::chrono::steady_clock::now() < v->second.expiry &&
        SameBytes(v->second.keyed, keyed)) {
      return Principal{name, it->second.groups};
    }
    u = it->second;
  }
  // The slow check, outside the lock.
  CAIRN_ASSIGN_OR_RETURN(std::string hash, Scrypt(password, u.salt, u.log2_n, u.r, u.p));
  std::lock_guard lock(mu_);
  if (!SameBytes(hash, u.hash)) return WrongCredentials();
  // Still the same user and password hash (not changed or deleted meanwhile)?
  CAIRN_RETURN_IF_ERROR(RefreshIfChanged());
  auto it = users_.find(name);
  if (it == users_.end() || it->second.hash != u.hash) return WrongCredentials();
  verified_[name] = Verified{std::chrono::steady_clock::now() + kVerifiedFor, keyed};
  return Principal{name, it->second.groups};
}

bool Security::Allowed(const Principal& who, const std::vector<std::string>& roles) const {
  for (const auto& role : roles) {
    if (role == kEveryone) return true;
    if (who.anonymous()) continue;
    if (role == kAuthenticated || role == who.name) return true;
    if (std::find(who.groups.begin(), who.groups.end(), role) != who.groups.end()) return true;
  }
  return false;
}

Result<std::optional<std::vector<std::string>>> Security::StreamAclRoles(std::string_view stream, Permission what) const {
  auto info = store_->GetStreamInfo(stream);
  if (!info.ok()) return info.status();
  if (info->metadata.acl_json.empty()) return std::optional<std::vector<std::string>>();
  json acl = json::parse(info->metadata.acl_json, nullptr, false);
  const std::string key(AclKey(what));
  if (!acl.is_object() || key.empty() || !acl.contains(key)) return std::optional<std::vector<std::string>>();
  std::vector<std::string> roles;
  const json& v = acl[key];
  if (v.is_string()) {
    roles.push_back(v.get<std::string>());
  } else if (v.is_array()) {
    for (const auto& r : v) {
      if (r.is_string()) roles.push_back(r.get<std::string>());
    }
  }
  return std::optional<std::vector<std::string>>(std::move(roles));
}

Status Security::Authorize(const Principal& who, Permission what, std::string_view stream) const {
  if (!options_.enabled || who.admin()) return Status::Ok();
  // Reading or writing "$$x" is reading or writing x's metadata.
  if (stream.starts_with("$$") && (what == Permission::kRead || what == Permission::kWrite)) {
    what = what == Permission::kRead ? Permission::kMetadataRead : Permission::kMetadataWrite;
    stream.remove_prefix(2);
  }
  bool allowed = false;
  if (what == Permission::kReadAll) {
    allowed = Allowed(who, options_.policy.read_all);
  } else if (what == Permission::kMetrics) {
    allowed = Allowed(who, options_.policy.metrics);
  } else if (what != Permission::kOperate) {
    std::optional<std::vector<std::string>> roles;
    if (!stream.empty()) {
      CAIRN_ASSIGN_OR_RETURN(roles, StreamAclRoles(stream, what));
    }
    if (!roles) {
      // The longest prefix rule; rules reach system streams only with a prefix starting with '$'.
      const AclRule* best = nullptr;
      for (const auto& rule : options_.policy.rules) {
        if (!stream.starts_with(rule.prefix)) continue;
        if (stream.starts_with('$') && !rule.prefix.starts_with('$')) continue;
        if (best == nullptr || rule.prefix.size() > best->prefix.size()) best = &rule;
      }
      if (best != nullptr) roles = RuleRoles(*best, what);
    }
    allowed = roles && Allowed(who, *roles);
  }
  if (allowed) return Status::Ok();
  const std::string target = what == Permission::kReadAll  ? std::string("$all")
                             : what == Permission::kOperate ? std::string("the server")
                             : what == Permission::kMetrics ? std::string("the server's metrics")
                                                            : fmt::format("stream {}", stream);
  if (who.anonymous()) {
    return Status(StatusCode::kUnauthenticated,
                  fmt::format("access denied: {} on {} needs a signed-in user", PermissionName(what), target));
  }
  return Status(StatusCode::kPermissionDenied,
                fmt::format("access denied: user {} may not {} {}", who.name, PermissionName(what), target));
}

}  // namespace cairn::auth
