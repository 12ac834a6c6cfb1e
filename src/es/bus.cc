// The in-process event bus. Commit order comes from the store: AppendAsync completes appends in
// commit order on the store's thread, and its callback only puts the batch in the queue. The
// saving thread then drains the queue under the dispatch mutex, so batches are dispatched in queue
// order (= commit order), one handler call at a time, on callers' threads rather than the store's.
#include "cairn/es/bus.h"

#include <fmt/format.h>

#include <future>

namespace cairn::es {
namespace {

// Set while this thread runs handlers: a save from inside a handler must not drain (it would
// deadlock on the dispatch mutex, and its batch is dispatched by the loop already running).
thread_local bool t_dispatching = false;

}  // namespace

struct EventBus::Batch {
  std::string stream;
  AppendResult result;
  std::vector<EventData> events;
  std::vector<Typed> typed;
  std::vector<HandlerError> errors;  // written under the dispatch mutex
};

std::string HandlerError::ToString() const {
  return fmt::format("handler '{}' failed on {} at {}@{}: {}", handler, type, stream, version, message);
}

void EventBus::OnType(std::string type, std::string name, Handler handler) {
  std::lock_guard lock(dispatch_mutex_);
  subscriptions_.push_back({std::move(type), std::move(name), std::move(handler)});
}

void EventBus::OnAll(std::string name, Handler handler) { OnType("", std::move(name), std::move(handler)); }

void EventBus::SetErrorReporter(std::function<void(const HandlerError&)> reporter) {
  std::lock_guard lock(dispatch_mutex_);
  reporter_ = std::move(reporter);
}

Result<AppendResult> EventBus::AppendAndPublish(Store& store, std::string_view stream, ExpectedVersion expected,
                                                std::span<const EventData> events, std::span<const Typed> typed,
                                                std::vector<HandlerError>* errors, const AppendOptions& options) {
  auto batch = std::make_shared<Batch>();
  batch->stream = std::string(stream);
  batch->events.assign(events.begin(), events.end());
  // Typed pointers are the caller's and live only until it returns; a save from inside a handler
  // returns before its batch is dispatched, so its handlers decode from JSON instead.
  if (!t_dispatching) batch->typed.assign(typed.begin(), typed.end());
  batch->typed.resize(events.size());

  auto done = std::make_shared<std::promise<Result<AppendResult>>>();
  auto future = done->get_future();
  store.AppendAsync(
      stream, expected, events,
      [this, batch, done](Result<AppendResult> r) {
        if (r.ok()) {
          batch->result = *r;
          Enqueue(batch);
        }
        done->set_value(std::move(r));
      },
      options);
  Result<AppendResult> result = future.get();
  if (!result.ok() || t_dispatching) return result;
  Drain();
  if (errors != nullptr) errors->insert(errors->end(), batch->errors.begin(), batch->errors.end());
  return result;
}

void EventBus::Enqueue(std::shared_ptr<Batch> batch) {
  std::lock_guard lock(queue_mutex_);
  queue_.push_back(std::move(batch));
}

void EventBus::Drain() {
  std::lock_guard dispatch(dispatch_mutex_);
  t_dispatching = true;
  for (;;) {
    std::shared_ptr<Batch> batch;
    {
      std::lock_guard lock(queue_mutex_);
      if (queue_.empty()) break;
      batch = std::move(queue_.front());
      queue_.pop_front();
    }
    Dispatch(*batch);
  }
  t_dispatching = false;
}

void EventBus::Dispatch(Batch& batch) {
  for (size_t i = 0; i < batch.events.size(); ++i) {
    const EventData& e = batch.events[i];
    PublishedEvent p;
    p.stream = batch.stream;
    p.version = batch.result.first_version + i;
    p.append_position = batch.result.position;
    p.id = e.id;
    p.type = e.type;
    p.data = e.data;
    p.metadata = e.metadata;
    p.content_type = e.content_type;
    p.typed = batch.typed[i].event;
    p.typed_type = batch.typed[i].type;
    for (const Subscription& s : subscriptions_) {
      if (!s.type.empty() && s.type != e.type) continue;
      std::string failure;
      try {
        Status status = s.handler(p);
        if (status.ok()) continue;
        failure = status.ToString();
      } catch (const std::exception& ex) {
        failure = fmt::format("threw: {}", ex.what());
      } catch (...) {
        failure = "threw a non-standard exception";
      }
      HandlerError error{s.name, batch.stream, p.version, e.type, std::move(failure)};
      if (reporter_) reporter_(error);
      batch.errors.push_back(std::move(error));
    }
  }
}

}  // namespace cairn::es
