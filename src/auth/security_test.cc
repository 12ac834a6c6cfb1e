// Proves authentication (users in "$users", scrypt hashes, Basic headers, two servers on one
// store) and authorization (admins, stream $acl, prefix rules, $all, system streams) of Security.
#include "auth/security.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <nlohmann/json.hpp>

#include "cairn/read.h"

namespace cairn::auth {
namespace {

// "user:password" as a Basic header (the first ':' separates).
std::string Basic(std::string_view user_colon_password) {
  const size_t colon = user_colon_password.find(':');
  if (colon == std::string_view::npos) {
    // No colon at all: encode the text as it is, to test the malformed form.
    std::string out(4 * ((user_colon_password.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(user_colon_password.data()),
                                  static_cast<int>(user_colon_password.size()));
    out.resize(static_cast<size_t>(n));
    return "Basic " + out;
  }
  return BasicCredentials(user_colon_password.substr(0, colon), user_colon_password.substr(colon + 1));
}

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Store::Open("memory:");
    ASSERT_TRUE(s.ok());
    store_ = std::move(s).value();
  }
  SecurityOptions Enabled(SecurityPolicy policy = {}) {
    SecurityOptions o;
    o.enabled = true;
    o.policy = std::move(policy);
    o.initial_admin_password = "admin-secret";
    o.kdf_log2_n = 10;  // fast in tests; production uses 15
    return o;
  }
  std::unique_ptr<Security> Open(const SecurityOptions& o) {
    auto s = Security::Open(store_.get(), o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }
  std::vector<RecordedEvent> UsersEvents() {
    auto c = store_->ReadStream("$users");
    if (!c.ok()) return {};
    auto all = c->Collect();
    return all.ok() ? *all : std::vector<RecordedEvent>{};
  }
  std::unique_ptr<Store> store_;
};

TEST_F(SecurityTest, FirstStartCreatesAdminWithAGeneratedPasswordOnlyOnce) {
  SecurityOptions o = Enabled();
  o.initial_admin_password.clear();
  std::string generated;
  auto first = Security::Open(store_.get(), o, &generated);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(generated.size(), 24u);
  auto who = (*first)->Authenticate("admin", generated);
  ASSERT_TRUE(who.ok()) << who.status().ToString();
  EXPECT_TRUE(who->admin());
  EXPECT_EQ((*first)->Authenticate("admin", generated + "x").status().code(), StatusCode::kUnauthenticated);

  std::string again;
  auto second = Security::Open(store_.get(), o, &again);
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(again.empty());
  EXPECT_EQ(UsersEvents().size(), 1u);
  EXPECT_TRUE((*second)->Authenticate("admin", generated).ok());
}

TEST_F(SecurityTest, UsersAddedBeforeTheFirstStartStillGetAnAdmin) {
  {
    auto offline = Security::Open(store_.get(), SecurityOptions{});  // `cairn user add` works so
    ASSERT_TRUE(offline.ok());
    ASSERT_TRUE((*offline)->CreateUser("teller", "teller-password", {"tellers"}).ok());
  }
  auto s = Open(Enabled());
  auto admin = s->Authenticate("admin", "admin-secret");
  ASSERT_TRUE(admin.ok()) << admin.status().ToString();
  EXPECT_TRUE(admin->admin());
  EXPECT_TRUE(s->Authenticate("teller", "teller-password").ok());
}

TEST_F(SecurityTest, DisabledCreatesNoUserAndAllowsEverything) {
  SecurityOptions o;
  auto s = Open(o);
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(UsersEvents().empty());
  auto anon = s->Authenticate("");
  ASSERT_TRUE(anon.ok());
  EXPECT_TRUE(s->Authorize(*anon, Permission::kWrite, "orders-1").ok());
  EXPECT_TRUE(s->Authorize(*anon, Permission::kReadAll, "").ok());
  EXPECT_TRUE(s->Authorize(*anon, Permission::kOperate, "").ok());
}

TEST_F(SecurityTest, PasswordsAreStoredOnlyAsSaltedHashes) {
  auto s = Open(Enabled());
  ASSERT_TRUE(s->CreateUser("alice", "same-password", {}).ok());
  ASSERT_TRUE(s->CreateUser("bob", "same-password", {"ops"}).ok());
  auto events = UsersEvents();
  ASSERT_EQ(events.size(), 3u);
  std::vector<std::string> hashes;
  for (const auto& e : events) {
    EXPECT_EQ(e.data.find("same-password"), std::string::npos);
    EXPECT_EQ(e.data.find("admin-secret"), std::string::npos);
    auto j = nlohmann::json::parse(e.data);
    EXPECT_EQ(j["kdf"], "scrypt");
    hashes.push_back(j["hash"].get<std::string>());
  }
  EXPECT_NE(hashes[1], hashes[2]);  // same password, different salts
}

TEST_F(SecurityTest, BasicHeadersAreParsedAndBadOnesRejected) {
  auto s = Open(Enabled());
  ASSERT_TRUE(s->CreateUser("alice", "pa:ss:word", {"ops"}).ok());
  auto who = s->Authenticate(Basic("alice:pa:ss:word"));  // the first ':' separates
  ASSERT_TRUE(who.ok()) << who.status().ToString();
  EXPECT_EQ(who->name, "alice");
  EXPECT_EQ(who->groups, std::vector<std::string>{"ops"});
  std::string lower = Basic("alice:pa:ss:word");
  lower.replace(0, 5, "basic");
  EXPECT_TRUE(s->Authenticate(lower).ok());
  auto anon = s->Authenticate("");
  ASSERT_TRUE(anon.ok());
  EXPECT_TRUE(anon->anonymous());

  for (const std::string& bad : {std::string("Bearer abc"), std::string("Basic"), std::string("Basic !!!!"),
                                Basic("no-colon"), Basic("alice:wrong-password"), Basic("nobody:pa:ss:word"),
                                Basic(":pa:ss:word")}) {
    auto r = s->Authenticate(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated) << bad;
  }
}

TEST_F(SecurityTest, BadUserInputIsRejectedNamingTheFieldAndLimitAndWritesNothing) {
  auto s = Open(Enabled());
  const size_t before = UsersEvents().size();
  auto msg = [](const Status& st) { return st.message(); };
  Status st = s->CreateUser("", "long-enough", {});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(msg(st).find("user name"), std::string::npos);
  EXPECT_NE(msg(st).find("128"), std::string::npos);
  st = s->CreateUser(std::string(129, 'a'), "long-enough", {});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  st = s->CreateUser("al:ice", "long-enough", {});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(msg(st).find("user name"), std::string::npos);
  st = s->CreateUser("alice", "short", {});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(msg(st).find("password"), std::string::npos);
  EXPECT_NE(msg(st).find("8"), std::string::npos);
  st = s->CreateUser("alice", "long-enough", {"bad group"});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(msg(st).find("group"), std::string::npos);
  EXPECT_EQ(s->CreateUser("admin", "long-enough", {}).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(s->ChangePassword("nobody", "long-enough").code(), StatusCode::kNotFound);
  EXPECT_EQ(s->DeleteUser("nobody").code(), StatusCode::kNotFound);
  EXPECT_EQ(UsersEvents().size(), before);
}

TEST_F(SecurityTest, PasswordChangeAndDeleteTakeEffectAtOnceAlsoInAnotherServer) {
  auto a = Open(Enabled());
  auto b = Open(Enabled());  // a second server on the same store
  ASSERT_TRUE(a->CreateUser("alice", "first-password", {}).ok());
  ASSERT_TRUE(b->Authenticate("alice", "first-password").ok());  // b sees a's user
  ASSERT_TRUE(b->Authenticate("alice", "first-password").ok());  // and remembers the check
  ASSERT_TRUE(a->ChangePassword("alice", "second-password").ok());
  EXPECT_EQ(b->Authenticate("alice", "first-password").status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(a->Authenticate("alice", "first-password").status().code(), StatusCode::kUnauthenticated);
  EXPECT_TRUE(b->Authenticate("alice", "second-password").ok());
  ASSERT_TRUE(b->SetGroups("alice", {"ops"}).ok());
  auto who = a->Authenticate("alice", "second-password");
  ASSERT_TRUE(who.ok());
  EXPECT_EQ(who->groups, std::vector<std::string>{"ops"});
  ASSERT_TRUE(b->DeleteUser("alice").ok());
  EXPECT_EQ(a->Authenticate("alice", "second-password").status().code(), StatusCode::kUnauthenticated);
  auto users = a->ListUsers();
  ASSERT_TRUE(users.ok());
  ASSERT_EQ(users->size(), 1u);
  EXPECT_EQ((*users)[0].name, "admin");
}

TEST_F(SecurityTest, AuthorizationFollowsAdminsStreamAclLongestPrefixAndDeniesTheRest) {
  SecurityPolicy policy;
  AclRule all;  // every stream that is not a system stream
  all.prefix = "";
  all.read = {"$authenticated"};
  AclRule orders;
  orders.prefix = "order-";
  orders.read = {"$everyone"};
  orders.write = {"ops", "carol"};
  orders.metadata_read = {"ops"};
  AclRule secret;
  secret.prefix = "order-secret";
  secret.read = {"auditors"};
  policy.rules = {all, orders, secret};
  policy.read_all = {"auditors"};
  policy.metrics = {"monitoring"};
  auto s = Open(Enabled(policy));
  ASSERT_TRUE(s->CreateUser("alice", "alice-password", {"ops"}).ok());
  ASSERT_TRUE(s->CreateUser("bob", "bob-password", {}).ok());
  ASSERT_TRUE(s->CreateUser("carol", "carol-password", {"auditors"}).ok());
  ASSERT_TRUE(s->CreateUser("prom", "prom-password", {"monitoring"}).ok());
  const Principal anon = *s->Authenticate("");
  const Principal admin = *s->Authenticate("admin", "admin-secret");
  const Principal alice = *s->Authenticate("alice", "alice-password");
  const Principal bob = *s->Authenticate("bob", "bob-password");
  const Principal carol = *s->Authenticate("carol", "carol-password");
  const Principal prom = *s->Authenticate("prom", "prom-password");
  auto ok = [&](const Principal& p, Permission w, std::string_view stream) { return s->Authorize(p, w, stream).ok(); };

  for (Permission w : {Permission::kRead, Permission::kWrite, Permission::kDelete, Permission::kMetadataRead,
                       Permission::kMetadataWrite, Permission::kReadAll, Permission::kOperate, Permission::kMetrics}) {
    EXPECT_TRUE(ok(admin, w, "$users")) << PermissionName(w);
    EXPECT_TRUE(ok(admin, w, "order-1")) << PermissionName(w);
  }
  EXPECT_TRUE(ok(anon, Permission::kRead, "order-1"));       // $everyone
  EXPECT_FALSE(ok(anon, Permission::kRead, "customer-1"));   // $authenticated only
  EXPECT_TRUE(ok(bob, Permission::kRead, "customer-1"));
  EXPECT_FALSE(ok(bob, Permission::kWrite, "customer-1"));   // nobody has write under ""
  EXPECT_TRUE(ok(alice, Permission::kWrite, "order-1"));     // group ops
  EXPECT_TRUE(ok(carol, Permission::kWrite, "order-1"));     // by name
  EXPECT_FALSE(ok(bob, Permission::kWrite, "order-1"));
  EXPECT_FALSE(ok(alice, Permission::kDelete, "order-1"));
  EXPECT_FALSE(ok(alice, Permission::kRead, "order-secret-1"));  // the longest prefix decides
  EXPECT_TRUE(ok(carol, Permission::kRead, "order-secret-1"));
  EXPECT_FALSE(ok(anon, Permission::kRead, "order-secret-1"));
  // "$$x" is x's metadata.
  EXPECT_TRUE(ok(alice, Permission::kRead, "$$order-1"));
  EXPECT_FALSE(ok(bob, Permission::kRead, "$$order-1"));
  EXPECT_FALSE(ok(alice, Permission::kWrite, "$$order-1"));
  // System streams: the "" rule does not reach them.
  EXPECT_FALSE(ok(bob, Permission::kRead, "$users"));
  EXPECT_FALSE(ok(alice, Permission::kRead, "$users"));
  // $all and operating the server.
  EXPECT_TRUE(ok(carol, Permission::kReadAll, ""));
  EXPECT_FALSE(ok(alice, Permission::kReadAll, ""));
  EXPECT_FALSE(ok(alice, Permission::kOperate, ""));
  // Scraping the metrics: admins and the [security] metrics roles; it grants nothing else.
  EXPECT_TRUE(ok(prom, Permission::kMetrics, ""));
  EXPECT_FALSE(ok(prom, Permission::kOperate, ""));
  EXPECT_FALSE(ok(prom, Permission::kReadAll, ""));
  EXPECT_FALSE(ok(alice, Permission::kMetrics, ""));
  EXPECT_EQ(s->Authorize(anon, Permission::kMetrics, "").code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(s->Authorize(bob, Permission::kMetrics, "").message(),
            "access denied: user bob may not scrape the server's metrics");

  // The stream's own $acl comes before the rules, key by key.
  StreamMetadata md;
  md.acl_json = R"({"$w": "bob", "$r": ["carol"]})";
  ASSERT_TRUE(store_->SetStreamMetadata("order-7", ExpectedVersion::Any(), md).ok());
  EXPECT_TRUE(ok(bob, Permission::kWrite, "order-7"));
  EXPECT_FALSE(ok(alice, Permission::kWrite, "order-7"));
  EXPECT_FALSE(ok(anon, Permission::kRead, "order-7"));
  EXPECT_TRUE(ok(carol, Permission::kRead, "order-7"));
  EXPECT_TRUE(ok(alice, Permission::kMetadataRead, "order-7"));  // no "$mr": the rule decides

  // Denials say who, what and where; anonymous callers are told to sign in.
  Status denied = s->Authorize(bob, Permission::kWrite, "order-1");
  EXPECT_EQ(denied.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(denied.message().find("bob"), std::string::npos);
  EXPECT_NE(denied.message().find("write"), std::string::npos);
  EXPECT_NE(denied.message().find("order-1"), std::string::npos);
  EXPECT_EQ(s->Authorize(anon, Permission::kWrite, "order-1").code(), StatusCode::kUnauthenticated);
}

TEST_F(SecurityTest, BadPolicyIsRejectedNamingTheRule) {
  SecurityPolicy policy;
  AclRule a;
  a.prefix = "x-";
  AclRule b;
  b.prefix = "x-";
  policy.rules = {a, b};
  auto s = Security::Open(store_.get(), Enabled(policy));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("acl rule 2"), std::string::npos);
  EXPECT_TRUE(UsersEvents().empty());  // nothing created
  policy.rules = {a};
  policy.rules[0].write = {""};
  s = Security::Open(store_.get(), Enabled(policy));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("acl rule 1"), std::string::npos);
}

}  // namespace
}  // namespace cairn::auth
