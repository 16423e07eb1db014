#include "pals/common/strings.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>

namespace pals {

std::vector<std::string> split(std::string_view s, char separator) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start <= s.size()) {
        const std::size_t end = std::min(s.find(separator, start), s.size());
        out.emplace_back(s.substr(start, end - start));
        start = end + 1;
    }
    return out;
}

Result<double> parse_number(std::string_view text) {
    const std::string t(trim(text));
    double v = 0.0;
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (t.empty() || ec != std::errc() || end != t.data() + t.size() || !std::isfinite(v)) {
        return Status::invalid_argument("must be a number, got '" + std::string(text) + "'");
    }
    return v;
}

Result<int> parse_integer(std::string_view text) {
    const std::string t(trim(text));
    std::int64_t v = 0;
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (t.empty() || ec != std::errc() || end != t.data() + t.size() ||
        v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) {
        return Status::invalid_argument("must be an integer, got '" + std::string(text) + "'");
    }
    return static_cast<int>(v);
}

}  // namespace pals
