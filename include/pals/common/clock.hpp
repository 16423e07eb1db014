#pragma once
/// @file clock.hpp
/// @brief Injected time source (RocksDB's SystemClock / MockSystemClock idea, STYLE.md 3.7).

#include <chrono>

namespace pals {

/// Seconds as a double: the one time unit at PALS interfaces.
using Seconds = std::chrono::duration<double>;

/// A source of monotonic time that can also wait. Implementations: SystemClock (real time),
/// ManualClock (tests: sleeping advances virtual time), and the simulator's event clock.
/// Thread-safety: SystemClock is thread-safe; ManualClock is not.
class Clock {
public:
    virtual ~Clock() = default;
    /// Monotonic time since an arbitrary epoch fixed for this clock's lifetime.
    [[nodiscard]] virtual Seconds now() const = 0;
    /// Blocks (or advances virtual time) until now() >= t.
    virtual void sleep_until(Seconds t) = 0;
};

/// Real monotonic time (std::chrono::steady_clock).
class SystemClock final : public Clock {
public:
    SystemClock();
    [[nodiscard]] Seconds now() const override;
    void sleep_until(Seconds t) override;

private:
    std::chrono::steady_clock::time_point m_epoch;
};

/// Virtual time for tests: now() returns what was set; sleep_until() jumps forward.
class ManualClock final : public Clock {
public:
    explicit ManualClock(Seconds start = Seconds{0.0}) : m_now(start) {}
    [[nodiscard]] Seconds now() const override { return m_now; }
    void sleep_until(Seconds t) override {
        if (t > m_now) {
            m_now = t;
        }
    }
    void advance(Seconds dt) { m_now += dt; }

private:
    Seconds m_now;
};

}  // namespace pals
