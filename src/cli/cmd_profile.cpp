// `pals profile`: sweep power cap x batch cap (x workload mix) on a backend and write one CSV row
// per point, resumably (docs/profile.md).
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/commands.hpp"
#include "cli/sim_options.hpp"
#include "pals/profile/profiler.hpp"
#include "pals/profile/sim_session_factory.hpp"

namespace pals::cli {

namespace {

constexpr int kBarWidth = 28;

struct ProfileOptions {
    NodeOptions node;
    std::string backend = "sim";
    std::string caps = "200:700:50";
    std::string batches = "1,2,4,...,1024";
    std::vector<std::string> workloads;
    double warmup_s = profile::kDefaultWarmupS;
    double window_s = profile::kDefaultWindowS;
    double sample_period_s = profile::kDefaultSamplePeriodS;
    std::string out;
    bool max_num_seqs_given = false;
    bool quiet = false;
};

std::string format_duration(double s) {
    if (!std::isfinite(s) || s < 0.0) {
        return "?";
    }
    const auto total = static_cast<long long>(std::lround(s));
    if (total >= 3600) {
        return fmt::format("{}:{:02}:{:02}", total / 3600, (total / 60) % 60, total % 60);
    }
    return fmt::format("{}:{:02}", total / 60, total % 60);
}

/// Renders progress on standard error: a bar with an ETA on a terminal, plain lines otherwise.
class ProgressPrinter {
public:
    ProgressPrinter(bool tty, bool quiet)
        : m_tty(tty), m_quiet(quiet), m_start(std::chrono::steady_clock::now()) {}

    void operator()(const profile::SweepProgress& p) {
        if (m_quiet) {
            return;
        }
        const double elapsed =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - m_start).count();
        // Time per measured point so far, times the points still to visit (some may be skips).
        const double per_point = p.measured > 0 ? elapsed / static_cast<double>(p.measured) : NAN;
        const double eta = per_point * static_cast<double>(p.total - p.index);
        const profile::ProfileRow* r = p.row;
        if (m_tty) {
            const auto filled = static_cast<int>(kBarWidth * static_cast<double>(p.index) /
                                                 static_cast<double>(p.total));
            std::string bar(static_cast<std::size_t>(filled), '#');
            bar += std::string(static_cast<std::size_t>(kBarWidth - filled), '.');
            std::fprintf(stderr, "\r[%s] %zu/%zu %3.0f%%  %s cap %g W batch %d  ETA %s\033[K",
                         bar.c_str(), p.index, p.total,
                         100.0 * static_cast<double>(p.index) / static_cast<double>(p.total),
                         p.workload.c_str(), p.point.power_cap_w, p.point.batch_cap,
                         p.measured > 0 ? format_duration(eta).c_str() : "?");
            if (p.index == p.total) {
                std::fputc('\n', stderr);
            }
            std::fflush(stderr);
            return;
        }
        if (p.was_skipped) {
            return;  // announced once, before the sweep
        }
        std::fprintf(
            stderr,
            "profile: [%zu/%zu] workload=%s cap=%g W batch=%d: %.0f tok/s, %.0f W, %.4f J/tok, "
            "ITL p90 %.1f ms, batch %.1f%s (ETA %s)\n",
            p.index, p.total, p.workload.c_str(), p.point.power_cap_w, p.point.batch_cap,
            r->throughput_tok_s, r->power_w, r->j_per_token, r->itl_p90_s * 1e3, r->avg_batch,
            r->saturated ? "" : ", NOT saturated", format_duration(eta).c_str());
    }

private:
    bool m_tty;
    bool m_quiet;
    std::chrono::steady_clock::time_point m_start;
};

Status run_profile(ProfileOptions opt) {
    if (opt.backend != "sim") {
        if (opt.backend == "live" || opt.backend == "nvml" || opt.backend == "vllm") {
            return Status::unavailable(
                "--backend " + opt.backend +
                ": the live backend is not available yet; use --backend sim");
        }
        return Status::invalid_argument("--backend " + opt.backend + ": expected sim");
    }
    if (opt.out.empty()) {
        return Status::invalid_argument("--out FILE.csv is required");
    }
    Result<std::vector<double>> caps = profile::parse_caps(opt.caps);
    if (!caps.is_ok()) {
        return caps.status();
    }
    Result<std::vector<int>> batches = profile::parse_batches(opt.batches);
    if (!batches.is_ok()) {
        return batches.status();
    }
    std::vector<profile::WorkloadMix> mixes;
    for (const std::string& text : opt.workloads) {
        Result<profile::WorkloadMix> mix = profile::parse_workload_mix(text);
        if (!mix.is_ok()) {
            return mix.status();
        }
        for (const profile::WorkloadMix& m : mixes) {
            if (m.name == mix->name) {
                return Status::invalid_argument("--workload: the name '" + m.name +
                                                "' is given twice");
            }
        }
        mixes.push_back(std::move(mix).value());
    }
    if (mixes.empty()) {
        mixes.push_back(profile::default_workload_mix());
    }
    profile::MeasureSettings measure;
    if (opt.warmup_s < 0.0 || opt.window_s <= 0.0 || opt.sample_period_s <= 0.0) {
        return Status::invalid_argument("--warmup must be >= 0, --window and --sample-period > 0");
    }
    measure.warmup = Seconds{opt.warmup_s};
    measure.window = Seconds{opt.window_s};
    measure.sample_period = Seconds{opt.sample_period_s};

    // The simulated backend.
    const int max_batch = batches->back();
    if (opt.max_num_seqs_given && max_batch > opt.node.max_num_seqs) {
        return Status::out_of_range(
            fmt::format("--batches goes up to {} but --max-num-seqs is {}: the batch cap can "
                        "only be lowered below the launch value",
                        max_batch, opt.node.max_num_seqs));
    }
    Result<sim::NodeConfig> node = opt.node.build();
    if (!node.is_ok()) {
        return node.status();
    }
    const sim::GpuSpec& gpu = node->gpu;
    if (caps->front() < gpu.power_limit_min_w || caps->back() > gpu.power_limit_max_w) {
        return Status::out_of_range(
            fmt::format("--caps {}-{} W is outside {}'s power-limit range {}-{} W", caps->front(),
                        caps->back(), gpu.name, gpu.power_limit_min_w, gpu.power_limit_max_w));
    }
    Result<std::unique_ptr<profile::SimSessionFactory>> factory =
        profile::SimSessionFactory::create(std::move(node).value(), measure, max_batch);
    if (!factory.is_ok()) {
        return factory.status();
    }

    // Resume from an existing profile.
    profile::ProfileTable table;
    table.source = opt.out;
    std::error_code ec;
    if (std::filesystem::exists(opt.out, ec)) {
        Result<profile::ProfileTable> existing = profile::read_profile(opt.out);
        if (!existing.is_ok()) {
            return existing.status().with_prefix("cannot resume");
        }
        table = std::move(existing).value();
    }
    PALS_RETURN_IF_ERROR(profile::check_resume_compatible(table, factory.value()->model_shape(),
                                                          factory.value()->backend_name()));
    profile::SweepPlan plan;
    plan.workloads = mixes;
    plan.caps_w = caps.value();
    plan.batch_caps = batches.value();
    plan.measure = measure;
    std::size_t already = 0;
    for (const profile::WorkloadMix& m : mixes) {
        for (int b : plan.batch_caps) {
            for (double c : plan.caps_w) {
                already += table.find(m.name, c, b) != static_cast<std::size_t>(-1) ? 1 : 0;
            }
        }
    }
    const bool tty = ::isatty(::fileno(stderr)) != 0;
    if (!opt.quiet) {
        std::fprintf(
            stderr,
            "profile: %s, %zu workload(s) x %zu caps x %zu batch caps = %zu points, warm-up %g s, "
            "window %g s%s\n",
            factory.value()->model_shape().describe().c_str(), mixes.size(), plan.caps_w.size(),
            plan.batch_caps.size(), plan.point_count(), opt.warmup_s, opt.window_s,
            already > 0 ? fmt::format("; resuming: {} already in {}", already, opt.out).c_str()
                        : "");
    }
    const auto start = std::chrono::steady_clock::now();
    ProgressPrinter printer(tty, opt.quiet);
    const std::filesystem::path out = opt.out;
    Status status = profile::run_sweep(
        *factory.value(), plan, table,
        [&out](const profile::ProfileTable& t) { return profile::write_profile(out, t); },
        [&printer](const profile::SweepProgress& p) { printer(p); });
    if (!status.is_ok()) {
        if (tty && !opt.quiet) {
            std::fputc('\n', stderr);
        }
        return status;
    }
    if (!std::filesystem::exists(out, ec)) {
        PALS_RETURN_IF_ERROR(profile::write_profile(out, table));  // every point was already there
    }
    std::size_t unsaturated = 0;
    for (const profile::ProfileRow& r : table.rows) {
        unsaturated += r.saturated ? 0 : 1;
    }
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("profile: %zu points measured, %zu already present, in %.1f s -> %s (%zu rows)\n",
                plan.point_count() - already, already, wall, opt.out.c_str(), table.rows.size());
    if (unsaturated > 0) {
        std::fprintf(stderr,
                     "profile: warning: %zu row(s) were not saturated (column saturated=0)\n",
                     unsaturated);
    }
    return Status::ok();
}

}  // namespace

void add_profile_command(CLI::App& app, CommandContext& ctx) {
    auto opt = std::make_shared<ProfileOptions>();
    CLI::App* cmd = app.add_subcommand(
        "profile",
        "sweep power cap x batch cap (x workload mix) and write one CSV row per point (resumable)");
    opt->node.add_to(*cmd);
    cmd->add_option("--backend", opt->backend, "where to measure: sim (the simulator)")
        ->capture_default_str();
    cmd->add_option("--caps", opt->caps, "power caps per GPU, W: LO:HI:STEP or a list A,B,C")
        ->capture_default_str();
    cmd->add_option("--batches", opt->batches,
                    "batch caps: a list (A,B,C,...,Z continues the pattern) or LO:HI:x2")
        ->capture_default_str();
    cmd->add_option("--workload", opt->workloads,
                    "NAME=SPEC, repeatable; SPEC: in=LEN,out=LEN[,seed=N] or trace=PATH (or a bare "
                    "trace path); "
                    "default: default=in=uniform:64:512,out=256");
    cmd->add_option("--warmup", opt->warmup_s, "seconds after setting a point before the window")
        ->capture_default_str();
    cmd->add_option("--window", opt->window_s, "steady-state window, seconds")
        ->capture_default_str();
    cmd->add_option("--sample-period", opt->sample_period_s,
                    "gauge and GPU sampling period in the window, seconds")
        ->capture_default_str();
    cmd->add_option("--out", opt->out,
                    "profile CSV; rerunning with the same file skips points already in it")
        ->required();
    cmd->add_flag("--quiet", opt->quiet, "no progress output");
    cmd->callback([opt, cmd, &ctx] {
        opt->max_num_seqs_given = cmd->count("--max-num-seqs") > 0;
        const Status status = run_profile(*opt);
        ctx.exit_code = status.is_ok() ? 0 : report_error(status);
    });
}

}  // namespace pals::cli
