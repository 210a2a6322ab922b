// The test-only fault injection (HEADROOM_FAULT_INJECT): its parser, the engine refusing a malformed
// value, and the fatal path it drives: the engine is dead, every request in flight or queued gets the
// explicit engine_dead error, and the process ends with SIGABRT.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "runtime/engine.h"
#include "runtime/fault_injection.h"
#include "unit/runtime/fake_runner.h"

namespace hr {
namespace {

using namespace std::chrono_literals;
using testing::FakeRunner;

TEST(FaultInjection, ParsesTheSpec) {
    auto a = parse_fault_plan("fatal_after_steps=3");
    ASSERT_TRUE(a.ok()) << a.error().message;
    EXPECT_EQ(a->fatal_after_steps, 3);
    EXPECT_EQ(a->min_seqs, 1);
    auto b = parse_fault_plan("min_seqs=2,fatal_after_steps=0");
    ASSERT_TRUE(b.ok()) << b.error().message;
    EXPECT_EQ(b->fatal_after_steps, 0);
    EXPECT_EQ(b->min_seqs, 2);
}

TEST(FaultInjection, RefusesMalformedSpecs) {
    for (const char* bad : {"", "fatal_after_steps", "fatal_after_steps=", "fatal_after_steps=-1",
                            "fatal_after_steps=3x", "fatal_after_steps=3,min_seqs=0", "min_seqs=2",
                            "fatal_after_steps=3,crash=1", "fatal_after_steps=3,"}) {
        auto r = parse_fault_plan(bad);
        EXPECT_FALSE(r.ok()) << "'" << bad << "' was accepted";
        if (!r.ok()) {
            EXPECT_NE(r.error().message.find("HEADROOM_FAULT_INJECT"), std::string::npos) << r.error().message;
        }
    }
}

EngineConfig small_config() {
    EngineConfig c;
    c.limits = {.max_tokens_per_step = 16, .max_seqs = 8, .max_blocks_per_seq = 16};
    c.n_kv_blocks = 64;
    c.block_size = 4;
    c.max_queue = 32;
    c.context = 64;
    c.log_interval_s = 0;
    return c;
}

GenerationRequest long_request(int32_t first) {
    GenerationRequest r;
    r.prompt = {first, 5, 6};
    r.max_tokens = 50;
    r.sampling.temperature = 0.0f;
    return r;
}

TEST(FaultInjection, EngineRefusesToStartWithAMalformedValue) {
    FakeRunner runner(64, 64, 4);
    Engine e(small_config(), runner);
    ASSERT_EQ(setenv(kFaultInjectEnv, "fatal_after_steps=soon", 1), 0);
    Status st = e.start();
    unsetenv(kFaultInjectEnv);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message.find("'fatal_after_steps' must be an integer >= 0, found 'soon'"), std::string::npos)
        << st.error().message;
    EXPECT_EQ(e.health(), EngineHealth::stopped);
}

// In the child: two requests run, a third waits in the queue (max_seqs 2); the fault fires on the
// second step that runs two sequences. A drain hook (registered after the engine's notify hook) then
// reports what the engine and each stream say, as the server's handlers would see them.
void run_until_fatal() {
    setenv(kFaultInjectEnv, "fatal_after_steps=1,min_seqs=2", 1);
    FakeRunner runner(64, 64, 4);
    runner.step_delay_ms = 20;  // the requests are all submitted long before the second step ends
    EngineConfig c = small_config();
    c.limits.max_seqs = 2;
    Engine e(c, runner);
    if (!e.start().ok()) std::_Exit(3);
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (int32_t i = 0; i < 3; ++i) {
        SubmitResult r = e.submit(long_request(10 + i));
        if (!std::holds_alternative<std::shared_ptr<RequestStream>>(r)) std::_Exit(4);
        streams.push_back(std::get<std::shared_ptr<RequestStream>>(r));
    }
    FatalHookHandle report = add_fatal_hook(FatalStage::drain, [&] {
        std::string line = fmt::format("engine health {}", e.health() == EngineHealth::dead ? "dead" : "alive");
        const SubmitResult late = e.submit(long_request(20));
        const auto* refused = std::get_if<SubmitError>(&late);
        line += refused && refused->kind == SubmitErrorKind::unavailable ? "; submit refused" : "; submit ACCEPTED";
        for (auto& s : streams) {
            std::optional<StreamEvent> ev = s->next(100ms);
            const bool explicit_error = ev && ev->kind == StreamEvent::Kind::finished && ev->engine_dead &&
                                        ev->reason == FinishReason::error && ev->error == kEngineFatalMessage;
            line += explicit_error ? "; engine_dead" : "; OTHER";
            line += s->next(10ms) ? " +MORE" : "";  // nothing after the final event
        }
        std::fprintf(stderr, "%s\n", line.c_str());
    });
    std::this_thread::sleep_for(20s);  // the engine thread ends the process long before
    std::_Exit(5);
}

TEST(FaultInjectionDeathTest, AFatalInAStepFailsEveryRequestExplicitly) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_EXIT(run_until_fatal(), ::testing::KilledBySignal(SIGABRT),
                "injected fault \\(HEADROOM_FAULT_INJECT\\).*engine health dead; submit refused; engine_dead; "
                "engine_dead; engine_dead\n.*ending the process");
}

}  // namespace
}  // namespace hr
