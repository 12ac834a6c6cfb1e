// Aggregates, in two styles; both work with Repository (repository.h) and the test kit (testing.h).
//
// 1. The seed's style: a class with command methods that check the rules and Record events, and an
//    Apply overload per event that evolves the state. Recorded events are applied at once and kept
//    as uncommitted until the repository saves them.
//
//      class BankAccount : public es::Aggregate<BankAccount, AccountCreated, Deposited, Withdrew> {
//       public:
//        static constexpr std::string_view kCategory = "account";   // streams "account-<id>"
//        void Withdraw(int64_t amount) {
//          if (amount > balance_) throw InsufficientFundsError();   // rule first: no event recorded
//          Record(Withdrew{amount});
//        }
//        void Apply(const Withdrew& e) { balance_ -= e.amount; }
//        ...
//      };
//
//    A command method that fails should check before it records; the repository never saves the
//    events of a command that threw or returned an error (the loaded object is discarded).
//
// 2. A functional decider: a type with State, Event (a std::variant of events), Initial(),
//    Evolve(state, event) -> state, and Decide(command, state) -> events, where Decide returns
//    std::vector<Event> (throwing on a domain error) or Result<std::vector<Event>> (a domain error
//    as a Status, for example kFailedPrecondition "insufficient funds").
//
// Snapshots (repository.h) need the state to convert to and from JSON and a state schema version:
// `static constexpr uint32_t kStateVersion = 1;` in the aggregate class or the decider, and
// to_json / from_json for the class (e.g. NLOHMANN_DEFINE_TYPE_INTRUSIVE) or the decider's State.
//
// An aggregate object is a value owned by its caller; it is not thread-safe.
#pragma once

#include <concepts>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "cairn/es/codec.h"
#include "cairn/es/event.h"
#include "cairn/status.h"
#include "cairn/types.h"

namespace cairn::es {

namespace internal {
struct AggregateAccess;
}

template <class Derived, EventType... Events>
class Aggregate {
 public:
  using Event = std::variant<Events...>;

  // The aggregate's id (the stream is "<kCategory>-<id>").
  const std::string& id() const { return id_; }
  // The version of the last stored event this object has seen: what the next save expects.
  // nullopt for an aggregate whose stream has no events yet.
  std::optional<StreamVersion> version() const { return version_; }
  // Events recorded since the last load or save, oldest first.
  const std::vector<Event>& uncommitted_events() const { return uncommitted_; }

  // Public, not protected: a derived class with only public members is an aggregate in C++20,
  // and `Derived{}` would then need this constructor from outside the class hierarchy.
  Aggregate() = default;

 protected:
  // Applies the event to the state (Derived::Apply) and keeps it to be saved.
  template <class E>
    requires(std::same_as<std::decay_t<E>, Events> || ...)
  void Record(E&& event) {
    static_cast<Derived&>(*this).Apply(std::as_const(event));
    uncommitted_.emplace_back(std::forward<E>(event));
  }

 private:
  friend struct internal::AggregateAccess;

  void ApplyStored(const Event& event) {
    std::visit([this](const auto& e) { static_cast<Derived&>(*this).Apply(e); }, event);
  }

  std::string id_;
  std::optional<StreamVersion> version_;
  std::vector<Event> uncommitted_;
};

namespace internal {

template <class Derived, class... Events>
void AsAggregateBase(const Aggregate<Derived, Events...>*);

// The repository's and the test kit's access to an aggregate's bookkeeping.
struct AggregateAccess {
  template <class A>
  static void Init(A& a, std::string id, std::optional<StreamVersion> version) {
    a.id_ = std::move(id);
    a.version_ = version;
    a.uncommitted_.clear();
  }
  template <class A>
  static void ApplyStored(A& a, const typename A::Event& e) {
    a.ApplyStored(e);
  }
  template <class A>
  static void MarkSaved(A& a, StreamVersion version) {
    a.version_ = version;
    a.uncommitted_.clear();
  }
  template <class A>
  static void SetVersion(A& a, std::optional<StreamVersion> version) {
    a.version_ = version;
  }
};

}  // namespace internal

// A class written in the seed's style: derives from Aggregate<Self, Events...>, is
// default-constructible and names its stream category.
template <class A>
concept AggregateRoot = std::default_initializable<A> && std::copy_constructible<A> && requires(const A* a) {
  internal::AsAggregateBase(a);
  { A::kCategory } -> std::convertible_to<std::string_view>;
};

// A functional decider (see the header comment).
template <class D>
concept Decider = EventVariant<typename D::Event> && std::copy_constructible<typename D::State> &&
                  requires(const D& d, typename D::State s, const typename D::Event& e) {
                    { d.Initial() } -> std::convertible_to<typename D::State>;
                    { d.Evolve(std::move(s), e) } -> std::convertible_to<typename D::State>;
                    { D::kCategory } -> std::convertible_to<std::string_view>;
                  };

// What a decider's Decide may return for a command of type C.
template <class D, class C>
concept DecidesWithResult = requires(const D& d, const C& c, const typename D::State& s) {
  { d.Decide(c, s) } -> std::convertible_to<Result<std::vector<typename D::Event>>>;
};
template <class D, class C>
concept DecidesWithEvents = requires(const D& d, const C& c, const typename D::State& s) {
  { d.Decide(c, s) } -> std::convertible_to<std::vector<typename D::Event>>;
};
template <class D, class C>
concept CommandFor = Decider<D> && (DecidesWithResult<D, C> || DecidesWithEvents<D, C>);

// A state that can go into a snapshot: a schema version and JSON conversion.
template <class S, class Holder>
concept SnapshotState = requires(const S& s, S& out, Json& j) {
  { Holder::kStateVersion } -> std::convertible_to<uint32_t>;
  to_json(j, s);
  from_json(std::as_const(j), out);
};

}  // namespace cairn::es
