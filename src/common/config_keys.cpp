#include "pals/common/config_keys.hpp"

#include <algorithm>
#include <cctype>

namespace pals {

namespace {

/// Names closer than this (edit distance) to an unknown one are suggested.
constexpr std::size_t kSuggestDistance = 2;
/// ... and so is a known name of at least this length that the unknown one starts with.
constexpr std::size_t kSuggestPrefix = 4;

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) {
        row[j] = j;
    }
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t above = row[j];
            row[j] =
                std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0U : 1U)});
            diagonal = above;
        }
    }
    return row[b.size()];
}

}  // namespace

std::string config_env_name(std::string_view key) {
    std::string out = "PALS_";
    for (const char c : key) {
        out += c == '-' ? '_' : static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
    }
    return out;
}

std::string config_flag_name(std::string_view key) {
    std::string out = "--";
    for (const char c : key) {
        out += c == '_' ? '-' : c;
    }
    return out;
}

std::string did_you_mean(std::string_view unknown, const std::vector<std::string_view>& known) {
    std::string best;
    std::size_t best_distance = kSuggestDistance + 1;
    for (const std::string_view name : known) {
        std::size_t d = edit_distance(unknown, name);
        // A known key that starts the unknown one ("budget_w" in "budget_watts") is a likely slip.
        if (name.size() >= kSuggestPrefix && unknown.substr(0, name.size()) == name) {
            d = std::min(d, kSuggestDistance);
        }
        if (d < best_distance) {
            best_distance = d;
            best = std::string(name);
        }
    }
    return best.empty() ? std::string() : " (did you mean '" + best + "'?)";
}

}  // namespace pals
