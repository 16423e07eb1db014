#pragma once
/// @file log.hpp
/// @brief Logging through spdlog (fmt-style), to standard error, plain lines (STYLE.md 3.9).

#include <spdlog/spdlog.h>

#include <string_view>

#define PALS_LOG_DEBUG(...) SPDLOG_DEBUG(__VA_ARGS__)
#define PALS_LOG_INFO(...) SPDLOG_INFO(__VA_ARGS__)
#define PALS_LOG_WARN(...) SPDLOG_WARN(__VA_ARGS__)
#define PALS_LOG_ERROR(...) SPDLOG_ERROR(__VA_ARGS__)

namespace pals {

/// Sends the default logger to standard error with the given level ("debug", "info", "warn",
/// "error", "off"). Call once from main before other threads start.
void init_logging(std::string_view level);

}  // namespace pals
