// One Streams.BatchAppend call's logic, whatever carries its bytes: gRPC's callback API
// (streams_service.cc) or the h2 front (h2_front.cc), which serves BatchAppend itself so that an
// append costs no trip through gRPC's in-process channel (docs/performance.md, the server's sixth
// run).
//
// A call carries many appends, each under a correlation id; the first message of an id carries
// the options, its last is_final. A plain append goes to Store::AppendAsync and the next message
// is read at once, so the appends of many calls (and several of one call) meet in the store's
// group commit; none holds a thread. Appends of one call reach the store in the order they were
// sent and are answered in that order. The rest (metastream writes, empty appends, system
// streams) block on the store, so they run on the task thread, after the call's earlier appends
// are acknowledged and before its next message is read.
//
// The transport reads a message, gives it to OnMessage, and reads the next when that says so (or
// when `read_next` is called); it writes what TakeAnswers gives whenever `answers_ready` is
// called, and ends the call when TakeFinish says so. Thread-safe: the store's acknowledgements
// arrive on its writer thread.
#pragma once

#include <grpcpp/grpcpp.h>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/store.h"
#include "server/batch_append_wire.h"
#include "server/services.h"

namespace cairn::server {

class BatchAppendSession : public std::enable_shared_from_this<BatchAppendSession> {
 public:
  struct Hooks {
    // Any thread, with no lock of the session held: answers are due (TakeAnswers), or the end is.
    std::function<void()> answers_ready;
    // Any thread: a blocking append ended; read the next message now.
    std::function<void()> read_next;
    // OnMessage's thread: whether the call's client may write to `stream` (the status an
    // unauthenticated or refused client gets; its message goes into the append's answer).
    std::function<grpc::Status(const std::string& stream)> authorize_write;
  };

  static std::shared_ptr<BatchAppendSession> Create(Store* store, TaskThread* blocking_tasks, Hooks hooks);

  // One request message (without its gRPC prefix). True: read the next one now. False: the next
  // is read on `read_next` (a blocking append runs first), or never (the bytes were no
  // BatchAppendReq: the call ends with INVALID_ARGUMENT once the appends before are answered).
  bool OnMessage(std::string_view bytes);
  bool OnMessage(grpc::ByteBuffer* bytes);

  // No more messages (the client half-closed, or is gone, or the server stops): the call ends
  // with `status` (unless it already has a reason to fail) once everything before is answered.
  void EndReads(grpc::Status status = grpc::Status::OK);

  // Moves the answers that are due, in request order, to `out` (each a serialized
  // BatchAppendResp, without the gRPC prefix).
  void TakeAnswers(std::vector<std::string>* out);

  // True once, when the call ends now with `*status`: reads ended, every append acknowledged and
  // every answer taken.
  bool TakeFinish(grpc::Status* status);

  // Appends given to the store (or to the task thread) and not yet answered.
  int in_flight() const;

  BatchAppendSession(Store* store, TaskThread* blocking_tasks, Hooks hooks);  // use Create

 private:
  struct Open;
  struct Slot {
    bool ready = false;
    std::string bytes;  // the answer, once ready
  };

  // The message just parsed into req_ (or why it could not be).
  bool Handle(const Status& parsed);
  Slot* Reserve();
  // The slot's answer is in; `acknowledged`: it came from the store (an async append).
  void Ready(Slot* slot, bool acknowledged);

  Store* store_;
  TaskThread* blocking_tasks_;
  Hooks hooks_;
  WireBatchAppendReq req_;                          // the message being handled; read side only
  std::map<std::string, std::shared_ptr<Open>> open_;  // by the correlation id's bytes; read side only
  mutable std::mutex mu_;                           // guards what follows
  std::deque<Slot> slots_;                          // answers not yet taken, in request order
  int pending_ = 0;                                 // async appends not yet acknowledged
  bool blocking_ = false;                           // a blocking append is queued or running
  std::function<void()> deferred_;                  // that append, until pending_ is 0
  bool reads_done_ = false;
  grpc::Status end_status_;
  bool finished_ = false;
};

}  // namespace cairn::server
