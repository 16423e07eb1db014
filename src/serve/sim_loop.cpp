#include "serve/sim_loop.hpp"

#include <algorithm>
#include <limits>
#include <utility>

#include "pals/common/log.hpp"

namespace pals::serve {

namespace {

namespace fake = power::fake_nvml;

/// Average power this close to the idle power counts as an idle interval, W.
constexpr double kIdleToleranceW = 0.5;

}  // namespace

SimLoop::SimLoop(sim::NodeConfig node, SimServerOptions options, sim::Simulator simulator)
    : m_node(std::move(node)), m_options(std::move(options)), m_simulator(std::move(simulator)) {}

SimLoop::~SimLoop() {
    stop();
}

Result<std::unique_ptr<SimLoop>> SimLoop::create(const sim::NodeConfig& node,
                                                 const SimServerOptions& options,
                                                 sim::SloTargets slo) {
    PALS_ASSIGN_OR_RETURN(sim::Simulator simulator, sim::Simulator::create(node, {}, slo));
    std::unique_ptr<SimLoop> loop(new SimLoop(node, options, std::move(simulator)));
    SimLoop& s = *loop;
    s.m_gpus_per_replica = node.parallel.tp;
    s.m_gpu_count = node.replicas * node.parallel.tp;
    if (!options.fake_nvml_config_path.empty()) {
        PALS_ASSIGN_OR_RETURN(
            s.m_nvml,
            NvmlCoupling::open(options.fake_nvml_config_path, options.fake_nvml_state_path,
                               options.gpu_offset, s.m_gpu_count, node.gpu));
    }
    if (!options.batch_cap_path.empty() && options.batch_cap_mode != BatchCapMode::kNone) {
        s.m_batch_cap_file.emplace(options.batch_cap_path, node.engine.max_num_seqs, "batch cap",
                                   "max_num_seqs");
        s.m_batch_cap_ack.emplace(options.batch_cap_path + ".ack");
        // The plugin's default step-token file: beside the cap file.
        const std::string tokens_path = options.batch_cap_path + ".step_tokens";
        s.m_step_tokens_file.emplace(tokens_path, node.engine.max_num_batched_tokens,
                                     "step-token budget", "max_num_batched_tokens");
        s.m_step_tokens_ack.emplace(tokens_path + ".ack");
    }
    const auto replicas = static_cast<std::size_t>(s.m_simulator.replica_count());
    s.m_metrics.resize(replicas);
    s.m_energy_at_report_j.assign(replicas, 0.0);
    s.m_applied_cap_w.assign(replicas, std::numeric_limits<double>::quiet_NaN());
    s.m_applied_clock_mhz.assign(replicas, node.locked_clock_mhz);
    for (std::size_t r = 0; r < replicas; ++r) {
        s.m_metrics[r].power_w = node.gpu.idle_power_w * s.m_gpus_per_replica;
    }
    // Memory stays flat over hours of serving: ended requests are dropped.
    s.m_simulator.limit_history(options.max_finished_requests);
    SimLoop* raw = loop.get();
    s.m_simulator.set_token_listener([raw](const sim::TokenEvent& e) { raw->on_token(e); });
    return loop;
}

Status SimLoop::start() {
    if (m_started) {
        return Status::invalid_argument("the simulation was already started");
    }
    if (m_nvml && (m_node.power_cap_w > 0.0 || m_node.locked_clock_mhz > 0.0)) {
        // --power-cap / --locked-clock at launch: set them where other processes see them.
        PALS_RETURN_IF_ERROR(m_nvml->set_controls(m_node.power_cap_w, m_node.locked_clock_mhz));
    }
    m_started = true;
    {
        std::lock_guard<std::mutex> lock(m_sim_mutex);
        m_start_wall = SteadyClock::now();
    }
    m_last_report_wall = m_start_wall;
    m_sim_thread = std::thread([this] { sim_loop(); });
    return Status::ok();
}

void SimLoop::stop() {
    if (!m_started || m_stopped) {
        return;
    }
    m_stopped = true;
    {
        std::lock_guard<std::mutex> lock(m_wake_mutex);
        m_stop_sim = true;
    }
    m_wake_cv.notify_all();
    if (m_sim_thread.joinable()) {
        m_sim_thread.join();
    }
    if (m_nvml) {
        // Idle from now on (other processes would see it after kExternalStaleS anyway).
        const std::vector<fake::ExternalReading> idle(
            static_cast<std::size_t>(m_gpu_count),
            {m_node.gpu.idle_power_w, m_node.gpu.sm_clock_min_mhz});
        const Status status = m_nvml->report(idle);
        if (!status.is_ok()) {
            PALS_LOG_WARN("sim-serve: {}", status.message());
        }
    }
}

SimServerStats SimLoop::stats() const {
    std::lock_guard<std::mutex> lock(m_sim_mutex);
    return m_stats;
}

/// The token listener: runs inside run_until(), under m_sim_mutex.
void SimLoop::on_token(const sim::TokenEvent& e) {
    auto it = m_records.find(e.handle);
    if (it == m_records.end()) {
        return;  // aborted
    }
    RequestRecord& rec = it->second;
    std::shared_ptr<StreamState> stream = rec.stream;
    if (e.kind == sim::TokenEvent::Kind::kRejected) {
        ++m_stats.requests_rejected;
        {
            std::lock_guard<std::mutex> lock(stream->mutex);
            stream->rejected = true;
            stream->decided = true;
        }
        m_touched.push_back(std::move(stream));
        m_records.erase(it);
        return;
    }
    ReplicaMetrics& m = m_metrics.at(static_cast<std::size_t>(e.replica));
    if (rec.first_token_s < 0.0) {
        m.ttft_s.observe(e.time_s - rec.arrival_s);
        rec.first_token_s = e.time_s;
    } else {
        m.itl_s.observe(e.time_s - rec.last_token_s);
    }
    rec.last_token_s = e.time_s;
    rec.replica = e.replica;
    if (e.finished) {
        m.e2e_s.observe(e.time_s - rec.arrival_s);
        // vLLM: decode time / (tokens - 1); 0 for a one-token request.
        m.tpot_s.observe(e.generated > 1 ? (e.time_s - rec.first_token_s) / (e.generated - 1)
                                         : 0.0);
        m.finished_length += 1.0;
    }
    {
        std::lock_guard<std::mutex> lock(stream->mutex);
        stream->generated = e.generated;
        stream->finished = e.finished;
        stream->decided = true;
    }
    m_touched.push_back(std::move(stream));
    if (e.finished) {
        m_records.erase(it);
    }
}

/// Applies the NVML controls (when they changed), the batch cap and the step-token budget.
/// Under m_sim_mutex.
void SimLoop::apply_controls(const std::optional<std::vector<GpuControls>>& controls, int batch_cap,
                             int step_tokens) {
    if (controls) {
        for (int r = 0; r < m_simulator.replica_count(); ++r) {
            // A TP group runs at its lowest member's limit and slowest locked clock.
            double cap_w = std::numeric_limits<double>::infinity();
            double clock_mhz = 0.0;
            for (int k = 0; k < m_gpus_per_replica; ++k) {
                const GpuControls& c =
                    (*controls)[static_cast<std::size_t>(r) *
                                    static_cast<std::size_t>(m_gpus_per_replica) +
                                static_cast<std::size_t>(k)];
                cap_w = std::min(cap_w, c.enforced_limit_w);
                if (c.locked_max_mhz > 0.0) {
                    clock_mhz =
                        clock_mhz > 0.0 ? std::min(clock_mhz, c.locked_max_mhz) : c.locked_max_mhz;
                }
            }
            const auto ri = static_cast<std::size_t>(r);
            if (cap_w != m_applied_cap_w[ri]) {
                m_simulator.set_power_cap(r, cap_w);
                m_applied_cap_w[ri] = cap_w;
                PALS_LOG_INFO("sim-serve: replica {} power cap {:.1f} W per GPU", r,
                              m_simulator.observe(r).power_cap_w);
            }
            if (clock_mhz != m_applied_clock_mhz[ri]) {
                m_simulator.set_locked_clock(r, clock_mhz);
                m_applied_clock_mhz[ri] = clock_mhz;
                PALS_LOG_INFO("sim-serve: replica {} locked SM clock {:.0f} MHz (0: unlocked)", r,
                              clock_mhz);
            }
        }
    }
    if (batch_cap != m_applied_batch_cap) {
        for (int r = 0; r < m_simulator.replica_count(); ++r) {
            m_simulator.set_batch_cap(r, batch_cap);
        }
        if (m_applied_batch_cap >= 0) {
            PALS_LOG_INFO("sim-serve: batch cap {}", batch_cap);
        }
        m_applied_batch_cap = batch_cap;
    }
    if (step_tokens != m_applied_step_tokens) {
        for (int r = 0; r < m_simulator.replica_count(); ++r) {
            m_simulator.set_step_tokens(r, step_tokens);
        }
        if (m_applied_step_tokens >= 0) {
            PALS_LOG_INFO("sim-serve: step-token budget {}", step_tokens);
        }
        m_applied_step_tokens = step_tokens;
    }
}

/// Average power over the interval since the last report, from the energy counters.
/// Under m_sim_mutex. Returns one reading per GPU of the m_node.
std::vector<fake::ExternalReading> SimLoop::measure_power() {
    const double now_s = m_simulator.now();
    const double dt_s = now_s - m_last_report_sim_s;
    std::vector<fake::ExternalReading> readings;
    readings.reserve(static_cast<std::size_t>(m_gpu_count));
    for (int r = 0; r < m_simulator.replica_count(); ++r) {
        const auto ri = static_cast<std::size_t>(r);
        const sim::ReplicaObservation o = m_simulator.observe(r);
        const double replica_w = dt_s > 0.0 ? (o.energy_j - m_energy_at_report_j[ri]) / dt_s
                                            : o.power_w * m_gpus_per_replica;
        m_energy_at_report_j[ri] = o.energy_j;
        m_metrics[ri].power_w = replica_w;
        const double gpu_w = replica_w / m_gpus_per_replica;
        // An idle interval shows the idle clock, not the last step's.
        const double clock_mhz = gpu_w <= m_node.gpu.idle_power_w + kIdleToleranceW
                                     ? m_node.gpu.sm_clock_min_mhz
                                     : o.sm_clock_mhz;
        for (int k = 0; k < m_gpus_per_replica; ++k) {
            readings.push_back({gpu_w, clock_mhz});
        }
    }
    m_last_report_sim_s = now_s;
    return readings;
}

void SimLoop::tick() {
    // File I/O happens outside the m_simulator's lock.
    std::optional<std::vector<GpuControls>> controls;
    if (m_nvml) {
        controls = m_nvml->read_if_changed();
    }
    int batch_cap = m_node.engine.max_num_seqs;
    if (m_batch_cap_file) {
        const int read = m_batch_cap_file->read();
        if (m_options.batch_cap_mode == BatchCapMode::kApply) {
            batch_cap = read;
        }
        m_batch_cap_ack->update(batch_cap, m_batch_cap_file->requested(),
                                m_node.engine.max_num_seqs);
    }
    const int launch_tokens = m_node.engine.max_num_batched_tokens;
    int step_tokens = launch_tokens;
    if (m_step_tokens_file) {
        const int read = m_step_tokens_file->read();
        if (m_options.batch_cap_mode == BatchCapMode::kApply) {
            step_tokens = read;
        }
        // As the plugin applies it: never below the running-request limit.
        m_step_tokens_ack->update(std::min(launch_tokens, std::max(step_tokens, batch_cap)),
                                  m_step_tokens_file->requested(), launch_tokens);
    }
    std::optional<std::vector<fake::ExternalReading>> readings;
    std::vector<std::shared_ptr<StreamState>> wake;
    {
        std::lock_guard<std::mutex> lock(m_sim_mutex);
        apply_controls(controls, batch_cap, step_tokens);
        const SteadyClock::time_point now = SteadyClock::now();
        m_simulator.run_until(sim_target(now));
        ++m_stats.ticks;
        m_stats.sim_time_s = m_simulator.now();
        m_stats.requests_held = m_simulator.requests_held();
        m_stats.requests_finished_held = m_simulator.finished_requests().size();
        if (m_nvml) {
            m_stats.nvml_state_reads = m_nvml->state_reads();
        }
        // Every request submitted before this tick has arrived: it was dispatched (or
        // rejected, which on_token() saw).
        for (const std::size_t handle : m_undecided) {
            auto it = m_records.find(handle);
            if (it == m_records.end()) {
                continue;
            }
            {
                std::lock_guard<std::mutex> stream_lock(it->second.stream->mutex);
                it->second.stream->decided = true;
            }
            m_touched.push_back(it->second.stream);
        }
        m_undecided.clear();
        if (now - m_last_report_wall >= m_options.report_period) {
            readings = measure_power();
            m_last_report_wall = now;
        }
        wake.swap(m_touched);
    }
    for (const auto& stream : wake) {
        stream->cv.notify_all();
    }
    if (m_nvml && readings) {
        const Status status = m_nvml->report(*readings);
        if (!status.is_ok() && !m_report_failed) {
            PALS_LOG_WARN("sim-serve: {}", status.message());
        }
        m_report_failed = !status.is_ok();
        if (status.is_ok()) {
            std::lock_guard<std::mutex> lock(m_sim_mutex);
            ++m_stats.nvml_reports;
        }
    }
}

void SimLoop::sim_loop() {
    SteadyClock::time_point next = SteadyClock::now();
    while (true) {
        try {
            tick();
        } catch (const std::exception& e) {  // nothing crosses a tick
            PALS_LOG_ERROR("sim-serve: simulation tick failed: {}", e.what());
        }
        next += m_options.tick_period;
        const SteadyClock::time_point now = SteadyClock::now();
        if (next < now) {
            next = now;  // behind (a slow tick): no burst of catch-up ticks
        }
        std::unique_lock<std::mutex> lock(m_wake_mutex);
        if (m_wake_cv.wait_until(lock, next, [this] { return m_stop_sim; })) {
            return;
        }
    }
}

Result<Submitted> SimLoop::submit(int input_tokens, int output_tokens) {
    std::lock_guard<std::mutex> lock(m_sim_mutex);
    if (m_stopping) {
        return Status::unavailable("the server is shutting down");
    }
    // The request arrives at its wall-clock instant in simulated time (never before one
    // already queued, as Simulator::submit does too).
    const double arrival_s =
        std::max({sim_target(SteadyClock::now()), m_simulator.now(), m_last_arrival_s});
    PALS_ASSIGN_OR_RETURN(std::size_t handle, m_simulator.submit({m_next_request_id++, arrival_s,
                                                                  input_tokens, output_tokens}));
    m_last_arrival_s = arrival_s;
    auto stream = std::make_shared<StreamState>();
    m_records.emplace(handle, RequestRecord{stream, arrival_s});
    m_undecided.push_back(handle);
    ++m_stats.requests_submitted;
    return Submitted{handle, std::move(stream)};
}

/// The client went away: the request leaves the m_simulator.
void SimLoop::abort(std::size_t handle) {
    std::lock_guard<std::mutex> lock(m_sim_mutex);
    auto it = m_records.find(handle);
    if (it == m_records.end()) {
        return;  // finished, rejected or already aborted
    }
    m_simulator.abort(handle);
    const int replica = std::max(0, it->second.replica);
    m_metrics.at(static_cast<std::size_t>(replica)).finished_abort += 1.0;
    ++m_stats.requests_aborted;
    m_records.erase(it);
}

std::string SimLoop::metrics_text(const std::string& model_name) const {
    std::vector<ReplicaMetrics> out;
    {
        std::lock_guard<std::mutex> lock(m_sim_mutex);
        out = m_metrics;
        for (int r = 0; r < m_simulator.replica_count(); ++r) {
            const sim::ReplicaObservation o = m_simulator.observe(r);
            ReplicaMetrics& m = out[static_cast<std::size_t>(r)];
            m.running = o.running;
            m.waiting = o.waiting;
            m.kv_cache_usage = o.kv_usage;
            m.prompt_tokens = o.prompt_tokens;
            m.generation_tokens = o.output_tokens;
            m.preemptions = static_cast<double>(o.preemptions);
            m.batch_cap = o.batch_cap;
            m.step_tokens = o.step_tokens;
            m.power_cap_w = o.power_cap_w;
        }
    }
    return render_vllm_metrics(model_name, out);
}

/// Wakes every request waiting on the m_simulator, for stop().
void SimLoop::close_streams() {
    std::vector<std::shared_ptr<StreamState>> streams;
    {
        std::lock_guard<std::mutex> lock(m_sim_mutex);
        m_stopping = true;
        for (auto& [handle, rec] : m_records) {
            {
                std::lock_guard<std::mutex> stream_lock(rec.stream->mutex);
                rec.stream->closed = true;
            }
            streams.push_back(rec.stream);
        }
    }
    for (const auto& s : streams) {
        s->cv.notify_all();
    }
}

}  // namespace pals::serve
