// Reader threads over row chunks, filling the uploader's slots (see load_pipeline.h).
#include "loader/load_pipeline.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "core/mapped_file.h"

namespace hr {

namespace {

struct Job {
    size_t tensor;
    int64_t row0, n_rows;
    bool whole;  // the whole tensor in one fill() (not splittable)
};

uint64_t align256(uint64_t n) { return (n + 255) / 256 * 256; }

// A whole tensor that does not fit one slot: filled into a heap buffer (one tensor, never the model),
// then sent through slots piece by piece.
void send_in_pieces(Uploader& up, uint8_t* dst, const uint8_t* src, uint64_t n) {
    const uint64_t piece = up.slot_bytes();
    for (uint64_t off = 0; off < n; off += piece) {
        const uint64_t len = std::min(piece, n - off);
        UploadSlot s = up.acquire(dst + off, len, nullptr, 0);
        std::memcpy(s.p0, src + off, len);
        up.commit(s);
    }
}

}  // namespace

int load_threads(int requested) {
    if (requested > 0) return requested;
    const int hw = static_cast<int>(std::thread::hardware_concurrency());
    return std::clamp(hw, 1, kMaxLoadThreads);
}

Status run_load_pipeline(Uploader& up, std::span<const PipelineTensor> tensors, const FillRows& fill,
                         const PipelineOptions& opts) {
    // Chunks of about one slot (in place: the same size, so that a large tensor is shared by threads).
    const uint64_t slot = up.slot_bytes();
    const uint64_t target = slot ? slot : opts.chunk_bytes ? opts.chunk_bytes : kLoadSlotBytes;
    std::vector<Job> jobs;
    for (size_t i = 0; i < tensors.size(); ++i) {
        const PipelineTensor& t = tensors[i];
        const uint64_t row = t.q8_src ? t.q8_src_row_bytes : t.data_row_bytes + t.scale_row_bytes;
        if (!t.splittable || row == 0 || row + 256 > target) {
            jobs.push_back({i, 0, t.rows, true});
            continue;
        }
        const auto per = static_cast<int64_t>((target - 256) / row);
        for (int64_t r = 0; r < t.rows; r += per) jobs.push_back({i, r, std::min(per, t.rows - r), false});
    }
    // Largest first would balance threads better, but file order keeps the reads sequential on disk.
    const int n_threads = std::min<int>(load_threads(opts.threads), static_cast<int>(std::max<size_t>(jobs.size(), 1)));
    // The injected delay is wall time: each thread sleeps its share of it.
    const double delay_per_job =
        jobs.empty() ? 0.0 : opts.injected_delay_s * n_threads / static_cast<double>(jobs.size());

    std::atomic<size_t> next{0};
    std::atomic<bool> stop{false};
    std::mutex mu;
    std::condition_variable cv;
    int finished = 0;
    Status first = ok();

    auto run_job = [&](const Job& j, std::vector<uint8_t>& heap) -> Status {
        const PipelineTensor& t = tensors[j.tensor];
        const uint64_t nd = static_cast<uint64_t>(j.n_rows) * t.data_row_bytes;
        const uint64_t ns = static_cast<uint64_t>(j.n_rows) * t.scale_row_bytes;
        uint8_t* dd = t.data + static_cast<uint64_t>(j.row0) * t.data_row_bytes;
        uint8_t* ds = t.scales ? t.scales + static_cast<uint64_t>(j.row0) * t.scale_row_bytes : nullptr;
        if (t.q8_src) {  // the source rows as they are; the uploader quantizes them on the device
            const uint64_t n = static_cast<uint64_t>(j.n_rows) * t.q8_src_row_bytes;
            const uint8_t* src = t.q8_src + static_cast<uint64_t>(j.row0) * t.q8_src_row_bytes;
            UploadSlot s = up.acquire(dd, n, nullptr, 0);
            advise_willneed(src, n);
            std::memcpy(s.p0, src, n);
            up.commit_q8(s, t.q8_src_dtype, j.n_rows, t.cols, dd, ds);
            return ok();
        }
        if (slot == 0 || align256(nd) + ns <= slot) {
            UploadSlot s = up.acquire(dd, nd, ds, ns);
            Status st = fill(j.tensor, j.row0, j.n_rows, s.p0, s.p1);
            up.commit(s);  // even after an error: the slot must come back (its bytes no longer matter)
            return st;
        }
        if (heap.size() < nd + ns) {
            if (opts.memory) opts.memory->add(nd + ns - heap.size());
            heap.resize(nd + ns);
        }
        HR_TRY(fill(j.tensor, j.row0, j.n_rows, heap.data(), ns ? heap.data() + nd : nullptr));
        send_in_pieces(up, dd, heap.data(), nd);
        if (ns) send_in_pieces(up, ds, heap.data() + nd, ns);
        return ok();
    };

    auto worker = [&] {
        std::vector<uint8_t> heap;
        while (!stop.load(std::memory_order_relaxed)) {
            const size_t k = next.fetch_add(1);
            if (k >= jobs.size()) break;
            const Job& j = jobs[k];
            if (delay_per_job > 0) std::this_thread::sleep_for(std::chrono::duration<double>(delay_per_job));
            Status st = run_job(j, heap);
            if (!st.ok()) {
                std::lock_guard lock(mu);
                if (first.ok()) first = std::move(st);
                stop.store(true);
                break;
            }
            if (opts.progress) {
                const PipelineTensor& t = tensors[j.tensor];
                opts.progress->add(static_cast<uint64_t>(j.n_rows) * (t.data_row_bytes + t.scale_row_bytes));
            }
        }
        if (opts.memory) opts.memory->sub(heap.size());
        std::lock_guard lock(mu);
        ++finished;
        cv.notify_all();
    };

    std::vector<std::thread> pool;
    pool.reserve(static_cast<size_t>(n_threads));
    for (int i = 0; i < n_threads; ++i) pool.emplace_back(worker);
    {
        std::unique_lock lock(mu);
        while (finished < n_threads) {
            cv.wait_for(lock, std::chrono::milliseconds(100));
            if (opts.on_wait) {
                lock.unlock();
                opts.on_wait();
                lock.lock();
            }
        }
    }
    for (std::thread& th : pool) th.join();
    up.finish();
    return first;
}

}  // namespace hr
