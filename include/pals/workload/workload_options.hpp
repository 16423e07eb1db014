#pragma once
/// @file workload_options.hpp
/// @brief The options of a workload, declared once (common/option_table.hpp): a scenario's
/// [workload] table, the workload flags of `pals simulate` and `pals loadgen` and their `PALS_*`
/// variables read this table. WorkloadOptions::build() is the one validation of a workload.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pals/common/option_table.hpp"
#include "pals/common/status.hpp"
#include "pals/workload/workload.hpp"

namespace pals::workload {

/// The values of a workload's options as given.
struct WorkloadOptions {
    std::string trace;  ///< "" = synthetic or closed loop
    double time_scale = WorkloadSpec{}.time_scale;
    double rate_scale = WorkloadSpec{}.rate_scale;
    double duration_s = 0.0;  ///< 0 = no limit
    double trace_start_s = WorkloadSpec{}.trace_start_s;
    double rate_rps = 0.0;  ///< 0 = no synthetic arrivals
    double burstiness = WorkloadSpec{}.burstiness;
    int num_requests = WorkloadSpec{}.num_requests;
    std::string rate_steps;  ///< "T:FACTOR,..." ("" = none)
    std::string input_len = "1024";
    std::string output_len = "128";
    std::uint64_t seed = WorkloadSpec{}.seed;

    /// trace -> a trace replay; rate -> synthetic arrivals; num_requests alone -> a closed
    /// loop (a backlog at t = 0). `resolve` maps the trace value to a path (default: as given).
    /// Errors start with the origin of the key at fault.
    [[nodiscard]] Result<WorkloadSpec> build(
        const OptionOrigins& origins,
        const std::function<std::filesystem::path(const std::string&)>& resolve = {}) const;
};

/// Every workload option (seed is a flag only: a scenario sets it in [run]).
[[nodiscard]] const OptionTable<WorkloadOptions>& workload_options();

/// "T:FACTOR,..." (increasing times, factors in (0, 1000]) as WorkloadSpec::rate_steps.
[[nodiscard]] Result<std::vector<std::pair<double, double>>> parse_rate_steps(
    std::string_view text);

/// A length's text (`N`, `fixed:N`, `uniform:LO:HI`) names no length above kMaxTokens;
/// kOutOfRange "LABEL: N tokens is more than the limit of ..." otherwise. Histogram files are
/// bounded by their parser and pass here.
[[nodiscard]] Status check_length_text(std::string_view label, std::string_view text);

}  // namespace pals::workload
