#include "pals/sim/simulator.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>

#include "pals/common/hash.hpp"
#include "pals/sim/node_options.hpp"

namespace pals::sim {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
/// Mixed into ids and sessions so that sessions and their replicas are independent streams.
constexpr std::uint64_t kSessionSalt = 0x5E55'1011'C0FF'EE00ULL;

/// Sum over key counts k in [a, b] of min(k, window): the (query, key) pairs of a prefill chunk
/// in a sliding-window layer.
double local_pairs(double a, double b, double window) {
    if (b < a) {
        return 0.0;
    }
    if (b <= window) {
        return (a + b) * (b - a + 1.0) / 2.0;
    }
    if (a >= window) {
        return window * (b - a + 1.0);
    }
    return (a + window) * (window - a + 1.0) / 2.0 + window * (b - window);
}

struct RequestState {
    workload::Request request;
    int num_tokens = 0;    ///< prompt + tokens generated so far
    int num_computed = 0;  ///< tokens whose KV is in the cache
    int generated = 0;
    int blocks = 0;
    int replica = -1;
    double first_token_s = -1.0;
    double last_token_s = 0.0;
    bool aborted = false;
    bool ended = false;  ///< finished, rejected or aborted
};

/// One scheduled piece of work in a step: `tokens` of request `index`.
struct ScheduledChunk {
    int index = 0;
    int tokens = 0;
};

constexpr auto kTtft = static_cast<std::size_t>(LatencyKind::kTtft);
constexpr auto kItl = static_cast<std::size_t>(LatencyKind::kItl);
constexpr auto kTpot = static_cast<std::size_t>(LatencyKind::kTpot);
constexpr auto kE2e = static_cast<std::size_t>(LatencyKind::kE2e);

}  // namespace

struct Simulator::Impl {
    struct Replica {
        std::deque<int> waiting;
        std::vector<int> running;
        int total_blocks = 0;
        int free_blocks = 0;
        double power_cap_w = 0.0;
        double locked_clock_mhz = 0.0;
        int batch_cap = 0;
        int step_tokens = 0;
        // The step in flight.
        bool in_step = false;
        double step_start_s = 0.0;
        double step_end_s = 0.0;
        StepOutcome step;    ///< of what is left of the step since step_start_s
        StepWork step_work;  ///< what is left of the step since step_start_s
        std::vector<ScheduledChunk> plan;
        int step_batch = 0;
        // Energy and counters.
        double accounted_until_s = 0.0;
        double energy_j = 0.0;
        double output_tokens = 0.0;
        double prompt_tokens = 0.0;
        std::uint64_t completed = 0;
        std::uint64_t preemptions = 0;
        std::array<LatencyHistogram, 4> latency;  ///< indexed by LatencyKind
        double last_power_w = 0.0;
        double last_clock_mhz = 0.0;
        unsigned last_limits = 0;
    };

    NodeConfig node;
    SloTargets slo;
    StepCostModel cost;
    GpuPhysics physics;
    std::vector<RequestState> requests;  ///< requests[i] has handle first_handle + i
    std::size_t first_handle = 0;        ///< handles below were dropped (limit_history())
    std::size_t next_arrival = 0;        ///< handle of the next request to dispatch
    std::size_t round_robin_next = 0;    ///< Router::kRoundRobin: the next replica
    std::vector<double> session_cdf;     ///< Router::kSessionHash: Zipf CDF over sessions
    std::vector<Replica> replicas;
    int gpus_per_replica = 1;
    int max_model_len = 0;
    double now_s = 0.0;

    // Run-wide statistics.
    std::vector<RequestTiming> finished;
    std::uint64_t finished_total = 0;
    /// limit_history(): 0 keeps everything; else finished timings kept (the newest, between
    /// this and twice this) and ended requests dropped.
    std::size_t max_finished = 0;
    std::uint64_t rejected = 0;
    std::uint64_t preemptions = 0;
    std::uint64_t steps = 0;
    std::uint64_t arrivals = 0;
    double batch_time = 0.0;  ///< sum of running * step duration
    double busy_time = 0.0;   ///< sum of step durations over replicas
    double clock_time = 0.0;  ///< sum of clock * step duration
    double wall_s = 0.0;
    std::function<void(const TokenEvent&)> listener;

    // Steady state (saturated queue, pure-decode start).
    bool steady_started = false;
    bool steady_ended = false;
    SteadyStateReport steady;
    double steady_energy_j = 0.0;
    double steady_batch_time = 0.0;
    LatencyHistogram steady_itl;

    Impl(NodeConfig n, SloTargets s, StepCostModel c)
        : node(std::move(n)), slo(s), cost(std::move(c)), physics(node.gpu, node.model.dtype) {}

    [[nodiscard]] RequestState& at(std::size_t handle) { return requests[handle - first_handle]; }
    [[nodiscard]] const RequestState& at(std::size_t handle) const {
        return requests[handle - first_handle];
    }
    [[nodiscard]] std::size_t end_handle() const { return first_handle + requests.size(); }

    /// limit_history(): drops the requests no replica refers to any more (every handle below
    /// the lowest one waiting, running, in a step or not yet dispatched has ended), in batches,
    /// and the oldest finished timings.
    void compact() {
        if (max_finished == 0) {
            return;
        }
        if (finished.size() > 2 * max_finished) {
            finished.erase(
                finished.begin(),
                finished.begin() + static_cast<std::ptrdiff_t>(finished.size() - max_finished));
        }
        constexpr std::size_t kBatch = 1024;
        if (next_arrival - first_handle < kBatch) {
            return;
        }
        std::size_t low = next_arrival;
        for (const Replica& r : replicas) {
            for (const int i : r.waiting) {
                low = std::min(low, static_cast<std::size_t>(i));
            }
            for (const int i : r.running) {
                low = std::min(low, static_cast<std::size_t>(i));
            }
            if (r.in_step) {
                for (const ScheduledChunk& c : r.plan) {
                    low = std::min(low, static_cast<std::size_t>(c.index));
                }
            }
        }
        if (low - first_handle >= kBatch) {
            requests.erase(requests.begin(),
                           requests.begin() + static_cast<std::ptrdiff_t>(low - first_handle));
            first_handle = low;
        }
    }

    [[nodiscard]] int blocks_for(int tokens) const {
        return (tokens + node.engine.block_size - 1) / node.engine.block_size;
    }
    /// Blocks for a whole request, in 64 bits: input + output tokens may exceed INT_MAX.
    [[nodiscard]] std::int64_t blocks_for_request(const workload::Request& r) const {
        const std::int64_t tokens = static_cast<std::int64_t>(r.input_tokens) + r.output_tokens;
        return (tokens + node.engine.block_size - 1) / node.engine.block_size;
    }

    void account_idle(Replica& r, double until) {
        if (until > r.accounted_until_s) {
            r.energy_j += physics.idle_power_w() * gpus_per_replica * (until - r.accounted_until_s);
            r.accounted_until_s = until;
        }
    }

    void preempt(Replica& r, int index) {
        RequestState& q = at(index);
        r.free_blocks += q.blocks;
        q.blocks = 0;
        q.num_computed = 0;  // recompute mode, as vLLM V1 does
        r.waiting.push_front(index);
        ++preemptions;
        ++r.preemptions;
    }

    /// vLLM V1's schedule(): running requests first, in order, then waiting ones.
    void schedule(Replica& r) {
        r.plan.clear();
        // The per-step token budget, never below the running-request limit (as the PALS vLLM
        // plugin applies it: every running request keeps its token).
        const int running_limit = std::max(r.batch_cap, static_cast<int>(r.running.size()));
        int budget =
            std::min(node.engine.max_num_batched_tokens, std::max(r.step_tokens, running_limit));
        bool preempted = false;
        for (std::size_t i = 0; i < r.running.size() && budget > 0; ++i) {
            const int index = r.running[i];
            RequestState& q = at(index);
            const int want = std::min(q.num_tokens - q.num_computed, budget);
            int need = blocks_for(q.num_computed + want) - q.blocks;
            bool self_preempted = false;
            while (need > r.free_blocks) {
                const int victim = r.running.back();
                r.running.pop_back();
                preempt(r, victim);
                preempted = true;
                if (victim == index) {
                    self_preempted = true;
                    break;
                }
            }
            if (self_preempted) {
                break;
            }
            r.free_blocks -= need;
            q.blocks += need;
            r.plan.push_back({index, want});
            budget -= want;
        }
        if (preempted) {
            return;  // as vLLM: no admissions in a step that had to preempt
        }
        while (!r.waiting.empty() && budget > 0 &&
               static_cast<int>(r.running.size()) < r.batch_cap) {
            const int index = r.waiting.front();
            RequestState& q = at(index);
            const int remaining = q.num_tokens - q.num_computed;
            if (!node.engine.enable_chunked_prefill && remaining > budget) {
                break;
            }
            const int want = std::min(remaining, budget);
            const int need = blocks_for(q.num_computed + want) - q.blocks;
            if (need > r.free_blocks) {
                break;
            }
            r.waiting.pop_front();
            r.free_blocks -= need;
            q.blocks += need;
            r.running.push_back(index);
            r.plan.push_back({index, want});
            budget -= want;
        }
    }

    StepShape shape_of(const Replica& r) const {
        StepShape s;
        const double window = node.model.sliding_window;
        for (const ScheduledChunk& c : r.plan) {
            const RequestState& q = at(c.index);
            const double context = q.num_computed;
            const double end = context + c.tokens;
            if (q.num_computed + c.tokens == q.num_tokens) {
                ++s.logits;
            }
            if (c.tokens == 1 && q.num_computed > 0) {
                ++s.decode_seqs;
                s.decode_ctx_full += end;
                s.decode_ctx_local += window > 0 ? std::min(end, window) : 0.0;
            } else {
                s.prefill_tokens += c.tokens;
                s.prefill_pairs_full += c.tokens * context + c.tokens * (c.tokens + 1.0) / 2.0;
                s.prefill_ctx_full += end;
                if (window > 0) {
                    s.prefill_pairs_local += local_pairs(context + 1.0, end, window);
                    s.prefill_ctx_local += std::min(end, window);
                }
            }
        }
        return s;
    }

    /// Starts a step on an idle replica at now_s if it has work.
    void try_start_step(int replica_index) {
        Replica& r = replicas[static_cast<std::size_t>(replica_index)];
        if (r.in_step || (r.running.empty() && r.waiting.empty())) {
            return;
        }
        const bool queue_before = !r.waiting.empty();
        schedule(r);
        if (r.plan.empty()) {
            return;  // nothing fits now; a finishing request will free room
        }
        account_idle(r, now_s);
        const StepShape shape = shape_of(r);
        r.step_work = cost.step_work(shape);
        r.step = physics.run_step(r.step_work, r.power_cap_w, r.locked_clock_mhz);
        r.in_step = true;
        r.step_start_s = now_s;
        r.step_end_s = now_s + r.step.duration_s;
        r.step_batch = static_cast<int>(r.running.size());
        r.last_power_w = r.step.power_w;
        r.last_clock_mhz = r.step.sm_clock_mhz;
        r.last_limits = r.step.limits;
        // ML.ENERGY's steady window opens at the first pure-decode step with a queue.
        if (!steady_started && queue_before && !r.waiting.empty() && shape.prefill_tokens == 0) {
            steady_started = true;
            steady.start_s = now_s;
        }
    }

    /// A step's share of the busy statistics (a whole step, or the part before its limits
    /// changed).
    void account_busy(const Replica& r, double seconds) {
        batch_time += r.step_batch * seconds;
        busy_time += seconds;
        clock_time += r.step.sm_clock_mhz * seconds;
    }

    /// The cap or clock lock of `r` changed: a step in flight runs its remaining work under the
    /// new limits from now, as a GPU's power controller and clock lock act within milliseconds,
    /// not at the next engine step. The part already run keeps its power and clock.
    void reapply_limits(Replica& r) {
        if (!r.in_step || now_s >= r.step_end_s) {
            return;
        }
        const double elapsed = std::max(0.0, now_s - r.step_start_s);
        const double left = r.step.duration_s > 0.0 ? 1.0 - elapsed / r.step.duration_s : 0.0;
        if (left <= 0.0) {
            return;
        }
        r.energy_j += r.step.power_w * gpus_per_replica * elapsed;
        account_busy(r, elapsed);
        r.step_work = r.step_work.scaled(left);
        r.step = physics.run_step(r.step_work, r.power_cap_w, r.locked_clock_mhz);
        r.step_start_s = now_s;
        r.step_end_s = now_s + r.step.duration_s;
        r.last_power_w = r.step.power_w;
        r.last_clock_mhz = r.step.sm_clock_mhz;
        r.last_limits = r.step.limits;
    }

    void finish_step(int replica_index) {
        Replica& r = replicas[static_cast<std::size_t>(replica_index)];
        const double t = r.step_end_s;
        const double d = r.step.duration_s;
        const double step_energy = r.step.power_w * gpus_per_replica * d;
        r.energy_j += step_energy;
        r.accounted_until_s = t;
        r.in_step = false;
        ++steps;
        account_busy(r, d);
        const bool in_steady = steady_started && !steady_ended;
        double step_tokens = 0.0;

        bool any_finished = false;
        bool any_aborted = false;
        for (const ScheduledChunk& c : r.plan) {
            RequestState& q = at(c.index);
            if (q.aborted) {
                r.free_blocks += q.blocks;
                q.blocks = 0;
                any_aborted = true;
                continue;
            }
            if (q.num_computed < q.request.input_tokens) {
                r.prompt_tokens += std::min(c.tokens, q.request.input_tokens - q.num_computed);
            }
            q.num_computed += c.tokens;
            if (q.num_computed < q.num_tokens) {
                continue;  // a partial prefill chunk samples no token
            }
            ++q.generated;
            ++q.num_tokens;
            step_tokens += 1.0;
            if (q.generated == 1 && q.first_token_s < 0.0) {
                q.first_token_s = t;
                r.latency[kTtft].add(t - q.request.arrival_s);
            } else {
                r.latency[kItl].add(t - q.last_token_s);
                if (in_steady) {
                    steady_itl.add(t - q.last_token_s);
                }
            }
            q.last_token_s = t;
            const bool last = q.generated >= q.request.output_tokens;
            if (listener) {
                listener({TokenEvent::Kind::kToken, static_cast<std::size_t>(c.index),
                          replica_index, t, q.generated, last});
            }
            if (last) {
                any_finished = true;
                q.ended = true;
                r.free_blocks += q.blocks;
                q.blocks = 0;
                ++r.completed;
                if (q.request.output_tokens > 1) {
                    r.latency[kTpot].add((t - q.first_token_s) / (q.request.output_tokens - 1));
                }
                r.latency[kE2e].add(t - q.request.arrival_s);
                ++finished_total;
                finished.push_back({q.request.id, replica_index, q.request.arrival_s,
                                    q.first_token_s, t, q.request.output_tokens});
            }
        }
        r.output_tokens += step_tokens;
        if (any_finished || any_aborted) {
            std::erase_if(r.running, [this](int index) {
                const RequestState& q = at(index);
                return q.aborted || q.generated >= q.request.output_tokens;
            });
        }
        if (in_steady) {
            steady.duration_s += d;
            steady.output_tokens += step_tokens;
            steady_energy_j += step_energy;
            steady_batch_time += r.step_batch * d;
            if (r.waiting.empty()) {
                steady_ended = true;
            }
        }
    }

    /// Router::kSessionHash: the session of request `id`, Zipf-distributed over ids (the
    /// inverse of session_cdf at a uniform draw from the id).
    [[nodiscard]] std::uint64_t session_of(std::uint64_t id) const {
        const double u = unit_interval((id * kSplitmixGamma) ^ kSessionSalt);
        const auto it = std::upper_bound(session_cdf.begin(), session_cdf.end(), u);
        return static_cast<std::uint64_t>(std::min(
            it - session_cdf.begin(), static_cast<std::ptrdiff_t>(session_cdf.size()) - 1));
    }

    /// The replica the router sends a request to.
    std::size_t route(const workload::Request& request) {
        switch (node.router.mode) {
            case Router::kRoundRobin:
                return round_robin_next++ % replicas.size();
            case Router::kSessionHash:
                return static_cast<std::size_t>(mix64(session_of(request.id) + kSessionSalt) %
                                                replicas.size());
            case Router::kLeastLoaded:
                break;
        }
        std::size_t best = 0;
        std::size_t best_load = std::numeric_limits<std::size_t>::max();
        for (std::size_t i = 0; i < replicas.size(); ++i) {
            const std::size_t load = replicas[i].running.size() + replicas[i].waiting.size();
            if (load < best_load) {
                best = i;
                best_load = load;
            }
        }
        return best;
    }

    /// Routes a request to a replica (route()), or rejects it when it can never fit.
    void dispatch(std::size_t index) {
        RequestState& q = at(index);
        if (q.aborted) {
            return;
        }
        ++arrivals;
        const std::int64_t need = blocks_for_request(q.request);
        if (static_cast<std::int64_t>(q.request.input_tokens) + q.request.output_tokens >
                max_model_len ||
            need > replicas.front().total_blocks) {
            ++rejected;
            q.ended = true;
            if (listener) {
                listener({TokenEvent::Kind::kRejected, index, 0, now_s, 0, true});
            }
            return;
        }
        const std::size_t best = route(q.request);
        q.replica = static_cast<int>(best);
        replicas[best].waiting.push_back(static_cast<int>(index));
        try_start_step(static_cast<int>(best));
    }

    void advance(double limit_s) {
        const auto wall_start = std::chrono::steady_clock::now();
        while (true) {
            const double t_arrival =
                next_arrival < end_handle() ? at(next_arrival).request.arrival_s : kInf;
            int next_replica = -1;
            double t_step = kInf;
            for (std::size_t i = 0; i < replicas.size(); ++i) {
                if (replicas[i].in_step && replicas[i].step_end_s < t_step) {
                    t_step = replicas[i].step_end_s;
                    next_replica = static_cast<int>(i);
                }
            }
            const double t_next = std::min(t_arrival, t_step);
            if (t_next == kInf || t_next > limit_s) {
                break;
            }
            now_s = std::max(now_s, t_next);
            if (t_arrival <= t_step) {
                dispatch(next_arrival++);
            } else {
                finish_step(next_replica);
                try_start_step(next_replica);
            }
        }
        if (limit_s != kInf) {
            now_s = std::max(now_s, limit_s);
        }
        wall_s +=
            std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
    }

    [[nodiscard]] bool done() const {
        if (next_arrival < end_handle()) {
            return false;
        }
        return std::all_of(replicas.begin(), replicas.end(), [](const Replica& r) {
            return !r.in_step && r.running.empty() && r.waiting.empty();
        });
    }

    [[nodiscard]] double energy_until(const Replica& r, double t) const {
        if (r.in_step) {
            return r.energy_j +
                   r.step.power_w * gpus_per_replica * std::max(0.0, t - r.step_start_s);
        }
        return r.energy_j +
               physics.idle_power_w() * gpus_per_replica * std::max(0.0, t - r.accounted_until_s);
    }
};

std::string_view router_name(Router router) {
    switch (router) {
        case Router::kRoundRobin:
            return "round-robin";
        case Router::kSessionHash:
            return "session-hash";
        case Router::kLeastLoaded:
            break;
    }
    return "least-loaded";
}

Result<Router> parse_router(std::string_view name) {
    for (const Router r : {Router::kLeastLoaded, Router::kRoundRobin, Router::kSessionHash}) {
        if (name == router_name(r)) {
            return r;
        }
    }
    return Status::invalid_argument("unknown router '" + std::string(name) +
                                    "' (expected least-loaded, round-robin or session-hash)");
}

Result<Simulator> Simulator::create(const NodeConfig& node, std::vector<workload::Request> requests,
                                    SloTargets slo) {
    PALS_RETURN_IF_ERROR(validate(node));
    PALS_RETURN_IF_ERROR(validate(slo));
    const EngineConfig& e = node.engine;
    for (std::size_t i = 1; i < requests.size(); ++i) {
        if (requests[i].arrival_s < requests[i - 1].arrival_s) {
            return Status::invalid_argument("requests must be sorted by arrival time");
        }
    }
    PALS_ASSIGN_OR_RETURN(StepCostModel cost,
                          StepCostModel::create(node.model, node.gpu, node.parallel));
    auto impl = std::make_unique<Impl>(node, slo, std::move(cost));
    impl->gpus_per_replica = node.parallel.tp;
    if (node.router.mode == Router::kSessionHash) {
        double total = 0.0;
        for (int k = 1; k <= node.router.sessions; ++k) {
            total += std::pow(static_cast<double>(k), -node.router.session_skew);
            impl->session_cdf.push_back(total);
        }
        for (double& c : impl->session_cdf) {
            c /= total;
        }
    }
    impl->max_model_len =
        e.max_model_len > 0 ? e.max_model_len : node.model.max_position_embeddings;
    if (impl->max_model_len <= 0) {
        impl->max_model_len = std::numeric_limits<int>::max();
    }
    const double free_bytes = node.gpu.hbm_bytes * e.gpu_memory_utilization -
                              impl->cost.weight_bytes_per_gpu() - e.activation_reserve_bytes;
    const double block_bytes = impl->cost.kv_bytes_per_token_per_gpu() * e.block_size;
    if (free_bytes < block_bytes) {
        // Suggest the smallest power-of-two TP degree whose share of the weights leaves room
        // (weights split evenly: a lower bound, as the KV cache needs room too).
        const double usable_bytes =
            node.gpu.hbm_bytes * e.gpu_memory_utilization - e.activation_reserve_bytes;
        const double weight_bytes = impl->cost.weight_bytes_per_gpu() * node.parallel.tp;
        std::string hint = "raise gpu_memory_utilization or use a GPU with more memory";
        if (usable_bytes > 0.0) {
            int tp = node.parallel.tp;
            while (tp < 1024 && weight_bytes / (2.0 * tp) >= usable_bytes) {
                tp *= 2;
            }
            if (tp * 2 <= 1024) {
                hint = fmt::format("try tp {} or more", std::max(tp * 2, node.parallel.tp * 2));
            }
        }
        return Status::invalid_argument(fmt::format(
            "{} does not fit on {}x {}: {:.1f} GB of weights per GPU, {:.1f} GB usable ({})",
            node.model.name, node.parallel.tp, node.gpu.name,
            impl->cost.weight_bytes_per_gpu() / 1e9,
            node.gpu.hbm_bytes * e.gpu_memory_utilization / 1e9, hint));
    }
    const int total_blocks = static_cast<int>(std::min(free_bytes / block_bytes, 1e9));
    const double cap = node.power_cap_w > 0.0 ? node.power_cap_w : node.gpu.power_limit_default_w;
    impl->replicas.resize(static_cast<std::size_t>(node.replicas));
    for (auto& r : impl->replicas) {
        r.total_blocks = total_blocks;
        r.free_blocks = total_blocks;
        r.power_cap_w = impl->physics.clamp_cap(cap);
        r.locked_clock_mhz = node.locked_clock_mhz;
        r.batch_cap = e.max_num_seqs;
        r.step_tokens = e.max_num_batched_tokens;
        r.last_power_w = node.gpu.idle_power_w;
    }
    impl->requests.reserve(requests.size());
    for (const workload::Request& req : requests) {
        RequestState q;
        q.request = req;
        q.request.input_tokens = std::max(1, req.input_tokens);
        q.request.output_tokens = std::max(1, req.output_tokens);
        q.num_tokens = q.request.input_tokens;
        impl->requests.push_back(q);
    }
    impl->finished.reserve(requests.size());
    return Simulator(std::move(impl));
}

Simulator::Simulator(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
Simulator::Simulator(Simulator&&) noexcept = default;

Simulator Simulator::clone() const {
    return Simulator(std::make_unique<Impl>(*m_impl));
}
Simulator& Simulator::operator=(Simulator&&) noexcept = default;
Simulator::~Simulator() = default;

void Simulator::set_power_cap(int replica, double power_cap_w) {
    Impl::Replica& r = m_impl->replicas.at(static_cast<std::size_t>(replica));
    const double cap = m_impl->physics.clamp_cap(power_cap_w);
    if (cap != r.power_cap_w) {
        r.power_cap_w = cap;
        m_impl->reapply_limits(r);
    }
}

void Simulator::set_batch_cap(int replica, int batch_cap) {
    m_impl->replicas.at(static_cast<std::size_t>(replica)).batch_cap =
        std::clamp(batch_cap, 1, m_impl->node.engine.max_num_seqs);
}

void Simulator::set_step_tokens(int replica, int tokens) {
    const int launch = m_impl->node.engine.max_num_batched_tokens;
    m_impl->replicas.at(static_cast<std::size_t>(replica)).step_tokens =
        tokens > 0 ? std::min(tokens, launch) : launch;
}

void Simulator::set_locked_clock(int replica, double clock_mhz) {
    Impl::Replica& r = m_impl->replicas.at(static_cast<std::size_t>(replica));
    const double lock = std::max(0.0, clock_mhz);
    if (lock != r.locked_clock_mhz) {
        r.locked_clock_mhz = lock;
        m_impl->reapply_limits(r);
    }
}

Result<std::size_t> Simulator::submit(workload::Request request) {
    Impl& s = *m_impl;
    if (request.input_tokens < 1 || request.output_tokens < 1) {
        return Status::invalid_argument("a request needs input_tokens >= 1 and output_tokens >= 1");
    }
    request.arrival_s = std::max(request.arrival_s, s.now_s);
    if (!s.requests.empty()) {
        request.arrival_s = std::max(request.arrival_s, s.requests.back().request.arrival_s);
    }
    RequestState q;
    q.request = request;
    q.num_tokens = request.input_tokens;
    s.requests.push_back(q);
    return s.end_handle() - 1;
}

void Simulator::abort(std::size_t handle) {
    Impl& s = *m_impl;
    if (handle < s.first_handle || handle >= s.end_handle()) {
        return;  // dropped long after it ended, or never submitted
    }
    RequestState& q = s.at(handle);
    if (q.ended) {
        return;
    }
    q.aborted = true;
    q.ended = true;
    if (q.replica < 0) {
        return;  // not dispatched yet: dispatch() skips it
    }
    auto& r = s.replicas[static_cast<std::size_t>(q.replica)];
    const int index = static_cast<int>(handle);
    if (auto it = std::find(r.waiting.begin(), r.waiting.end(), index); it != r.waiting.end()) {
        r.waiting.erase(it);
        return;
    }
    const bool in_step =
        r.in_step && std::any_of(r.plan.begin(), r.plan.end(),
                                 [index](const ScheduledChunk& c) { return c.index == index; });
    if (!in_step) {
        std::erase(r.running, index);
        r.free_blocks += q.blocks;
        q.blocks = 0;
    }
}

void Simulator::set_token_listener(std::function<void(const TokenEvent&)> listener) {
    m_impl->listener = std::move(listener);
}

void Simulator::run_until(double t_s) {
    m_impl->advance(t_s);
    m_impl->compact();
}

std::size_t Simulator::requests_held() const {
    return m_impl->requests.size();
}

void Simulator::limit_history(std::size_t max_finished) {
    m_impl->max_finished = max_finished;
    m_impl->compact();
}

void Simulator::run_to_completion() {
    m_impl->advance(kInf);
}

bool Simulator::done() const {
    return m_impl->done();
}

double Simulator::now() const {
    return m_impl->now_s;
}

int Simulator::replica_count() const {
    return static_cast<int>(m_impl->replicas.size());
}

const NodeConfig& Simulator::node() const {
    return m_impl->node;
}

const LatencyHistogram& Simulator::latency(int replica, LatencyKind kind) const {
    return m_impl->replicas.at(static_cast<std::size_t>(replica))
        .latency[static_cast<std::size_t>(kind)];
}

const std::vector<RequestTiming>& Simulator::finished_requests() const {
    return m_impl->finished;
}

ReplicaObservation Simulator::observe(int replica) const {
    const Impl& s = *m_impl;
    const auto& r = s.replicas.at(static_cast<std::size_t>(replica));
    ReplicaObservation o;
    o.now_s = s.now_s;
    o.running = static_cast<int>(r.running.size());
    o.waiting = static_cast<int>(r.waiting.size());
    o.kv_usage =
        r.total_blocks > 0 ? 1.0 - static_cast<double>(r.free_blocks) / r.total_blocks : 0.0;
    o.energy_j = s.energy_until(r, s.now_s);
    o.output_tokens = r.output_tokens;
    o.prompt_tokens = r.prompt_tokens;
    o.completed = r.completed;
    o.preemptions = r.preemptions;
    o.power_w = r.in_step ? r.last_power_w : s.physics.idle_power_w();
    o.sm_clock_mhz = r.last_clock_mhz;
    o.clock_limits = r.in_step ? r.last_limits : 0U;
    o.busy = r.in_step;
    o.power_cap_w = r.power_cap_w;
    o.batch_cap = r.batch_cap;
    o.step_tokens = r.step_tokens;
    o.gpus = s.gpus_per_replica;
    return o;
}

SimulationReport Simulator::report() const {
    const Impl& s = *m_impl;
    SimulationReport out;
    out.requests_total = s.end_handle();
    out.requests_completed = s.finished_total;
    out.requests_rejected = s.rejected;
    out.preemptions = s.preemptions;
    out.steps = s.steps;
    out.events = s.steps + s.arrivals;
    out.duration_s = s.now_s;
    for (const auto& r : s.replicas) {
        out.output_tokens += r.output_tokens;
        out.prompt_tokens += r.prompt_tokens;
        out.energy_j += s.energy_until(r, s.now_s);
    }
    if (out.duration_s > 0.0) {
        out.throughput_tok_s = out.output_tokens / out.duration_s;
        out.avg_power_w = out.energy_j / out.duration_s;
        out.avg_batch = s.batch_time / (out.duration_s * static_cast<double>(s.replicas.size()));
    }
    if (out.energy_j > 0.0) {
        out.tokens_per_joule = out.output_tokens / out.energy_j;
    }
    if (out.output_tokens > 0.0) {
        out.j_per_token = out.energy_j / out.output_tokens;
    }
    if (s.busy_time > 0.0) {
        out.sm_clock_mhz_avg = s.clock_time / s.busy_time;
    }
    std::vector<double> ttft;
    std::vector<double> tpot;
    std::vector<double> e2e;
    ttft.reserve(s.finished.size());
    tpot.reserve(s.finished.size());
    e2e.reserve(s.finished.size());
    std::uint64_t met = 0;
    for (const RequestTiming& f : s.finished) {
        ttft.push_back(f.ttft_s());
        if (f.output_tokens > 1) {
            tpot.push_back(f.tpot_s());
        }
        e2e.push_back(f.finish_s - f.arrival_s);
        if (f.meets(s.slo)) {
            ++met;
        }
    }
    out.ttft_s = summarize(std::move(ttft));
    out.tpot_s = summarize(std::move(tpot));
    out.e2e_s = summarize(std::move(e2e));
    LatencyHistogram itl;
    for (const auto& r : s.replicas) {
        itl.merge(r.latency[kItl]);
    }
    out.itl_s = itl.summary();
    if (!s.finished.empty()) {
        out.slo_attainment = static_cast<double>(met) / static_cast<double>(s.finished.size());
    }
    if (s.steady_started && s.steady.duration_s > 0.0) {
        SteadyStateReport st = s.steady;
        // Steps of several replicas overlap in time; duration is per replica-time.
        const double replicas = static_cast<double>(s.replicas.size());
        st.duration_s /= replicas;
        st.throughput_tok_s = st.output_tokens / st.duration_s;
        st.avg_power_w = s.steady_energy_j / st.duration_s;
        st.j_per_token = st.output_tokens > 0.0 ? s.steady_energy_j / st.output_tokens : 0.0;
        st.avg_batch = s.steady_batch_time / (st.duration_s * replicas);
        st.itl_s = s.steady_itl.summary();
        out.steady = st;
    }
    out.sim_wall_s = s.wall_s;
    return out;
}

}  // namespace pals::sim
