// `pals loadgen`: replay a trace or synthetic arrivals against an OpenAI-compatible endpoint and
// report TTFT/TPOT/ITL/E2EL and goodput as `vllm bench serve` does (docs/loadgen.md).
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/flag_checks.hpp"
#include "cli/sim_options.hpp"
#include "pals/common/file_util.hpp"
#include "pals/common/json.hpp"
#include "pals/common/log.hpp"
#include "pals/loadgen/loadgen.hpp"

namespace pals::cli {

namespace {

/// Seconds between two progress lines.
constexpr double kProgressPeriodS = 1.0;

struct LoadgenOptions {
    std::string url = "http://127.0.0.1:8000";
    std::string endpoint = "/v1/completions";
    std::string model;
    WorkloadFlags workload;
    int max_concurrency = 0;
    std::vector<std::string> goodput;
    std::string percentile_metrics = "ttft,tpot,itl";
    std::string metric_percentiles = "99";
    double request_timeout_s = 0.0;
    std::string api_key;
    bool no_ignore_eos = false;
    std::string extra_body;
    bool json = false;
    std::string out;
    std::string save_requests;
    bool save_detailed = false;
    bool progress = false;
};

/// The validated, typed form of the flags.
struct LoadgenPlan {
    loadgen::ClientConfig client;
    loadgen::MetricsConfig metrics;
    loadgen::RunOptions run;
    loadgen::RunInfo info;
    std::vector<workload::Request> requests;
};

Result<LoadgenPlan> build_plan(const LoadgenOptions& opt) {
    LoadgenPlan plan;
    PALS_ASSIGN_OR_RETURN(plan.client.url, Url::parse(opt.url).with_prefix("--url"));
    if (opt.endpoint.empty() || opt.endpoint.front() != '/') {
        return Status::invalid_argument(
            fmt::format("--endpoint: '{}' must be a path such as /v1/completions", opt.endpoint));
    }
    plan.client.endpoint_path = opt.endpoint;
    plan.client.kind = loadgen::endpoint_kind_for(opt.endpoint);
    plan.client.model = opt.model;
    plan.client.api_key = opt.api_key;
    plan.client.ignore_eos = !opt.no_ignore_eos;
    if (!opt.extra_body.empty()) {
        // Checked here, before any request is sent (the sender would refuse it only later).
        PALS_ASSIGN_OR_RETURN(nlohmann::json extra, parse_json(opt.extra_body, "--extra-body"));
        if (!extra.is_object()) {
            return Status::invalid_argument(
                fmt::format("--extra-body: '{}' is not a JSON object", opt.extra_body));
        }
    }
    plan.client.extra_body_json = opt.extra_body;
    plan.client.prompt_seed = opt.workload.values.seed;
    if (opt.request_timeout_s < 0.0 || !std::isfinite(opt.request_timeout_s)) {
        return Status::invalid_argument(
            fmt::format("--request-timeout must be > 0 seconds (got {})", opt.request_timeout_s));
    }
    if (opt.request_timeout_s > 0.0) {
        plan.client.request_timeout_s = opt.request_timeout_s;
    }
    if (opt.max_concurrency < 0) {
        return Status::invalid_argument(
            fmt::format("--max-concurrency must be >= 1 (got {})", opt.max_concurrency));
    }
    if (opt.max_concurrency > 0) {
        plan.run.max_concurrency = opt.max_concurrency;
    }

    Result<std::vector<loadgen::LatencyMetric>> metrics =
        loadgen::parse_percentile_metrics(opt.percentile_metrics);
    if (!metrics.is_ok()) {
        return metrics.status().with_prefix("--percentile-metrics");
    }
    plan.metrics.percentile_metrics = metrics.value();
    Result<std::vector<double>> percentiles =
        loadgen::parse_metric_percentiles(opt.metric_percentiles);
    if (!percentiles.is_ok()) {
        return percentiles.status().with_prefix("--metric-percentiles");
    }
    plan.metrics.percentiles = percentiles.value();
    Result<loadgen::GoodputSlo> goodput = loadgen::parse_goodput(opt.goodput);
    if (!goodput.is_ok()) {
        return goodput.status().with_prefix("--goodput");
    }
    plan.metrics.goodput = goodput.value();

    PALS_ASSIGN_OR_RETURN(workload::WorkloadSpec spec, opt.workload.build());
    PALS_ASSIGN_OR_RETURN(std::vector<workload::Request> requests, loadgen::build_load(spec));
    if (requests.empty()) {
        return Status::invalid_argument(
            "the workload has no requests (check --duration / --num-requests)");
    }
    plan.requests = std::move(requests);

    plan.info.base_url = opt.url;
    plan.info.endpoint = opt.endpoint;
    plan.info.num_prompts = plan.requests.size();
    plan.info.max_concurrency = plan.run.max_concurrency;
    plan.info.burstiness = spec.burstiness;
    const bool batch =
        spec.kind == workload::WorkloadKind::kClosedLoop || std::isinf(spec.rate_rps);
    if (spec.kind == workload::WorkloadKind::kTrace) {
        plan.info.arrival = "trace";
    } else if (batch) {
        plan.info.arrival = "batch";
    } else {
        plan.info.arrival = "gamma";
        plan.info.request_rate = spec.rate_rps * spec.rate_scale / spec.time_scale;
    }
    return plan;
}

/// Prints "loadgen: N/M requests finished" to stderr at most once per kProgressPeriodS.
class ProgressPrinter {
public:
    void operator()(std::size_t finished, std::size_t total) {
        const auto now = std::chrono::steady_clock::now();
        if (finished < total && now - m_last < std::chrono::duration<double>(kProgressPeriodS)) {
            return;
        }
        m_last = now;
        const double elapsed = std::chrono::duration<double>(now - m_start).count();
        std::fprintf(stderr, "loadgen: %zu/%zu requests finished, %.1f s\n", finished, total,
                     elapsed);
    }

private:
    std::chrono::steady_clock::time_point m_start = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point m_last = m_start;
};

Status run_loadgen(const LoadgenOptions& opt) {
    PALS_ASSIGN_OR_RETURN(LoadgenPlan built, build_plan(opt));
    LoadgenPlan& plan = built;
    // Like vllm bench serve: without --model, ask the server. Either way an unreachable
    // endpoint stops the run before it starts (exit 3).
    if (plan.client.model.empty()) {
        PALS_ASSIGN_OR_RETURN(std::string model,
                              loadgen::fetch_first_model(plan.client.url, plan.client.api_key)
                                  .with_prefix("--model not given and /v1/models failed"));
        plan.client.model = model;
    } else {
        PALS_RETURN_IF_ERROR(loadgen::check_reachable(plan.client.url).with_prefix("--url"));
    }
    plan.info.model = plan.client.model;
    PALS_ASSIGN_OR_RETURN(loadgen::RequestSender sender,
                          loadgen::RequestSender::create(plan.client)
                              .with_prefix(opt.extra_body.empty() ? "--model" : "--extra-body"));
    if (opt.progress) {
        std::fprintf(stderr, "loadgen: %zu requests (%s) to %s%s%s, model %s\n",
                     plan.requests.size(), plan.info.arrival.c_str(),
                     plan.client.url.origin().c_str(), plan.client.url.path_prefix.c_str(),
                     plan.client.endpoint_path.c_str(), plan.client.model.c_str());
        auto printer = std::make_shared<ProgressPrinter>();
        plan.run.on_progress = [printer](std::size_t finished, std::size_t total) {
            (*printer)(finished, total);
        };
    }
    SystemClock clock;
    PALS_ASSIGN_OR_RETURN(loadgen::RunResult run,
                          loadgen::run_load(sender, plan.requests, plan.run, clock));
    const loadgen::BenchmarkMetrics metrics =
        loadgen::compute_metrics(run.outcomes, run.duration_s, plan.metrics);
    if (metrics.completed == 0) {
        PALS_LOG_WARN("loadgen: all {} requests failed; first error: {}", metrics.failed,
                      run.outcomes.empty() ? "" : run.outcomes.front().error);
    }
    if (!opt.save_requests.empty()) {
        PALS_RETURN_IF_ERROR(
            write_file_atomic(opt.save_requests, loadgen::format_requests_jsonl(run.outcomes))
                .with_prefix("--save-requests"));
    }
    const std::string text =
        opt.json ? loadgen::format_result_json(metrics, plan.metrics, plan.info, run.outcomes,
                                               opt.save_detailed)
                 : loadgen::format_result_table(metrics, plan.metrics, plan.info, run.outcomes);
    if (!opt.out.empty()) {
        return write_file_atomic(opt.out, text);
    }
    std::fputs(text.c_str(), stdout);
    return Status::ok();
}

}  // namespace

void add_loadgen_command(CLI::App& app, CommandContext& ctx) {
    auto opt = std::make_shared<LoadgenOptions>();
    CLI::App* cmd = app.add_subcommand(
        "loadgen",
        "replay a trace or synthetic arrivals against an OpenAI-compatible endpoint; "
        "report TTFT/TPOT/ITL/E2EL and goodput as vllm bench serve does");
    cmd->add_option("--url", opt->url, "base URL of the server, http://HOST:PORT[/PREFIX]")
        ->envname("PALS_LOADGEN_URL")
        ->capture_default_str();
    cmd->add_option("--endpoint", opt->endpoint, "/v1/completions or /v1/chat/completions")
        ->capture_default_str();
    cmd->add_option("--model", opt->model,
                    "model name to request (default: the first of GET /v1/models)");
    opt->workload.add_to(*cmd);
    cmd->add_option("--max-concurrency", opt->max_concurrency,
                    "at most N requests in flight (a client-side semaphore, as in vllm bench)")
        ->check(integer_in(0, kMaxSeqs));
    cmd->add_option("--goodput", opt->goodput,
                    "SLOs for goodput: ttft:MS tpot:MS e2el:MS (a request is good if all hold)")
        ->expected(1, -1);
    cmd->add_option("--percentile-metrics", opt->percentile_metrics,
                    "metrics to report percentiles for: ttft,tpot,itl,e2el")
        ->capture_default_str();
    cmd->add_option("--metric-percentiles", opt->metric_percentiles,
                    "percentiles to report, e.g. 50,90,99")
        ->capture_default_str();
    cmd->add_option("--request-timeout", opt->request_timeout_s,
                    "fail a request that takes longer than S seconds (default: none)")
        ->check(finite_in(0.0, kMaxSeconds, "s"));
    cmd->add_option("--api-key", opt->api_key, "sent as Authorization: Bearer KEY")
        ->envname("OPENAI_API_KEY");
    cmd->add_flag("--no-ignore-eos", opt->no_ignore_eos,
                  "do not send ignore_eos (for servers that reject it; outputs may end early)");
    cmd->add_option("--extra-body", opt->extra_body,
                    "JSON object merged into every request body, e.g. '{\"temperature\":0}'");
    cmd->add_flag("--json", opt->json, "print vLLM's result JSON instead of the table");
    cmd->add_option("--out", opt->out,
                    "write the output to this file (atomically) instead of stdout");
    cmd->add_option("--save-requests", opt->save_requests,
                    "write one JSON line per request to this file");
    cmd->add_flag(
        "--save-detailed", opt->save_detailed,
        "with --json: add per-request lists (input_lens, output_lens, ttfts, itls, errors)");
    cmd->add_flag("--progress", opt->progress, "print progress to stderr");
    cmd->callback([opt, &ctx] {
        const Status status = run_loadgen(*opt);
        ctx.exit_code = status.is_ok() ? 0 : report_error(status);
    });
}

}  // namespace pals::cli
