// Error handling for headroom: Result<T> for bad input or environment (recoverable, returned),
// HR_CHECK for broken internal invariants (always on, aborts), never assert() on data.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace hr {

// A failure that reaches the caller: the message states what was expected and what was found.
struct Error {
    std::string message;
};

inline Error make_error(std::string msg) { return Error{std::move(msg)}; }

template <class... Args>
Error errorf(fmt::format_string<Args...> f, Args&&... args) {
    return Error{fmt::format(f, std::forward<Args>(args)...)};
}

template <class T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
    Result(Error e) : v_(std::in_place_index<1>, std::move(e)) {}

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    const Error& error() const { return std::get<1>(v_); }
    Error take_error() { return std::get<1>(std::move(v_)); }

private:
    std::variant<T, Error> v_;
};

// Result<void> equivalent.
class [[nodiscard]] Status {
public:
    Status() = default;
    Status(Error e) : err_(std::move(e)) {}
    static Status ok_status() { return Status(); }
    bool ok() const { return !err_.has_value(); }
    explicit operator bool() const { return ok(); }
    const Error& error() const { return *err_; }
    Error take_error() { return std::move(*err_); }

private:
    std::optional<Error> err_;
};

inline Status ok() { return Status(); }

namespace detail {
[[noreturn]] void end_after_fatal();  // core/fatal_hooks.cpp: runs the fatal hooks once, then aborts
}

[[noreturn]] inline void fatal(const char* file, int line, const std::string& msg) {
    std::fprintf(stderr, "headroom: fatal: %s (%s:%d)\n", msg.c_str(), file, line);
    std::fflush(stderr);
    detail::end_after_fatal();
}

}  // namespace hr

// Propagate an error from a Status or Result expression.
#define HR_TRY(expr)                                   \
    do {                                               \
        auto&& hr_try_r_ = (expr);                     \
        if (!hr_try_r_.ok()) return hr_try_r_.take_error(); \
    } while (0)

#define HR_CONCAT_INNER(a, b) a##b
#define HR_CONCAT(a, b) HR_CONCAT_INNER(a, b)
// HR_ASSIGN(auto x, expr): declare x from a Result, or return its error.
#define HR_ASSIGN(decl, expr) HR_ASSIGN_IMPL(HR_CONCAT(hr_assign_r_, __LINE__), decl, expr)
#define HR_ASSIGN_IMPL(tmp, decl, expr) \
    auto tmp = (expr);                  \
    if (!tmp.ok()) return tmp.take_error(); \
    decl = std::move(tmp).value()

// Always-on invariant check: a failure here is a bug in headroom, not bad input.
#define HR_CHECK(cond)                                                     \
    do {                                                                   \
        if (!(cond)) ::hr::fatal(__FILE__, __LINE__, "check failed: " #cond); \
    } while (0)
#define HR_CHECK_MSG(cond, msg)                                            \
    do {                                                                   \
        if (!(cond)) ::hr::fatal(__FILE__, __LINE__, std::string("check failed: " #cond ": ") + (msg)); \
    } while (0)
