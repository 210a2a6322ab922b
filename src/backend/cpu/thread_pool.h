// The CPU backend's worker threads: a small persistent pool whose workers spin only briefly after each
// job, then sleep on a condition variable, so that idle threads never burn a core (OpenMP's default
// active wait makes a 2-core machine shared with other work stall for whole scheduler time slices).
//   parallel_for(n, fn): fn(begin, end) on contiguous slices of [0, n), one per thread (the caller
//   runs one); returns when all are done. Nested calls from inside fn run serially on the caller.
// Threads: HEADROOM_THREADS, else OMP_NUM_THREADS, else the CPUs this process may run on.
// Spin before sleeping: HEADROOM_SPIN_US microseconds (default 50; 0 = sleep at once).
#pragma once

#include <cstdint>
#include <functional>

namespace hr::cpu {

int pool_threads();

// Runs fn(begin, end) over [0, n) split into pool_threads() (or fewer when n is small) contiguous slices.
void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

// parallel_for over items handed out one by one (uneven work, e.g. causal attention chunks).
void parallel_for_dynamic(int64_t n, const std::function<void(int64_t)>& fn);

}  // namespace hr::cpu
