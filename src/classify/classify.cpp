// Document classification: request checks, prompt construction (descriptions, few-shot turns, optional
// truncation, content-free calibration prompts) and scoring.
#include "classify/classify.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>

#include <nlohmann/json.hpp>

#include "classify/calibration.h"

namespace hr {

ClassifyMethod default_method(bool has_examples) {
    return has_examples ? ClassifyMethod::embedding : ClassifyMethod::labels;
}

Status validate_classify_request(const ClassifyRequest& r) {
    if (r.document.empty()) return errorf("document is empty (expected the text to classify)");
    if (r.labels.empty()) return errorf("labels is empty (expected 1 to {} labels)", kMaxClassifyLabels);
    if (r.labels.size() > kMaxClassifyLabels)
        return errorf("labels has {} entries, at most {} are allowed", r.labels.size(), kMaxClassifyLabels);
    std::set<std::string> seen;
    for (size_t i = 0; i < r.labels.size(); ++i) {
        const std::string& l = r.labels[i];
        if (l.empty()) return errorf("labels[{}] is empty", i);
        if (l.size() > kMaxLabelBytes) return errorf("labels[{}] is {} bytes long, at most {} are allowed", i, l.size(), kMaxLabelBytes);
        if (!seen.insert(l).second) return errorf("labels[{}] duplicates an earlier label", i);
    }
    if (r.instructions && r.instructions->empty()) return errorf("instructions is empty (omit it for the default)");
    if (!r.label_descriptions.empty()) {
        if (r.label_descriptions.size() != r.labels.size())
            return errorf("label_descriptions has {} entries, expected one per label ({})", r.label_descriptions.size(),
                          r.labels.size());
        for (size_t i = 0; i < r.label_descriptions.size(); ++i) {
            if (r.label_descriptions[i].size() > kMaxLabelDescriptionBytes)
                return errorf("label_descriptions[{}] is {} bytes long, at most {} are allowed", i,
                              r.label_descriptions[i].size(), kMaxLabelDescriptionBytes);
        }
    }
    if (r.examples.size() > kMaxClassifyExamples)
        return errorf("examples has {} entries, at most {} are allowed", r.examples.size(), kMaxClassifyExamples);
    for (size_t i = 0; i < r.examples.size(); ++i) {
        if (r.examples[i].text.empty()) return errorf("examples[{}].text is empty", i);
        if (!seen.contains(r.examples[i].label))
            return errorf("examples[{}].label '{}' is not one of the labels", i, r.examples[i].label);
    }
    if (r.method && *r.method != ClassifyMethod::labels && r.examples.empty())
        return errorf("method '{}' needs few-shot examples (it compares the document with them)", method_name(*r.method));
    if (r.method.value_or(default_method(!r.examples.empty())) == ClassifyMethod::embedding &&
        (r.calibrate || r.length_normalize))
        return errorf("calibrate and length_normalize change label scores, and method 'embedding' (the default with "
                      "examples) scores no labels: ask for method 'labels' or 'combined'");
    const EmbeddingOptions& e = r.embedding;
    if (!(e.first_layer >= 0.0 && e.first_layer < e.last_layer && e.last_layer <= 1.0))
        return errorf("embedding layers [{}, {}) are not fractions 0 <= first < last <= 1 of the depth", e.first_layer,
                      e.last_layer);
    if (!(e.temperature > 0.0 && std::isfinite(e.temperature)))
        return errorf("embedding temperature {} is not a positive number", e.temperature);
    return ok();
}

namespace {

// The instructions and the labels (with their descriptions when given): the head of the first user turn.
std::string header(const ClassifyRequest& r) {
    std::string s = r.instructions.value_or(kDefaultClassifyInstructions) + "\n\nLabels:";
    bool described = false;
    for (const std::string& d : r.label_descriptions) described = described || !d.empty();
    for (size_t i = 0; i < r.labels.size(); ++i) {
        if (described) {
            s += "\n- " + r.labels[i];
            if (!r.label_descriptions[i].empty()) s += ": " + r.label_descriptions[i];
        } else {
            s += (i ? ", " : " ") + r.labels[i];
        }
    }
    return s;
}

std::string document_turn(const std::string& document) {
    return "Document:\n" + document + "\n\nAnswer with exactly one of the labels.";
}

// With a chat template: the header opens the first user turn; each few-shot example is a user turn (its
// document) answered by an assistant turn (its label); the document is the last user turn, followed by
// the generation prompt (the template writes BOS itself). Without: the same text with "\nLabel:" after
// each document, after BOS.
Result<std::vector<int32_t>> render(const Tokenizer& tok, const ClassifyRequest& req, const std::string& document) {
    // The embedding and combined methods use the examples through their hidden states, not as turns (as
    // turns, the 23 sample examples would make a prompt of about 3,000 tokens for every document).
    ClassifyRequest few_shot_free;
    const bool turns = req.method.value_or(default_method(!req.examples.empty())) == ClassifyMethod::labels;
    if (!turns) {
        few_shot_free.labels = req.labels;
        few_shot_free.instructions = req.instructions;
        few_shot_free.label_descriptions = req.label_descriptions;
    }
    const ClassifyRequest& r = turns ? req : few_shot_free;
    const std::string head = header(r) + "\n\n";
    if (!tok.chat_template().empty()) {
        nlohmann::json messages = nlohmann::json::array();
        for (size_t i = 0; i < r.examples.size(); ++i) {
            messages.push_back({{"role", "user"}, {"content", (i ? "" : head) + document_turn(r.examples[i].text)}});
            messages.push_back({{"role", "assistant"}, {"content", r.examples[i].label}});
        }
        messages.push_back({{"role", "user"}, {"content", (r.examples.empty() ? head : "") + document_turn(document)}});
        HR_ASSIGN(std::string text, tok.apply_chat_template(messages, true));
        return tok.encode(text, false);
    }
    std::string text = head;
    for (const ClassifyExample& e : r.examples) text += document_turn(e.text) + "\nLabel: " + e.label + "\n\n";
    return tok.encode(text + document_turn(document) + "\nLabel:", true);
}

}  // namespace

Result<ClassifyPrompt> build_classify_prompt(const Tokenizer& tok, const ClassifyRequest& r, int64_t context) {
    HR_TRY(validate_classify_request(r));
    ClassifyPrompt p;
    p.length_normalize = r.length_normalize;
    p.method = r.method.value_or(default_method(!r.examples.empty()));
    int64_t longest = 0;
    for (const std::string& l : r.labels) {
        HR_ASSIGN(std::vector<int32_t> ids, tok.encode(l, false));
        if (ids.empty()) return errorf("label '{}' has no tokens", l);
        // note: the end token makes a label a complete answer, so "bank" does not collect the
        // probability of "bank_statement".
        if (tok.eos_id()) ids.push_back(*tok.eos_id());
        longest = std::max<int64_t>(longest, static_cast<int64_t>(ids.size()));
        p.label_ids.push_back(std::move(ids));
    }
    if (r.calibrate) {
        for (const std::string& cf : content_free_documents()) {
            HR_ASSIGN(std::vector<int32_t> ids, render(tok, r, cf));
            const int64_t need = static_cast<int64_t>(ids.size()) + longest;
            if (need > context)
                return errorf("the calibration prompt (the instructions, labels and examples with the content-free "
                              "document \"{}\") is {} tokens with the longest label, more than the context of {} tokens",
                              cf, need, context);
            p.calibration_prompts.push_back(std::move(ids));
        }
    }
    int64_t embed_cut = 0;  // document tokens the embedding method cut to fit the context
    if (p.method != ClassifyMethod::labels) {
        // Each text on its own, as the tokenizer starts a text (BOS when the model has one); the
        // document is cut to the context (the scorer runs at most that many tokens).
        p.embedding = r.embedding;
        for (const ClassifyExample& e : r.examples) {
            HR_ASSIGN(std::vector<int32_t> ids, tok.encode(e.text, true));
            if (static_cast<int64_t>(ids.size()) > context) ids.resize(static_cast<size_t>(context));
            p.embed_examples.push_back(std::move(ids));
            p.example_labels.push_back(static_cast<size_t>(
                std::find(r.labels.begin(), r.labels.end(), e.label) - r.labels.begin()));
        }
        HR_ASSIGN(p.embed_document, tok.encode(r.document, true));
        if (static_cast<int64_t>(p.embed_document.size()) > context) {
            if (!r.truncate)
                return errorf("the document does not fit: {} tokens > context {} tokens (send \"truncate\": true to "
                              "cut the document)", p.embed_document.size(), context);
            embed_cut = static_cast<int64_t>(p.embed_document.size()) - context;
            p.embed_document.resize(static_cast<size_t>(context));
            p.truncated = true;
        }
    }
    HR_ASSIGN(std::vector<int32_t> doc_ids, tok.encode(r.document, false));
    HR_ASSIGN(p.prompt, render(tok, r, r.document));
    // note: the embedding method never runs the label prompt (it is built for return_tokens only), so
    // only the document itself has to fit.
    if (p.method == ClassifyMethod::embedding) {
        p.document_tokens = static_cast<int64_t>(doc_ids.size());
        p.document_tokens_kept = p.document_tokens - embed_cut;
        return p;
    }
    p.document_tokens = p.document_tokens_kept = static_cast<int64_t>(doc_ids.size());
    const int64_t need = static_cast<int64_t>(p.prompt.size()) + longest;
    if (need <= context) return p;
    if (!r.truncate)
        return errorf("the document does not fit: prompt {} tokens + longest label {} tokens = {} > context {} tokens "
                      "(send \"truncate\": true to cut the document)", p.prompt.size(), longest, need, context);
    // Keep the document's beginning; re-tokenising the cut text can shift a few tokens, so shrink until it fits.
    int64_t keep = p.document_tokens - (need - context);
    for (int attempt = 0; attempt < 8 && keep > 0; ++attempt) {
        HR_ASSIGN(std::string cut, tok.decode(std::span(doc_ids.data(), static_cast<size_t>(keep)), true));
        HR_ASSIGN(p.prompt, render(tok, r, cut));
        const int64_t n = static_cast<int64_t>(p.prompt.size()) + longest;
        if (n <= context) {
            p.truncated = true;
            p.document_tokens_kept = keep;
            return p;
        }
        keep -= std::max<int64_t>(n - context, 1);
    }
    return errorf("the prompt does not fit the context of {} tokens even with the document removed", context);
}

namespace {

// The embedding method's probabilities (and each label's similarity) for a built prompt.
Result<std::pair<std::vector<double>, std::vector<double>>> embedding_scores(LabelScorer& scorer, const ClassifyPrompt& p,
                                                                             size_t n_labels) {
    const auto [begin, end] = embedding_layers(scorer.n_layers(), p.embedding);
    std::vector<PooledStates> examples;
    for (const auto& ids : p.embed_examples) {
        HR_ASSIGN(PooledStates e, scorer.pooled_hidden_states(ids, begin, end, /*memoize=*/true));
        examples.push_back(std::move(e));
    }
    HR_ASSIGN(PooledStates doc, scorer.pooled_hidden_states(p.embed_document, begin, end));
    std::vector<double> sim = embedding_label_scores(doc, examples, p.example_labels, n_labels);
    std::vector<double> prob = embedding_probabilities(sim, p.embedding.temperature);
    return std::make_pair(std::move(prob), std::move(sim));
}

}  // namespace

Result<LabelScores> score_classify_prompt(LabelScorer& scorer, const ClassifyPrompt& p) {
    if (p.method == ClassifyMethod::embedding) {
        // No label scoring at all: the document's one forward pass is the whole cost.
        LabelScores s;
        HR_ASSIGN(auto ps, embedding_scores(scorer, p, p.label_ids.size()));
        std::tie(s.prob, s.similarity) = std::move(ps);
        s.forward_tokens = static_cast<int64_t>(p.embed_document.size());
        s.best = static_cast<size_t>(std::max_element(s.prob.begin(), s.prob.end()) - s.prob.begin());
        return s;
    }
    std::vector<size_t> n_tokens;
    for (const auto& l : p.label_ids) n_tokens.push_back(l.size());
    HR_ASSIGN(LabelScores s, scorer.score(p.prompt, p.label_ids));
    const std::vector<double> scores = label_scores(s.logprob, n_tokens, p.length_normalize);
    if (p.calibration_prompts.empty()) {
        s.prob = normalise_logprobs(scores);
    } else {
        std::vector<std::vector<double>> rows;
        for (const auto& cp : p.calibration_prompts) {
            HR_ASSIGN(LabelScores c, scorer.score(cp, p.label_ids, /*memoize=*/true));
            s.forward_tokens += c.forward_tokens;
            rows.push_back(label_scores(c.logprob, n_tokens, p.length_normalize));
        }
        s.prior = content_free_prior(rows);
        s.prob = calibrated_probabilities(scores, s.prior);
    }
    if (p.method == ClassifyMethod::combined) {
        HR_ASSIGN(auto ps, embedding_scores(scorer, p, p.label_ids.size()));
        s.similarity = std::move(ps.second);
        s.prob = combine_probabilities(s.prob, ps.first);
        s.forward_tokens += static_cast<int64_t>(p.embed_document.size());
    }
    s.best = static_cast<size_t>(std::max_element(s.prob.begin(), s.prob.end()) - s.prob.begin());
    return s;
}

int64_t classify_prompt_tokens(const ClassifyPrompt& p) {
    const auto doc = static_cast<int64_t>(p.embed_document.size()), prompt = static_cast<int64_t>(p.prompt.size());
    switch (p.method) {
        case ClassifyMethod::labels: return prompt;
        case ClassifyMethod::embedding: return doc;
        case ClassifyMethod::combined: return prompt + doc;
    }
    return prompt;
}

ClassifyResult classify_result(const std::vector<std::string>& labels, const ClassifyPrompt& p, const LabelScores& s,
                               double seconds) {
    ClassifyResult out;
    out.label = labels[s.best];
    for (size_t i = 0; i < labels.size(); ++i) out.probabilities.emplace_back(labels[i], s.prob[i]);
    out.logprobs = s.logprob;
    out.prior = s.prior;
    out.similarity = s.similarity;
    out.prompt_tokens = classify_prompt_tokens(p);
    out.forward_tokens = s.forward_tokens;
    out.truncated = p.truncated;
    out.document_tokens = p.document_tokens;
    out.document_tokens_kept = p.document_tokens_kept;
    out.seconds = seconds;
    return out;
}

Result<ClassifyResult> classify(LabelScorer& scorer, const Tokenizer& tok, const ClassifyRequest& r, int64_t context) {
    const auto t0 = std::chrono::steady_clock::now();
    HR_ASSIGN(ClassifyPrompt p, build_classify_prompt(tok, r, context));
    HR_ASSIGN(LabelScores s, score_classify_prompt(scorer, p));
    return classify_result(r.labels, p, s,
                           std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

}  // namespace hr
