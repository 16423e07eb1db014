#include "pals/profile/workload_mix.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "pals/common/strings.hpp"

namespace pals::profile {

namespace {

constexpr std::size_t kMaxWorkloadNameLength = 64;

Result<std::vector<workload::Request>> load_trace_lengths(const std::string& path) {
    PALS_ASSIGN_OR_RETURN(std::vector<workload::Request> trace,
                          path.ends_with(".jsonl") ? workload::load_jsonl_trace(path)
                                                   : workload::load_azure_trace(path));
    if (trace.empty()) {
        return Status::invalid_argument(path + ": the trace has no requests");
    }
    return trace;
}

}  // namespace

bool is_valid_workload_name(std::string_view name) {
    if (name.empty() || name.size() > kMaxWorkloadNameLength) {
        return false;
    }
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-' || c == '.';
    });
}

double WorkloadMix::mean_output_tokens() const {
    if (lengths.empty()) {
        return output.mean();
    }
    double sum = 0.0;
    for (const workload::Request& r : lengths) {
        sum += std::max(1, r.output_tokens);
    }
    return sum / static_cast<double>(lengths.size());
}

double WorkloadMix::mean_input_tokens() const {
    if (lengths.empty()) {
        return input.mean();
    }
    double sum = 0.0;
    for (const workload::Request& r : lengths) {
        sum += std::max(1, r.input_tokens);
    }
    return sum / static_cast<double>(lengths.size());
}

std::vector<workload::Request> WorkloadMix::closed_loop_requests(int n, int stagger) const {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    std::vector<workload::Request> out;
    out.reserve(static_cast<std::size_t>(std::max(0, n)));
    for (int i = 0; i < n; ++i) {
        workload::Request r;
        r.id = static_cast<std::uint64_t>(i);
        r.arrival_s = 0.0;
        if (lengths.empty()) {
            r.input_tokens = input.sample(rng);
            r.output_tokens = output.sample(rng);
        } else {
            const workload::Request& src = lengths[static_cast<std::size_t>(i) % lengths.size()];
            r.input_tokens = std::max(1, src.input_tokens);
            r.output_tokens = std::max(1, src.output_tokens);
        }
        if (i < stagger) {
            // 1 - U is in (0, 1]: a request already part-way through its output.
            const double fraction = 1.0 - unit(rng);
            r.output_tokens = std::max(1, static_cast<int>(std::ceil(fraction * r.output_tokens)));
        }
        out.push_back(r);
    }
    return out;
}

WorkloadMix default_workload_mix() {
    WorkloadMix mix;
    mix.name = std::string(kDefaultWorkloadName);
    mix.spec = "in=" + std::string(kDefaultInputLen) + ",out=" + std::string(kDefaultOutputLen);
    mix.input = workload::LengthDistribution::parse(kDefaultInputLen).value();
    mix.output = workload::LengthDistribution::parse(kDefaultOutputLen).value();
    return mix;
}

Result<WorkloadMix> parse_workload_mix(std::string_view text) {
    const std::string where = "--workload '" + std::string(text) + "'";
    const std::size_t eq = text.find('=');
    if (eq == std::string_view::npos) {
        return Status::invalid_argument(
            where + ": expected NAME=SPEC, e.g. chat=in=uniform:64:512,out=256");
    }
    const std::string_view name = trim(text.substr(0, eq));
    const std::string_view spec = trim(text.substr(eq + 1));
    if (!is_valid_workload_name(name)) {
        return Status::invalid_argument(where + ": name '" + std::string(name) +
                                        "' must be 1-64 characters of A-Z a-z 0-9 _ - .");
    }
    if (spec.empty()) {
        return Status::invalid_argument(where + ": empty SPEC");
    }
    WorkloadMix mix = default_workload_mix();
    mix.name = std::string(name);
    mix.spec = std::string(spec);
    if (spec.find('=') == std::string_view::npos) {
        // A bare path: the lengths of a trace.
        PALS_ASSIGN_OR_RETURN(mix.lengths,
                              load_trace_lengths(std::string(spec)).with_prefix(where));
        return mix;
    }
    bool have_in = false;
    bool have_out = false;
    bool have_trace = false;
    std::size_t pos = 0;
    while (pos <= spec.size()) {
        std::size_t comma = spec.find(',', pos);
        if (comma == std::string_view::npos) {
            comma = spec.size();
        }
        const std::string_view item = trim(spec.substr(pos, comma - pos));
        pos = comma + 1;
        if (item.empty()) {
            return Status::invalid_argument(where + ": empty item in SPEC");
        }
        const std::size_t item_eq = item.find('=');
        if (item_eq == std::string_view::npos) {
            return Status::invalid_argument(where + ": '" + std::string(item) +
                                            "' is not KEY=VALUE (keys: in, out, trace, seed)");
        }
        const std::string_view key = trim(item.substr(0, item_eq));
        const std::string value(trim(item.substr(item_eq + 1)));
        if (key == "in" || key == "out") {
            PALS_ASSIGN_OR_RETURN(workload::LengthDistribution d,
                                  workload::LengthDistribution::parse(value).with_prefix(
                                      where + ": " + std::string(key)));
            (key == "in" ? mix.input : mix.output) = d;
            (key == "in" ? have_in : have_out) = true;
        } else if (key == "trace") {
            PALS_ASSIGN_OR_RETURN(mix.lengths, load_trace_lengths(value).with_prefix(where));
            have_trace = true;
        } else if (key == "seed") {
            std::uint64_t seed = 0;
            auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), seed);
            if (value.empty() || ec != std::errc() || ptr != value.data() + value.size()) {
                return Status::invalid_argument(where + ": seed '" + value +
                                                "' is not a non-negative integer");
            }
            mix.seed = seed;
        } else {
            return Status::invalid_argument(where + ": unknown key '" + std::string(key) +
                                            "' (keys: in, out, trace, seed)");
        }
        if (comma == spec.size()) {
            break;
        }
    }
    if (have_trace && (have_in || have_out)) {
        return Status::invalid_argument(
            where + ": trace= gives both lengths; do not combine it with in= or out=");
    }
    return mix;
}

}  // namespace pals::profile
