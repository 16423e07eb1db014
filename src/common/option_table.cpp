#include "pals/common/option_table.hpp"

#include <charconv>
#include <cmath>
#include <set>

#include "pals/common/gpu_set.hpp"

namespace pals {

std::string format_quantity(double value, std::string_view unit) {
    // Whole numbers as integers ("10000000", not "1e+07"); others with 6 significant digits.
    constexpr double kWholeLimit = 1e15;
    const std::string number =
        std::isfinite(value) && value == std::floor(value) && std::fabs(value) < kWholeLimit
            ? fmt::format("{:.0f}", value)
            : fmt::format("{:g}", value);
    return unit.empty() ? number : number + " " + std::string(unit);
}

Status check_value_range(double value, const ValueRange& range) {
    if (!std::isfinite(value)) {
        return Status::invalid_argument(fmt::format("{} is not a finite number", value));
    }
    const bool above_lo = range.lo_open ? value > range.lo : value >= range.lo;
    if (above_lo && value <= range.hi) {
        return Status::ok();
    }
    const std::string got = format_quantity(value, range.unit);
    const std::string lo = format_quantity(range.lo, range.unit);
    const std::string hi = format_quantity(range.hi, range.unit);
    if (range.lo_open) {
        return Status::out_of_range(
            std::isinf(range.hi) ? fmt::format("must be > {} (got {})", lo, got)
                                 : fmt::format("must be > {} and <= {} (got {})", lo, hi, got));
    }
    if (std::isinf(range.hi)) {
        return Status::out_of_range(fmt::format("must be >= {} (got {})", lo, got));
    }
    return Status::out_of_range(
        fmt::format("must be {}-{} (got {})", format_quantity(range.lo, ""), hi, got));
}

Status unknown_key_error(const std::string& where, std::string_view name,
                         const std::vector<std::string_view>& known) {
    return Status::invalid_argument(fmt::format("{}: unknown key '{}'{} (known: {})", where, name,
                                                did_you_mean(name, known), fmt::join(known, ", ")));
}

namespace option_detail {

Result<bool> parse_bool(std::string_view text) {
    const std::string_view t = trim(text);
    for (std::string_view yes : {"1", "true", "yes", "on"}) {
        if (t == yes) {
            return true;
        }
    }
    for (std::string_view no : {"0", "false", "no", "off"}) {
        if (t == no) {
            return false;
        }
    }
    return Status::invalid_argument("must be true or false, got '" + std::string(text) + "'");
}

Result<std::uint64_t> parse_uint64(std::string_view text) {
    const std::string_view t = trim(text);
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (t.empty() || ec != std::errc() || end != t.data() + t.size()) {
        return Status::invalid_argument("must be a non-negative integer, got '" +
                                        std::string(text) + "'");
    }
    return v;
}

Result<std::vector<int>> parse_index_list(std::string_view text, const ValueRange& range) {
    PALS_ASSIGN_OR_RETURN(std::vector<int> indices, parse_gpu_set(text));
    for (const int i : indices) {
        PALS_RETURN_IF_ERROR(check_value_range(i, range));
    }
    return indices;
}

Result<std::vector<int>> toml_index_list(const toml::node& node, const ValueRange& range) {
    const toml::array* array = node.as_array();
    if (array == nullptr) {
        return Status::invalid_argument(fmt::format(
            "must be an array of GPU indices such as [0, 1], not {}", toml_type_name(node)));
    }
    std::vector<int> indices;
    for (const toml::node& item : *array) {
        auto v = item.value_exact<std::int64_t>();
        if (!v || *v < range.lo || *v > range.hi) {
            return Status::invalid_argument(fmt::format(
                "must be an array of GPU indices (integers {:g}-{:g})", range.lo, range.hi));
        }
        if (static_cast<double>(indices.size()) > range.hi) {
            return Status::out_of_range(fmt::format("more than {:g} GPUs", range.hi + 1));
        }
        indices.push_back(static_cast<int>(*v));
    }
    return indices;
}

std::string quote(std::string_view text) {
    std::string out = "\"";
    for (const char ch : text) {
        const auto c = static_cast<unsigned char>(ch);
        if (ch == '"' || ch == '\\') {
            out += '\\';
            out += ch;
        } else if (c < 0x20 || c == 0x7f) {
            out += fmt::format("\\u{:04x}", c);
        } else {
            out += ch;
        }
    }
    return out + "\"";
}

std::string toml_number(double value) {
    std::string s = fmt::format("{}", value);
    if (s.find_first_of(".eEn") == std::string::npos) {
        s += ".0";
    }
    return s;
}

}  // namespace option_detail

}  // namespace pals
