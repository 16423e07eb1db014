// `pals profile`: sweep power cap x batch cap (x workload mix) on a backend and write one CSV row
// per point, resumably (docs/profile.md).
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

#include "cli/commands.hpp"
#include "cli/flag_checks.hpp"
#include "cli/report_format.hpp"
#include "cli/sim_options.hpp"
#include "pals/common/gpu_set.hpp"
#include "pals/common/url.hpp"
#include "pals/engine/vllm/vllm_engine.hpp"
#include "pals/power/nvml_backend.hpp"
#include "pals/power/saved_controls.hpp"
#include "pals/profile/live_session_factory.hpp"
#include "pals/profile/profiler.hpp"
#include "pals/profile/sim_session_factory.hpp"
#include "pals/workload/workload_options.hpp"

namespace pals::cli {

namespace {

constexpr int kBarWidth = 28;

struct ProfileOptions {
    NodeFlags node;
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
    // --backend live
    std::string url = "http://127.0.0.1:8000";
    std::string served_model_name;
    std::string gpus;  ///< "0,1"; empty: 0 .. tp-1
    std::string batch_cap_file = "/run/pals/batch_cap";
    std::string nvml_lib;
    std::string saved_controls = power::SavedControls::kDefaultPath;
    int concurrency = 0;
};

/// What a live profile runs against, owned for the length of the sweep.
struct LiveNode {
    SystemClock clock;
    std::unique_ptr<power::NvmlBackend> gpus;
    std::unique_ptr<engine::vllm::VllmEngine> engine;
};

/// The GPUs of the profiled group: `--gpus` (pals::parse_gpu_set) or 0..tp-1.
Result<std::vector<int>> parse_gpu_list(const std::string& text, int tp) {
    std::vector<int> out;
    if (text.empty()) {
        for (int g = 0; g < tp; ++g) {
            out.push_back(g);
        }
        return out;
    }
    PALS_ASSIGN_OR_RETURN(out, parse_gpu_set(text).with_prefix("--gpus"));
    if (static_cast<int>(out.size()) != tp) {
        return Status::invalid_argument(
            fmt::format("--gpus lists {} GPU(s) but --tp is {}: one group of tp GPUs is profiled",
                        out.size(), tp));
    }
    return out;
}

/// Opens NVML and the vLLM server of a live profile and checks both answer.
Result<std::unique_ptr<LiveNode>> open_live_node(const ProfileOptions& opt, int max_batch) {
    auto node = std::make_unique<LiveNode>();
    PALS_ASSIGN_OR_RETURN(std::vector<int> gpus, parse_gpu_list(opt.gpus, opt.node.values.tp));
    PALS_ASSIGN_OR_RETURN(Url url, Url::parse(opt.url).with_prefix("--url"));
    power::NvmlBackend::Options nvml;
    nvml.library_path = opt.nvml_lib;
    nvml.clock = &node->clock;
    PALS_ASSIGN_OR_RETURN(std::unique_ptr<power::NvmlBackend> backend,
                          power::NvmlBackend::open(nvml));
    node->gpus = std::move(backend);
    PALS_ASSIGN_OR_RETURN(int count, node->gpus->device_count());
    for (int g : gpus) {
        if (g >= count) {
            return Status::invalid_argument(
                fmt::format("--gpus: GPU {} does not exist ({} GPU(s))", g, count));
        }
    }
    engine::vllm::VllmEngineConfig engine;
    engine.host = url.host;
    engine.port = url.port;
    engine.max_num_seqs = opt.max_num_seqs_given ? opt.node.values.max_num_seqs : max_batch;
    engine.gpus = gpus;
    engine.batch_cap_path = opt.batch_cap_file;
    node->engine = std::make_unique<engine::vllm::VllmEngine>(engine, node->clock);
    if (Result<engine::EngineSnapshot> first = node->engine->snapshot(); !first.is_ok()) {
        return first.status();
    }
    return node;
}

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
    if (opt.backend != "sim" && opt.backend != "live") {
        return Status::invalid_argument("--backend " + opt.backend + ": expected sim or live");
    }
    if (opt.out.empty()) {
        return Status::invalid_argument("--out FILE.csv is required");
    }
    for (const std::string& text : opt.workloads) {
        // The lengths of NAME=in=LEN,out=LEN: at most kMaxTokens, as --input-len / --output-len.
        std::string_view rest = text;
        while (!rest.empty()) {
            const std::size_t comma = rest.find(',');
            std::string_view item = rest.substr(0, comma);
            rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
            if (const std::size_t eq = item.find('=');
                eq != std::string_view::npos && item.find("in=") != 0 && item.find("out=") != 0) {
                item = item.substr(eq + 1);  // the NAME= before the first key
            }
            for (const std::string_view key : {"in=", "out="}) {
                if (item.starts_with(key)) {
                    PALS_RETURN_IF_ERROR(
                        workload::check_length_text("--workload " + text, item.substr(key.size())));
                }
            }
        }
    }
    PALS_ASSIGN_OR_RETURN(std::vector<double> caps, profile::parse_caps(opt.caps));
    PALS_ASSIGN_OR_RETURN(std::vector<int> batches, profile::parse_batches(opt.batches));
    std::vector<profile::WorkloadMix> mixes;
    for (const std::string& text : opt.workloads) {
        PALS_ASSIGN_OR_RETURN(profile::WorkloadMix mix, profile::parse_workload_mix(text));
        for (const profile::WorkloadMix& m : mixes) {
            if (m.name == mix.name) {
                return Status::invalid_argument("--workload: the name '" + m.name +
                                                "' is given twice");
            }
        }
        mixes.push_back(std::move(mix));
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
    const int max_batch = batches.back();
    if (opt.max_num_seqs_given && max_batch > opt.node.values.max_num_seqs) {
        return Status::out_of_range(
            fmt::format("--batches goes up to {} but --max-num-seqs is {}: the batch cap can "
                        "only be lowered below the launch value",
                        max_batch, opt.node.values.max_num_seqs));
    }
    PALS_ASSIGN_OR_RETURN(sim::NodeConfig node, opt.node.build());
    const sim::GpuSpec& gpu = node.gpu;
    if (caps.front() < gpu.power_limit_min_w || caps.back() > gpu.power_limit_max_w) {
        return Status::out_of_range(
            fmt::format("--caps {}-{} W is outside {}'s power-limit range {}-{} W", caps.front(),
                        caps.back(), gpu.name, gpu.power_limit_min_w, gpu.power_limit_max_w));
    }
    // What runs, at the top of the output (stdout; the progress goes to stderr).
    std::string mix_text;
    for (const profile::WorkloadMix& m : mixes) {
        mix_text += fmt::format("{}{}: in={}, out={}", mix_text.empty() ? "" : "; ", m.name,
                                m.lengths.empty() ? m.input.describe() : "trace",
                                m.lengths.empty() ? m.output.describe() : "trace");
    }
    const std::string echo =
        fmt::format("pals profile ({} backend)\n", opt.backend) +
        node_echo(node, fmt::format("sweep of {} caps: {} W", caps.size(), fmt::join(caps, ", ")),
                  fmt::format(
                      "sweep of {} batch caps: {} (launch max-num-seqs {})", batches.size(),
                      fmt::join(batches, ", "),
                      opt.backend == "sim"
                          ? std::max(node.engine.max_num_seqs, max_batch)
                          : (opt.max_num_seqs_given ? opt.node.values.max_num_seqs : max_batch))) +
        echo_line("workload",
                  fmt::format("{}; closed loop per point, warm-up {:g} s, window {:g} s", mix_text,
                              opt.warmup_s, opt.window_s)) +
        "\n";
    Result<std::unique_ptr<profile::SessionFactory>> factory = Status::internal("no backend");
    std::unique_ptr<LiveNode> live;
    std::optional<power::SavedControls> saved;
    if (opt.backend == "sim") {
        PALS_ASSIGN_OR_RETURN(
            auto sim, profile::SimSessionFactory::create(std::move(node), measure, max_batch));
        factory = std::unique_ptr<profile::SessionFactory>(std::move(sim));
    } else {
        PALS_ASSIGN_OR_RETURN(std::unique_ptr<LiveNode> opened, open_live_node(opt, max_batch));
        live = std::move(opened);
        profile::LiveLoadConfig load;
        load.client.url = Url::parse(opt.url).value();  // checked when opened
        load.client.model = opt.served_model_name;
        if (load.client.model.empty()) {
            PALS_ASSIGN_OR_RETURN(std::string model,
                                  loadgen::fetch_first_model(load.client.url, ""));
            load.client.model = std::move(model);
        }
        load.concurrency = opt.concurrency;
        PALS_ASSIGN_OR_RETURN(
            auto made, profile::LiveSessionFactory::create(
                           live->clock, *live->gpus, *live->engine,
                           profile::model_shape_of(node.model, node.gpu.name, node.parallel.tp,
                                                   node.parallel.ep),
                           std::move(load), max_batch));
        factory = std::unique_ptr<profile::SessionFactory>(std::move(made));
        // Every cap the sweep writes is undone at the end (or by `pals power restore`).
        saved.emplace(opt.saved_controls);
        PALS_RETURN_IF_ERROR(saved->save(*live->gpus, live->engine->gpus()));
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
    plan.caps_w = caps;
    plan.batch_caps = batches;
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
    std::fputs(echo.c_str(), stdout);
    std::fflush(stdout);
    if (!opt.quiet) {
        std::fprintf(
            stderr, "profile: %zu workload(s) x %zu caps x %zu batch caps = %zu points%s\n",
            mixes.size(), plan.caps_w.size(), plan.batch_caps.size(), plan.point_count(),
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
    if (live) {
        static_cast<profile::LiveSessionFactory&>(*factory.value()).stop_load();
        (void)live->engine->set_batch_cap(live->engine->max_batch_cap());
        if (Status restored = saved->restore(*live->gpus); !restored.is_ok()) {
            return status.is_ok() ? restored.with_prefix("restoring the GPU limits") : status;
        }
    }
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
    // The sweep sets caps itself and measures one replica: no --replicas, --power-cap,
    // --locked-clock or router flags.
    opt->node.add_to(*cmd, {"replicas", "power_cap_w", "locked_clock_mhz", "router", "sessions",
                            "session_skew"});
    cmd->get_option("--max-num-seqs")
        ->description(
            "the engine's launch batch cap (vLLM --max-num-seqs; default: the largest "
            "batch cap of --batches)")
        ->default_str("");
    cmd->add_option("--backend", opt->backend,
                    "where to measure: sim (the simulator) or live (NVML + a vLLM-compatible "
                    "server at --url, loaded by a built-in closed-loop client)")
        ->capture_default_str();
    cmd->add_option("--url", opt->url, "live: the server's base URL (OpenAI API and /metrics)")
        ->capture_default_str();
    cmd->add_option("--served-model-name", opt->served_model_name,
                    "live: the model name requests carry (default: the server's first)");
    cmd->add_option("--gpus", opt->gpus,
                    "live: NVML indices of the server's GPUs (default 0..tp-1)");
    cmd->add_option("--batch-cap-file", opt->batch_cap_file,
                    "live: the file the server's PALS plugin reads the batch cap from")
        ->capture_default_str();
    cmd->add_option("--nvml-lib", opt->nvml_lib, "live: libnvidia-ml.so.1 to load")
        ->envname("PALS_NVML_LIB");
    cmd->add_option("--saved-controls", opt->saved_controls,
                    "live: where the GPU limits found at start are kept until restored")
        ->envname("PALS_SAVED_CONTROLS")
        ->capture_default_str();
    cmd->add_option("--concurrency", opt->concurrency,
                    "live: requests kept in flight (default: largest batch cap + max(16, 25 %))")
        ->check(integer_in(0, kMaxSeqs));
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
        ->check(finite_in(0.0, 86400.0, "s"))
        ->capture_default_str();
    cmd->add_option("--window", opt->window_s, "steady-state window, seconds")
        ->check(finite_above(0.0, 86400.0, "s"))
        ->capture_default_str();
    cmd->add_option("--sample-period", opt->sample_period_s,
                    "gauge and GPU sampling period in the window, seconds")
        ->check(finite_above(0.0, 3600.0, "s"))
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
