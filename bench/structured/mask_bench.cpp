// Mask computation time per generated token (ConstraintState::allowed_tokens) on the 32,000-token
// Mistral vocabulary, for typical constraints, single thread. Goal: < 50 us per token.
// Usage: bench_structured_mask [--samples N] [--vocab tokenizer.json]   (pin with taskset -c 0)
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <numeric>
#include <string>
#include <thread>

#include "structured/constraint.h"
#include "unit/structured/structured_support.h"

namespace {

struct Case {
    const char* name;
    const char* schema;  // nullptr: json_object / choice by name
};

const Case kCases[] = {
    {"invoice (strings, numbers, enum, array of objects)",
     R"({"type":"object","properties":{"invoice_number":{"type":"string","maxLength":20},
        "vendor":{"type":"string","maxLength":60},"date":{"type":"string","pattern":"\\d{4}-\\d{2}-\\d{2}"},
        "total":{"type":"number","minimum":0},"currency":{"enum":["EUR","USD","GBP"]},
        "lines":{"type":"array","maxItems":5,"items":{"type":"object","properties":{"description":{"type":"string","maxLength":80},
        "qty":{"type":"integer","minimum":1},"unit_price":{"type":"number"}},"required":["description","qty","unit_price"]}}},
        "required":["invoice_number","vendor","date","total","currency","lines"]})"},
    {"classification (enum label + probability + reason)",
     R"({"type":"object","properties":{"label":{"enum":["invoice","receipt","bank_statement","contract","other"]},
        "confidence":{"type":"number","minimum":0,"maximum":1},"reason":{"type":"string","maxLength":200}},
        "required":["label","confidence","reason"]})"},
    {"free text string (no maxLength)", R"({"type":"string"})"},
    {"pattern string (ID list)", R"({"type":"array","items":{"type":"string","pattern":"[A-Z]{2,4}-[0-9]{3,8}(/[a-z]+)?"},"maxItems":20})"},
    {"json_object", nullptr},
    {"choice (5 labels)", nullptr},
};

double pct(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

std::string shell_line(const char* cmd) {
    std::string out;
    if (FILE* f = popen(cmd, "r")) {
        char buf[256];
        while (fgets(buf, sizeof buf, f)) out += buf;
        pclose(f);
    }
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    size_t samples = 40;
    std::string vocab_path = hr::structured_test::mistral_tokenizer_path();
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string a = argv[i];
        if (a == "--samples") samples = std::stoul(argv[i + 1]);
        else if (a == "--vocab") vocab_path = argv[i + 1];
    }
    auto t0 = std::chrono::steady_clock::now();
    auto vocab = hr::structured_test::vocab_from_tokenizer_json(vocab_path);
    if (!vocab.ok()) {
        std::fprintf(stderr, "%s\n", vocab.error().message.c_str());
        return 1;
    }
    double vocab_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

    char date[64];
    std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
    std::string cpu = shell_line("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2");
    std::string commit = shell_line("git -C " HR_SOURCE_DIR " rev-parse --short HEAD 2>/dev/null");
    std::printf("# Structured output: mask time per token\n\n");
    std::printf("- date: %s\n- machine: %s, %u hardware threads (benchmark single-threaded)\n- commit: %s\n",
                date, cpu.c_str(), std::thread::hardware_concurrency(), commit.c_str());
    std::printf("- vocabulary: %zu tokens (%s); TokenVocab build %.1f ms (once per tokenizer)\n",
                vocab->size(), vocab_path.c_str(), vocab_ms);
    std::printf("- method: %zu seeded random constrained samples per constraint (max 300 tokens each); every\n"
                "  allowed_tokens call timed with the thread CPU clock\n"
                "  (CLOCK_THREAD_CPUTIME_ID: time descheduled on a shared machine is not counted). 'first' = the first sample (pattern caches cold),\n"
                "  'steady' = the remaining samples.\n\n", samples);
    std::printf("| constraint | compile us | tokens | mean us | p50 us | p99 us | max us | first-sample mean us |\n");
    std::printf("|---|---|---|---|---|---|---|---|\n");
    for (const Case& cs : kCases) {
        auto c0 = std::chrono::steady_clock::now();
        hr::Result<std::shared_ptr<const hr::CompiledConstraint>> c = hr::errorf("unset");
        if (cs.schema) c = hr::compile_json_schema(nlohmann::json::parse(cs.schema));
        else if (std::string(cs.name) == "json_object") c = hr::compile_json_object();
        else c = hr::compile_choice({"invoice", "receipt", "bank_statement", "contract", "other"});
        double compile_us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - c0).count();
        if (!c.ok()) {
            std::fprintf(stderr, "%s: %s\n", cs.name, c.error().message.c_str());
            return 1;
        }
        std::mt19937_64 rng(42);
        std::vector<double> first, steady;
        for (size_t i = 0; i < samples; ++i) {
            auto s = hr::structured_test::sample_one(*c, *vocab, rng, 300, i == 0 ? &first : &steady);
            if (!s.error.empty()) {
                std::fprintf(stderr, "%s: %s\n", cs.name, s.error.c_str());
                return 1;
            }
        }
        double mean = std::accumulate(steady.begin(), steady.end(), 0.0) / static_cast<double>(steady.size());
        double fmean = std::accumulate(first.begin(), first.end(), 0.0) / static_cast<double>(first.size());
        std::printf("| %s | %.0f | %zu | %.1f | %.1f | %.1f | %.1f | %.1f |\n", cs.name, compile_us, steady.size(), mean,
                    pct(steady, 0.5), pct(steady, 0.99), pct(steady, 1.0), fmean);
    }
    return 0;
}
