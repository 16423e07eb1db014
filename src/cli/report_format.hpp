#pragma once
/// @file report_format.hpp
/// @brief Rendering simulation reports for people (tables) and programs (JSON).

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "pals/sim/simulator.hpp"
#include "pals/workload/workload.hpp"

namespace pals::cli {

/// The JSON object `pals simulate --json` prints (fields documented in docs/cli.md).
[[nodiscard]] nlohmann::json report_to_json(const sim::SimulationReport& report);

/// A human-readable multi-line summary of one run.
[[nodiscard]] std::string report_to_text(const sim::SimulationReport& report);

/// A model's name as its Hugging Face id: "meta-llama__Llama-3.1-8B-Instruct" (a models/ file
/// stem) -> "meta-llama/Llama-3.1-8B-Instruct"; other names unchanged.
[[nodiscard]] std::string model_id_text(const std::string& name);

/// "mistralai/Mixtral-8x7B-Instruct-v0.1 (MoE: 8 experts, top-2, 12.9B active / 46.7B total)".
[[nodiscard]] std::string model_text(const model::ModelSpec& model);

/// "trace AzureLLMInferenceTrace_conv.csv, first 600 s", "Poisson 2 req/s for 30 s, input
/// fixed:1024, output fixed:128, seed 0", "closed loop: 200 requests at t = 0, ...".
[[nodiscard]] std::string workload_text(const workload::WorkloadSpec& spec);

/// One labelled line of a run's echo ("  model      Mixtral...").
[[nodiscard]] std::string echo_line(std::string_view label, std::string_view value);

/// What a run ran, for the top of the human output of `simulate`, `profile` and `evaluate`
/// (never in --json): the model; the GPUs with TP, EP and replicas; the power cap (`cap_text`,
/// else the node's cap: its value or the GPU's default limit) with the GPU's range and the SM
/// clock (`clock_text`, else the node's lock); the batch cap (`batch_text`, else max-num-seqs)
/// with the token budget.
[[nodiscard]] std::string node_echo(const sim::NodeConfig& node, const std::string& cap_text = "",
                                    const std::string& batch_text = "",
                                    const std::string& clock_text = "");

/// A fixed-width table: header row, then rows; columns right-aligned except the first.
[[nodiscard]] std::string format_table(const std::vector<std::string>& header,
                                       const std::vector<std::vector<std::string>>& rows);

}  // namespace pals::cli
