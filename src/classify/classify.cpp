// Document classification: request checks, prompt construction (descriptions, few-shot turns, optional
// truncation, content-free calibration prompts) and scoring.
#include "classify/classify.h"

#include <algorithm>
#include <chrono>
#include <set>

#include <nlohmann/json.hpp>

#include "classify/calibration.h"

namespace hr {

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
Result<std::vector<int32_t>> render(const Tokenizer& tok, const ClassifyRequest& r, const std::string& document) {
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
    HR_ASSIGN(std::vector<int32_t> doc_ids, tok.encode(r.document, false));
    p.document_tokens = p.document_tokens_kept = static_cast<int64_t>(doc_ids.size());
    HR_ASSIGN(p.prompt, render(tok, r, r.document));
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

Result<LabelScores> score_classify_prompt(LabelScorer& scorer, const ClassifyPrompt& p) {
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
    s.best = static_cast<size_t>(std::max_element(s.prob.begin(), s.prob.end()) - s.prob.begin());
    return s;
}

Result<ClassifyResult> classify(LabelScorer& scorer, const Tokenizer& tok, const ClassifyRequest& r, int64_t context) {
    const auto t0 = std::chrono::steady_clock::now();
    HR_ASSIGN(ClassifyPrompt p, build_classify_prompt(tok, r, context));
    HR_ASSIGN(LabelScores s, score_classify_prompt(scorer, p));
    ClassifyResult out;
    out.label = r.labels[s.best];
    for (size_t i = 0; i < r.labels.size(); ++i) out.probabilities.emplace_back(r.labels[i], s.prob[i]);
    out.logprobs = s.logprob;
    out.prior = s.prior;
    out.prompt_tokens = static_cast<int64_t>(p.prompt.size());
    out.forward_tokens = s.forward_tokens;
    out.truncated = p.truncated;
    out.document_tokens = p.document_tokens;
    out.document_tokens_kept = p.document_tokens_kept;
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return out;
}

}  // namespace hr
