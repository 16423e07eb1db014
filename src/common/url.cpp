#include "pals/common/url.hpp"

#include <fmt/format.h>

#include "pals/common/strings.hpp"

namespace pals {

namespace {

constexpr int kMaxPort = 65535;

/// Host and port text of an authority ("h:1", "[::1]:1", "h"); the port text is empty when the
/// authority names none (and `has_colon` tells "h:" from "h").
struct Authority {
    std::string host;
    std::string_view port_text;
    bool has_colon = false;
};

Result<Authority> split_authority(std::string_view text, std::string_view quoted) {
    Authority a;
    if (!text.empty() && text.front() == '[') {
        const std::size_t close = text.find(']');
        if (close == std::string_view::npos) {
            return Status::invalid_argument(fmt::format("'{}': unclosed '[' in the host", quoted));
        }
        a.host = std::string(text.substr(1, close - 1));
        const std::string_view after = text.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') {
                return Status::invalid_argument(fmt::format("'{}' is not [IPV6]:PORT", quoted));
            }
            a.has_colon = true;
            a.port_text = after.substr(1);
        }
        return a;
    }
    const std::size_t colon = text.rfind(':');
    a.host = std::string(text.substr(0, colon));
    if (colon != std::string_view::npos) {
        a.has_colon = true;
        a.port_text = text.substr(colon + 1);
    }
    if (a.host.find(':') != std::string::npos) {
        return Status::invalid_argument(
            fmt::format("'{}': put an IPv6 address in brackets: [::1]:PORT", quoted));
    }
    return a;
}

Result<int> parse_port(std::string_view text, int min_port, std::string_view quoted) {
    Result<int> port = parse_integer(text);
    if (!port.is_ok() || *port < min_port || *port > kMaxPort) {
        return Status::invalid_argument(
            fmt::format("'{}': the port must be an integer in {}-{}", quoted, min_port, kMaxPort));
    }
    return port;
}

}  // namespace

Result<Url> Url::parse(std::string_view text) {
    Url out;
    const std::size_t sep = text.find("://");
    if (sep == std::string_view::npos) {
        return Status::invalid_argument(
            fmt::format("'{}' is not a URL (give e.g. http://127.0.0.1:8000)", text));
    }
    out.scheme = std::string(text.substr(0, sep));
    if (out.scheme != "http" && out.scheme != "https") {
        return Status::invalid_argument(
            fmt::format("'{}': only http:// and https:// are supported", text));
    }
    out.port = out.scheme == "https" ? 443 : 80;
    const std::string_view rest = text.substr(sep + 3);
    const std::size_t slash = rest.find('/');
    std::string_view path =
        slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
    while (!path.empty() && path.back() == '/') {
        path.remove_suffix(1);
    }
    out.path_prefix = std::string(path);
    PALS_ASSIGN_OR_RETURN(const Authority authority, split_authority(rest.substr(0, slash), text));
    out.host = authority.host;
    if (out.host.empty()) {
        return Status::invalid_argument(fmt::format("'{}' has no host", text));
    }
    if (authority.has_colon) {
        PALS_ASSIGN_OR_RETURN(out.port, parse_port(authority.port_text, 1, text));
        out.port_given = true;
    }
    return out;
}

std::string Url::origin() const {
    const bool ipv6 = host.find(':') != std::string::npos;
    return ipv6 ? fmt::format("{}://[{}]:{}", scheme, host, port)
                : fmt::format("{}://{}:{}", scheme, host, port);
}

Result<HostPort> parse_host_port(std::string_view text, int min_port) {
    PALS_ASSIGN_OR_RETURN(const Authority authority, split_authority(text, text));
    if (!authority.has_colon) {
        return Status::invalid_argument(fmt::format("'{}' has no port (give HOST:PORT)", text));
    }
    if (authority.host.empty()) {
        return Status::invalid_argument(fmt::format("'{}' has no host", text));
    }
    HostPort out;
    out.host = authority.host;
    PALS_ASSIGN_OR_RETURN(out.port, parse_port(authority.port_text, min_port, text));
    return out;
}

}  // namespace pals
