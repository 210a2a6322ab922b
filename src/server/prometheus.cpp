// Prometheus text rendering (see prometheus.h).
#include "server/prometheus.h"

#include <fmt/format.h>

#include "server/api_server.h"

namespace hr::server {

namespace {

void header(std::string& out, const char* name, const char* type, const char* help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void histogram(std::string& out, const char* name, const char* help, const Histogram::Snapshot& h) {
    header(out, name, "histogram", help);
    for (size_t i = 0; i < h.bounds.size(); ++i) {
        out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, h.bounds[i], h.cumulative[i]);
    }
    out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, h.count, name, h.sum, name, h.count);
}

}  // namespace

std::string render_metrics(const MetricsInput& in) {
    std::string out;
    header(out, "headroom_ready", "gauge", "1 when the server accepts requests.");
    out += fmt::format("headroom_ready {}\n", in.state == ServerState::ready ? 1 : 0);
    header(out, "headroom_state", "gauge", "Server state (1 for the current one).");
    for (ServerState s : {ServerState::loading, ServerState::ready, ServerState::draining, ServerState::dead}) {
        out += fmt::format("headroom_state{{state=\"{}\"}} {}\n", server_state_name(s), s == in.state ? 1 : 0);
    }
    header(out, "headroom_requests_total", "counter", "HTTP generation requests by outcome.");
    for (const auto& [k, v] : in.outcomes) out += fmt::format("headroom_requests_total{{outcome=\"{}\"}} {}\n", k, v);
    if (in.planned_bytes) {
        header(out, "headroom_planned_bytes", "gauge",
               "Bytes the memory plan gives each region (tensor parallel: each rank's device, by rank).");
        for (const PlannedRegion& r : *in.planned_bytes) {
            if (r.rank < 0)
                out += fmt::format("headroom_planned_bytes{{region=\"{}\"}} {}\n", r.region, r.bytes);
            else
                out += fmt::format("headroom_planned_bytes{{region=\"{}\",rank=\"{}\"}} {}\n", r.region, r.rank,
                                   r.bytes);
        }
    }
    if (!in.engine) return out;
    header(out, "headroom_offloaded_experts", "gauge",
           "MoE expert instances (layer, expert) kept in pinned host memory (--offload-experts).");
    out += fmt::format("headroom_offloaded_experts {}\n", in.offloaded_experts);
    header(out, "headroom_host_link_streamed_bytes_total", "counter",
           "Bytes of offloaded experts copied over the host link into the prefill staging buffers (decode "
           "reads them in place, zero-copy, and is not counted here).");
    out += fmt::format("headroom_host_link_streamed_bytes_total {}\n",
                       in.host_stream_bytes && *in.host_stream_bytes ? (*in.host_stream_bytes)() : 0);
    if (in.offload_compute && !in.offload_compute->mode.empty()) {
        const OffloadComputeInfo& oc = *in.offload_compute;
        header(out, "headroom_offload_compute", "gauge",
               "How batch-1 decode computes the selected experts in host memory (--offload-compute): 1 for the "
               "mode taken (gpu: read over the host link; cpu: computed by the host), with the mode asked for.");
        for (const char* mode : {"gpu", "cpu"})
            out += fmt::format("headroom_offload_compute{{mode=\"{}\",requested=\"{}\"}} {}\n", mode, oc.requested,
                               oc.mode == mode ? 1 : 0);
        header(out, "headroom_offload_compute_rate_gbps", "gauge",
               "The rates the --offload-compute choice used, GB/s of expert weights: link = the GPU reading a host "
               "expert in place, cpu = the host computing one (measured by the start-up probe unless "
               "measured=\"false\").");
        out += fmt::format("headroom_offload_compute_rate_gbps{{path=\"link\",measured=\"{}\"}} {}\n", oc.measured,
                           oc.link_gbps);
        out += fmt::format("headroom_offload_compute_rate_gbps{{path=\"cpu\",measured=\"{}\"}} {}\n", oc.measured,
                           oc.cpu_gbps);
        header(out, "headroom_offload_cpu_experts_total", "counter",
               "Offloaded experts the host has computed for batch-1 decode tokens (--offload-compute cpu).");
        out += fmt::format("headroom_offload_cpu_experts_total {}\n", oc.cpu_experts ? oc.cpu_experts() : 0);
    }
    const EngineMetrics& m = in.engine->metrics();
    header(out, "headroom_prompt_tokens_total", "counter", "Prompt tokens of admitted requests.");
    out += fmt::format("headroom_prompt_tokens_total {}\n", m.prompt_tokens.load());
    header(out, "headroom_prefix_cache_hit_tokens_total", "counter",
           "Prompt tokens of admitted requests whose K/V came from the prefix cache.");
    out += fmt::format("headroom_prefix_cache_hit_tokens_total {}\n", m.prefix_cache_hit_tokens.load());
    header(out, "headroom_prefix_cache_hit_rate", "gauge",
           "Prefix cache hit tokens / prompt tokens since start (0 before any prompt).");
    const uint64_t queried = m.prompt_tokens.load(), hits = m.prefix_cache_hit_tokens.load();
    out += fmt::format("headroom_prefix_cache_hit_rate {:.6f}\n",
                       queried > 0 ? static_cast<double>(hits) / static_cast<double>(queried) : 0.0);
    header(out, "headroom_prefix_cache_recomputed_tokens_total", "counter",
           "Prompt tokens run through the model although their block was cached (a prompt of whole blocks "
           "runs its last block again for its last token's logits).");
    out += fmt::format("headroom_prefix_cache_recomputed_tokens_total {}\n", m.prefix_cache_recomputed_tokens.load());
    header(out, "headroom_kv_block_copies_total", "counter",
           "Copy-on-write copies of a shared KV block (a classified prompt's partial last block, one per label "
           "sequence but the last).");
    out += fmt::format("headroom_kv_block_copies_total {}\n", m.kv_block_copies.load());
    header(out, "headroom_generation_tokens_total", "counter", "Generated tokens.");
    out += fmt::format("headroom_generation_tokens_total {}\n", m.generated_tokens.load());
    header(out, "headroom_engine_steps_total", "counter", "Model steps run.");
    out += fmt::format("headroom_engine_steps_total {}\n", m.steps.load());
    header(out, "headroom_engine_seconds_since_progress", "gauge", "Seconds since the engine loop last made progress.");
    out += fmt::format("headroom_engine_seconds_since_progress {:.3f}\n", in.engine->seconds_since_progress());
    header(out, "headroom_engine_finished_total", "counter", "Engine requests by finish reason.");
    for (size_t i = 0; i < m.finished.size(); ++i) {
        out += fmt::format("headroom_engine_finished_total{{reason=\"{}\"}} {}\n",
                           finish_reason_name(static_cast<FinishReason>(i)), m.finished[i].load());
    }
    header(out, "headroom_queue_length", "gauge", "Requests waiting for admission.");
    out += fmt::format("headroom_queue_length {}\n", m.waiting.load());
    header(out, "headroom_running_sequences", "gauge", "Admitted sequences (prefill or decode).");
    out += fmt::format("headroom_running_sequences {}\n", m.running.load());
    header(out, "headroom_step_requests", "gauge",
           "Requests whose tokens ran in the last model step (a classified document's score group counts once).");
    out += fmt::format("headroom_step_requests {}\n", m.step_requests.load());
    header(out, "headroom_step_requests_max", "gauge",
           "The most requests run side by side in one model step since start.");
    out += fmt::format("headroom_step_requests_max {}\n", m.step_requests_max.load());
    header(out, "headroom_kv_blocks_used", "gauge", "KV blocks holding tokens.");
    out += fmt::format("headroom_kv_blocks_used {}\n", m.kv_blocks_used.load());
    header(out, "headroom_kv_blocks_reserved", "gauge", "Free KV blocks promised to admitted sequences.");
    out += fmt::format("headroom_kv_blocks_reserved {}\n", m.kv_blocks_reserved.load());
    header(out, "headroom_kv_blocks_total", "gauge", "KV blocks in the pool.");
    out += fmt::format("headroom_kv_blocks_total {}\n", m.kv_blocks_total.load());
    header(out, "headroom_kv_blocks_cached", "gauge",
           "KV blocks in the prefix cache (held or evictable; evictable ones count as free).");
    out += fmt::format("headroom_kv_blocks_cached {}\n", m.kv_blocks_cached.load());
    histogram(out, "headroom_time_to_first_token_seconds", "Submit to first generated token.", m.ttft.snapshot());
    histogram(out, "headroom_inter_token_latency_seconds", "Time between consecutive tokens of a request.",
              m.inter_token.snapshot());
    return out;
}

}  // namespace hr::server
