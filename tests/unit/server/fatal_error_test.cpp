// A fatal error inside a model step (the test-only HEADROOM_FAULT_INJECT, standing in for a sticky CUDA
// error) while requests are in flight: the non-streaming one gets a 503 engine_dead error object, the
// streaming one an SSE error event and [DONE], /health and /ping say 503 during the grace period, and
// the process ends with SIGABRT. In-process with the fake runner; tests/python/server runs the binary.
#include <gtest/gtest.h>

#include <httplib.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <thread>

#include "server/api_server.h"
#include "unit/runtime/fake_runner.h"

namespace hr::server {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using hr::testing::FakeRunner;

constexpr int64_t kVocab = 32000;
constexpr int kBlock = 16;

std::string body(bool stream) {
    return json{{"model", "tiny"}, {"prompt", "Hello world"}, {"max_tokens", 200}, {"temperature", 0},
                {"ignore_eos", true}, {"stream", stream}}
        .dump();
}

// What a client saw: "<status> <error code or ->" (streaming: the code of the event before [DONE]).
std::string summarize(const httplib::Result& r, bool stream) {
    if (!r) return "no-response";
    std::string code = "-";
    if (!stream) {
        json j = json::parse(r->body, nullptr, false);
        if (j.is_object() && j.contains("error")) code = j["error"].value("code", "?");
        return std::to_string(r->status) + " " + code;
    }
    const std::string done = "data: [DONE]\n\n";
    const std::string& b = r->body;
    if (b.size() < done.size() || b.compare(b.size() - done.size(), done.size(), done) != 0) {
        return std::to_string(r->status) + " no-done";
    }
    const size_t end = b.size() - done.size() - 2;  // the "\n\n" that ends the last event
    const size_t start = b.rfind("data: ", end);
    json j = json::parse(b.substr(start + 6, end - start - 6), nullptr, false);
    if (j.is_object() && j.contains("error")) code = j["error"].value("code", "?");
    return std::to_string(r->status) + " " + code;
}

void serve_until_fatal() {
    setenv(kFaultInjectEnv, "fatal_after_steps=2,min_seqs=2", 1);
    auto tok = Tokenizer::from_model_dir(std::string(HR_FIXTURES_DIR) + "/models/tiny-mixtral");
    if (!tok.ok()) std::_Exit(3);
    FakeRunner runner(kVocab, 64, kBlock);
    runner.step_delay_ms = 20;  // both requests are admitted long before the fault can fire
    EngineConfig c;
    c.limits = {.max_tokens_per_step = 64, .max_seqs = 8, .max_blocks_per_seq = 16};
    c.n_kv_blocks = 64;
    c.block_size = kBlock;
    c.context = 256;
    c.log_interval_s = 0;
    Engine engine(c, runner);
    ServerOptions o;
    o.port = 0;
    o.model_name = "tiny";
    o.threads = 8;
    ApiServer server(o);
    auto port = server.start();
    if (!port.ok() || !engine.start().ok()) std::_Exit(4);
    server.attach(engine, **tok, {2}, {});

    std::promise<std::string> plain_p, stream_p;
    auto plain_f = plain_p.get_future(), stream_f = stream_p.get_future();
    std::thread([&, p = *port] {
        httplib::Client cl("127.0.0.1", p);
        cl.set_read_timeout(30, 0);
        stream_p.set_value(summarize(cl.Post("/v1/completions", body(true), "application/json"), true));
    }).detach();
    std::thread([&, p = *port] {
        httplib::Client cl("127.0.0.1", p);
        cl.set_read_timeout(30, 0);
        plain_p.set_value(summarize(cl.Post("/v1/completions", body(false), "application/json"), false));
    }).detach();

    // Runs after the server's drain hook (registered later): the handlers have written their errors and
    // the listener still answers, as it does for the whole grace period.
    FatalHookHandle report = add_fatal_hook(FatalStage::drain, [&, p = *port] {
        httplib::Client cl("127.0.0.1", p);
        cl.set_read_timeout(5, 0);
        auto h = cl.Get("/health");
        auto g = cl.Get("/ping");
        const bool got = plain_f.wait_for(5s) == std::future_status::ready &&
                         stream_f.wait_for(5s) == std::future_status::ready;
        std::fprintf(stderr, "report: health %d ping %d; plain %s; stream %s\n", h ? h->status : -1,
                     g ? g->status : -1, got ? plain_f.get().c_str() : "?", got ? stream_f.get().c_str() : "?");
    });
    std::this_thread::sleep_for(30s);  // the engine thread ends the process long before
    std::_Exit(5);
}

TEST(FatalErrorDeathTest, RequestsInFlightGetExplicitErrorsThenTheProcessAborts) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_EXIT(serve_until_fatal(), ::testing::KilledBySignal(SIGABRT),
                "injected fault.*2 HTTP requests were in flight; 0 still were.*"
                "report: health 503 ping 503; plain 503 engine_dead; stream 200 engine_dead\n"
                "headroom: fatal: ending the process");
}

}  // namespace
}  // namespace hr::server
