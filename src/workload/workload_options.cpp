#include "pals/workload/workload_options.hpp"

#include <fmt/format.h>

#include <string>

#include "pals/common/limits.hpp"

namespace pals::workload {

const OptionTable<WorkloadOptions>& workload_options() {
    static const OptionTable<WorkloadOptions> kOptions = {
        {.key = "trace",
         .help = "request trace: Azure CSV or JSONL ({timestamp ms, input_length, output_length})",
         .member = &WorkloadOptions::trace},
        {.key = "time_scale",
         .help = "stretch trace time by this factor",
         .member = &WorkloadOptions::time_scale,
         .range = {.lo = 0.0, .hi = 1e6, .lo_open = true}},
        {.key = "rate_scale",
         .help = "multiply the arrival rate (compress time)",
         .member = &WorkloadOptions::rate_scale,
         .range = {.lo = 0.0, .hi = 1e6, .lo_open = true}},
        {.key = "duration_s",
         .flag = "--duration",
         .help = "keep requests arriving in the first S seconds (after scaling; 0: all)",
         .member = &WorkloadOptions::duration_s,
         .range = {.lo = 0.0, .hi = kMaxSeconds, .unit = "s"}},
        {.key = "rate_rps",
         .flag = "--rate",
         .help = "synthetic arrivals: mean requests per second",
         .member = &WorkloadOptions::rate_rps,
         .range = {.lo = 0.0, .hi = 1e6, .unit = "req/s"}},
        {.key = "burstiness",
         .help = "gamma shape of inter-arrival times (1 = Poisson)",
         .member = &WorkloadOptions::burstiness,
         .range = {.lo = 0.0, .hi = 1000.0, .lo_open = true}},
        {.key = "num_requests",
         .help = "number of requests; without trace or rate: a closed loop, all at t = 0",
         .member = &WorkloadOptions::num_requests,
         .range = {.lo = 0, .hi = static_cast<double>(kMaxRequests)}},
        {.key = "input_len",
         .help = "prompt tokens: N, uniform:LO:HI, or histogram FILE.json[#KEY]",
         .member = &WorkloadOptions::input_len},
        {.key = "output_len",
         .help = "output tokens: N, uniform:LO:HI, or histogram FILE.json[#KEY]",
         .member = &WorkloadOptions::output_len},
        {.key = "seed", .help = "random seed", .member = &WorkloadOptions::seed, .in_file = false},
    };
    return kOptions;
}

Result<WorkloadSpec> WorkloadOptions::build(
    const OptionOrigins& origins,
    const std::function<std::filesystem::path(const std::string&)>& resolve) const {
    PALS_RETURN_IF_ERROR(check_option_ranges(*this, workload_options(), origins));
    WorkloadSpec spec;
    spec.time_scale = time_scale;
    spec.rate_scale = rate_scale;
    if (duration_s > 0.0) {
        spec.duration_s = duration_s;
    }
    spec.seed = seed;
    spec.num_requests = num_requests;
    spec.burstiness = burstiness;
    if (!trace.empty()) {
        spec.kind = WorkloadKind::kTrace;
        spec.trace_path = resolve ? resolve(trace) : std::filesystem::path(trace);
        return spec;
    }
    for (const auto& [key, text, target] : {std::tuple{"input_len", &input_len, &spec.input},
                                            std::tuple{"output_len", &output_len, &spec.output}}) {
        PALS_RETURN_IF_ERROR(check_length_text(origins.of(key), *text));
        PALS_ASSIGN_OR_RETURN(auto d,
                              LengthDistribution::parse(*text).with_prefix(origins.of(key)));
        *target = std::move(d);
    }
    if (rate_rps > 0.0) {
        if (num_requests == 0 && duration_s * rate_rps > static_cast<double>(kMaxRequests)) {
            return origins.error(
                "rate_rps", fmt::format("{:g} req/s x {:g} s is {:g} requests, more than the limit "
                                        "of {} (set {} or a shorter {})",
                                        rate_rps, duration_s, duration_s * rate_rps, kMaxRequests,
                                        origins.name("num_requests"), origins.name("duration_s")));
        }
        spec.kind = WorkloadKind::kSynthetic;
        spec.rate_rps = rate_rps;
        return spec;
    }
    if (num_requests > 0) {
        spec.kind = WorkloadKind::kClosedLoop;  // a backlog served offline
        return spec;
    }
    return origins.context_error(fmt::format("no workload: give {}, {} or {}",
                                             origins.name("trace"), origins.name("rate_rps"),
                                             origins.name("num_requests")));
}

Status check_length_text(std::string_view label, std::string_view text) {
    // Only the inline forms: N, fixed:N, uniform:LO:HI. Anything with a letter other than the
    // prefixes is a file name (histogram) and bounded by its parser.
    std::string_view rest = text;
    if (rest.starts_with("fixed:")) {
        rest.remove_prefix(6);
    } else if (rest.starts_with("uniform:")) {
        rest.remove_prefix(8);
    }
    for (char c : rest) {
        if (!(c == ':' || c == ' ' || (c >= '0' && c <= '9'))) {
            return Status::ok();
        }
    }
    std::size_t i = 0;
    while (i < rest.size()) {
        if (rest[i] < '0' || rest[i] > '9') {
            ++i;
            continue;
        }
        std::size_t j = i;
        while (j < rest.size() && rest[j] >= '0' && rest[j] <= '9') {
            ++j;
        }
        const std::string_view digits = rest.substr(i, j - i);
        std::size_t first = digits.find_first_not_of('0');
        const bool too_long = first != std::string_view::npos && digits.size() - first > 9;
        if (too_long || std::stoll(std::string(digits)) > kMaxTokens) {
            return Status::out_of_range(fmt::format("{}: {} tokens is more than the limit of {}",
                                                    label, digits, kMaxTokens));
        }
        i = j;
    }
    return Status::ok();
}

}  // namespace pals::workload
