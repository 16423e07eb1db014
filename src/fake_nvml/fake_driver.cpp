#include "fake_nvml/fake_driver.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <type_traits>

#include "pals/common/file_util.hpp"
#include "pals/common/json.hpp"
#include "pals/power/gpu_backend.hpp"
#include "pals/sim/gpu_spec.hpp"
#include "pals/sim/simulated_gpu_backend.hpp"
#include "power/nvml/nvml_error.hpp"

namespace pals::power::fake_nvml {

namespace {

using nlohmann::json;

constexpr int kStateSchemaVersion = 1;
/// Power this far above the enforced limit counts as a power-brake slowdown, W.
constexpr double kBrakeToleranceW = 0.5;
constexpr double kMsPerS = 1e3;

// Defaults of the built-in loads: a 70B dense model in bf16 over tensor parallelism 8.
constexpr double kDefaultModelParamsB = 70.0;
constexpr int kDefaultTp = 8;
constexpr int kDefaultDecodeBatch = 64;
constexpr int kDefaultDecodeContext = 2048;
constexpr double kDefaultKvBytesPerToken = 327680.0;  ///< 80 layers x 8 KV heads x 128 x K,V x 2 B
constexpr int kDefaultPrefillTokens = 8192;
constexpr double kBytesPerParam = 2.0;  ///< bf16 weights
constexpr double kFlopsPerParamToken = 2.0;
constexpr double kDecodeWaitS = 0.5e-3;  ///< all-reduce and launches per step
constexpr double kPrefillWaitS = 2.0e-3;
constexpr double kHostS = 1.5e-3;  ///< scheduler time per step

std::string strip_version(std::string_view name) {
    std::string s(name);
    for (std::string_view suffix : {"_v2", "_v3"}) {
        if (s.size() > suffix.size() &&
            s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0) {
            s.erase(s.size() - suffix.size());
            break;
        }
    }
    return s;
}

bool check_keys(const json& obj, std::initializer_list<const char*> allowed,
                const std::string& where, std::string& error) {
    for (const auto& item : obj.items()) {
        if (std::find_if(allowed.begin(), allowed.end(),
                         [&](const char* k) { return item.key() == k; }) == allowed.end()) {
            error = where + ": unknown key '" + item.key() + "'";
            return false;
        }
    }
    return true;
}

/// Bounds of the numbers a config may hold. Each is far beyond any real GPU or model, and keeps
/// the derived step work finite (no float-to-int cast of an out-of-range value, no inf).
constexpr double kMaxBatch = 1e6;
constexpr double kMaxContextTokens = 1e8;
constexpr double kMaxModelParamsB = 1e5;
constexpr double kMaxTp = 1024;
constexpr double kMaxKvBytesPerToken = 1e9;
constexpr double kMaxFlops = 1e25;
constexpr double kMaxBytes = 1e18;
constexpr double kMaxStepS = 3600;
constexpr double kMaxCalls = 1e15;
constexpr double kMaxDelayMs = 3.6e6;
constexpr double kMaxLimitW = 1e5;

std::string range_text(double lo, double hi) {
    std::ostringstream out;
    out << "[" << lo << ", " << hi << "]";
    return out.str();
}

/// Reads an optional number `key` of `obj` into `out` when it lies in [lo, hi]; for an integer
/// `T` the value must also be integral (1e300 must never reach a cast to int: undefined
/// behaviour). Leaves `out` alone when the key is absent.
template <class T>
bool get_number(const json& obj, const char* key, T& out, const std::string& where,
                std::string& error, double lo, double hi) {
    const auto it = obj.find(key);
    if (it == obj.end()) {
        return true;
    }
    const char* what = std::is_integral_v<T> ? "an integer" : "a number";
    const std::string bad = where + ": '" + key + "' must be " + what + " in " + range_text(lo, hi);
    if (!it->is_number()) {
        error = bad;
        return false;
    }
    // parse_json refuses numbers beyond double's range, so get<double>() is the exact value for
    // floats and a close one for integers beyond 2^53, well outside every bound here.
    const double value = it->get<double>();
    if (!std::isfinite(value) || value < lo || value > hi ||
        (std::is_integral_v<T> && value != std::floor(value))) {
        error = bad + " (got " + it->dump() + ")";
        return false;
    }
    // For an integer T the value is integral and within [lo, hi], which every caller keeps
    // inside T's range, so the cast is exact.
    out = static_cast<T>(value);
    return true;
}

bool parse_load(const json& j, LoadConfig& load, std::string& error) {
    json obj = j;
    if (j.is_string()) {
        obj = json{{"kind", j.get<std::string>()}};
    }
    if (!obj.is_object() || !obj.contains("kind") || !obj["kind"].is_string()) {
        error = "load: expected a kind name or an object with 'kind'";
        return false;
    }
    load.kind = obj["kind"].get<std::string>();
    load.work = sim::StepWork{};
    double params_b = kDefaultModelParamsB;
    int tp = kDefaultTp;
    if (load.kind == "idle" || load.kind == "external") {
        return check_keys(obj, {"kind"}, "load", error);
    }
    if (load.kind == "decode") {
        int batch = kDefaultDecodeBatch;
        int context = kDefaultDecodeContext;
        double kv = kDefaultKvBytesPerToken;
        if (!check_keys(obj,
                        {"kind", "batch", "context", "model_params_b", "tp", "kv_bytes_per_token"},
                        "load", error) ||
            !get_number(obj, "batch", batch, "load", error, 1, kMaxBatch) ||
            !get_number(obj, "context", context, "load", error, 0, kMaxContextTokens) ||
            !get_number(obj, "model_params_b", params_b, "load", error, 0, kMaxModelParamsB) ||
            !get_number(obj, "tp", tp, "load", error, 1, kMaxTp) ||
            !get_number(obj, "kv_bytes_per_token", kv, "load", error, 0, kMaxKvBytesPerToken)) {
            return false;
        }
        if (batch < 1 || context < 0 || params_b <= 0 || tp < 1 || kv < 0) {
            error = "load: batch, tp and model_params_b must be positive";
            return false;
        }
        const double params = params_b * 1e9 / tp;
        load.work.add(kFlopsPerParamToken * params * batch,
                      kBytesPerParam * params + static_cast<double>(batch) * context * kv / tp);
        load.work.wait_s = kDecodeWaitS;
        load.work.host_s = kHostS;
        return true;
    }
    if (load.kind == "prefill") {
        int tokens = kDefaultPrefillTokens;
        if (!check_keys(obj, {"kind", "tokens", "model_params_b", "tp"}, "load", error) ||
            !get_number(obj, "tokens", tokens, "load", error, 1, kMaxContextTokens) ||
            !get_number(obj, "model_params_b", params_b, "load", error, 0, kMaxModelParamsB) ||
            !get_number(obj, "tp", tp, "load", error, 1, kMaxTp)) {
            return false;
        }
        if (tokens < 1 || params_b <= 0 || tp < 1) {
            error = "load: tokens, tp and model_params_b must be positive";
            return false;
        }
        const double params = params_b * 1e9 / tp;
        load.work.add(kFlopsPerParamToken * params * tokens, kBytesPerParam * params);
        load.work.wait_s = kPrefillWaitS;
        load.work.host_s = kHostS;
        return true;
    }
    if (load.kind == "custom") {
        double flops = 0;
        double bytes = 0;
        if (!check_keys(obj, {"kind", "flops", "bytes", "wait_s", "host_s"}, "load", error) ||
            !get_number(obj, "flops", flops, "load", error, 0, kMaxFlops) ||
            !get_number(obj, "bytes", bytes, "load", error, 0, kMaxBytes) ||
            !get_number(obj, "wait_s", load.work.wait_s, "load", error, 0, kMaxStepS) ||
            !get_number(obj, "host_s", load.work.host_s, "load", error, 0, kMaxStepS)) {
            return false;
        }
        if (flops < 0 || bytes < 0 || load.work.wait_s < 0 || load.work.host_s < 0) {
            error = "load: custom values must be >= 0";
            return false;
        }
        load.work.add(flops, bytes);
        return true;
    }
    error = "load: unknown kind '" + load.kind + "' (idle, decode, prefill, custom, external)";
    return false;
}

bool parse_fault(const json& j, int count, Fault& f, std::string& error) {
    const std::string where = "faults[]";
    if (!j.is_object() ||
        !check_keys(j, {"function", "gpu", "after_calls", "times", "error", "lost", "delay_ms"},
                    where, error)) {
        if (error.empty()) {
            error = where + ": expected an object";
        }
        return false;
    }
    if (j.contains("function")) {
        if (!j["function"].is_string()) {
            error = where + ": 'function' must be a string";
            return false;
        }
        f.function = strip_version(j["function"].get<std::string>());
    }
    double delay_ms = 0;
    if (!get_number(j, "gpu", f.gpu, where, error, -1, kMaxDevices) ||
        !get_number(j, "after_calls", f.after_calls, where, error, 0, kMaxCalls) ||
        !get_number(j, "times", f.times, where, error, -kMaxCalls, kMaxCalls) ||
        !get_number(j, "delay_ms", delay_ms, where, error, 0, kMaxDelayMs)) {
        return false;
    }
    if (f.gpu >= count || f.gpu < -1) {
        error = where + ": 'gpu' " + std::to_string(f.gpu) + " is not one of the " +
                std::to_string(count) + " GPUs";
        return false;
    }
    const int kinds = static_cast<int>(j.contains("error")) + static_cast<int>(j.contains("lost")) +
                      static_cast<int>(j.contains("delay_ms"));
    if (kinds != 1) {
        error = where + ": give exactly one of 'error', 'lost', 'delay_ms'";
        return false;
    }
    if (j.contains("error")) {
        f.kind = Fault::Kind::kError;
        const json& e = j["error"];
        const std::string text = e.is_string() ? e.get<std::string>() : e.dump();
        if (!nvml::parse_return_code(text, f.error) || f.error == nvml::kSuccess) {
            error = where + ": unknown NVML error '" + text + "'";
            return false;
        }
    } else if (j.contains("lost")) {
        f.kind = Fault::Kind::kLost;
        if (f.gpu < 0) {
            error = where + ": a 'lost' fault needs 'gpu'";
            return false;
        }
    } else {
        f.kind = Fault::Kind::kDelay;
        if (delay_ms < 0) {
            error = where + ": 'delay_ms' must be >= 0";
            return false;
        }
        f.delay_s = delay_ms / kMsPerS;
    }
    return true;
}

}  // namespace

std::optional<FakeConfig> parse_config(const std::string& text, std::string& error) {
    FakeConfig cfg;
    auto spec = sim::find_gpu_spec("H100-SXM");
    cfg.spec = spec.value();
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
        return cfg;
    }
    Result<json> parsed = parse_json(text, "config");
    if (!parsed.is_ok()) {
        error = parsed.status().message();
        return std::nullopt;
    }
    const json doc = std::move(parsed).value();
    if (!doc.is_object()) {
        error = "not a JSON object";
        return std::nullopt;
    }
    if (!check_keys(
            doc,
            {"count", "gpu", "root", "load", "out_of_band_limit_w", "driver_version", "faults"},
            "config", error) ||
        !get_number(doc, "count", cfg.count, "config", error, 1, kMaxDevices)) {
        return std::nullopt;
    }
    if (cfg.count < 1 || cfg.count > kMaxDevices) {
        error = "config: 'count' must be 1.." + std::to_string(kMaxDevices);
        return std::nullopt;
    }
    if (doc.contains("gpu")) {
        if (!doc["gpu"].is_string()) {
            error = "config: 'gpu' must be a string";
            return std::nullopt;
        }
        auto found = sim::find_gpu_spec(doc["gpu"].get<std::string>());
        if (!found.is_ok()) {
            error = "config: " + found.status().message();
            return std::nullopt;
        }
        cfg.spec = found.value();
    }
    if (doc.contains("root")) {
        if (!doc["root"].is_boolean()) {
            error = "config: 'root' must be true or false";
            return std::nullopt;
        }
        cfg.root = doc["root"].get<bool>();
    }
    if (doc.contains("load") && !parse_load(doc["load"], cfg.load, error)) {
        return std::nullopt;
    }
    if (doc.contains("out_of_band_limit_w")) {
        double oob = 0;
        if (!get_number(doc, "out_of_band_limit_w", oob, "config", error, 0, kMaxLimitW)) {
            return std::nullopt;
        }
        cfg.out_of_band_limit_w = oob;
    }
    if (doc.contains("driver_version")) {
        if (!doc["driver_version"].is_string()) {
            error = "config: 'driver_version' must be a string";
            return std::nullopt;
        }
        cfg.driver_version = doc["driver_version"].get<std::string>();
    }
    if (doc.contains("faults")) {
        if (!doc["faults"].is_array()) {
            error = "config: 'faults' must be an array";
            return std::nullopt;
        }
        for (const json& j : doc["faults"]) {
            Fault f;
            if (!parse_fault(j, cfg.count, f, error)) {
                return std::nullopt;
            }
            cfg.faults.push_back(f);
        }
    }
    return cfg;
}

double FakeDriver::now_s() {
    // steady_clock is CLOCK_MONOTONIC on Linux: one time base for every process of a boot.
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

DeviceState FakeDriver::fresh_device(double now) const {
    DeviceState d;
    d.limit_w = m_config.spec.power_limit_default_w;
    d.updated_s = now;
    return d;
}

int FakeDriver::lock_file(int operation) {
    const std::string lock_path = m_state_path + ".lock";
    const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        m_last_error = "fake NVML: cannot open " + lock_path;
        return -1;
    }
    while (::flock(fd, operation) != 0) {
        if (errno != EINTR) {
            ::close(fd);
            m_last_error = "fake NVML: cannot lock " + lock_path;
            return -1;
        }
    }
    return fd;
}

std::optional<std::vector<DeviceState>> FakeDriver::load_locked(bool& valid) {
    valid = false;
    Result<std::string> text = read_file(m_state_path);
    if (!text.is_ok()) {
        return std::vector<DeviceState>{};
    }
    Result<json> parsed = parse_json(*text, m_state_path);
    // Another configuration (or a damaged file): like a driver reload, start afresh.
    if (!parsed.is_ok()) {
        return std::vector<DeviceState>{};
    }
    const json doc = std::move(parsed).value();
    auto member_is = [&doc](const char* key, const json& expected) {
        const auto it = doc.find(key);
        return it != doc.end() && *it == expected;
    };
    if (!doc.is_object() || !member_is("schema_version", kStateSchemaVersion) ||
        !member_is("gpu", m_config.spec.name) || !member_is("count", m_config.count) ||
        !doc.contains("devices") || !doc.at("devices").is_array() ||
        doc.at("devices").size() != static_cast<std::size_t>(m_config.count)) {
        return std::vector<DeviceState>{};
    }
    // A field that is missing, not a number or not finite takes its fresh value.
    auto number = [](const json& d, const char* key, double fallback) {
        const auto it = d.is_object() ? d.find(key) : d.end();
        if (it == d.end() || !it->is_number() || !std::isfinite(it->get<double>())) {
            return fallback;
        }
        return it->get<double>();
    };
    std::vector<DeviceState> devices;
    for (const json& d : doc.at("devices")) {
        DeviceState s;
        s.limit_w = number(d, "limit_w", m_config.spec.power_limit_default_w);
        s.locked_min_mhz = number(d, "locked_min_mhz", 0.0);
        s.locked_max_mhz = number(d, "locked_max_mhz", 0.0);
        s.energy_j = number(d, "energy_j", 0.0);
        s.updated_s = number(d, "updated_s", 0.0);
        s.reported_power_w = number(d, "reported_power_w", 0.0);
        s.reported_clock_mhz = number(d, "reported_clock_mhz", 0.0);
        s.reported_s = number(d, "reported_s", -1.0);
        devices.push_back(s);
    }
    valid = true;
    return devices;
}

bool FakeDriver::store_locked(const std::vector<DeviceState>& devices) {
    json doc = {{"schema_version", kStateSchemaVersion},
                {"gpu", m_config.spec.name},
                {"count", m_config.count},
                {"devices", json::array()}};
    for (const DeviceState& s : devices) {
        doc["devices"].push_back({{"limit_w", s.limit_w},
                                  {"locked_min_mhz", s.locked_min_mhz},
                                  {"locked_max_mhz", s.locked_max_mhz},
                                  {"energy_j", s.energy_j},
                                  {"updated_s", s.updated_s},
                                  {"reported_power_w", s.reported_power_w},
                                  {"reported_clock_mhz", s.reported_clock_mhz},
                                  {"reported_s", s.reported_s}});
    }
    const std::string tmp = m_state_path + ".tmp." + std::to_string(::getpid());
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << doc.dump(1) << "\n";
        if (!out.flush()) {
            m_last_error = "fake NVML: cannot write " + tmp;
            return false;
        }
    }
    if (std::rename(tmp.c_str(), m_state_path.c_str()) != 0) {
        std::remove(tmp.c_str());
        m_last_error = "fake NVML: cannot write " + m_state_path;
        return false;
    }
    return true;
}

nvml::ReturnCode FakeDriver::init() {
    if (m_init_count > 0) {
        ++m_init_count;
        return nvml::kSuccess;
    }
    std::string text;
    const char* config_path = std::getenv("PALS_FAKE_NVML_CONFIG");
    if (config_path != nullptr && *config_path != '\0') {
        Result<std::string> content = read_file(config_path);
        if (!content.is_ok()) {
            m_last_error = "fake NVML: cannot read the config file: " + content.status().message();
            return nvml::kErrorUnknown;
        }
        text = std::move(content).value();
    }
    std::string error;
    auto cfg = parse_config(text, error);
    if (!cfg) {
        m_last_error =
            std::string("fake NVML config ") + (config_path ? config_path : "") + ": " + error;
        return nvml::kErrorUnknown;
    }
    const char* state_path = std::getenv("PALS_FAKE_NVML_STATE");
    return init(std::move(*cfg),
                state_path != nullptr && *state_path != '\0'
                    ? std::string(state_path)
                    : "/tmp/pals-fake-nvml-" + std::to_string(::getuid()) + ".json");
}

nvml::ReturnCode FakeDriver::init(FakeConfig config, std::string state_path) {
    if (m_init_count > 0) {
        ++m_init_count;
        return nvml::kSuccess;
    }
    m_config = std::move(config);
    m_physics.emplace(m_config.spec);
    m_lost.assign(static_cast<std::size_t>(m_config.count), false);
    m_last_error.clear();
    m_state_path = std::move(state_path);

    if (const nvml::ReturnCode rc = check_faults("nvmlInit", -1); rc != nvml::kSuccess) {
        return rc;
    }
    return open_state();
}

nvml::ReturnCode FakeDriver::open_state() {
    std::error_code ec;
    const std::filesystem::path parent = std::filesystem::path(m_state_path).parent_path();
    if (!parent.empty()) {
        std::filesystem::create_directories(parent, ec);
    }
    const int fd = lock_file(LOCK_EX);
    if (fd < 0) {
        return nvml::kErrorUnknown;
    }
    bool valid = false;
    auto devices = load_locked(valid);
    bool ok = true;
    if (!valid) {
        const double now = now_s();
        devices =
            std::vector<DeviceState>(static_cast<std::size_t>(m_config.count), fresh_device(now));
        ok = store_locked(*devices);
    }
    ::close(fd);
    if (!ok) {
        return nvml::kErrorUnknown;
    }
    ++m_init_count;
    return nvml::kSuccess;
}

nvml::ReturnCode FakeDriver::shutdown() {
    if (m_init_count == 0) {
        return nvml::kErrorUninitialized;
    }
    if (const nvml::ReturnCode rc = check_faults("nvmlShutdown", -1); rc != nvml::kSuccess) {
        return rc;
    }
    --m_init_count;
    return nvml::kSuccess;
}

nvml::ReturnCode FakeDriver::check_faults(const char* function, int gpu) {
    if (gpu >= 0 && gpu < static_cast<int>(m_lost.size()) &&
        m_lost[static_cast<std::size_t>(gpu)]) {
        return nvml::kErrorGpuIsLost;
    }
    const std::string name = strip_version(function);
    for (Fault& f : m_config.faults) {
        if (!f.function.empty() && f.function != name) {
            continue;
        }
        if (f.gpu >= 0 && f.gpu != gpu) {
            continue;
        }
        ++f.matched;
        if (f.matched <= f.after_calls || (f.times >= 0 && f.fired >= f.times)) {
            continue;
        }
        ++f.fired;
        switch (f.kind) {
            case Fault::Kind::kDelay:
                std::this_thread::sleep_for(std::chrono::duration<double>(f.delay_s));
                break;
            case Fault::Kind::kError:
                return f.error;
            case Fault::Kind::kLost:
                m_lost[static_cast<std::size_t>(f.gpu)] = true;
                return nvml::kErrorGpuIsLost;
        }
    }
    return nvml::kSuccess;
}

std::optional<std::vector<DeviceState>> FakeDriver::read_state() {
    int fd = lock_file(LOCK_SH);
    if (fd < 0) {
        return std::nullopt;
    }
    bool valid = false;
    auto devices = load_locked(valid);
    ::close(fd);
    if (valid) {
        return devices;
    }
    // The file vanished or was replaced by another configuration: recreate it.
    fd = lock_file(LOCK_EX);
    if (fd < 0) {
        return std::nullopt;
    }
    devices = load_locked(valid);
    bool ok = true;
    if (!valid) {
        devices = std::vector<DeviceState>(static_cast<std::size_t>(m_config.count),
                                           fresh_device(now_s()));
        ok = store_locked(*devices);
    }
    ::close(fd);
    if (!ok) {
        return std::nullopt;
    }
    return devices;
}

nvml::ReturnCode FakeDriver::modify_all(
    const std::function<nvml::ReturnCode(std::vector<DeviceState>&, double now)>& change) {
    const int fd = lock_file(LOCK_EX);
    if (fd < 0) {
        return nvml::kErrorUnknown;
    }
    bool valid = false;
    auto devices = load_locked(valid);
    const double now = now_s();
    if (!valid) {
        devices =
            std::vector<DeviceState>(static_cast<std::size_t>(m_config.count), fresh_device(now));
    }
    nvml::ReturnCode rc = change(*devices, now);
    if (rc == nvml::kSuccess && !store_locked(*devices)) {
        rc = nvml::kErrorUnknown;
    }
    ::close(fd);
    return rc;
}

nvml::ReturnCode FakeDriver::modify(int gpu,
                                    const std::function<nvml::ReturnCode(DeviceState&)>& change) {
    return modify_all([&](std::vector<DeviceState>& devices, double now) {
        DeviceState& d = devices[static_cast<std::size_t>(gpu)];
        d.energy_j = energy_now(d, now);
        d.updated_s = now;
        return change(d);
    });
}

nvml::ReturnCode FakeDriver::report(int first_gpu, const std::vector<ExternalReading>& readings) {
    if (readings.empty() || first_gpu < 0 ||
        static_cast<std::size_t>(first_gpu) + readings.size() >
            static_cast<std::size_t>(m_config.count)) {
        return nvml::kErrorInvalidArgument;
    }
    return modify_all([&](std::vector<DeviceState>& devices, double now) {
        for (std::size_t i = 0; i < readings.size(); ++i) {
            DeviceState& d = devices[static_cast<std::size_t>(first_gpu) + i];
            d.energy_j = energy_now(d, now);
            d.updated_s = now;
            d.reported_power_w = readings[i].power_w;
            d.reported_clock_mhz = readings[i].sm_clock_mhz;
            d.reported_s = now;
        }
        return nvml::kSuccess;
    });
}

double FakeDriver::enforced_limit_w(const DeviceState& state) const {
    return m_config.out_of_band_limit_w ? std::min(state.limit_w, *m_config.out_of_band_limit_w)
                                        : state.limit_w;
}

Operating FakeDriver::operating(const DeviceState& state) const {
    const sim::GpuSpec& spec = m_config.spec;
    Operating op;
    if (m_config.load.kind == "external" && state.reported_s >= 0.0 &&
        now_s() - state.reported_s <= kExternalStaleS) {
        op.power_w = state.reported_power_w;
        op.sm_clock_mhz = state.reported_clock_mhz;
        if (op.power_w >= enforced_limit_w(state) - kBrakeToleranceW) {
            op.reasons |= to_mask(ThrottleReason::kSwPowerCap);
        }
        if (op.power_w <= spec.idle_power_w + kBrakeToleranceW) {
            op.reasons |= to_mask(ThrottleReason::kGpuIdle);
        }
        if (state.locked_max_mhz > 0.0 && state.locked_max_mhz < spec.sm_clock_max_mhz) {
            op.reasons |= to_mask(ThrottleReason::kApplicationsClocksSetting);
        }
        return op;
    }
    if (m_config.load.kind == "idle" || m_config.load.kind == "external" ||
        m_config.load.work.num_kernels == 0) {
        op.power_w = spec.idle_power_w;
        op.sm_clock_mhz = spec.sm_clock_min_mhz;
        op.reasons = to_mask(ThrottleReason::kGpuIdle);
        return op;
    }
    const double cap = m_physics->clamp_cap(enforced_limit_w(state));
    const double locked = state.locked_max_mhz;
    const sim::StepOutcome out = m_physics->run_step(m_config.load.work, cap, locked);
    op.power_w = out.power_w;
    op.sm_clock_mhz = out.sm_clock_mhz;
    op.reasons |= sim::throttle_reasons_of(out.limits);
    return op;
}

double FakeDriver::energy_now(const DeviceState& state, double now_s) const {
    return state.energy_j + operating(state).power_w * std::max(0.0, now_s - state.updated_s);
}

std::string FakeDriver::device_name() const {
    const std::string& n = m_config.spec.name;
    if (n == "H100-SXM") {
        return "NVIDIA H100 80GB HBM3";
    }
    if (n == "A100-40GB") {
        return "NVIDIA A100-SXM4-40GB";
    }
    if (n == "A100-80GB") {
        return "NVIDIA A100-SXM4-80GB";
    }
    return "NVIDIA " + n;
}

std::string FakeDriver::device_uuid(int gpu) const {
    // FNV-1a of the GPU name and index: stable across processes and runs.
    std::uint64_t h = 14695981039346656037ULL;
    auto mix = [&h](unsigned char c) {
        h ^= c;
        h *= 1099511628211ULL;
    };
    for (char c : m_config.spec.name) {
        mix(static_cast<unsigned char>(c));
    }
    mix(static_cast<unsigned char>(gpu));
    std::array<char, 64> buf{};
    std::snprintf(buf.data(), buf.size(), "GPU-%08x-%04x-%04x-%04x-%012llx",
                  static_cast<unsigned>(h >> 32), static_cast<unsigned>((h >> 16) & 0xffff),
                  static_cast<unsigned>(h & 0xffff), static_cast<unsigned>(0x8000 | (gpu & 0xfff)),
                  static_cast<unsigned long long>(gpu));
    return buf.data();
}

}  // namespace pals::power::fake_nvml
