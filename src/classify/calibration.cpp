// Length normalisation and contextual calibration of label scores (see calibration.h).
#include "classify/calibration.h"

#include <algorithm>
#include <cmath>

#include "classify/label_scorer.h"

namespace hr {

std::vector<double> label_scores(std::span<const double> logprob, std::span<const size_t> n_tokens,
                                 bool length_normalize) {
    std::vector<double> s(logprob.begin(), logprob.end());
    if (length_normalize) {
        for (size_t i = 0; i < s.size() && i < n_tokens.size(); ++i) s[i] /= static_cast<double>(std::max<size_t>(n_tokens[i], 1));
    }
    return s;
}

std::vector<double> content_free_prior(const std::vector<std::vector<double>>& rows) {
    std::vector<double> prior;
    if (rows.empty()) return prior;
    prior.assign(rows[0].size(), 0.0);
    for (const auto& r : rows) {
        const std::vector<double> p = normalise_logprobs(r);
        for (size_t i = 0; i < prior.size() && i < p.size(); ++i) prior[i] += p[i];
    }
    for (double& v : prior) v /= static_cast<double>(rows.size());
    return prior;
}

std::vector<double> calibrated_probabilities(std::span<const double> scores, std::span<const double> prior) {
    // log softmax(scores)_i - log prior_i, up to a constant, then a softmax: the constant cancels.
    std::vector<double> z(scores.size());
    for (size_t i = 0; i < z.size(); ++i) {
        // A prior of 0 (underflow) would make the label certain; floor it at the smallest normal double.
        const double p = i < prior.size() ? std::max(prior[i], 1e-300) : 1.0;
        z[i] = scores[i] - std::log(p);
    }
    return normalise_logprobs(z);
}

}  // namespace hr
