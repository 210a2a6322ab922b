// Engine loop: inbox -> scheduler -> batch -> runner -> sample -> events (see engine.h).
#include "runtime/engine.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/log.h"
#include "runtime/batch.h"

namespace hr {

namespace {

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Requests whose tokens run in a step: a score group's sequences (its prompt, its labels) count once.
int64_t distinct_requests(const Schedule& s) {
    int64_t n = 0;
    for (size_t i = 0; i < s.items.size(); ++i) {
        const auto& g = s.items[i].seq->group;
        bool seen = false;
        for (size_t k = 0; g && k < i && !seen; ++k) seen = s.items[k].seq->group == g;
        n += seen ? 0 : 1;
    }
    return n;
}

}  // namespace

Engine::Engine(const EngineConfig& cfg, ModelRunner& runner)
    : cfg_(cfg),
      runner_(runner),
      pool_(cfg.n_kv_blocks, cfg.block_size, cfg.prefix_caching),
      sched_(cfg.limits, pool_),
      seed_rng_(std::random_device{}()) {
    metrics_.kv_blocks_total = cfg.n_kv_blocks;
}

Engine::~Engine() { stop(); }

Status Engine::start() {
    if (thread_.joinable()) return make_error("engine already started");
    const int64_t vocab = runner_.vocab_size();
    if (vocab <= 0) return errorf("runner vocabulary must be positive, found {}", vocab);
    if (cfg_.n_valid_tokens < 0 || cfg_.n_valid_tokens > vocab) {
        return errorf("valid token count must be in [0, {}], found {}", vocab, cfg_.n_valid_tokens);
    }
    if (cfg_.context <= 1) return errorf("context must be at least 2 tokens, found {}", cfg_.context);
    if (cfg_.max_queue < 0) return errorf("queue bound must be >= 0, found {}", cfg_.max_queue);
    HR_ASSIGN(std::optional<FaultPlan> fault, fault_plan_from_env());
    if (fault) {
        log_warn("{} is set: the engine will end the process with a fatal error after {} steps of >= {} "
                 "sequences (test-only)",
                 kFaultInjectEnv, fault->fatal_after_steps, fault->min_seqs);
        fault_.emplace(*fault);
    }
    logits_.assign(static_cast<size_t>(cfg_.limits.max_seqs * vocab), 0.0f);
    batch_.token_ids.reserve(static_cast<size_t>(cfg_.limits.max_tokens_per_step));
    batch_.positions.reserve(static_cast<size_t>(cfg_.limits.max_tokens_per_step));
    batch_.token_seq.reserve(static_cast<size_t>(cfg_.limits.max_tokens_per_step));
    batch_.slot_mapping.reserve(static_cast<size_t>(cfg_.limits.max_tokens_per_step));
    batch_.block_tables.reserve(static_cast<size_t>(cfg_.limits.max_seqs * cfg_.limits.max_blocks_per_seq));
    batch_.logit_rows.reserve(static_cast<size_t>(cfg_.limits.max_seqs));
    pools_.reserve(static_cast<size_t>(cfg_.limits.max_seqs));
    last_log_ = Clock::now();
    heartbeat_ = last_log_.time_since_epoch().count();
    health_ = EngineHealth::ready;
    // note: the hook may run on the loop thread in the middle of a step, holding whatever it holds,
    // so it only stores atomics: health (submit, submit_score and /health see dead at once). Streams
    // see hr::fatal_in_progress() themselves; a loop that is not the fatal thread stops at its next
    // iteration (the notify is lock-free; the loop's wait is bounded anyway).
    fatal_hook_ = add_fatal_hook(FatalStage::notify, [this] {
        health_.store(EngineHealth::dead);
        cv_.notify_all();
    });
    thread_ = std::thread([this] { loop(); });
    return ok();
}

std::optional<SubmitError> Engine::refuse_unless_ready() const {
    const EngineHealth h = health_.load();
    if (h == EngineHealth::ready) return std::nullopt;
    return SubmitError{SubmitErrorKind::unavailable, h == EngineHealth::dead ? "the engine failed and is not serving"
                                                                             : "the server is shutting down"};
}

template <class T>
std::optional<SubmitError> Engine::enqueue(std::vector<T>& inbox, T item) {
    {
        std::lock_guard lock(mu_);
        if (stop_requested_) return SubmitError{SubmitErrorKind::unavailable, "the server is shutting down"};
        if (queued_ >= cfg_.max_queue) {
            // Hint: the time for the running set to produce a request's worth of tokens.
            double hint = std::max(1.0, std::ceil(step_s_.load() * 16));
            return SubmitError{SubmitErrorKind::queue_full,
                               fmt::format("the request queue is full ({} waiting)", queued_), hint};
        }
        ++queued_;
        in_flight_.fetch_add(1);
        metrics_.waiting = queued_;
        inbox.push_back(std::move(item));
    }
    cv_.notify_one();
    return std::nullopt;
}

SubmitResult Engine::submit(GenerationRequest req) {
    const auto now = Clock::now();
    if (auto refused = refuse_unless_ready()) return *refused;
    const int64_t n_prompt = static_cast<int64_t>(req.prompt.size());
    const int64_t vocab = runner_.vocab_size();
    if (n_prompt == 0) return SubmitError{SubmitErrorKind::invalid, "the prompt is empty"};
    if (req.max_tokens < 1) {
        return SubmitError{SubmitErrorKind::invalid, fmt::format("max_tokens must be >= 1, found {}", req.max_tokens)};
    }
    for (size_t i = 0; i < req.prompt.size(); ++i) {
        if (req.prompt[i] < 0 || req.prompt[i] >= vocab) {
            return SubmitError{SubmitErrorKind::invalid,
                               fmt::format("prompt token at index {} is outside the vocabulary [0, {})", i, vocab)};
        }
    }
    for (int32_t t : req.stop_token_ids) {
        if (t < 0 || t >= vocab) {
            return SubmitError{SubmitErrorKind::invalid,
                               fmt::format("a stop token id is outside the vocabulary [0, {})", vocab)};
        }
    }
    if (n_prompt + req.max_tokens > cfg_.context) {
        return SubmitError{SubmitErrorKind::invalid,
                           fmt::format("this model's context is {} tokens; the request needs {} ({} in the prompt "
                                       "+ {} max_tokens)",
                                       cfg_.context, n_prompt + req.max_tokens, n_prompt, req.max_tokens)};
    }
    if (!sched_.fits_at_all(n_prompt, req.max_tokens)) {
        return SubmitError{SubmitErrorKind::invalid,
                           fmt::format("the request needs {} KV blocks; the server has {} in all",
                                       sched_.blocks_needed(n_prompt, req.max_tokens), cfg_.n_kv_blocks)};
    }
    if (req.deadline) {
        if (*req.deadline <= now) return SubmitError{SubmitErrorKind::deadline, "the request's deadline has passed"};
        // A lower bound: the prompt's prefill steps at the measured step time (0 before any step).
        const int64_t prefill_steps =
            (n_prompt + cfg_.limits.max_tokens_per_step - 1) / cfg_.limits.max_tokens_per_step;
        const double need_s = static_cast<double>(prefill_steps) * step_s_.load();
        if (now + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(need_s)) > *req.deadline) {
            return SubmitError{SubmitErrorKind::deadline,
                               fmt::format("the deadline cannot be met: the prompt alone needs about {:.3f} s, "
                                           "{:.3f} s are left",
                                           need_s, seconds(*req.deadline - now))};
        }
    }
    auto seq = std::make_unique<Sequence>();
    seq->id = next_id_.fetch_add(1);
    seq->stream = std::make_shared<RequestStream>(seq->id);
    seq->n_prompt = n_prompt;
    seq->tokens = std::move(req.prompt);
    seq->tokens.reserve(static_cast<size_t>(n_prompt + req.max_tokens));
    seq->submitted_at = now;
    seq->req = std::move(req);
    auto stream = seq->stream;
    if (auto refused = enqueue(inbox_, std::move(seq))) return *refused;
    return stream;
}

std::variant<std::future<ScoreOutcome>, SubmitError> Engine::submit_score(ScoreRequest req) {
    if (auto refused = refuse_unless_ready()) return *refused;
    const int64_t P = static_cast<int64_t>(req.prompt.size());
    const int64_t vocab = runner_.vocab_size();
    if (P == 0) return SubmitError{SubmitErrorKind::invalid, "the prompt is empty"};
    if (req.labels.empty()) return SubmitError{SubmitErrorKind::invalid, "no continuation to score"};
    auto outside = [vocab](const std::vector<int32_t>& ids) {
        return std::any_of(ids.begin(), ids.end(), [vocab](int32_t t) { return t < 0 || t >= vocab; });
    };
    if (outside(req.prompt)) {
        return SubmitError{SubmitErrorKind::invalid, fmt::format("a prompt token is outside the vocabulary [0, {})", vocab)};
    }
    int64_t longest = 0;
    for (size_t j = 0; j < req.labels.size(); ++j) {
        if (req.labels[j].empty()) return SubmitError{SubmitErrorKind::invalid, fmt::format("continuation {} is empty", j)};
        if (outside(req.labels[j])) {
            return SubmitError{SubmitErrorKind::invalid,
                               fmt::format("a token of continuation {} is outside the vocabulary [0, {})", j, vocab)};
        }
        longest = std::max<int64_t>(longest, static_cast<int64_t>(req.labels[j].size()));
    }
    const int64_t per_seq_limit = std::min(cfg_.context, cfg_.limits.max_blocks_per_seq * cfg_.block_size);
    if (P + longest > per_seq_limit) {
        return SubmitError{SubmitErrorKind::invalid,
                           fmt::format("this model's context is {} tokens; the prompt ({}) and longest continuation "
                                       "({}) need {}",
                                       per_seq_limit, P, longest, P + longest)};
    }
    auto g = std::make_shared<ScoreGroup>();
    g->id = next_id_.fetch_add(1);
    g->prompt = std::move(req.prompt);
    g->labels = std::move(req.labels);
    g->cancel = std::move(req.cancel);
    g->outcome.logprob.assign(g->labels.size(), 0.0);
    // The blocks the group reserves at once: the prompt's once, each label sequence's own.
    const int64_t need = sched_.group_blocks_needed(*g);
    if (need > cfg_.n_kv_blocks) {
        return SubmitError{SubmitErrorKind::invalid,
                           fmt::format("scoring {} continuations needs {} KV blocks; the server has {} in all",
                                       g->labels.size(), need, cfg_.n_kv_blocks)};
    }
    std::future<ScoreOutcome> fut = g->promise.get_future();
    if (auto refused = enqueue(group_inbox_, std::move(g))) return *refused;
    return fut;
}

void Engine::end_group(ScoreGroup& g, std::string error) {
    if (g.done) return;
    g.done = true;
    std::vector<Sequence*> mine;
    for (auto& q : sched_.running()) if (q->group.get() == &g) mine.push_back(q.get());
    for (auto& q : sched_.waiting()) if (q->group.get() == &g) mine.push_back(q.get());
    // The sequences hold the last references to the group: keep it alive until the promise is kept.
    std::shared_ptr<ScoreGroup> keep = mine.empty() ? nullptr : mine.front()->group;
    for (Sequence* q : mine) sched_.remove(q);
    sched_.release_group(g);
    if (!g.admitted) {
        std::lock_guard lock(mu_);
        --queued_;
    }
    g.outcome.error = std::move(error);
    if (!g.outcome.error.empty()) g.outcome.logprob.clear();
    metrics_.score_requests.fetch_add(1);
    // note: debug, not info: `headroom classify` scores several prompts per document (calibration).
    log_debug("score request {}: prompt {} tokens ({} cached), {} continuations, {} forward tokens, {} block "
              "copies{}{}",
              g.id, g.prompt.size(), g.outcome.cached_tokens, g.labels.size(), g.outcome.forward_tokens,
              g.outcome.block_copies, g.outcome.error.empty() ? "" : ": ", g.outcome.error);
    g.promise.set_value(std::move(g.outcome));
    in_flight_.fetch_sub(1);
}

std::variant<std::future<EmbedOutcome>, SubmitError> Engine::submit_embed(EmbedRequest req) {
    if (auto refused = refuse_unless_ready()) return *refused;
    const int64_t T = static_cast<int64_t>(req.tokens.size());
    const int64_t vocab = runner_.vocab_size();
    const int64_t L = runner_.n_layers();
    if (L <= 0) return SubmitError{SubmitErrorKind::invalid, "this engine's model runner cannot pool layer outputs"};
    if (T == 0) return SubmitError{SubmitErrorKind::invalid, "the text to embed is empty"};
    if (std::any_of(req.tokens.begin(), req.tokens.end(), [vocab](int32_t t) { return t < 0 || t >= vocab; })) {
        return SubmitError{SubmitErrorKind::invalid, fmt::format("a token is outside the vocabulary [0, {})", vocab)};
    }
    if (req.layer_begin < 0 || req.layer_end > L || req.layer_begin >= req.layer_end) {
        return SubmitError{SubmitErrorKind::invalid, fmt::format("layers [{}, {}) are not a range of the model's {} layers",
                                                                 req.layer_begin, req.layer_end, L)};
    }
    if (T > cfg_.context) {
        return SubmitError{SubmitErrorKind::invalid, fmt::format("the text to embed is {} tokens, more than the "
                                                                 "context of {} tokens", T, cfg_.context)};
    }
    if (!sched_.fits_at_all(T, 0)) {
        return SubmitError{SubmitErrorKind::invalid, fmt::format("the text needs {} KV blocks; the server has {} in all",
                                                                 sched_.blocks_needed(T, 0), cfg_.n_kv_blocks)};
    }
    req.from_position = std::clamp<int64_t>(req.from_position, 0, T - 1);
    auto job = std::make_shared<EmbedJob>();
    job->id = next_id_.fetch_add(1);
    job->outcome.n_layers = req.layer_end - req.layer_begin;
    job->outcome.dim = runner_.hidden_dim();
    job->sums.assign(static_cast<size_t>(job->outcome.n_layers * job->outcome.dim), 0.0);
    auto seq = std::make_unique<Sequence>();
    seq->id = job->id;
    seq->tokens = req.tokens;
    seq->n_prompt = T;
    seq->req.max_tokens = 0;
    seq->submitted_at = Clock::now();
    job->req = std::move(req);
    seq->embed = job;
    std::future<EmbedOutcome> fut = job->promise.get_future();
    if (auto refused = enqueue(inbox_, std::move(seq))) return *refused;
    return fut;
}

void Engine::end_embed(Sequence* seq, std::string error) {
    const bool was_waiting = seq->admitted_at == Clock::time_point{};
    std::shared_ptr<EmbedJob> job = seq->embed;
    const int64_t T = seq->n_prompt;
    sched_.remove(seq);
    if (was_waiting) {
        std::lock_guard lock(mu_);
        --queued_;
    }
    EmbedOutcome& o = job->outcome;
    if (error.empty()) {
        const double n = static_cast<double>(T - job->req.from_position);
        o.values.resize(job->sums.size());
        for (size_t i = 0; i < job->sums.size(); ++i) {
            o.values[i] = static_cast<float>(job->sums[i] / n);
            if (!std::isfinite(o.values[i])) error = "the model produced non-finite hidden states";
        }
    }
    o.error = std::move(error);
    if (!o.error.empty()) o.values.clear();
    log_debug("embed request {}: {} tokens, layers [{}, {}), {} forward tokens{}{}", job->id, T, job->req.layer_begin,
              job->req.layer_end, o.forward_tokens, o.error.empty() ? "" : ": ", o.error);
    in_flight_.fetch_sub(1);  // first: a caller woken by the promise sees the request gone
    job->promise.set_value(std::move(o));
}

namespace {

// log p(target) under one logits row, in double; NaN when the row is not finite.
double log_prob(const float* r, int64_t vocab, int32_t target) {
    double mx = -INFINITY;
    for (int64_t v = 0; v < vocab; ++v) {
        if (!std::isfinite(r[v])) return NAN;
        mx = std::max(mx, static_cast<double>(r[v]));
    }
    double sum = 0.0;
    for (int64_t v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(r[v]) - mx);
    return static_cast<double>(r[target]) - mx - std::log(sum);
}

}  // namespace

size_t Engine::score_outputs(const ScheduledSeq& it, size_t row, GroupEvents& ev) {
    Sequence& q = *it.seq;
    const std::shared_ptr<ScoreGroup>& g = q.group;
    const int64_t P = static_cast<int64_t>(g->prompt.size());
    const int64_t from = q.n_computed - it.n_tokens;  // commit() already counted the chunk
    g->outcome.forward_tokens += it.n_tokens;
    g->outcome.prompt_forward_tokens += std::max<int64_t>(0, std::min(q.n_computed, P) - from);
    const int64_t vocab = runner_.vocab_size();
    const int64_t first = std::max(from, q.score_from);
    for (int64_t k = 0; k < it.score_rows; ++k, ++row) {
        if (!g->outcome.error.empty()) continue;
        const float* r = logits_.data() + row * static_cast<size_t>(vocab);
        const int64_t pos = first + k;
        bool finite = true;
        if (q.is_group_prompt()) {
            // The prompt's last row: every label's first token.
            for (size_t j = 0; j < g->labels.size() && finite; ++j) {
                const double lp = log_prob(r, vocab, g->labels[j][0]);
                finite = std::isfinite(lp);
                g->outcome.logprob[j] += lp;
            }
        } else {
            const std::vector<int32_t>& label = g->labels[static_cast<size_t>(q.label)];
            const double lp = log_prob(r, vocab, label[static_cast<size_t>(pos - P + 1)]);
            finite = std::isfinite(lp);
            g->outcome.logprob[static_cast<size_t>(q.label)] += lp;
        }
        if (!finite) {
            g->outcome.error = "the model produced non-finite logits";
            ev.failed.push_back(g);
        }
    }
    if (q.n_computed == static_cast<int64_t>(q.tokens.size())) {
        if (q.is_group_prompt()) ev.prompts_done.emplace_back(&q, g);
        else ev.labels_done.emplace_back(&q, g);
    }
    return row;
}

void Engine::apply_group_events(GroupEvents& ev) {
    // note: after the step's loop, so no schedule item points at a sequence destroyed here.
    for (auto& [q, g] : ev.prompts_done) {
        if (!g->outcome.error.empty()) continue;
        sched_.complete_group_prompt(q);
        // Only one-token labels: the prompt's last row scored them all.
        if (g->n_label_seqs == 0) end_group(*g, "");
    }
    for (auto& [q, g] : ev.labels_done) {
        if (!g->outcome.error.empty()) continue;
        sched_.remove(q);
        if (++g->n_labels_done == g->n_label_seqs) end_group(*g, "");
    }
    for (auto& g : ev.failed) end_group(*g, g->outcome.error);
}

void Engine::cancel(RequestStream& stream) {
    stream.request_cancel();
    {
        std::lock_guard lock(mu_);
        wake_ = true;
    }
    cv_.notify_one();
}

double Engine::seconds_since_progress() const {
    const Clock::rep beat = heartbeat_.load();
    if (beat == 0) return 0;
    return seconds(Clock::now() - Clock::time_point(Clock::duration(beat)));
}

void Engine::begin_drain() {
    EngineHealth expected = EngineHealth::ready;
    health_.compare_exchange_strong(expected, EngineHealth::draining);
}

void Engine::stop(FinishReason reason, std::string message) {
    {
        std::lock_guard lock(mu_);
        if (!stop_requested_) {
            stop_requested_ = true;
            stop_reason_ = reason;
            stop_message_ = std::move(message);
        }
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
    fatal_hook_.reset();  // after the join: the loop may still be the thread in fatal
    if (health_.load() != EngineHealth::dead) health_ = EngineHealth::stopped;
}

void Engine::drain_inbox() {
    std::vector<std::unique_ptr<Sequence>> batch;
    std::vector<std::shared_ptr<ScoreGroup>> groups;
    {
        std::lock_guard lock(mu_);
        batch.swap(inbox_);
        groups.swap(group_inbox_);
        wake_ = false;
    }
    for (auto& g : groups) sched_.enqueue_group(g);
    for (auto& s : batch) {
        if (s->req.sampling.has_seed) {
            s->rng.seed(s->req.sampling.seed);
        } else {
            s->rng.seed(seed_rng_());
        }
        sched_.enqueue(std::move(s));
    }
}

void Engine::finish(Sequence* seq, FinishReason reason, std::string error) {
    const auto now = Clock::now();
    const bool was_waiting = seq->admitted_at == Clock::time_point{};
    RequestStats st;
    st.prompt_tokens = seq->n_prompt;
    st.generated_tokens = std::max<int64_t>(0, seq->n_generated());
    st.queue_s = was_waiting ? seconds(now - seq->submitted_at) : seconds(seq->admitted_at - seq->submitted_at);
    st.ttft_s = seq->first_token_at == Clock::time_point{} ? 0 : seconds(seq->first_token_at - seq->submitted_at);
    st.total_s = seconds(now - seq->submitted_at);
    const double decode_s = st.generated_tokens > 1 ? seconds(seq->last_token_at - seq->first_token_at) : 0;
    const double tps = decode_s > 0 ? static_cast<double>(st.generated_tokens - 1) / decode_s : 0;
    log_info("request {}: prompt {} tokens, generated {} tokens, ttft {:.3f} s, {:.1f} tokens/s, finish {}{}{}",
             seq->id, st.prompt_tokens, st.generated_tokens, st.ttft_s, tps, finish_reason_name(reason),
             error.empty() ? "" : ": ", error);
    metrics_.finished[static_cast<size_t>(reason)].fetch_add(1);
    auto stream = seq->stream;
    auto owned = sched_.remove(seq);
    if (was_waiting) {
        std::lock_guard lock(mu_);
        --queued_;
    }
    stream->finish(reason, std::move(error), st);
    in_flight_.fetch_sub(1);
}

void Engine::expire_and_cancel(Clock::time_point now) {
    std::vector<std::pair<Sequence*, FinishReason>> ending;
    auto check = [&](Sequence* s) {
        if (s->stream->cancel_requested()) {
            ending.push_back({s, FinishReason::cancelled});
        } else if (s->req.deadline && *s->req.deadline <= now) {
            ending.push_back({s, FinishReason::timeout});
        }
    };
    // Score groups have no stream: their caller cancels them through ScoreRequest::cancel.
    std::vector<std::shared_ptr<ScoreGroup>> cancelled;
    auto check_group = [&](Sequence* s) {
        if (s->group->cancel && s->group->cancel->load() &&
            std::find(cancelled.begin(), cancelled.end(), s->group) == cancelled.end())
            cancelled.push_back(s->group);
    };
    // Embed sequences neither: through EmbedRequest::cancel.
    std::vector<Sequence*> embeds_cancelled;
    auto visit = [&](Sequence* s) {
        if (s->embed) {
            if (s->embed->req.cancel && s->embed->req.cancel->load()) embeds_cancelled.push_back(s);
        } else if (s->group) {
            check_group(s);
        } else {
            check(s);
        }
    };
    for (auto& s : sched_.running()) visit(s.get());
    for (auto& s : sched_.waiting()) visit(s.get());
    for (Sequence* s : embeds_cancelled) end_embed(s, "cancelled");
    for (auto& [s, r] : ending) {
        finish(s, r, r == FinishReason::timeout ? "the request's deadline expired" : "");
    }
    for (auto& g : cancelled) end_group(*g, "cancelled");
}

void Engine::fail_all(FinishReason reason, const std::string& message) {
    std::vector<Sequence*> all;
    std::vector<std::shared_ptr<ScoreGroup>> groups;
    std::vector<Sequence*> embeds;
    auto add = [&](Sequence* s) {
        if (s->embed) {
            embeds.push_back(s);
        } else if (!s->group) {
            all.push_back(s);
        } else if (std::find(groups.begin(), groups.end(), s->group) == groups.end()) {
            groups.push_back(s->group);
        }
    };
    for (auto& s : sched_.running()) add(s.get());
    for (auto& s : sched_.waiting()) add(s.get());
    for (Sequence* s : all) finish(s, reason, message);
    for (auto& g : groups) end_group(*g, message);
    for (Sequence* s : embeds) end_embed(s, message);
}

void Engine::publish_gauges() {
    int64_t queued;
    {
        std::lock_guard lock(mu_);
        queued = queued_;
    }
    metrics_.waiting = queued;
    metrics_.running = sched_.n_running();
    metrics_.kv_blocks_used = pool_.n_used();
    metrics_.kv_blocks_reserved = pool_.n_reserved();
    metrics_.kv_blocks_cached = pool_.n_cached();
}

void Engine::sample_outputs(const Schedule& s, Clock::time_point now) {
    const int64_t vocab = runner_.vocab_size();
    const int64_t n_valid = cfg_.n_valid_tokens > 0 ? cfg_.n_valid_tokens : vocab;
    size_t row = 0;
    GroupEvents group_events;
    for (const ScheduledSeq& it : s.items) {
        if (it.seq->group) {
            row = score_outputs(it, row, group_events);
            continue;
        }
        if (it.seq->embed) {  // its rows were summed during the step; no logits row
            it.seq->embed->outcome.forward_tokens += it.n_tokens;
            if (it.seq->n_computed == it.seq->n_prompt) end_embed(it.seq, "");
            continue;
        }
        if (!it.wants_logits) continue;
        Sequence& q = *it.seq;
        std::span<float> logits(logits_.data() + row * static_cast<size_t>(vocab), static_cast<size_t>(vocab));
        ++row;
        bool finite = true;
        for (float v : logits) finite = finite && std::isfinite(v);
        if (!finite) {
            finish(&q, FinishReason::error, "the model produced non-finite logits");
            continue;
        }
        // note: the sampler refuses non-finite logits, so a masked token (-inf from a processor, or
        // an id past the tokenizer's vocabulary) becomes the lowest finite float: probability 0.
        constexpr float kMasked = std::numeric_limits<float>::lowest();
        for (int64_t t = n_valid; t < vocab; ++t) logits[static_cast<size_t>(t)] = kMasked;
        if (q.req.logits_processor) {
            std::span<const int32_t> generated(q.tokens.data() + q.n_prompt, static_cast<size_t>(q.n_generated()));
            q.req.logits_processor->apply(logits, generated);
            bool any_allowed = false, bad = false;
            for (float& v : logits) {
                if (v == -INFINITY) v = kMasked;
                bad = bad || !std::isfinite(v);
                any_allowed = any_allowed || v > kMasked;
            }
            if (bad) {
                finish(&q, FinishReason::error, "the request's logits constraint produced non-finite values");
                continue;
            }
            if (!any_allowed) {
                finish(&q, FinishReason::error, "no token is allowed by the request's constraints");
                continue;
            }
        }
        Result<int32_t> sampled = sample_token(logits, q.req.sampling, q.rng);
        if (!sampled.ok()) {
            finish(&q, FinishReason::error, "sampling failed: " + sampled.error().message);
            continue;
        }
        const int32_t tok = *sampled;
        if (tok < 0 || tok >= n_valid) {
            finish(&q, FinishReason::error, "the sampler returned a token outside the vocabulary");
            continue;
        }
        q.tokens.push_back(tok);
        metrics_.generated_tokens.fetch_add(1);
        if (q.first_token_at == Clock::time_point{}) {
            q.first_token_at = now;
            metrics_.ttft.observe(seconds(now - q.submitted_at));
        } else {
            metrics_.inter_token.observe(seconds(now - q.last_token_at));
        }
        q.last_token_at = now;
        const bool is_stop =
            std::find(q.req.stop_token_ids.begin(), q.req.stop_token_ids.end(), tok) != q.req.stop_token_ids.end();
        if (is_stop) {
            finish(&q, FinishReason::stop, "");
            continue;
        }
        StreamEvent ev;
        ev.kind = StreamEvent::Kind::token;
        ev.token = tok;
        q.stream->push(std::move(ev));
        if (q.n_generated() >= q.req.max_tokens) finish(&q, FinishReason::length, "");
    }
    apply_group_events(group_events);
}

void Engine::maybe_log_throughput(Clock::time_point now) {
    if (cfg_.log_interval_s <= 0) return;
    const double dt = seconds(now - last_log_);
    if (dt < cfg_.log_interval_s) return;
    const uint64_t p = metrics_.prompt_tokens.load(), g = metrics_.generated_tokens.load();
    if (p != last_log_prompt_ || g != last_log_gen_ || sched_.n_running() > 0) {
        log_info("throughput: {:.1f} prompt tokens/s, {:.1f} generated tokens/s, running {}, waiting {}, "
                 "KV blocks {}/{} used, {} reserved, {} cached",
                 static_cast<double>(p - last_log_prompt_) / dt, static_cast<double>(g - last_log_gen_) / dt,
                 sched_.n_running(), sched_.n_waiting(), pool_.n_used(), pool_.n_total(), pool_.n_reserved(),
                 pool_.n_cached());
    }
    last_log_ = now;
    last_log_prompt_ = p;
    last_log_gen_ = g;
}

void Engine::loop() {
    while (true) {
        {
            std::lock_guard lock(mu_);
            if (stop_requested_) break;
        }
        // Another thread called hr::fatal (the hook marked us dead): no more device work.
        if (health_.load() == EngineHealth::dead) break;
        drain_inbox();
        auto now = Clock::now();
        heartbeat_ = now.time_since_epoch().count();
        expire_and_cancel(now);
        Schedule s = sched_.schedule();
        const Scheduler::Admitted& adm = sched_.admitted();
        if (adm.requests > 0) {
            std::lock_guard lock(mu_);
            queued_ -= adm.requests;
        }
        // Count a prompt once, when admitted.
        metrics_.prompt_tokens.fetch_add(static_cast<uint64_t>(adm.prompt_tokens));
        metrics_.prefix_cache_hit_tokens.fetch_add(static_cast<uint64_t>(adm.cached_tokens));
        metrics_.prefix_cache_recomputed_tokens.fetch_add(static_cast<uint64_t>(adm.recomputed_tokens));
        publish_gauges();
        maybe_log_throughput(now);
        if (s.empty()) {
            std::unique_lock lock(mu_);
            // Bounded wait: deadlines of queued requests are checked at least this often.
            cv_.wait_for(lock, std::chrono::milliseconds(50),
                         [&] { return stop_requested_ || wake_ || !inbox_.empty() || !group_inbox_.empty(); });
            continue;
        }
        const int64_t n_requests = distinct_requests(s);
        metrics_.step_requests = n_requests;
        if (n_requests > metrics_.step_requests_max.load()) metrics_.step_requests_max = n_requests;
        build_step_batch(s, cfg_.block_size, cfg_.limits.max_blocks_per_seq, batch_);
        const auto t0 = Clock::now();
        pools_.clear();
        for (size_t i = 0; i < s.items.size(); ++i) {
            const EmbedJob* job = s.items[i].seq->embed.get();
            if (!job) continue;
            pools_.push_back({.seq_row = static_cast<int32_t>(i),
                              .from_position = static_cast<int32_t>(job->req.from_position),
                              .layer_begin = job->req.layer_begin,
                              .layer_end = job->req.layer_end,
                              .sums = s.items[i].seq->embed->sums.data()});
        }
        Status st = runner_.run_pooled(batch_, std::span<float>(logits_), pools_);
        // Test-only: a sticky device error surfaces here, when the step's work is waited for.
        if (fault_ && st.ok()) fault_->after_step(static_cast<int64_t>(s.items.size()));
        const auto t1 = Clock::now();
        if (!st.ok()) {
            log_error("engine: model step failed: {}; ending all requests", st.error().message);
            health_ = EngineHealth::dead;
            {
                std::lock_guard lock(mu_);
                stop_requested_ = true;  // submit() refuses from now on, under the same lock
            }
            fail_all(FinishReason::error, "the engine failed while running this request");
            publish_gauges();
            break;
        }
        const double dt = seconds(t1 - t0);
        const double prev = step_s_.load();
        step_s_ = prev == 0 ? dt : 0.8 * prev + 0.2 * dt;
        metrics_.steps.fetch_add(1);
        metrics_.step_tokens.fetch_add(static_cast<uint64_t>(s.n_tokens));
        metrics_.kv_block_copies.fetch_add(static_cast<uint64_t>(s.copies.size()));
        sched_.commit(s);
        sample_outputs(s, t1);
        publish_gauges();
    }
    std::string msg;
    FinishReason reason;
    {
        std::lock_guard lock(mu_);
        msg = stop_message_;
        reason = stop_reason_;
    }
    drain_inbox();
    if (fatal_in_progress()) {
        msg = std::string(kEngineFatalMessage);
        reason = FinishReason::error;
    } else if (health_.load() == EngineHealth::dead) {
        msg = "the engine failed and is not serving";
        reason = FinishReason::error;
    }
    fail_all(reason, msg);
    publish_gauges();
}

}  // namespace hr
