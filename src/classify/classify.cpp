// Document classification: request checks, prompt construction (with optional truncation), scoring.
#include "classify/classify.h"

#include <algorithm>
#include <chrono>
#include <set>

#include <nlohmann/json.hpp>

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
    return ok();
}

namespace {

std::string user_message(const ClassifyRequest& r, const std::string& document) {
    std::string labels;
    for (size_t i = 0; i < r.labels.size(); ++i) labels += (i ? ", " : "") + r.labels[i];
    return r.instructions.value_or(kDefaultClassifyInstructions) + "\n\nLabels: " + labels + "\n\nDocument:\n" +
           document + "\n\nAnswer with exactly one of the labels.";
}

// With a chat template: one user turn and the generation prompt (the template writes BOS itself);
// without: the message, then "Label:" after BOS.
Result<std::vector<int32_t>> render(const Tokenizer& tok, const ClassifyRequest& r, const std::string& document) {
    const std::string msg = user_message(r, document);
    if (!tok.chat_template().empty()) {
        nlohmann::json messages = nlohmann::json::array({{{"role", "user"}, {"content", msg}}});
        HR_ASSIGN(std::string text, tok.apply_chat_template(messages, true));
        return tok.encode(text, false);
    }
    return tok.encode(msg + "\nLabel:", true);
}

}  // namespace

Result<ClassifyPrompt> build_classify_prompt(const Tokenizer& tok, const ClassifyRequest& r, int64_t context) {
    HR_TRY(validate_classify_request(r));
    ClassifyPrompt p;
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

Result<ClassifyResult> classify(LabelScorer& scorer, const Tokenizer& tok, const ClassifyRequest& r, int64_t context) {
    const auto t0 = std::chrono::steady_clock::now();
    HR_ASSIGN(ClassifyPrompt p, build_classify_prompt(tok, r, context));
    HR_ASSIGN(LabelScores s, scorer.score(p.prompt, p.label_ids));
    ClassifyResult out;
    out.label = r.labels[s.best];
    for (size_t i = 0; i < r.labels.size(); ++i) out.probabilities.emplace_back(r.labels[i], s.prob[i]);
    out.logprobs = s.logprob;
    out.prompt_tokens = static_cast<int64_t>(p.prompt.size());
    out.forward_tokens = s.forward_tokens;
    out.truncated = p.truncated;
    out.document_tokens = p.document_tokens;
    out.document_tokens_kept = p.document_tokens_kept;
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return out;
}

}  // namespace hr
