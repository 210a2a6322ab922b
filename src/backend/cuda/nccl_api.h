// NCCL, opened at run time (core/dynamic_library.h) instead of linked: libnccl.so.2 is 218 MB and only
// --tensor-parallel on several GPUs calls it, so a headroom binary must start (and serve on one GPU) on a
// machine without it. The few entry points the communicator uses are resolved once, at the first call.
//
// The types are declared here, not taken from nccl.h, so that a build machine without NCCL builds the same
// code: an opaque communicator and the C enums' values (ABI-stable since NCCL 2.0; an enum is an int).
// When nccl.h is present at build time (HEADROOM_HAVE_NCCL_H), nccl_api.cpp checks every value against it.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "core/status.h"

struct ncclComm;  // NCCL's opaque communicator (nccl.h: typedef struct ncclComm* ncclComm_t)

namespace hr::cuda::nccl {

using Comm = ncclComm*;

enum Code : int { kSuccess = 0, kInProgress = 7 };  // ncclResult_t: only the values we test
enum DataType : int { kFloat32 = 7 };                 // ncclDataType_t
enum RedOp : int { kSum = 0 };                        // ncclRedOp_t

// The soname opened by default; HEADROOM_NCCL_LIBRARY=/path/libnccl.so.2 opens that file instead (a
// bundle that carries its own copy).
inline constexpr const char* kLibraryName = "libnccl.so.2";
inline constexpr const char* kLibraryEnv = "HEADROOM_NCCL_LIBRARY";

struct Api {
    Code (*GetVersion)(int* version) = nullptr;
    Code (*CommInitAll)(Comm* comms, int ndev, const int* devlist) = nullptr;
    Code (*AllReduce)(const void* send, void* recv, size_t count, DataType type, RedOp op, Comm comm,
                        cudaStream_t stream) = nullptr;
    Code (*CommGetAsyncError)(Comm comm, Code* async_error) = nullptr;
    Code (*CommAbort)(Comm comm) = nullptr;
    Code (*CommDestroy)(Comm comm) = nullptr;
    const char* (*GetErrorString)(Code r) = nullptr;
    int version = 0;  // NCCL_VERSION_CODE of the library loaded (e.g. 22809 for 2.28.9)
};

// The loaded API, the same object for the life of the process. Errors (the same one every call): the
// library is not found or not loadable (its name and dlerror(), and how to point at it), or a symbol is
// missing (a library too old).
::hr::Result<const Api*> api();

}  // namespace hr::cuda::nccl
