#include "pals/profile/live_session_factory.hpp"

#include <algorithm>

#include "pals/common/log.hpp"

namespace pals::profile {

namespace {
/// Requests per round of the closed loop; the load restarts a round when one runs out.
constexpr int kRequestsPerRound = 20000;
constexpr int kMinExtraInFlight = 16;
}  // namespace

Result<std::unique_ptr<LiveSessionFactory>> LiveSessionFactory::create(
    Clock& clock, power::GpuBackend& gpus, engine::ServingEngine& engine, ModelShape shape,
    LiveLoadConfig load, int max_batch_cap) {
    if (max_batch_cap < 1) {
        return Status::invalid_argument("the largest batch cap must be >= 1");
    }
    if (load.concurrency < 0) {
        return Status::invalid_argument("the load concurrency must be >= 0");
    }
    PALS_ASSIGN_OR_RETURN(loadgen::RequestSender sender,
                          loadgen::RequestSender::create(std::move(load.client)));
    const int concurrency = load.concurrency > 0
                                ? load.concurrency
                                : max_batch_cap + std::max(kMinExtraInFlight, max_batch_cap / 4);
    return std::unique_ptr<LiveSessionFactory>(new LiveSessionFactory(
        clock, gpus, engine, std::move(shape), std::move(sender), concurrency));
}

LiveSessionFactory::LiveSessionFactory(Clock& clock, power::GpuBackend& gpus,
                                       engine::ServingEngine& engine, ModelShape shape,
                                       loadgen::RequestSender sender, int concurrency)
    : m_clock(clock)
    , m_shared(clock, gpus, engine, std::move(shape), "live")
    , m_sender(std::move(sender))
    , m_concurrency(concurrency) {}

LiveSessionFactory::~LiveSessionFactory() {
    stop_load();
}

void LiveSessionFactory::stop_load() {
    m_stop.store(true);
    if (m_load.joinable()) {
        m_load.join();
    }
    m_running_mix.reset();
}

void LiveSessionFactory::start_load(const WorkloadMix& mix) {
    stop_load();
    m_stop.store(false);
    m_running_mix = mix.name;
    PALS_LOG_INFO("profile: closed-loop load '{}' with {} requests in flight", mix.name,
                  m_concurrency);
    m_load = std::thread([this, mix] {
        loadgen::RunOptions options;
        options.max_concurrency = m_concurrency;
        options.stop = &m_stop;
        std::uint64_t round = 0;
        while (!m_stop.load()) {
            WorkloadMix this_round = mix;
            this_round.seed = mix.seed + round++;
            const std::vector<workload::Request> requests =
                this_round.closed_loop_requests(kRequestsPerRound, m_concurrency);
            Result<loadgen::RunResult> result =
                loadgen::run_load(m_sender, requests, options, m_clock);
            if (!result.is_ok()) {
                PALS_LOG_ERROR("profile: load stopped: {}", result.status().message());
                return;
            }
            const auto failed = std::count_if(result->outcomes.begin(), result->outcomes.end(),
                                              [](const loadgen::RequestOutcome& o) {
                                                  return !o.error.empty() && o.error != "not sent";
                                              });
            if (failed > 0) {
                PALS_LOG_WARN("profile: {} request(s) of the load failed", failed);
            }
        }
    });
}

Result<std::unique_ptr<ProfileSession>> LiveSessionFactory::open(const WorkloadMix& mix,
                                                                 const SweepPoint& point,
                                                                 int attempt) {
    if (attempt > 0 || m_running_mix != mix.name) {
        start_load(mix);
    }
    return m_shared.open(mix, point, attempt);
}

}  // namespace pals::profile
