// ProjectionHost: the declarative SQL projections that `cairn serve` runs (the [[projections]] of
// its config file), each on its own thread, following the store until the server stops.
//
// Each projection runs as `cairn project --follow` would (include/cairn/projection.h): batches
// and checkpoints in one SQLite transaction, so a crash neither repeats nor skips an event. The
// thread alternates a Run() to the head with a status refresh, then waits for new events, so
// the runner is only ever used by its own thread and Statuses() never touches SQLite. A
// projection whose handler fails (on_error "stop") stops with its error in its status; the
// others go on. Thread-safety: Statuses() from any thread; Stop() once, from one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cairn/projection.h"
#include "cairn/status.h"
#include "cairn/store.h"

namespace cairn::server {

struct ProjectionConfig {
  std::string spec;                // path of the spec file (JSON)
  std::string sink;                // sqlite:PATH, or a plain path
  std::string on_error = "stop";   // "stop" or "park"
  uint32_t batch = ProjectionOptions{}.batch_max_events;
};

struct HostedProjectionStatus {
  std::string name;  // the projection's name (from its spec)
  std::string spec;
  std::string sink;
  // "catching-up", "live", "failed" or "stopped".
  std::string state;
  std::string error;  // for "failed": the runner's Status
  // The last status read (nullopt before the first one): read after every pass to the head, so
  // during a long catch-up it moves when the pass ends.
  std::optional<ProjectionStatus> status;
};

class ProjectionHost {
 public:
  ~ProjectionHost();  // Stop()

  // Reads every spec and opens every sink first (an error names the projection by its place in
  // the list and its spec file, and nothing is started), then starts them.
  static Result<std::unique_ptr<ProjectionHost>> Start(Store& store, const std::vector<ProjectionConfig>& configs);

  // In the order of the configuration.
  std::vector<HostedProjectionStatus> Statuses() const;

  // Stops every projection after its current batch and waits for the threads.
  void Stop();

 private:
  struct Hosted;
  ProjectionHost() = default;
  std::vector<std::unique_ptr<Hosted>> hosted_;
};

}  // namespace cairn::server
