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
        out.push_back(line.substr(
            start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
        if (pos == std::string_view::npos) {
            return out;
        }
        start = pos + 1;
    }
}

/// Reads the next line of `data` from `pos` (advanced past it) without its "\r\n" or "\n";
/// false at the end of the data.
inline bool next_line(std::string_view data, std::size_t& pos, std::string_view& line) {
    if (pos >= data.size()) {
        return false;
    }
    std::size_t end = data.find('\n', pos);
    if (end == std::string_view::npos) {
        end = data.size();
    }
    line = data.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') {
        line.remove_suffix(1);
    }
    return true;
}

/// Parses the whole field as a double.
inline bool parse_field(std::string_view text, double& out) {
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, out);
    return ec == std::errc() && ptr == end;
}

}  // namespace pals::sim::detail
