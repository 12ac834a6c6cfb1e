// The given / when / then test kit, for GoogleTest, for both aggregate styles (aggregate.h).
//
//   TEST(BankAccountTest, WithdrawWithSufficientFunds) {
//     es::testing::Scenario<BankAccount>()
//         .Given(AccountCreated{"Alice"}, Deposited{1000})
//         .When([](BankAccount& a) { a.Withdraw(100); })
//         .Then(Withdrew{100});
//   }
//   ...When(Withdraw{600}).ThenError(StatusCode::kFailedPrecondition);   // a decider's Result
//   ...When([](BankAccount& a) { a.Withdraw(100); }).ThenThrows<InsufficientFundsError>();
//   ...When(...).ThenNothing();
//
// Each scenario runs on its own `memory:` store through a real Repository: the given events are
// appended to the aggregate's stream (with the toolkit's metadata), the command runs through
// Repository::Execute, and the events it appended are read back from the store. So a scenario
// also proves that the events survive encoding and decoding. GivenStored appends raw JSON as older
// code wrote it, to test upcasters and weak-schema defaults.
//
// Each Then... runs the scenario and reports a failure (ADD_FAILURE at the caller's line) that
// prints the expected and the actual events as JSON. Then... return the scenario, so that
// AndState(fn) can check the state after the command. Needs <gtest/gtest.h> (link GTest::gtest).
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>
#include <source_location>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

#include "cairn/es/aggregate.h"
#include "cairn/es/codec.h"
#include "cairn/es/event.h"
#include "cairn/es/repository.h"
#include "cairn/store.h"

namespace cairn::es::testing {

template <class T>
  requires AggregateRoot<T> || Decider<T>
class Scenario {
 public:
  using Event = typename T::Event;
  using Repo = Repository<T>;

  explicit Scenario(RepositoryOptions options = {}) : options_(std::move(options)) {}
  template <class D = T>
    requires Decider<D>
  explicit Scenario(D decider, RepositoryOptions options = {}) : options_(std::move(options)), decider_(std::move(decider)) {}

  // The aggregate id ("test" by default).
  Scenario& For(std::string id) {
    id_ = std::move(id);
    return *this;
  }
  // The context the command runs under (its metadata goes into the new events).
  Scenario& WithContext(CommandContext context) {
    context_ = std::move(context);
    return *this;
  }

  // Events that happened before the command, in order.
  template <class... Es>
    requires(std::constructible_from<Event, Es> && ...)
  Scenario& Given(Es&&... events) {
    (given_.push_back(Given_{Event(std::forward<Es>(events)), {}, {}, 1}), ...);
    return *this;
  }
  Scenario& Given(const std::vector<Event>& events) {
    for (const Event& e : events) given_.push_back(Given_{e, {}, {}, 1});
    return *this;
  }
  // An event as stored by other (older) code: its type name, JSON data and schema version.
  Scenario& GivenStored(std::string type, Json data, uint32_t schema_version = 1) {
    given_.push_back(Given_{std::nullopt, std::move(type), std::move(data), schema_version});
    return *this;
  }

  // The command: for an aggregate class, a callable taking T& (returning void or Status); for a
  // decider, a command value its Decide accepts.
  template <class C>
  Scenario& When(C command) {
    if constexpr (AggregateRoot<T>) {
      static_assert(std::invocable<C&, T&>, "When(): the command must be callable with the aggregate (T&)");
      when_ = [command = std::move(command)](const Repo& repo, const std::string& id,
                                             const CommandContext& ctx) mutable { return repo.Execute(id, command, ctx); };
    } else {
      static_assert(CommandFor<T, C>, "When(): the decider's Decide does not accept this command");
      when_ = [command = std::move(command)](const Repo& repo, const std::string& id, const CommandContext& ctx) {
        return repo.Execute(id, command, ctx);
      };
    }
    return *this;
  }

  // The command succeeds and appends exactly these events, in order.
  template <class E>
    requires std::constructible_from<Event, E>
  Scenario& Then(E expected, std::source_location where = std::source_location::current()) {
    return Then(std::vector<Event>{Event(std::move(expected))}, where);
  }
  Scenario& Then(const std::vector<Event>& expected, std::source_location where = std::source_location::current()) {
    Json want = Json::array();
    for (const Event& e : expected) want.push_back(ToJson(e));
    Run();
    if (!setup_.ok()) return Fail(where, "the given events could not be stored: " + setup_.ToString());
    if (!thrown_.empty()) return Fail(where, "expected events " + want.dump(2) + "\nbut the command threw " + thrown_);
    if (!result_->ok()) {
      return Fail(where, "expected events " + want.dump(2) + "\nbut the command failed: " + result_->status().ToString());
    }
    if (actual_ != want) return Fail(where, "expected events " + want.dump(2) + "\nactual events " + actual_.dump(2));
    return *this;
  }

  // The command throws an E and appends nothing.
  template <class E>
  Scenario& ThenThrows(std::source_location where = std::source_location::current()) {
    Run([](const std::exception_ptr& p) {
      try {
        std::rethrow_exception(p);
      } catch (const E&) {
        return true;
      } catch (...) {
        return false;
      }
    });
    if (!setup_.ok()) return Fail(where, "the given events could not be stored: " + setup_.ToString());
    const std::string want = std::string("an exception of type ") + typeid(E).name();
    if (!caught_expected_) {
      if (!thrown_.empty()) return Fail(where, "expected " + want + "\nbut the command threw " + thrown_);
      std::string got = result_->ok() ? "succeeded with events " + actual_.dump(2) : "failed with " + result_->status().ToString();
      return Fail(where, "expected " + want + "\nbut the command " + got);
    }
    if (!actual_.empty()) return Fail(where, "the command threw, but events were appended: " + actual_.dump(2));
    return *this;
  }

  // The command fails with this status code (and, if given, a message containing `message_part`),
  // and appends nothing.
  Scenario& ThenError(StatusCode code, std::string message_part = {},
                      std::source_location where = std::source_location::current()) {
    Run();
    if (!setup_.ok()) return Fail(where, "the given events could not be stored: " + setup_.ToString());
    const std::string want = "an error " + std::string(StatusCodeName(code)) +
                             (message_part.empty() ? "" : " with \"" + message_part + "\"");
    if (!thrown_.empty()) return Fail(where, "expected " + want + "\nbut the command threw " + thrown_);
    if (result_->ok()) return Fail(where, "expected " + want + "\nbut the command succeeded with events " + actual_.dump(2));
    const Status& s = result_->status();
    if (s.code() != code || s.message().find(message_part) == std::string::npos) {
      return Fail(where, "expected " + want + "\nbut the command failed with " + s.ToString());
    }
    if (!actual_.empty()) return Fail(where, "the command failed, but events were appended: " + actual_.dump(2));
    return *this;
  }

  // The command succeeds and appends nothing.
  Scenario& ThenNothing(std::source_location where = std::source_location::current()) {
    Run();
    if (!setup_.ok()) return Fail(where, "the given events could not be stored: " + setup_.ToString());
    if (!thrown_.empty()) return Fail(where, "expected no events, but the command threw " + thrown_);
    if (!result_->ok()) return Fail(where, "expected no events, but the command failed: " + result_->status().ToString());
    if (!actual_.empty()) return Fail(where, "expected no events\nactual events " + actual_.dump(2));
    return *this;
  }

  // After a Then...: loads the aggregate (T) or the decider's state (T::State) and calls check.
  template <class F>
  Scenario& AndState(F check, std::source_location where = std::source_location::current()) {
    Run();
    auto loaded = repo_->Load(id_);
    if (!loaded.ok()) return Fail(where, "AndState: load failed: " + loaded.status().ToString());
    if constexpr (AggregateRoot<T>) {
      check(std::as_const(*loaded));
    } else {
      check(std::as_const(loaded->state));
    }
    return *this;
  }

  // The store and repository the scenario ran on (valid after a Then...).
  Store& store() { return *store_; }
  const Repo& repository() { return *repo_; }

 private:
  struct Given_ {
    std::optional<Event> event;
    std::string type;  // GivenStored
    Json data;
    uint32_t schema_version = 1;
  };

  Scenario& Fail(const std::source_location& where, const std::string& message) {
    ADD_FAILURE_AT(where.file_name(), static_cast<int>(where.line())) << message;
    return *this;
  }

  void Run(const std::function<bool(const std::exception_ptr&)>& expected_exception = {}) {
    if (ran_) return;
    ran_ = true;
    auto opened = Store::Open("memory:");
    if (!opened.ok()) {
      setup_ = opened.status();
      return;
    }
    store_ = std::move(*opened);
    if constexpr (AggregateRoot<T>) {
      repo_.emplace(*store_, options_);
    } else {
      repo_.emplace(*store_, decider_, options_);
    }
    const std::string stream = repo_->StreamOf(id_);
    std::vector<EventData> given;
    for (const Given_& g : given_) {
      if (g.event) {
        auto encoded = EventCodec<Event>::Encode(*g.event, CommandContext{}, options_.encoding);
        if (!encoded.ok()) {
          setup_ = encoded.status();
          return;
        }
        given.push_back(std::move(*encoded));
      } else {
        EventData e;
        e.id = Uuid::V7();
        e.type = g.type;
        e.data = g.data.dump();
        auto metadata = EncodeMetadata(CommandContext{}, g.schema_version);
        e.metadata = metadata.ok() ? *metadata : "";
        given.push_back(std::move(e));
      }
    }
    if (!given.empty()) {
      auto r = store_->Append(stream, ExpectedVersion::NoStream(), given);
      if (!r.ok()) {
        setup_ = r.status();
        return;
      }
    }
    if (!when_) {
      setup_ = Status::InvalidArgument("the scenario has no When(command)");
      return;
    }
    try {
      result_.emplace(when_(*repo_, id_, context_));
    } catch (...) {
      std::exception_ptr p = std::current_exception();
      caught_expected_ = expected_exception && expected_exception(p);
      if (!caught_expected_) thrown_ = Describe(p);
    }
    actual_ = Json::array();
    ReadStreamOptions read;
    read.from = given.size();
    auto cursor = store_->ReadStream(stream, read);
    if (!cursor.ok()) {
      if (!cursor.status().IsNotFound()) setup_ = cursor.status();
      return;
    }
    while (cursor->Next()) {
      const RecordedEventView& e = cursor->event();
      if (e.content_type == ContentType::kBytes) {  // binary encoding: show the decoded fields
        auto decoded = EventCodec<Event>().Decode(e);
        actual_.push_back(decoded.ok() ? ToJson(*decoded) : Json{{"type", e.type}, {"error", decoded.status().ToString()}});
      } else {
        actual_.push_back(Json{{"type", e.type}, {"data", Json::parse(e.data, nullptr, false)}});
      }
    }
    if (!cursor->status().ok()) setup_ = cursor->status();
  }

  static std::string Describe(const std::exception_ptr& p) {
    try {
      std::rethrow_exception(p);
    } catch (const std::exception& e) {
      return std::string(typeid(e).name()) + ": " + e.what();
    } catch (...) {
      return "a non-standard exception";
    }
  }

  using WhenFn = std::function<Result<Committed>(const Repo&, const std::string&, const CommandContext&)>;

  RepositoryOptions options_;
  std::conditional_t<Decider<T>, T, int> decider_{};
  std::string id_ = "test";
  CommandContext context_;
  std::vector<Given_> given_;
  WhenFn when_;

  bool ran_ = false;
  Status setup_;
  std::unique_ptr<Store> store_;
  std::optional<Repo> repo_;
  std::optional<Result<Committed>> result_;
  std::string thrown_;
  bool caught_expected_ = false;
  Json actual_ = Json::array();
};

}  // namespace cairn::es::testing
