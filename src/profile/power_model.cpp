#include "pals/profile/power_model.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>

#include "pals/common/file_util.hpp"
#include "pals/common/json.hpp"
#include "pals/common/json_fields.hpp"
#include "pals/profile/model_fit.hpp"

namespace pals::profile {

namespace {

constexpr double kRangeToleranceW = 1e-9;
constexpr auto kThroughput = static_cast<std::size_t>(Quantity::kThroughput);
constexpr auto kPower = static_cast<std::size_t>(Quantity::kPower);
constexpr auto kItlP90 = static_cast<std::size_t>(Quantity::kItlP90);

using Json = nlohmann::json;

/// Where in MODEL.json a value sits, for error messages.
std::string at(std::string_view path, std::size_t i) {
    return fmt::format("{}[{}]", path, i);
}

Result<const Json*> member(const Json& object, std::string_view key, std::string_view path) {
    if (!object.is_object()) {
        return Status::invalid_argument(fmt::format("{}: expected an object", path));
    }
    auto it = object.find(std::string(key));
    if (it == object.end()) {
        return Status::invalid_argument(fmt::format("{}: missing field '{}'", path, key));
    }
    return &*it;
}

Result<double> number(const Json& v, const std::string& path) {
    if (!v.is_number()) {
        return Status::invalid_argument(path + ": expected a number");
    }
    const double d = v.get<double>();
    if (!std::isfinite(d)) {
        return Status::invalid_argument(path + ": not finite");
    }
    return d;
}

Result<std::vector<double>> number_array(const Json& v, const std::string& path) {
    if (!v.is_array()) {
        return Status::invalid_argument(path + ": expected an array of numbers");
    }
    std::vector<double> out;
    out.reserve(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) {
        PALS_ASSIGN_OR_RETURN(double d, number(v[i], at(path, i)));
        out.push_back(d);
    }
    return out;
}

}  // namespace

/// One workload's surfaces and its query table.
struct WorkloadModel {
    std::string name;
    /// Per quantity, row-major [batch][cap]: log values and PCHIP slopes along the cap.
    std::array<std::vector<double>, kQuantityCount> log_values;
    std::array<std::vector<double>, kQuantityCount> slopes;

    // ---- query table: caps every step W x profiled batch caps, row-major [batch][cap] ----
    std::vector<double> throughput;  ///< non-decreasing along each row
    std::vector<double> power;       ///< non-decreasing along each row
    std::vector<double> itl_p90;     ///< non-increasing along each row
    std::vector<double> j_per_token;
    /// Sparse table of argmin J/token: level l, row b, start i -> [b][l][i] at
    /// (b * levels + l) * n + i, the index of the minimum over [i, i + 2^l).
    std::vector<std::uint16_t> argmin;
};

struct PowerModel::Impl {
    ModelShape shape;
    std::vector<double> caps;  ///< profiled, ascending
    std::vector<int> batches;  ///< profiled, ascending
    std::vector<double> log2_batches;
    std::vector<WorkloadModel> workloads;
    // Query cap grid.
    std::size_t query_caps = 0;
    int levels = 0;
    double step_w = kQueryCapStepW;

    [[nodiscard]] double query_cap(std::size_t i) const {
        return std::min(caps.back(), caps.front() + step_w * static_cast<double>(i));
    }

    [[nodiscard]] const WorkloadModel* find(std::string_view name) const {
        if (name.empty()) {
            return &workloads.front();
        }
        for (const WorkloadModel& w : workloads) {
            if (w.name == name) {
                return &w;
            }
        }
        return nullptr;
    }

    /// All quantities at `cap` on a blend of batch rows b0 and b1 = b0 + 1 (weight t on b1).
    [[nodiscard]] Prediction evaluate(const WorkloadModel& w, double cap, std::size_t b0,
                                      double t) const {
        const std::size_t nc = caps.size();
        std::size_t k = static_cast<std::size_t>(std::upper_bound(caps.begin(), caps.end(), cap) -
                                                 caps.begin());
        k = std::clamp<std::size_t>(k, 1, nc - 1) - 1;
        const double h = caps[k + 1] - caps[k];
        const double s = std::clamp((cap - caps[k]) / h, 0.0, 1.0);
        const double s2 = s * s;
        const double s3 = s2 * s;
        const double h00 = 2 * s3 - 3 * s2 + 1;
        const double h10 = (s3 - 2 * s2 + s) * h;
        const double h01 = -2 * s3 + 3 * s2;
        const double h11 = (s3 - s2) * h;
        std::array<double, kQuantityCount> v{};
        for (std::size_t q = 0; q < kQuantityCount; ++q) {
            const double* y = w.log_values[q].data();
            const double* d = w.slopes[q].data();
            auto row = [&](std::size_t b) {
                const std::size_t i = b * nc + k;
                return h00 * y[i] + h10 * d[i] + h01 * y[i + 1] + h11 * d[i + 1];
            };
            double g = row(b0);
            if (t > 0.0) {
                g = (1.0 - t) * g + t * row(b0 + 1);
            }
            v[q] = std::exp(g);
        }
        Prediction p;
        p.power_cap_w = cap;
        p.throughput_tok_s = v[kThroughput];
        p.power_w = v[kPower];
        p.j_per_token = p.throughput_tok_s > 0.0 ? p.power_w / p.throughput_tok_s : 0.0;
        p.itl_p50_s = v[static_cast<std::size_t>(Quantity::kItlP50)];
        p.itl_p90_s = v[kItlP90];
        p.itl_p99_s = v[static_cast<std::size_t>(Quantity::kItlP99)];
        p.tpot_p90_s = v[static_cast<std::size_t>(Quantity::kTpotP90)];
        p.ttft_p90_s = v[static_cast<std::size_t>(Quantity::kTtftP90)];
        p.avg_batch = v[static_cast<std::size_t>(Quantity::kAvgBatch)];
        p.sm_clock_mhz = v[static_cast<std::size_t>(Quantity::kSmClock)];
        return p;
    }

    void build_query_table(WorkloadModel& w) const {
        const std::size_t n = query_caps;
        const std::size_t nb = batches.size();
        w.throughput.resize(nb * n);
        w.power.resize(nb * n);
        w.itl_p90.resize(nb * n);
        w.j_per_token.resize(nb * n);
        for (std::size_t b = 0; b < nb; ++b) {
            for (std::size_t i = 0; i < n; ++i) {
                const Prediction p = evaluate(w, query_cap(i), b, 0.0);
                const std::size_t at_i = b * n + i;
                // The interpolant is monotone by construction; this only removes rounding noise
                // so that binary searches are exact.
                w.throughput[at_i] = i > 0 ? std::max(p.throughput_tok_s, w.throughput[at_i - 1])
                                           : p.throughput_tok_s;
                w.power[at_i] = i > 0 ? std::max(p.power_w, w.power[at_i - 1]) : p.power_w;
                w.itl_p90[at_i] = i > 0 ? std::min(p.itl_p90_s, w.itl_p90[at_i - 1]) : p.itl_p90_s;
                w.j_per_token[at_i] = w.power[at_i] / w.throughput[at_i];
            }
        }
        const auto levels_u = static_cast<std::size_t>(levels);
        w.argmin.assign(nb * levels_u * n, 0);
        for (std::size_t b = 0; b < nb; ++b) {
            const double* e = &w.j_per_token[b * n];
            std::uint16_t* level0 = &w.argmin[(b * levels_u) * n];
            for (std::size_t i = 0; i < n; ++i) {
                level0[i] = static_cast<std::uint16_t>(i);
            }
            for (std::size_t l = 1; l < levels_u; ++l) {
                const std::uint16_t* prev = &w.argmin[(b * levels_u + l - 1) * n];
                std::uint16_t* cur = &w.argmin[(b * levels_u + l) * n];
                const std::size_t half = std::size_t{1} << (l - 1);
                for (std::size_t i = 0; i + (std::size_t{1} << l) <= n; ++i) {
                    const std::uint16_t a = prev[i];
                    const std::uint16_t c = prev[i + half];
                    cur[i] = e[c] < e[a] ? c : a;
                }
            }
        }
    }

    /// Index of the lowest J/token on row b over [lo, hi] (leftmost on ties).
    [[nodiscard]] std::size_t argmin_range(const WorkloadModel& w, std::size_t b, std::size_t lo,
                                           std::size_t hi) const {
        const std::size_t n = query_caps;
        const auto l = static_cast<std::size_t>(std::bit_width(hi - lo + 1) - 1);
        const std::uint16_t* row = &w.argmin[(b * static_cast<std::size_t>(levels) + l) * n];
        const std::uint16_t a = row[lo];
        const std::uint16_t c = row[hi + 1 - (std::size_t{1} << l)];
        const double* e = &w.j_per_token[b * n];
        return e[c] < e[a] ? c : a;
    }
};

PowerModel::PowerModel(std::shared_ptr<const Impl> impl) : m_impl(std::move(impl)) {}

Result<PowerModel> PowerModel::load(const std::filesystem::path& path) {
    PALS_ASSIGN_OR_RETURN(std::string text, read_file(path));
    return parse(text, path.string());
}

Result<PowerModel> PowerModel::parse(std::string_view json_text, std::string_view source) {
    const std::string src(source.empty() ? "MODEL.json" : source);
    auto fail = [&](const Status& s) { return s.with_prefix(src); };
    PALS_ASSIGN_OR_RETURN(Json parsed, parse_json(json_text, src + ": not valid JSON"));
    const Json j = std::move(parsed);
    Result<const Json*> version = member(j, "schema_version", "(top level)");
    if (!version.is_ok()) {
        return fail(version.status());
    }
    if (!version.value()->is_number_integer() ||
        version.value()->get<int>() != kModelSchemaVersion) {
        return Status::invalid_argument(
            fmt::format("{}: schema_version {} is not supported (this build reads {})", src,
                        version.value()->dump(), kModelSchemaVersion));
    }
    auto impl = std::make_shared<Impl>();

    // Model shape.
    Result<const Json*> model = member(j, "model", "(top level)");
    if (!model.is_ok()) {
        return fail(model.status());
    }
    {
        JsonFields m(*model.value(), src, "model.");
        if (!model.value()->is_object()) {
            return Status::invalid_argument(src + ": model: expected an object");
        }
        ModelShape& shape = impl->shape;
        shape.model = m.require_string("name");
        shape.gpu = m.require_string("gpu");
        shape.tp = m.require_int("tp", 1);
        shape.ep = m.require_int("ep", 1);
        shape.num_experts = m.require_int("num_experts", 0);
        shape.experts_per_token = m.require_int("experts_per_token", 0);
        shape.active_params_b = m.require_number("active_params_b");
        shape.total_params_b = m.require_number("total_params_b");
        if (!m.ok()) {
            return m.status();
        }
    }

    // Grid.
    Result<const Json*> caps_json = member(j, "caps_w", "(top level)");
    if (!caps_json.is_ok()) {
        return fail(caps_json.status());
    }
    Result<std::vector<double>> caps = number_array(*caps_json.value(), "caps_w");
    if (!caps.is_ok()) {
        return fail(caps.status());
    }
    impl->caps = caps.value();
    if (impl->caps.size() < 2) {
        return Status::invalid_argument(src + ": caps_w: needs at least two caps");
    }
    for (std::size_t i = 0; i < impl->caps.size(); ++i) {
        if (impl->caps[i] <= 0.0 || (i > 0 && impl->caps[i] <= impl->caps[i - 1])) {
            return Status::invalid_argument(src + ": " + at("caps_w", i) +
                                            ": caps must be > 0 and increasing");
        }
    }
    Result<const Json*> batches_json = member(j, "batch_caps", "(top level)");
    if (!batches_json.is_ok()) {
        return fail(batches_json.status());
    }
    Result<std::vector<double>> batches = number_array(*batches_json.value(), "batch_caps");
    if (!batches.is_ok()) {
        return fail(batches.status());
    }
    if (batches->empty()) {
        return Status::invalid_argument(src + ": batch_caps: empty");
    }
    for (std::size_t i = 0; i < batches->size(); ++i) {
        const double b = batches.value()[i];
        if (b < 1.0 || b != std::floor(b) || b > std::numeric_limits<int>::max() ||
            (i > 0 && b <= batches.value()[i - 1])) {
            return Status::invalid_argument(src + ": " + at("batch_caps", i) +
                                            ": batch caps must be integers >= 1, increasing");
        }
        impl->batches.push_back(static_cast<int>(b));
        impl->log2_batches.push_back(std::log2(b));
    }
    const std::size_t nc = impl->caps.size();
    const std::size_t nb = impl->batches.size();

    // Query grid.
    const double span = impl->caps.back() - impl->caps.front();
    impl->query_caps = static_cast<std::size_t>(std::ceil(span / impl->step_w - 1e-9)) + 1;
    if (impl->query_caps > std::numeric_limits<std::uint16_t>::max()) {
        return Status::invalid_argument(src + ": caps_w spans too many W for the query grid");
    }
    impl->levels = static_cast<int>(std::bit_width(impl->query_caps));

    // Workloads.
    Result<const Json*> workloads = member(j, "workloads", "(top level)");
    if (!workloads.is_ok()) {
        return fail(workloads.status());
    }
    if (!workloads.value()->is_array() || workloads.value()->empty()) {
        return Status::invalid_argument(src + ": workloads: expected a non-empty array");
    }
    for (std::size_t wi = 0; wi < workloads.value()->size(); ++wi) {
        const Json& wj = (*workloads.value())[wi];
        const std::string wpath = at("workloads", wi);
        WorkloadModel w;
        Result<const Json*> name = member(wj, "name", wpath);
        if (!name.is_ok()) {
            return fail(name.status());
        }
        if (!name.value()->is_string() || name.value()->get<std::string>().empty()) {
            return Status::invalid_argument(src + ": " + wpath +
                                            ".name: expected a non-empty string");
        }
        w.name = name.value()->get<std::string>();
        if (impl->find(w.name) != nullptr && !impl->workloads.empty()) {
            return Status::invalid_argument(src + ": " + wpath + ".name: duplicate workload '" +
                                            w.name + "'");
        }
        Result<const Json*> quantities = member(wj, "quantities", wpath);
        if (!quantities.is_ok()) {
            return fail(quantities.status());
        }
        for (Quantity q : kAllQuantities) {
            const auto qi = static_cast<std::size_t>(q);
            const std::string qpath = wpath + ".quantities";
            Result<const Json*> qj = member(*quantities.value(), quantity_name(q), qpath);
            if (!qj.is_ok()) {
                return fail(qj.status());
            }
            const std::string vpath = qpath + "." + std::string(quantity_name(q)) + ".values";
            Result<const Json*> values =
                member(*qj.value(), "values", qpath + "." + std::string(quantity_name(q)));
            if (!values.is_ok()) {
                return fail(values.status());
            }
            if (!values.value()->is_array() || values.value()->size() != nb) {
                return Status::invalid_argument(
                    fmt::format("{}: {}: expected {} rows (one per batch cap)", src, vpath, nb));
            }
            w.log_values[qi].resize(nb * nc);
            w.slopes[qi].resize(nb * nc);
            for (std::size_t b = 0; b < nb; ++b) {
                const std::string rpath = at(vpath, b);
                Result<std::vector<double>> row = number_array((*values.value())[b], rpath);
                if (!row.is_ok()) {
                    return fail(row.status());
                }
                if (row->size() != nc) {
                    return Status::invalid_argument(
                        fmt::format("{}: {}: expected {} values (one per cap)", src, rpath, nc));
                }
                std::vector<double> logs(nc);
                for (std::size_t c = 0; c < nc; ++c) {
                    if (row.value()[c] <= 0.0) {
                        return Status::invalid_argument(
                            fmt::format("{}: {}: must be > 0", src, at(rpath, c)));
                    }
                    logs[c] = std::log(row.value()[c]);
                }
                const Pchip interp(impl->caps, logs);
                for (std::size_t c = 0; c < nc; ++c) {
                    w.log_values[qi][b * nc + c] = logs[c];
                    w.slopes[qi][b * nc + c] = interp.slopes()[c];
                }
            }
        }
        impl->workloads.push_back(std::move(w));
    }
    for (WorkloadModel& w : impl->workloads) {
        impl->build_query_table(w);
    }
    return PowerModel(std::move(impl));
}

std::vector<std::string> PowerModel::workloads() const {
    std::vector<std::string> out;
    for (const WorkloadModel& w : m_impl->workloads) {
        out.push_back(w.name);
    }
    return out;
}

double PowerModel::cap_min_w() const {
    return m_impl->caps.front();
}
double PowerModel::cap_max_w() const {
    return m_impl->caps.back();
}
std::vector<int> PowerModel::batch_caps() const {
    return m_impl->batches;
}
int PowerModel::gpus_per_group() const {
    return m_impl->shape.tp;
}
const ModelShape& PowerModel::shape() const {
    return m_impl->shape;
}
std::vector<double> PowerModel::caps_w() const {
    return m_impl->caps;
}
double PowerModel::query_cap_step_w() const {
    return m_impl->step_w;
}

Result<Prediction> PowerModel::predict(double power_cap_w, int batch_cap,
                                       std::string_view workload) const {
    const Impl& m = *m_impl;
    const WorkloadModel* w = m.find(workload);
    if (w == nullptr) {
        return Status::not_found(fmt::format("workload '{}' is not in the model (has: {})",
                                             workload, fmt::join(workloads(), ", ")));
    }
    if (!(power_cap_w >= m.caps.front() - kRangeToleranceW &&
          power_cap_w <= m.caps.back() + kRangeToleranceW)) {
        return Status::out_of_range(fmt::format("cap {} W is outside the profiled range {}-{} W",
                                                power_cap_w, m.caps.front(), m.caps.back()));
    }
    if (batch_cap < m.batches.front() || batch_cap > m.batches.back()) {
        return Status::out_of_range(fmt::format("batch cap {} is outside the profiled range {}-{}",
                                                batch_cap, m.batches.front(), m.batches.back()));
    }
    const double cap = std::clamp(power_cap_w, m.caps.front(), m.caps.back());
    const std::size_t hi = static_cast<std::size_t>(
        std::lower_bound(m.batches.begin(), m.batches.end(), batch_cap) - m.batches.begin());
    Prediction p;
    if (m.batches[hi] == batch_cap) {
        p = m.evaluate(*w, cap, hi, 0.0);
    } else {
        const std::size_t lo = hi - 1;
        const double t = (std::log2(static_cast<double>(batch_cap)) - m.log2_batches[lo]) /
                         (m.log2_batches[hi] - m.log2_batches[lo]);
        p = m.evaluate(*w, cap, lo, t);
    }
    p.batch_cap = batch_cap;
    return p;
}

Result<Prediction> PowerModel::predict_at_clock(double sm_clock_mhz, int batch_cap,
                                                double max_cap_w, std::string_view workload) const {
    constexpr int kBisections = 12;  // ~0.1 W on a 500-W cap range
    double hi = std::clamp(max_cap_w, cap_min_w(), cap_max_w());
    PALS_ASSIGN_OR_RETURN(const Prediction at_max, predict(hi, batch_cap, workload));
    if (sm_clock_mhz <= 0.0 || at_max.sm_clock_mhz <= sm_clock_mhz) {
        return at_max;
    }
    double lo = cap_min_w();
    PALS_ASSIGN_OR_RETURN(const Prediction at_min, predict(lo, batch_cap, workload));
    if (at_min.sm_clock_mhz >= sm_clock_mhz) {
        return at_min;
    }
    for (int k = 0; k < kBisections; ++k) {
        const double mid = 0.5 * (lo + hi);
        PALS_ASSIGN_OR_RETURN(const Prediction p, predict(mid, batch_cap, workload));
        (p.sm_clock_mhz < sm_clock_mhz ? lo : hi) = mid;
    }
    return predict(hi, batch_cap, workload);
}

QueryResult PowerModel::best_point(const Query& query, std::string_view workload) const {
    const Impl& m = *m_impl;
    QueryResult result;
    const WorkloadModel* w = m.find(workload);
    if (w == nullptr) {
        return result;  // infeasible, empty point: the caller asked for a workload the model lacks
    }
    const std::size_t n = m.query_caps;
    const std::size_t nb = m.batches.size();
    // The highest query-grid index allowed by the cap bound (n: none allowed).
    std::size_t cap_hi = n - 1;
    if (query.max_power_cap_w > 0.0) {
        if (query.max_power_cap_w < m.caps.front()) {
            cap_hi = n;
        } else if (query.max_power_cap_w < m.caps.back()) {
            cap_hi = static_cast<std::size_t>(
                std::floor((query.max_power_cap_w - m.caps.front()) / m.step_w + 1e-9));
        }
    }
    double best_e = std::numeric_limits<double>::infinity();
    std::size_t best_b = 0;
    std::size_t best_i = 0;
    // Best effort: the highest throughput within the power bounds.
    double effort_t = -1.0;
    std::size_t effort_b = 0;
    std::size_t effort_i = 0;
    for (std::size_t b = 0; b < nb; ++b) {
        const double* t = &w->throughput[b * n];
        const double* p = &w->power[b * n];
        const double* itl = &w->itl_p90[b * n];
        std::size_t hi = cap_hi;
        if (hi == n) {
            break;
        }
        if (query.max_power_w > 0.0) {
            const auto k =
                static_cast<std::size_t>(std::upper_bound(p, p + hi + 1, query.max_power_w) - p);
            if (k == 0) {
                continue;  // even the lowest cap draws too much at this batch cap
            }
            hi = k - 1;
        }
        if (t[hi] > effort_t) {
            effort_t = t[hi];
            effort_b = b;
            effort_i = hi;
        }
        std::size_t lo = 0;
        if (query.demand_tok_s > 0.0) {
            lo = static_cast<std::size_t>(std::lower_bound(t, t + hi + 1, query.demand_tok_s) - t);
        }
        if (query.max_itl_s > 0.0 && lo <= hi) {
            lo = static_cast<std::size_t>(
                std::partition_point(itl + lo, itl + hi + 1,
                                     [&](double v) { return v > query.max_itl_s; }) -
                itl);
        }
        if (lo > hi) {
            continue;
        }
        const std::size_t i = m.argmin_range(*w, b, lo, hi);
        const double e = w->j_per_token[b * n + i];
        if (e < best_e) {
            best_e = e;
            best_b = b;
            best_i = i;
        }
    }
    if (std::isfinite(best_e)) {
        result.feasible = true;
    } else if (effort_t >= 0.0) {
        best_b = effort_b;
        best_i = effort_i;
    } else {
        // Nothing fits the power bounds: the lowest-power point.
        double lowest = std::numeric_limits<double>::infinity();
        for (std::size_t b = 0; b < nb; ++b) {
            if (w->power[b * n] < lowest) {
                lowest = w->power[b * n];
                best_b = b;
                best_i = 0;
            }
        }
    }
    result.point = m.evaluate(*w, m.query_cap(best_i), best_b, 0.0);
    result.point.batch_cap = m.batches[best_b];
    return result;
}

}  // namespace pals::profile
