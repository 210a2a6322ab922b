// `headroom classify`: batch classification of documents (files, folders, JSONL on stdin) into one of the
// given labels, without a server: JSONL/CSV output that --resume continues, a progress bar on a terminal,
// and --manifest to compare with true labels (accuracy, documents per second). docs/classify.md.
#include <unistd.h>

#include <cstdio>
#include <deque>
#include <filesystem>
#include <chrono>
#include <iostream>
#include <set>

#include "classify/batch_inputs.h"
#include "classify/classify.h"
#include "classify/classify_batch.h"
#include "classify/manifest.h"
#include "classify/progress.h"
#include "classify/results_file.h"
#include "commands.h"
#include "core/log.h"
#include "model_args.h"
#include "runtime/local_engine.h"

namespace hr::app {

namespace {

struct ClassifyArgs {
    ModelArgs model;
    std::string labels, labels_file, examples_dir, instructions, output, format, manifest, split;
    std::vector<std::string> inputs;
    int64_t context = 0;
    int64_t parallel = 4;  // documents in flight through the engine's scheduler
    bool truncate = false, resume = false, json = false;
    bool calibrate = kDefaultCalibrate, length_normalize = kDefaultLengthNormalize;
    bool descriptions = false;  // off by default: no gain measured (docs/classify.md), a longer prompt
    std::string method;         // "" = default_method()
    std::vector<double> embedding_layers;  // {first, last} fractions of the depth, or empty (the defaults)
    double embedding_temperature = EmbeddingOptions{}.temperature;
};

// What --manifest compares: per split, right and total.
struct Tally {
    std::map<std::string, std::pair<int64_t, int64_t>> by_split;  // "" = all
    void add(const std::string& split, bool right) {
        auto bump = [&](const std::string& k) {
            auto& [r, n] = by_split[k];
            r += right ? 1 : 0;
            n += 1;
        };
        bump("");
        if (!split.empty()) bump(split);
    }
};

std::string percent(int64_t r, int64_t n) { return n ? fmt::format("{:.1f}%", 100.0 * static_cast<double>(r) / static_cast<double>(n)) : "-"; }

Status run_classify(const ClassifyArgs& a) {
    // Everything about the request is checked before the model loads.
    ClassifyRequest req;
    if (a.labels.empty() == a.labels_file.empty())
        return errorf("give the labels with exactly one of --labels a,b,c and --labels-file FILE");
    HR_ASSIGN(LabelSet ls, a.labels_file.empty() ? Result<LabelSet>(parse_label_list(a.labels)) : read_labels_file(a.labels_file));
    req.labels = ls.labels;
    if (a.descriptions) req.label_descriptions = ls.descriptions;
    if (!a.examples_dir.empty()) {
        HR_ASSIGN(req.examples, read_examples_dir(a.examples_dir));
    }
    req.truncate = a.truncate;
    req.calibrate = a.calibrate;
    req.length_normalize = a.length_normalize;
    if (!a.instructions.empty()) req.instructions = a.instructions;
    if (!a.method.empty()) {
        ClassifyMethod m{};
        if (!parse_method(a.method, m))
            return errorf("--method {}: expected labels, embedding or combined", a.method);
        req.method = m;
    }
    if (!a.embedding_layers.empty()) {
        if (a.embedding_layers.size() != 2)
            return errorf("--embedding-layers takes two fractions of the depth, FIRST,LAST (e.g. 0.3,0.9)");
        req.embedding.first_layer = a.embedding_layers[0];
        req.embedding.last_layer = a.embedding_layers[1];
    }
    req.embedding.temperature = a.embedding_temperature;
    req.document = "x";  // checked per document below
    HR_TRY(validate_classify_request(req));
    if (!a.split.empty() && a.manifest.empty()) return errorf("--split needs --manifest (the splits are named there)");
    if (a.resume && a.output.empty()) return errorf("--resume needs --output (the file to continue)");

    std::optional<ResultFormat> out_format;
    std::map<std::string, PreviousResult> previous;
    std::optional<ResultWriter> writer;
    if (!a.output.empty()) {
        HR_ASSIGN(out_format, result_format(a.format, a.output));
        std::error_code ec;
        const bool exists = std::filesystem::exists(a.output, ec) && std::filesystem::file_size(a.output, ec) > 0;
        if (exists && !a.resume)
            return errorf("--output {} exists: pass --resume to continue it (ids already there are skipped), or "
                          "remove it", a.output);
        if (a.resume) {
            HR_ASSIGN(previous, read_previous_results(a.output, *out_format, req.labels));
        }
    } else if (!a.format.empty() || a.json) {
        HR_ASSIGN(out_format, result_format(a.json ? "jsonl" : a.format, ""));
    }
    std::optional<Manifest> manifest;
    if (!a.manifest.empty()) {
        HR_ASSIGN(manifest, Manifest::load(a.manifest));
    }
    std::vector<std::string> exclude = {a.manifest, a.output, a.labels_file};
    HR_ASSIGN(DocumentSource docs, DocumentSource::open(a.inputs, exclude, std::cin));

    HR_ASSIGN(auto weights, weights_option(a.model.weights));
    HR_ASSIGN(const DType kv_dtype, kv_cache_option(a.model, DType::f32));
    HR_ASSIGN(auto be, make_backend(a.model.device));
    HR_ASSIGN(auto tok, Tokenizer::from_model_dir(a.model.model_dir));
    HR_ASSIGN(ExpertPlacement offload, offload_placement(a.model, a.context > 0 ? a.context : 4096));
    HR_ASSIGN(OffloadCompute offload_compute, offload_compute_option(a.model));
    HR_ASSIGN(LoadedModel m, load_model(a.model.model_dir, *be,
                                        LoadOptions{.weights = weights, .offload = offload, .offload_compute = offload_compute}));
    const int64_t context = a.context > 0 ? a.context : std::min<int64_t>(4096, m.cfg.max_position_embeddings);
    int64_t longest = 0;
    for (const std::string& l : req.labels) {
        HR_ASSIGN(auto ids, tok->encode(l, false));
        longest = std::max<int64_t>(longest, static_cast<int64_t>(ids.size()) + 1);
    }
    // Documents go through the engine's scheduler, a.parallel of them in flight: the KV cache holds
    // that many groups at their largest (the prompt's blocks once, each label's re-run tail and tokens).
    if (a.parallel < 1) return errorf("--parallel must be >= 1, found {}", a.parallel);
    const int64_t n_labels = static_cast<int64_t>(req.labels.size());
    LocalEngineOptions eo;
    eo.context = context;
    eo.max_seqs = std::max<int64_t>(16, n_labels);
    const int64_t group_blocks =
        (context + eo.block_size - 1) / eo.block_size + n_labels * ((eo.block_size + longest + eo.block_size - 1) / eo.block_size);
    // note: a.parallel times the old scorer's own KV cache (one context plus each label's blocks). An
    // embed request (the embedding method: one document or example, at most a context) fits the same.
    eo.n_kv_blocks = a.parallel * group_blocks;
    eo.n_valid_tokens = tok->vocab_size();
    eo.kv_dtype = kv_dtype;
    HR_ASSIGN(auto local, LocalEngine::start(*be, m, eo));
    LabelScorer scorer(local->engine());
    if (!a.output.empty()) {
        HR_ASSIGN(writer, ResultWriter::open(a.output, *out_format, req.labels, a.resume));
    }

    Progress progress(stderr, isatty(STDERR_FILENO) != 0, a.split.empty() ? docs.total() : std::nullopt);
    Tally tally;
    std::set<std::string> seen;
    const bool table = !out_format || writer;  // stdout: a table, unless results go to stdout as JSONL/CSV
    if (!writer && out_format == ResultFormat::csv) std::printf("%s\n", csv_header(req.labels).c_str());
    auto report = [&](const std::string& id, const std::string& label, double p, const ManifestEntry* truth) {
        if (manifest) {
            const bool right = truth && truth->label == label;
            if (truth) tally.add(truth->split, right);
            std::printf("%-32s %-18s %.3f   true: %-18s %s\n", id.c_str(), label.c_str(), p,
                        truth ? truth->label.c_str() : "(not in the manifest)", truth ? (right ? "ok" : "WRONG") : "");
        } else if (table && !writer) {
            std::printf("%-40s %-20s %.3f\n", id.c_str(), label.c_str(), p);
        }
        std::fflush(stdout);
    };
    // Documents go side by side through the engine's scheduler as the server's `documents` requests do
    // (ClassifyBatch: started in input order while the scheduler admits them, at most a.parallel at
    // once), and are reported in input order.
    ClassifyBatch batch(scorer, *tok, req, {.context = context, .max_in_flight = a.parallel});
    struct Pending {
        std::string id;
        const ManifestEntry* truth = nullptr;
        size_t index = 0;
    };
    std::deque<Pending> window;
    auto report_front = [&]() -> Status {
        Pending f = std::move(window.front());
        window.pop_front();
        while (!batch.wait(f.index, std::chrono::seconds(1))) {
        }
        BatchDocumentResult b = batch.take(f.index);
        if (b.kind != BatchDocumentResult::Kind::ok) return errorf("{}: {}", f.id, b.error);
        const ClassifyResult r = classify_result(req.labels, b.prompt, b.scores, b.seconds);
        double top = 0.0;
        for (const auto& [l, p] : r.probabilities) {
            if (l == r.label) top = p;
        }
        if (writer) {
            HR_TRY(writer->write(f.id, r));
        } else if (out_format) {
            std::printf("%s\n", format_result(*out_format, f.id, r).c_str());
        }
        report(f.id, r.label, top, f.truth);
        progress.done(f.id);
        return ok();
    };
    while (true) {
        HR_ASSIGN(std::optional<BatchDocument> d, docs.next());
        if (!d) break;
        if (!seen.insert(d->id).second) return errorf("{}: the id is given twice (ids must be unique)", d->id);
        const ManifestEntry* truth = manifest ? manifest->find(*d) : nullptr;
        if (!a.split.empty() && (!truth || truth->split != a.split)) continue;
        if (auto it = previous.find(d->id); it != previous.end()) {
            // note: reported after the documents before it, so the output keeps the input order.
            while (!window.empty()) HR_TRY(report_front());
            progress.skipped();
            report(d->id, it->second.label, it->second.probability, truth);
            continue;
        }
        window.push_back({d->id, truth, batch.add(std::move(d->text))});
        if (static_cast<int64_t>(window.size()) >= a.parallel) HR_TRY(report_front());
    }
    while (!window.empty()) HR_TRY(report_front());
    progress.finish();
    if (manifest) {
        const auto [right, n] = tally.by_split[""];
        std::string splits;
        for (const auto& [k, v] : tally.by_split) {
            if (!k.empty()) splits += fmt::format("{}{} {}/{}", splits.empty() ? " (" : ", ", k, v.first, v.second);
        }
        if (!splits.empty()) splits += ")";
        std::printf("accuracy: %lld/%lld = %s%s\n", static_cast<long long>(right), static_cast<long long>(n),
                    percent(right, n).c_str(), splits.c_str());
        std::printf("speed: %lld documents classified in %.1f s = %.2f documents/s\n",
                    static_cast<long long>(progress.classified()), progress.seconds(), progress.rate());
        const ClassifyMethod method = req.method.value_or(default_method(!req.examples.empty()));
        std::printf("model: %s (weights %s, %s; method %s, calibrate %s, length-normalize %s, descriptions %s, %zu "
                    "examples)\n",
                    a.model.model_dir.c_str(), std::string(dtype_name(m.weight_format)).c_str(), a.model.device.c_str(),
                    method_name(method), req.calibrate ? "on" : "off", req.length_normalize ? "on" : "off",
                    req.label_descriptions.empty() ? "off" : "on", req.examples.size());
    }
    return ok();
}

}  // namespace

void add_classify_command(CLI::App& app, int& exit_code) {
    auto a = std::make_shared<ClassifyArgs>();
    CLI::App* cmd = app.add_subcommand("classify", "classify documents into one of the given labels");
    add_model_options(*cmd, a->model);
    cmd->add_option("inputs", a->inputs, "documents: files, folders (their files) or - (JSONL on stdin: {\"id\", \"text\"} a line)")
        ->required();
    cmd->add_option("--labels", a->labels, "comma-separated labels, e.g. invoice,receipt,contract");
    cmd->add_option("--labels-file", a->labels_file, "one label a line, optionally 'label: description'");
    cmd->add_flag("--descriptions,!--no-descriptions", a->descriptions,
                  "put the labels-file descriptions in the instructions (default off)");
    cmd->add_option("--examples", a->examples_dir, "few-shot examples: a folder with manifest.jsonl ({\"file\", \"label\"} a line)");
    cmd->add_flag("--calibrate,!--no-calibrate", a->calibrate,
                  fmt::format("divide out the labels' probabilities on content-free documents (default {})",
                              kDefaultCalibrate ? "on" : "off"));
    cmd->add_flag("--length-normalize,!--no-length-normalize", a->length_normalize,
                  fmt::format("score a label by its mean token log-probability (default {})",
                              kDefaultLengthNormalize ? "on" : "off"));
    cmd->add_option("--method", a->method,
                    "labels (score each label after the prompt), embedding (nearest --examples by hidden states) or "
                    "combined (both); default: embedding with --examples, labels without");
    cmd->add_option("--embedding-layers", a->embedding_layers,
                    "FIRST,LAST: the layers pooled by the embedding method, as fractions of the depth (default 0.3,0.9)")
        ->delimiter(',');
    cmd->add_option("--embedding-temperature", a->embedding_temperature,
                    "softmax temperature of the embedding method's similarities (default 0.02)");
    cmd->add_option("--instructions", a->instructions, "replaces the built-in instruction text");
    cmd->add_option("--output", a->output, "write results to FILE (.jsonl or .csv); default: a table on stdout");
    cmd->add_option("--format", a->format, "jsonl or csv (default: from --output's extension)");
    cmd->add_flag("--json", a->json, "same as --format jsonl");
    cmd->add_flag("--resume", a->resume, "continue --output: skip the ids it already holds");
    cmd->add_option("--manifest", a->manifest,
                    "true labels (JSONL: file or id, label, split): print label, probability and true label per "
                    "document, then accuracy, documents/s and the model");
    cmd->add_option("--split", a->split, "only the documents of this manifest split (e.g. heldout)");
    cmd->add_option("--context", a->context, "context in tokens (default: min(4096, the model's maximum))");
    cmd->add_option("--parallel", a->parallel, "documents in flight, batched by the engine's scheduler (default 4)");
    cmd->add_flag("--truncate", a->truncate, "cut documents that do not fit instead of failing");
    cmd->callback([a, &exit_code] {
        Status st = run_classify(*a);
        if (!st.ok()) {
            std::fflush(stdout);
            // On a terminal the progress bar may hold the line: start a new one.
            std::fprintf(stderr, "%sheadroom classify: %s\n", isatty(STDERR_FILENO) ? "\n" : "",
                         st.error().message.c_str());
            exit_code = 2;
        }
    });
}

}  // namespace hr::app
