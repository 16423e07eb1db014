#include "pals/control/policy_metrics.hpp"

#include <array>

namespace pals::control {

namespace {

using M = PolicyMetrics;

constexpr std::array<MetricField, 23> kFields = {{
    {"tokens_per_joule", [](const M& m) { return m.tokens_per_joule; }},
    {"efficiency_vs_default", [](const M& m) { return m.efficiency_vs_default; }},
    {"slo_attainment", [](const M& m) { return m.slo_attainment; }},
    {"qos_violations", [](const M& m) { return static_cast<double>(m.qos_violations); }, true},
    {"ttft_violations", [](const M& m) { return static_cast<double>(m.ttft_violations); }, true},
    {"tpot_violations", [](const M& m) { return static_cast<double>(m.tpot_violations); }, true},
    {"qos_violation_rate", [](const M& m) { return m.qos_violation_rate; }},
    {"expected_violation_rate", [](const M& m) { return m.expected_violation_rate; }},
    {"qos_violations_vs_cap_only", [](const M& m) { return m.qos_vs_cap_only; }},
    {"goodput_tok_s", [](const M& m) { return m.goodput_tok_s; }},
    {"served_deficit", [](const M& m) { return m.served_deficit; }},
    {"windows_missed", [](const M& m) { return static_cast<double>(m.windows_missed); }, true},
    {"windows_total", [](const M& m) { return static_cast<double>(m.windows_total); }, true},
    {"budget_excess_j", [](const M& m) { return m.budget_excess_j; }},
    {"budget_excess_share",
     [](const M& m) {
         return m.budget_energy_j > 0 ? m.budget_excess_j / m.budget_energy_j : 0.0;
     }},
    {"budget_peak_excess_w", [](const M& m) { return m.budget_peak_excess_w; }},
    {"time_over_budget_s", [](const M& m) { return m.time_over_budget_s; }},
    {"settle_time_s", [](const M& m) { return m.settle_time_s; }},
    {"output_tokens", [](const M& m) { return m.output_tokens; }},
    {"energy_j", [](const M& m) { return m.energy_j; }},
    {"duration_s", [](const M& m) { return m.duration_s; }},
    {"requests", [](const M& m) { return static_cast<double>(m.requests); }, true},
    {"actuations_per_min", [](const M& m) { return m.actuations_per_min; }},
}};

}  // namespace

std::span<const MetricField> metric_fields() {
    return kFields;
}

const MetricField* find_metric(std::string_view name) {
    for (const MetricField& f : kFields) {
        if (f.name == name) {
            return &f;
        }
    }
    return nullptr;
}

}  // namespace pals::control
