/// @file standalone_main.cpp
/// @brief main() for harnesses built without libFuzzer (g++ builds, the ctest regression run):
/// calls LLVMFuzzerTestOneInput once on every file given, and on every file in every folder given.

#include <sys/resource.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

int run_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "cannot read %s\n", path.c_str());
        return 1;
    }
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::fprintf(stderr, "running %s (%zu bytes)\n", path.c_str(), bytes.size());
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    // Like libFuzzer's -rss_limit_mb for the regression run: an input that makes a parser
    // allocate without bound fails (std::bad_alloc) instead of swapping the machine. A 2 GiB
    // address-space limit, so only without ASan (its shadow memory reserves terabytes).
#if !defined(PALS_FUZZ_NO_AS_LIMIT)
    const rlimit limit{2UL << 30, 2UL << 30};
    setrlimit(RLIMIT_AS, &limit);
#endif
    int failures = 0;
    int ran = 0;
    for (int i = 1; i < argc; ++i) {
        const std::filesystem::path arg = argv[i];
        std::error_code ec;
        if (std::filesystem::is_directory(arg, ec)) {
            std::vector<std::filesystem::path> files;
            for (const auto& entry : std::filesystem::directory_iterator(arg)) {
                if (entry.is_regular_file()) {
                    files.push_back(entry.path());
                }
            }
            std::sort(files.begin(), files.end());
            for (const auto& f : files) {
                failures += run_file(f);
                ++ran;
            }
        } else {
            failures += run_file(arg);
            ++ran;
        }
    }
    std::fprintf(stderr, "%d inputs run, %d unreadable\n", ran, failures);
    return failures == 0 ? 0 : 1;
}
