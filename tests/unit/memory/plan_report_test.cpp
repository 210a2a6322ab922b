// The table and the JSON of `headroom plan`: the fields programs rely on, and numbers that agree.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "memory/plan_report.h"
#include "model/builtin_models.h"

namespace hr {
namespace {

MemoryPlan mixtral_on(uint64_t budget) {
    PlanRequest r;
    r.budget_bytes = budget;
    r.weight_format = DType::q8;
    r.device_name = "rtx4090";
    Result<MemoryPlan> p = plan_memory(find_builtin_model("mixtral-8x7b")->config, r);
    EXPECT_TRUE(p.ok());
    return *p;
}

TEST(PlanReport, JsonHasTheDocumentedFields) {
    const MemoryPlan p = mixtral_on(24564ull << 20);
    const nlohmann::json j = nlohmann::json::parse(format_plan_json(p, "mixtral-8x7b"));
    EXPECT_EQ(j.at("fits").get<bool>(), false);
    EXPECT_EQ(j.at("budget_bytes").get<uint64_t>(), p.budget_bytes);
    EXPECT_EQ(j.at("total_bytes").get<uint64_t>(), p.total_bytes);
    EXPECT_EQ(j.at("shortfall_bytes").get<uint64_t>(), p.total_bytes - p.budget_bytes);
    EXPECT_EQ(j.at("weight_format").get<std::string>(), "int8");
    uint64_t sum = 0;
    for (const auto& r : j.at("regions")) {
        sum += r.at("bytes").get<uint64_t>();
        EXPECT_TRUE(r.at("name").is_string());
    }
    EXPECT_EQ(sum, p.total_bytes);
    // Runnable suggestions in "suggestions"/"alternatives", the others in "not_implemented", in plan order.
    size_t run = 0, missing = 0;
    for (const Suggestion& s : p.suggestions) {
        if (s.implemented) {
            ASSERT_LT(run, j.at("suggestions").size());
            EXPECT_EQ(j.at("suggestions")[run].get<std::string>(), s.text);
            EXPECT_EQ(j.at("alternatives")[run].at("total_bytes").get<uint64_t>(), s.total_bytes);
            ++run;
        } else {
            ASSERT_LT(missing, j.at("not_implemented").size());
            EXPECT_EQ(j.at("not_implemented")[missing].at("text").get<std::string>(), s.text);
            EXPECT_EQ(j.at("not_implemented")[missing].at("total_bytes").get<uint64_t>(), s.total_bytes);
            ++missing;
        }
    }
    EXPECT_EQ(j.at("suggestions").size(), run);
    EXPECT_EQ(j.at("alternatives").size(), run);
    EXPECT_EQ(j.at("not_implemented").size(), missing);
    EXPECT_GT(missing, 0u);  // offload and tensor parallel would fit a 24 GB card; neither runs yet
}

TEST(PlanReport, TableOffersOnlyImplementedAlternatives) {
    // Mixtral int8 on 24 GB: expert offload (implemented) is offered, int4 first; tensor parallel (not
    // implemented) is said once, apart, never as an option.
    const std::string t = format_plan_table(mixtral_on(24564ull << 20), "mixtral-8x7b");
    EXPECT_NE(t.find("Alternatives that fit, best first:\n  1. --weights int4 --offload-experts auto"), std::string::npos) << t;
    const size_t first = t.find("Not implemented yet, though it would fit: ");
    ASSERT_NE(first, std::string::npos) << t;
    EXPECT_EQ(t.find("Not implemented yet", first + 1), std::string::npos) << t;  // said once
    EXPECT_EQ(t.find("offload", first), std::string::npos) << t;                  // offload is not in it
}

TEST(PlanReport, TableListsEveryRegionAndTheVerdict) {
    const MemoryPlan no = mixtral_on(24564ull << 20);
    const std::string t = format_plan_table(no, "mixtral-8x7b");
    for (const PlanRegion& r : no.regions) EXPECT_NE(t.find(r.name), std::string::npos) << r.name;
    EXPECT_NE(t.find("DOES NOT FIT"), std::string::npos);
    EXPECT_NE(t.find(std::to_string(no.shortfall_bytes())), std::string::npos);
    EXPECT_NE(t.find("46.70 B parameters"), std::string::npos);
    const std::string yes = format_plan_table(mixtral_on(81559ull << 20), "mixtral-8x7b");
    EXPECT_NE(yes.find("FITS"), std::string::npos);
    EXPECT_EQ(yes.find("DOES NOT FIT"), std::string::npos);
}

}  // namespace
}  // namespace hr
