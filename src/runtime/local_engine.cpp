// LocalEngine (see local_engine.h).
#include "runtime/local_engine.h"

namespace hr {

namespace {

struct Sizing {
    StepLimits limits;
    int64_t n_blocks = 0;
};

Result<Sizing> sizing(const ModelConfig& cfg, const LocalEngineOptions& o) {
    HR_TRY(check_context(cfg, o.context));
    if (o.max_seqs <= 0 || o.max_tokens <= 0 || o.block_size <= 0 || o.n_kv_blocks < 0)
        return errorf("engine: limits must be positive (sequences {}, step tokens {}, block {}, blocks {})", o.max_seqs,
                      o.max_tokens, o.block_size, o.n_kv_blocks);
    Sizing z;
    z.limits.max_blocks_per_seq = (o.context + o.block_size - 1) / o.block_size;
    z.limits.max_seqs = o.max_seqs;
    z.limits.max_tokens = o.max_tokens;
    z.n_blocks = o.n_kv_blocks > 0 ? o.n_kv_blocks : o.max_seqs * z.limits.max_blocks_per_seq;
    return z;
}

}  // namespace

uint64_t local_engine_bytes(const ModelConfig& cfg, const LocalEngineOptions& o) {
    auto z = sizing(cfg, o);
    if (!z.ok()) return 0;
    return activation_bytes(cfg, z->limits) + kv_cache_bytes(cfg, z->n_blocks, o.block_size, o.kv_dtype);
}

Result<std::unique_ptr<LocalEngine>> LocalEngine::start(Backend& be, const LoadedModel& m, const LocalEngineOptions& o) {
    HR_ASSIGN(const Sizing z, sizing(m.cfg, o));
    std::unique_ptr<LocalEngine> le(new LocalEngine(be));
    le->limits_ = z.limits;
    HR_ASSIGN(le->act_base_, be.allocate(activation_bytes(m.cfg, z.limits), "activations"));
    HR_ASSIGN(le->kv_base_, be.allocate(kv_cache_bytes(m.cfg, z.n_blocks, o.block_size, o.kv_dtype), "kv cache"));
    le->act_ = carve_activations(m.cfg, z.limits, le->act_base_);
    le->kv_ = carve_kv_cache(m.cfg, z.n_blocks, o.block_size, o.kv_dtype, le->kv_base_);
    le->runner_ = std::make_unique<ForwardRunner>(be, m.cfg, m.weights, z.limits, le->act_, le->kv_);
    EngineConfig ec;
    ec.limits = {.max_tokens_per_step = z.limits.max_tokens,
                 .max_seqs = z.limits.max_seqs,
                 .max_blocks_per_seq = z.limits.max_blocks_per_seq};
    ec.n_kv_blocks = z.n_blocks;
    ec.block_size = o.block_size;
    ec.max_queue = o.max_queue;
    ec.context = o.context;
    ec.n_valid_tokens = o.n_valid_tokens;
    ec.log_interval_s = 0;
    ec.prefix_caching = o.prefix_caching;
    le->engine_ = std::make_unique<Engine>(ec, *le->runner_);
    HR_TRY(le->engine_->start());
    return le;
}

LocalEngine::~LocalEngine() {
    engine_.reset();  // stops the loop before the memory it runs on goes
    runner_.reset();
    if (act_base_) be_.release(act_base_);
    if (kv_base_) be_.release(kv_base_);
}

}  // namespace hr
