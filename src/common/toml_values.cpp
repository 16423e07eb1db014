#include "pals/common/toml_values.hpp"

#include <fmt/format.h>

namespace pals {

const char* toml_type_name(const toml::node& node) {
    switch (node.type()) {
        case toml::node_type::string:
            return "a string";
        case toml::node_type::integer:
            return "an integer";
        case toml::node_type::floating_point:
            return "a number";
        case toml::node_type::boolean:
            return "a boolean";
        case toml::node_type::array:
            return "an array";
        case toml::node_type::table:
            return "a table";
        default:
            return "a date or time";
    }
}

std::string toml_location(const std::string& file, const toml::source_region& region) {
    return fmt::format("{}:{}:{}", file, region.begin.line, region.begin.column);
}

Result<toml::table> parse_toml(std::string_view text, const std::string& file) {
    try {
        return toml::parse(text, file);
    } catch (const toml::parse_error& e) {
        return Status::invalid_argument(toml_location(file, e.source()) + ": " +
                                        std::string(e.description()));
    }
}

std::string TomlReader::origin(std::string_view key) const {
    const auto node = m_root.at_path(key);
    if (node && node.node()->source().begin.line > 0) {
        return toml_location(m_file, node.node()->source()) + ": " + std::string(key);
    }
    return m_file + ": " + std::string(key);
}

}  // namespace pals
