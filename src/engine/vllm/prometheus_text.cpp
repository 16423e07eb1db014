#include "pals/engine/vllm/prometheus_text.hpp"

#include <charconv>
#include <cmath>
#include <limits>
#include <system_error>
#include <utility>

namespace pals::engine::vllm {
namespace {

bool is_name_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_name_char(char c) {
    return is_name_start(c) || (c >= '0' && c <= '9');
}
bool is_metric_name_start(char c) {
    return is_name_start(c) || c == ':';
}
bool is_metric_name_char(char c) {
    return is_name_char(c) || c == ':';
}
bool is_blank(char c) {
    return c == ' ' || c == '\t';
}

bool equals_ignore_case(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i];
        char y = b[i];
        if (x >= 'A' && x <= 'Z') {
            x = static_cast<char>(x - 'A' + 'a');
        }
        if (y >= 'A' && y <= 'Z') {
            y = static_cast<char>(y - 'A' + 'a');
        }
        if (x != y) {
            return false;
        }
    }
    return true;
}

/// A cursor over one line; every error names the line.
class LineReader {
public:
    LineReader(std::string_view line, std::size_t line_number)
        : m_line(line), m_line_number(line_number) {}

    [[nodiscard]] bool at_end() const { return m_pos >= m_line.size(); }
    [[nodiscard]] char peek() const { return at_end() ? '\0' : m_line[m_pos]; }
    void advance() { ++m_pos; }
    void skip_blanks() {
        while (!at_end() && is_blank(m_line[m_pos])) {
            ++m_pos;
        }
    }
    /// Reads up to the next blank (or the end).
    std::string_view read_token() {
        const std::size_t start = m_pos;
        while (!at_end() && !is_blank(m_line[m_pos])) {
            ++m_pos;
        }
        return m_line.substr(start, m_pos - start);
    }
    std::string_view rest() const { return at_end() ? std::string_view{} : m_line.substr(m_pos); }

    /// Reads [a-zA-Z_:][a-zA-Z0-9_:]* (metric = true) or [a-zA-Z_][a-zA-Z0-9_]*.
    std::string_view read_name(bool metric) {
        const std::size_t start = m_pos;
        if (at_end() || !(metric ? is_metric_name_start(peek()) : is_name_start(peek()))) {
            return {};
        }
        ++m_pos;
        while (!at_end() && (metric ? is_metric_name_char(peek()) : is_name_char(peek()))) {
            ++m_pos;
        }
        return m_line.substr(start, m_pos - start);
    }

    [[nodiscard]] Status error(const std::string& what) const {
        return Status::invalid_argument("line " + std::to_string(m_line_number) + ": " + what);
    }

private:
    std::string_view m_line;
    std::size_t m_line_number;
    std::size_t m_pos = 0;
};

/// Reads a quoted label value after the opening quote, unescaping \\, \" and \n.
Status read_label_value(LineReader& in, std::string_view label_name, std::string& out) {
    while (true) {
        if (in.at_end()) {
            return in.error("unterminated value of label \"" + std::string(label_name) + "\"");
        }
        const char c = in.peek();
        in.advance();
        if (c == '"') {
            return Status::ok();
        }
        if (c != '\\') {
            out.push_back(c);
            continue;
        }
        if (in.at_end()) {
            return in.error("unterminated value of label \"" + std::string(label_name) + "\"");
        }
        const char e = in.peek();
        in.advance();
        switch (e) {
            case '\\':
                out.push_back('\\');
                break;
            case '"':
                out.push_back('"');
                break;
            case 'n':
                out.push_back('\n');
                break;
            default:
                return in.error("invalid escape sequence '\\" + std::string(1, e) +
                                "' in label \"" + std::string(label_name) + "\"");
        }
    }
}

Status parse_labels(LineReader& in, std::vector<Label>& labels) {
    // The opening '{' has been consumed.
    while (true) {
        in.skip_blanks();
        if (in.peek() == '}') {
            in.advance();
            return Status::ok();
        }
        const std::string_view name = in.read_name(false);
        if (name.empty()) {
            return in.at_end() ? in.error("unterminated label set, expected '}'")
                               : in.error("invalid label name at '" + std::string(in.rest()) + "'");
        }
        for (const Label& l : labels) {
            if (l.name == name) {
                return in.error("duplicate label \"" + std::string(name) + "\"");
            }
        }
        in.skip_blanks();
        if (in.peek() != '=') {
            return in.error("expected '=' after label name \"" + std::string(name) + "\"");
        }
        in.advance();
        in.skip_blanks();
        if (in.peek() != '"') {
            return in.error("expected '\"' to open the value of label \"" + std::string(name) +
                            "\"");
        }
        in.advance();
        Label label{std::string(name), {}};
        PALS_RETURN_IF_ERROR(read_label_value(in, name, label.value));
        labels.push_back(std::move(label));
        in.skip_blanks();
        if (in.peek() == ',') {
            in.advance();
            continue;
        }
        if (in.peek() == '}') {
            in.advance();
            return Status::ok();
        }
        return in.at_end()
                   ? in.error("unterminated label set, expected '}'")
                   : in.error("expected ',' or '}' after label \"" + std::string(name) + "\"");
    }
}

/// Unescapes a HELP docstring (\\ and \n; other backslashes are kept, as Prometheus does).
std::string unescape_help(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == '\\' || s[i + 1] == 'n')) {
            out.push_back(s[i + 1] == 'n' ? '\n' : '\\');
            ++i;
        } else {
            out.push_back(s[i]);
        }
    }
    return out;
}

Result<MetricType> parse_type(std::string_view word) {
    if (word == "counter") {
        return MetricType::kCounter;
    }
    if (word == "gauge") {
        return MetricType::kGauge;
    }
    if (word == "histogram") {
        return MetricType::kHistogram;
    }
    if (word == "summary") {
        return MetricType::kSummary;
    }
    if (word == "untyped") {
        return MetricType::kUntyped;
    }
    return Status::invalid_argument("unknown metric type \"" + std::string(word) + "\"");
}

Status parse_comment(LineReader& in, ParsedMetrics& out) {
    in.advance();  // '#'
    in.skip_blanks();
    const std::string_view keyword = in.read_token();
    if (keyword != "HELP" && keyword != "TYPE") {
        return Status::ok();  // an ordinary comment
    }
    in.skip_blanks();
    const std::string_view name = in.read_name(true);
    if (name.empty()) {
        return in.error("expected a metric name after # " + std::string(keyword));
    }
    if (!in.at_end() && !is_blank(in.peek())) {
        return in.error("invalid metric name in # " + std::string(keyword));
    }
    in.skip_blanks();
    if (keyword == "HELP") {
        if (out.help.count(name) != 0) {
            return in.error("second HELP line for metric \"" + std::string(name) + "\"");
        }
        out.help.emplace(std::string(name), unescape_help(in.rest()));
        return Status::ok();
    }
    const std::string_view word = in.read_token();
    in.skip_blanks();
    if (word.empty() || !in.at_end()) {
        return in.error("expected exactly one type after # TYPE " + std::string(name));
    }
    auto type = parse_type(word);
    if (!type.is_ok()) {
        return in.error(type.status().message());
    }
    if (out.types.count(name) != 0) {
        return in.error("second TYPE line for metric \"" + std::string(name) + "\"");
    }
    out.types.emplace(std::string(name), *type);
    return Status::ok();
}

Status parse_sample(LineReader& in, ParsedMetrics& out) {
    Sample sample;
    const std::string_view name = in.read_name(true);
    if (name.empty()) {
        return in.error("expected a metric name at '" + std::string(in.rest()) + "'");
    }
    sample.name = std::string(name);
    if (!in.at_end() && !is_blank(in.peek()) && in.peek() != '{') {
        return in.error("invalid character '" + std::string(1, in.peek()) + "' in metric name \"" +
                        sample.name + "\"");
    }
    in.skip_blanks();
    if (in.peek() == '{') {
        in.advance();
        PALS_RETURN_IF_ERROR(parse_labels(in, sample.labels));
        in.skip_blanks();
    }
    if (in.at_end()) {
        return in.error("missing value for metric \"" + sample.name + "\"");
    }
    const std::string_view value_token = in.read_token();
    auto value = parse_prometheus_float(value_token);
    if (!value.is_ok()) {
        return in.error("invalid value '" + std::string(value_token) + "' for metric \"" +
                        sample.name + "\"");
    }
    sample.value = *value;
    in.skip_blanks();
    if (!in.at_end()) {
        const std::string_view ts = in.read_token();
        std::int64_t ms = 0;
        const auto [ptr, ec] = std::from_chars(ts.data(), ts.data() + ts.size(), ms);
        if (ec != std::errc{} || ptr != ts.data() + ts.size()) {
            return in.error("invalid timestamp '" + std::string(ts) + "' for metric \"" +
                            sample.name + "\" (expected integer milliseconds)");
        }
        sample.timestamp_ms = ms;
        in.skip_blanks();
        if (!in.at_end()) {
            return in.error("unexpected text after the timestamp: '" + std::string(in.rest()) +
                            "'");
        }
    }
    out.samples.push_back(std::move(sample));
    return Status::ok();
}

}  // namespace

const std::string* Sample::label(std::string_view label_name) const {
    for (const Label& l : labels) {
        if (l.name == label_name) {
            return &l.value;
        }
    }
    return nullptr;
}

MetricType ParsedMetrics::type_of(std::string_view family) const {
    const auto it = types.find(family);
    return it == types.end() ? MetricType::kUntyped : it->second;
}

Result<double> parse_prometheus_float(std::string_view token) {
    if (token.empty()) {
        return Status::invalid_argument("empty number");
    }
    std::string_view body = token;
    bool negative = false;
    if (body.front() == '+' || body.front() == '-') {
        negative = body.front() == '-';
        body.remove_prefix(1);
    }
    if (equals_ignore_case(body, "inf") || equals_ignore_case(body, "infinity")) {
        const double inf = std::numeric_limits<double>::infinity();
        return negative ? -inf : inf;
    }
    if (equals_ignore_case(body, "nan")) {
        return std::numeric_limits<double>::quiet_NaN();
    }
    // from_chars takes no sign of its own beyond '-', and no "inf"/"nan" left to handle here.
    if (body.empty() || body.front() == '+' || body.front() == '-') {
        return Status::invalid_argument("not a number: '" + std::string(token) + "'");
    }
    double v = 0.0;
    const auto [ptr, ec] =
        std::from_chars(body.data(), body.data() + body.size(), v, std::chars_format::general);
    if (ptr != body.data() + body.size() ||
        (ec != std::errc{} && ec != std::errc::result_out_of_range)) {
        return Status::invalid_argument("not a number: '" + std::string(token) + "'");
    }
    if (ec == std::errc::result_out_of_range) {
        // Overflow saturates to infinity, underflow to zero (as strtod does).
        const bool big = body.find_first_of("eE") == std::string_view::npos ||
                         body[body.find_first_of("eE") + 1] != '-';
        v = big ? std::numeric_limits<double>::infinity() : 0.0;
    }
    return negative ? -v : v;
}

Result<ParsedMetrics> parse_prometheus_text(std::string_view text) {
    ParsedMetrics out;
    std::size_t line_number = 0;
    std::size_t start = 0;
    while (start < text.size()) {
        ++line_number;
        std::size_t end = text.find('\n', start);
        if (end == std::string_view::npos) {
            end = text.size();
        }
        std::string_view line = text.substr(start, end - start);
        start = end + 1;
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        LineReader in(line, line_number);
        in.skip_blanks();
        if (in.at_end()) {
            continue;  // blank line
        }
        if (in.peek() == '#') {
            PALS_RETURN_IF_ERROR(parse_comment(in, out));
        } else {
            PALS_RETURN_IF_ERROR(parse_sample(in, out));
        }
    }
    return out;
}

}  // namespace pals::engine::vllm
