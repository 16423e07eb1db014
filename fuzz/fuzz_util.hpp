#pragma once
/// @file fuzz_util.hpp
/// @brief Helpers shared by the libFuzzer harnesses: a per-process temporary file for parsers that
/// only take a path, and a splitter of one input into several parts.

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace pals::fuzz {

/// A folder private to this process under /dev/shm (or $TMPDIR, else /tmp), removed at exit.
inline const std::filesystem::path& scratch_dir() {
    static const std::filesystem::path dir = [] {
        std::filesystem::path base = "/dev/shm";
        std::error_code ec;
        if (!std::filesystem::is_directory(base, ec)) {
            const char* tmp = std::getenv("TMPDIR");
            base = (tmp != nullptr && *tmp != '\0') ? tmp : "/tmp";
        }
        std::filesystem::path d = base / ("pals-fuzz-" + std::to_string(::getpid()));
        std::filesystem::create_directories(d, ec);
        static struct Cleanup {
            std::filesystem::path p;
            ~Cleanup() {
                std::error_code e;
                std::filesystem::remove_all(p, e);
            }
        } cleanup{d};
        return d;
    }();
    return dir;
}

/// Writes `data` to scratch_dir()/name (overwriting) and returns the path.
inline std::filesystem::path write_scratch(const std::string& name, const std::uint8_t* data,
                                           std::size_t size) {
    std::filesystem::path path = scratch_dir() / name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    return path;
}

/// Splits `text` at '\n' (the separator is dropped).
inline std::vector<std::string_view> split_lines(std::string_view text) {
    std::vector<std::string_view> lines;
    std::size_t start = 0;
    while (start <= text.size()) {
        const std::size_t end = text.find('\n', start);
        if (end == std::string_view::npos) {
            lines.push_back(text.substr(start));
            break;
        }
        lines.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    return lines;
}

}  // namespace pals::fuzz
