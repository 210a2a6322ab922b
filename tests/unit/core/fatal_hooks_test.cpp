// Fatal hooks: hr::fatal runs the registered hooks once (notify stage before drain, registration order
// within a stage), skips removed ones, survives a throwing hook, never recurses on a fatal inside a
// hook, leaves a second thread's fatal to the first, and always ends the process with SIGABRT.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <thread>

#include "core/fatal_hooks.h"
#include "core/status.h"

namespace hr {
namespace {

using namespace std::chrono_literals;

void say(const char* s) {
    std::fprintf(stderr, "%s\n", s);
    std::fflush(stderr);
}

class FatalHooksDeathTest : public ::testing::Test {
protected:
    // A child that re-runs the binary: the parent may hold threads from earlier tests.
    void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST(FatalHooks, RegistrationAndRemovalOutsideAFatal) {
    EXPECT_FALSE(fatal_in_progress());
    FatalHookHandle a = add_fatal_hook(FatalStage::notify, [] {});
    EXPECT_TRUE(a.active());
    FatalHookHandle b = std::move(a);
    EXPECT_FALSE(a.active());
    EXPECT_TRUE(b.active());
    b.reset();
    EXPECT_FALSE(b.active());
    b.reset();  // twice is harmless
    EXPECT_FALSE(fatal_in_progress());
}

TEST_F(FatalHooksDeathTest, HooksRunInStageOrderThenTheProcessAborts) {
    auto body = [] {
        // Registered drain first: the stages, not the registration order across stages, decide.
        FatalHookHandle d1 = add_fatal_hook(FatalStage::drain, [] { say("drain-1"); });
        FatalHookHandle n1 = add_fatal_hook(FatalStage::notify, [] {
            say(fatal_in_progress() ? "notify-1 in-progress" : "notify-1 NOT-in-progress");
        });
        FatalHookHandle d2 = add_fatal_hook(FatalStage::drain, [] { say("drain-2"); });
        FatalHookHandle n2 = add_fatal_hook(FatalStage::notify, [] { say("notify-2"); });
        fatal(__FILE__, __LINE__, "test fatal");
    };
    EXPECT_EXIT(body(), ::testing::KilledBySignal(SIGABRT),
                "headroom: fatal: test fatal.*notify-1 in-progress\nnotify-2\ndrain-1\ndrain-2\n"
                "headroom: fatal: ending the process");
}

TEST_F(FatalHooksDeathTest, RemovedHooksDoNotRun) {
    auto body = [] {
        FatalHookHandle gone = add_fatal_hook(FatalStage::notify, [] { std::_Exit(7); });
        FatalHookHandle moved_from = add_fatal_hook(FatalStage::drain, [] { std::_Exit(8); });
        gone.reset();
        { FatalHookHandle sink = std::move(moved_from); }  // destroyed: removed
        FatalHookHandle kept = add_fatal_hook(FatalStage::notify, [] { say("kept"); });
        HR_CHECK_MSG(1 + 1 == 3, "arithmetic");
    };
    // Exit code 7 or 8 (not SIGABRT) would mean a removed hook ran.
    EXPECT_EXIT(body(), ::testing::KilledBySignal(SIGABRT), "check failed: 1 \\+ 1 == 3: arithmetic.*kept");
}

TEST_F(FatalHooksDeathTest, AThrowingHookDoesNotStopTheOthers) {
    auto body = [] {
        FatalHookHandle t = add_fatal_hook(FatalStage::notify, [] { throw std::runtime_error("boom"); });
        FatalHookHandle a = add_fatal_hook(FatalStage::notify, [] { say("after-throw"); });
        fatal(__FILE__, __LINE__, "throwing hook");
    };
    EXPECT_EXIT(body(), ::testing::KilledBySignal(SIGABRT), "a fatal hook threw.*after-throw.*ending the process");
}

TEST_F(FatalHooksDeathTest, AFatalInsideAHookDoesNotRecurse) {
    auto body = [] {
        FatalHookHandle a = add_fatal_hook(FatalStage::notify, [] {
            // Adding or removing a hook from inside a hook must not wait for the lock this thread holds.
            FatalHookHandle inner = add_fatal_hook(FatalStage::notify, [] {});
            inner.reset();
            say("add-remove-inside-ok");
        });
        FatalHookHandle b = add_fatal_hook(FatalStage::notify, [] {
            say("hook-entered");
            fatal(__FILE__, __LINE__, "again, from the hook");
        });
        fatal(__FILE__, __LINE__, "first");
    };
    EXPECT_EXIT(body(), ::testing::KilledBySignal(SIGABRT),
                "fatal: first.*add-remove-inside-ok\nhook-entered\nheadroom: fatal: again, from the hook.*"
                "a second fatal error inside a fatal hook; aborting now");
}

TEST_F(FatalHooksDeathTest, ASecondThreadLeavesTheEndingToTheFirst) {
    auto body = [] {
        FatalHookHandle h = add_fatal_hook(FatalStage::drain, [] {
            std::thread other([] { fatal(__FILE__, __LINE__, "from the other thread"); });
            other.detach();
            std::this_thread::sleep_for(300ms);  // the other thread is parked, not running hooks
            say("first-thread-hook-done");
        });
        fatal(__FILE__, __LINE__, "from the first thread");
    };
    EXPECT_EXIT(body(), ::testing::KilledBySignal(SIGABRT),
                "from the other thread.*another thread is already ending the process.*first-thread-hook-done\n"
                "headroom: fatal: ending the process");
}

}  // namespace
}  // namespace hr
