// `pals gpus`: one row per GPU (identity, power, energy, limits, SM clock, throttle reasons),
// read through NVML (or the fake libnvidia-ml.so.1 named by --nvml-lib / PALS_NVML_LIB).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "pals/power/nvml_backend.hpp"

namespace pals::cli {

namespace {

struct GpusOptions {
    bool json = false;
    std::string nvml_lib;
};

/// One GPU's readings, or the error that prevented them.
struct GpuRow {
    int index = 0;
    power::GpuInfo info;
    power::GpuSample sample;
    power::PowerLimitRange range;
    Status error;
};

GpuRow read_row(power::GpuBackend& backend, int gpu) {
    GpuRow row;
    row.index = gpu;
    auto info = backend.device_info(gpu);
    if (!info.is_ok()) {
        row.error = info.status();
        return row;
    }
    row.info = *info;
    auto sample = backend.sample(gpu);
    if (!sample.is_ok()) {
        row.error = sample.status();
        return row;
    }
    row.sample = *sample;
    auto range = backend.power_limit_range(gpu);
    if (!range.is_ok()) {
        row.error = range.status();
        return row;
    }
    row.range = *range;
    return row;
}

std::string number(double value, int decimals) {
    return std::isfinite(value) ? fmt::format("{:.{}f}", value, decimals) : std::string("n/a");
}

nlohmann::json json_number(double value) {
    return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(nullptr);
}

std::string status_code_name(StatusCode code) {
    switch (code) {
        case StatusCode::kOk:
            return "ok";
        case StatusCode::kInvalidArgument:
            return "invalid_argument";
        case StatusCode::kNotFound:
            return "not_found";
        case StatusCode::kOutOfRange:
            return "out_of_range";
        case StatusCode::kUnavailable:
            return "unavailable";
        case StatusCode::kPermissionDenied:
            return "permission_denied";
        case StatusCode::kInternal:
            break;
    }
    return "internal";
}

nlohmann::json row_to_json(const GpuRow& r) {
    if (!r.error.is_ok()) {
        return {{"index", r.index},
                {"error",
                 {{"code", status_code_name(r.error.code())}, {"message", r.error.message()}}}};
    }
    const power::GpuSample& s = r.sample;
    return {{"index", r.index},
            {"name", r.info.name},
            {"uuid", r.info.uuid},
            {"power_w", json_number(s.power_w)},
            {"energy_j", json_number(s.energy_j)},
            {"power_limit_w", json_number(s.power_limit_w)},
            {"enforced_power_limit_w", json_number(s.enforced_power_limit_w)},
            {"power_limit_default_w", json_number(r.range.default_w)},
            {"power_limit_min_w", json_number(r.range.min_w)},
            {"power_limit_max_w", json_number(r.range.max_w)},
            {"sm_clock_mhz", json_number(s.sm_clock_mhz)},
            {"throttle_reasons_mask", s.throttle_reasons},
            {"throttle_reasons", power::throttle_reason_names(s.throttle_reasons)}};
}

std::string rows_to_table(const std::vector<GpuRow>& rows) {
    const std::vector<std::string> header = {"GPU",      "NAME",    "UUID",       "POWER W",
                                             "ENERGY J", "LIMIT W", "ENFORCED W", "DEFAULT W",
                                             "MIN W",    "MAX W",   "SM MHZ",     "THROTTLE"};
    std::vector<std::vector<std::string>> cells;
    for (const GpuRow& r : rows) {
        if (!r.error.is_ok()) {
            cells.push_back({std::to_string(r.index), "error: " + r.error.message()});
            continue;
        }
        const power::GpuSample& s = r.sample;
        cells.push_back(
            {std::to_string(r.index), r.info.name, r.info.uuid, number(s.power_w, 1),
             number(s.energy_j, 1), number(s.power_limit_w, 1), number(s.enforced_power_limit_w, 1),
             number(r.range.default_w, 1), number(r.range.min_w, 1), number(r.range.max_w, 1),
             number(s.sm_clock_mhz, 0), power::throttle_reasons_to_string(s.throttle_reasons)});
    }
    std::vector<std::size_t> width(header.size(), 0);
    for (std::size_t c = 0; c < header.size(); ++c) {
        width[c] = header[c].size();
    }
    for (const auto& row : cells) {
        if (row.size() != header.size()) {
            continue;  // an error row spans the line
        }
        for (std::size_t c = 0; c < row.size(); ++c) {
            width[c] = std::max(width[c], row[c].size());
        }
    }
    auto line = [&](const std::vector<std::string>& row) {
        std::string out;
        for (std::size_t c = 0; c < row.size(); ++c) {
            const bool last = c + 1 == row.size();
            out += last ? row[c] : fmt::format("{:<{}}  ", row[c], width[c]);
        }
        return out + "\n";
    };
    std::string out = line(header);
    for (const auto& row : cells) {
        out += line(row);
    }
    return out;
}

Status run_gpus(const GpusOptions& opt) {
    PALS_ASSIGN_OR_RETURN(auto backend, power::NvmlBackend::open({opt.nvml_lib, nullptr}));
    PALS_ASSIGN_OR_RETURN(auto count, backend->device_count());
    std::vector<GpuRow> rows;
    Status first_error;
    for (int gpu = 0; gpu < count; ++gpu) {
        rows.push_back(read_row(*backend, gpu));
        if (first_error.is_ok() && !rows.back().error.is_ok()) {
            first_error = rows.back().error;
        }
    }
    if (opt.json) {
        nlohmann::json doc = {{"backend", std::string(backend->backend_name())},
                              {"library", backend->library_path()},
                              {"driver_version", backend->driver_version()},
                              {"gpus", nlohmann::json::array()}};
        for (const GpuRow& r : rows) {
            doc["gpus"].push_back(row_to_json(r));
        }
        std::fputs((doc.dump(2) + "\n").c_str(), stdout);
    } else {
        std::fputs(rows_to_table(rows).c_str(), stdout);
    }
    std::fflush(stdout);
    return first_error;  // every readable GPU was shown; a failing one decides the exit code
}

}  // namespace

void add_gpus_command(CLI::App& app, CommandContext& ctx) {
    auto opt = std::make_shared<GpusOptions>();
    CLI::App* cmd = app.add_subcommand(
        "gpus", "list the GPUs: power, energy, power limits, SM clock and throttle reasons (NVML)");
    cmd->add_flag("--json", opt->json, "print JSON instead of a table");
    cmd->add_option("--nvml-lib", opt->nvml_lib,
                    "NVML library to load (default: $PALS_NVML_LIB, else libnvidia-ml.so.1)");
    cmd->callback([opt, &ctx] {
        const Status status = run_gpus(*opt);
        ctx.exit_code = status.is_ok() ? 0 : report_error(status);
    });
}

}  // namespace pals::cli
