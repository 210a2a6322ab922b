// POST /v1/classify with `documents` in-process (the fake paged-KV runner, the tiny-mixtral fixture
// tokenizer): one result per document in order, each equal to the document sent alone; the documents run
// side by side in the scheduler's steps; an empty document fails alone; a client that disconnects
// mid-batch frees every KV block. The real model is tested in tests/python/server.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <httplib.h>

#include <thread>

#include "classify/label_scorer.h"
#include "server/api_server.h"
#include "unit/runtime/fake_runner.h"

namespace hr::server {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using hr::testing::FakeRunner;

constexpr int64_t kVocab = 32000;
constexpr int kBlock = 16;
constexpr int64_t kBlocks = 96;

struct Harness {
    explicit Harness(int step_delay_ms = 0) : runner(kVocab, kBlocks, kBlock) {
        runner.step_delay_ms = step_delay_ms;
        auto t = Tokenizer::from_model_dir(std::string(HR_FIXTURES_DIR) + "/models/tiny-mixtral");
        if (!t.ok()) {
            ADD_FAILURE() << t.error().message;
            return;
        }
        tok = std::move(*t);
        EngineConfig c;
        // 32-token steps, 8 sequences: a document's ~60-token prompt takes a few steps.
        c.limits = {.max_tokens_per_step = 32, .max_seqs = 8, .max_blocks_per_seq = 16};
        c.n_kv_blocks = kBlocks;
        c.block_size = kBlock;
        c.max_queue = 16;
        c.context = 256;
        c.log_interval_s = 0;
        engine = std::make_unique<Engine>(c, runner);
        scorer = std::make_unique<LabelScorer>(*engine);
        ServerOptions o;
        o.host = "127.0.0.1";
        o.port = 0;
        o.model_name = "tiny";
        o.max_body_bytes = 256 * 1024;
        o.threads = 8;
        server = std::make_unique<ApiServer>(o);
        auto p = server->start();
        if (!p.ok()) {
            ADD_FAILURE() << p.error().message;
            return;
        }
        port = *p;
        EXPECT_TRUE(engine->start().ok());
        server->attach(*engine, *tok, {2}, {{"kv_cache", 1234}},
                       ClassifierSetup{.scorer = scorer.get(), .max_labels = 16, .max_label_tokens = 32});
    }
    ~Harness() {
        if (server) server->stop();
        if (engine) engine->stop();
        scorer.reset();
    }
    httplib::Client client() const {
        httplib::Client c("127.0.0.1", port);
        c.set_read_timeout(60, 0);
        return c;
    }
    double metric(const std::string& name) const {
        auto r = client().Get("/metrics");
        std::string m = r ? r->body : "";
        size_t p = m.find("\n" + name + " ");
        if (p == std::string::npos) return -1;
        return std::stod(m.substr(p + name.size() + 2));
    }

    FakeRunner runner;
    std::unique_ptr<Tokenizer> tok;
    std::unique_ptr<Engine> engine;
    std::unique_ptr<LabelScorer> scorer;
    std::unique_ptr<ApiServer> server;
    int port = 0;
};

bool wait_until(const std::function<bool()>& pred) {
    for (int i = 0; i < 1000; ++i) {
        if (pred()) return true;
        std::this_thread::sleep_for(10ms);
    }
    return pred();
}

const std::vector<std::string> kLabels = {"invoice", "receipt", "bank statement"};

std::vector<std::string> documents(size_t n) {
    std::vector<std::string> out;
    for (size_t i = 0; i < n; ++i) {
        out.push_back("Document " + std::to_string(i) + ": total due 120 EUR by 30 June, or a card payment of " +
                      std::to_string(10 + i) + ".20 EUR, thank you for shopping with us.");
    }
    return out;
}

std::string body(const json& documents_or_document, bool many) {
    json b = {{"model", "tiny"}, {"labels", kLabels}};
    b[many ? "documents" : "document"] = documents_or_document;
    return b.dump();
}

TEST(ClassifyBatchRoute, ResultsInOrderEqualToSinglesSideBySideAndAnEmptyDocumentFailsAlone) {
    Harness h(/*step_delay_ms=*/2);
    std::vector<std::string> docs = documents(6);
    docs[2] = "   ";  // fails alone
    auto r = h.client().Post("/v1/classify", body(docs, true), "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    const json j = json::parse(r->body);
    ASSERT_EQ(j["data"].size(), docs.size());
    // Documents of the batch ran in the same steps (a scheduler counter, not a timing).
    EXPECT_GE(h.metric("headroom_step_requests_max"), 2);
    for (size_t i = 0; i < docs.size(); ++i) {
        const json& d = j["data"][i];
        EXPECT_EQ(d["index"], i);
        if (i == 2) {
            EXPECT_EQ(d["error"]["param"], "documents[2]");
            continue;
        }
        auto one = h.client().Post("/v1/classify", body(docs[i], false), "application/json");
        ASSERT_TRUE(one);
        ASSERT_EQ(one->status, 200) << one->body;
        const json alone = json::parse(one->body);
        EXPECT_EQ(d["label"], alone["label"]) << i;
        EXPECT_EQ(d["usage"], alone["usage"]) << i;
        for (const std::string& l : kLabels) {
            // The fake model's logits are exact: no step-shape dependence.
            EXPECT_DOUBLE_EQ(d["probabilities"][l].get<double>(), alone["probabilities"][l].get<double>()) << i;
        }
    }
    EXPECT_EQ(h.metric("headroom_requests_total{outcome=\"classify_ok\"}"), 5 + 5);
    EXPECT_EQ(h.metric("headroom_requests_total{outcome=\"classify_invalid\"}"), 1);
    EXPECT_TRUE(wait_until([&] { return h.metric("headroom_kv_blocks_used") == 0; }));
    EXPECT_EQ(h.metric("headroom_classify_documents{state=\"running\"}"), 0);
    EXPECT_EQ(h.metric("headroom_classify_documents{state=\"waiting\"}"), 0);
}

TEST(ClassifyBatchRoute, ADisconnectMidBatchFreesEveryBlock) {
    Harness h(/*step_delay_ms=*/20);
    ASSERT_EQ(h.metric("headroom_kv_blocks_used"), 0);
    const std::string b = body(documents(32), true);
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(h.port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    const std::string req = "POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                            "Content-Length: " + std::to_string(b.size()) + "\r\n\r\n" + b;
    ASSERT_EQ(send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
    // Mid-batch: documents hold KV blocks, and most still wait in the request (32 > what 8 sequences and
    // 96 blocks admit).
    ASSERT_TRUE(wait_until([&] {
        return h.metric("headroom_kv_blocks_used") > 0 && h.metric("headroom_classify_documents{state=\"waiting\"}") > 0;
    }));
    EXPECT_LE(h.metric("headroom_queue_length"), 1);  // the batch does not flood the engine's queue
    close(fd);
    EXPECT_TRUE(wait_until([&] {
        return h.metric("headroom_kv_blocks_used") == 0 && h.metric("headroom_kv_blocks_reserved") == 0 &&
               h.metric("headroom_queue_length") == 0 && h.metric("headroom_classify_documents{state=\"running\"}") == 0 &&
               h.metric("headroom_classify_documents{state=\"waiting\"}") == 0;
    })) << "used " << h.metric("headroom_kv_blocks_used") << ", reserved " << h.metric("headroom_kv_blocks_reserved");
    EXPECT_TRUE(wait_until([&] { return h.metric("headroom_requests_total{outcome=\"classify_client_disconnected\"}") == 1; }));
    EXPECT_EQ(h.engine->n_in_flight(), 0);
}

}  // namespace
}  // namespace hr::server
