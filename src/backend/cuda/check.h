// Fatal checks for CUDA and cuBLAS calls: a CUDA error is never recovered from (GUIDE §2.6c). The
// message names the device, the function, file:line and the failing statement, then the process aborts.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace hr::cuda {

[[noreturn]] void cuda_fatal(cudaError_t err, const char* stmt, const char* func, const char* file, int line);
[[noreturn]] void cublas_fatal(cublasStatus_t st, const char* stmt, const char* func, const char* file, int line);

}  // namespace hr::cuda

#define HR_CUDA_CHECK(stmt)                                                               \
    do {                                                                                  \
        cudaError_t hr_cuda_err_ = (stmt);                                                \
        if (hr_cuda_err_ != cudaSuccess)                                                  \
            ::hr::cuda::cuda_fatal(hr_cuda_err_, #stmt, __func__, __FILE__, __LINE__);    \
    } while (0)

#define HR_CUBLAS_CHECK(stmt)                                                             \
    do {                                                                                  \
        cublasStatus_t hr_cublas_st_ = (stmt);                                            \
        if (hr_cublas_st_ != CUBLAS_STATUS_SUCCESS)                                       \
            ::hr::cuda::cublas_fatal(hr_cublas_st_, #stmt, __func__, __FILE__, __LINE__); \
    } while (0)

// After every kernel launch: catches bad launch configurations at once (asynchronous faults surface at
// the next checked call, which is fatal too).
#define HR_CUDA_LAUNCH_CHECK() HR_CUDA_CHECK(cudaGetLastError())
