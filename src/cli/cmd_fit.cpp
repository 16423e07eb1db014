// `pals fit`: fit the power-performance model of a profile and report its cross-validated error
// (docs/profile.md).
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>

#include "cli/commands.hpp"
#include "cli/flag_checks.hpp"
#include "cli/report_format.hpp"
#include "pals/common/file_util.hpp"
#include "pals/profile/model_fit.hpp"
#include "pals/profile/power_model.hpp"

namespace pals::cli {

namespace {

struct FitCommandOptions {
    std::string profile;
    std::string out;
    int folds = 5;
    std::uint64_t seed = 0;
    std::vector<std::string> workloads;
};

std::string pct(double v) {
    return std::isfinite(v) ? fmt::format("{:.2f}", v) : std::string("n/a");
}

std::string cv_table(const profile::WorkloadFit& w) {
    std::vector<std::vector<std::string>> rows;
    auto add = [&rows](std::string_view name, const profile::CvError& e, double iso) {
        rows.push_back({std::string(name), pct(e.mape_pct), pct(e.max_ape_pct),
                        std::to_string(e.points), pct(e.batch_mape_pct),
                        std::isfinite(iso) ? pct(iso) : std::string("-")});
    };
    for (profile::Quantity q : profile::kAllQuantities) {
        const auto qi = static_cast<std::size_t>(q);
        add(profile::quantity_name(q), w.cv[qi], w.isotonic_max_adjust_pct[qi]);
    }
    add("j_per_token (P/T)", w.cv_j_per_token, NAN);
    return format_table({"quantity", "k-fold MAPE %", "max APE %", "points", "batch-row MAPE %",
                         "isotonic max adj %"},
                        rows);
}

Status run_fit(const FitCommandOptions& opt) {
    const auto start = std::chrono::steady_clock::now();
    PALS_ASSIGN_OR_RETURN(profile::ProfileTable table, profile::read_profile(opt.profile));
    profile::FitOptions fit_options;
    fit_options.folds = opt.folds;
    fit_options.seed = opt.seed;
    fit_options.workloads = opt.workloads;
    PALS_ASSIGN_OR_RETURN(profile::FitResult fit, profile::fit_profile(table, fit_options));
    const std::string json = profile::model_json(fit);
    // Load what was written back through the reader the controller uses, so a model that
    // cannot be queried is never written.
    Result<profile::PowerModel> check =
        profile::PowerModel::parse(json, opt.out.empty() ? "MODEL.json" : opt.out);
    if (!check.is_ok()) {
        return Status::internal("the fitted model does not load back: " + check.status().message());
    }
    if (!opt.out.empty()) {
        PALS_RETURN_IF_ERROR(write_file_atomic(opt.out, json));
    }
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const profile::FitResult& f = fit;
    std::printf("%s\n", f.shape.describe().c_str());
    std::printf(
        "%zu rows, %zu workload(s), grid %zu caps (%g-%g W) x %zu batch caps (%d-%d); %d-fold "
        "CV\n\n",
        f.rows, f.workloads.size(), f.workloads.front().caps_w.size(),
        f.workloads.front().caps_w.front(), f.workloads.front().caps_w.back(),
        f.workloads.front().batch_caps.size(), f.workloads.front().batch_caps.front(),
        f.workloads.front().batch_caps.back(), f.folds);
    for (const profile::WorkloadFit& w : f.workloads) {
        std::printf("workload %s: cross-validated error\n%s\n", w.name.c_str(),
                    cv_table(w).c_str());
    }
    std::printf("fit in %.3f s%s\n", wall,
                opt.out.empty() ? " (no --out: model not written)"
                                : fmt::format(" -> {}", opt.out).c_str());
    return Status::ok();
}

}  // namespace

void add_fit_command(CLI::App& app, CommandContext& ctx) {
    auto opt = std::make_shared<FitCommandOptions>();
    CLI::App* cmd =
        app.add_subcommand("fit", "fit the power-performance model of a profile (cross-validated)");
    cmd->add_option("profile", opt->profile, "profile CSV written by `pals profile`")->required();
    cmd->add_option("--out", opt->out,
                    "MODEL.json to write (atomically); without it only the CV table is printed");
    cmd->add_option("--folds", opt->folds, "k of the k-fold cross-validation")
        ->check(integer_in(2, 1000))
        ->capture_default_str();
    cmd->add_option("--seed", opt->seed, "seed of the fold assignment")->capture_default_str();
    cmd->add_option("--workload", opt->workloads,
                    "fit only this workload mix (repeatable; default: all)");
    cmd->callback([opt, &ctx] {
        const Status status = run_fit(*opt);
        ctx.exit_code = status.is_ok() ? 0 : report_error(status);
    });
}

}  // namespace pals::cli
