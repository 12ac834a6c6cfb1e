// Proves ListStreams: names by prefix in name order, paged by `after` without a gap or a repeat,
// system streams only on request, delete marks, long names, and bad input rejected.
#include "conformance/conformance.h"

namespace cairn::conformance {
namespace {

std::string fmt_stream(std::string_view prefix, int i) { return std::string(prefix) + std::to_string(i); }

std::vector<std::string> Names(const std::vector<StreamSummary>& list) {
  std::vector<std::string> out;
  for (const auto& s : list) out.push_back(s.name);
  return out;
}

// Every page of `page` names until an empty one.
Result<std::vector<StreamSummary>> ListAll(Store& store, ListStreamsOptions options, size_t page) {
  options.max_count = page;
  std::vector<StreamSummary> all;
  for (int guard = 0; guard < 100000; ++guard) {
    auto r = store.ListStreams(options);
    if (!r.ok()) return r.status();
    if (r->empty()) return all;
    if (r->size() > page) return Status::Internal("a page longer than max_count");
    options.after = r->back().name;
    for (auto& s : *r) all.push_back(std::move(s));
  }
  return Status::Internal("paging did not end");
}

TEST_P(ConformanceTest, ListStreamsGivesNamesByPrefixInOrderWithTheirLastVersion) {
  ASSERT_OK_AND_ASSIGN(auto b, store().Append("order-2", ExpectedVersion::NoStream(), NewEvents(3)));
  ASSERT_OK_AND_ASSIGN(auto a, store().Append("order-10", ExpectedVersion::NoStream(), NewEvents(1)));
  ASSERT_OK(store().Append("customer-1", ExpectedVersion::NoStream(), NewEvents(2)));
  ASSERT_OK(store().Append("orderline-1", ExpectedVersion::NoStream(), NewEvents(1)));

  ListStreamsOptions o;
  o.prefix = "order-";
  ASSERT_OK_AND_ASSIGN(auto list, store().ListStreams(o));
  ASSERT_EQ(Names(list), (std::vector<std::string>{"order-10", "order-2"}));
  EXPECT_EQ(list[0].last_version, 0u);
  EXPECT_EQ(list[0].last_position, a.position);
  EXPECT_EQ(list[1].last_version, 2u);
  ASSERT_OK_AND_ASSIGN(auto order2, ReadStreamEvents(store(), "order-2"));
  ASSERT_EQ(order2.size(), 3u);
  EXPECT_EQ(order2.front().position, b.position);
  EXPECT_EQ(list[1].last_position, order2.back().position);
  EXPECT_FALSE(list[1].deleted);
  EXPECT_FALSE(list[1].tombstoned);

  o.prefix = "";
  ASSERT_OK_AND_ASSIGN(auto everything, store().ListStreams(o));
  EXPECT_EQ(Names(everything), (std::vector<std::string>{"customer-1", "order-10", "order-2", "orderline-1"}));
  o.prefix = "nothing-";
  ASSERT_OK_AND_ASSIGN(auto none, store().ListStreams(o));
  EXPECT_TRUE(none.empty());
}

TEST_P(ConformanceTest, ListStreamsLastPositionIsThatOfTheLastEvent) {
  ASSERT_OK(store().Append("acct-1", ExpectedVersion::NoStream(), NewEvents(2)));
  ASSERT_OK(store().Append("acct-2", ExpectedVersion::NoStream(), NewEvents(1)));
  ASSERT_OK(store().Append("acct-1", ExpectedVersion::Exact(1), NewEvents(2)));
  ASSERT_OK_AND_ASSIGN(auto events, ReadStreamEvents(store(), "acct-1"));
  ASSERT_EQ(events.size(), 4u);
  ListStreamsOptions o;
  o.prefix = "acct-1";
  ASSERT_OK_AND_ASSIGN(auto list, store().ListStreams(o));
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].last_version, 3u);
  EXPECT_EQ(list[0].last_position, events.back().position);
}

TEST_P(ConformanceTest, ListStreamsPagesWithoutGapOrRepeat) {
  std::vector<std::string> expected;
  for (int i = 0; i < 23; ++i) {
    std::string name = fmt_stream("item-", i);
    expected.push_back(name);
    ASSERT_OK(store().Append(name, ExpectedVersion::NoStream(), NewEvents(1)));
  }
  std::sort(expected.begin(), expected.end());
  for (size_t page : {1u, 5u, 7u, 23u, 100u}) {
    ASSERT_OK_AND_ASSIGN(auto all, ListAll(store(), ListStreamsOptions{}, page));
    EXPECT_EQ(Names(all), expected) << "pages of " << page;
  }
}

TEST_P(ConformanceTest, ListStreamsHidesSystemStreamsUnlessAsked) {
  ASSERT_OK(store().Append("doc-1", ExpectedVersion::NoStream(), NewEvents(1)));
  StreamMetadata md;
  md.max_count = 5;
  ASSERT_OK(store().SetStreamMetadata("doc-1", ExpectedVersion::Any(), md));
  // Metadata set on a stream never written: the stream itself is not listed.
  ASSERT_OK(store().SetStreamMetadata("ghost-1", ExpectedVersion::Any(), md));

  ListStreamsOptions o;
  ASSERT_OK_AND_ASSIGN(auto plain, store().ListStreams(o));
  EXPECT_EQ(Names(plain), (std::vector<std::string>{"doc-1"}));

  o.include_system = true;
  ASSERT_OK_AND_ASSIGN(auto with_system, store().ListStreams(o));
  std::vector<std::string> names = Names(with_system);
  EXPECT_NE(std::find(names.begin(), names.end(), "$$doc-1"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "$$ghost-1"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "doc-1"), names.end());
  EXPECT_EQ(std::find(names.begin(), names.end(), "ghost-1"), names.end());
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));

  ListStreamsOptions meta;
  meta.prefix = "$$";
  ASSERT_OK_AND_ASSIGN(auto metastreams, store().ListStreams(meta));
  EXPECT_EQ(Names(metastreams), (std::vector<std::string>{"$$doc-1", "$$ghost-1"}));
}

TEST_P(ConformanceTest, ListStreamsMarksDeletedAndTombstonedStreams) {
  ASSERT_OK(store().Append("doc-1", ExpectedVersion::NoStream(), NewEvents(2)));
  ASSERT_OK(store().Append("doc-2", ExpectedVersion::NoStream(), NewEvents(2)));
  ASSERT_OK(store().Append("doc-3", ExpectedVersion::NoStream(), NewEvents(2)));
  ASSERT_OK(store().Append("doc-4", ExpectedVersion::NoStream(), NewEvents(2)));
  ASSERT_OK(store().DeleteStream("doc-1", ExpectedVersion::Exact(1)));
  ASSERT_OK(store().TombstoneStream("doc-2", ExpectedVersion::Exact(1)));
  ASSERT_OK(store().DeleteStream("doc-3", ExpectedVersion::Exact(1)));
  ASSERT_OK(store().Append("doc-3", ExpectedVersion::NoStream(), NewEvents(1)));  // re-opened

  ListStreamsOptions o;
  o.prefix = "doc-";
  ASSERT_OK_AND_ASSIGN(auto list, store().ListStreams(o));
  ASSERT_EQ(Names(list), (std::vector<std::string>{"doc-1", "doc-2", "doc-3", "doc-4"}));
  EXPECT_TRUE(list[0].deleted);
  EXPECT_FALSE(list[0].tombstoned);
  EXPECT_EQ(list[0].last_version, 1u);
  EXPECT_TRUE(list[1].tombstoned);
  EXPECT_FALSE(list[2].deleted);
  EXPECT_EQ(list[2].last_version, 2u);
  EXPECT_FALSE(list[3].deleted);
  EXPECT_FALSE(list[3].tombstoned);
}

TEST_P(ConformanceTest, ListStreamsOrdersLongNamesSharingALongPrefix) {
  // Names far past any key-length limit a backend may have, equal in their first 900 bytes.
  const std::string common(900, 'x');
  std::vector<std::string> expected;
  for (int i = 0; i < 12; ++i) {
    std::string name = "long-" + common + fmt_stream("-", 11 - i);
    expected.push_back(name);
    ASSERT_OK(store().Append(name, ExpectedVersion::NoStream(), NewEvents(1)));
  }
  ASSERT_OK(store().Append("long-a", ExpectedVersion::NoStream(), NewEvents(1)));
  ASSERT_OK(store().Append("long-y", ExpectedVersion::NoStream(), NewEvents(1)));
  expected.push_back("long-a");
  expected.push_back("long-y");
  std::sort(expected.begin(), expected.end());
  ListStreamsOptions o;
  o.prefix = "long-";
  for (size_t page : {1u, 3u, 20u}) {
    ASSERT_OK_AND_ASSIGN(auto all, ListAll(store(), o, page));
    EXPECT_EQ(Names(all), expected) << "pages of " << page;
  }
}

TEST_P(ConformanceTest, ListStreamsSeesStreamsWrittenBeforeAndAfterAReopen) {
  CONF_REQUIRE_PERSISTENT();
  for (int i = 0; i < 10; ++i) ASSERT_OK(store().Append(fmt_stream("a-", i), ExpectedVersion::NoStream(), NewEvents(2)));
  ASSERT_TRUE(CloseAndReopen());
  for (int i = 10; i < 20; ++i) ASSERT_OK(store().Append(fmt_stream("a-", i), ExpectedVersion::NoStream(), NewEvents(1)));
  ASSERT_OK(store().Append("a-3", ExpectedVersion::Exact(1), NewEvents(1)));
  ASSERT_OK_AND_ASSIGN(auto all, ListAll(store(), ListStreamsOptions{}, 6));
  ASSERT_EQ(all.size(), 20u);
  std::vector<std::string> names = Names(all);
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  auto it = std::find_if(all.begin(), all.end(), [](const auto& s) { return s.name == "a-3"; });
  ASSERT_NE(it, all.end());
  EXPECT_EQ(it->last_version, 2u);
  it = std::find_if(all.begin(), all.end(), [](const auto& s) { return s.name == "a-15"; });
  ASSERT_NE(it, all.end());
  EXPECT_EQ(it->last_version, 0u);
}

TEST_P(ConformanceTest, ListStreamsRejectsABadPageSizeNamingTheLimit) {
  ASSERT_OK(store().Append("doc-1", ExpectedVersion::NoStream(), NewEvents(1)));
  ListStreamsOptions o;
  o.max_count = 0;
  EXPECT_TRUE(IsInvalidArgumentNaming(store().ListStreams(o), {"max_count", "10000"}));
  o.max_count = kMaxListStreams + 1;
  EXPECT_TRUE(IsInvalidArgumentNaming(store().ListStreams(o), {"max_count", "10000"}));
  o.max_count = kMaxListStreams;
  ASSERT_OK_AND_ASSIGN(auto list, store().ListStreams(o));
  EXPECT_EQ(list.size(), 1u);
}

}  // namespace
}  // namespace cairn::conformance
