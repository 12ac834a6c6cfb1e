// EventBus: in-process handlers called with the events a Repository has just saved.
//
//   es::EventBus bus;
//   bus.On<Deposited>("audit", [&](const Deposited& e, const es::PublishedEvent& p) { ... });
//   es::Repository<BankAccount> accounts(*store, {.bus = &bus});
//
// Guarantees:
// - Handlers run only after the append is acknowledged (durable under the store's sync mode), on
//   the saving thread, before Save / Execute returns (unless the save happens inside a handler, see
//   below).
// - Handlers see events in commit order, across all repositories and threads sharing the bus:
//   one handler call at a time, appends in the order the store committed them.
// - A failing handler (it throws, or returns a non-OK Status) never undoes the save and does not
//   stop the other handlers: the failure is returned with the save (Committed::handler_errors)
//   and given to the error reporter, if one is set.
// - A save made by a handler is published after the current event's handlers finish, by the
//   thread already dispatching; its failures then go to the error reporter only.
//
// This is not a durable subscription: a crash after the append and before the handler loses the
// call. For work that must happen, use a subscription with a checkpoint (projections).
// Subscribe before the first save; the bus must outlive the repositories that use it.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <typeindex>
#include <vector>

#include "cairn/es/event.h"
#include "cairn/status.h"
#include "cairn/store.h"

namespace cairn::es {

// One saved event as handlers see it. The views stay valid during the handler call only.
struct PublishedEvent {
  std::string_view stream;
  StreamVersion version = 0;
  // The position of the first event of the append this event belongs to (positions are not dense,
  // so later events of the same append have larger, unknown positions).
  Position append_position;
  Uuid id;
  std::string_view type;
  std::string_view data;
  std::string_view metadata;
  ContentType content_type = ContentType::kJson;
  // The typed event, when the publisher had it (always, from a Repository).
  const void* typed = nullptr;
  std::type_index typed_type = typeid(void);
};

struct HandlerError {
  std::string handler;
  std::string stream;
  StreamVersion version = 0;
  std::string type;
  std::string message;
  std::string ToString() const;  // "handler 'audit' failed on Deposited at account-1@3: ..."
};

class EventBus {
 public:
  using Handler = std::function<Status(const PublishedEvent&)>;

  // Calls `handler(const E&, const PublishedEvent&)` for every saved E. The handler may return
  // void or Status.
  template <EventType E, class F>
  void On(std::string name, F handler) {
    OnType(std::string(TypeName<E>()), std::move(name), [h = std::move(handler)](const PublishedEvent& p) -> Status {
      E decoded;
      const E* e;
      if (p.typed != nullptr && p.typed_type == typeid(E)) {
        e = static_cast<const E*>(p.typed);
      } else {
        if (p.content_type == ContentType::kBytes) {
          if constexpr (BinaryEventType<E>) {
            internal::BinaryReader r{p.data.data() + 1, p.data.data() + p.data.size()};
            if (p.data.empty()) r.p = r.end;
            CairnReadBinary(r, decoded);
            if (r.error != nullptr) return Status::InvalidArgument(std::string("binary field '") + r.error + "' is cut short");
          } else {
            return Status::NotSupported("stored as bytes, but this event type has no binary form");
          }
        } else {
          from_json(Json::parse(p.data), decoded);
        }
        e = &decoded;
      }
      if constexpr (std::is_same_v<decltype(h(*e, p)), void>) {
        h(*e, p);
        return Status::Ok();
      } else {
        return h(*e, p);
      }
    });
  }
  // Calls `handler` for every event of this type name.
  void OnType(std::string type, std::string name, Handler handler);
  // Calls `handler` for every saved event.
  void OnAll(std::string name, Handler handler);
  // Also given every handler failure (from any thread, one call at a time).
  void SetErrorReporter(std::function<void(const HandlerError&)> reporter);

  // Appends `events` like Store::Append and, once acknowledged, publishes them (see the header
  // comment). `typed[i]` points to the typed form of events[i] (or is {nullptr, void}). Handler
  // failures of this append are added to *errors. Used by Repository; usable directly.
  struct Typed {
    const void* event = nullptr;
    std::type_index type = typeid(void);
  };
  Result<AppendResult> AppendAndPublish(Store& store, std::string_view stream, ExpectedVersion expected,
                                        std::span<const EventData> events, std::span<const Typed> typed,
                                        std::vector<HandlerError>* errors, const AppendOptions& options = {});

 private:
  struct Batch;
  struct Subscription {
    std::string type;  // empty: every type
    std::string name;
    Handler handler;
  };
  void Enqueue(std::shared_ptr<Batch> batch);
  void Drain();
  void Dispatch(Batch& batch);

  std::mutex queue_mutex_;
  std::deque<std::shared_ptr<Batch>> queue_;
  std::mutex dispatch_mutex_;  // held while handlers run: one at a time, in commit order
  std::vector<Subscription> subscriptions_;
  std::function<void(const HandlerError&)> reporter_;
};

}  // namespace cairn::es
