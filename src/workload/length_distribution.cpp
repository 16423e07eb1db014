/// @file length_distribution.cpp
/// @brief LengthDistribution: fixed, uniform, truncated lognormal and histogram token-count
/// distributions.

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "pals/common/file_util.hpp"
#include "pals/common/json.hpp"
#include "pals/workload/workload.hpp"

namespace pals::workload {

namespace {

using nlohmann::json;

constexpr std::string_view kUniformPrefix = "uniform:";
constexpr std::string_view kFixedPrefix = "fixed:";
constexpr std::string_view kLognormalPrefix = "lognormal:";
constexpr std::string_view kSyntax =
    "expected N, uniform:LO:HI, lognormal:MEDIAN:SIGMA:LO:HI, or FILE.json[#KEY]";
/// Draws a truncated lognormal rejects before it clamps (only for a sliver of mass in range).
constexpr int kMaxLognormalDraws = 1000;

/// The standard normal CDF.
double normal_cdf(double z) {
    return 0.5 * std::erfc(-z / std::sqrt(2.0));
}
/// How many keys a "missing key" message lists before "... (N more)".
constexpr std::size_t kMaxListedKeys = 8;

/// Parses a whole string as an int (an optional leading '+'); false on anything else.
bool parse_int(std::string_view text, int& out) {
    const char* first = text.data();
    const char* last = text.data() + text.size();
    if (first != last && *first == '+') {
        ++first;
    }
    const auto [ptr, ec] = std::from_chars(first, last, out);
    return ec == std::errc() && ptr == last && first != last;
}

Result<int> parse_length(std::string_view text, std::string_view what, std::string_view whole) {
    int value = 0;
    if (!parse_int(text, value)) {
        return Status::invalid_argument(
            fmt::format("length distribution '{}': {} '{}' is not an integer ({})", whole, what,
                        text, kSyntax));
    }
    if (value < 1) {
        return Status::invalid_argument(
            fmt::format("length distribution '{}': {} must be >= 1 (got {})", whole, what, value));
    }
    return value;
}

/// Reads a JSON array of finite numbers.
Result<std::vector<double>> number_array(const json& parent, const char* key,
                                         const std::string& where) {
    const auto it = parent.find(key);
    if (it == parent.end()) {
        return Status::invalid_argument(fmt::format("{}: missing \"{}\"", where, key));
    }
    if (!it->is_array()) {
        return Status::invalid_argument(fmt::format("{}: \"{}\" is not an array", where, key));
    }
    std::vector<double> values;
    values.reserve(it->size());
    for (const json& v : *it) {
        if (!v.is_number()) {
            return Status::invalid_argument(
                fmt::format("{}: \"{}\" holds a non-number (a {})", where, key, v.type_name()));
        }
        values.push_back(v.get<double>());
    }
    return values;
}

/// Lists an object's keys for an error message, truncated after kMaxListedKeys.
std::string list_keys(const json& object) {
    std::string out;
    std::size_t n = 0;
    for (auto it = object.begin(); it != object.end(); ++it, ++n) {
        if (n == kMaxListedKeys) {
            out += fmt::format(", ... ({} more)", object.size() - kMaxListedKeys);
            break;
        }
        if (n > 0) {
            out += ", ";
        }
        out += it.key();
    }
    return out.empty() ? "(none)" : out;
}

bool holds_histogram(const json& node) {
    return node.is_object() && node.contains("bins") && node.contains("counts");
}

/// Builds a histogram from an object holding "bins" and "counts". `bins` is either the edges
/// (one longer than counts) or the left edges (as long as counts; the last right edge is then
/// inferred from the spacing of the last two).
Result<LengthDistribution> histogram_from_json(const json& node, const std::string& where) {
    PALS_ASSIGN_OR_RETURN(auto bins, number_array(node, "bins", where));
    PALS_ASSIGN_OR_RETURN(auto counts, number_array(node, "counts", where));
    std::vector<double> edges = std::move(bins);
    if (edges.size() == counts.size()) {
        if (edges.size() < 2) {
            return Status::invalid_argument(fmt::format(
                "{}: \"bins\" has as many entries as \"counts\" ({}); need at least 2 to infer "
                "the last bin's width",
                where, edges.size()));
        }
        const double width = edges[edges.size() - 1] - edges[edges.size() - 2];
        edges.push_back(edges.back() + width);
    } else if (edges.size() != counts.size() + 1) {
        return Status::invalid_argument(
            fmt::format("{}: \"bins\" has {} entries but \"counts\" has {} (expected {} or {})",
                        where, edges.size(), counts.size(), counts.size() + 1, counts.size()));
    }
    PALS_ASSIGN_OR_RETURN(
        auto hist,
        LengthDistribution::histogram(std::move(edges), std::move(counts)).with_prefix(where));
    return hist;
}

Result<LengthDistribution> parse_file(std::string_view text) {
    // "FILE#KEY": a whole text naming an existing file wins, so paths holding '#' still work.
    std::string path_text(text);
    std::string key;
    bool has_key = false;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path_text, ec)) {
        if (const auto hash = text.find('#'); hash != std::string_view::npos) {
            path_text = std::string(text.substr(0, hash));
            key = std::string(text.substr(hash + 1));
            has_key = true;
        }
    }
    PALS_ASSIGN_OR_RETURN(auto content, read_file(path_text).with_prefix("length distribution"));
    Result<json> parsed = parse_json(content, path_text);
    if (!parsed.is_ok()) {
        return parsed.status().with_prefix("length distribution");
    }
    const json doc = std::move(parsed).value();
    constexpr const char* kNested = "model_output_length_distribution";
    const json* node = &doc;
    std::string where = path_text;
    if (has_key) {
        if (!doc.is_object() || !doc.contains(key)) {
            return Status::invalid_argument(
                fmt::format("{}: no key '{}'; available: {}", path_text, key,
                            doc.is_object() ? list_keys(doc) : "(none)"));
        }
        node = &doc.at(key);
        where += "#" + key;
    }
    if (holds_histogram(*node)) {
        return histogram_from_json(*node, where);
    }
    if (node->is_object() && node->contains(kNested) && holds_histogram((*node)[kNested])) {
        return histogram_from_json((*node)[kNested], where + ": " + kNested);
    }
    if (!has_key && doc.is_object()) {
        return Status::invalid_argument(
            fmt::format("{}: no \"bins\"/\"counts\" at the top level; pick one with {}#KEY; "
                        "available: {}",
                        path_text, path_text, list_keys(doc)));
    }
    return Status::invalid_argument(
        fmt::format("{}: holds neither \"bins\"/\"counts\" nor \"{}\"", where, kNested));
}

bool looks_like_file(std::string_view text) {
    if (text.find('/') != std::string_view::npos || text.find(".json") != std::string_view::npos) {
        return true;
    }
    std::error_code ec;
    return std::filesystem::exists(std::string(text), ec) ||
           std::filesystem::exists(std::string(text.substr(0, text.find('#'))), ec);
}

}  // namespace

Result<LengthDistribution> LengthDistribution::parse(std::string_view text) {
    if (text.empty()) {
        return Status::invalid_argument(std::string("empty length distribution (") +
                                        std::string(kSyntax) + ")");
    }
    if (text.substr(0, kUniformPrefix.size()) == kUniformPrefix) {
        const std::string_view rest = text.substr(kUniformPrefix.size());
        const auto colon = rest.find(':');
        if (colon == std::string_view::npos) {
            return Status::invalid_argument(
                fmt::format("length distribution '{}': expected uniform:LO:HI", text));
        }
        PALS_ASSIGN_OR_RETURN(auto lo, parse_length(rest.substr(0, colon), "LO", text));
        PALS_ASSIGN_OR_RETURN(auto hi, parse_length(rest.substr(colon + 1), "HI", text));
        if (lo > hi) {
            return Status::invalid_argument(fmt::format(
                "length distribution '{}': LO ({}) is greater than HI ({})", text, lo, hi));
        }
        return uniform(lo, hi);
    }
    if (text.substr(0, kLognormalPrefix.size()) == kLognormalPrefix) {
        const std::vector<std::string_view> parts = [&] {
            std::vector<std::string_view> out;
            std::string_view rest = text.substr(kLognormalPrefix.size());
            for (std::size_t colon = rest.find(':'); colon != std::string_view::npos;
                 colon = rest.find(':')) {
                out.push_back(rest.substr(0, colon));
                rest.remove_prefix(colon + 1);
            }
            out.push_back(rest);
            return out;
        }();
        if (parts.size() != 4) {
            return Status::invalid_argument(fmt::format(
                "length distribution '{}': expected lognormal:MEDIAN:SIGMA:LO:HI", text));
        }
        PALS_ASSIGN_OR_RETURN(auto median, parse_length(parts[0], "MEDIAN", text));
        PALS_ASSIGN_OR_RETURN(auto lo, parse_length(parts[2], "LO", text));
        PALS_ASSIGN_OR_RETURN(auto hi, parse_length(parts[3], "HI", text));
        double sigma = 0.0;
        const auto [ptr, ec] =
            std::from_chars(parts[1].data(), parts[1].data() + parts[1].size(), sigma);
        if (ec != std::errc() || ptr != parts[1].data() + parts[1].size() ||
            !(sigma > 0.0 && sigma <= 5.0)) {
            return Status::invalid_argument(fmt::format(
                "length distribution '{}': SIGMA '{}' must be a number in (0, 5]", text, parts[1]));
        }
        if (!(lo <= median && median <= hi)) {
            return Status::invalid_argument(
                fmt::format("length distribution '{}': need LO <= MEDIAN <= HI (got {}, {}, {})",
                            text, lo, median, hi));
        }
        return lognormal(median, sigma, lo, hi);
    }
    if (text.substr(0, kFixedPrefix.size()) == kFixedPrefix) {
        PALS_ASSIGN_OR_RETURN(auto n, parse_length(text.substr(kFixedPrefix.size()), "N", text));
        return fixed(n);
    }
    if (int value = 0; parse_int(text, value) || !looks_like_file(text)) {
        PALS_ASSIGN_OR_RETURN(auto n, parse_length(text, "N", text));
        return fixed(n);
    }
    return parse_file(text);
}

LengthDistribution LengthDistribution::fixed(int tokens) {
    if (tokens < 1) {
        throw std::invalid_argument(
            fmt::format("LengthDistribution::fixed: tokens must be >= 1 "
                        "(got {})",
                        tokens));
    }
    LengthDistribution d;
    d.m_kind = Kind::kFixed;
    d.m_lo = tokens;
    d.m_hi = tokens;
    return d;
}

LengthDistribution LengthDistribution::uniform(int lo, int hi) {
    if (lo < 1 || lo > hi) {
        throw std::invalid_argument(
            fmt::format("LengthDistribution::uniform: need 1 <= lo <= hi (got {}, {})", lo, hi));
    }
    LengthDistribution d;
    d.m_kind = Kind::kUniform;
    d.m_lo = lo;
    d.m_hi = hi;
    return d;
}

LengthDistribution LengthDistribution::lognormal(int median, double sigma, int lo, int hi) {
    if (lo < 1 || lo > median || median > hi || !(sigma > 0.0 && std::isfinite(sigma))) {
        throw std::invalid_argument(
            fmt::format("LengthDistribution::lognormal: need 1 <= lo <= median <= hi and sigma "
                        "> 0 (got {}, {}, {}, {})",
                        median, sigma, lo, hi));
    }
    LengthDistribution d;
    d.m_kind = Kind::kLognormal;
    d.m_lo = lo;
    d.m_hi = hi;
    d.m_mu = std::log(static_cast<double>(median));
    d.m_sigma = sigma;
    return d;
}

Result<LengthDistribution> LengthDistribution::histogram(std::vector<double> edges,
                                                         std::vector<double> counts) {
    if (counts.empty()) {
        return Status::invalid_argument("histogram has no bins");
    }
    if (edges.size() != counts.size() + 1) {
        return Status::invalid_argument(
            fmt::format("histogram has {} edges for {} counts (expected {})", edges.size(),
                        counts.size(), counts.size() + 1));
    }
    for (std::size_t i = 0; i < edges.size(); ++i) {
        if (!std::isfinite(edges[i])) {
            return Status::invalid_argument(fmt::format("histogram edge {} is not finite", i));
        }
        if (i > 0 && !(edges[i] > edges[i - 1])) {
            return Status::invalid_argument(
                fmt::format("histogram edges must increase (edge {} = {} after {})", i, edges[i],
                            edges[i - 1]));
        }
    }
    double total = 0.0;
    for (std::size_t i = 0; i < counts.size(); ++i) {
        if (!std::isfinite(counts[i]) || counts[i] < 0.0) {
            return Status::invalid_argument(
                fmt::format("histogram count {} must be finite and >= 0 (got {})", i, counts[i]));
        }
        total += counts[i];
    }
    if (!(total > 0.0)) {
        return Status::invalid_argument("histogram counts are all zero");
    }
    LengthDistribution d;
    d.m_kind = Kind::kHistogram;
    d.m_edges = std::move(edges);
    d.m_cumulative.resize(counts.size());
    double running = 0.0;
    for (std::size_t i = 0; i < counts.size(); ++i) {
        running += counts[i];
        d.m_cumulative[i] = running / total;
    }
    d.m_cumulative.back() = 1.0;
    return d;
}

int LengthDistribution::sample(std::mt19937_64& rng) const {
    switch (m_kind) {
        case Kind::kFixed:
            return m_lo;
        case Kind::kUniform:
            return std::uniform_int_distribution<int>(m_lo, m_hi)(rng);
        case Kind::kLognormal: {
            std::lognormal_distribution<double> draw(m_mu, m_sigma);
            double x = draw(rng);
            for (int i = 1; i < kMaxLognormalDraws && !(x >= m_lo && x <= m_hi); ++i) {
                x = draw(rng);
            }
            return static_cast<int>(
                std::clamp(std::round(x), static_cast<double>(m_lo), static_cast<double>(m_hi)));
        }
        case Kind::kHistogram: {
            const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
            // The first bin whose cumulative share exceeds u; empty bins are never chosen.
            const auto it = std::upper_bound(m_cumulative.begin(), m_cumulative.end(), u);
            const auto bin = std::min<std::size_t>(
                static_cast<std::size_t>(it - m_cumulative.begin()), m_cumulative.size() - 1);
            const double x =
                std::uniform_real_distribution<double>(m_edges[bin], m_edges[bin + 1])(rng);
            const double rounded = std::round(x);
            if (rounded < 1.0) {
                return 1;
            }
            if (rounded > static_cast<double>(INT_MAX)) {
                return INT_MAX;
            }
            return static_cast<int>(rounded);
        }
    }
    return m_lo;
}

double LengthDistribution::mean() const {
    switch (m_kind) {
        case Kind::kFixed:
            return static_cast<double>(m_lo);
        case Kind::kUniform:
            return (static_cast<double>(m_lo) + static_cast<double>(m_hi)) / 2.0;
        case Kind::kLognormal: {
            // E[X | lo <= X <= hi] of a lognormal (mu, sigma).
            const double a = std::log(static_cast<double>(m_lo));
            const double b = std::log(static_cast<double>(m_hi));
            const double mass = normal_cdf((b - m_mu) / m_sigma) - normal_cdf((a - m_mu) / m_sigma);
            const double s2 = m_sigma * m_sigma;
            const double tilted =
                normal_cdf((b - m_mu - s2) / m_sigma) - normal_cdf((a - m_mu - s2) / m_sigma);
            return mass > 0.0 ? std::exp(m_mu + s2 / 2.0) * tilted / mass : std::exp(m_mu);
        }
        case Kind::kHistogram: {
            double mean = 0.0;
            double previous = 0.0;
            for (std::size_t i = 0; i < m_cumulative.size(); ++i) {
                const double share = m_cumulative[i] - previous;
                previous = m_cumulative[i];
                const double midpoint = std::max(1.0, (m_edges[i] + m_edges[i + 1]) / 2.0);
                mean += share * midpoint;
            }
            return mean;
        }
    }
    return static_cast<double>(m_lo);
}

std::string LengthDistribution::describe() const {
    switch (m_kind) {
        case Kind::kFixed:
            return fmt::format("fixed:{}", m_lo);
        case Kind::kUniform:
            return fmt::format("uniform:{}:{}", m_lo, m_hi);
        case Kind::kLognormal:
            return fmt::format("lognormal:{}:{:g}:{}:{}", std::lround(std::exp(m_mu)), m_sigma,
                               m_lo, m_hi);
        case Kind::kHistogram:
            return fmt::format("histogram({} bins)", m_cumulative.size());
    }
    return "unknown";
}

}  // namespace pals::workload
