#include "pals/model/model_catalog.hpp"

#include <algorithm>
#include <cctype>
#include <system_error>

#include "pals/common/config_keys.hpp"

namespace pals::model {

namespace {

std::string lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

/// The NAME part of "ORG/NAME" (the whole id without an organisation).
std::string_view short_name(std::string_view id) {
    const std::size_t slash = id.rfind('/');
    return slash == std::string_view::npos ? id : id.substr(slash + 1);
}

}  // namespace

std::vector<std::filesystem::path> model_configs(const std::filesystem::path& models_dir) {
    std::vector<std::filesystem::path> out;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(models_dir, ec)) {
        if (entry.is_regular_file(ec) && entry.path().extension() == ".json") {
            out.push_back(entry.path());
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::string model_id(const std::filesystem::path& config) {
    const std::string stem = config.stem().string();
    const std::size_t sep = stem.find("__");
    return sep == std::string::npos ? stem : stem.substr(0, sep) + "/" + stem.substr(sep + 2);
}

Result<std::filesystem::path> find_model_config(std::string_view name,
                                                const std::filesystem::path& models_dir) {
    std::error_code ec;
    if (!name.empty() && std::filesystem::is_regular_file(std::filesystem::path(name), ec)) {
        return std::filesystem::path(name);
    }
    const std::string wanted = lower(name);
    const std::vector<std::filesystem::path> configs = model_configs(models_dir);
    std::vector<std::string> ids;
    for (const std::filesystem::path& config : configs) {
        const std::string id = model_id(config);
        ids.push_back(id);
        const std::string file = lower(config.filename().string());
        if (wanted == file || wanted + ".json" == file || wanted == lower(id) ||
            wanted == lower(short_name(id))) {
            return config;
        }
    }
    std::vector<std::string_view> known;
    for (const std::string& id : ids) {
        known.push_back(short_name(id));
    }
    std::string list;
    for (const std::string& id : ids) {
        list += (list.empty() ? "" : ", ") + id;
    }
    return Status::not_found(
        "unknown model '" + std::string(name) + "'" + did_you_mean(short_name(name), known) +
        ": not a file, and not in " + models_dir.string() +
        (list.empty() ? " (no models there)" : "; known: " + list) + " (`pals models` lists them)");
}

}  // namespace pals::model
