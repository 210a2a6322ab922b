// Loading NCCL at run time (see nccl_api.h): once per process, the outcome (the API or the error) kept.
#include "backend/cuda/nccl_api.h"

#include <cstdlib>
#include <type_traits>
#include <mutex>
#include <optional>

#include "core/dynamic_library.h"

#ifdef HEADROOM_HAVE_NCCL_H
#include <nccl.h>
// Our declarations against the real header, where the build machine has one.
static_assert(sizeof(ncclResult_t) == sizeof(hr::cuda::nccl::Code));
static_assert(sizeof(ncclDataType_t) == sizeof(hr::cuda::nccl::DataType));
static_assert(sizeof(ncclRedOp_t) == sizeof(hr::cuda::nccl::RedOp));
static_assert(static_cast<int>(ncclSuccess) == hr::cuda::nccl::kSuccess);
static_assert(static_cast<int>(ncclInProgress) == hr::cuda::nccl::kInProgress);
static_assert(static_cast<int>(ncclFloat32) == hr::cuda::nccl::kFloat32);
static_assert(static_cast<int>(ncclSum) == hr::cuda::nccl::kSum);
static_assert(std::is_same_v<ncclComm_t, hr::cuda::nccl::Comm>);
#endif

namespace hr::cuda::nccl {

namespace {

struct Loaded {
    DynamicLibrary lib;  // kept open for the life of the process
    Api api;
};

::hr::Result<Loaded> load() {
    const char* env = std::getenv(kLibraryEnv);
    const std::string name = env && *env ? std::string(env) : std::string(kLibraryName);
    auto lib = DynamicLibrary::open(name);
    if (!lib.ok())
        return errorf("NCCL is needed for --tensor-parallel on GPUs and was not loaded: {}. Install NCCL 2 "
                      "(libnccl2), put its folder on LD_LIBRARY_PATH, or set {}=/path/to/libnccl.so.2",
                      lib.error().message, kLibraryEnv);
    Loaded l{std::move(lib).value(), Api{}};
    Api& a = l.api;
    HR_TRY(resolve(l.lib, "ncclGetVersion", a.GetVersion));
    HR_TRY(resolve(l.lib, "ncclCommInitAll", a.CommInitAll));
    HR_TRY(resolve(l.lib, "ncclAllReduce", a.AllReduce));
    HR_TRY(resolve(l.lib, "ncclCommGetAsyncError", a.CommGetAsyncError));
    HR_TRY(resolve(l.lib, "ncclCommAbort", a.CommAbort));
    HR_TRY(resolve(l.lib, "ncclCommDestroy", a.CommDestroy));
    HR_TRY(resolve(l.lib, "ncclGetErrorString", a.GetErrorString));
    if (a.GetVersion(&a.version) != kSuccess) return errorf("{}: ncclGetVersion failed", name);
    // ncclCommGetAsyncError and ncclCommAbort (the bounded wait) came with NCCL 2.4 (version code 2400).
    if (a.version < 2400)
        return errorf("{} is NCCL version code {}; headroom needs 2.4 or newer (2400)", name, a.version);
    return l;
}

}  // namespace

::hr::Result<const Api*> api() {
    static std::once_flag once;
    static std::optional<::hr::Result<Loaded>> loaded;
    std::call_once(once, [] { loaded.emplace(load()); });
    if (!loaded->ok()) return loaded->error();
    return &loaded->value().api;
}

}  // namespace hr::cuda::nccl
