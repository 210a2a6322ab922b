// ApiServer in-process on 127.0.0.1 (a free port), with the fake paged-KV runner and the tiny-mixtral
// fixture tokenizer: lifecycle, auth, errors, completions and streaming, queue bound, disconnects,
// graceful shutdown. The real binary with a real model is tested in tests/python/server.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <httplib.h>

#include <atomic>
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

struct Harness {
    explicit Harness(int64_t n_blocks = 64, int64_t max_queue = 16, std::string api_key = "", bool attach = true,
                     double stall_timeout_s = 0)
        : runner(kVocab, n_blocks, kBlock) {
        auto t = Tokenizer::from_model_dir(std::string(HR_FIXTURES_DIR) + "/models/tiny-mixtral");
        if (!t.ok()) {
            ADD_FAILURE() << t.error().message;
            return;
        }
        tok = std::move(*t);
        EngineConfig c;
        c.limits = {.max_tokens_per_step = 64, .max_seqs = 8, .max_blocks_per_seq = 16};
        c.n_kv_blocks = n_blocks;
        c.block_size = kBlock;
        c.max_queue = max_queue;
        c.context = 256;
        c.log_interval_s = 0;
        engine = std::make_unique<Engine>(c, runner);
        ServerOptions o;
        o.host = "127.0.0.1";
        o.port = 0;
        o.model_name = "tiny";
        o.api_key = std::move(api_key);
        o.max_body_bytes = 64 * 1024;
        o.threads = 16;
        o.stall_timeout_s = stall_timeout_s;
        server = std::make_unique<ApiServer>(o);
        auto p = server->start();
        if (!p.ok()) {
            ADD_FAILURE() << p.error().message;
            return;
        }
        port = *p;
        if (attach) do_attach();
    }
    void do_attach() {
        ASSERT_TRUE(engine->start().ok());
        server->attach(*engine, *tok, {2}, {{"kv_cache", 1234}});
    }
    ~Harness() {
        if (server) server->stop();
        if (engine) engine->stop();
    }
    httplib::Client client() const {
        httplib::Client c("127.0.0.1", port);
        c.set_read_timeout(30, 0);
        return c;
    }
    std::string metrics() const {
        auto r = client().Get("/metrics");
        return r ? r->body : "";
    }
    // The value of one metric line (exact name with labels), or -1.
    double metric(const std::string& name) const {
        std::string m = metrics();
        size_t p = m.find("\n" + name + " ");
        if (p == std::string::npos) return -1;
        return std::stod(m.substr(p + name.size() + 2));
    }
    std::string expected_text(const std::string& prompt, int64_t n) const {
        auto ids = tok->encode(prompt, true);
        auto out = FakeRunner::expected_greedy(*ids, kVocab, n, 2);
        return *tok->decode(out, true);
    }

    FakeRunner runner;
    std::unique_ptr<Tokenizer> tok;
    std::unique_ptr<Engine> engine;
    std::unique_ptr<ApiServer> server;
    int port = 0;
};

bool wait_until(const std::function<bool()>& pred) {
    for (int i = 0; i < 500; ++i) {
        if (pred()) return true;
        std::this_thread::sleep_for(10ms);
    }
    return pred();
}

// A raw connection that sends one request and can be closed at any point.
struct RawConn {
    explicit RawConn(int port) {
        fd = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<uint16_t>(port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        connected = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    }
    void post(const std::string& path, const std::string& body) {
        std::string req = "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\n\r\n" + body;
        ASSERT_EQ(send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
    }
    std::string read_some() {
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
    }
    ~RawConn() { close(fd); }
    int fd = -1;
    bool connected = false;
};

std::string completion_body(const std::string& prompt, int max_tokens, bool stream) {
    return json{{"model", "tiny"}, {"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}, {"stream", stream}}
        .dump();
}

}  // namespace

TEST(ApiServer, LoadingThenReady) {
    Harness h(64, 16, "", /*attach=*/false);
    auto c = h.client();
    EXPECT_EQ(c.Get("/ping")->status, 204);
    EXPECT_EQ(c.Get("/health")->status, 503);
    auto r = c.Post("/v1/completions", completion_body("hi", 2, false), "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 503);
    EXPECT_TRUE(r->has_header("Retry-After"));
    EXPECT_EQ(json::parse(r->body)["error"]["code"], "loading");
    h.do_attach();
    EXPECT_EQ(c.Get("/ping")->status, 200);
    EXPECT_EQ(c.Get("/health")->status, 200);
    auto m = c.Get("/v1/models");
    ASSERT_TRUE(m);
    EXPECT_EQ(json::parse(m->body)["data"][0]["id"], "tiny");
}

TEST(ApiServer, CompletionMatchesFakeModelAndReportsUsage) {
    Harness h;
    auto r = h.client().Post("/v1/completions", completion_body("Hello world", 6, false), "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    json j = json::parse(r->body);
    EXPECT_EQ(j["object"], "text_completion");
    EXPECT_EQ(j["choices"][0]["text"], h.expected_text("Hello world", 6));
    EXPECT_EQ(j["usage"]["prompt_tokens"], h.tok->encode("Hello world", true)->size());
    EXPECT_TRUE(j["choices"][0]["finish_reason"] == "length" || j["choices"][0]["finish_reason"] == "stop");
    EXPECT_TRUE(wait_until([&] { return h.metric("headroom_kv_blocks_used") == 0; }));
}

TEST(ApiServer, MetricsReportPrefixCacheHits) {
    Harness h;
    std::string prompt;
    for (int i = 0; i < 4; ++i) prompt += "The same long system prompt, sent twice, is computed once. ";
    prompt += "Hello world";
    const size_t n_prompt = h.tok->encode(prompt, true)->size();
    ASSERT_GT(n_prompt, static_cast<size_t>(2 * kBlock));
    EXPECT_EQ(h.metric("headroom_prefix_cache_hit_rate"), 0);
    for (int i = 0; i < 2; ++i) {
        auto r = h.client().Post("/v1/completions", completion_body(prompt, 4, false), "application/json");
        ASSERT_TRUE(r);
        ASSERT_EQ(r->status, 200) << r->body;
        EXPECT_EQ(json::parse(r->body)["choices"][0]["text"], h.expected_text(prompt, 4));
    }
    const double hits = static_cast<double>((n_prompt - 1) / kBlock * kBlock);
    EXPECT_EQ(h.metric("headroom_prefix_cache_hit_tokens_total"), hits);
    EXPECT_NEAR(h.metric("headroom_prefix_cache_hit_rate"), hits / static_cast<double>(2 * n_prompt), 1e-6);
    EXPECT_GT(h.metric("headroom_kv_blocks_cached"), 0);
    // The second prompt's last block was rerun for its last token's logits, counted when it was cached.
    EXPECT_EQ(h.metric("headroom_prefix_cache_recomputed_tokens_total"),
              n_prompt % kBlock == 0 ? static_cast<double>(kBlock) : 0.0);
    EXPECT_EQ(h.metric("headroom_kv_block_copies_total"), 0);  // generation shares full blocks only
}

TEST(ApiServer, MetricsReportTheOffloadComputeChoice) {
    {
        Harness h;  // nothing chosen (no host experts): no offload-compute metrics
        EXPECT_EQ(h.metrics().find("headroom_offload_compute"), std::string::npos);
    }
    Harness h(64, 16, "", /*attach=*/false);
    std::atomic<uint64_t> computed{7};  // read on the server's threads
    h.server->set_offload_compute({.requested = "auto", .mode = "cpu", .link_gbps = 24.5, .cpu_gbps = 41.25,
                                   .host_call_ms = 0.02, .measured = true,
                                   .cpu_experts = [&] { return computed.load(); }});
    h.do_attach();
    EXPECT_EQ(h.metric("headroom_offload_compute{mode=\"cpu\",requested=\"auto\"}"), 1);
    EXPECT_EQ(h.metric("headroom_offload_compute{mode=\"gpu\",requested=\"auto\"}"), 0);
    EXPECT_EQ(h.metric("headroom_offload_compute_rate_gbps{path=\"link\",measured=\"true\"}"), 24.5);
    EXPECT_EQ(h.metric("headroom_offload_compute_rate_gbps{path=\"cpu\",measured=\"true\"}"), 41.25);
    EXPECT_EQ(h.metric("headroom_offload_cpu_experts_total"), 7);
    computed.store(9);
    EXPECT_EQ(h.metric("headroom_offload_cpu_experts_total"), 9);
}

TEST(ApiServer, StreamingEndsWithDoneAndMatchesNonStreaming) {
    Harness h;
    std::string sse;
    httplib::Client c = h.client();
    auto r = c.Post("/v1/completions", httplib::Headers{}, completion_body("Hello world", 6, true), "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200);
    sse = r->body;
    ASSERT_GE(sse.size(), 14u);
    EXPECT_EQ(sse.substr(sse.size() - 14), "data: [DONE]\n\n");
    std::string text;
    bool saw_usage = false;
    size_t pos = 0;
    while ((pos = sse.find("data: ", pos)) != std::string::npos) {
        size_t end = sse.find("\n\n", pos);
        std::string payload = sse.substr(pos + 6, end - pos - 6);
        pos = end;
        if (payload == "[DONE]") break;
        json j = json::parse(payload);
        text += j["choices"][0]["text"].get<std::string>();
        if (j.contains("usage")) saw_usage = true;
    }
    EXPECT_EQ(text, h.expected_text("Hello world", 6));
    EXPECT_TRUE(saw_usage);
}

TEST(ApiServer, ChatUsesTheTemplate) {
    Harness h;
    json body = {{"model", "tiny"},
                 {"messages", {{{"role", "user"}, {"content", "Hi"}}}},
                 {"max_tokens", 4},
                 {"temperature", 0}};
    auto r = h.client().Post("/v1/chat/completions", body.dump(), "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    json j = json::parse(r->body);
    EXPECT_EQ(j["object"], "chat.completion");
    EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
    auto rendered = h.tok->apply_chat_template(json::array({{{"role", "user"}, {"content", "Hi"}}}), true);
    ASSERT_TRUE(rendered.ok());
    EXPECT_EQ(j["usage"]["prompt_tokens"], h.tok->encode(*rendered, false)->size());
}

TEST(ApiServer, ApiKeyGuardsEverythingButHealthAndPing) {
    Harness h(64, 16, "s3cret");
    auto c = h.client();
    EXPECT_EQ(c.Get("/health")->status, 200);
    EXPECT_EQ(c.Get("/ping")->status, 200);
    auto no_key = c.Get("/v1/models");
    EXPECT_EQ(no_key->status, 401);
    EXPECT_EQ(json::parse(no_key->body)["error"]["type"], "authentication_error");
    EXPECT_EQ(c.Get("/metrics")->status, 401);
    EXPECT_EQ(c.Get("/v1/models", {{"Authorization", "Bearer s3cre"}})->status, 401);
    EXPECT_EQ(c.Get("/v1/models", {{"Authorization", "Bearer s3cret!"}})->status, 401);
    EXPECT_EQ(c.Get("/v1/models", {{"Authorization", "s3cret"}})->status, 401);
    EXPECT_EQ(c.Get("/v1/models", {{"Authorization", "Bearer s3cret"}})->status, 200);
    auto post = c.Post("/v1/completions", completion_body("x", 1, false), "application/json");
    EXPECT_EQ(post->status, 401);
}

TEST(ApiServer, TypedErrors) {
    Harness h;
    auto c = h.client();
    auto unknown = c.Post("/v1/completions", R"({"model": "gpt-4", "prompt": "x"})", "application/json");
    EXPECT_EQ(unknown->status, 404);
    EXPECT_EQ(json::parse(unknown->body)["error"]["code"], "model_not_found");
    EXPECT_EQ(unknown->body.find("gpt-4"), std::string::npos);
    auto route = c.Get("/v2/nothing");
    EXPECT_EQ(route->status, 404);
    EXPECT_TRUE(json::parse(route->body).contains("error"));
    auto big = c.Post("/v1/completions", std::string(100 * 1024, ' '), "application/json");
    ASSERT_TRUE(big);
    EXPECT_EQ(big->status, 413);
    EXPECT_TRUE(json::parse(big->body).contains("error"));
    auto bad_json = c.Post("/v1/completions", "{not json", "application/json");
    EXPECT_EQ(bad_json->status, 400);
    auto bad_utf8 = c.Post("/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"\xff\"}", "application/json");
    EXPECT_EQ(bad_utf8->status, 400);
    auto oov = c.Post("/v1/completions", R"({"model": "tiny", "prompt": [1, 32000]})", "application/json");
    EXPECT_EQ(oov->status, 400);
    EXPECT_EQ(json::parse(oov->body)["error"]["param"], "prompt");
    auto too_long = c.Post("/v1/completions", R"({"model": "tiny", "prompt": [1, 2, 3], "max_tokens": 255})",
                           "application/json");
    EXPECT_EQ(too_long->status, 400);
    EXPECT_NE(too_long->body.find("256"), std::string::npos);
    EXPECT_NE(too_long->body.find("258"), std::string::npos);
    auto bad_header = c.Post("/v1/completions", {{"X-Request-Timeout", "soon"}}, completion_body("x", 1, false),
                             "application/json");
    EXPECT_EQ(bad_header->status, 400);
    auto n2 = c.Post("/v1/completions", R"({"model": "tiny", "prompt": "x", "n": 2})", "application/json");
    EXPECT_EQ(n2->status, 400);
    std::string m = h.metrics();
    EXPECT_NE(m.find("headroom_requests_total{outcome=\"invalid\"}"), std::string::npos);
    EXPECT_NE(m.find("headroom_planned_bytes{region=\"kv_cache\"} 1234"), std::string::npos);
}

TEST(ApiServer, FullQueueGives429WithRetryAfter) {
    Harness h(/*n_blocks=*/16, /*max_queue=*/1);
    h.runner.step_delay_ms = 10;
    // Each request reserves 16 blocks (256 tokens): one runs, one queues, the third is refused.
    const std::string body = R"({"model": "tiny", "prompt": [1, 2, 3, 4], "max_tokens": 250, "temperature": 0})";
    RawConn a(h.port), b(h.port);
    ASSERT_TRUE(a.connected && b.connected);
    a.post("/v1/completions", body);
    ASSERT_TRUE(wait_until([&] { return h.metric("headroom_running_sequences") == 1; }));
    b.post("/v1/completions", body);
    ASSERT_TRUE(wait_until([&] { return h.metric("headroom_queue_length") == 1; }));
    auto r = h.client().Post("/v1/completions", body, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 429);
    EXPECT_TRUE(r->has_header("Retry-After"));
    EXPECT_EQ(json::parse(r->body)["error"]["code"], "queue_full");
}

TEST(ApiServer, DisconnectWhileStreamingFreesBlocks) {
    Harness h;
    h.runner.step_delay_ms = 10;
    RawConn conn(h.port);
    ASSERT_TRUE(conn.connected);
    conn.post("/v1/completions", completion_body("Hello", 200, true));
    std::string got = conn.read_some();
    EXPECT_NE(got.find("200 OK"), std::string::npos);
    ASSERT_TRUE(wait_until([&] { return h.metric("headroom_kv_blocks_used") > 0; }));
    close(conn.fd);
    conn.fd = -1;
    EXPECT_TRUE(wait_until([&] { return h.metric("headroom_kv_blocks_used") == 0; }));
    EXPECT_EQ(h.metric("headroom_kv_blocks_reserved"), 0);
    EXPECT_EQ(h.metric("headroom_running_sequences"), 0);
    EXPECT_TRUE(wait_until([&] { return h.metric("headroom_requests_total{outcome=\"client_disconnected\"}") == 1; }));
}

TEST(ApiServer, DisconnectWhileWaitingForNonStreamingResponseFreesBlocks) {
    Harness h;
    h.runner.step_delay_ms = 10;
    RawConn conn(h.port);
    ASSERT_TRUE(conn.connected);
    conn.post("/v1/completions", completion_body("Hello", 200, false));
    ASSERT_TRUE(wait_until([&] { return h.metric("headroom_running_sequences") == 1; }));
    close(conn.fd);
    conn.fd = -1;
    EXPECT_TRUE(wait_until([&] { return h.metric("headroom_running_sequences") == 0; }));
    EXPECT_EQ(h.metric("headroom_kv_blocks_used"), 0);
    EXPECT_EQ(h.metric("headroom_engine_finished_total{reason=\"cancelled\"}"), 1);
}

TEST(ApiServer, StalledEngineReportsUnhealthy) {
    Harness h(64, 16, "", true, /*stall_timeout_s=*/0.5);
    h.runner.step_delay_ms = 2500;  // one step far longer than the stall timeout
    RawConn conn(h.port);
    conn.post("/v1/completions", completion_body("x", 1, false));
    EXPECT_TRUE(wait_until([&] { return h.client().Get("/health")->status == 503; }));
    EXPECT_EQ(json::parse(h.client().Get("/health")->body)["status"], "dead");
    h.runner.step_delay_ms = 0;
    EXPECT_TRUE(wait_until([&] { return h.client().Get("/health")->status == 200; }));  // it recovered
}

TEST(ApiServer, ShutdownLetsShortRequestsFinishAndEndsTheRest) {
    Harness h;
    h.runner.step_delay_ms = 10;
    httplib::Client c1 = h.client(), c2 = h.client();
    int short_status = 0, long_status = 0;
    std::string long_body;
    std::thread t1([&] {
        auto r = c1.Post("/v1/completions", completion_body("a", 20, false), "application/json");
        short_status = r ? r->status : -1;
    });
    std::thread t2([&] {
        auto r = c2.Post("/v1/completions", completion_body("b", 240, false), "application/json");
        long_status = r ? r->status : -1;
        long_body = r ? r->body : "";
    });
    ASSERT_TRUE(wait_until([&] { return h.metric("headroom_running_sequences") == 2; }));
    std::thread stopper([&] { h.server->shutdown(/*grace_s=*/1.0); });
    ASSERT_TRUE(wait_until([&] { return h.server->state() != ServerState::ready; }));
    t1.join();
    t2.join();
    stopper.join();
    EXPECT_EQ(short_status, 200);
    EXPECT_EQ(long_status, 503);
    EXPECT_EQ(json::parse(long_body)["error"]["code"], "shutdown");
}

}  // namespace hr::server
