// `pals models`: the model configs of the data folder's models/, with their size, MoE shape and
// the smallest tensor-parallel degree at which each fits the GPUs the simulator models.
#include <fmt/format.h>

#include <array>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "pals/model/model_catalog.hpp"
#include "pals/model/model_spec.hpp"
#include "pals/sim/cost_model.hpp"
#include "pals/sim/simulator.hpp"

namespace pals::cli {

namespace {

struct ModelsOptions {
    bool json = false;
};

/// The GPUs a row shows the fit on.
constexpr std::array<std::string_view, 3> kFitGpus = {"H100-SXM", "H200", "B200"};
constexpr int kMaxTp = 8;

struct Fit {
    int tp = 0;              ///< 0: not within kMaxTp GPUs
    double kv_tokens = 0.0;  ///< KV-cache capacity per replica at that tp
};

/// The smallest power-of-two tp at which the simulator accepts the model on `gpu` with vLLM's
/// launch defaults (the same rule as `pals simulate`: weights and reserve fit, room for KV).
Fit smallest_fit(const model::ModelSpec& spec, const sim::GpuSpec& gpu) {
    for (int tp = 1; tp <= kMaxTp; tp *= 2) {
        sim::NodeConfig node;
        node.model = spec;
        node.gpu = gpu;
        node.parallel.tp = tp;
        if (!sim::Simulator::create(node, {}).is_ok()) {
            continue;
        }
        auto cost = sim::StepCostModel::create(spec, gpu, node.parallel);
        Fit fit{tp, 0.0};
        if (cost.is_ok() && cost->kv_bytes_per_token_per_gpu() > 0.0) {
            const sim::EngineConfig e;
            fit.kv_tokens = (gpu.hbm_bytes * e.gpu_memory_utilization -
                             cost->weight_bytes_per_gpu() - e.activation_reserve_bytes) /
                            cost->kv_bytes_per_token_per_gpu();
        }
        return fit;
    }
    return {};
}

std::string fit_text(const Fit& fit) {
    if (fit.tp == 0) {
        return fmt::format("> {} GPUs", kMaxTp);
    }
    return fmt::format("tp {} ({:.0f}k KV tok)", fit.tp, fit.kv_tokens / 1e3);
}

Status run_models(const ModelsOptions& opt) {
    PALS_ASSIGN_OR_RETURN(const std::string data, data_dir());
    const std::string dir = data + "/models";
    const std::vector<std::filesystem::path> configs = model::model_configs(dir);
    if (configs.empty()) {
        return Status::not_found("no model configs in " + dir +
                                 " (set PALS_SHARED_DIR to the data folder)");
    }
    std::vector<sim::GpuSpec> gpus;
    for (const std::string_view name : kFitGpus) {
        PALS_ASSIGN_OR_RETURN(sim::GpuSpec gpu, sim::find_gpu_spec(name));
        gpus.push_back(std::move(gpu));
    }
    nlohmann::json rows = nlohmann::json::array();
    if (!opt.json) {
        std::printf("%-44s %8s %8s %9s %6s %8s", "model", "params", "active", "experts", "layers",
                    "context");
        for (const sim::GpuSpec& gpu : gpus) {
            std::printf("  %-20s", gpu.name.c_str());
        }
        std::printf("\n");
    }
    for (const std::filesystem::path& config : configs) {
        auto spec = model::load_model_spec(config);
        if (!spec.is_ok()) {  // a broken file is named, the rest still listed
            std::fprintf(stderr, "pals: warning: %s\n", spec.status().message().c_str());
            continue;
        }
        const std::string id = model::model_id(config);
        const std::string experts =
            spec->is_moe() ? fmt::format("{} top-{}", spec->num_experts, spec->experts_per_token)
                           : "dense";
        nlohmann::json fits = nlohmann::json::object();
        std::string fit_columns;
        for (const sim::GpuSpec& gpu : gpus) {
            const Fit fit = smallest_fit(*spec, gpu);
            fits[gpu.name] = fit.tp == 0
                                 ? nlohmann::json(nullptr)
                                 : nlohmann::json{{"tp", fit.tp}, {"kv_tokens", fit.kv_tokens}};
            fit_columns += fmt::format("  {:<20}", fit_text(fit));
        }
        if (opt.json) {
            rows.push_back({{"id", id},
                            {"file", config.string()},
                            {"params", spec->total_params()},
                            {"active_params", spec->active_params()},
                            {"moe", spec->is_moe()},
                            {"experts", spec->num_experts},
                            {"experts_per_token", spec->experts_per_token},
                            {"layers", spec->num_layers},
                            {"context", spec->max_position_embeddings},
                            {"fits", fits}});
        } else {
            std::printf("%-44s %7.1fB %7.1fB %9s %6d %8d%s\n", id.c_str(),
                        spec->total_params() / 1e9, spec->active_params() / 1e9, experts.c_str(),
                        spec->num_layers, spec->max_position_embeddings, fit_columns.c_str());
        }
    }
    if (opt.json) {
        std::puts(rows.dump(2).c_str());
    } else {
        std::printf(
            "(fits: the smallest tensor-parallel degree the simulator accepts with vLLM's "
            "launch defaults, and the KV cache left per replica)\n");
    }
    return Status::ok();
}

}  // namespace

void add_models_command(CLI::App& app, CommandContext& ctx) {
    auto opt = std::make_shared<ModelsOptions>();
    CLI::App* cmd = app.add_subcommand(
        "models", "list the models of the data folder's models/ (usable by name with --model)");
    cmd->add_flag("--json", opt->json, "print JSON instead of a table");
    cmd->callback([opt, &ctx] {
        const Status status = run_models(*opt);
        ctx.exit_code = status.is_ok() ? 0 : report_error(status);
    });
}

}  // namespace pals::cli
