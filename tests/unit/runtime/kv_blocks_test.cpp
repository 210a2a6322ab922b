// KvBlockPool: reservations, lazy allocation, release, invariants.
#include <gtest/gtest.h>

#include "runtime/kv_blocks.h"

namespace hr {

TEST(KvBlocks, BlocksForRoundsUp) {
    EXPECT_EQ(KvBlockPool::blocks_for(0, 16), 0);
    EXPECT_EQ(KvBlockPool::blocks_for(1, 16), 1);
    EXPECT_EQ(KvBlockPool::blocks_for(16, 16), 1);
    EXPECT_EQ(KvBlockPool::blocks_for(17, 16), 2);
}

TEST(KvBlocks, ReservationLimitsAvailability) {
    KvBlockPool pool(10, 16);
    EXPECT_TRUE(pool.try_reserve(6));
    EXPECT_EQ(pool.n_available(), 4);
    EXPECT_FALSE(pool.try_reserve(5));
    EXPECT_EQ(pool.n_reserved(), 6);  // a refused reservation changes nothing
    EXPECT_TRUE(pool.try_reserve(4));
    EXPECT_EQ(pool.n_available(), 0);
    EXPECT_TRUE(pool.check_invariants());
}

TEST(KvBlocks, AllocateFromReservationThenRelease) {
    KvBlockPool pool(4, 8);
    ASSERT_TRUE(pool.try_reserve(3));
    std::vector<int32_t> got;
    for (int i = 0; i < 3; ++i) got.push_back(pool.allocate_reserved());
    EXPECT_EQ(pool.n_used(), 3);
    EXPECT_EQ(pool.n_reserved(), 0);
    EXPECT_EQ(pool.n_available(), 1);
    EXPECT_NE(got[0], got[1]);
    EXPECT_NE(got[1], got[2]);
    EXPECT_TRUE(pool.check_invariants());
    pool.release(got);
    EXPECT_EQ(pool.n_used(), 0);
    EXPECT_EQ(pool.n_free(), 4);
    EXPECT_TRUE(pool.check_invariants());
}

TEST(KvBlocks, UnreserveReturnsUnusedPart) {
    KvBlockPool pool(4, 8);
    ASSERT_TRUE(pool.try_reserve(4));
    int32_t b = pool.allocate_reserved();
    pool.unreserve(3);
    EXPECT_EQ(pool.n_available(), 3);
    pool.release({b});
    EXPECT_EQ(pool.n_available(), 4);
}

TEST(KvBlocksDeathTest, AllocationWithoutReservationIsABug) {
    KvBlockPool pool(4, 8);
    EXPECT_DEATH(pool.allocate_reserved(), "without a reservation");
}

TEST(KvBlocksDeathTest, DoubleFreeIsABug) {
    KvBlockPool pool(4, 8);
    ASSERT_TRUE(pool.try_reserve(1));
    int32_t b = pool.allocate_reserved();
    pool.release({b});
    EXPECT_DEATH(pool.release({b}), "double free");
}

}  // namespace hr
