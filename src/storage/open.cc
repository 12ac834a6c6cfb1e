// Store::Open and VerifyStore: URL parsing and dispatch to a backend.
#include <fmt/format.h>

#include <charconv>
#include <cstdio>
#include <unordered_map>

#include "cairn/store.h"
#include "postgres/pg_store.h"
#include "storage/embedded_store.h"
#include "storage/engine.h"
#include "storage/log.h"

namespace cairn {

namespace {

struct ParsedUrl {
  enum class Kind { kFile, kMemory } kind;
  std::string path;
  Options options;
};

Result<uint64_t> ParseNumber(std::string_view key, std::string_view value) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (ec != std::errc() || p != value.data() + value.size() || value.empty()) {
    return Status::InvalidArgument(fmt::format("store URL: {}={} is not a non-negative integer", key, value));
  }
  return v;
}

Result<ParsedUrl> ParseUrl(std::string_view url, const Options& base) {
  ParsedUrl out;
  out.options = base;
  std::string_view rest;
  if (url.starts_with("file:")) {
    out.kind = ParsedUrl::Kind::kFile;
    rest = url.substr(5);
  } else if (url.starts_with("memory:")) {
    out.kind = ParsedUrl::Kind::kMemory;
    rest = url.substr(7);
  } else {
    return Status::InvalidArgument(fmt::format(
        "store URL \"{}\": expected file:PATH, memory: or postgres://user:pass@host:port/db (with optional "
        "?key=value options)",
        url));
  }
  std::string_view query;
  if (size_t q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  out.path = std::string(rest);
  if (out.kind == ParsedUrl::Kind::kFile && out.path.empty()) {
    return Status::InvalidArgument("store URL: file: needs a directory path, as in file:./cairn-data");
  }
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view kv = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = kv.find('=');
    if (eq == std::string_view::npos) return Status::InvalidArgument(fmt::format("store URL: option \"{}\" has no value", kv));
    std::string_view key = kv.substr(0, eq), value = kv.substr(eq + 1);
    if (key == "sync") {
      if (value == "always") out.options.sync = SyncMode::kAlways;
      else if (value == "interval") out.options.sync = SyncMode::kInterval;
      else if (value == "none") out.options.sync = SyncMode::kNone;
      else return Status::InvalidArgument(fmt::format("store URL: sync={} (expected always, interval or none)", value));
    } else if (key == "sync_interval_ms") {
      CAIRN_ASSIGN_OR_RETURN(uint64_t v, ParseNumber(key, value));
      if (v == 0 || v > 60'000) return Status::InvalidArgument("store URL: sync_interval_ms must be 1 to 60000");
      out.options.sync_interval_ms = static_cast<uint32_t>(v);
    } else if (key == "segment_size") {
      CAIRN_ASSIGN_OR_RETURN(out.options.segment_size_bytes, ParseNumber(key, value));
    } else if (key == "idempotency_window") {
      CAIRN_ASSIGN_OR_RETURN(out.options.idempotency_window_events, ParseNumber(key, value));
    } else if (key == "index_memory") {
      CAIRN_ASSIGN_OR_RETURN(out.options.index_memory_bytes, ParseNumber(key, value));
    } else {
      return Status::InvalidArgument(fmt::format(
          "store URL: unknown option \"{}\" (known: sync, sync_interval_ms, segment_size, idempotency_window, index_memory)", key));
    }
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<Store>> Store::Open(std::string_view url, const Options& options) {
  if (url.starts_with("postgres://") || url.starts_with("postgresql://")) {
    return postgres::OpenPgStore(url, options);  // src/postgres: its own URL options
  }
  CAIRN_ASSIGN_OR_RETURN(ParsedUrl parsed, ParseUrl(url, options));
  if (parsed.kind == ParsedUrl::Kind::kMemory) {
    auto env = env::NewMemEnv();
    env::Env* raw = env.get();
    return storage::EmbeddedStore::Open(raw, std::move(env), "/memory", parsed.options);
  }
  if (parsed.options.sync != SyncMode::kAlways) {
    // The contract says weaker modes say so loudly.
    std::fprintf(stderr, "cairn: warning: %s opened with sync=%s: acknowledged appends can be lost on a power failure\n",
                 parsed.path.c_str(), parsed.options.sync == SyncMode::kNone ? "none" : "interval");
  }
  return storage::EmbeddedStore::Open(env::Env::Posix(), nullptr, parsed.path, parsed.options);
}

Status VerifyStore(std::string_view url, const std::function<void(uint64_t, uint64_t)>& progress) {
  if (url.starts_with("postgres://") || url.starts_with("postgresql://")) {
    return Status::NotSupported("verify checks the embedded engine's log files; on PostgreSQL use its own checks (pg_amcheck)");
  }
  CAIRN_ASSIGN_OR_RETURN(ParsedUrl parsed, ParseUrl(url, Options{}));
  if (parsed.kind != ParsedUrl::Kind::kFile) return Status::InvalidArgument("verify needs a file: store URL");
  return storage::VerifyEmbedded(env::Env::Posix(), parsed.path, progress);
}

namespace storage {

Result<std::unique_ptr<Store>> OpenEmbedded(env::Env* env, const std::string& dir, const Options& options) {
  return EmbeddedStore::Open(env, nullptr, dir, options);
}

Status VerifyEmbedded(env::Env* env, const std::string& dir,
                      const std::function<void(uint64_t done, uint64_t total)>& progress) {
  if (!env->FileExists(dir)) return Status::NotFound(fmt::format("data directory {} does not exist", dir));
  CAIRN_ASSIGN_OR_RETURN(auto lock, env->LockFile(dir + "/LOCK"));
  // Besides each record's own checks: versions of every stream follow each other with no gap.
  std::unordered_map<std::string, uint64_t> next;
  auto check = [&](const RecordView& r) -> Status {
    if (r.tombstone()) return Status::Ok();
    auto [it, inserted] = next.try_emplace(std::string(r.stream), 0);
    if (r.version != it->second) {
      return Status::Corruption(fmt::format("stream {}: version {} where {} was expected", r.stream, r.version, it->second));
    }
    it->second++;
    return Status::Ok();
  };
  LogOpenOptions lo;
  lo.verify_only = true;
  lo.create = false;
  lo.progress = progress;
  RecoveryReport report;
  auto log = Log::Open(env, dir, lo, check, &report);
  return log.ok() ? Status::Ok() : log.status();
}

}  // namespace storage
}  // namespace cairn
