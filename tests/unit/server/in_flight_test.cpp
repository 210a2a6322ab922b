// InFlight: the in-flight count the fatal grace period waits on goes up once per guard and down exactly
// once, whether the guard ends, is moved into a release callback, or is released early.
#include <gtest/gtest.h>

#include <memory>

#include "server/in_flight.h"

namespace hr::server {
namespace {

TEST(InFlight, CountsWhileAlive) {
    std::atomic<int64_t> n{0};
    {
        InFlight a(n);
        InFlight b(n);
        EXPECT_EQ(n.load(), 2);
    }
    EXPECT_EQ(n.load(), 0);
}

TEST(InFlight, MovedGuardCountsOnce) {
    std::atomic<int64_t> n{0};
    auto held = [&] {
        InFlight a(n);
        return std::make_shared<InFlight>(std::move(a));  // as a handler hands it to a stream's release
    }();
    EXPECT_EQ(n.load(), 1);
    held->release();
    EXPECT_EQ(n.load(), 0);
    held->release();  // idempotent: the callback may run before the guard is destroyed
    held.reset();
    EXPECT_EQ(n.load(), 0);
}

}  // namespace
}  // namespace hr::server
