// Named tolerances of the CUDA-vs-CPU parity tests, each with the reason for its size. All are bounds
// on the relative L2 error ||gpu - cpu|| / ||cpu|| unless the name says otherwise.
#pragma once

namespace hr::test {

// Conversions and copies (embedding rows, gather, dequantization of one element): both sides compute
// the same f32 products; the bound only absorbs a last-bit difference.
constexpr double kTolExact = 1e-7;
// Element-wise f32 math (silu, add): expf differs by at most a couple of ulp between CUDA and glibc.
constexpr double kTolElementwise = 1e-6;
// f32 reductions summed in another order (RMSNorm, softmax, GEMV over a few thousand products):
// ~sqrt(n) * 2^-24 relative for random data, far under this.
constexpr double kTolReduce = 1e-5;
// Rotary embedding: same f32 angles; cos/sin within an ulp of each other.
constexpr double kTolRope = 1e-5;
// Attention: f32 online softmax with the fast __expf (2 ulp) and a different summation order.
constexpr double kTolAttention = 1e-4;
// Attention on the tensor cores: Q and the softmax weights P rounded to the cache dtype (f16: 2^-11,
// bf16: 2^-8 relative per element) before the products; the same size as a bf16 GEMM's.
constexpr double kTolAttentionTensorCore = 1e-2;
// int4 GEMVs (decode, 2-8 token batches, grouped MoE) multiply the nibbles by int8 activations (dp4a):
// each chunk of 32 activations is rounded to d * q, d = max|x| / 127, an error of at most d / 2 per
// element, about 0.6% relative L2 for normal data (uniform error d / sqrt(12), d ~ 2.5 sigma / 127).
constexpr double kTolInt8Activations = 1.5e-2;
// Two such GEMVs in a row with silu between them (MoE decode: w1/w3 then w2).
constexpr double kTolInt8ActivationsChain = 3e-2;
// int4 / int8 GEMVs on the tensor cores (gemv_tc.cu): the activations rounded to f16 (at most 2^-11
// relative per element, ~2.8e-4 rms), the weights exact in f16, f32 accumulation; a dot product of
// random data lands near 3e-4 relative L2.
constexpr double kTolF16Activations = 2e-3;
// Two such GEMVs in a row with silu between them (the fused MoE decode kernels).
constexpr double kTolF16ActivationsChain = 4e-3;
// The quantized tensor-core GEMM of prefill (qgemm.cu): activations rounded to f16 (2^-11 relative),
// int8 weights exact in f16, int4 weights rounded once to f16 as q * scale (2^-11 relative), f32
// accumulation: a few 1e-4 relative L2 per product, the GEMV bound's size.
constexpr double kTolF16Gemm = 2e-3;
// MoE prefill on it: w1/w3, silu * up rounded to f16, w2, weighted sum.
constexpr double kTolF16GemmChain = 4e-3;
// A chain of f32 GEMVs (MoE decode: w1/w3, silu, w2, weighted sum): three reductions compound.
constexpr double kTolChain = 1e-4;
// Tensor-core GEMM: activations rounded to bf16 (relative 2^-9 per element; dequantized int8/int4
// weights also rounded to bf16), so a dot product's relative error is a few 1e-3. METHOD.md: bf16
// operands land between 1e-3 and 1e-2.
constexpr double kTolBf16Gemm = 1e-2;
// Two bf16 GEMMs in a row (MoE prefill: w1/w3 then w2).
constexpr double kTolBf16Chain = 2e-2;
// End to end, prefill through the tensor cores: logits max-abs error over the row's max |logit|.
constexpr double kTolLogitsBf16RelMax = 3e-2;

// End to end, int8 / int4 decode GEMVs on the tensor cores (f16 activations, 2^-11 relative rounding,
// 8x finer than bf16's 2^-8): logits max-abs error over the row's max |logit|, a third of the bf16 bound.
constexpr double kTolLogitsF16RelMax = 1e-2;

// End to end with int4 weights on a model of many experts (the 8-expert Qwen3-MoE fixtures): measured on
// an H100 at 39460b4, the worst row reached 0.071 on the bf16 tensor-core path as well as on the GEMV path
// (the same row, both paths): one top-k expert choice flips between the CPU (f32 activations) and the GPU
// (bf16/int8 activations). A flip changes the row by the two experts' difference, not by a rounding error.
constexpr double kTolLogitsInt4ManyExpertsRelMax = 0.1;

}  // namespace hr::test
