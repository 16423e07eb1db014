#include "pals/cluster/etcd_store.hpp"

#include <fmt/format.h>
#include <httplib.h>

#include <array>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "pals/common/json.hpp"
#include "pals/common/log.hpp"
#include "pals/common/url.hpp"

namespace pals::cluster {

namespace {

using nlohmann::json;

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// gRPC status codes the gateway reports in "code" (google.rpc.Code).
constexpr int kGrpcNotFound = 5;
constexpr int kGrpcPermissionDenied = 7;
constexpr int kGrpcUnavailable = 14;
constexpr int kGrpcUnauthenticated = 16;
/// HTTP statuses from 500 up mean "this member cannot serve now": try the next one.
constexpr int kHttpServerError = 500;
constexpr int kHttpUnauthorized = 401;

/// An int64 field of proto3 JSON: a decimal string, a number, or absent (0).
std::int64_t int64_field(const json& j, const char* name) {
    auto it = j.find(name);
    if (it == j.end() || it->is_null()) {
        return 0;
    }
    if (it->is_number_integer()) {
        return it->get<std::int64_t>();
    }
    if (it->is_string()) {
        try {
            return std::stoll(it->get<std::string>());
        } catch (const std::exception&) {
            return 0;
        }
    }
    return 0;
}

Result<std::string> bytes_field(const json& j, const char* name) {
    auto it = j.find(name);
    if (it == j.end() || it->is_null()) {
        return std::string();
    }
    if (!it->is_string()) {
        return Status::invalid_argument(std::string("etcd answer: \"") + name +
                                        "\" is not a string");
    }
    return base64_decode(it->get<std::string>());
}

Result<KeyValue> parse_kv(const json& j) {
    KeyValue kv;
    PALS_ASSIGN_OR_RETURN(kv.key, bytes_field(j, "key"));
    PALS_ASSIGN_OR_RETURN(kv.value, bytes_field(j, "value"));
    kv.create_revision = int64_field(j, "create_revision");
    kv.mod_revision = int64_field(j, "mod_revision");
    kv.version = int64_field(j, "version");
    kv.lease = int64_field(j, "lease");
    return kv;
}

Result<std::vector<KeyValue>> parse_kvs(const json& j) {
    std::vector<KeyValue> out;
    auto it = j.find("kvs");
    if (it == j.end() || !it->is_array()) {
        return out;
    }
    for (const json& e : *it) {
        PALS_ASSIGN_OR_RETURN(KeyValue kv, parse_kv(e));
        out.push_back(std::move(kv));
    }
    return out;
}

json range_request(const std::string& key, bool prefix) {
    json r = {{"key", base64_encode(key)}};
    if (prefix) {
        r["range_end"] = base64_encode(prefix_end(key));
    }
    return r;
}

json op_json(const TxnOp& op) {
    switch (op.kind) {
        case TxnOp::Kind::kPut: {
            json put = {{"key", base64_encode(op.key)}, {"value", base64_encode(op.value)}};
            if (op.lease != 0) {
                put["lease"] = std::to_string(op.lease);
            }
            return {{"request_put", put}};
        }
        case TxnOp::Kind::kDelete:
            return {{"request_delete_range", range_request(op.key, op.prefix)}};
        case TxnOp::Kind::kRange:
            return {{"request_range", range_request(op.key, op.prefix)}};
    }
    return json::object();
}

json compare_json(const Compare& c) {
    static constexpr std::array<const char*, 4> kOps = {"EQUAL", "NOT_EQUAL", "LESS", "GREATER"};
    json j = {{"key", base64_encode(c.key)}, {"result", kOps.at(static_cast<std::size_t>(c.op))}};
    if (c.prefix) {
        j["range_end"] = base64_encode(prefix_end(c.key));
    }
    switch (c.target) {
        case Compare::Target::kCreate:
            j["target"] = "CREATE";
            j["create_revision"] = std::to_string(c.number);
            break;
        case Compare::Target::kMod:
            j["target"] = "MOD";
            j["mod_revision"] = std::to_string(c.number);
            break;
        case Compare::Target::kVersion:
            j["target"] = "VERSION";
            j["version"] = std::to_string(c.number);
            break;
        case Compare::Target::kLease:
            j["target"] = "LEASE";
            j["lease"] = std::to_string(c.number);
            break;
        case Compare::Target::kValue:
            j["target"] = "VALUE";
            j["value"] = base64_encode(c.value);
            break;
    }
    return j;
}

/// The first JSON value of a body (the keepalive stream sends one object per line).
Result<json> parse_answer(const std::string& body) {
    const std::size_t nl = body.find('\n');
    const std::string first = nl == std::string::npos ? body : body.substr(0, nl);
    return pals::parse_json(first, "etcd answer");
}

/// The error an answer carries ({"error": "...", "code": N, "message": "..."} or, in a
/// stream, {"error": {"grpc_code": N, "http_code": H, "message": "..."}}); ok if none.
Status answer_error(const json& j, int http_status) {
    int code = 0;
    std::string message;
    if (auto e = j.find("error"); e != j.end()) {
        if (e->is_object()) {
            code = static_cast<int>(int64_field(*e, "grpc_code"));
            message = e->value("message", std::string());
        } else if (e->is_string()) {
            message = e->get<std::string>();
        }
    }
    if (j.contains("code") && j.contains("message")) {
        code = static_cast<int>(int64_field(j, "code"));
        message = j.value("message", message);
    }
    if (message.empty() && http_status < 300) {
        return Status::ok();
    }
    if (message.empty()) {
        message = fmt::format("HTTP {}", http_status);
    }
    if (code == kGrpcNotFound || message.find("not found") != std::string::npos) {
        return Status::not_found("etcd: " + message);
    }
    // etcd answers a wrong password with InvalidArgument ("authentication failed, invalid user
    // ID or password"): a refusal of credentials all the same.
    if (code == kGrpcPermissionDenied || code == kGrpcUnauthenticated ||
        http_status == kHttpUnauthorized ||
        message.find("authentication failed") != std::string::npos ||
        message.find("permission denied") != std::string::npos) {
        return Status::permission_denied("etcd: " + message);
    }
    if (code == kGrpcUnavailable || http_status >= kHttpServerError) {
        return Status::unavailable("etcd: " + message);
    }
    return Status::invalid_argument("etcd: " + message);
}

}  // namespace

std::string base64_encode(const std::string& bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        const auto n = (static_cast<unsigned>(static_cast<unsigned char>(bytes[i])) << 16U) |
                       (static_cast<unsigned>(static_cast<unsigned char>(bytes[i + 1])) << 8U) |
                       static_cast<unsigned>(static_cast<unsigned char>(bytes[i + 2]));
        out += kAlphabet[(n >> 18U) & 63U];
        out += kAlphabet[(n >> 12U) & 63U];
        out += kAlphabet[(n >> 6U) & 63U];
        out += kAlphabet[n & 63U];
    }
    const std::size_t rest = bytes.size() - i;
    if (rest > 0) {
        unsigned n = static_cast<unsigned>(static_cast<unsigned char>(bytes[i])) << 16U;
        if (rest == 2) {
            n |= static_cast<unsigned>(static_cast<unsigned char>(bytes[i + 1])) << 8U;
        }
        out += kAlphabet[(n >> 18U) & 63U];
        out += kAlphabet[(n >> 12U) & 63U];
        out += rest == 2 ? kAlphabet[(n >> 6U) & 63U] : '=';
        out += '=';
    }
    return out;
}

Result<std::string> base64_decode(const std::string& text) {
    std::string out;
    unsigned buffer = 0;
    int bits = 0;
    for (const char c : text) {
        if (c == '=') {
            break;
        }
        const std::size_t v = kAlphabet.find(c);
        if (v == std::string_view::npos) {
            return Status::invalid_argument("etcd answer: invalid base64");
        }
        buffer = (buffer << 6U) | static_cast<unsigned>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((buffer >> static_cast<unsigned>(bits)) & 0xffU);
        }
    }
    return out;
}

Result<std::unique_ptr<EtcdClusterStore>> EtcdClusterStore::create(EtcdOptions options) {
    if (options.endpoints.empty()) {
        return Status::invalid_argument("no etcd endpoint");
    }
    for (std::string& e : options.endpoints) {
        PALS_ASSIGN_OR_RETURN(Url url, Url::parse(e));
        if (!url.path_prefix.empty()) {
            return Status::invalid_argument("'" + e + "': give the endpoint without a path");
        }
        e = url.origin();
    }
    for (const std::string* f : {&options.ca_file, &options.cert_file, &options.key_file}) {
        std::error_code ec;
        if (!f->empty() && !std::filesystem::is_regular_file(*f, ec)) {
            return Status::not_found(*f + ": no such file");
        }
    }
    if (options.cert_file.empty() != options.key_file.empty()) {
        return Status::invalid_argument(
            "a client certificate needs its key, and a key its "
            "certificate");
    }
    return std::unique_ptr<EtcdClusterStore>(new EtcdClusterStore(std::move(options)));
}

std::string EtcdClusterStore::describe() const {
    return fmt::format("etcd {}", fmt::join(m_options.endpoints, ","));
}

std::uint64_t EtcdClusterStore::failovers_total() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_failovers;
}

Result<std::string> EtcdClusterStore::post_once(std::size_t endpoint, const std::string& path,
                                                const std::string& body, const std::string& token,
                                                int* http_status) {
    const std::string& origin = m_options.endpoints[endpoint];
    std::unique_ptr<httplib::Client> client;
    if (!m_options.cert_file.empty()) {
        client = std::make_unique<httplib::Client>(origin, m_options.cert_file, m_options.key_file);
    } else {
        client = std::make_unique<httplib::Client>(origin);
    }
    if (!m_options.ca_file.empty()) {
        client->set_ca_cert_path(m_options.ca_file);
        client->enable_server_certificate_verification(true);
    }
    client->set_connection_timeout(m_options.connect_timeout);
    client->set_read_timeout(m_options.request_timeout);
    client->set_write_timeout(m_options.request_timeout);
    client->set_keep_alive(false);
    httplib::Headers headers;
    if (!token.empty()) {
        headers.emplace("Authorization", token);
    }
    httplib::Result res = client->Post(path, headers, body, "application/json");
    if (!res) {
        return Status::unavailable(
            fmt::format("{}{}: {}", origin, path, httplib::to_string(res.error())));
    }
    *http_status = res->status;
    return res->body;
}

Status EtcdClusterStore::authenticate(std::size_t endpoint) {
    int http_status = 0;
    const std::string body =
        json{{"name", m_options.user}, {"password", m_options.password}}.dump();
    PALS_ASSIGN_OR_RETURN(std::string text,
                          post_once(endpoint, "/v3/auth/authenticate", body, {}, &http_status));
    PALS_ASSIGN_OR_RETURN(json j, parse_answer(text));
    PALS_RETURN_IF_ERROR(answer_error(j, http_status));
    const std::string token = j.value("token", std::string());
    if (token.empty()) {
        return Status::permission_denied("etcd: authentication gave no token");
    }
    std::lock_guard<std::mutex> lock(m_mutex);
    m_token = token;
    return Status::ok();
}

Result<std::string> EtcdClusterStore::post(const std::string& path, const std::string& body) {
    std::size_t start = 0;
    std::string token;
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        start = m_current;
        token = m_token;
    }
    const std::size_t n = m_options.endpoints.size();
    Status last = Status::unavailable("no etcd endpoint answered");
    for (std::size_t k = 0; k < n; ++k) {
        const std::size_t e = (start + k) % n;
        bool reauthenticated = false;
        while (true) {
            if (!m_options.user.empty() && token.empty()) {
                if (Status s = authenticate(e); !s.is_ok()) {
                    last = s;
                    break;
                }
                std::lock_guard<std::mutex> lock(m_mutex);
                token = m_token;
            }
            int http_status = 0;
            Result<std::string> text = post_once(e, path, body, token, &http_status);
            if (!text.is_ok()) {
                last = text.status();
                break;  // next endpoint
            }
            Result<json> j = parse_answer(*text);
            Status error =
                j.is_ok() ? answer_error(*j, http_status)
                          : (http_status >= kHttpServerError
                                 ? Status::unavailable(fmt::format(
                                       "{}{}: HTTP {}", m_options.endpoints[e], path, http_status))
                                 : j.status());
            if (error.code() == StatusCode::kPermissionDenied && !m_options.user.empty() &&
                !reauthenticated) {
                reauthenticated = true;  // the token expired: once more with a new one
                token.clear();
                continue;
            }
            if (error.code() == StatusCode::kUnavailable) {
                last = error;
                break;
            }
            if (k > 0) {
                std::lock_guard<std::mutex> lock(m_mutex);
                if (m_current != e) {
                    ++m_failovers;
                    m_current = e;
                }
                PALS_LOG_DEBUG("etcd: now using {}", m_options.endpoints[e]);
            }
            if (!error.is_ok()) {
                return error;
            }
            return std::move(text).value();
        }
    }
    return last;
}

Result<RangeResult> EtcdClusterStore::range(const std::string& key, bool prefix) {
    PALS_ASSIGN_OR_RETURN(std::string text,
                          post("/v3/kv/range", range_request(key, prefix).dump()));
    PALS_ASSIGN_OR_RETURN(json j, parse_answer(text));
    RangeResult out;
    PALS_ASSIGN_OR_RETURN(out.kvs, parse_kvs(j));
    if (auto h = j.find("header"); h != j.end()) {
        out.revision = int64_field(*h, "revision");
    }
    return out;
}

Result<std::int64_t> EtcdClusterStore::put(const std::string& key, const std::string& value,
                                           LeaseId lease) {
    json body = {{"key", base64_encode(key)}, {"value", base64_encode(value)}};
    if (lease != 0) {
        body["lease"] = std::to_string(lease);
    }
    PALS_ASSIGN_OR_RETURN(std::string text, post("/v3/kv/put", body.dump()));
    PALS_ASSIGN_OR_RETURN(json j, parse_answer(text));
    auto h = j.find("header");
    return h != j.end() ? int64_field(*h, "revision") : 0;
}

Result<std::int64_t> EtcdClusterStore::del(const std::string& key, bool prefix) {
    PALS_ASSIGN_OR_RETURN(std::string text,
                          post("/v3/kv/deleterange", range_request(key, prefix).dump()));
    PALS_ASSIGN_OR_RETURN(json j, parse_answer(text));
    return int64_field(j, "deleted");
}

Result<TxnResult> EtcdClusterStore::txn(const std::vector<Compare>& compares,
                                        const std::vector<TxnOp>& success,
                                        const std::vector<TxnOp>& failure) {
    json body = {
        {"compare", json::array()}, {"success", json::array()}, {"failure", json::array()}};
    for (const Compare& c : compares) {
        body["compare"].push_back(compare_json(c));
    }
    for (const TxnOp& op : success) {
        body["success"].push_back(op_json(op));
    }
    for (const TxnOp& op : failure) {
        body["failure"].push_back(op_json(op));
    }
    PALS_ASSIGN_OR_RETURN(std::string text, post("/v3/kv/txn", body.dump()));
    PALS_ASSIGN_OR_RETURN(json j, parse_answer(text));
    TxnResult out;
    out.succeeded = j.value("succeeded", false);
    if (auto h = j.find("header"); h != j.end()) {
        out.revision = int64_field(*h, "revision");
    }
    const std::vector<TxnOp>& ops = out.succeeded ? success : failure;
    const json responses = j.value("responses", json::array());
    for (std::size_t i = 0; i < ops.size(); ++i) {
        if (ops[i].kind != TxnOp::Kind::kRange) {
            continue;
        }
        std::vector<KeyValue> kvs;
        if (i < responses.size()) {
            if (auto r = responses[i].find("response_range"); r != responses[i].end()) {
                PALS_ASSIGN_OR_RETURN(kvs, parse_kvs(*r));
            }
        }
        out.ranges.push_back(std::move(kvs));
    }
    return out;
}

Result<LeaseId> EtcdClusterStore::grant_lease(std::int64_t ttl_s) {
    PALS_ASSIGN_OR_RETURN(std::string text,
                          post("/v3/lease/grant", json{{"TTL", std::to_string(ttl_s)}}.dump()));
    PALS_ASSIGN_OR_RETURN(json j, parse_answer(text));
    const LeaseId id = int64_field(j, "ID");
    if (id == 0) {
        return Status::invalid_argument("etcd: lease grant gave no ID: " + j.value("error", text));
    }
    return id;
}

Result<std::int64_t> EtcdClusterStore::keep_alive(LeaseId lease) {
    PALS_ASSIGN_OR_RETURN(std::string text,
                          post("/v3/lease/keepalive", json{{"ID", std::to_string(lease)}}.dump()));
    PALS_ASSIGN_OR_RETURN(json j, parse_answer(text));
    const json result = j.value("result", j);
    const std::int64_t ttl = int64_field(result, "TTL");
    if (ttl <= 0) {
        return Status::not_found(fmt::format("etcd: lease {:x} expired", lease));
    }
    return ttl;
}

Status EtcdClusterStore::revoke_lease(LeaseId lease) {
    Result<std::string> text = post("/v3/lease/revoke", json{{"ID", std::to_string(lease)}}.dump());
    if (!text.is_ok() && text.status().code() == StatusCode::kNotFound) {
        return Status::ok();
    }
    return text.status();
}

}  // namespace pals::cluster
