#include "cli/sim_options.hpp"

#include "cli/commands.hpp"
#include "cli/option_flags.hpp"
#include "pals/model/model_catalog.hpp"

namespace pals::cli {

Result<std::string> default_model_path() {
    PALS_ASSIGN_OR_RETURN(const std::string data, data_dir());
    return data + "/models/mistralai__Mixtral-8x7B-Instruct-v0.1.json";
}

void NodeFlags::add_to(CLI::App& app_, std::vector<std::string_view> skip_) {
    app = &app_;
    skip = std::move(skip_);
    add_option_flags(app_, sim::node_options(), values, skip);
    app_.get_option("--model")->description(
        "the model: a config.json path, or a name in the data folder's models/ "
        "(mistralai/Mixtral-8x7B-Instruct-v0.1, Mixtral-8x7B-Instruct-v0.1; `pals models` "
        "lists them; default: Mixtral-8x7B)");
}

Result<sim::NodeConfig> NodeFlags::build() const {
    sim::NodeOptions v = values;
    PALS_ASSIGN_OR_RETURN(const OptionOrigins origins,
                          apply_option_sources(*app, sim::node_options(), v, skip));
    std::error_code ec;
    if (!v.model.empty() && !std::filesystem::is_regular_file(v.model, ec)) {
        // a name in the data folder's models/ (or a missing file, which that lookup reports)
        PALS_ASSIGN_OR_RETURN(const std::string data,
                              data_dir().with_prefix(origins.of("model") + ": '" + v.model + "'"));
        PALS_ASSIGN_OR_RETURN(
            const std::filesystem::path config,
            model::find_model_config(v.model, data + "/models").with_prefix(origins.of("model")));
        v.model = config.string();
    }
    std::string fallback;  // the default model, needed only when none is named
    if (v.model.empty()) {
        PALS_ASSIGN_OR_RETURN(fallback, default_model_path().with_prefix("the default model"));
    }
    return v.build(origins, fallback);
}

void WorkloadFlags::add_to(CLI::App& app_) {
    app = &app_;
    add_option_flags(app_, workload::workload_options(), values);
}

Result<workload::WorkloadSpec> WorkloadFlags::build() const {
    workload::WorkloadOptions v = values;
    PALS_ASSIGN_OR_RETURN(const OptionOrigins origins,
                          apply_option_sources(*app, workload::workload_options(), v));
    return v.build(origins);
}

void SloFlags::add_to(CLI::App& app_) {
    app = &app_;
    add_option_flags(app_, sim::slo_options(), values);
}

Result<sim::SloTargets> SloFlags::build() const {
    sim::SloTargets v = values;
    PALS_RETURN_IF_ERROR(apply_option_sources(*app, sim::slo_options(), v).status());
    PALS_RETURN_IF_ERROR(sim::validate(v));
    return v;
}

}  // namespace pals::cli
