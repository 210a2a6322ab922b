// `headroom classify`: classifies documents (files) into one of the given labels, without a server.
#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "classify/classify.h"
#include "commands.h"
#include "core/log.h"
#include "model_args.h"

namespace hr::app {

namespace {

struct ClassifyArgs {
    ModelArgs model;
    std::string labels;
    std::vector<std::string> files;
    std::string instructions;
    int64_t context = 0;
    bool truncate = false;
    bool json = false;
};

std::vector<std::string> split_labels(const std::string& s) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i <= s.size()) {
        size_t j = s.find(',', i);
        if (j == std::string::npos) j = s.size();
        out.push_back(s.substr(i, j - i));
        i = j + 1;
    }
    return out;
}

Status run_classify(const ClassifyArgs& a) {
    ClassifyRequest req;
    req.labels = split_labels(a.labels);
    req.truncate = a.truncate;
    if (!a.instructions.empty()) req.instructions = a.instructions;
    req.document = "x";  // checked per file below
    HR_TRY(validate_classify_request(req));

    HR_ASSIGN(auto weights, weights_option(a.model.weights));
    HR_ASSIGN(auto be, make_backend(a.model.device));
    HR_ASSIGN(auto tok, Tokenizer::from_model_dir(a.model.model_dir));
    HR_ASSIGN(LoadedModel m, load_model(a.model.model_dir, *be, LoadOptions{.weights = weights}));
    const int64_t context = a.context > 0 ? a.context : std::min<int64_t>(4096, m.cfg.max_position_embeddings);

    int64_t longest = 0;
    for (const std::string& l : req.labels) {
        HR_ASSIGN(auto ids, tok->encode(l, false));
        longest = std::max<int64_t>(longest, static_cast<int64_t>(ids.size()) + 1);
    }
    HR_ASSIGN(auto scorer, LabelScorer::create(*be, m, {.context = context,
                                                        .max_labels = static_cast<int64_t>(req.labels.size()),
                                                        .max_label_tokens = longest}));
    nlohmann::json results = nlohmann::json::array();
    for (const std::string& path : a.files) {
        std::ifstream f(path, std::ios::binary);
        if (!f) return errorf("cannot open document '{}'", path);
        std::stringstream ss;
        ss << f.rdbuf();
        req.document = ss.str();
        auto r = classify(*scorer, *tok, req, context);
        if (!r.ok()) return errorf("{}: {}", path, r.error().message);
        nlohmann::json probs = nlohmann::json::object();
        for (const auto& [label, p] : r->probabilities) probs[label] = p;
        results.push_back({{"file", path}, {"label", r->label}, {"probabilities", probs},
                           {"prompt_tokens", r->prompt_tokens}, {"truncated", r->truncated},
                           {"document_tokens", r->document_tokens}, {"document_tokens_kept", r->document_tokens_kept},
                           {"seconds", r->seconds}});
        if (!a.json) {
            std::printf("%-40s %-20s", path.c_str(), r->label.c_str());
            for (const auto& [label, p] : r->probabilities) std::printf("  %s=%.4f", label.c_str(), p);
            std::printf("%s\n", r->truncated ? "  (document truncated)" : "");
        }
    }
    if (a.json) std::printf("%s\n", results.dump(2).c_str());
    return ok();
}

}  // namespace

void add_classify_command(CLI::App& app, int& exit_code) {
    auto a = std::make_shared<ClassifyArgs>();
    CLI::App* cmd = app.add_subcommand("classify", "classify documents into one of the given labels");
    add_model_options(*cmd, a->model);
    cmd->add_option("--labels", a->labels, "comma-separated labels, e.g. invoice,receipt,contract")->required();
    cmd->add_option("files", a->files, "documents to classify")->required();
    cmd->add_option("--instructions", a->instructions, "replaces the built-in instruction text");
    cmd->add_option("--context", a->context, "context in tokens (default: min(4096, the model's maximum))");
    cmd->add_flag("--truncate", a->truncate, "cut documents that do not fit instead of failing");
    cmd->add_flag("--json", a->json, "print JSON instead of a table");
    cmd->callback([a, &exit_code] {
        Status st = run_classify(*a);
        if (!st.ok()) {
            std::fprintf(stderr, "headroom classify: %s\n", st.error().message.c_str());
            exit_code = 2;
        }
    });
}

}  // namespace hr::app
