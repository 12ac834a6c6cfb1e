// ProjectionHost: one thread per configured projection (src/server/projection_host.h).
#include "server/projection_host.h"

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <iterator>
#include <mutex>
#include <thread>

namespace cairn::server {

// How long a caught-up projection waits for an append at a time (and so how soon Stop() acts).
constexpr std::chrono::milliseconds kWaitSlice{200};

struct ProjectionHost::Hosted {
  Store* store = nullptr;
  std::unique_ptr<ProjectionRunner> runner;
  std::thread thread;
  std::atomic<bool> stop{false};
  mutable std::mutex mu;
  HostedProjectionStatus status;  // guarded by mu

  void Set(std::string state, std::string error = {}) {
    std::lock_guard lock(mu);
    status.state = std::move(state);
    status.error = std::move(error);
  }

  void Refresh() {
    auto s = runner->GetStatus();
    if (!s.ok()) return;  // a read error shows up in the next Run()
    std::lock_guard lock(mu);
    status.status = std::move(*s);
  }

  void Loop() {
    while (!stop.load()) {
      const Position head = store->HeadPosition();
      Status s = runner->Run({.follow = false});
      if (!s.ok()) {
        Refresh();
        Set("failed", s.ToString());
        return;
      }
      Refresh();
      if (stop.load()) break;
      // Caught up to `head` at least: wait for something newer.
      Set("live");
      while (!stop.load() && store->WaitForAppend(head, kWaitSlice) <= head) {
      }
    }
    Set("stopped");
  }
};

ProjectionHost::~ProjectionHost() { Stop(); }

Result<std::unique_ptr<ProjectionHost>> ProjectionHost::Start(Store& store, const std::vector<ProjectionConfig>& configs) {
  std::unique_ptr<ProjectionHost> host(new ProjectionHost());
  for (size_t i = 0; i < configs.size(); ++i) {
    const ProjectionConfig& c = configs[i];
    const std::string where = fmt::format("projections[{}] ({})", i, c.spec);
    std::ifstream in(c.spec, std::ios::binary);
    if (!in) return Status::NotFound(fmt::format("{}: cannot read the spec file", where));
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto projection = ProjectionFromSpec(text);
    if (!projection.ok()) return projection.status().WithContext(where);
    auto path = ProjectionSinkTarget(c.sink);
    if (!path.ok()) return path.status().WithContext(where + ": sink");
    ProjectionOptions options;
    options.batch_max_events = c.batch;
    if (c.on_error == "park") {
      options.on_error = OnHandlerError::kPark;
    } else if (c.on_error != "stop") {
      return Status::InvalidArgument(fmt::format("{}: on_error: \"{}\" (expected stop or park)", where, c.on_error));
    }
    std::string name = projection->name();
    auto runner = ProjectionRunner::Open(store, std::move(*projection), *path, options);
    if (!runner.ok()) return runner.status().WithContext(where);
    auto hosted = std::make_unique<Hosted>();
    hosted->store = &store;
    hosted->runner = std::move(*runner);
    hosted->status.name = std::move(name);
    hosted->status.spec = c.spec;
    hosted->status.sink = c.sink;
    hosted->status.state = "catching-up";
    host->hosted_.push_back(std::move(hosted));
  }
  for (auto& h : host->hosted_) {
    Hosted* raw = h.get();
    h->thread = std::thread([raw] { raw->Loop(); });
  }
  return host;
}

std::vector<HostedProjectionStatus> ProjectionHost::Statuses() const {
  std::vector<HostedProjectionStatus> out;
  for (const auto& h : hosted_) {
    std::lock_guard lock(h->mu);
    out.push_back(h->status);
  }
  return out;
}

void ProjectionHost::Stop() {
  for (auto& h : hosted_) {
    h->stop.store(true);
    h->runner->Stop();
  }
  for (auto& h : hosted_) {
    if (h->thread.joinable()) h->thread.join();
  }
}

}  // namespace cairn::server
