// Non-owning views over backend memory: Tensor (activations, caches, small vectors) and
// Weight (a [rows, cols] matrix in a storage format, possibly quantized, with its scales).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "dtype.h"
#include "status.h"

namespace hr {

// Row-major, contiguous, up to 4 dims. `data` is a host pointer on the CPU backend and a device
// pointer on the CUDA backend; nothing here dereferences it.
struct Tensor {
    DType dtype = DType::f32;
    int ndim = 0;
    std::array<int64_t, 4> shape{0, 0, 0, 0};
    void* data = nullptr;

    static Tensor make(DType dt, void* data, std::initializer_list<int64_t> dims) {
        Tensor t;
        t.dtype = dt;
        t.data = data;
        HR_CHECK(dims.size() <= 4);
        for (int64_t d : dims) t.shape[t.ndim++] = d;
        return t;
    }
    int64_t numel() const {
        int64_t n = 1;
        for (int i = 0; i < ndim; ++i) n *= shape[i];
        return n;
    }
    size_t bytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
    int64_t dim(int i) const { return shape[i]; }
    // Rows = product of all dims but the last; cols = the last dim.
    int64_t rows() const { return ndim == 0 ? 1 : numel() / shape[ndim - 1]; }
    int64_t cols() const { return ndim == 0 ? 1 : shape[ndim - 1]; }
    template <class T>
    T* as() const { return static_cast<T*>(data); }
    // The first n rows (along dim 0) of this tensor; shares memory.
    Tensor first_rows(int64_t n) const {
        Tensor t = *this;
        t.shape[0] = n;
        return t;
    }
    Tensor reshaped(std::initializer_list<int64_t> dims) const {
        Tensor t = make(dtype, data, dims);
        HR_CHECK(t.numel() == numel());
        return t;
    }
};

// A weight matrix W [rows = out features, cols = in features]; y = x W^T.
// note: layout of q8 / q4 data and scales is specified in quant/formats.h and docs/formats.md.
//   f32/f16/bf16: data [rows, cols]; scales null.
//   q8: data int8 [rows, cols]; scales f32 [rows].
//   q4: data u8 [rows, ceil(cols/2)] (two values a byte); scales f16 [rows, ceil(cols/128)].
// A vector (a norm weight) is a Weight with rows = 1.
struct Weight {
    DType dtype = DType::f32;
    int64_t rows = 0;
    int64_t cols = 0;
    const void* data = nullptr;
    const void* scales = nullptr;
    // Placement: true when data and scales live in pinned host memory (--offload-experts). The pointers
    // are then host pointers that the CUDA backend's kernels may also read (mapped memory, one address
    // for host and device under UVA); a backend may stream such a weight to the device before using it.
    bool host = false;
};

}  // namespace hr
