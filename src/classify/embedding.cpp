// Nearest-example classification on pooled hidden states (see embedding.h).
#include "classify/embedding.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "classify/label_scorer.h"

namespace hr {

const char* method_name(ClassifyMethod m) {
    switch (m) {
        case ClassifyMethod::labels: return "labels";
        case ClassifyMethod::embedding: return "embedding";
        case ClassifyMethod::combined: return "combined";
    }
    return "?";
}

bool parse_method(std::string_view s, ClassifyMethod& out) {
    for (ClassifyMethod m : {ClassifyMethod::labels, ClassifyMethod::embedding, ClassifyMethod::combined}) {
        if (s == method_name(m)) {
            out = m;
            return true;
        }
    }
    return false;
}

std::pair<int64_t, int64_t> embedding_layers(int64_t n_layers, const EmbeddingOptions& o) {
    const auto at = [n_layers](double f) {
        return std::clamp<int64_t>(static_cast<int64_t>(std::floor(f * static_cast<double>(n_layers))), 0, n_layers);
    };
    int64_t begin = at(o.first_layer), end = at(o.last_layer);
    // A shallow model still pools one layer: the last one below `end`, or the final layer.
    if (end <= begin) {
        end = std::min(n_layers, begin + 1);
        begin = end - 1;
    }
    return {begin, end};
}

std::vector<double> embedding_label_scores(const PooledStates& doc, std::span<const PooledStates> examples,
                                           std::span<const size_t> example_labels, size_t n_labels) {
    const size_t L = static_cast<size_t>(doc.n_layers), D = static_cast<size_t>(doc.dim);
    std::vector<double> sum(n_labels, 0.0);
    std::vector<double> mean(D), x(D), e(D);
    // note: per layer, so that the average weighs every layer alike whatever its activation scale.
    for (size_t l = 0; l < L; ++l) {
        std::fill(mean.begin(), mean.end(), 0.0);
        for (const PooledStates& ex : examples) {
            for (size_t d = 0; d < D; ++d) mean[d] += ex.values[l * D + d];
        }
        for (double& v : mean) v /= static_cast<double>(std::max<size_t>(examples.size(), 1));
        const auto centred_unit = [&](const PooledStates& p, std::vector<double>& out) {
            double n2 = 0.0;
            for (size_t d = 0; d < D; ++d) {
                out[d] = p.values[l * D + d] - mean[d];
                n2 += out[d] * out[d];
            }
            const double n = std::sqrt(n2);
            for (double& v : out) v = n > 0.0 ? v / n : 0.0;
        };
        centred_unit(doc, x);
        std::vector<double> best(n_labels, -1.0);
        for (size_t i = 0; i < examples.size(); ++i) {
            centred_unit(examples[i], e);
            double c = 0.0;
            for (size_t d = 0; d < D; ++d) c += x[d] * e[d];
            double& b = best[example_labels[i]];
            b = std::max(b, c);
        }
        for (size_t j = 0; j < n_labels; ++j) sum[j] += best[j];
    }
    for (double& v : sum) v /= static_cast<double>(std::max<size_t>(L, 1));
    return sum;
}

std::vector<double> embedding_probabilities(std::span<const double> scores, double temperature) {
    std::vector<double> z(scores.begin(), scores.end());
    for (double& v : z) v /= temperature;
    return normalise_logprobs(z);
}

std::vector<double> combine_probabilities(std::span<const double> a, std::span<const double> b) {
    std::vector<double> z(a.size());
    constexpr double floor = std::numeric_limits<double>::min();
    for (size_t i = 0; i < z.size(); ++i) z[i] = std::log(std::max(a[i], floor)) + std::log(std::max(b[i], floor));
    return normalise_logprobs(z);
}

}  // namespace hr
