#include "pals/common/gpu_set.hpp"

#include <fmt/format.h>

#include <string>

#include "pals/common/strings.hpp"

namespace pals {

namespace {

Status check_index(int gpu, int gpu_count, const std::string& item) {
    if (gpu_count > 0 && gpu >= gpu_count) {
        return Status::invalid_argument(
            fmt::format("GPU {} does not exist (this machine has {} GPUs: 0-{})", gpu, gpu_count,
                        gpu_count - 1));
    }
    if (gpu < 0 || gpu > kMaxGpuIndex) {
        return Status::out_of_range(
            item.find('-', 1) == std::string::npos
                ? fmt::format("GPU index {} is outside 0-{}", gpu, kMaxGpuIndex)
                : fmt::format("'{}': GPU indices are 0-{}", item, kMaxGpuIndex));
    }
    return Status::ok();
}

Status check_size(std::size_t have, std::size_t adding) {
    if (have + adding > static_cast<std::size_t>(kMaxGpuIndex) + 1) {
        return Status::out_of_range(fmt::format("more than {} GPUs", kMaxGpuIndex + 1));
    }
    return Status::ok();
}

}  // namespace

Result<std::vector<int>> parse_gpu_set(std::string_view text, int gpu_count) {
    std::vector<int> gpus;
    const std::string_view whole = trim(text);
    if (whole == "all") {
        if (gpu_count <= 0) {
            return Status::invalid_argument("'all' needs a machine whose GPUs can be counted");
        }
        PALS_RETURN_IF_ERROR(check_size(0, static_cast<std::size_t>(gpu_count)));
        for (int g = 0; g < gpu_count; ++g) {
            gpus.push_back(g);
        }
        return gpus;
    }
    std::string normalized(whole);
    for (char& c : normalized) {
        if (c == ',') {
            c = '+';
        }
    }
    for (const std::string& raw : split(normalized, '+')) {
        const std::string item(trim(raw));
        const std::size_t dash = item.find('-', 1);
        if (dash != std::string::npos) {
            Result<int> lo = parse_integer(item.substr(0, dash));
            Result<int> hi = parse_integer(item.substr(dash + 1));
            if (!lo.is_ok() || !hi.is_ok() || *lo > *hi) {
                return Status::invalid_argument("'" + item +
                                                "' is not a GPU range (give e.g. 0-3)");
            }
            // Bounded before the loop: no huge allocation, no overflow at INT_MAX.
            PALS_RETURN_IF_ERROR(check_index(*lo, gpu_count, item));
            PALS_RETURN_IF_ERROR(check_index(*hi, gpu_count, item));
            PALS_RETURN_IF_ERROR(check_size(gpus.size(), static_cast<std::size_t>(*hi - *lo + 1)));
            for (int g = *lo; g <= *hi; ++g) {
                gpus.push_back(g);
            }
            continue;
        }
        Result<int> g = parse_integer(item);
        if (!g.is_ok()) {
            return Status::invalid_argument("'" + item +
                                            "' is not a GPU index (give e.g. 0+1 or 0-3)");
        }
        PALS_RETURN_IF_ERROR(check_index(*g, gpu_count, item));
        PALS_RETURN_IF_ERROR(check_size(gpus.size(), 1));
        gpus.push_back(*g);
    }
    return gpus;
}

}  // namespace pals
