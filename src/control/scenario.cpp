#include "pals/control/scenario.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "pals/common/file_util.hpp"
#include "pals/common/option_table.hpp"
#include "pals/common/toml_values.hpp"
#include "pals/control/policy_metrics.hpp"
#include "pals/control/policy_registry.hpp"
#include "pals/model/model_catalog.hpp"
#include "pals/workload/workload_options.hpp"

namespace pals::control {

namespace {

std::filesystem::path resolve(const std::string& value, const std::filesystem::path& scenario_dir,
                              const std::filesystem::path& shared_dir) {
    std::filesystem::path p(value);
    if (p.is_absolute()) {
        return p;
    }
    std::error_code ec;
    if (std::filesystem::exists(scenario_dir / p, ec)) {
        return scenario_dir / p;
    }
    return shared_dir / p;
}

/// The shortest control period of a scenario.
constexpr double kMinScenarioPeriodS = 0.001;

/// Reads the option table of section `section` (absent: defaults), naming each key's origin.
template <class C>
Result<OptionOrigins> read_section(C& values, const OptionTable<C>& options,
                                   const TomlReader& reader, std::string_view section,
                                   const std::vector<std::string_view>& skip = {}) {
    OptionOrigins origins;
    const std::string& file = reader.file();
    const std::string prefix(section);
    origins.fallback = [file, prefix](std::string_view key) {
        return file + ": " + prefix + "." + std::string(key);
    };
    origins.label = [prefix](std::string_view key) { return prefix + "." + std::string(key); };
    origins.context = file + ": " + prefix;
    const auto node = reader.root()[section];
    if (!node) {
        return origins;
    }
    const toml::table* table = node.as_table();
    if (table == nullptr) {
        return reader.error(section, "must be a table ([" + prefix + "])");
    }
    PALS_RETURN_IF_ERROR(read_toml_options(values, options, *table, file, section, origins, skip));
    return origins;
}

/// Every key of section `section` is one of `known`.
Status check_section_keys(const TomlReader& reader, std::string_view section,
                          const std::vector<std::string_view>& known) {
    const auto node = reader.root()[section];
    if (!node) {
        return Status::ok();
    }
    const toml::table* table = node.as_table();
    if (table == nullptr) {
        return reader.error(section, "must be a table ([" + std::string(section) + "])");
    }
    for (const auto& [key, value] : *table) {
        if (std::find(known.begin(), known.end(), key.str()) == known.end()) {
            return unknown_key_error(
                toml_location(reader.file(), key.source()) + ": " + std::string(section), key.str(),
                known);
        }
    }
    return Status::ok();
}

/// A bound: { min = X, max = Y }, either optional, min <= max.
Status read_bound(const toml::node& node, const std::string& origin, Expectation& e) {
    const toml::table* bound = node.as_table();
    if (bound == nullptr) {
        return Status::invalid_argument(origin + ": must be a table { min = X, max = Y }");
    }
    for (const auto& [key, value] : *bound) {
        std::optional<double>& slot = key.str() == "min" ? e.min : e.max;
        if (key.str() != "min" && key.str() != "max") {
            return unknown_key_error(origin, key.str(), {"min", "max"});
        }
        auto v = value.value<double>();
        if (!v || !std::isfinite(*v)) {
            return Status::invalid_argument(origin + "." + std::string(key.str()) +
                                            ": must be a finite number");
        }
        slot = *v;
    }
    if (!e.min && !e.max) {
        return Status::invalid_argument(origin + ": needs min, max or both");
    }
    if (e.min && e.max && *e.min > *e.max) {
        return Status::invalid_argument(origin + ": min is above max");
    }
    return Status::ok();
}

/// [expect]: `policy = NAME`, figures `METRIC = {min, max}`, and `[expect.ratio.BASELINE]`
/// tables of the same form.
Status read_expectations(const TomlReader& reader, Scenario& s) {
    const auto node = reader.root()["expect"];
    if (!node) {
        return Status::ok();
    }
    const toml::table* table = node.as_table();
    if (table == nullptr) {
        return reader.error("expect", "must be a table ([expect])");
    }
    std::vector<std::string_view> metric_names;
    for (const MetricField& f : metric_fields()) {
        metric_names.push_back(f.name);
    }
    const auto add = [&](const toml::key& key, const toml::node& value, const std::string& baseline,
                         const std::string& parent) -> Status {
        const std::string where = toml_location(reader.file(), key.source()) + ": " + parent;
        const std::string origin = where + "." + std::string(key.str());
        if (find_metric(key.str()) == nullptr) {
            return unknown_key_error(where, key.str(), metric_names);
        }
        Expectation e;
        e.metric = std::string(key.str());
        e.baseline = baseline;
        e.origin = origin;
        PALS_RETURN_IF_ERROR(read_bound(value, origin, e));
        s.expect.push_back(std::move(e));
        return Status::ok();
    };
    for (const auto& [key, value] : *table) {
        const std::string name(key.str());
        if (name == "policy") {
            continue;
        }
        if (name == "ratio") {
            const toml::table* ratios = value.as_table();
            if (ratios == nullptr) {
                return reader.error("expect.ratio", "must be a table of [expect.ratio.BASELINE]");
            }
            for (const auto& [baseline, bounds] : *ratios) {
                const std::string base(baseline.str());
                const std::string prefix = "expect.ratio." + base;
                if (find_policy(base) == nullptr) {
                    return Status::invalid_argument(
                        toml_location(reader.file(), baseline.source()) + ": " + prefix + ": " +
                        unknown_policy(base).message());
                }
                const toml::table* metrics = bounds.as_table();
                if (metrics == nullptr) {
                    return reader.error(prefix, "must be a table of METRIC = { min, max }");
                }
                for (const auto& [metric, bound] : *metrics) {
                    PALS_RETURN_IF_ERROR(add(metric, bound, base, prefix));
                }
            }
            continue;
        }
        PALS_RETURN_IF_ERROR(add(key, value, "", "expect"));
    }
    PALS_ASSIGN_OR_RETURN(const std::optional<std::string> policy,
                          reader.get<std::string>("expect.policy"));
    if (policy) {
        if (find_policy(*policy) == nullptr) {
            return reader.error("expect.policy", unknown_policy(*policy).message());
        }
        s.expect_policy = *policy;
    }
    return Status::ok();
}

}  // namespace

Result<sim::NodeConfig> simulated_node(const Scenario& scenario) {
    sim::NodeConfig node = scenario.node;
    PALS_ASSIGN_OR_RETURN(
        node.gpu,
        sim::perturb(node.gpu, scenario.physics).with_prefix(scenario.path.string() + ": physics"));
    return node;
}

Result<Scenario> load_scenario(const std::filesystem::path& path,
                               const std::filesystem::path& shared_dir) {
    PALS_ASSIGN_OR_RETURN(std::string document, read_file(path));
    return parse_scenario(document, path, path.parent_path(), shared_dir);
}

Result<Scenario> parse_scenario(std::string_view document, const std::filesystem::path& path,
                                const std::filesystem::path& dir,
                                const std::filesystem::path& shared_dir) {
    PALS_ASSIGN_OR_RETURN(const toml::table root, parse_toml(document, path.string()));
    const TomlReader reader(root, path.string());
    const auto resolve_path = [&](const std::string& value) {
        return resolve(value, dir, shared_dir);
    };
    Scenario s;
    s.path = path;
    s.name = path.stem().string();
    static const std::vector<std::string> kSections = {"name",   "node", "workload", "slo",
                                                       "budget", "run",  "physics",  "expect"};
    for (const auto& [key, value] : root) {
        if (std::find(kSections.begin(), kSections.end(), std::string(key.str())) ==
            kSections.end()) {
            return Status::invalid_argument(
                toml_location(path.string(), key.source()) + ": " + std::string(key.str()) +
                ": unknown section (expected node, workload, slo, budget, run, physics, expect)");
        }
    }
    PALS_ASSIGN_OR_RETURN(const std::optional<std::string> name, reader.get<std::string>("name"));
    if (name) {
        s.name = *name;
    }

    // [node], [workload], [slo]: the option tables every front end shares.
    sim::NodeOptions node;
    PALS_ASSIGN_OR_RETURN(const OptionOrigins node_origins,
                          read_section(node, sim::node_options(), reader, "node"));
    if (node.model.empty()) {
        return reader.error("node.model", "missing (a Hugging Face config.json)");
    }
    // A path (relative to the file, then the data folder), or a model name in models/.
    if (std::error_code ec; !std::filesystem::exists(resolve_path(node.model), ec)) {
        PALS_ASSIGN_OR_RETURN(const std::filesystem::path config,
                              model::find_model_config(node.model, shared_dir / "models")
                                  .with_prefix(node_origins.of("model")));
        node.model = config.string();
    }
    PALS_ASSIGN_OR_RETURN(s.node, node.build(node_origins, {}, resolve_path));

    workload::WorkloadOptions workload;
    PALS_ASSIGN_OR_RETURN(
        const OptionOrigins workload_origins,
        read_section(workload, workload::workload_options(), reader, "workload", {"target_tok_s"}));
    PALS_ASSIGN_OR_RETURN(s.workload, workload.build(workload_origins, resolve_path));
    PALS_ASSIGN_OR_RETURN(const std::optional<double> target,
                          reader.get<double>("workload.target_tok_s"));
    s.target_tok_s = target.value_or(0.0);

    PALS_RETURN_IF_ERROR(read_section(s.slo, sim::slo_options(), reader, "slo").status());

    PALS_ASSIGN_OR_RETURN(const OptionOrigins physics_origins,
                          read_section(s.physics, sim::physics_options(), reader, "physics"));
    PALS_RETURN_IF_ERROR(sim::perturb(s.node.gpu, s.physics, physics_origins).status());

    PALS_RETURN_IF_ERROR(check_section_keys(
        reader, "budget", {"watts", "fraction_of_tdp", "steps", "step_fractions"}));
    PALS_RETURN_IF_ERROR(check_section_keys(
        reader, "run", {"policies", "seed", "period_s", "power_model", "warmup_s"}));

    // [budget]: watts, or a fraction of the GPUs' TDP, or steps of either.
    const double gpus = static_cast<double>(s.node.parallel.tp * s.node.replicas);
    const double tdp = gpus * s.node.gpu.power_limit_max_w;
    const double minimum = gpus * s.node.gpu.power_limit_min_w;
    PALS_ASSIGN_OR_RETURN(const std::optional<double> watts, reader.get<double>("budget.watts"));
    PALS_ASSIGN_OR_RETURN(const std::optional<double> fraction,
                          reader.get<double>("budget.fraction_of_tdp"));
    std::vector<std::pair<double, double>> steps;
    if (watts) {
        steps.emplace_back(0.0, *watts);
    } else if (fraction) {
        steps.emplace_back(0.0, *fraction * tdp);
    }
    for (const char* key : {"budget.steps", "budget.step_fractions"}) {
        const toml::array* array = root.at_path(key).as_array();
        if (root.at_path(key) && array == nullptr) {
            return reader.error(key, "must be an array of [t_s, value] pairs");
        }
        if (array == nullptr) {
            continue;
        }
        const double scale = std::string(key) == "budget.step_fractions" ? tdp : 1.0;
        for (std::size_t i = 0; i < array->size(); ++i) {
            const toml::array* pair = array->get(i)->as_array();
            std::optional<double> t =
                pair && pair->size() == 2 ? pair->get(0)->value<double>() : std::nullopt;
            std::optional<double> v =
                pair && pair->size() == 2 ? pair->get(1)->value<double>() : std::nullopt;
            if (!t || !v || !std::isfinite(*t) || !std::isfinite(*v) || *t < 0.0) {
                return reader.error(std::string(key) + "[" + std::to_string(i) + "]",
                                    "must be [t_s, value] (finite numbers, t_s >= 0)");
            }
            steps.emplace_back(*t, *v * scale);
        }
    }
    if (!steps.empty()) {
        std::sort(steps.begin(), steps.end());
        for (const auto& [t, v] : steps) {
            if (v < minimum) {
                return reader.error("budget",
                                    "budget " + std::to_string(static_cast<int>(v)) +
                                        " W at t=" + std::to_string(static_cast<int>(t)) +
                                        " s is below the GPUs' minimum caps (" +
                                        std::to_string(static_cast<int>(minimum)) + " W for " +
                                        std::to_string(static_cast<int>(gpus)) + " GPUs)");
            }
        }
        auto schedule = BudgetSchedule::from_steps(steps);
        if (!schedule.is_ok()) {
            return reader.error("budget", schedule.status().message());
        }
        s.budget = schedule.value();
    }

    // [run]
    const auto policies = root.at_path("run.policies");
    if (policies) {
        const toml::array* array = policies.as_array();
        if (array == nullptr) {
            return reader.error("run.policies", "must be an array of strings");
        }
        for (const toml::node& n : *array) {
            auto name_value = n.value_exact<std::string>();
            if (!name_value) {
                return reader.error("run.policies", "must be an array of strings");
            }
            if (find_policy(*name_value) == nullptr) {
                return reader.error("run.policies", unknown_policy(*name_value).message());
            }
            s.policies.push_back(*name_value);
        }
    } else {
        for (const std::string_view policy : policy_names()) {
            s.policies.emplace_back(policy);
        }
    }
    PALS_ASSIGN_OR_RETURN(const std::optional<int> seed, reader.get<int>("run.seed"));
    PALS_ASSIGN_OR_RETURN(const std::optional<double> period, reader.get<double>("run.period_s"));
    PALS_ASSIGN_OR_RETURN(const std::optional<std::string> power_model,
                          reader.get<std::string>("run.power_model"));
    PALS_ASSIGN_OR_RETURN(const std::optional<double> warmup, reader.get<double>("run.warmup_s"));
    s.warmup_s = warmup.value_or(0.0);
    if (s.warmup_s < 0.0) {
        return reader.error("run.warmup_s", "must be >= 0");
    }
    s.seed = static_cast<std::uint64_t>(seed.value_or(0));
    s.workload.seed = s.seed;
    s.period_s = period.value_or(1.0);
    if (!(s.period_s >= kMinScenarioPeriodS && s.period_s <= 3600.0)) {
        return reader.error("run.period_s", "must be 0.001-3600 s");
    }
    if (power_model) {
        s.power_model = resolve(*power_model, dir, shared_dir);
    }
    PALS_RETURN_IF_ERROR(read_expectations(reader, s));
    return s;
}

}  // namespace pals::control
