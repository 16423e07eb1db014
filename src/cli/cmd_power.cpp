// `pals power set | restore | watch`: GPU power limits through NVML, with the previous values
// saved before the first write (SavedControls) so that they can always be put back.
//
// Signals: `set --hold` and `watch` install SIGINT/SIGTERM handlers that only set a flag and
// write one byte to a self-pipe (both async-signal-safe); the command's own loop notices, stops,
// and (for `set --hold`) restores the saved limits before it exits.
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <climits>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/flag_checks.hpp"
#include "cli/stop_signals.hpp"
#include "pals/common/gpu_set.hpp"
#include "pals/power/nvml_backend.hpp"
#include "pals/power/saved_controls.hpp"

namespace pals::cli {

namespace {

/// The shortest `watch --interval`, s.
constexpr double kMinWatchIntervalS = 0.01;

// ---- shared helpers -----------------------------------------------------------------------------

Result<std::unique_ptr<power::NvmlBackend>> open_backend(const std::string& nvml_lib) {
    return power::NvmlBackend::open({nvml_lib, nullptr});
}

/// The GPUs `--gpus` names (pals::parse_gpu_set: "all", "0,1", "0-3"), each < count; repeats
/// dropped.
Result<std::vector<int>> parse_gpu_list(const std::string& text, int count) {
    if (count <= 0) {
        return Status::unavailable("no GPU found (NVML reports 0 GPUs)");
    }
    PALS_ASSIGN_OR_RETURN(std::vector<int> listed,
                          parse_gpu_set(text, count).with_prefix("--gpus"));
    std::vector<int> gpus;
    for (int gpu : listed) {
        if (std::find(gpus.begin(), gpus.end(), gpu) == gpus.end()) {
            gpus.push_back(gpu);
        }
    }
    return gpus;
}

/// The NVML backend and the GPUs `--gpus` selects on it.
struct SelectedGpus {
    std::unique_ptr<power::NvmlBackend> backend;
    std::vector<int> gpus;
};

Result<SelectedGpus> open_selected_gpus(const std::string& nvml_lib, const std::string& gpu_list) {
    PALS_ASSIGN_OR_RETURN(auto backend, open_backend(nvml_lib));
    PALS_ASSIGN_OR_RETURN(auto count, backend->device_count());
    PALS_ASSIGN_OR_RETURN(auto gpus, parse_gpu_list(gpu_list, count));
    return SelectedGpus{std::move(backend), std::move(gpus)};
}

void print_line(const std::string& line) {
    std::fputs((line + "\n").c_str(), stdout);
    std::fflush(stdout);
}

// ---- pals power set -----------------------------------------------------------------------------

struct SetOptions {
    std::string gpus;
    double limit_w = 0.0;
    std::string state_file = power::SavedControls::kDefaultPath;
    bool hold = false;
    double duration_s = 0.0;
    std::string nvml_lib;
};

/// Puts back the limits this invocation wrote before a later write failed.
void roll_back(power::GpuBackend& backend, const std::vector<std::pair<int, double>>& written,
               power::SavedControls& saved) {
    for (const auto& [gpu, before_w] : written) {
        auto st = backend.set_power_limit(gpu, before_w);
        if (!st.is_ok()) {
            std::fprintf(stderr, "pals: error: rolling back GPU %d: %s\n", gpu,
                         st.status().message().c_str());
        }
    }
    const Status st = saved.discard_new();
    if (!st.is_ok()) {
        std::fprintf(stderr, "pals: error: %s\n", st.message().c_str());
    }
}

Status run_set(const SetOptions& opt) {
    std::optional<StopSignals> signals;
    if (opt.hold) {
        signals.emplace();  // before the first write: a signal from now on ends in a restore
    }
    if (!std::isfinite(opt.limit_w) || opt.limit_w <= 0.0) {
        return Status::invalid_argument("--limit must be a positive number of watts");
    }
    if (opt.duration_s < 0.0 || (opt.duration_s > 0.0 && !opt.hold)) {
        return Status::invalid_argument("--duration needs --hold and a positive number of seconds");
    }
    PALS_ASSIGN_OR_RETURN(auto selected, open_selected_gpus(opt.nvml_lib, opt.gpus));
    power::GpuBackend& gpu_backend = *selected.backend;
    const std::vector<int>* gpus = &selected.gpus;

    // Validate every GPU before anything is written.
    std::vector<double> before_w;
    for (int gpu : *gpus) {
        PALS_ASSIGN_OR_RETURN(auto range, gpu_backend.power_limit_range(gpu));
        if (!range.contains(opt.limit_w)) {
            return Status::out_of_range(
                fmt::format("--limit {:g} W is outside the allowed range of GPU {}: {:g}-{:g} W "
                            "(nothing was changed)",
                            opt.limit_w, gpu, range.min_w, range.max_w));
        }
        PALS_ASSIGN_OR_RETURN(auto current, gpu_backend.power_limit_w(gpu));
        before_w.push_back(current);
    }

    PALS_ASSIGN_OR_RETURN(auto saved, power::SavedControls::load(opt.state_file));
    PALS_RETURN_IF_ERROR(saved.save(gpu_backend, *gpus));

    std::vector<std::pair<int, double>> written;
    for (std::size_t i = 0; i < gpus->size(); ++i) {
        const int gpu = (*gpus)[i];
        auto enforced = gpu_backend.set_power_limit(gpu, opt.limit_w);
        if (!enforced.is_ok()) {
            roll_back(gpu_backend, written, saved);
            return enforced.status();
        }
        written.emplace_back(gpu, before_w[i]);
        print_line(fmt::format("GPU {}: power limit {:.1f} W (enforced {:.1f} W), was {:.1f} W",
                               gpu, opt.limit_w, *enforced, before_w[i]));
    }
    if (!opt.hold) {
        print_line(
            fmt::format("saved the previous limits in {}; `pals power restore --state-file {}` "
                        "puts them back",
                        opt.state_file, opt.state_file));
        return Status::ok();
    }
    print_line(
        opt.duration_s > 0.0
            ? fmt::format("holding for {:g} s; Ctrl-C or SIGTERM restores the saved limits earlier",
                          opt.duration_s)
            : std::string("holding; Ctrl-C or SIGTERM restores the saved limits"));
    signals->wait_for(opt.duration_s > 0.0 ? opt.duration_s : -1.0);
    PALS_RETURN_IF_ERROR(saved.restore_gpus(gpu_backend, *gpus));
    for (std::size_t i = 0; i < gpus->size(); ++i) {
        auto now = gpu_backend.power_limit_w((*gpus)[i]);
        print_line(fmt::format("GPU {}: restored power limit {:.1f} W", (*gpus)[i],
                               now.is_ok() ? *now : NAN));
    }
    return Status::ok();
}

// ---- pals power restore -------------------------------------------------------------------------

struct RestoreOptions {
    std::string state_file = power::SavedControls::kDefaultPath;
    std::string nvml_lib;
};

Status run_restore(const RestoreOptions& opt) {
    std::error_code ec;
    if (!std::filesystem::exists(opt.state_file, ec)) {
        print_line(fmt::format("nothing to restore: {} does not exist", opt.state_file));
        return Status::ok();
    }
    PALS_ASSIGN_OR_RETURN(auto saved, power::SavedControls::load(opt.state_file));
    PALS_ASSIGN_OR_RETURN(auto backend, open_backend(opt.nvml_lib));
    const std::vector<power::SavedGpuControls> entries = saved.entries();
    PALS_RETURN_IF_ERROR(saved.restore(*backend));
    for (const power::SavedGpuControls& e : entries) {
        print_line(fmt::format("GPU {} ({}): power limit restored to {:.1f} W", e.index, e.uuid,
                               e.power_limit_w));
    }
    print_line(fmt::format("restored {} GPU(s); removed {}", entries.size(), opt.state_file));
    return Status::ok();
}

// ---- pals power watch ---------------------------------------------------------------------------

struct WatchOptions {
    double interval_s = 1.0;
    int count = 0;
    bool json = false;
    std::string gpus = "all";
    std::string nvml_lib;
};

nlohmann::json json_number(double value) {
    return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(nullptr);
}

Status run_watch(const WatchOptions& opt) {
    if (!(opt.interval_s >= kMinWatchIntervalS) || !std::isfinite(opt.interval_s)) {
        return Status::invalid_argument(
            fmt::format("--interval must be at least {} s", kMinWatchIntervalS));
    }
    if (opt.count < 0) {
        return Status::invalid_argument("--count must be >= 0 (0: until Ctrl-C)");
    }
    StopSignals signals;
    PALS_ASSIGN_OR_RETURN(auto selected, open_selected_gpus(opt.nvml_lib, opt.gpus));
    power::GpuBackend& gpu_backend = *selected.backend;
    const std::vector<int>* gpus = &selected.gpus;
    auto read_all = [&]() -> Result<std::vector<power::GpuSample>> {
        std::vector<power::GpuSample> out;
        for (int gpu : *gpus) {
            PALS_ASSIGN_OR_RETURN(auto s, gpu_backend.sample(gpu));
            out.push_back(s);
        }
        return out;
    };
    PALS_ASSIGN_OR_RETURN(auto first, read_all());
    std::vector<power::GpuSample> prev = first;
    const Seconds t0 = prev.empty() ? Seconds{0.0} : prev.front().time;
    if (!opt.json) {
        print_line(
            fmt::format("watching {} GPU(s) every {:g} s: power = energy-counter delta / time "
                        "(Ctrl-C stops)",
                        gpus->size(), opt.interval_s));
    }
    // Ticks on a fixed schedule (start + n * interval), so slow reads do not make it drift.
    const auto start = std::chrono::steady_clock::now();
    for (int n = 0; opt.count == 0 || n < opt.count; ++n) {
        const auto tick = start + std::chrono::duration<double>(opt.interval_s * (n + 1));
        const double wait_s =
            std::chrono::duration<double>(tick - std::chrono::steady_clock::now()).count();
        if (signals.wait_for(std::max(wait_s, 0.0))) {
            break;
        }
        PALS_ASSIGN_OR_RETURN(auto cur, read_all());
        const double t_s = cur.empty() ? 0.0 : (cur.front().time - t0).count();
        std::string line = fmt::format("{:8.2f} s", t_s);
        nlohmann::json record = {{"t_s", t_s}, {"gpus", nlohmann::json::array()}};
        for (std::size_t i = 0; i < cur.size(); ++i) {
            const power::GpuSample& a = prev[i];
            const power::GpuSample& b = (cur)[i];
            const double dt = (b.time - a.time).count();
            const double de = b.energy_j - a.energy_j;
            const bool from_energy = std::isfinite(de) && dt > 0.0;
            const double power_w = from_energy ? de / dt : b.power_w;
            line +=
                fmt::format("  gpu{} {:7.1f} W {:>9} J", b.index, power_w,
                            std::isfinite(de) ? fmt::format("{:+.1f}", de) : std::string("n/a"));
            if (!from_energy) {
                line += " (reading)";
            }
            record["gpus"].push_back(
                {{"index", b.index},
                 {"power_w", json_number(power_w)},
                 {"power_from_energy", from_energy},
                 {"energy_delta_j", json_number(de)},
                 {"energy_j", json_number(b.energy_j)},
                 {"power_reading_w", json_number(b.power_w)},
                 {"sm_clock_mhz", json_number(b.sm_clock_mhz)},
                 {"power_limit_w", json_number(b.power_limit_w)},
                 {"enforced_power_limit_w", json_number(b.enforced_power_limit_w)},
                 {"throttle_reasons", power::throttle_reason_names(b.throttle_reasons)}});
        }
        print_line(opt.json ? record.dump() : line);
        prev = std::move(cur);
    }
    return Status::ok();
}

void add_nvml_lib_option(CLI::App* cmd, std::string& target) {
    cmd->add_option("--nvml-lib", target,
                    "NVML library to load (default: $PALS_NVML_LIB, else libnvidia-ml.so.1)");
}

void add_state_file_option(CLI::App* cmd, std::string& target) {
    cmd->add_option("--state-file", target, "where the saved (previous) GPU controls are kept")
        ->envname("PALS_SAVED_CONTROLS")
        ->capture_default_str();
}

}  // namespace

void add_power_command(CLI::App& app, CommandContext& ctx) {
    CLI::App* power_cmd =
        app.add_subcommand("power", "set, restore and watch GPU power limits (NVML)");
    power_cmd->require_subcommand(1);

    auto set_opt = std::make_shared<SetOptions>();
    CLI::App* set = power_cmd->add_subcommand(
        "set",
        "set the power limit of GPUs, saving the previous limits first (see `pals power restore`)");
    set->add_option("--gpus", set_opt->gpus, "GPUs: indices and ranges, e.g. 0,1 or 0-3, or all")
        ->required();
    set->add_option("--limit", set_opt->limit_w,
                    "power limit, W (must be in every GPU's allowed range)")
        ->check(finite_in(0.0, 100000.0, "W"))
        ->required();
    add_state_file_option(set, set_opt->state_file);
    set->add_flag(
        "--hold", set_opt->hold,
        "keep running and restore the saved limits on Ctrl-C, SIGTERM or after --duration");
    set->add_option("--duration", set_opt->duration_s,
                    "with --hold: restore after this many seconds")
        ->check(finite_in(0.0, kMaxSeconds, "s"));
    add_nvml_lib_option(set, set_opt->nvml_lib);
    set->callback([set_opt, &ctx] {
        const Status status = run_set(*set_opt);
        ctx.exit_code = status.is_ok() ? 0 : report_error(status);
    });

    auto restore_opt = std::make_shared<RestoreOptions>();
    CLI::App* restore = power_cmd->add_subcommand(
        "restore",
        "put back the saved GPU controls (e.g. after a crash), then remove the state file");
    add_state_file_option(restore, restore_opt->state_file);
    add_nvml_lib_option(restore, restore_opt->nvml_lib);
    restore->callback([restore_opt, &ctx] {
        const Status status = run_restore(*restore_opt);
        ctx.exit_code = status.is_ok() ? 0 : report_error(status);
    });

    auto watch_opt = std::make_shared<WatchOptions>();
    CLI::App* watch = power_cmd->add_subcommand(
        "watch", "print per-GPU power and energy (from energy-counter deltas) every interval");
    watch->add_option("--interval", watch_opt->interval_s, "seconds between samples")
        ->check(finite_in(0.001, 86400.0, "s"))
        ->capture_default_str();
    watch->add_option("--count", watch_opt->count, "number of samples (0: until Ctrl-C)")
        ->check(integer_in(0, kMaxRequests))
        ->capture_default_str();
    watch
        ->add_option("--gpus", watch_opt->gpus, "GPUs: indices and ranges, e.g. 0,1 or 0-3, or all")
        ->capture_default_str();
    watch->add_flag("--json", watch_opt->json, "one JSON object per sample");
    add_nvml_lib_option(watch, watch_opt->nvml_lib);
    watch->callback([watch_opt, &ctx] {
        const Status status = run_watch(*watch_opt);
        ctx.exit_code = status.is_ok() ? 0 : report_error(status);
    });
}

}  // namespace pals::cli
