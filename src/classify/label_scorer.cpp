// Label scoring through the engine (see label_scorer.h).
#include "classify/label_scorer.h"

#include <algorithm>
#include <cmath>

namespace hr {

std::vector<double> normalise_logprobs(std::span<const double> lp) {
    std::vector<double> p(lp.size());
    if (lp.empty()) return p;
    const double mx = *std::max_element(lp.begin(), lp.end());
    double sum = 0.0;
    for (size_t i = 0; i < lp.size(); ++i) sum += (p[i] = std::exp(lp[i] - mx));
    for (double& v : p) v /= sum;
    return p;
}

LabelScorer::~LabelScorer() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return holds_ == 0; });
}

LabelScorer::Hold::Hold(LabelScorer& s) : s_(&s) {
    std::lock_guard lock(s.mu_);
    ++s.holds_;
}

LabelScorer::Hold::~Hold() {
    if (!s_) return;
    std::lock_guard lock(s_->mu_);
    if (--s_->holds_ == 0) s_->cv_.notify_all();
}

Result<LabelScores> LabelScorer::score(std::span<const int32_t> prompt,
                                       const std::vector<std::vector<int32_t>>& labels, bool memoize) {
    if (!memoize) return score_uncached(prompt, labels);
    std::vector<int32_t> key(prompt.begin(), prompt.end());
    key.push_back(-1);
    for (const auto& l : labels) {
        key.insert(key.end(), l.begin(), l.end());
        key.push_back(-1);
    }
    {
        std::lock_guard lock(memo_->mu);
        for (const auto& [k, v] : memo_->entries) {
            if (k == key) {
                LabelScores hit = v;
                hit.forward_tokens = 0;
                return hit;
            }
        }
    }
    // note: two threads missing the same key both score it (same answer); the memo keeps one.
    HR_ASSIGN(LabelScores s, score_uncached(prompt, labels));
    std::lock_guard lock(memo_->mu);
    auto& m = memo_->entries;
    if (std::none_of(m.begin(), m.end(), [&](const auto& e) { return e.first == key; })) {
        if (m.size() >= kMemoEntries) m.pop_front();
        m.emplace_back(std::move(key), s);
    }
    return s;
}

Result<LabelScores> LabelScorer::score_uncached(std::span<const int32_t> prompt,
                                                const std::vector<std::vector<int32_t>>& labels) {
    if (prompt.empty()) return errorf("classify: the prompt is empty");
    if (labels.empty()) return errorf("classify: no labels to score");
    if (cancel_ && cancel_->load()) return errorf("classify: cancelled");
    ScoreRequest req{std::vector<int32_t>(prompt.begin(), prompt.end()), labels, cancel_};
    auto sub = engine_.submit_score(std::move(req));
    if (submitted_) submitted_->store(true);
    if (auto* e = std::get_if<SubmitError>(&sub)) return errorf("classify: {}", e->message);
    ScoreOutcome o = std::get<std::future<ScoreOutcome>>(sub).get();
    if (!o.error.empty()) return errorf("classify: {}", o.error);
    LabelScores out;
    out.logprob = std::move(o.logprob);
    out.forward_tokens = o.forward_tokens;
    out.cached_tokens = o.cached_tokens;
    out.prob = normalise_logprobs(out.logprob);
    out.best = static_cast<size_t>(std::max_element(out.prob.begin(), out.prob.end()) - out.prob.begin());
    return out;
}

}  // namespace hr
