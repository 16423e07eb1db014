#include "pals/common/clock.hpp"

#include <thread>

namespace pals {

SystemClock::SystemClock() : m_epoch(std::chrono::steady_clock::now()) {}

Seconds SystemClock::now() const {
    return std::chrono::duration_cast<Seconds>(std::chrono::steady_clock::now() - m_epoch);
}

void SystemClock::sleep_until(Seconds t) {
    std::this_thread::sleep_until(m_epoch +
                                  std::chrono::duration_cast<std::chrono::nanoseconds>(t));
}

}  // namespace pals
