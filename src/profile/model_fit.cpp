#include "pals/profile/model_fit.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>

namespace pals::profile {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kPercent = 100.0;
/// Caps closer than this are the same grid value.
constexpr double kCapToleranceW = 1e-6;

struct QuantityInfo {
    Quantity quantity;
    std::string_view name;
    Monotonicity monotonicity;
    double ProfileRow::*member;
};

constexpr std::array<QuantityInfo, kQuantityCount> kQuantities = {{
    {Quantity::kThroughput, "throughput_tok_s", Monotonicity::kIncreasing,
     &ProfileRow::throughput_tok_s},
    {Quantity::kPower, "power_w", Monotonicity::kIncreasing, &ProfileRow::power_w},
    {Quantity::kItlP50, "itl_p50_s", Monotonicity::kDecreasing, &ProfileRow::itl_p50_s},
    {Quantity::kItlP90, "itl_p90_s", Monotonicity::kDecreasing, &ProfileRow::itl_p90_s},
    {Quantity::kItlP99, "itl_p99_s", Monotonicity::kDecreasing, &ProfileRow::itl_p99_s},
    {Quantity::kTpotP90, "tpot_p90_s", Monotonicity::kDecreasing, &ProfileRow::tpot_p90_s},
    {Quantity::kTtftP90, "ttft_p90_s", Monotonicity::kNone, &ProfileRow::ttft_p90_s},
    {Quantity::kAvgBatch, "avg_batch", Monotonicity::kNone, &ProfileRow::avg_batch},
    {Quantity::kSmClock, "sm_clock_mhz", Monotonicity::kIncreasing, &ProfileRow::sm_clock_mhz},
}};

const QuantityInfo& info(Quantity q) {
    return kQuantities[static_cast<std::size_t>(q)];
}

std::string_view monotonicity_name(Monotonicity m) {
    switch (m) {
        case Monotonicity::kIncreasing:
            return "non-decreasing in cap";
        case Monotonicity::kDecreasing:
            return "non-increasing in cap";
        case Monotonicity::kNone:
            break;
    }
    return "none";
}

/// The fitted log values of one grid row (one batch cap) from its training knots.
std::vector<double> fit_row(const std::vector<double>& log_values, Monotonicity m) {
    if (m == Monotonicity::kNone) {
        return log_values;
    }
    return isotonic_fit(log_values, m == Monotonicity::kIncreasing);
}

struct Accumulator {
    double sum = 0.0;
    double max = 0.0;
    int n = 0;
    void add(double ape) {
        sum += ape;
        max = std::max(max, ape);
        ++n;
    }
    [[nodiscard]] double mean() const { return n > 0 ? sum / n : kNaN; }
};

/// The grid of one workload: row index of each (batch, cap), measured values.
struct Grid {
    std::vector<double> caps;
    std::vector<int> batches;
    std::vector<std::size_t> row_of;  ///< [b * caps + c] -> index into table.rows
};

/// Puts every innermost array of numbers on one line, so that MODEL.json reads as a grid.
std::string compact_number_arrays(const std::string& json) {
    std::string out;
    out.reserve(json.size());
    std::size_t i = 0;
    while (i < json.size()) {
        if (json[i] == '[') {
            const std::size_t end = json.find_first_of("[]{\"", i + 1);
            if (end != std::string::npos && json[end] == ']') {
                out += '[';
                bool pending_space = false;
                for (std::size_t k = i + 1; k < end; ++k) {
                    const char c = json[k];
                    if (c == ' ' || c == '\n') {
                        continue;
                    }
                    if (pending_space) {
                        out += ' ';
                        pending_space = false;
                    }
                    out += c;
                    pending_space = c == ',';
                }
                out += ']';
                i = end + 1;
                continue;
            }
        }
        out += json[i++];
    }
    return out;
}

/// `v` rounded to 12 significant digits: far below the model's error, and it keeps MODEL.json
/// free of exp(log(x)) noise such as 146.08333333333337.
double round_significant(double v) {
    return std::stod(fmt::format("{:.12g}", v));
}

nlohmann::json number_or_null(double v) {
    return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

}  // namespace

std::string_view quantity_name(Quantity q) {
    return info(q).name;
}

std::optional<Quantity> quantity_from_name(std::string_view name) {
    for (const QuantityInfo& i : kQuantities) {
        if (i.name == name) {
            return i.quantity;
        }
    }
    return std::nullopt;
}

Monotonicity monotonicity_of(Quantity q) {
    return info(q).monotonicity;
}

double quantity_value(const ProfileRow& row, Quantity q) {
    return row.*(info(q).member);
}

std::vector<double> isotonic_fit(const std::vector<double>& values, bool increasing) {
    // Pool adjacent violators on a stack of blocks (mean, size).
    std::vector<double> mean;
    std::vector<std::size_t> size;
    for (double v0 : values) {
        const double v = increasing ? v0 : -v0;
        mean.push_back(v);
        size.push_back(1);
        while (mean.size() > 1 && mean[mean.size() - 2] > mean.back()) {
            const std::size_t n = size.size();
            const double total = mean[n - 2] * static_cast<double>(size[n - 2]) +
                                 mean[n - 1] * static_cast<double>(size[n - 1]);
            size[n - 2] += size[n - 1];
            mean[n - 2] = total / static_cast<double>(size[n - 2]);
            mean.pop_back();
            size.pop_back();
        }
    }
    std::vector<double> out;
    out.reserve(values.size());
    for (std::size_t b = 0; b < mean.size(); ++b) {
        for (std::size_t i = 0; i < size[b]; ++i) {
            out.push_back(increasing ? mean[b] : -mean[b]);
        }
    }
    return out;
}

Pchip::Pchip(std::vector<double> x, std::vector<double> y) : m_x(std::move(x)), m_y(std::move(y)) {
    const std::size_t n = m_x.size();
    m_d.assign(n, 0.0);
    if (n < 2) {
        return;
    }
    std::vector<double> h(n - 1);
    std::vector<double> delta(n - 1);
    for (std::size_t k = 0; k + 1 < n; ++k) {
        h[k] = m_x[k + 1] - m_x[k];
        delta[k] = (m_y[k + 1] - m_y[k]) / h[k];
    }
    if (n == 2) {
        m_d[0] = m_d[1] = delta[0];
        return;
    }
    // Interior: weighted harmonic mean of the adjacent secants, 0 at a local extremum.
    for (std::size_t k = 1; k + 1 < n; ++k) {
        if (delta[k - 1] * delta[k] <= 0.0) {
            m_d[k] = 0.0;
        } else {
            const double w1 = 2.0 * h[k] + h[k - 1];
            const double w2 = h[k] + 2.0 * h[k - 1];
            m_d[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k]);
        }
    }
    // Ends: the shape-preserving three-point formula (as SciPy's PchipInterpolator).
    auto end_slope = [](double h0, double h1, double d0, double d1) {
        double d = ((2.0 * h0 + h1) * d0 - h0 * d1) / (h0 + h1);
        if (d * d0 <= 0.0) {
            d = 0.0;
        } else if (d0 * d1 <= 0.0 && std::fabs(d) > 3.0 * std::fabs(d0)) {
            d = 3.0 * d0;
        }
        return d;
    };
    m_d[0] = end_slope(h[0], h[1], delta[0], delta[1]);
    m_d[n - 1] = end_slope(h[n - 2], h[n - 3], delta[n - 2], delta[n - 3]);
}

double Pchip::operator()(double t) const {
    const std::size_t n = m_x.size();
    if (n == 0) {
        return kNaN;
    }
    if (n == 1 || t <= m_x.front()) {
        return m_y.front();
    }
    if (t >= m_x.back()) {
        return m_y.back();
    }
    const std::size_t k =
        static_cast<std::size_t>(std::upper_bound(m_x.begin(), m_x.end(), t) - m_x.begin()) - 1;
    const double h = m_x[k + 1] - m_x[k];
    const double s = (t - m_x[k]) / h;
    const double s2 = s * s;
    const double s3 = s2 * s;
    return (2 * s3 - 3 * s2 + 1) * m_y[k] + (s3 - 2 * s2 + s) * h * m_d[k] +
           (-2 * s3 + 3 * s2) * m_y[k + 1] + (s3 - s2) * h * m_d[k + 1];
}

Result<FitResult> fit_profile(const ProfileTable& table, const FitOptions& options) {
    const std::string file = table.source.empty() ? std::string("profile") : table.source.string();
    if (options.folds < 2) {
        return Status::invalid_argument("--folds must be >= 2");
    }
    if (table.rows.empty()) {
        return Status::invalid_argument(file + ": no data rows (an empty grid): nothing to fit");
    }
    FitResult fit;
    fit.shape = table.rows.front().shape;
    fit.profile = table.source.filename().string();
    fit.folds = options.folds;
    for (std::size_t i = 1; i < table.rows.size(); ++i) {
        if (!table.rows[i].shape.same_setup(fit.shape)) {
            return Status::invalid_argument(
                fmt::format("{}: columns model..ep: {} differs from {} in {} (one model "
                            "and layout per profile)",
                            table.where(i), table.rows[i].shape.describe(), fit.shape.describe(),
                            table.where(0)));
        }
    }
    // The workloads, in order of first appearance.
    std::vector<std::string> names;
    for (const ProfileRow& r : table.rows) {
        if (std::find(names.begin(), names.end(), r.workload) == names.end()) {
            names.push_back(r.workload);
        }
    }
    if (!options.workloads.empty()) {
        for (const std::string& w : options.workloads) {
            if (std::find(names.begin(), names.end(), w) == names.end()) {
                return Status::not_found(
                    fmt::format("{}: no workload '{}' (has: {})", file, w, fmt::join(names, ", ")));
            }
        }
        names = options.workloads;
    }
    fit.rows = 0;

    std::vector<Grid> grids;
    for (const std::string& name : names) {
        Grid g;
        for (std::size_t i = 0; i < table.rows.size(); ++i) {
            const ProfileRow& r = table.rows[i];
            if (r.workload != name) {
                continue;
            }
            ++fit.rows;
            if (std::none_of(g.caps.begin(), g.caps.end(), [&](double c) {
                    return std::fabs(c - r.power_cap_w) <= kCapToleranceW;
                })) {
                g.caps.push_back(r.power_cap_w);
            }
            if (std::find(g.batches.begin(), g.batches.end(), r.batch_cap) == g.batches.end()) {
                g.batches.push_back(r.batch_cap);
            }
            // Every fitted column, and J/token, must hold a finite positive value.
            for (const QuantityInfo& q : kQuantities) {
                const double v = r.*(q.member);
                if (!std::isfinite(v) || v <= 0.0) {
                    return Status::invalid_argument(fmt::format(
                        "{}: column '{}': {} (a fitted column needs a finite value > 0)",
                        table.where(i), q.name, v));
                }
            }
            if (!std::isfinite(r.j_per_token) || r.j_per_token <= 0.0) {
                return Status::invalid_argument(
                    fmt::format("{}: column 'j_per_token': {} (needs a finite value > 0)",
                                table.where(i), r.j_per_token));
            }
        }
        std::sort(g.caps.begin(), g.caps.end());
        std::sort(g.batches.begin(), g.batches.end());
        if (g.caps.size() < 2) {
            return Status::invalid_argument(
                fmt::format("{}: workload '{}' has a single cap ({} W): the model interpolates "
                            "between caps and needs at "
                            "least two (profile with e.g. --caps 200:700:50)",
                            file, name, g.caps.front()));
        }
        const std::size_t nc = g.caps.size();
        const std::size_t nb = g.batches.size();
        g.row_of.assign(nb * nc, 0);
        for (std::size_t b = 0; b < nb; ++b) {
            for (std::size_t c = 0; c < nc; ++c) {
                const std::size_t i = table.find(name, g.caps[c], g.batches[b]);
                if (i == static_cast<std::size_t>(-1)) {
                    return Status::invalid_argument(
                        fmt::format("{}: workload '{}' lacks the point power_cap_w={} "
                                    "batch_cap={}: the grid of {} caps x {} batch "
                                    "caps must be complete (rerun `pals profile` with the same "
                                    "--out to finish it)",
                                    file, name, g.caps[c], g.batches[b], nc, nb));
                }
                g.row_of[b * nc + c] = i;
            }
        }
        if (!grids.empty()) {
            const Grid& first = grids.front();
            bool same = first.batches == g.batches && first.caps.size() == g.caps.size();
            for (std::size_t c = 0; same && c < nc; ++c) {
                same = std::fabs(first.caps[c] - g.caps[c]) <= kCapToleranceW;
            }
            if (!same) {
                return Status::invalid_argument(
                    fmt::format("{}: workload '{}' was profiled on another (cap, batch cap) grid "
                                "than '{}'; fit them separately "
                                "with --workload",
                                file, name, names.front()));
            }
        }
        grids.push_back(std::move(g));
    }

    for (std::size_t w = 0; w < names.size(); ++w) {
        const Grid& g = grids[w];
        const std::size_t nc = g.caps.size();
        const std::size_t nb = g.batches.size();
        WorkloadFit wf;
        wf.name = names[w];
        wf.caps_w = g.caps;
        wf.batch_caps = g.batches;
        auto measured = [&](Quantity q, std::size_t b, std::size_t c) {
            return quantity_value(table.rows[g.row_of[b * nc + c]], q);
        };
        // Fitted grid (log space) per quantity, with all knots.
        std::array<std::vector<double>, kQuantityCount> fitted_log;
        for (Quantity q : kAllQuantities) {
            const auto qi = static_cast<std::size_t>(q);
            fitted_log[qi].resize(nb * nc);
            wf.values[qi].resize(nb * nc);
            double max_adjust = 0.0;
            for (std::size_t b = 0; b < nb; ++b) {
                std::vector<double> logs(nc);
                for (std::size_t c = 0; c < nc; ++c) {
                    logs[c] = std::log(measured(q, b, c));
                }
                const std::vector<double> row = fit_row(logs, monotonicity_of(q));
                for (std::size_t c = 0; c < nc; ++c) {
                    fitted_log[qi][b * nc + c] = row[c];
                    wf.values[qi][b * nc + c] = std::exp(row[c]);
                    max_adjust =
                        std::max(max_adjust, std::fabs(std::expm1(row[c] - logs[c])) * kPercent);
                }
            }
            wf.isotonic_max_adjust_pct[qi] = max_adjust;
        }

        // k-fold over the points at interior caps: a held-out point is predicted by its row's
        // isotonic + PCHIP fit through the remaining knots (the model never extrapolates, so
        // the end caps stay in every training fold).
        std::vector<std::pair<std::size_t, std::size_t>> eligible;
        for (std::size_t b = 0; b < nb; ++b) {
            for (std::size_t c = 1; c + 1 < nc; ++c) {
                eligible.emplace_back(b, c);
            }
        }
        std::mt19937_64 rng(options.seed);
        std::shuffle(eligible.begin(), eligible.end(), rng);
        std::vector<int> fold_of(nb * nc, -1);
        for (std::size_t i = 0; i < eligible.size(); ++i) {
            fold_of[eligible[i].first * nc + eligible[i].second] =
                static_cast<int>(i % static_cast<std::size_t>(options.folds));
        }
        std::array<Accumulator, kQuantityCount> kfold{};
        Accumulator kfold_j;
        for (int f = 0; f < options.folds; ++f) {
            for (std::size_t b = 0; b < nb; ++b) {
                std::vector<std::size_t> train;
                std::vector<std::size_t> test;
                for (std::size_t c = 0; c < nc; ++c) {
                    (fold_of[b * nc + c] == f ? test : train).push_back(c);
                }
                if (test.empty()) {
                    continue;
                }
                std::vector<double> x;
                x.reserve(train.size());
                for (std::size_t c : train) {
                    x.push_back(g.caps[c]);
                }
                std::array<std::vector<double>, kQuantityCount> predicted;
                for (Quantity q : kAllQuantities) {
                    const auto qi = static_cast<std::size_t>(q);
                    std::vector<double> logs;
                    logs.reserve(train.size());
                    for (std::size_t c : train) {
                        logs.push_back(std::log(measured(q, b, c)));
                    }
                    const Pchip interp(x, fit_row(logs, monotonicity_of(q)));
                    for (std::size_t c : test) {
                        const double pred = std::exp(interp(g.caps[c]));
                        predicted[qi].push_back(pred);
                        const double meas = measured(q, b, c);
                        kfold[qi].add(std::fabs(pred - meas) / meas * kPercent);
                    }
                }
                for (std::size_t t = 0; t < test.size(); ++t) {
                    const double pred =
                        predicted[static_cast<std::size_t>(Quantity::kPower)][t] /
                        predicted[static_cast<std::size_t>(Quantity::kThroughput)][t];
                    const double meas = table.rows[g.row_of[b * nc + test[t]]].j_per_token;
                    kfold_j.add(std::fabs(pred - meas) / meas * kPercent);
                }
            }
        }
        // Leave one interior batch row out: predicted by the model's blend of its neighbours.
        std::array<Accumulator, kQuantityCount> batch_cv{};
        Accumulator batch_j;
        for (std::size_t b = 1; b + 1 < nb; ++b) {
            const double l0 = std::log2(g.batches[b - 1]);
            const double l1 = std::log2(g.batches[b + 1]);
            const double t = (std::log2(g.batches[b]) - l0) / (l1 - l0);
            for (std::size_t c = 0; c < nc; ++c) {
                std::array<double, kQuantityCount> pred{};
                for (Quantity q : kAllQuantities) {
                    const auto qi = static_cast<std::size_t>(q);
                    pred[qi] = std::exp((1.0 - t) * fitted_log[qi][(b - 1) * nc + c] +
                                        t * fitted_log[qi][(b + 1) * nc + c]);
                    const double meas = measured(q, b, c);
                    batch_cv[qi].add(std::fabs(pred[qi] - meas) / meas * kPercent);
                }
                const double pj = pred[static_cast<std::size_t>(Quantity::kPower)] /
                                  pred[static_cast<std::size_t>(Quantity::kThroughput)];
                const double mj = table.rows[g.row_of[b * nc + c]].j_per_token;
                batch_j.add(std::fabs(pj - mj) / mj * kPercent);
            }
        }
        for (std::size_t qi = 0; qi < kQuantityCount; ++qi) {
            wf.cv[qi] = CvError{kfold[qi].mean(), kfold[qi].n > 0 ? kfold[qi].max : kNaN,
                                kfold[qi].n, batch_cv[qi].mean(), batch_cv[qi].n};
        }
        wf.cv_j_per_token = CvError{kfold_j.mean(), kfold_j.n > 0 ? kfold_j.max : kNaN, kfold_j.n,
                                    batch_j.mean(), batch_j.n};
        fit.workloads.push_back(std::move(wf));
    }
    return fit;
}

std::string model_json(const FitResult& fit) {
    using nlohmann::ordered_json;
    ordered_json j;
    j["schema_version"] = kModelSchemaVersion;
    j["generator"] = "pals fit";
    j["profile"] = fit.profile;
    j["rows"] = fit.rows;
    const ModelShape& s = fit.shape;
    j["model"] = {{"name", s.model},
                  {"gpu", s.gpu},
                  {"tp", s.tp},
                  {"ep", s.ep},
                  {"gpus_per_group", s.tp},
                  {"moe", s.is_moe()},
                  {"num_experts", s.num_experts},
                  {"experts_per_token", s.experts_per_token},
                  {"active_params_b", s.active_params_b},
                  {"total_params_b", s.total_params_b}};
    j["method"] = {{"space", "log"},
                   {"cap", "isotonic (where monotone) + PCHIP"},
                   {"batch", "linear in log2(batch_cap)"},
                   {"j_per_token", "power_w / throughput_tok_s"},
                   {"cv_folds", fit.folds}};
    const WorkloadFit& first = fit.workloads.front();
    j["caps_w"] = first.caps_w;
    j["batch_caps"] = first.batch_caps;
    ordered_json workloads = ordered_json::array();
    for (const WorkloadFit& w : fit.workloads) {
        ordered_json wj;
        wj["name"] = w.name;
        ordered_json quantities;
        ordered_json cv;
        const std::size_t nc = w.caps_w.size();
        for (Quantity q : kAllQuantities) {
            const auto qi = static_cast<std::size_t>(q);
            ordered_json rows = ordered_json::array();
            for (std::size_t b = 0; b < w.batch_caps.size(); ++b) {
                std::vector<double> row;
                for (std::size_t c = 0; c < nc; ++c) {
                    row.push_back(round_significant(w.values[qi][b * nc + c]));
                }
                rows.push_back(row);
            }
            quantities[std::string(quantity_name(q))] = {
                {"monotone", monotonicity_name(monotonicity_of(q))},
                {"isotonic_max_adjust_pct", w.isotonic_max_adjust_pct[qi]},
                {"values", rows}};
        }
        auto cv_json = [](const CvError& e) {
            return ordered_json{{"mape_pct", number_or_null(e.mape_pct)},
                                {"max_ape_pct", number_or_null(e.max_ape_pct)},
                                {"points", e.points},
                                {"batch_mape_pct", number_or_null(e.batch_mape_pct)},
                                {"batch_points", e.batch_points}};
        };
        for (Quantity q : kAllQuantities) {
            cv[std::string(quantity_name(q))] = cv_json(w.cv[static_cast<std::size_t>(q)]);
        }
        cv["j_per_token"] = cv_json(w.cv_j_per_token);
        wj["quantities"] = quantities;
        wj["cv"] = cv;
        workloads.push_back(wj);
    }
    j["workloads"] = workloads;
    return compact_number_arrays(j.dump(2)) + "\n";
}

}  // namespace pals::profile
