#include "pals/power/saved_controls.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <utility>

#include "pals/common/file_util.hpp"
#include "pals/common/json.hpp"
#include "pals/common/log.hpp"

namespace pals::power {

namespace {

constexpr int kSchemaVersion = 1;
/// A limit read back this close to the saved value counts as restored (mW rounding), W.
constexpr double kRestoreToleranceW = 0.5;

using nlohmann::json;

json to_json(const SavedGpuControls& e) {
    json j = {{"index", e.index},
              {"uuid", e.uuid},
              {"name", e.name},
              {"power_limit_w", e.power_limit_w},
              {"sm_clocks_saved", e.sm_clocks_saved},
              {"locked_sm_clocks", nullptr}};
    if (e.locked_sm_clocks) {
        j["locked_sm_clocks"] = {{"min_mhz", e.locked_sm_clocks->min_mhz},
                                 {"max_mhz", e.locked_sm_clocks->max_mhz}};
    }
    return j;
}

Result<SavedGpuControls> from_json(const json& j) {
    if (!j.is_object() || !j.contains("index") || !j.contains("power_limit_w") ||
        !j["index"].is_number_integer() || !j["power_limit_w"].is_number()) {
        return Status::invalid_argument(
            "a GPU entry needs an integer 'index' and a number "
            "'power_limit_w'");
    }
    SavedGpuControls e;
    e.index = j["index"].get<int>();
    e.power_limit_w = j["power_limit_w"].get<double>();
    if (j.contains("uuid") && j["uuid"].is_string()) {
        e.uuid = j["uuid"].get<std::string>();
    }
    if (j.contains("name") && j["name"].is_string()) {
        e.name = j["name"].get<std::string>();
    }
    if (j.contains("sm_clocks_saved") && j["sm_clocks_saved"].is_boolean()) {
        e.sm_clocks_saved = j["sm_clocks_saved"].get<bool>();
    }
    if (j.contains("locked_sm_clocks") && j["locked_sm_clocks"].is_object()) {
        const json& c = j["locked_sm_clocks"];
        if (!c.contains("min_mhz") || !c.contains("max_mhz") || !c["min_mhz"].is_number() ||
            !c["max_mhz"].is_number()) {
            return Status::invalid_argument("'locked_sm_clocks' needs numbers min_mhz and max_mhz");
        }
        e.locked_sm_clocks = ClockRangeMhz{c["min_mhz"].get<double>(), c["max_mhz"].get<double>()};
    }
    return e;
}

}  // namespace

SavedControls::SavedControls(std::filesystem::path path) : m_path(std::move(path)) {}

Result<SavedControls> SavedControls::load(std::filesystem::path path) {
    SavedControls saved(std::move(path));
    std::error_code ec;
    if (!std::filesystem::exists(saved.m_path, ec)) {
        return saved;
    }
    PALS_ASSIGN_OR_RETURN(auto text, read_file(saved.m_path));
    const std::string where = saved.m_path.string();
    Result<json> parsed = parse_json(text, where);
    if (!parsed.is_ok()) {
        return Status::invalid_argument(parsed.status().message() +
                                        " (not a saved-controls JSON file)");
    }
    json doc = std::move(parsed).value();
    if (!doc.is_object()) {
        return Status::invalid_argument(where + ": not a saved-controls JSON file");
    }
    if (!doc.contains("schema_version") || doc["schema_version"] != kSchemaVersion) {
        return Status::invalid_argument(where + ": unsupported schema_version (expected " +
                                        std::to_string(kSchemaVersion) + ")");
    }
    if (!doc.contains("gpus") || !doc["gpus"].is_array()) {
        return Status::invalid_argument(where + ": missing the 'gpus' array");
    }
    if (doc.contains("backend") && doc["backend"].is_string()) {
        saved.m_backend_name = doc["backend"].get<std::string>();
    }
    for (const json& g : doc["gpus"]) {
        PALS_ASSIGN_OR_RETURN(auto entry, from_json(g).with_prefix(where));
        saved.m_entries.push_back(std::move(entry));
    }
    if (doc.contains("engine_cap_files")) {
        const json& files = doc["engine_cap_files"];
        if (!files.is_array() ||
            !std::all_of(files.begin(), files.end(), [](const json& f) { return f.is_string(); })) {
            return Status::invalid_argument(where + ": engine_cap_files must be an array of paths");
        }
        for (const json& f : files) {
            saved.m_cap_files.push_back(f.get<std::string>());
        }
    }
    saved.m_loaded_count = saved.m_entries.size();
    return saved;
}

bool SavedControls::contains(int gpu) const {
    return std::any_of(m_entries.begin(), m_entries.end(),
                       [gpu](const SavedGpuControls& e) { return e.index == gpu; });
}

Status SavedControls::write_file(const std::string& backend_name) const {
    json doc = {{"schema_version", kSchemaVersion},
                {"backend", backend_name},
                {"pid", static_cast<long>(::getpid())},
                {"gpus", json::array()}};
    for (const SavedGpuControls& e : m_entries) {
        doc["gpus"].push_back(to_json(e));
    }
    if (!m_cap_files.empty()) {
        doc["engine_cap_files"] = m_cap_files;
    }
    std::error_code ec;
    const std::filesystem::path folder = m_path.parent_path();
    if (!folder.empty()) {
        std::filesystem::create_directories(folder, ec);
        if (ec) {
            return Status::permission_denied(
                fmt::format("cannot create {} for the saved GPU controls ({}); choose another "
                            "file with --state-file",
                            folder.string(), ec.message()));
        }
    }
    Status st = write_file_atomic(m_path, doc.dump(2) + "\n");
    if (!st.is_ok()) {
        return Status::permission_denied(st.message() +
                                         " (saved GPU controls; choose another file with "
                                         "--state-file)");
    }
    return Status::ok();
}

Status SavedControls::save(GpuBackend& backend, const std::vector<int>& gpus,
                           bool include_sm_clocks) {
    const std::size_t before = m_entries.size();
    bool changed = false;
    std::vector<SavedGpuControls> backup = m_entries;
    for (int gpu : gpus) {
        auto info = backend.device_info(gpu);
        if (!info.is_ok()) {
            m_entries = backup;
            return info.status();
        }
        auto existing = std::find_if(m_entries.begin(), m_entries.end(), [&](const auto& e) {
            return info->uuid.empty() ? e.index == gpu : e.uuid == info->uuid;
        });
        if (existing != m_entries.end()) {
            existing->index = gpu;
            if (include_sm_clocks && !existing->sm_clocks_saved) {
                // The clocks were not saved before, so nobody here has changed them yet.
                auto locked = backend.locked_sm_clocks(gpu);
                if (!locked.is_ok()) {
                    m_entries = backup;
                    return locked.status();
                }
                existing->sm_clocks_saved = true;
                existing->locked_sm_clocks = *locked;
                changed = true;
            }
            continue;
        }
        auto limit = backend.power_limit_w(gpu);
        if (!limit.is_ok()) {
            m_entries = backup;
            return limit.status();
        }
        SavedGpuControls e;
        e.index = gpu;
        e.uuid = info->uuid;
        e.name = info->name;
        e.power_limit_w = *limit;
        if (include_sm_clocks) {
            auto locked = backend.locked_sm_clocks(gpu);
            if (!locked.is_ok()) {
                m_entries = backup;
                return locked.status();
            }
            e.sm_clocks_saved = true;
            e.locked_sm_clocks = *locked;
        }
        m_entries.push_back(std::move(e));
        changed = true;
    }
    if (!changed) {
        return Status::ok();
    }
    m_backend_name = std::string(backend.backend_name());
    Status st = write_file(m_backend_name);
    if (!st.is_ok()) {
        m_entries = std::move(backup);
        return st;
    }
    PALS_LOG_INFO("saved the controls of {} GPU(s) to {}", m_entries.size() - before,
                  m_path.string());
    return Status::ok();
}

void SavedControls::note_cap_files(const std::vector<std::filesystem::path>& files) {
    for (const std::filesystem::path& f : files) {
        if (std::find(m_cap_files.begin(), m_cap_files.end(), f.string()) == m_cap_files.end()) {
            m_cap_files.push_back(f.string());
        }
    }
}

Status SavedControls::restore(GpuBackend& backend) {
    // The engines' caps first: an engine keeps a cap file's value until the file goes (or, with
    // the plugin's expiry, until it is old enough).
    for (const std::string& file : m_cap_files) {
        std::error_code ec;
        if (std::filesystem::remove(file, ec)) {
            PALS_LOG_INFO(
                "removed the engine's file {}: its engine is back at its launch batch cap and "
                "step-token budget",
                file);
        } else if (ec) {
            PALS_LOG_WARN("cannot remove the engine's file {}: {} (it expires on its own)", file,
                          ec.message());
        }
    }
    return restore_matching(backend, nullptr);
}

Status SavedControls::restore_gpus(GpuBackend& backend, const std::vector<int>& gpus) {
    std::vector<std::string> uuids;
    for (int gpu : gpus) {
        PALS_ASSIGN_OR_RETURN(auto info, backend.device_info(gpu));
        uuids.push_back(info.uuid);
    }
    return restore_matching(backend, &uuids);
}

Status SavedControls::restore_matching(GpuBackend& backend,
                                       const std::vector<std::string>* only_uuids) {
    std::error_code ec;
    if (m_entries.empty()) {
        if (only_uuids == nullptr && std::filesystem::exists(m_path, ec)) {
            std::filesystem::remove(m_path, ec);
        }
        return Status::ok();
    }
    PALS_ASSIGN_OR_RETURN(auto count, backend.device_count());
    std::vector<std::string> uuids(static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) {
        if (auto info = backend.device_info(i); info.is_ok()) {
            uuids[static_cast<std::size_t>(i)] = info->uuid;
        }
    }

    std::vector<SavedGpuControls> left;
    Status first_error;
    std::string errors;
    std::size_t failed = 0;
    auto fail = [&](const SavedGpuControls& e, const Status& st) {
        left.push_back(e);
        ++failed;
        if (first_error.is_ok()) {
            first_error = st;
        }
        errors += (errors.empty() ? "" : "; ") + st.message();
    };

    // Resolve every entry first, so that limits that fall are written before limits that rise:
    // the sum in force never passes the larger of the sums before and after the restore.
    struct Pending {
        const SavedGpuControls* entry = nullptr;
        int gpu = -1;
        Result<double> before = Status::unavailable("not read");
        bool raise = false;
    };
    std::vector<Pending> pending;
    for (const SavedGpuControls& e : m_entries) {
        if (only_uuids != nullptr &&
            std::find(only_uuids->begin(), only_uuids->end(), e.uuid) == only_uuids->end()) {
            left.push_back(e);  // another session's entry: not ours to restore
            continue;
        }
        int gpu = -1;
        if (e.uuid.empty()) {
            gpu = e.index;
        } else {
            auto it = std::find(uuids.begin(), uuids.end(), e.uuid);
            if (it != uuids.end()) {
                gpu = static_cast<int>(it - uuids.begin());
            }
        }
        if (gpu < 0 || gpu >= count) {
            fail(e, Status::unavailable(fmt::format("saved GPU {} ({}) is not present (or not "
                                                    "answering); its power limit stays unrestored",
                                                    e.index, e.uuid)));
            continue;
        }
        Result<double> before = backend.power_limit_w(gpu);
        const bool raise = !before.is_ok() || *before < e.power_limit_w;
        pending.push_back({&e, gpu, std::move(before), raise});
    }
    std::stable_partition(pending.begin(), pending.end(),
                          [](const Pending& p) { return !p.raise; });

    for (const Pending& p : pending) {
        const SavedGpuControls& e = *p.entry;
        const int gpu = p.gpu;
        // Nothing to write when the GPU already holds its saved controls (e.g. writes are
        // refused but none of them had taken effect).
        const bool limit_ok =
            p.before.is_ok() && std::abs(*p.before - e.power_limit_w) <= kRestoreToleranceW;
        if (!limit_ok) {
            auto set = backend.set_power_limit(gpu, e.power_limit_w);
            if (!set.is_ok()) {
                fail(e, set.status());
                continue;
            }
            auto now = backend.power_limit_w(gpu);
            if (!now.is_ok()) {
                fail(e, now.status());
                continue;
            }
            if (std::abs(*now - e.power_limit_w) > kRestoreToleranceW) {
                fail(e, Status::internal(fmt::format("GPU {}: restored power limit {:.1f} W but it "
                                                     "reads back {:.1f} W",
                                                     gpu, e.power_limit_w, *now)));
                continue;
            }
        }
        if (e.sm_clocks_saved) {
            // Always written: NVML cannot read locked clocks back, so an earlier (crashed)
            // process's lock is invisible here.
            Status st = e.locked_sm_clocks ? backend.lock_sm_clocks(gpu, *e.locked_sm_clocks)
                                           : backend.reset_sm_clocks(gpu);
            if (!st.is_ok()) {
                fail(e, st);
                continue;
            }
        }
        PALS_LOG_INFO("restored gpu={} power_limit_w={:.1f}", gpu, e.power_limit_w);
    }

    m_entries = std::move(left);
    m_loaded_count = m_entries.size();
    if (m_entries.empty()) {
        std::filesystem::remove(m_path, ec);
        if (ec) {
            return Status::internal(fmt::format("restored every GPU but cannot remove {}: {}",
                                                m_path.string(), ec.message()));
        }
        return Status::ok();
    }
    Status st =
        write_file(m_backend_name.empty() ? std::string(backend.backend_name()) : m_backend_name);
    if (failed == 0) {
        return st;
    }
    if (!st.is_ok()) {
        PALS_LOG_ERROR("cannot rewrite {}: {}", m_path.string(), st.message());
    }
    return {first_error.code(), fmt::format("{} of the saved GPU(s) not restored (kept in {}): {}",
                                            failed, m_path.string(), errors)};
}

Status SavedControls::discard_new() {
    if (m_entries.size() <= m_loaded_count) {
        return Status::ok();
    }
    m_entries.resize(m_loaded_count);
    if (m_entries.empty()) {
        std::error_code ec;
        std::filesystem::remove(m_path, ec);
        if (ec) {
            return Status::internal(
                fmt::format("cannot remove {}: {}", m_path.string(), ec.message()));
        }
        return Status::ok();
    }
    return write_file(m_backend_name);
}

}  // namespace pals::power
