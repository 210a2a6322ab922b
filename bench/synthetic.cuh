// Device-side generators for the synthetic benchmark: random weights of the exact shapes written
// straight into GPU memory (no checkpoint), and the next-token update of a captured decode step.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace hr::bench {

// Uniform random values from a counter-based hash (deterministic per seed).
void fill_q8(cudaStream_t s, void* p, size_t n, uint64_t seed);                       // int8 in [-127, 127]
void fill_bytes(cudaStream_t s, void* p, size_t n, uint64_t seed);                    // any byte (int4 nibbles)
void fill_e4m3(cudaStream_t s, void* p, size_t n, uint64_t seed);                     // fp8 e4m3 codes, no NaN
void fill_f32(cudaStream_t s, void* p, size_t n, float lo, float hi, uint64_t seed);  // f32 in [lo, hi)
void fill_f16(cudaStream_t s, void* p, size_t n, float lo, float hi, uint64_t seed);  // f16 bits in [lo, hi)
void fill_bf16(cudaStream_t s, void* p, size_t n, float lo, float hi, uint64_t seed); // bf16 bits in [lo, hi)
// ids[0] = a hash of ids[0] modulo vocab: a new, unpredictable token each replay (varied experts).
void next_token(cudaStream_t s, int32_t* ids, int64_t vocab);
// Median time in ms of `reps` bf16 GEMMs m = n = k = size (f32 accumulate, bf16 out) on scratch buffers.
float bf16_gemm_ms(cudaStream_t s, cublasHandle_t h, void* a, void* b, void* c, int size, int reps);

}  // namespace hr::bench
