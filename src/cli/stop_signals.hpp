#pragma once
/// @file stop_signals.hpp
/// @brief SIGINT/SIGTERM handling for the long-running commands (power set --hold, power watch,
/// sim-serve, run): installed by the constructor, the previous handlers put back by the
/// destructor. The handler is async-signal-safe: it stores to a lock-free atomic flag and writes
/// one byte to a self-pipe, so waiters wake at once.
///
/// Thread-safety: one instance at a time (process-wide handlers); stop_requested() and flag()
/// may be read from any thread.

#include <array>
#include <atomic>
#include <csignal>

namespace pals::cli {

struct StopSignalOptions {
    bool reset_after_first = false;  ///< SA_RESETHAND: a second Ctrl-C kills at once
    bool ignore_sigpipe = false;     ///< a client that goes away must not kill a server
};

class StopSignals {
public:
    explicit StopSignals(StopSignalOptions options = {});
    ~StopSignals();
    StopSignals(const StopSignals&) = delete;
    StopSignals& operator=(const StopSignals&) = delete;

    [[nodiscard]] bool stop_requested() const;
    /// The flag the handler sets, for loops that poll it (control::Daemon::run).
    [[nodiscard]] const std::atomic<bool>& flag() const;
    /// Waits `seconds` (forever when negative). Returns true when a stop signal arrived.
    bool wait_for(double seconds);

private:
    std::array<int, 2> m_pipe{-1, -1};
    bool m_ignored_sigpipe = false;
    struct sigaction m_old_int {};
    struct sigaction m_old_term {};
    struct sigaction m_old_pipe {};
};

}  // namespace pals::cli
