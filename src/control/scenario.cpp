#include "pals/control/scenario.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "pals/common/file_util.hpp"
#include "pals/common/toml_values.hpp"

namespace pals::control {

namespace {

/// Errors carry "<file>: <key>: <what>".
class Reader {
public:
    Reader(const toml::table& root, std::string file) : m_root(root), m_file(std::move(file)) {}

    Status error(const std::string& key, const std::string& what) const {
        return Status::invalid_argument(m_file + ": " + key + ": " + what);
    }

    template <class T>
    Result<std::optional<T>> get(const std::string& key) const {
        const auto node = m_root.at_path(key);
        if (!node) {
            return std::optional<T>{};
        }
        Result<T> value = toml_value<T>(*node.node());
        if (!value.is_ok()) {
            return error(key, value.status().message());
        }
        return std::optional<T>{std::move(value).value()};
    }

    const toml::table& root() const { return m_root; }
    const std::string& file() const { return m_file; }

private:
    const toml::table& m_root;
    std::string m_file;
};

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

// Bounds of a scenario's counts (docs/evaluate.md): no allocation or loop grows past them.
constexpr int kMaxScenarioGpus = 1024;
constexpr int kMaxScenarioSeqs = 1'000'000;
constexpr int kMaxScenarioTokens = 10'000'000;
constexpr int kMaxScenarioRequests = 10'000'000;
constexpr double kMinScenarioPeriodS = 0.001;

}  // namespace

const std::vector<std::string>& known_policies() {
    static const std::vector<std::string> kPolicies = {
        "default",       "cap-only",      "batch-only", "clock-only",
        "static-oracle", "window-oracle", "pals"};
    return kPolicies;
}

Result<Scenario> load_scenario(const std::filesystem::path& path,
                               const std::filesystem::path& shared_dir) {
    PALS_ASSIGN_OR_RETURN(std::string document, read_file(path));
    toml::table root;
    try {
        root = toml::parse(document, path.string());
    } catch (const toml::parse_error& e) {
        const auto& where = e.source().begin;
        return Status::invalid_argument(path.string() + ":" + std::to_string(where.line) + ":" +
                                        std::to_string(where.column) + ": " +
                                        std::string(e.description()));
    }
    Reader reader(root, path.string());
    const std::filesystem::path dir = path.parent_path();
    Scenario s;
    s.path = path;
    s.name = path.stem().string();
    static const std::vector<std::string> kSections = {"name", "node",   "workload",
                                                       "slo",  "budget", "run"};
    for (const auto& [key, value] : root) {
        if (std::find(kSections.begin(), kSections.end(), std::string(key.str())) ==
            kSections.end()) {
            return reader.error(std::string(key.str()),
                                "unknown section (expected node, workload, slo, budget, run)");
        }
    }
    PALS_ASSIGN_OR_RETURN(const std::optional<std::string> name, reader.get<std::string>("name"));
    if (name) {
        s.name = *name;
    }

    // [node]
    PALS_ASSIGN_OR_RETURN(const std::optional<std::string> model,
                          reader.get<std::string>("node.model"));
    if (!model) {
        return reader.error("node.model", "missing (a Hugging Face config.json)");
    }
    PALS_ASSIGN_OR_RETURN(const std::optional<std::string> dtype,
                          reader.get<std::string>("node.dtype"));
    std::optional<model::WeightDtype> dtype_override;
    if (dtype) {
        auto d = model::parse_weight_dtype(*dtype);
        if (!d.is_ok()) {
            return reader.error("node.dtype", d.status().message());
        }
        dtype_override = d.value();
    }
    auto spec = model::load_model_spec(resolve(*model, dir, shared_dir), dtype_override);
    if (!spec.is_ok()) {
        return spec.status().with_prefix(path.string() + ": node.model");
    }
    s.node.model = std::move(spec).value();
    PALS_ASSIGN_OR_RETURN(const std::optional<std::string> gpu,
                          reader.get<std::string>("node.gpu"));
    auto gpu_spec = sim::find_gpu_spec(gpu.value_or("H100-SXM"));
    if (!gpu_spec.is_ok()) {
        return reader.error("node.gpu", gpu_spec.status().message());
    }
    s.node.gpu = gpu_spec.value();
    PALS_ASSIGN_OR_RETURN(const std::optional<int> tp, reader.get<int>("node.tp"));
    PALS_ASSIGN_OR_RETURN(const std::optional<int> ep, reader.get<int>("node.ep"));
    PALS_ASSIGN_OR_RETURN(const std::optional<int> replicas, reader.get<int>("node.replicas"));
    PALS_ASSIGN_OR_RETURN(const std::optional<int> max_num_seqs,
                          reader.get<int>("node.max_num_seqs"));
    PALS_ASSIGN_OR_RETURN(const std::optional<int> batched,
                          reader.get<int>("node.max_num_batched_tokens"));
    PALS_ASSIGN_OR_RETURN(const std::optional<double> skew,
                          reader.get<double>("node.routing_skew"));
    s.node.parallel.tp = tp.value_or(1);
    s.node.parallel.ep = ep.value_or(1);
    s.node.parallel.routing_skew = skew.value_or(0.0);
    s.node.replicas = replicas.value_or(1);
    s.node.engine.max_num_seqs = max_num_seqs.value_or(1024);  // vLLM's H100 default
    s.node.engine.max_num_batched_tokens = batched.value_or(8192);
    if (s.node.parallel.tp < 1 || s.node.replicas < 1 || s.node.engine.max_num_seqs < 1) {
        return reader.error("node", "tp, replicas and max_num_seqs must be >= 1");
    }
    if (s.node.parallel.tp > kMaxScenarioGpus || s.node.replicas > kMaxScenarioGpus ||
        s.node.parallel.tp * s.node.replicas > kMaxScenarioGpus) {
        return reader.error(
            "node", "tp x replicas must be at most " + std::to_string(kMaxScenarioGpus) + " GPUs");
    }
    if (s.node.engine.max_num_seqs > kMaxScenarioSeqs) {
        return reader.error("node.max_num_seqs",
                            "must be at most " + std::to_string(kMaxScenarioSeqs));
    }
    if (s.node.engine.max_num_batched_tokens < 1 ||
        s.node.engine.max_num_batched_tokens > kMaxScenarioTokens) {
        return reader.error("node.max_num_batched_tokens",
                            "must be 1-" + std::to_string(kMaxScenarioTokens));
    }
    if (s.node.parallel.routing_skew < 0.0) {
        return reader.error("node.routing_skew", "must be >= 0");
    }

    // [workload]
    PALS_ASSIGN_OR_RETURN(const std::optional<std::string> trace,
                          reader.get<std::string>("workload.trace"));
    PALS_ASSIGN_OR_RETURN(const std::optional<double> rate,
                          reader.get<double>("workload.rate_rps"));
    PALS_ASSIGN_OR_RETURN(const std::optional<int> num_requests,
                          reader.get<int>("workload.num_requests"));
    PALS_ASSIGN_OR_RETURN(const std::optional<double> burstiness,
                          reader.get<double>("workload.burstiness"));
    PALS_ASSIGN_OR_RETURN(const std::optional<double> time_scale,
                          reader.get<double>("workload.time_scale"));
    PALS_ASSIGN_OR_RETURN(const std::optional<double> rate_scale,
                          reader.get<double>("workload.rate_scale"));
    PALS_ASSIGN_OR_RETURN(const std::optional<double> duration,
                          reader.get<double>("workload.duration_s"));
    PALS_ASSIGN_OR_RETURN(const std::optional<std::string> input_len,
                          reader.get<std::string>("workload.input_len"));
    PALS_ASSIGN_OR_RETURN(const std::optional<std::string> output_len,
                          reader.get<std::string>("workload.output_len"));
    PALS_ASSIGN_OR_RETURN(const std::optional<double> target,
                          reader.get<double>("workload.target_tok_s"));
    workload::WorkloadSpec& w = s.workload;
    w.time_scale = time_scale.value_or(1.0);
    w.rate_scale = rate_scale.value_or(1.0);
    w.duration_s = duration;
    w.num_requests = num_requests.value_or(0);
    w.burstiness = burstiness.value_or(1.0);
    s.target_tok_s = target.value_or(0.0);
    if (!(w.time_scale > 0.0) || !(w.rate_scale > 0.0) || !(w.burstiness > 0.0)) {
        return reader.error("workload", "time_scale, rate_scale and burstiness must be > 0");
    }
    if (duration && !(*duration > 0.0)) {
        return reader.error("workload.duration_s", "must be > 0");
    }
    if (w.num_requests < 0 || w.num_requests > kMaxScenarioRequests) {
        return reader.error("workload.num_requests",
                            "must be 0-" + std::to_string(kMaxScenarioRequests));
    }
    if (rate && (!(*rate > 0.0) ||
                 (w.num_requests == 0 && duration && *rate * *duration > kMaxScenarioRequests))) {
        return reader.error("workload.rate_rps", "must be > 0, and rate_rps x duration_s at most " +
                                                     std::to_string(kMaxScenarioRequests) +
                                                     " requests");
    }
    if (trace) {
        w.kind = workload::WorkloadKind::kTrace;
        w.trace_path = resolve(*trace, dir, shared_dir);
    } else {
        for (const auto& [key, text, target_len] :
             {std::tuple{"workload.input_len", input_len, &w.input},
              std::tuple{"workload.output_len", output_len, &w.output}}) {
            if (text) {
                auto d = workload::LengthDistribution::parse(*text);
                if (!d.is_ok()) {
                    return reader.error(key, d.status().message());
                }
                *target_len = d.value();
            }
        }
        if (rate) {
            w.kind = workload::WorkloadKind::kSynthetic;
            w.rate_rps = *rate;
        } else if (w.num_requests > 0) {
            w.kind = workload::WorkloadKind::kClosedLoop;  // a backlog served offline
        } else {
            return reader.error("workload", "needs trace, rate_rps, or num_requests (a backlog)");
        }
    }

    // [slo]
    PALS_ASSIGN_OR_RETURN(const std::optional<double> ttft, reader.get<double>("slo.ttft_s"));
    PALS_ASSIGN_OR_RETURN(const std::optional<double> tpot, reader.get<double>("slo.tpot_s"));
    s.slo.ttft_s = ttft.value_or(1.0);
    s.slo.tpot_s = tpot.value_or(0.1);
    if (s.slo.ttft_s <= 0.0 || s.slo.tpot_s <= 0.0) {
        return reader.error("slo", "ttft_s and tpot_s must be > 0");
    }

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
            if (std::find(known_policies().begin(), known_policies().end(), *name_value) ==
                known_policies().end()) {
                std::string known;
                for (const std::string& k : known_policies()) {
                    known += (known.empty() ? "" : ", ") + k;
                }
                return reader.error("run.policies",
                                    "unknown policy '" + *name_value + "' (known: " + known + ")");
            }
            s.policies.push_back(*name_value);
        }
    } else {
        s.policies = known_policies();
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
    return s;
}

}  // namespace pals::control
