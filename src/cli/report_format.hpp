#pragma once
/// @file report_format.hpp
/// @brief Rendering simulation reports for people (tables) and programs (JSON).

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "pals/sim/simulator.hpp"

namespace pals::cli {

/// The JSON object `pals simulate --json` prints (fields documented in docs/cli.md).
[[nodiscard]] nlohmann::json report_to_json(const sim::SimulationReport& report);

/// A human-readable multi-line summary of one run.
[[nodiscard]] std::string report_to_text(const sim::SimulationReport& report);

/// A fixed-width table: header row, then rows; columns right-aligned except the first.
[[nodiscard]] std::string format_table(const std::vector<std::string>& header,
                                       const std::vector<std::vector<std::string>>& rows);

}  // namespace pals::cli
