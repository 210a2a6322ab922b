// A shared library opened at run time (dlopen) instead of linked: for optional dependencies that only
// some runs need (NCCL, 218 MB, is needed only by --tensor-parallel on several GPUs), so that every other
// run works on a machine without them. Errors name the library (or symbol) and the loader's dlerror().
#pragma once

#include <string>

#include "core/status.h"

namespace hr {

class DynamicLibrary {
public:
    // dlopen(name, RTLD_NOW | RTLD_LOCAL): a bare soname is searched the usual way (LD_LIBRARY_PATH,
    // the ld.so cache), a name with a '/' is that file. Errors: not found or not loadable.
    static Result<DynamicLibrary> open(const std::string& name);

    DynamicLibrary() = default;
    ~DynamicLibrary();
    DynamicLibrary(DynamicLibrary&& o) noexcept : handle_(o.handle_), name_(std::move(o.name_)) { o.handle_ = nullptr; }
    DynamicLibrary& operator=(DynamicLibrary&& o) noexcept;
    DynamicLibrary(const DynamicLibrary&) = delete;
    DynamicLibrary& operator=(const DynamicLibrary&) = delete;

    // The address of `symbol`. Error: the library does not export it (an older version, another library).
    Result<void*> symbol(const char* symbol) const;
    const std::string& name() const { return name_; }

private:
    void* handle_ = nullptr;
    std::string name_;
};

// Resolves `symbol` into the function pointer `fn` (its type says the signature; the caller declares it to
// match the library's header).
template <class Fn>
Status resolve(const DynamicLibrary& lib, const char* symbol, Fn*& fn) {
    HR_ASSIGN(void* p, lib.symbol(symbol));
    fn = reinterpret_cast<Fn*>(p);
    return ok();
}

}  // namespace hr
