#include "pals/profile/profile_store.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <functional>
#include <map>
#include <tuple>
#include <unordered_map>

#include "pals/common/file_util.hpp"

namespace pals::profile {

namespace {

/// Caps closer than this are the same point (they are printed with full precision anyway).
constexpr double kCapMatchToleranceW = 1e-6;

std::string format_number(double v) {
    return fmt::format("{}", v);
}

Result<double> parse_double(std::string_view text) {
    // from_chars does not skip spaces; spreadsheets sometimes add them.
    while (!text.empty() && text.front() == ' ') {
        text.remove_prefix(1);
    }
    while (!text.empty() && text.back() == ' ') {
        text.remove_suffix(1);
    }
    double v = 0.0;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, v);
    if (text.empty() || ec != std::errc() || ptr != end) {
        return Status::invalid_argument(fmt::format("'{}' is not a number", text));
    }
    return v;
}

Result<int> parse_int(std::string_view text) {
    PALS_ASSIGN_OR_RETURN(double v, parse_double(text));
    if (!std::isfinite(v) || v != std::floor(v) || std::fabs(v) > 1e9) {
        return Status::invalid_argument(fmt::format("'{}' is not an integer", text));
    }
    return static_cast<int>(v);
}

/// One CSV column: how to print it and how to read it back.
struct Column {
    std::string name;
    std::function<std::string(const ProfileRow&)> get;
    std::function<Status(ProfileRow&, std::string_view)> set;
};

Column double_column(std::string name, double ProfileRow::*member) {
    return {std::move(name), [member](const ProfileRow& r) { return format_number(r.*member); },
            [member](ProfileRow& r, std::string_view text) {
                PALS_ASSIGN_OR_RETURN(double v, parse_double(text));
                r.*member = v;
                return Status::ok();
            }};
}

Column int_column(std::string name, int ProfileRow::*member) {
    return {std::move(name), [member](const ProfileRow& r) { return std::to_string(r.*member); },
            [member](ProfileRow& r, std::string_view text) {
                PALS_ASSIGN_OR_RETURN(int v, parse_int(text));
                r.*member = v;
                return Status::ok();
            }};
}

Column string_column(std::string name, std::string ProfileRow::*member) {
    return {std::move(name), [member](const ProfileRow& r) { return r.*member; },
            [member](ProfileRow& r, std::string_view text) {
                r.*member = std::string(text);
                return Status::ok();
            }};
}

template <class T>
Column shape_column(std::string name, T ModelShape::*member) {
    return {std::move(name),
            [member](const ProfileRow& r) {
                if constexpr (std::is_same_v<T, std::string>) {
                    return r.shape.*member;
                } else if constexpr (std::is_same_v<T, int>) {
                    return std::to_string(r.shape.*member);
                } else {
                    return format_number(r.shape.*member);
                }
            },
            [member](ProfileRow& r, std::string_view text) {
                if constexpr (std::is_same_v<T, std::string>) {
                    r.shape.*member = std::string(text);
                } else if constexpr (std::is_same_v<T, int>) {
                    PALS_ASSIGN_OR_RETURN(int v, parse_int(text));
                    r.shape.*member = v;
                } else {
                    PALS_ASSIGN_OR_RETURN(double v, parse_double(text));
                    r.shape.*member = v;
                }
                return Status::ok();
            }};
}

const std::vector<Column>& columns() {
    static const std::vector<Column> kColumns = [] {
        std::vector<Column> c;
        c.push_back(string_column("workload", &ProfileRow::workload));
        c.push_back(double_column("power_cap_w", &ProfileRow::power_cap_w));
        c.push_back(int_column("batch_cap", &ProfileRow::batch_cap));
        c.push_back(double_column("enforced_cap_w", &ProfileRow::enforced_cap_w));
        c.push_back(int_column("gpus", &ProfileRow::gpus));
        c.push_back(double_column("throughput_tok_s", &ProfileRow::throughput_tok_s));
        c.push_back(double_column("prompt_tok_s", &ProfileRow::prompt_tok_s));
        c.push_back(double_column("requests_s", &ProfileRow::requests_s));
        c.push_back(double_column("power_w", &ProfileRow::power_w));
        c.push_back(double_column("j_per_token", &ProfileRow::j_per_token));
        c.push_back(double_column("itl_p50_s", &ProfileRow::itl_p50_s));
        c.push_back(double_column("itl_p90_s", &ProfileRow::itl_p90_s));
        c.push_back(double_column("itl_p99_s", &ProfileRow::itl_p99_s));
        c.push_back(double_column("tpot_p50_s", &ProfileRow::tpot_p50_s));
        c.push_back(double_column("tpot_p90_s", &ProfileRow::tpot_p90_s));
        c.push_back(double_column("tpot_p99_s", &ProfileRow::tpot_p99_s));
        c.push_back(double_column("ttft_p50_s", &ProfileRow::ttft_p50_s));
        c.push_back(double_column("ttft_p90_s", &ProfileRow::ttft_p90_s));
        c.push_back(double_column("ttft_p99_s", &ProfileRow::ttft_p99_s));
        c.push_back(double_column("avg_batch", &ProfileRow::avg_batch));
        c.push_back(double_column("kv_usage", &ProfileRow::kv_usage));
        c.push_back(double_column("sm_clock_mhz", &ProfileRow::sm_clock_mhz));
        c.push_back(double_column("power_capped_frac", &ProfileRow::power_capped_frac));
        c.push_back(double_column("preemptions", &ProfileRow::preemptions));
        c.push_back(
            {"saturated", [](const ProfileRow& r) { return std::string(r.saturated ? "1" : "0"); },
             [](ProfileRow& r, std::string_view text) {
                 if (text == "1" || text == "true") {
                     r.saturated = true;
                 } else if (text == "0" || text == "false") {
                     r.saturated = false;
                 } else {
                     return Status::invalid_argument(fmt::format("'{}' is not 0 or 1", text));
                 }
                 return Status::ok();
             }});
        c.push_back(double_column("warmup_s", &ProfileRow::warmup_s));
        c.push_back(double_column("window_s", &ProfileRow::window_s));
        c.push_back(string_column("backend", &ProfileRow::backend));
        c.push_back(shape_column("model", &ModelShape::model));
        c.push_back(shape_column("gpu", &ModelShape::gpu));
        c.push_back(shape_column("tp", &ModelShape::tp));
        c.push_back(shape_column("ep", &ModelShape::ep));
        c.push_back(shape_column("num_experts", &ModelShape::num_experts));
        c.push_back(shape_column("experts_per_token", &ModelShape::experts_per_token));
        c.push_back(shape_column("active_params_b", &ModelShape::active_params_b));
        c.push_back(shape_column("total_params_b", &ModelShape::total_params_b));
        return c;
    }();
    return kColumns;
}

std::string quote_field(const std::string& field) {
    if (field.find_first_of(",\"\n\r") == std::string::npos) {
        return field;
    }
    std::string out = "\"";
    for (char ch : field) {
        if (ch == '"') {
            out += '"';
        }
        out += ch;
    }
    out += '"';
    return out;
}

/// Splits one CSV line (RFC 4180 quoting, no embedded newlines).
Result<std::vector<std::string>> split_csv_line(std::string_view line) {
    std::vector<std::string> fields;
    std::string field;
    bool quoted = false;
    bool in_quotes = false;
    for (std::size_t i = 0; i < line.size(); ++i) {
        const char ch = line[i];
        if (in_quotes) {
            if (ch == '"') {
                if (i + 1 < line.size() && line[i + 1] == '"') {
                    field += '"';
                    ++i;
                } else {
                    in_quotes = false;
                }
            } else {
                field += ch;
            }
        } else if (ch == '"' && field.empty() && !quoted) {
            in_quotes = true;
            quoted = true;
        } else if (ch == ',') {
            fields.push_back(std::move(field));
            field.clear();
            quoted = false;
        } else {
            field += ch;
        }
    }
    if (in_quotes) {
        return Status::invalid_argument("unterminated quoted field");
    }
    fields.push_back(std::move(field));
    return fields;
}

}  // namespace

std::string ModelShape::describe() const {
    std::string out = model.empty() ? std::string("(unknown model)") : model;
    if (is_moe()) {
        out += fmt::format(" (MoE: {} experts, top-{}, {:.1f}B active / {:.1f}B total)",
                           num_experts, experts_per_token, active_params_b, total_params_b);
    } else {
        out += fmt::format(" (dense, {:.1f}B params)", total_params_b);
    }
    out += fmt::format(" on {}x {}", tp, gpu.empty() ? std::string("GPU") : gpu);
    if (ep > 1) {
        out += fmt::format(", EP {}", ep);
    }
    return out;
}

bool ModelShape::same_setup(const ModelShape& other) const {
    return model == other.model && gpu == other.gpu && tp == other.tp && ep == other.ep &&
           num_experts == other.num_experts && experts_per_token == other.experts_per_token;
}

ModelShape model_shape_of(const model::ModelSpec& spec, std::string gpu, int tp, int ep) {
    ModelShape s;
    s.model = spec.name;
    s.gpu = std::move(gpu);
    s.tp = tp;
    s.ep = ep;
    if (spec.is_moe()) {
        s.num_experts = spec.num_experts;
        s.experts_per_token = spec.experts_per_token;
    }
    s.active_params_b = spec.active_params() / 1e9;
    s.total_params_b = spec.total_params() / 1e9;
    return s;
}

double expected_distinct_experts(int num_experts, int experts_per_token, double tokens) {
    if (num_experts <= 0 || experts_per_token <= 0 || tokens <= 0.0) {
        return 0.0;
    }
    const double e = num_experts;
    const double q = std::min(1.0, static_cast<double>(experts_per_token) / e);
    return e * (1.0 - std::pow(1.0 - q, tokens));
}

std::size_t ProfileTable::find(std::string_view workload, double power_cap_w, int batch_cap) const {
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const ProfileRow& r = rows[i];
        if (r.batch_cap == batch_cap && r.workload == workload &&
            std::fabs(r.power_cap_w - power_cap_w) <= kCapMatchToleranceW) {
            return i;
        }
    }
    return static_cast<std::size_t>(-1);
}

void ProfileTable::append(ProfileRow row) {
    rows.push_back(std::move(row));
    lines.push_back(0);
}

std::string ProfileTable::where(std::size_t i) const {
    if (!source.empty() && i < lines.size() && lines[i] > 0) {
        return source.string() + ":" + std::to_string(lines[i]);
    }
    return (source.empty() ? std::string("profile") : source.string()) + ": row " +
           std::to_string(i + 1);
}

const std::vector<std::string>& profile_columns() {
    static const std::vector<std::string> kNames = [] {
        std::vector<std::string> names;
        for (const Column& c : columns()) {
            names.push_back(c.name);
        }
        return names;
    }();
    return kNames;
}

std::string profile_csv_header() {
    std::string out;
    for (const Column& c : columns()) {
        if (!out.empty()) {
            out += ',';
        }
        out += c.name;
    }
    return out;
}

std::string format_profile_csv(const ProfileTable& table) {
    std::string out = profile_csv_header() + "\n";
    for (const ProfileRow& row : table.rows) {
        bool first = true;
        for (const Column& c : columns()) {
            if (!first) {
                out += ',';
            }
            first = false;
            out += quote_field(c.get(row));
        }
        out += '\n';
    }
    return out;
}

Result<ProfileTable> parse_profile_csv(std::string_view text, const std::filesystem::path& source) {
    ProfileTable table;
    table.source = source;
    const std::string name = source.empty() ? std::string("profile") : source.string();
    std::vector<int> index_of_column;  // file field index of each known column
    std::size_t field_count = 0;
    int line_no = 0;
    std::size_t pos = 0;
    bool have_header = false;
    // Points seen so far, for duplicate detection: (workload, cap, batch) -> line.
    std::map<std::tuple<std::string, double, int>, int> seen;
    while (pos < text.size()) {
        std::size_t end = text.find('\n', pos);
        if (end == std::string_view::npos) {
            end = text.size();
        }
        std::string_view line = text.substr(pos, end - pos);
        pos = end + 1;
        ++line_no;
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        if (line.empty()) {
            continue;
        }
        PALS_ASSIGN_OR_RETURN(
            std::vector<std::string> fields,
            split_csv_line(line).with_prefix(name + ":" + std::to_string(line_no)));
        if (!have_header) {
            have_header = true;
            field_count = fields.size();
            std::unordered_map<std::string, int> position;
            for (std::size_t i = 0; i < fields.size(); ++i) {
                position[(fields)[i]] = static_cast<int>(i);
            }
            std::string missing;
            for (const Column& c : columns()) {
                auto it = position.find(c.name);
                if (it == position.end()) {
                    if (!missing.empty()) {
                        missing += ", ";
                    }
                    missing += c.name;
                    index_of_column.push_back(-1);
                } else {
                    index_of_column.push_back(it->second);
                }
            }
            if (!missing.empty()) {
                return Status::invalid_argument(name + ":" + std::to_string(line_no) +
                                                ": header lacks column(s) " + missing +
                                                " (is this a `pals profile` CSV?)");
            }
            continue;
        }
        if (fields.size() != field_count) {
            return Status::invalid_argument(fmt::format("{}:{}: {} fields, the header has {}", name,
                                                        line_no, fields.size(), field_count));
        }
        ProfileRow row;
        const auto& cols = columns();
        for (std::size_t c = 0; c < cols.size(); ++c) {
            const std::string& field = (fields)[static_cast<std::size_t>(index_of_column[c])];
            Status st = cols[c].set(row, field);
            if (!st.is_ok()) {
                return Status::invalid_argument(fmt::format("{}:{}: column '{}': {}", name, line_no,
                                                            cols[c].name, st.message()));
            }
        }
        if (row.workload.empty()) {
            return Status::invalid_argument(
                fmt::format("{}:{}: column 'workload': empty", name, line_no));
        }
        if (!std::isfinite(row.power_cap_w) || row.power_cap_w <= 0.0) {
            return Status::invalid_argument(
                fmt::format("{}:{}: column 'power_cap_w': {} is not a cap in W", name, line_no,
                            format_number(row.power_cap_w)));
        }
        if (row.batch_cap < 1) {
            return Status::invalid_argument(fmt::format(
                "{}:{}: column 'batch_cap': {} must be >= 1", name, line_no, row.batch_cap));
        }
        // Caps are compared after rounding to the match tolerance.
        const double cap_key =
            std::round(row.power_cap_w / kCapMatchToleranceW) * kCapMatchToleranceW;
        auto [it, inserted] =
            seen.emplace(std::make_tuple(row.workload, cap_key, row.batch_cap), line_no);
        if (!inserted) {
            return Status::invalid_argument(fmt::format(
                "{}:{}: duplicate point workload={} power_cap_w={} batch_cap={} (first at line {})",
                name, line_no, row.workload, format_number(row.power_cap_w), row.batch_cap,
                it->second));
        }
        table.rows.push_back(std::move(row));
        table.lines.push_back(line_no);
    }
    if (!have_header) {
        return Status::invalid_argument(name + ": empty file, expected a header line");
    }
    return table;
}

Result<ProfileTable> read_profile(const std::filesystem::path& path) {
    PALS_ASSIGN_OR_RETURN(std::string text, read_file(path));
    return parse_profile_csv(text, path);
}

Status write_profile(const std::filesystem::path& path, const ProfileTable& table) {
    return write_file_atomic(path, format_profile_csv(table));
}

}  // namespace pals::profile
