#pragma once
/// @file model_catalog.hpp
/// @brief Models by name: the config files of a data folder's `models/` (Hugging Face
/// `config.json` subsets saved as ORG__NAME.json), found from a path, a file name, a Hugging Face
/// id ("mistralai/Mixtral-8x7B-Instruct-v0.1") or the name alone ("Mixtral-8x7B-Instruct-v0.1").

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "pals/common/status.hpp"

namespace pals::model {

/// The model configs in `models_dir` (*.json), sorted by file name; empty if it does not exist.
[[nodiscard]] std::vector<std::filesystem::path> model_configs(
    const std::filesystem::path& models_dir);

/// The Hugging Face id of a config file: "ORG__NAME.json" -> "ORG/NAME" (the stem otherwise).
[[nodiscard]] std::string model_id(const std::filesystem::path& config);

/// The config `name` stands for: `name` itself when it is an existing file; else, in
/// `models_dir`, the file whose name is `name` (with or without ".json"), whose id is `name`
/// ("ORG/NAME"), or whose NAME part is `name`, case-insensitively. kNotFound otherwise, with
/// a hint and the names available ("unknown model 'mixtral' (did you mean ...?); known: ...").
[[nodiscard]] Result<std::filesystem::path> find_model_config(
    std::string_view name, const std::filesystem::path& models_dir);

}  // namespace pals::model
