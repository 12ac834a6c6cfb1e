#include "storage/append_queue.h"

namespace cairn::storage {

void AppendQueue::CompleteAlone(AppendRequest& req, Result<AppendResult> result) {
  if (req.sync_slot == nullptr) {
    req.done(std::move(result));
    return;
  }
  {
    std::lock_guard lock(done_mu_);
    *req.sync_slot = std::move(result);
  }
  done_cv_.notify_all();
}

void AppendQueue::Enqueue(std::unique_ptr<AppendRequest> req) {
  std::unique_lock lock(mu_);
  if (!closed_ && !stopping_) {
    space_cv_.wait(lock, [&] { return queued_bytes_ < max_queued_bytes_ || queue_.empty() || stopping_; });
  }
  if (closed_ || stopping_) {
    // Closed, or closed while this caller waited for room: the writer may be gone already.
    lock.unlock();
    CompleteAlone(*req, Status::FailedPrecondition("the store is closed"));
    return;
  }
  queued_bytes_ += req->bytes;
  queue_.push_back(std::move(req));
  queue_cv_.notify_one();
}

Result<AppendResult> AppendQueue::Submit(std::unique_ptr<AppendRequest> req) {
  std::optional<Result<AppendResult>> slot;
  req->sync_slot = &slot;
  Enqueue(std::move(req));
  std::unique_lock lock(done_mu_);
  done_cv_.wait(lock, [&] { return slot.has_value(); });
  return std::move(*slot);
}

bool AppendQueue::Take(std::vector<std::unique_ptr<AppendRequest>>* group, const TakeLimits& limits) {
  std::unique_lock lock(mu_);
  auto ready = [&] { return !queue_.empty() || stopping_; };
  if (limits.wait) {
    queue_cv_.wait_for(lock, *limits.wait, ready);
  } else {
    queue_cv_.wait(lock, ready);
  }
  if (queue_.empty()) return !stopping_;
  if (queue_.size() < limits.gather_target && !stopping_ && limits.gather_wait.count() > 0) {
    queue_cv_.wait_for(lock, limits.gather_wait,
                       [&] { return queue_.size() >= limits.gather_target || stopping_; });
  }
  uint64_t bytes = 0;
  while (!queue_.empty() && group->size() < limits.max_requests &&
         (group->empty() || bytes + queue_.front()->bytes <= limits.max_bytes)) {
    bytes += queue_.front()->bytes;
    queued_bytes_ -= queue_.front()->bytes;
    group->push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  space_cv_.notify_all();
  return true;
}

void AppendQueue::Complete(std::vector<std::unique_ptr<AppendRequest>>& group,
                           std::vector<Result<AppendResult>>& results) {
  bool any_sync = false;
  {
    std::lock_guard lock(done_mu_);
    for (size_t i = 0; i < group.size(); ++i) {
      if (group[i]->sync_slot != nullptr) {
        *group[i]->sync_slot = std::move(results[i]);
        any_sync = true;
      }
    }
  }
  if (any_sync) done_cv_.notify_all();
  for (size_t i = 0; i < group.size(); ++i) {
    if (group[i]->sync_slot == nullptr) group[i]->done(std::move(results[i]));
  }
}

bool AppendQueue::Stop() {
  {
    std::lock_guard lock(mu_);
    if (closed_) return false;
    stopping_ = true;
  }
  queue_cv_.notify_all();
  space_cv_.notify_all();
  return true;
}

void AppendQueue::MarkClosed() {
  std::lock_guard lock(mu_);
  closed_ = true;
}

bool AppendQueue::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

void CountAppendResults(const std::vector<Result<AppendResult>>& results, StoreStats* stats) {
  for (const auto& r : results) {
    if (r.ok()) {
      stats->appends++;
    } else {
      stats->append_errors++;
      if (r.status().code() == StatusCode::kConflict) stats->conflicts++;
    }
  }
}

}  // namespace cairn::storage
