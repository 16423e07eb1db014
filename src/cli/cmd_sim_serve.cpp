// `pals sim-serve`: an OpenAI-compatible server (like `vllm serve`) backed by the simulator in
// real time, with its GPUs visible through the fake libnvidia-ml.so.1 (docs/sim-serve.md).
//
// Signals: SIGINT/SIGTERM handlers only set a flag and write one byte to a self-pipe; the command
// waits on the pipe, then stops the server in normal code and exits 0.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.hpp"
#include "cli/flag_checks.hpp"
#include "cli/sim_options.hpp"
#include "cli/stop_signals.hpp"
#include "pals/common/file_util.hpp"
#include "pals/serve/sim_server.hpp"

namespace pals::cli {

namespace {

constexpr int kDefaultPort = 8000;
constexpr int kDefaultTickUs = 2000;

struct SimServeOptions {
    NodeFlags node;
    std::string host = "127.0.0.1";
    int port = kDefaultPort;
    std::string served_model_name;
    double time_scale = 1.0;
    int default_max_tokens = 128;
    std::string state_dir;
    std::string batch_cap_file;
    serve::BatchCapMode batch_cap_mode = serve::BatchCapMode::kApply;
    int gpu_offset = 0;
    int nvml_count = 0;
    int max_connections = 512;
    int tick_us = kDefaultTickUs;
    int header_timeout_ms = 5000;
    std::int64_t max_finished_requests = 1000;
};

/// The fake libnvidia-ml.so.1 of the build tree this executable belongs to, if it is there.
std::string find_fake_nvml_library() {
    std::error_code ec;
    const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (ec) {
        return {};
    }
    for (const std::filesystem::path& dir : {exe.parent_path(), exe.parent_path().parent_path()}) {
        const std::filesystem::path lib = dir / "fake_nvml" / "libnvidia-ml.so.1";
        if (std::filesystem::exists(lib, ec)) {
            return lib.string();
        }
    }
    return {};
}

Status run_sim_serve(const SimServeOptions& opt) {
    PALS_ASSIGN_OR_RETURN(sim::NodeConfig node, opt.node.build());
    const int gpus = node.replicas * node.parallel.tp;
    if (opt.gpu_offset < 0) {
        return Status::invalid_argument("--gpu-offset must be >= 0");
    }
    const int nvml_count = opt.nvml_count > 0 ? opt.nvml_count : opt.gpu_offset + gpus;
    const std::filesystem::path dir =
        opt.state_dir.empty() ? "/tmp/pals-sim-serve-" + std::to_string(opt.port) : opt.state_dir;
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
        return Status::invalid_argument("--state-dir " + dir.string() + ": " + ec.message());
    }
    const std::filesystem::path config_path = dir / "fake-nvml.json";
    const nlohmann::json config = {
        {"count", nvml_count}, {"gpu", node.gpu.name}, {"load", "external"}};
    PALS_RETURN_IF_ERROR(write_file_atomic(config_path, config.dump(2) + "\n"));

    serve::SimServerOptions options;
    options.host = opt.host;
    options.port = opt.port;
    options.served_model_name = opt.served_model_name;
    options.time_scale = opt.time_scale;
    options.default_max_tokens = opt.default_max_tokens;
    options.fake_nvml_config_path = config_path.string();
    options.fake_nvml_state_path = (dir / "fake-nvml-state.json").string();
    options.gpu_offset = opt.gpu_offset;
    options.batch_cap_path =
        opt.batch_cap_file.empty() ? (dir / "batch_cap").string() : opt.batch_cap_file;
    options.batch_cap_mode = opt.batch_cap_mode;
    options.max_connections = opt.max_connections;
    if (opt.header_timeout_ms < 1) {
        return Status::invalid_argument("--header-timeout-ms must be >= 1");
    }
    options.header_timeout = std::chrono::milliseconds(opt.header_timeout_ms);
    if (opt.max_finished_requests < 1) {
        return Status::invalid_argument("--max-finished-requests must be >= 1");
    }
    options.max_finished_requests = static_cast<std::size_t>(opt.max_finished_requests);
    if (opt.tick_us < 1) {
        return Status::invalid_argument("--tick-us must be >= 1");
    }
    options.tick_period = std::chrono::microseconds(opt.tick_us);

    const int replicas = node.replicas;
    const int tp = node.parallel.tp;
    const std::string gpu_name = node.gpu.name;
    PALS_ASSIGN_OR_RETURN(std::unique_ptr<serve::SimServer> server,
                          serve::SimServer::create(node, options));
    StopSignals signals(
        {.ignore_sigpipe = true});  // from here on, Ctrl-C or SIGTERM ends in a clean stop
    PALS_RETURN_IF_ERROR(server->start());

    const std::string lib = find_fake_nvml_library();
    std::printf("listening on http://%s:%d\n", opt.host.c_str(), server->port());
    std::printf("served model: %s (max_model_len %d), %d replica(s) x TP %d on %s, time scale %g\n",
                server->served_model_name().c_str(), server->max_model_len(), replicas, tp,
                gpu_name.c_str(), opt.time_scale);
    std::printf("GPUs %d-%d of a fake NVML node of %d; for pals gpus / pals run:\n", opt.gpu_offset,
                opt.gpu_offset + gpus - 1, nvml_count);
    std::printf("  export PALS_NVML_LIB=%s\n",
                lib.empty() ? "<build dir>/fake_nvml/libnvidia-ml.so.1" : lib.c_str());
    std::printf("  export PALS_FAKE_NVML_CONFIG=%s\n", options.fake_nvml_config_path.c_str());
    std::printf("  export PALS_FAKE_NVML_STATE=%s\n", options.fake_nvml_state_path.c_str());
    std::printf("batch-cap file (8 bytes, little-endian uint64; vLLM plugin's variable):\n");
    std::printf("  export PALS_BATCH_CAP_FILE=%s\n", options.batch_cap_path.c_str());
    std::printf("batch cap: %s (acknowledgement %s.ack)\n",
                opt.batch_cap_mode == serve::BatchCapMode::kApply    ? "applied"
                : opt.batch_cap_mode == serve::BatchCapMode::kIgnore ? "read but ignored"
                                                                     : "not read",
                options.batch_cap_path.c_str());
    std::fflush(stdout);

    signals.wait_for(-1.0);
    server->stop();
    std::printf("stopped\n");
    std::fflush(stdout);
    return Status::ok();
}

}  // namespace

void add_sim_serve_command(CLI::App& app, CommandContext& ctx) {
    auto opt = std::make_shared<SimServeOptions>();
    CLI::App* cmd = app.add_subcommand(
        "sim-serve",
        "OpenAI-compatible server (like vllm serve) backed by the simulator in real time");
    opt->node.add_to(*cmd);
    cmd->add_option("--host", opt->host, "address to listen on")->capture_default_str();
    cmd->add_option("--port", opt->port, "port (0: any free port)")
        ->check(integer_in(0, 65535))
        ->capture_default_str();
    cmd->add_option("--served-model-name", opt->served_model_name,
                    "model name of the API (default: the model config's, org__name -> org/name)");
    cmd->add_option("--time-scale", opt->time_scale,
                    "simulated seconds per wall second (only 1 gives meaningful NVML energy)")
        ->check(finite_above(0.0, 1e6))
        ->capture_default_str();
    cmd->add_option("--default-max-tokens", opt->default_max_tokens,
                    "output tokens of a request without max_tokens")
        ->check(integer_in(1, kMaxTokens))
        ->capture_default_str();
    cmd->add_option("--state-dir", opt->state_dir,
                    "folder of fake-nvml.json, fake-nvml-state.json and batch_cap "
                    "(default: /tmp/pals-sim-serve-PORT)");
    cmd->add_option("--batch-cap-file", opt->batch_cap_file,
                    "batch-cap file to read every tick (default: STATE_DIR/batch_cap)");
    cmd->add_option("--batch-cap-mode", opt->batch_cap_mode,
                    "what the engine does with the batch-cap file: apply (and acknowledge it, as "
                    "vLLM with the PALS scheduler), ignore (acknowledge it but run at "
                    "--max-num-seqs), none (neither: vLLM without the PALS scheduler)")
        ->transform(CLI::CheckedTransformer(
            std::map<std::string, serve::BatchCapMode>{{"apply", serve::BatchCapMode::kApply},
                                                       {"ignore", serve::BatchCapMode::kIgnore},
                                                       {"none", serve::BatchCapMode::kNone}},
            CLI::ignore_case))
        ->default_str("apply");
    cmd->add_option("--gpu-offset", opt->gpu_offset,
                    "index of this node's first GPU in the fake NVML node (to share one node)")
        ->check(integer_in(0, kMaxGpus - 1))
        ->capture_default_str();
    cmd->add_option("--nvml-count", opt->nvml_count,
                    "GPUs of the fake NVML node (default: gpu offset + this node's GPUs)")
        ->check(integer_in(1, kMaxGpus));
    cmd->add_option("--max-connections", opt->max_connections,
                    "HTTP worker threads: the most concurrent streams")
        ->check(integer_in(1, 65536))
        ->capture_default_str();
    cmd->add_option("--tick-us", opt->tick_us, "simulation tick period in microseconds")
        ->check(integer_in(1, 10'000'000))
        ->capture_default_str();
    cmd->add_option("--header-timeout-ms", opt->header_timeout_ms,
                    "a request's line and headers must arrive within this (slow clients are "
                    "disconnected); also the per-read timeout")
        ->capture_default_str();
    cmd->add_option("--max-finished-requests", opt->max_finished_requests,
                    "finished requests whose timings are kept (N to 2N); ended requests are "
                    "dropped so memory stays flat")
        ->capture_default_str();
    cmd->callback([opt, &ctx] {
        const Status status = run_sim_serve(*opt);
        ctx.exit_code = status.is_ok() ? 0 : report_error(status);
    });
}

}  // namespace pals::cli
