// Backend: what the conformance suite needs from a backend, so that one suite runs on all of them.
//
// A backend opens stores (a fresh one, or the last one again), says whether stores survive a
// reopen, and, when it can, lets the test set the wall clock that stamps recorded_at. A new
// backend (PostgreSQL) joins the suite by implementing Backend and adding one BackendFactory to
// AllBackends() in backends.cc; nothing else changes.
//
// Ownership: a Backend owns everything its stores borrow (Envs, directories, connections). A test
// destroys every Store it opened from a Backend before the Backend, and before calling OpenFresh
// again. Reopen may be called while a store is still open (to test the directory lock).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "cairn/status.h"
#include "cairn/store.h"
#include "cairn/types.h"

namespace cairn::conformance {

class Backend {
 public:
  virtual ~Backend() = default;

  // The options a test starts from: Options{} plus what this backend varies on purpose (for
  // "file-small-segments", the segment size).
  virtual Options BaseOptions() const { return Options{}; }

  // Opens a new, empty store with `options`. Every call gives a store no earlier call has seen.
  virtual Result<std::unique_ptr<Store>> OpenFresh(const Options& options) = 0;

  // Whether a store's contents survive Close() and Reopen().
  virtual bool persistent() const = 0;
  // Opens the store of the last OpenFresh again. Only when persistent().
  virtual Result<std::unique_ptr<Store>> Reopen(const Options& options) = 0;

  // Whether a second open of the store, while the first is open, fails with kUnavailable /
  // kStoreLocked (the embedded engine's directory lock). Not so for a shared server backend.
  virtual bool exclusive_open() const = 0;

  // Whether the test can set the clock that stamps recorded_at (temporal tests need it).
  virtual bool has_clock() const = 0;
  // The clock's current time. Only when has_clock().
  virtual Timestamp Now() const = 0;
  // Sets the clock, also backwards. Only when has_clock().
  virtual void SetClock(Timestamp time) = 0;
  void AdvanceClock(std::chrono::nanoseconds delta) { SetClock(Timestamp{Now().nanos + delta.count()}); }
};

struct BackendFactory {
  // Shown in test names ("memory", "file", "file-small-segments"; '-' becomes '_' there).
  std::string name;
  // A new Backend, or nullptr when it is unavailable here (then its tests are skipped, saying so).
  std::function<std::unique_ptr<Backend>()> make;
};

// Test names and failure messages show the backend's name.
inline void PrintTo(const BackendFactory& factory, std::ostream* os) { *os << factory.name; }

// Every backend the suite runs on, in this build.
const std::vector<BackendFactory>& AllBackends();

// The time every backend's clock starts at: 2026-05-28T...Z, an ordinary present-day time.
inline constexpr Timestamp kClockStart = Timestamp::FromSeconds(1'780'000'000);

}  // namespace cairn::conformance
