#include "pals/workload/workload_options.hpp"

#include <fmt/format.h>

#include <string>

#include "pals/common/limits.hpp"
#include "pals/common/strings.hpp"

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
        {.key = "trace_start_s",
         .flag = "--trace-start",
         .help = "trace replay: start this many seconds into the trace (before scaling), "
                 "wrapping around at its end",
         .member = &WorkloadOptions::trace_start_s,
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
        {.key = "rate_steps",
         .help = "arrival-rate multipliers from given times: T:FACTOR,... (e.g. 300:5,360:1 "
                 "for a 5x burst of 60 s; time runs faster by FACTOR)",
         .member = &WorkloadOptions::rate_steps},
        {.key = "input_len",
         .help = "prompt tokens: N, uniform:LO:HI, lognormal:MEDIAN:SIGMA:LO:HI, or histogram "
                 "FILE.json[#KEY]",
         .member = &WorkloadOptions::input_len},
        {.key = "output_len",
         .help = "output tokens: N, uniform:LO:HI, lognormal:MEDIAN:SIGMA:LO:HI, or histogram "
                 "FILE.json[#KEY]",
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
    spec.trace_start_s = trace_start_s;
    spec.num_requests = num_requests;
    spec.burstiness = burstiness;
    if (!rate_steps.empty()) {
        PALS_ASSIGN_OR_RETURN(spec.rate_steps,
                              parse_rate_steps(rate_steps).with_prefix(origins.of("rate_steps")));
    }
    if (!trace.empty()) {
        spec.kind = WorkloadKind::kTrace;
        spec.trace_path = resolve ? resolve(trace) : std::filesystem::path(trace);
        return spec;
    }
    if (trace_start_s > 0.0) {
        return origins.error(
            "trace_start_s",
            fmt::format("applies to a trace replay only; give {} too", origins.name("trace")));
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

Result<std::vector<std::pair<double, double>>> parse_rate_steps(std::string_view text) {
    std::vector<std::pair<double, double>> steps;
    for (const std::string& item : split(text, ',')) {
        const std::size_t colon = item.find(':');
        if (colon == std::string_view::npos) {
            return Status::invalid_argument(
                fmt::format("'{}': expected T:FACTOR (seconds, multiplier)", item));
        }
        PALS_ASSIGN_OR_RETURN(const double t,
                              parse_number(trim(std::string_view(item).substr(0, colon))));
        PALS_ASSIGN_OR_RETURN(const double factor,
                              parse_number(trim(std::string_view(item).substr(colon + 1))));
        if (!(t >= 0.0 && t <= kMaxSeconds) || !(factor > 0.0 && factor <= 1e3)) {
            return Status::invalid_argument(fmt::format(
                "'{}': need 0 <= T <= {:g} s and 0 < FACTOR <= 1000", item, kMaxSeconds));
        }
        if (!steps.empty() && t <= steps.back().first) {
            return Status::invalid_argument(fmt::format("'{}': times must increase", item));
        }
        steps.emplace_back(t, factor);
    }
    return steps;
}

Status check_length_text(std::string_view label, std::string_view text) {
    // Only the inline forms: N, fixed:N, uniform:LO:HI. Anything with a letter other than the
    // prefixes is a file name (histogram) and bounded by its parser.
    std::string_view rest = text;
    if (rest.starts_with("fixed:")) {
        rest.remove_prefix(6);
    } else if (rest.starts_with("uniform:")) {
        rest.remove_prefix(8);
    } else if (rest.starts_with("lognormal:")) {
        // MEDIAN:SIGMA:LO:HI; the sigma is no length.
        rest.remove_prefix(10);
        const std::size_t first = rest.find(':');
        const std::size_t second =
            first == std::string_view::npos ? first : rest.find(':', first + 1);
        if (second != std::string_view::npos) {
            PALS_RETURN_IF_ERROR(check_length_text(label, rest.substr(0, first)));
            rest.remove_prefix(second + 1);
        }
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
