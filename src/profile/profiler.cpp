#include "pals/profile/profiler.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

namespace pals::profile {

namespace {

/// Largest grid a --caps or --batches expression may expand to.
constexpr std::size_t kMaxGridValues = 10000;
/// Tolerance when deciding whether HI lies on a LO:HI:STEP grid.
constexpr double kGridTolerance = 1e-9;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

/// The session a SharedSessionFactory returns: references only.
class SharedSession final : public ProfileSession {
public:
    SharedSession(Clock& clock, power::GpuBackend& gpus, engine::ServingEngine& engine)
        : m_clock(clock), m_gpus(gpus), m_engine(engine) {}
    [[nodiscard]] Clock& clock() override { return m_clock; }
    [[nodiscard]] power::GpuBackend& gpus() override { return m_gpus; }
    [[nodiscard]] engine::ServingEngine& engine() override { return m_engine; }

private:
    Clock& m_clock;
    power::GpuBackend& m_gpus;
    engine::ServingEngine& m_engine;
};

/// Readings of the group's GPUs at one instant.
Result<std::vector<power::GpuSample>> sample_group(power::GpuBackend& gpus,
                                                   const std::vector<int>& group) {
    std::vector<power::GpuSample> out;
    out.reserve(group.size());
    for (int g : group) {
        PALS_ASSIGN_OR_RETURN(power::GpuSample s, gpus.sample(g));
        out.push_back(s);
    }
    return out;
}

Result<double> parse_number(std::string_view text, std::string_view flag) {
    while (!text.empty() && text.front() == ' ') {
        text.remove_prefix(1);
    }
    while (!text.empty() && text.back() == ' ') {
        text.remove_suffix(1);
    }
    double v = 0.0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() ||
        !std::isfinite(v)) {
        return Status::invalid_argument(std::string(flag) + ": '" + std::string(text) +
                                        "' is not a number");
    }
    return v;
}

std::vector<std::string_view> split(std::string_view text, char sep) {
    std::vector<std::string_view> out;
    std::size_t pos = 0;
    while (true) {
        const std::size_t next = text.find(sep, pos);
        out.push_back(
            text.substr(pos, next == std::string_view::npos ? std::string_view::npos : next - pos));
        if (next == std::string_view::npos) {
            break;
        }
        pos = next + 1;
    }
    return out;
}

/// Expands "LO:HI:STEP", "LO:HI:xF" or "A,B,C" with "..." continuing the pattern of the items
/// before it (a constant ratio or a constant difference) up to the item after it.
Result<std::vector<double>> parse_grid(std::string_view text, std::string_view flag) {
    std::vector<double> out;
    const std::string example =
        std::string(flag) + " expects LO:HI:STEP, LO:HI:xFACTOR or a list A,B,...,Z";
    if (text.find(':') != std::string_view::npos) {
        const std::vector<std::string_view> parts = split(text, ':');
        if (parts.size() != 3) {
            return Status::invalid_argument(example + " (got '" + std::string(text) + "')");
        }
        Result<double> lo = parse_number(parts[0], flag);
        Result<double> hi = parse_number(parts[1], flag);
        if (!lo.is_ok() || !hi.is_ok()) {
            return !lo.is_ok() ? lo.status() : hi.status();
        }
        const bool geometric = !parts[2].empty() && parts[2].front() == 'x';
        PALS_ASSIGN_OR_RETURN(double step,
                              parse_number(geometric ? parts[2].substr(1) : parts[2], flag));
        if (lo.value() > hi.value()) {
            return Status::invalid_argument(std::string(flag) + ": LO must be <= HI in '" +
                                            std::string(text) + "'");
        }
        if (geometric ? step <= 1.0 || lo.value() <= 0.0 : step <= 0.0) {
            return Status::invalid_argument(std::string(flag) +
                                            ": the step must be > 0 (a factor > 1, LO > 0) in '" +
                                            std::string(text) + "'");
        }
        for (double v = lo.value(); v <= hi.value() * (1.0 + kGridTolerance) + kGridTolerance;
             v = geometric ? v * step : lo.value() + step * static_cast<double>(out.size())) {
            out.push_back(std::min(v, hi.value()));
            if (out.size() > kMaxGridValues) {
                return Status::invalid_argument(std::string(flag) + ": more than " +
                                                std::to_string(kMaxGridValues) + " values");
            }
        }
        return out;
    }
    const std::vector<std::string_view> items = split(text, ',');
    for (std::size_t i = 0; i < items.size(); ++i) {
        std::string_view item = items[i];
        while (!item.empty() && item.front() == ' ') {
            item.remove_prefix(1);
        }
        if (item != "...") {
            PALS_ASSIGN_OR_RETURN(double v, parse_number(item, flag));
            out.push_back(v);
            continue;
        }
        if (out.size() < 2 || i + 1 >= items.size()) {
            return Status::invalid_argument(std::string(flag) +
                                            ": '...' needs two values before it and one after it");
        }
        PALS_ASSIGN_OR_RETURN(double last, parse_number(items[i + 1], flag));
        const double a = out[out.size() - 2];
        const double b = out.back();
        const bool have_three = out.size() >= 3;
        const double z = have_three ? out[out.size() - 3] : 0.0;
        bool geometric = false;
        if (have_three && z > 0.0 && std::fabs(b / a - a / z) < kGridTolerance && b / a > 1.0) {
            geometric = true;
        } else if (have_three && std::fabs((b - a) - (a - z)) > kGridTolerance) {
            return Status::invalid_argument(std::string(flag) +
                                            ": the values before '...' have neither a constant " +
                                            "ratio nor a constant difference");
        }
        if (!geometric && b <= a) {
            return Status::invalid_argument(std::string(flag) +
                                            ": values before '...' must increase");
        }
        for (double v = geometric ? b * (b / a) : b + (b - a); v < last * (1.0 - kGridTolerance);
             v = geometric ? v * (b / a) : v + (b - a)) {
            out.push_back(v);
            if (out.size() > kMaxGridValues) {
                return Status::invalid_argument(std::string(flag) + ": more than " +
                                                std::to_string(kMaxGridValues) + " values");
            }
        }
    }
    return out;
}

Status check_sorted_unique(std::vector<double>& values, std::string_view flag) {
    if (values.empty()) {
        return Status::invalid_argument(std::string(flag) + ": no values");
    }
    std::sort(values.begin(), values.end());
    for (std::size_t i = 1; i < values.size(); ++i) {
        if (values[i] - values[i - 1] < kGridTolerance) {
            return Status::invalid_argument(std::string(flag) + ": duplicate value " +
                                            fmt::format("{}", values[i]));
        }
    }
    return Status::ok();
}

std::string point_label(std::string_view workload, const SweepPoint& p) {
    return fmt::format("workload {} cap {:g} W batch {}", workload, p.power_cap_w, p.batch_cap);
}

}  // namespace

SharedSessionFactory::SharedSessionFactory(Clock& clock, power::GpuBackend& gpus,
                                           engine::ServingEngine& engine, ModelShape shape,
                                           std::string backend_name)
    : m_clock(clock)
    , m_gpus(gpus)
    , m_engine(engine)
    , m_shape(std::move(shape))
    , m_backend_name(std::move(backend_name)) {}

Result<std::unique_ptr<ProfileSession>> SharedSessionFactory::open(const WorkloadMix& /*mix*/,
                                                                   const SweepPoint& /*point*/,
                                                                   int /*attempt*/) {
    return std::unique_ptr<ProfileSession>(
        std::make_unique<SharedSession>(m_clock, m_gpus, m_engine));
}

Result<ProfileRow> measure_point(ProfileSession& session, const SweepPoint& point,
                                 const MeasureSettings& settings) {
    Clock& clock = session.clock();
    power::GpuBackend& gpus = session.gpus();
    engine::ServingEngine& engine = session.engine();
    if (settings.window.count() <= 0.0 || settings.sample_period.count() <= 0.0 ||
        settings.warmup.count() < 0.0) {
        return Status::invalid_argument(
            "the window and sample period must be > 0 and the warm-up >= 0");
    }
    const std::vector<int> group = engine.gpus();
    if (group.empty()) {
        return Status::invalid_argument(std::string(engine.engine_name()) +
                                        " engine reports no GPU");
    }
    if (point.batch_cap < 1 || point.batch_cap > engine.max_batch_cap()) {
        return Status::out_of_range(
            fmt::format("batch cap {} is outside the engine's range 1-{} (its launch "
                        "--max-num-seqs)",
                        point.batch_cap, engine.max_batch_cap()));
    }

    // 1. Set the point: the cap on every GPU of the group, then the batch cap.
    for (int g : group) {
        PALS_ASSIGN_OR_RETURN(power::PowerLimitRange range, gpus.power_limit_range(g));
        if (!range.contains(point.power_cap_w)) {
            return Status::out_of_range(fmt::format("cap {} W is outside GPU {}'s range {}-{} W",
                                                    point.power_cap_w, g, range.min_w,
                                                    range.max_w));
        }
        PALS_RETURN_IF_ERROR(gpus.set_power_limit(g, point.power_cap_w).status());
    }
    PALS_RETURN_IF_ERROR(engine.set_batch_cap(point.batch_cap));

    // 2. Warm-up: let the batch fill (or drain) and the clocks settle.
    clock.sleep_until(clock.now() + settings.warmup);

    // 3. The window: cumulative readings at both ends, gauges and GPUs sampled in between.
    PALS_ASSIGN_OR_RETURN(engine::EngineSnapshot first, engine.snapshot());
    PALS_ASSIGN_OR_RETURN(std::vector<power::GpuSample> gpu_first, sample_group(gpus, group));
    const Seconds start = clock.now();
    const Seconds end = start + settings.window;
    engine::EngineSnapshot last = first;
    std::vector<power::GpuSample> gpu_last = gpu_first;
    double running_sum = 0.0;
    double kv_sum = 0.0;
    double clock_sum = 0.0;
    double capped = 0.0;
    int engine_samples = 0;
    int gpu_samples = 0;
    int min_waiting = first.waiting;
    for (int k = 1;; ++k) {
        const Seconds t = std::min(end, start + settings.sample_period * static_cast<double>(k));
        clock.sleep_until(t);
        PALS_ASSIGN_OR_RETURN(engine::EngineSnapshot snap, engine.snapshot());
        PALS_ASSIGN_OR_RETURN(std::vector<power::GpuSample> samples, sample_group(gpus, group));
        last = std::move(snap);
        gpu_last = std::move(samples);
        running_sum += last.running;
        kv_sum += last.kv_cache_usage;
        min_waiting = std::min(min_waiting, last.waiting);
        ++engine_samples;
        for (const power::GpuSample& s : gpu_last) {
            clock_sum += s.sm_clock_mhz;
            capped += s.is_power_capped() ? 1.0 : 0.0;
            ++gpu_samples;
        }
        if (t >= end) {
            break;
        }
    }

    // 4. The row.
    PALS_ASSIGN_OR_RETURN(engine::EngineWindow window, engine::window_between(first, last));
    const engine::EngineWindow& w = window;
    ProfileRow row;
    row.power_cap_w = point.power_cap_w;
    row.batch_cap = point.batch_cap;
    row.gpus = static_cast<int>(group.size());
    row.enforced_cap_w = std::numeric_limits<double>::infinity();
    double energy_j = 0.0;
    double power_w = 0.0;
    for (std::size_t i = 0; i < group.size(); ++i) {
        const double de = gpu_last[i].energy_j - gpu_first[i].energy_j;
        const double dt = (gpu_last[i].time - gpu_first[i].time).count();
        energy_j += de;
        power_w += de / (dt > 0.0 ? dt : w.duration_s);
        row.enforced_cap_w = std::min(row.enforced_cap_w, gpu_last[i].enforced_power_limit_w);
    }
    const double duration = w.duration_s;
    row.window_s = duration;
    row.warmup_s = settings.warmup.count();
    row.throughput_tok_s = w.generation_tok_s();
    row.prompt_tok_s = duration > 0.0 ? w.prompt_tokens / duration : 0.0;
    row.requests_s = duration > 0.0 ? w.requests_finished / duration : 0.0;
    row.power_w = power_w;
    row.j_per_token = w.generation_tokens > 0.0 ? energy_j / w.generation_tokens : kNaN;
    row.itl_p50_s = w.itl_s.quantile(0.5);
    row.itl_p90_s = w.itl_s.quantile(0.9);
    row.itl_p99_s = w.itl_s.quantile(0.99);
    row.tpot_p50_s = w.tpot_s.quantile(0.5);
    row.tpot_p90_s = w.tpot_s.quantile(0.9);
    row.tpot_p99_s = w.tpot_s.quantile(0.99);
    row.ttft_p50_s = w.ttft_s.quantile(0.5);
    row.ttft_p90_s = w.ttft_s.quantile(0.9);
    row.ttft_p99_s = w.ttft_s.quantile(0.99);
    row.avg_batch = engine_samples > 0 ? running_sum / engine_samples : 0.0;
    row.kv_usage = engine_samples > 0 ? kv_sum / engine_samples : 0.0;
    row.sm_clock_mhz = gpu_samples > 0 ? clock_sum / gpu_samples : 0.0;
    row.power_capped_frac = gpu_samples > 0 ? capped / gpu_samples : 0.0;
    row.preemptions = w.preemptions;
    row.saturated = min_waiting > 0;
    return row;
}

Status run_sweep(SessionFactory& factory, const SweepPlan& plan, ProfileTable& table,
                 const std::function<Status(const ProfileTable&)>& checkpoint,
                 const ProgressCallback& progress) {
    if (plan.workloads.empty() || plan.caps_w.empty() || plan.batch_caps.empty()) {
        return Status::invalid_argument(
            "empty sweep: give at least one workload, cap and batch cap");
    }
    PALS_RETURN_IF_ERROR(
        check_resume_compatible(table, factory.model_shape(), factory.backend_name()));
    SweepProgress p;
    p.total = plan.point_count();
    const int attempts = std::max(1, factory.max_attempts());
    for (const WorkloadMix& mix : plan.workloads) {
        for (int batch : plan.batch_caps) {
            for (double cap : plan.caps_w) {
                ++p.index;
                p.workload = mix.name;
                p.point = SweepPoint{cap, batch};
                const std::size_t existing = table.find(mix.name, cap, batch);
                if (existing != static_cast<std::size_t>(-1)) {
                    ++p.skipped;
                    p.was_skipped = true;
                    p.row = &table.rows[existing];
                    if (progress) {
                        progress(p);
                    }
                    continue;
                }
                Result<ProfileRow> row = Status::internal("no attempt");
                for (int attempt = 0; attempt < attempts; ++attempt) {
                    PALS_ASSIGN_OR_RETURN(std::unique_ptr<ProfileSession> session,
                                          factory.open(mix, p.point, attempt)
                                              .with_prefix(point_label(mix.name, p.point)));
                    row = measure_point(*session, p.point, plan.measure);
                    if (!row.is_ok()) {
                        return row.status().with_prefix(point_label(mix.name, p.point));
                    }
                    if (row->saturated) {
                        break;
                    }
                }
                row->workload = mix.name;
                row->backend = factory.backend_name();
                row->shape = factory.model_shape();
                table.append(std::move(row).value());
                if (checkpoint) {
                    PALS_RETURN_IF_ERROR(checkpoint(table));
                }
                ++p.measured;
                p.was_skipped = false;
                p.row = &table.rows.back();
                if (progress) {
                    progress(p);
                }
            }
        }
    }
    return Status::ok();
}

Status check_resume_compatible(const ProfileTable& table, const ModelShape& shape,
                               std::string_view backend) {
    for (std::size_t i = 0; i < table.rows.size(); ++i) {
        const ProfileRow& r = table.rows[i];
        if (!r.shape.same_setup(shape) || r.backend != backend) {
            return Status::invalid_argument(fmt::format(
                "{}: measured on {} with backend {}, but this run profiles {} with backend {}; use "
                "another --out",
                table.where(i), r.shape.describe(), r.backend, shape.describe(), backend));
        }
    }
    return Status::ok();
}

Result<std::vector<double>> parse_caps(std::string_view text) {
    PALS_ASSIGN_OR_RETURN(std::vector<double> caps, parse_grid(text, "--caps"));
    for (double c : caps) {
        if (c <= 0.0) {
            return Status::invalid_argument("--caps: caps must be > 0 W");
        }
    }
    PALS_RETURN_IF_ERROR(check_sorted_unique(caps, "--caps"));
    return caps;
}

Result<std::vector<int>> parse_batches(std::string_view text) {
    PALS_ASSIGN_OR_RETURN(std::vector<double> values, parse_grid(text, "--batches"));
    PALS_RETURN_IF_ERROR(check_sorted_unique(values, "--batches"));
    std::vector<int> out;
    for (double v : values) {
        if (v < 1.0 || v != std::floor(v) || v > 1e6) {
            return Status::invalid_argument(
                fmt::format("--batches: {} is not a batch cap (an integer >= 1)", v));
        }
        out.push_back(static_cast<int>(v));
    }
    return out;
}

}  // namespace pals::profile
