// The CPU backend's thread pool (thread_pool.h): workers wait for a generation counter to move, spinning
// for a bounded time and then sleeping on a condition variable.
#include "backend/cpu/thread_pool.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HR_CPU_RELAX() _mm_pause()
#else
#define HR_CPU_RELAX() std::this_thread::yield()
#endif

namespace hr::cpu {

namespace {

int env_int(const char* name, int fallback) {
    const char* v = std::getenv(name);
    if (!v || !*v) return fallback;
    char* end = nullptr;
    const long x = std::strtol(v, &end, 10);
    return (end && *end == '\0' && x >= 0 && x <= 4096) ? static_cast<int>(x) : fallback;
}

int default_threads() {
    int t = env_int("HEADROOM_THREADS", 0);
    if (t <= 0) t = env_int("OMP_NUM_THREADS", 0);
    if (t <= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        t = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
    }
    if (t <= 0) t = static_cast<int>(std::thread::hardware_concurrency());
    return std::clamp(t, 1, 256);
}

class Pool {
public:
    explicit Pool(int n_threads) : n_(n_threads), spin_(std::chrono::microseconds(env_int("HEADROOM_SPIN_US", 50))) {
        for (int i = 1; i < n_; ++i) workers_.emplace_back([this, i] { worker(i); });
    }
    ~Pool() {
        {
            std::lock_guard<std::mutex> lk(mu_);
            stop_ = true;
            gen_.fetch_add(1, std::memory_order_release);
        }
        cv_.notify_all();
        for (auto& t : workers_) t.join();
    }

    int size() const { return n_; }

    // Runs job(thread_index) on every thread (the caller is index 0) and waits for all.
    void run(const std::function<void(int)>& job) {
        if (n_ == 1 || in_job_) {
            for (int i = 0; i < n_; ++i) job(i);
            return;
        }
        std::lock_guard<std::mutex> one(run_mu_);  // one job at a time (callers from several threads)
        job_ = &job;
        pending_.store(n_ - 1, std::memory_order_relaxed);
        {
            std::lock_guard<std::mutex> lk(mu_);
            gen_.fetch_add(1, std::memory_order_release);
        }
        if (sleepers_.load(std::memory_order_acquire) > 0) cv_.notify_all();
        in_job_ = true;
        job(0);
        in_job_ = false;
        // Wait for the workers: spin (they are usually done within microseconds), then sleep.
        const auto until = std::chrono::steady_clock::now() + spin_;
        while (pending_.load(std::memory_order_acquire) != 0) {
            if (std::chrono::steady_clock::now() > until) {
                std::unique_lock<std::mutex> lk(mu_);
                done_cv_.wait(lk, [&] { return pending_.load(std::memory_order_acquire) == 0; });
                break;
            }
            for (int k = 0; k < 16; ++k) HR_CPU_RELAX();
        }
        job_ = nullptr;
    }

private:
    void worker(int index) {
        uint64_t seen = 0;
        for (;;) {
            // Spin for the next generation for a bounded time, then sleep until it comes.
            const auto until = std::chrono::steady_clock::now() + spin_;
            uint64_t g = gen_.load(std::memory_order_acquire);
            while (g == seen && std::chrono::steady_clock::now() < until) {
                for (int k = 0; k < 16; ++k) HR_CPU_RELAX();
                g = gen_.load(std::memory_order_acquire);
            }
            if (g == seen) {
                std::unique_lock<std::mutex> lk(mu_);
                sleepers_.fetch_add(1, std::memory_order_acq_rel);
                cv_.wait(lk, [&] { return gen_.load(std::memory_order_acquire) != seen; });
                sleepers_.fetch_sub(1, std::memory_order_acq_rel);
                g = gen_.load(std::memory_order_acquire);
            }
            seen = g;
            if (stop_) return;
            in_job_ = true;
            (*job_)(index);
            in_job_ = false;
            if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
                std::lock_guard<std::mutex> lk(mu_);  // pairs with the caller's wait predicate
                done_cv_.notify_one();
            }
        }
    }

    const int n_;
    const std::chrono::microseconds spin_;
    std::vector<std::thread> workers_;
    std::mutex mu_, run_mu_;
    std::condition_variable cv_, done_cv_;
    std::atomic<uint64_t> gen_{0};
    std::atomic<int> pending_{0};
    std::atomic<int> sleepers_{0};
    const std::function<void(int)>* job_ = nullptr;
    bool stop_ = false;
    static thread_local bool in_job_;
};

thread_local bool Pool::in_job_ = false;

Pool& pool() {
    static Pool p(default_threads());
    return p;
}

}  // namespace

int pool_threads() { return pool().size(); }

void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 0) return;
    const int t = static_cast<int>(std::min<int64_t>(pool_threads(), n));
    if (t == 1) {
        fn(0, n);
        return;
    }
    pool().run([&](int i) {
        if (i >= t) return;
        const int64_t b = n * i / t, e = n * (i + 1) / t;
        if (b < e) fn(b, e);
    });
}

void parallel_for_dynamic(int64_t n, const std::function<void(int64_t)>& fn) {
    if (n <= 0) return;
    if (n == 1 || pool_threads() == 1) {
        for (int64_t i = 0; i < n; ++i) fn(i);
        return;
    }
    std::atomic<int64_t> next{0};
    pool().run([&](int) {
        for (int64_t i = next.fetch_add(1, std::memory_order_relaxed); i < n; i = next.fetch_add(1, std::memory_order_relaxed))
            fn(i);
    });
}

}  // namespace hr::cpu
