// `headroom tokenize`, `detokenize` and `chat-template`: the tokenizer and chat template from the
// command line, plus hidden batch modes (--batch FILE) that the differential tests drive.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace hr::app {

namespace {

struct TokenizerSource {
    std::string model_dir;
    std::string tokenizer_file;
};

void add_source_options(CLI::App* cmd, TokenizerSource& src) {
    auto* m = cmd->add_option("--model", src.model_dir,
                              "model directory with tokenizer.json (and tokenizer_config.json), or a .gguf file");
    auto* t = cmd->add_option("--tokenizer", src.tokenizer_file, "path of a tokenizer.json");
    m->excludes(t);
}

Result<std::unique_ptr<Tokenizer>> load(const TokenizerSource& src) {
    if (!src.model_dir.empty()) return Tokenizer::from_model_dir(src.model_dir);
    if (!src.tokenizer_file.empty()) return Tokenizer::from_file(src.tokenizer_file);
    return make_error("expected --model DIR|FILE.gguf or --tokenizer FILE");
}

Result<nlohmann::ordered_json> read_json_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return errorf("cannot open {:?}", path);
    std::ostringstream ss;
    ss << f.rdbuf();
    try {
        return nlohmann::ordered_json::parse(ss.str());
    } catch (const nlohmann::json::exception& e) {
        return errorf("{}: expected JSON: {}", path, e.what());
    }
}

// "1,2,3", "1 2 3" or "[1, 2, 3]" -> ids.
Result<std::vector<int32_t>> parse_ids(const std::string& s) {
    std::vector<int32_t> ids;
    size_t i = 0;
    while (i < s.size()) {
        const char c = s[i];
        if (c == ',' || c == ' ' || c == '[' || c == ']' || c == '\t' || c == '\n') {
            ++i;
            continue;
        }
        size_t j = i;
        if (s[j] == '-') ++j;
        const size_t digits = j;
        while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j;
        if (j == digits || j - digits > 10) return errorf("--ids: expected comma-separated integers, found {:?}", s.substr(i, 12));
        const long long v = std::stoll(s.substr(i, j - i));
        if (v < INT32_MIN || v > INT32_MAX) return errorf("--ids: {} does not fit a 32-bit id", v);
        ids.push_back(static_cast<int32_t>(v));
        i = j;
    }
    return ids;
}

void write_stdout(const std::string& s) {
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fflush(stdout);
}

int fail(const std::string& msg, int code = 1) {
    std::fprintf(stderr, "headroom: %s\n", msg.c_str());
    return code;
}

// Batch encode: JSON array of strings -> JSON array of {ids, ids_plain, decoded, decoded_skip}.
int batch_encode(const Tokenizer& tok, const std::string& path) {
    auto in = read_json_file(path);
    if (!in.ok()) return fail(in.error().message);
    if (!in->is_array()) return fail("--batch: expected a JSON array of strings");
    nlohmann::json out = nlohmann::json::array();
    for (const auto& item : *in) {
        if (!item.is_string()) return fail("--batch: expected a JSON array of strings");
        nlohmann::json r;
        const std::string text = item.get<std::string>();
        auto with = tok.encode(text, true);
        auto plain = tok.encode(text, false);
        if (!with.ok() || !plain.ok()) {
            r["error"] = with.ok() ? plain.error().message : with.error().message;
        } else {
            r["ids"] = *with;
            r["ids_plain"] = *plain;
            auto d = tok.decode(*with, false);
            auto ds = tok.decode(*with, true);
            r["decoded"] = d.ok() ? *d : "<error: " + d.error().message + ">";
            r["decoded_skip"] = ds.ok() ? *ds : "<error: " + ds.error().message + ">";
        }
        out.push_back(std::move(r));
    }
    write_stdout(out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    return 0;
}

// Batch decode: JSON array of id arrays -> JSON array of {text, text_skip, stream, stream_skip}.
int batch_decode(const Tokenizer& tok, const std::string& path) {
    auto in = read_json_file(path);
    if (!in.ok()) return fail(in.error().message);
    if (!in->is_array()) return fail("--batch: expected a JSON array of id arrays");
    nlohmann::json out = nlohmann::json::array();
    for (const auto& item : *in) {
        std::vector<int32_t> ids;
        try {
            ids = item.get<std::vector<int32_t>>();
        } catch (const nlohmann::json::exception&) {
            return fail("--batch: expected a JSON array of id arrays");
        }
        nlohmann::json r;
        auto d = tok.decode(ids, false);
        auto ds = tok.decode(ids, true);
        if (!d.ok()) {
            r["error"] = d.error().message;
            out.push_back(std::move(r));
            continue;
        }
        r["text"] = *d;
        r["text_skip"] = *ds;
        for (bool skip : {false, true}) {
            StreamDecoder sd(tok, skip);
            std::string acc;
            nlohmann::json pieces = nlohmann::json::array();
            bool utf8_ok = true;
            for (int32_t id : ids) {
                std::string piece = sd.push(id);
                // Each emitted piece must be complete UTF-8 on its own.
                utf8_ok = utf8_ok && !utf8::first_invalid(piece);
                acc += piece;
            }
            acc += sd.finish();
            r[skip ? "stream_skip" : "stream"] = acc;
            r[skip ? "stream_skip_utf8" : "stream_utf8"] = utf8_ok;
        }
        out.push_back(std::move(r));
    }
    write_stdout(out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    return 0;
}

// Benchmark mode: encode the whole file `repeat` times; prints {bytes, seconds, mb_per_s, n_ids, ids_hash}.
int bench_encode(const Tokenizer& tok, const std::string& path, int repeat) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return fail("--bench: cannot open " + path);
    std::ostringstream ss;
    ss << f.rdbuf();
    const std::string text = ss.str();
    std::vector<int32_t> ids;
    double best = 1e30;
    for (int r = 0; r < std::max(1, repeat); ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        auto res = tok.encode(text, false);
        const auto t1 = std::chrono::steady_clock::now();
        if (!res.ok()) return fail(res.error().message);
        ids = std::move(res).value();
        best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
    }
    uint64_t h = 1469598103934665603ull;  // FNV-1a over the ids, to compare with the reference cheaply
    for (int32_t id : ids) h = (h ^ static_cast<uint32_t>(id)) * 1099511628211ull;
    nlohmann::json out{{"bytes", text.size()}, {"seconds", best}, {"mb_per_s", static_cast<double>(text.size()) / 1e6 / best},
                       {"n_ids", ids.size()}, {"ids_hash", std::to_string(h)}};
    write_stdout(out.dump() + "\n");
    return 0;
}

}  // namespace

static void add_tokenize_command(CLI::App& app, int& exit_code) {
    auto* cmd = app.add_subcommand("tokenize", "Print the token ids of --text as a JSON array");
    auto src = std::make_shared<TokenizerSource>();
    auto text = std::make_shared<std::string>();
    auto batch = std::make_shared<std::string>();
    auto no_special = std::make_shared<bool>(false);
    auto bench = std::make_shared<std::string>();
    auto repeat = std::make_shared<int>(5);
    add_source_options(cmd, *src);
    auto* t = cmd->add_option("--text", *text, "text to tokenize (UTF-8)");
    cmd->add_flag("--no-special", *no_special, "do not add the post-processor's special tokens (BOS/EOS)");
    cmd->add_option("--batch", *batch, "")->group("")->excludes(t);
    cmd->add_option("--bench", *bench, "")->group("")->excludes(t);
    cmd->add_option("--repeat", *repeat, "")->group("");
    cmd->callback([&exit_code, src, text, batch, no_special, t, bench, repeat]() {
        auto tok = load(*src);
        if (!tok.ok()) {
            exit_code = fail(tok.error().message);
            return;
        }
        if (!batch->empty()) {
            exit_code = batch_encode(**tok, *batch);
            return;
        }
        if (!bench->empty()) {
            exit_code = bench_encode(**tok, *bench, *repeat);
            return;
        }
        if (t->count() == 0) {
            exit_code = fail("tokenize: expected --text TEXT", 2);
            return;
        }
        auto ids = (*tok)->encode(*text, !*no_special);
        if (!ids.ok()) {
            exit_code = fail(ids.error().message);
            return;
        }
        write_stdout(nlohmann::json(*ids).dump() + "\n");
        exit_code = 0;
    });
}

static void add_detokenize_command(CLI::App& app, int& exit_code) {
    auto* cmd = app.add_subcommand("detokenize", "Print the text of --ids (comma-separated), with no added newline");
    auto src = std::make_shared<TokenizerSource>();
    auto ids_text = std::make_shared<std::string>();
    auto batch = std::make_shared<std::string>();
    auto skip = std::make_shared<bool>(false);
    add_source_options(cmd, *src);
    auto* i = cmd->add_option("--ids", *ids_text, "token ids, e.g. 1,2,3");
    cmd->add_flag("--skip-special", *skip, "drop special tokens (BOS/EOS/...) from the text");
    cmd->add_option("--batch", *batch, "")->group("")->excludes(i);
    cmd->callback([&exit_code, src, ids_text, batch, skip, i]() {
        auto tok = load(*src);
        if (!tok.ok()) {
            exit_code = fail(tok.error().message);
            return;
        }
        if (!batch->empty()) {
            exit_code = batch_decode(**tok, *batch);
            return;
        }
        if (i->count() == 0) {
            exit_code = fail("detokenize: expected --ids 1,2,3", 2);
            return;
        }
        auto ids = parse_ids(*ids_text);
        if (!ids.ok()) {
            exit_code = fail(ids.error().message, 2);
            return;
        }
        auto text = (*tok)->decode(*ids, *skip);
        if (!text.ok()) {
            exit_code = fail(text.error().message);
            return;
        }
        write_stdout(*text);
        exit_code = 0;
    });
}

static void add_chat_template_command(CLI::App& app, int& exit_code) {
    auto* cmd = app.add_subcommand("chat-template", "Render the model's chat template for --messages (exact text)");
    auto dir = std::make_shared<std::string>();
    auto messages = std::make_shared<std::string>();
    auto no_gen = std::make_shared<bool>(false);
    auto batch = std::make_shared<std::string>();
    cmd->add_option("--model", *dir, "model directory with tokenizer.json and tokenizer_config.json, or a .gguf file")
        ->required();
    auto* m = cmd->add_option("--messages", *messages, "JSON file: an array of {role, content} (or {\"messages\": [...]})");
    cmd->add_flag("--no-generation-prompt", *no_gen, "do not add the assistant generation prompt");
    cmd->add_option("--batch", *batch, "")->group("")->excludes(m);
    cmd->callback([&exit_code, dir, messages, no_gen, batch, m]() {
        auto tok = Tokenizer::from_model_dir(*dir);
        if (!tok.ok()) {
            exit_code = fail(tok.error().message);
            return;
        }
        if (!batch->empty()) {
            // [{messages, add_generation_prompt}] -> [{text} | {error}]
            auto in = read_json_file(*batch);
            if (!in.ok() || !in->is_array()) {
                exit_code = fail(in.ok() ? "--batch: expected a JSON array" : in.error().message);
                return;
            }
            nlohmann::ordered_json out = nlohmann::ordered_json::array();
            for (const auto& c : *in) {
                const bool gen = c.contains("add_generation_prompt") && c["add_generation_prompt"].is_boolean() &&
                                 c["add_generation_prompt"].get<bool>();
                auto text = (*tok)->apply_chat_template(c.contains("messages") ? c["messages"] : nlohmann::ordered_json(), gen);
                out.push_back(text.ok() ? nlohmann::ordered_json{{"text", *text}}
                                        : nlohmann::ordered_json{{"error", text.error().message}});
            }
            write_stdout(out.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n");
            exit_code = 0;
            return;
        }
        if (m->count() == 0) {
            exit_code = fail("chat-template: expected --messages FILE.json", 2);
            return;
        }
        auto msgs = read_json_file(*messages);
        if (!msgs.ok()) {
            exit_code = fail(msgs.error().message);
            return;
        }
        nlohmann::ordered_json list = *msgs;
        if (list.is_object() && list.contains("messages")) list = list["messages"];
        auto text = (*tok)->apply_chat_template(list, !*no_gen);
        if (!text.ok()) {
            // The template's own message (e.g. from raise_exception), exit code 2.
            std::fprintf(stderr, "%s\n", text.error().message.c_str());
            exit_code = 2;
            return;
        }
        write_stdout(*text);
        exit_code = 0;
    });
}

void add_tokenizer_commands(CLI::App& app, int& exit_code) {
    add_tokenize_command(app, exit_code);
    add_detokenize_command(app, exit_code);
    add_chat_template_command(app, exit_code);
}

}  // namespace hr::app
