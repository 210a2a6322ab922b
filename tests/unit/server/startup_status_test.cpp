// The /health body during start-up: "starting" without progress, then "loading" with the weights'
// bytes once the loader has counted them, and the warm-up phase.
#include "server/startup_status.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace hr::server {
namespace {

TEST(StartupStatus, PhasesAndWeightProgress) {
    StartupStatus s;
    auto j = nlohmann::json::parse(s.health_json());
    EXPECT_EQ(j["status"], "starting");
    EXPECT_FALSE(j.contains("weights"));

    s.set_phase(StartupPhase::loading);
    j = nlohmann::json::parse(s.health_json());
    EXPECT_EQ(j["status"], "loading");
    EXPECT_EQ(j["phase"], "weights");
    EXPECT_FALSE(j.contains("weights"));  // the total is not known yet

    s.weights().start(1000);
    s.weights().add(250);
    j = nlohmann::json::parse(s.health_json());
    EXPECT_EQ(j["weights"]["done_bytes"], 250);
    EXPECT_EQ(j["weights"]["total_bytes"], 1000);
    EXPECT_DOUBLE_EQ(j["weights"]["fraction"].get<double>(), 0.25);
    EXPECT_TRUE(j["weights"].contains("eta_s"));

    s.weights().add(750);
    s.weights().finish();
    s.set_phase(StartupPhase::warming);
    j = nlohmann::json::parse(s.health_json());
    EXPECT_EQ(j["status"], "loading");
    EXPECT_EQ(j["phase"], "warm-up");
    EXPECT_DOUBLE_EQ(j["weights"]["fraction"].get<double>(), 1.0);
    EXPECT_EQ(j["weights"]["eta_s"], 0.0);
}

}  // namespace
}  // namespace hr::server
