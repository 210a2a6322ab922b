// structured_sample: compiles a constraint (JSON schema, json_object or choice list) and prints seeded
// random constrained outputs over a tokenizer.json vocabulary, one JSON object per line. Used by
// tests/python/structured to validate outputs with an independent JSON-schema implementation.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "structured/constraint.h"
#include "unit/structured/structured_support.h"

namespace {

int usage() {
    std::fprintf(stderr,
                 "usage: structured_sample (--schema JSON | --schema-file FILE | --json-object | --choice a,b,...)\n"
                 "                         [--n N] [--seed S] [--max-tokens M] [--vocab tokenizer.json]\n"
                 "prints {\"text\",\"finished\",\"tokens\",\"error\"} per line; exit 2 with {\"error\"} when the\n"
                 "constraint does not compile\n");
    return 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::string schema_text, choice_list, vocab_path = hr::structured_test::mistral_tokenizer_path();
    bool json_object = false, have_schema = false, have_choice = false;
    size_t n = 10, max_tokens = 400;
    uint64_t seed = 1;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
        const char* v = nullptr;
        if (a == "--json-object") {
            json_object = true;
            continue;
        }
        if (!(v = next())) return usage();
        if (a == "--schema") {
            schema_text = v, have_schema = true;
        } else if (a == "--schema-file") {
            std::ifstream f(v);
            if (!f) {
                std::fprintf(stderr, "structured_sample: cannot open %s\n", v);
                return 1;
            }
            std::stringstream ss;
            ss << f.rdbuf();
            schema_text = ss.str(), have_schema = true;
        } else if (a == "--choice") {
            choice_list = v, have_choice = true;
        } else if (a == "--n") {
            n = std::stoul(v);
        } else if (a == "--seed") {
            seed = std::stoull(v);
        } else if (a == "--max-tokens") {
            max_tokens = std::stoul(v);
        } else if (a == "--vocab") {
            vocab_path = v;
        } else {
            return usage();
        }
    }
    if (int(have_schema) + int(have_choice) + int(json_object) != 1) return usage();

    hr::Result<std::shared_ptr<const hr::CompiledConstraint>> c = hr::errorf("no constraint");
    if (json_object) {
        c = hr::compile_json_object();
    } else if (have_choice) {
        std::vector<std::string> choices;
        std::stringstream ss(choice_list);
        for (std::string item; std::getline(ss, item, ',');) choices.push_back(item);
        c = hr::compile_choice(choices);
    } else {
        try {
            c = hr::compile_json_schema(nlohmann::json::parse(schema_text));
        } catch (const nlohmann::json::exception& e) {
            c = hr::errorf("schema is not JSON: {}", e.what());
        }
    }
    if (!c.ok()) {
        std::cout << nlohmann::json{{"error", c.error().message}}.dump() << "\n";
        return 2;
    }
    auto vocab = hr::structured_test::vocab_from_tokenizer_json(vocab_path);
    if (!vocab.ok()) {
        std::fprintf(stderr, "structured_sample: %s\n", vocab.error().message.c_str());
        return 1;
    }
    std::mt19937_64 rng(seed);
    for (size_t i = 0; i < n; ++i) {
        auto s = hr::structured_test::sample_one(*c, *vocab, rng, max_tokens);
        nlohmann::json line = {{"text", s.text}, {"finished", s.finished}, {"tokens", s.tokens}, {"error", s.error}};
        // note: outputs are valid UTF-8 only when finished (an unfinished one may stop inside a character)
        std::cout << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    }
    return 0;
}
