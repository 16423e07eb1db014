#pragma once
/// @file status.hpp
/// @brief Status and Result<T>: how every expected failure in PALS is returned (STYLE.md 3.5).
///
/// Thread-safety: value types; safe to copy between threads.

#include <cassert>
#include <exception>
#include <string>
#include <utility>
#include <variant>

namespace pals {

/// What kind of failure a Status carries. The CLI maps each to an exit code (exit_code_for()).
enum class StatusCode {
    kOk,
    kInvalidArgument,   ///< bad input: a flag, a file, a field, an HTTP body
    kNotFound,          ///< a named thing (file, GPU, model) does not exist
    kOutOfRange,        ///< a value outside the allowed range
    kUnavailable,       ///< a backend is absent or not answering (e.g. no NVML)
    kPermissionDenied,  ///< the caller may not do this (e.g. set a power limit without root)
    kInternal,          ///< a bug or an unexpected failure
};

/// The outcome of an operation: ok, or a code and a message a person can act on.
class [[nodiscard]] Status {
public:
    Status() = default;
    Status(StatusCode code, std::string message) : m_code(code), m_message(std::move(message)) {}

    static Status ok() { return {}; }
    static Status invalid_argument(std::string m) {
        return {StatusCode::kInvalidArgument, std::move(m)};
    }
    static Status not_found(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
    static Status out_of_range(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
    static Status unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
    static Status permission_denied(std::string m) {
        return {StatusCode::kPermissionDenied, std::move(m)};
    }
    static Status internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

    [[nodiscard]] bool is_ok() const { return m_code == StatusCode::kOk; }
    [[nodiscard]] StatusCode code() const { return m_code; }
    [[nodiscard]] const std::string& message() const { return m_message; }

    /// Returns a copy whose message is "prefix: message" (for adding file or field context).
    [[nodiscard]] Status with_prefix(const std::string& prefix) const {
        return {m_code, prefix + ": " + m_message};
    }

private:
    StatusCode m_code = StatusCode::kOk;
    std::string m_message;
};

/// A value or the Status that explains why there is none. C++20 has no std::expected.
template <class T>
class [[nodiscard]] Result {
public:
    Result(T value) : m_data(std::move(value)) {}        // NOLINT(google-explicit-constructor)
    Result(Status status) : m_data(std::move(status)) {  // NOLINT(google-explicit-constructor)
        assert(!std::get<Status>(m_data).is_ok() && "a Result needs a value or an error");
    }

    [[nodiscard]] bool is_ok() const { return std::holds_alternative<T>(m_data); }
    [[nodiscard]] const Status& status() const {
        static const Status kOk;
        return is_ok() ? kOk : std::get<Status>(m_data);
    }
    [[nodiscard]] T& value() & { return std::get<T>(m_data); }
    [[nodiscard]] const T& value() const& { return std::get<T>(m_data); }
    [[nodiscard]] T&& value() && { return std::get<T>(std::move(m_data)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

    /// This Result with its error, if any, prefixed "prefix: " (file or field context), for
    /// `PALS_ASSIGN_OR_RETURN(auto gpu, find_gpu_spec(name).with_prefix("--gpu"));`.
    [[nodiscard]] Result with_prefix(const std::string& prefix) && {
        if (is_ok()) {
            return std::move(*this);
        }
        return std::get<Status>(m_data).with_prefix(prefix);
    }

private:
    std::variant<T, Status> m_data;
};

/// Returns `status` from the enclosing function when it is an error.
#define PALS_RETURN_IF_ERROR(expr)            \
    do {                                      \
        ::pals::Status _pals_status = (expr); \
        if (!_pals_status.is_ok()) {          \
            return _pals_status;              \
        }                                     \
    } while (false)

#define PALS_STATUS_CONCAT_INNER_(a, b) a##b
#define PALS_STATUS_CONCAT_(a, b) PALS_STATUS_CONCAT_INNER_(a, b)

/// Evaluates `expr`, a Result<T>. When it holds an error, returns its Status from the enclosing
/// function (which returns Status or any Result<U>); else moves the value into `lhs`: a
/// declaration (`auto model`, `const Config config`) or an existing variable.
///
///     PALS_ASSIGN_OR_RETURN(auto spec, ModelSpec::load(path));
#define PALS_ASSIGN_OR_RETURN(lhs, ...) \
    PALS_ASSIGN_OR_RETURN_IMPL_(PALS_STATUS_CONCAT_(_pals_result_, __LINE__), lhs, __VA_ARGS__)
#define PALS_ASSIGN_OR_RETURN_IMPL_(result, lhs, ...) \
    auto result = (__VA_ARGS__);                      \
    if (!result.is_ok()) {                            \
        return result.status();                       \
    }                                                 \
    lhs = std::move(result).value()

/// The process exit code the CLI uses for a failed Status: 2 bad input, 3 backend unavailable,
/// 4 permission denied, 1 anything else.
[[nodiscard]] int exit_code_for(const Status& status);

/// What an exception says: e.what() for a std::exception, "internal error" otherwise. For the
/// last-resort handlers that must not let an exception escape (HTTP handlers).
[[nodiscard]] inline std::string exception_message(const std::exception_ptr& ep) {
    try {
        std::rethrow_exception(ep);
    } catch (const std::exception& e) {
        return e.what();
    } catch (...) {
        return "internal error";
    }
}

}  // namespace pals
