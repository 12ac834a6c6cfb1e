// The embedded engine's entry points below the public Store::Open: open a store on any Env
// (tests use MemEnv, FaultInjectionEnv and ManualClockEnv through these).
//
// Data directory layout (docs/format/log.md):
//   DIR/LOCK              the exclusive lock (holds the holder's pid, for the error message)
//   DIR/log/NNNNNNNNNNNNNNNN.seg   log segments, numbered from 0, fixed capacity each
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "cairn/store.h"
#include "env/env.h"

namespace cairn::storage {

// Opens (or creates) the store in `dir` on `env`, which must outlive the store.
Result<std::unique_ptr<Store>> OpenEmbedded(env::Env* env, const std::string& dir, const Options& options);

// Checks every record of the log in `dir` (see VerifyStore in cairn/store.h).
Status VerifyEmbedded(env::Env* env, const std::string& dir,
                      const std::function<void(uint64_t done, uint64_t total)>& progress);

}  // namespace cairn::storage
