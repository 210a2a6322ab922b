// dlopen / dlsym with typed errors (see dynamic_library.h).
#include "core/dynamic_library.h"

#include <dlfcn.h>

namespace hr {

namespace {

std::string last_dlerror() {
    const char* e = dlerror();
    return e ? std::string(e) : std::string("no message from the dynamic loader");
}

}  // namespace

Result<DynamicLibrary> DynamicLibrary::open(const std::string& name) {
    if (name.empty()) return errorf("dlopen: expected a library name, found an empty one");
    dlerror();  // clear a stale message
    void* h = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) return errorf("cannot load {}: {}", name, last_dlerror());
    DynamicLibrary lib;
    lib.handle_ = h;
    lib.name_ = name;
    return lib;
}

DynamicLibrary::~DynamicLibrary() {
    if (handle_) dlclose(handle_);
}

DynamicLibrary& DynamicLibrary::operator=(DynamicLibrary&& o) noexcept {
    if (this != &o) {
        if (handle_) dlclose(handle_);
        handle_ = o.handle_;
        name_ = std::move(o.name_);
        o.handle_ = nullptr;
    }
    return *this;
}

Result<void*> DynamicLibrary::symbol(const char* symbol) const {
    if (!handle_) return errorf("dlsym {}: no library is open", symbol);
    dlerror();
    void* p = dlsym(handle_, symbol);
    // A symbol may legitimately be null; dlerror() tells a missing one apart.
    if (const char* e = dlerror()) return errorf("{} does not export {}: {}", name_, symbol, e);
    if (!p) return errorf("{} exports {} as a null address", name_, symbol);
    return p;
}

}  // namespace hr
