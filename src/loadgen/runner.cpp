/// @file runner.cpp
/// @brief The arrival processes and run_load: every request sent at its arrival time, each on
/// a worker thread of a pool that grows to the number in flight.

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <exception>
#include <limits>
#include <mutex>
#include <numeric>
#include <random>
#include <system_error>
#include <thread>

#include "pals/common/log.hpp"
#include "pals/loadgen/loadgen.hpp"

namespace pals::loadgen {

namespace {

/// Mixed into the workload seed so arrival gaps and lengths come from different streams.
constexpr std::uint64_t kArrivalSeedSalt = 0xA5A5'5A5A'C3C3'3C3CULL;

/// Threads that wait for tasks; a new thread starts whenever a task finds none idle, so the
/// pool grows to the largest number of tasks running at once and no further.
/// Thread-safety: submit() and shutdown() may be called from any thread.
class WorkerPool {
public:
    WorkerPool() = default;
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;
    ~WorkerPool() { shutdown(); }

    /// Queues `task`; throws std::system_error if a needed thread cannot be started.
    void submit(std::function<void()> task) {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_tasks.push_back(std::move(task));
        if (m_idle < m_tasks.size()) {
            try {
                m_threads.emplace_back([this] { work(); });
            } catch (...) {
                m_tasks.pop_back();
                throw;
            }
        } else {
            m_cv.notify_one();
        }
    }

    /// Runs the queued tasks to the end, then joins every thread.
    void shutdown() {
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            m_stop = true;
        }
        m_cv.notify_all();
        for (std::thread& t : m_threads) {
            t.join();
        }
        m_threads.clear();
    }

private:
    void work() {
        std::unique_lock<std::mutex> lock(m_mutex);
        while (true) {
            ++m_idle;
            m_cv.wait(lock, [this] { return m_stop || !m_tasks.empty(); });
            --m_idle;
            if (m_tasks.empty()) {
                return;  // stopping and nothing left
            }
            std::function<void()> task = std::move(m_tasks.front());
            m_tasks.pop_front();
            lock.unlock();
            task();
            lock.lock();
        }
    }

    std::mutex m_mutex;
    std::condition_variable m_cv;
    std::deque<std::function<void()>> m_tasks;
    std::vector<std::thread> m_threads;
    std::size_t m_idle = 0;
    bool m_stop = false;
};

}  // namespace

std::vector<double> vllm_arrival_times(std::size_t n, double rate_rps, double burstiness,
                                       std::uint64_t seed) {
    std::vector<double> times(n, 0.0);
    if (n == 0 || !(rate_rps > 0.0) || !std::isfinite(rate_rps) || !(burstiness > 0.0)) {
        return times;
    }
    std::mt19937_64 rng(seed);
    std::gamma_distribution<double> gap(burstiness, 1.0 / (rate_rps * burstiness));
    double t = 0.0;
    for (double& time : times) {
        t += gap(rng);
        time = t;
    }
    // vLLM: "re-scale delay time to ensure the final delay_ts align with target_total_delay_s"
    // (the raw sum misses N / rate by 1-2 %, which would move throughput between seeds).
    if (times.back() != 0.0) {
        const double factor = (static_cast<double>(n) / rate_rps) / times.back();
        for (double& time : times) {
            time *= factor;
        }
    }
    return times;
}

Result<std::vector<workload::Request>> build_load(workload::WorkloadSpec spec) {
    if (spec.kind == workload::WorkloadKind::kSynthetic && std::isinf(spec.rate_rps) &&
        spec.rate_rps > 0.0) {
        if (spec.num_requests <= 0) {
            return Status::invalid_argument(
                "an infinite rate (--rate inf, a closed batch) needs --num-requests N");
        }
        spec.kind = workload::WorkloadKind::kClosedLoop;
    }
    Result<std::vector<workload::Request>> requests = workload::build_workload(spec);
    if (!requests.is_ok() || spec.kind != workload::WorkloadKind::kSynthetic) {
        return requests;
    }
    const double rate = spec.rate_rps * spec.rate_scale / spec.time_scale;
    const std::vector<double> times =
        vllm_arrival_times(requests->size(), rate, spec.burstiness, spec.seed ^ kArrivalSeedSalt);
    for (std::size_t i = 0; i < times.size(); ++i) {
        requests.value()[i].arrival_s = times[i];
    }
    return requests;
}

namespace {
/// How often a sender waiting for a free slot looks at the stop flag.
constexpr std::chrono::milliseconds kStopPollPeriod{100};
}  // namespace

Result<RunResult> run_load(const RequestSender& sender,
                           const std::vector<workload::Request>& requests,
                           const RunOptions& options, Clock& clock) {
    if (options.max_concurrency && *options.max_concurrency < 1) {
        return Status::invalid_argument(
            fmt::format("max concurrency must be >= 1 (got {})", *options.max_concurrency));
    }
    const std::size_t limit =
        static_cast<std::size_t>(options.max_concurrency.value_or(kMaxInFlight));
    std::vector<std::size_t> order(requests.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(), [&requests](std::size_t a, std::size_t b) {
        return requests[a].arrival_s < requests[b].arrival_s;
    });

    RunResult result;
    result.outcomes.resize(requests.size());
    std::mutex mutex;
    std::condition_variable slot_freed;
    std::size_t in_flight = 0;
    std::size_t finished = 0;
    bool warned_limit = false;
    const std::size_t total = requests.size();

    const Seconds start = clock.now();
    {
        WorkerPool pool;
        auto stopped = [&options] { return options.stop != nullptr && options.stop->load(); };
        for (std::size_t position = 0; position < order.size(); ++position) {
            const std::size_t index = order[position];
            const workload::Request& request = requests[index];
            clock.sleep_until(start + Seconds(std::max(0.0, request.arrival_s)));
            bool send = !stopped();
            if (send) {
                std::unique_lock<std::mutex> lock(mutex);
                if (in_flight >= limit && !options.max_concurrency && !warned_limit) {
                    warned_limit = true;
                    PALS_LOG_WARN("loadgen: {} requests in flight; later ones wait for a slot",
                                  kMaxInFlight);
                }
                while (in_flight >= limit && !stopped()) {
                    slot_freed.wait_for(lock, kStopPollPeriod);
                }
                send = !stopped();
                in_flight += send ? 1U : 0U;
            }
            if (!send) {
                for (std::size_t rest = position; rest < order.size(); ++rest) {
                    RequestOutcome& skipped = result.outcomes[order[rest]];
                    skipped.id = requests[order[rest]].id;
                    skipped.arrival_s = requests[order[rest]].arrival_s;
                    skipped.error = "not sent";
                }
                break;
            }
            auto task = [&, index] {
                RequestOutcome outcome = sender.send(requests[index], clock);
                outcome.send_s -= start.count();
                std::lock_guard<std::mutex> lock(mutex);
                result.outcomes[index] = std::move(outcome);
                --in_flight;
                ++finished;
                if (options.on_progress) {
                    options.on_progress(finished, total);
                }
                slot_freed.notify_all();
            };
            try {
                pool.submit(std::move(task));
            } catch (const std::system_error& e) {
                RequestOutcome& failed = result.outcomes[index];
                failed.id = request.id;
                failed.arrival_s = request.arrival_s;
                failed.send_s = (clock.now() - start).count();
                failed.requested_input_tokens = request.input_tokens;
                failed.requested_output_tokens = request.output_tokens;
                failed.input_tokens = request.input_tokens;
                failed.error = fmt::format("could not start a sender thread: {}", e.what());
                std::lock_guard<std::mutex> lock(mutex);
                --in_flight;
                ++finished;
            }
        }
        pool.shutdown();  // waits for every request in flight
    }
    result.duration_s = (clock.now() - start).count();
    return result;
}

}  // namespace pals::loadgen
