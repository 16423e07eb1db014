#include "cli/stop_signals.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>

namespace pals::cli {

namespace {

constexpr double kMsPerS = 1000.0;

std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the signal handler needs a lock-free flag");
volatile std::sig_atomic_t g_wake_fd = -1;  ///< write end of the self-pipe, -1 when none

void on_stop_signal(int /*signal_number*/) {
    g_stop.store(true);
    const int fd = g_wake_fd;
    if (fd >= 0) {
        const int saved_errno = errno;
        const char byte = 1;
        const ssize_t written = ::write(fd, &byte, 1);  // a full pipe already wakes the reader
        (void)written;
        errno = saved_errno;
    }
}

}  // namespace

StopSignals::StopSignals(StopSignalOptions options) {
    g_stop.store(false);
    if (::pipe2(m_pipe.data(), O_CLOEXEC | O_NONBLOCK) == 0) {
        g_wake_fd = m_pipe[1];
    } else {
        m_pipe = {-1, -1};
    }
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = options.reset_after_first ? SA_RESETHAND : 0;  // no SA_RESTART: poll() wakes
    ::sigaction(SIGINT, &action, &m_old_int);
    ::sigaction(SIGTERM, &action, &m_old_term);
    if (options.ignore_sigpipe) {
        struct sigaction ignore {};
        ignore.sa_handler = SIG_IGN;
        sigemptyset(&ignore.sa_mask);
        ::sigaction(SIGPIPE, &ignore, &m_old_pipe);
        m_ignored_sigpipe = true;
    }
}

StopSignals::~StopSignals() {
    ::sigaction(SIGINT, &m_old_int, nullptr);
    ::sigaction(SIGTERM, &m_old_term, nullptr);
    if (m_ignored_sigpipe) {
        ::sigaction(SIGPIPE, &m_old_pipe, nullptr);
    }
    g_wake_fd = -1;
    for (const int fd : m_pipe) {
        if (fd >= 0) {
            ::close(fd);
        }
    }
}

bool StopSignals::stop_requested() const {
    return g_stop.load();
}

const std::atomic<bool>& StopSignals::flag() const {
    return g_stop;
}

bool StopSignals::wait_for(double seconds) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (!stop_requested()) {
        int timeout_ms = m_pipe[0] >= 0 ? -1 : 100;  // without a pipe: poll the flag
        if (seconds >= 0.0) {
            const double left_s =
                std::chrono::duration<double>(deadline - std::chrono::steady_clock::now()).count();
            if (left_s <= 0.0) {
                return false;
            }
            const int left_ms =
                static_cast<int>(std::min(std::ceil(left_s * kMsPerS), double{INT_MAX}));
            timeout_ms = timeout_ms < 0 ? left_ms : std::min(timeout_ms, left_ms);
        }
        pollfd pfd{m_pipe[0], POLLIN, 0};
        ::poll(&pfd, 1, timeout_ms);  // a signal, a wake byte or the timeout
    }
    return true;
}

}  // namespace pals::cli
