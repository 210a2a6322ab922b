// ClassifyBatch (classify_batch.h): documents started in order while the engine admits what it has.
#include "classify/classify_batch.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace hr {

using Clock = std::chrono::steady_clock;

namespace {

// How often a waiting owner looks at the engine's queue again while the next document is held back
// only because something is queued there (the engine does not signal admissions).
constexpr auto kAdmissionPoll = std::chrono::milliseconds(1);

}  // namespace

struct ClassifyBatch::State {
    State(LabelScorer& scorer, const Tokenizer& t, ClassifyRequest r, ClassifyBatchOptions o)
        : hold(scorer), tok(t), shared(std::move(r)), opt(std::move(o)) {}

    struct Doc {
        std::string text;  // moved to its worker when started
        std::shared_ptr<std::atomic<bool>> submitted = std::make_shared<std::atomic<bool>>(false);
        bool started = false, done = false;
        BatchDocumentResult result;
    };

    LabelScorer::Hold hold;  // the scorer (and its engine) stay while any thread of the batch runs
    const Tokenizer& tok;
    const ClassifyRequest shared;
    const ClassifyBatchOptions opt;
    const std::shared_ptr<std::atomic<bool>> cancel = std::make_shared<std::atomic<bool>>(false);

    std::mutex mu;
    std::condition_variable cv;  // a document finished
    std::deque<Doc> docs;        // guarded by mu (a deque: push_back keeps references valid)
    size_t next = 0;             // guarded by mu: the next document to start
    int64_t running = 0, n_done = 0, peak = 0;  // guarded by mu
    std::vector<size_t> in_flight;              // guarded by mu: started, not finished

    void gauge(std::atomic<int64_t> ClassifyBatchGauges::*g, int64_t d) const {
        if (opt.gauges) ((*opt.gauges).*g).fetch_add(d);
    }
};

BatchDocumentResult ClassifyBatch::run_document(State& s, std::string text,
                                                std::shared_ptr<std::atomic<bool>> submitted) {
    BatchDocumentResult r;
    const auto t0 = Clock::now();
    auto end = [&](BatchDocumentResult::Kind k, std::string error) {
        r.kind = k;
        r.error = std::move(error);
        r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
        return std::move(r);
    };
    if (s.cancel->load()) return end(BatchDocumentResult::Kind::cancelled, "cancelled");
    ClassifyRequest cr = s.shared;
    cr.document = std::move(text);
    if (Status v = validate_classify_request(cr); !v.ok()) return end(BatchDocumentResult::Kind::invalid, v.error().message);
    Result<ClassifyPrompt> p = build_classify_prompt(s.tok, cr, s.opt.context);
    if (!p.ok()) return end(BatchDocumentResult::Kind::invalid, p.error().message);
    r.prompt = std::move(*p);
    LabelScorer mine(s.hold.scorer(), s.cancel, std::move(submitted));  // the shared memo; this batch's cancel
    Result<LabelScores> sc = score_classify_prompt(mine, r.prompt);
    if (!sc.ok()) {
        if (s.cancel->load()) return end(BatchDocumentResult::Kind::cancelled, "cancelled");
        return end(BatchDocumentResult::Kind::failed, sc.error().message);
    }
    r.scores = std::move(*sc);
    return end(BatchDocumentResult::Kind::ok, "");
}

bool ClassifyBatch::shares_memoised_work(const ClassifyRequest& shared) {
    const ClassifyMethod m = shared.method.value_or(default_method(!shared.examples.empty()));
    return (shared.calibrate && m != ClassifyMethod::embedding) || (!shared.examples.empty() && m != ClassifyMethod::labels);
}

ClassifyBatch::ClassifyBatch(LabelScorer& scorer, const Tokenizer& tok, ClassifyRequest shared, ClassifyBatchOptions o)
    : s_(std::make_shared<State>(scorer, tok, std::move(shared), std::move(o))) {}

ClassifyBatch::~ClassifyBatch() { cancel(); }

size_t ClassifyBatch::add(std::string document) {
    std::lock_guard lock(s_->mu);
    State::Doc d;
    d.text = std::move(document);
    s_->docs.push_back(std::move(d));
    s_->gauge(&ClassifyBatchGauges::waiting, 1);
    return s_->docs.size() - 1;
}

void ClassifyBatch::pump() {
    State& s = *s_;
    // note: called with s.mu held.
    const bool first_alone = shares_memoised_work(s.shared);
    while (s.next < s.docs.size() && !s.cancel->load()) {
        if (s.running >= std::max<int64_t>(1, s.opt.max_in_flight)) return;
        if (first_alone && s.next > 0 && s.n_done == 0) return;  // the first one computes what all share
        if (s.running > 0) {
            // A document that has not reached the engine yet (tokenizing) would not show in its queue.
            for (size_t i : s.in_flight) {
                if (!s.docs[i].submitted->load()) return;
            }
            // Something waits for admission (this batch's or another request's): the scheduler cannot
            // take more now. With nothing of this batch running, one document goes ahead anyway and
            // waits its turn like any request.
            if (s.hold.scorer().engine().metrics().waiting.load() > 0) return;
        }
        const size_t i = s.next++;
        State::Doc& d = s.docs[i];
        d.started = true;
        ++s.running;
        s.peak = std::max(s.peak, s.running);
        s.in_flight.push_back(i);
        s.gauge(&ClassifyBatchGauges::waiting, -1);
        s.gauge(&ClassifyBatchGauges::running, 1);
        std::thread([st = s_, i, text = std::move(d.text), submitted = d.submitted]() mutable {
            BatchDocumentResult r = run_document(*st, std::move(text), std::move(submitted));
            std::lock_guard lock(st->mu);
            State::Doc& doc = st->docs[i];
            doc.result = std::move(r);
            doc.done = true;
            --st->running;
            ++st->n_done;
            st->in_flight.erase(std::find(st->in_flight.begin(), st->in_flight.end(), i));
            st->gauge(&ClassifyBatchGauges::running, -1);
            st->cv.notify_all();
        }).detach();
    }
}

bool ClassifyBatch::wait(size_t i, std::chrono::milliseconds timeout) {
    State& s = *s_;
    const auto until = Clock::now() + timeout;
    std::unique_lock lock(s.mu);
    if (i >= s.docs.size()) return false;
    while (true) {
        pump();
        if (s.docs[i].done) return true;
        const auto now = Clock::now();
        if (now >= until) return false;
        // Held back by the engine's queue (or a document still tokenizing): look again soon. Otherwise
        // only a finished document changes what can start.
        const bool held = s.next < s.docs.size() && !s.cancel->load() && s.running < std::max<int64_t>(1, s.opt.max_in_flight);
        s.cv.wait_until(lock, held ? std::min(until, now + kAdmissionPoll) : until);
    }
}

BatchDocumentResult ClassifyBatch::take(size_t i) {
    std::lock_guard lock(s_->mu);
    return std::move(s_->docs.at(i).result);
}

void ClassifyBatch::cancel() {
    State& s = *s_;
    s.cancel->store(true);
    std::lock_guard lock(s.mu);
    for (; s.next < s.docs.size(); ++s.next) {
        State::Doc& d = s.docs[s.next];
        d.done = true;
        d.result.kind = BatchDocumentResult::Kind::cancelled;
        d.result.error = "cancelled";
        ++s.n_done;
        s.gauge(&ClassifyBatchGauges::waiting, -1);
    }
    s.cv.notify_all();
}

int64_t ClassifyBatch::peak_in_flight() const {
    std::lock_guard lock(s_->mu);
    return s_->peak;
}

}  // namespace hr
