// The persistent index tier for stores whose files are in memory: the same contract as the LMDB
// one (storage/index_store.h), in maps. It lives as long as the store object, so a reopened
// in-memory store rebuilds its index from the log.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

#include "storage/index_store.h"

namespace cairn::storage {

namespace {

class MemIndex final : public IndexStore {
 public:
  Result<std::optional<StreamRow>> GetStream(std::string_view name) const override {
    std::shared_lock lock(mu_);
    auto it = streams_.find(std::string(name));
    if (it == streams_.end()) return std::optional<StreamRow>();
    return std::optional<StreamRow>(it->second);
  }

  Status ListStreams(std::string_view prefix, std::string_view after, size_t max,
                     std::vector<std::pair<std::string, StreamRow>>* out) const override {
    std::shared_lock lock(mu_);
    std::vector<std::pair<std::string, StreamRow>> found;
    for (const auto& [name, row] : streams_) {
      if (name.starts_with(prefix) && name > after) found.emplace_back(name, row);
    }
    std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    if (found.size() > max) found.resize(max);
    for (auto& f : found) out->push_back(std::move(f));
    return Status::Ok();
  }

  Status GetPositions(uint64_t id, uint64_t from, uint64_t n, std::vector<uint64_t>* out) const override {
    std::shared_lock lock(mu_);
    auto it = positions_.find(id);
    if (n == 0) return Status::Ok();
    if (it == positions_.end() || from + n > it->second.size()) {
      return Status::Corruption(fmt::format("index: stream number {} lacks the position of version {}", id, from));
    }
    out->insert(out->end(), it->second.begin() + static_cast<ptrdiff_t>(from),
                it->second.begin() + static_cast<ptrdiff_t>(from + n));
    return Status::Ok();
  }

  Result<std::optional<TimeMark>> LastMarkAtOrBefore(int64_t t) const override {
    std::shared_lock lock(mu_);
    auto it = std::upper_bound(marks_.begin(), marks_.end(), t, [](int64_t v, const TimeMark& m) { return v < m.time; });
    if (it == marks_.begin()) return std::optional<TimeMark>();
    return std::optional<TimeMark>(*std::prev(it));
  }

  Result<std::optional<TimeMark>> LastMarkWithRecordsAtMost(uint64_t n) const override {
    std::shared_lock lock(mu_);
    auto it = std::upper_bound(marks_.begin(), marks_.end(), n, [](uint64_t v, const TimeMark& m) { return v < m.records; });
    if (it == marks_.begin()) return std::optional<TimeMark>();
    return std::optional<TimeMark>(*std::prev(it));
  }

  Result<IndexHead> Head() const override {
    std::shared_lock lock(mu_);
    return head_;
  }

  Status Write(const IndexBatch& batch) override {
    std::unique_lock lock(mu_);
    for (const auto& s : batch.streams) {
      std::vector<uint64_t>& p = positions_[s.row.id];
      if (p.size() != s.first_new_version) {
        return Status::Corruption(fmt::format("index: stream {} lacks positions before version {}", s.name, s.first_new_version));
      }
      p.insert(p.end(), s.new_positions.begin(), s.new_positions.end());
      streams_[s.name] = s.row;
    }
    marks_.insert(marks_.end(), batch.marks.begin(), batch.marks.end());
    head_ = batch.head;
    return Status::Ok();
  }

  Status Clear() override {
    std::unique_lock lock(mu_);
    streams_.clear();
    positions_.clear();
    marks_.clear();
    head_ = IndexHead();
    return Status::Ok();
  }

 private:
  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, StreamRow> streams_;
  std::unordered_map<uint64_t, std::vector<uint64_t>> positions_;
  std::vector<TimeMark> marks_;
  IndexHead head_;
};

}  // namespace

std::unique_ptr<IndexStore> NewMemIndex() { return std::make_unique<MemIndex>(); }

}  // namespace cairn::storage
