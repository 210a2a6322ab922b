// Many documents with one label set, classified side by side through one engine's scheduler (docs/
// classify.md, "Many documents"). Each document is its own engine request (a score group, or embed
// requests), admitted under the same token budget and KV reservation rules as any request. Documents
// start in input order, and only while the scheduler has admitted everything it was given: a batch never
// fans out further than the engine can take. At most `max_in_flight` documents run at once, at most one
// of them waits in the engine's queue (the max_queue bound other clients share), and the rest wait here.
// Results are per document, in input order, each with its own error. cancel() ends every document in
// flight within one engine step (their KV blocks freed) and starts no more.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "classify/classify.h"

namespace hr {

// How one document of a batch went.
struct BatchDocumentResult {
    enum class Kind : uint8_t {
        ok,         // prompt and scores are valid
        invalid,    // the document cannot be classified as given (empty, too long): error says why
        failed,     // scoring failed (the engine refused the request, stopped or failed): error says why
        cancelled,  // the batch was cancelled before the document finished
    };
    Kind kind = Kind::ok;
    std::string error;
    ClassifyPrompt prompt;
    LabelScores scores;
    double seconds = 0;  // from the document's start (not the batch's) to its end
};

// Documents of batches, summed over every batch that shares them (the server's /metrics).
struct ClassifyBatchGauges {
    std::atomic<int64_t> waiting{0};  // added, not started: held by their batch, not in the engine's queue
    std::atomic<int64_t> running{0};  // started (tokenizing, queued in the engine or scored), not finished
};

struct ClassifyBatchOptions {
    int64_t context = 0;        // the engine's context: prompts are built (and cut, with truncate) for it
    int64_t max_in_flight = 1;  // documents running at once at most (>= 1)
    std::shared_ptr<ClassifyBatchGauges> gauges;  // may be null
};

// note: add(), close(), wait(), take() and cancel() are called from one thread (the owner); the documents
// run on worker threads of their own that may outlive the object (they hold the scorer, see
// LabelScorer::Hold, and the batch's state), so an owner that returns early (a client that went away)
// does not wait for them: cancelled, they end within one engine step.
class ClassifyBatch {
public:
    // shared: the labels and options, validated by the caller (its document is unused). The tokenizer must
    // outlive the scorer. When the documents share work the scorer memoises (calibration prompts, the
    // examples' hidden states), the first document runs alone, so that the work is done once.
    ClassifyBatch(LabelScorer& scorer, const Tokenizer& tok, ClassifyRequest shared, ClassifyBatchOptions o);
    // Cancels the documents still running or waiting (see cancel()).
    ~ClassifyBatch();
    ClassifyBatch(const ClassifyBatch&) = delete;
    ClassifyBatch& operator=(const ClassifyBatch&) = delete;

    // Queues a document; it starts in order once the engine can take it (during wait()). Its index.
    size_t add(std::string document);
    // Waits up to `timeout` for document i, starting documents while it waits; true when i has finished.
    bool wait(size_t i, std::chrono::milliseconds timeout);
    // Document i's result once wait(i) returned true (moved out: call once).
    BatchDocumentResult take(size_t i);
    // Ends the documents in flight (their engine requests end within one step) and starts no more; those
    // not started finish at once as cancelled.
    void cancel();

    // Documents that ran at once at most so far (started and not finished).
    int64_t peak_in_flight() const;

    // The shared work the scorer memoises (see the constructor).
    static bool shares_memoised_work(const ClassifyRequest& shared);

private:
    struct State;
    void pump();  // starts what the engine can take now (s_->mu held)
    // One document, on its worker thread.
    static BatchDocumentResult run_document(State& s, std::string text, std::shared_ptr<std::atomic<bool>> submitted);
    std::shared_ptr<State> s_;
};

}  // namespace hr
