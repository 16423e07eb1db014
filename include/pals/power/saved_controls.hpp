#pragma once
/// @file saved_controls.hpp
/// @brief Save every GPU control before the first write, restore it afterwards (GEOPM's
/// SaveControl idea, DESIGN.md 1.1).
///
/// The saved values live in a JSON file written atomically, so that a crashed process leaves
/// them behind for `pals power restore`. The first value saved for a GPU wins: saving again (in
/// this or a later process, while the file exists) never overwrites the original with a value
/// PALS itself set. Restore writes back the *saved* values, never a default, and removes the
/// file once every GPU is restored.
///
/// File format (schema_version 1):
///   {"schema_version": 1, "backend": "nvml", "pid": 1234,
///    "gpus": [{"index": 0, "uuid": "GPU-...", "name": "...", "power_limit_w": 700.0,
///              "sm_clocks_saved": false, "locked_sm_clocks": null}]}
/// `locked_sm_clocks` is {"min_mhz": ..., "max_mhz": ...} or null (not locked); it is only
/// meaningful when `sm_clocks_saved` is true (the session may change clocks).
///
/// Thread-safety: not thread-safe. One writing session per state file at a time (as GEOPM's
/// service allows one writer).

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "pals/common/status.hpp"
#include "pals/power/gpu_backend.hpp"

namespace pals::power {

/// The saved controls of one GPU.
struct SavedGpuControls {
    int index = 0;
    std::string uuid;  ///< restore finds the GPU by UUID, so index changes do not misdirect it
    std::string name;
    double power_limit_w = 0.0;  ///< the requested limit at save time
    bool sm_clocks_saved = false;
    std::optional<ClockRangeMhz> locked_sm_clocks;  ///< at save time; nullopt = not locked
};

/// The saved controls of one state file.
class SavedControls {
public:
    /// The default state file.
    static constexpr const char* kDefaultPath = "/var/lib/pals/saved_controls.json";

    /// An empty set bound to `path`; reads nothing yet.
    explicit SavedControls(std::filesystem::path path);

    /// Binds to `path` and reads it if it exists (an absent file is an empty set).
    /// kInvalidArgument when the file exists but is not a saved-controls file.
    [[nodiscard]] static Result<SavedControls> load(std::filesystem::path path);

    /// Saves the current controls of each GPU in `gpus` that is not saved yet, then writes the
    /// file (creating its folder). With `include_sm_clocks`, the locked-clock state is saved too
    /// (and restored later). Nothing is written when every GPU is already saved.
    /// kPermissionDenied when the file cannot be written (the message suggests --state-file).
    [[nodiscard]] Status save(GpuBackend& backend, const std::vector<int>& gpus,
                              bool include_sm_clocks = false);

    /// Writes every saved value back (power limit; clocks re-locked to the saved range or reset),
    /// finding each GPU by UUID. On full success the entries are cleared and the file removed;
    /// otherwise the file keeps the GPUs not restored and the Status names them. An empty set
    /// restores nothing and succeeds.
    [[nodiscard]] Status restore(GpuBackend& backend);

    /// Like restore(), for the saved entries of `gpus` (indices of `backend`) only: a session
    /// that ends restores what it changed and leaves other sessions' entries in the file (the
    /// file is removed when no entry is left).
    [[nodiscard]] Status restore_gpus(GpuBackend& backend, const std::vector<int>& gpus);

    /// Forgets the GPUs saved by this object since it was loaded and rewrites (or removes) the
    /// file: for a session that saved and then could not write anything.
    [[nodiscard]] Status discard_new();

    /// Files a session writes that keep a setting alive outside the GPUs: the vLLM plugin's
    /// batch-cap files. They are written to the state file with the next save() and removed by
    /// a full restore() (`pals power restore` after a crash: the engines return to their launch
    /// batch caps at once, not only when the caps expire).
    void note_cap_files(const std::vector<std::filesystem::path>& files);
    [[nodiscard]] const std::vector<std::string>& cap_files() const { return m_cap_files; }

    [[nodiscard]] bool empty() const { return m_entries.empty(); }
    [[nodiscard]] const std::vector<SavedGpuControls>& entries() const { return m_entries; }
    [[nodiscard]] const std::filesystem::path& path() const { return m_path; }
    /// True when `gpu` (an index of the current backend) is saved.
    [[nodiscard]] bool contains(int gpu) const;

private:
    [[nodiscard]] Status write_file(const std::string& backend_name) const;
    /// Restores the entries whose UUID is in `only_uuids` (all entries when it is null).
    [[nodiscard]] Status restore_matching(GpuBackend& backend,
                                          const std::vector<std::string>* only_uuids);

    std::filesystem::path m_path;
    std::vector<SavedGpuControls> m_entries;
    std::size_t m_loaded_count = 0;  ///< entries that came from the file
    std::string m_backend_name;
    std::vector<std::string> m_cap_files;  ///< note_cap_files(), in the file as engine_cap_files
};

}  // namespace pals::power
