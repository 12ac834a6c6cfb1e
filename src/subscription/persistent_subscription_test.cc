// The persistent-subscription tests (persistent_subscription_tests.inc) on the embedded backends.
#include "subscription/persistent_subscription_tests.inc"

namespace cairn {

INSTANTIATE_TEST_SUITE_P(Embedded, PersistentSubscriptionTest, ::testing::Values("memory", "file"),
                         [](const auto& info) { return info.param; });

}  // namespace cairn
