#pragma once
// Field splitting and number parsing shared by the calibration CSV readers (internal).
#include <charconv>
#include <string_view>
#include <vector>

namespace pals::sim::detail {

/// The fields of one CSV line (no quoting: the calibration files have none).
inline std::vector<std::string_view> split_fields(std::string_view line, char sep = ',') {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    while (true) {
        const std::size_t pos = line.find(sep, start);
        out.push_back(line.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
        if (pos == std::string_view::npos) {
            return out;
        }
        start = pos + 1;
    }
}

/// Parses the whole field as a double.
inline bool parse_field(std::string_view text, double& out) {
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, out);
    return ec == std::errc() && ptr == end;
}

}  // namespace pals::sim::detail
