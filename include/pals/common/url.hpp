#pragma once
/// @file url.hpp
/// @brief The one URL type of every command and the run config (vLLM servers, OpenAI endpoints),
/// and the HOST:PORT form of listen addresses.

#include <string>
#include <string_view>

#include "pals/common/status.hpp"

namespace pals {

/// "http://HOST[:PORT][/PREFIX]" (or https): what `--url`, `[[group]] url` and PALS_GROUPS take.
struct Url {
    std::string scheme = "http";  ///< "http" or "https"
    std::string host;             ///< an IPv6 address without its brackets
    int port = 80;                ///< the scheme's default when the text gives none
    bool port_given = false;      ///< the text names the port
    std::string path_prefix;      ///< "" or "/prefix" (no trailing slash), e.g. behind a proxy

    /// Parses the text. An IPv6 host goes in brackets ("http://[::1]:8000"). Errors
    /// (kInvalidArgument) quote the text and say what is wrong, without a field prefix.
    [[nodiscard]] static Result<Url> parse(std::string_view text);
    /// "scheme://host:port", what an HTTP client connects to.
    [[nodiscard]] std::string origin() const;
};

/// A listen address: "HOST:PORT" or "[V6]:PORT".
struct HostPort {
    std::string host;  ///< an IPv6 address without its brackets
    int port = 0;
};

/// Parses "HOST:PORT" or "[V6]:PORT" with min_port <= PORT <= 65535 (0 lets the system pick).
/// Errors without a field prefix.
[[nodiscard]] Result<HostPort> parse_host_port(std::string_view text, int min_port);

}  // namespace pals
