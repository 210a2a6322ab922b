// From label log-probabilities to the answer's probabilities: length normalisation (mean log-probability
// per label token) and contextual calibration (Zhao et al. 2021, "Calibrate Before Use": the label
// probabilities on content-free inputs such as "N/A" measure the prompt's bias towards each label, and
// dividing them out removes it). Pure functions, no model.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

namespace hr {

// Each label's score: its summed log-probability, or (length_normalize) that sum over its token count
// (the end token included). n_tokens[i] > 0.
std::vector<double> label_scores(std::span<const double> logprob, std::span<const size_t> n_tokens,
                                 bool length_normalize);

// The content-free prior: the mean, over the content-free inputs, of the softmax of their label scores.
// Every row has one score per label; rows is non-empty.
std::vector<double> content_free_prior(const std::vector<std::vector<double>>& rows);

// Calibrated probabilities: softmax(scores)[i] / prior[i], renormalised to sum to 1 (computed in the log
// domain, so tiny probabilities do not underflow).
std::vector<double> calibrated_probabilities(std::span<const double> scores, std::span<const double> prior);

}  // namespace hr
