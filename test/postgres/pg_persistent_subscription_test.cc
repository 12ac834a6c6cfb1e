// The persistent-subscription tests (src/subscription/persistent_subscription_tests.inc) on the
// PostgreSQL backend, on the ctest fixture's cluster: groups, checkpoints and parked events are
// system streams, so every one of them goes through PostgreSQL, including a restart.
#include "subscription/persistent_subscription_tests.inc"

namespace cairn {

INSTANTIATE_TEST_SUITE_P(Postgres, PersistentSubscriptionTest, ::testing::Values("postgres"),
                         [](const auto& info) { return info.param; });

}  // namespace cairn
