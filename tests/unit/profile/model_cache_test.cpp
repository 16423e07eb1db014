#include "pals/profile/model_cache.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <vector>

#include "profile_test_helpers.hpp"

namespace pals::profile {
namespace {

/// A small, fast sweep: 3 caps x 3 batch caps of Llama-3.1-8B on one H100.
struct SmallCache {
    sim::NodeConfig node = testing::llama_node();
    ModelCacheOptions options;
    std::vector<std::filesystem::path> profiled;

    explicit SmallCache(const std::string& name) {
        node.engine.max_num_seqs = 32;
        options.dir = testing::temp_dir(name);
        options.cap_step_w = 250.0;
        options.first_batch = 8;
        options.warmup_s = 2.0;
        options.window_s = 5.0;
        options.on_profile = [this](const sim::NodeConfig&, const std::filesystem::path& file) {
            profiled.push_back(file);
        };
    }
};

TEST(ModelCacheTest, ProfilesOnceThenLoadsTheCachedModel) {
    SmallCache c("model_cache_once");
    const WorkloadMix mix = default_workload_mix();
    Result<PowerModel> first = cached_power_model(c.node, mix, c.options);
    ASSERT_OK(first);
    ASSERT_EQ(c.profiled.size(), 1u);
    EXPECT_EQ(c.profiled[0], model_cache_file(c.node, mix, c.options));
    EXPECT_TRUE(std::filesystem::is_regular_file(c.profiled[0]));
    // The sweep: 200, 450 and 700 W, batch caps 8, 16 and 32.
    EXPECT_EQ(first->caps_w(), (std::vector<double>{200.0, 450.0, 700.0}));

    Result<PowerModel> second = cached_power_model(c.node, mix, c.options);
    ASSERT_OK(second);
    EXPECT_EQ(c.profiled.size(), 1u);  // read from the file, not profiled again
    EXPECT_EQ(second->caps_w(), first->caps_w());
}

TEST(ModelCacheTest, TheFileChangesWithTheNodeTheWorkloadAndThePhysics) {
    SmallCache c("model_cache_keys");
    const WorkloadMix mix = default_workload_mix();
    const std::filesystem::path base = model_cache_file(c.node, mix, c.options);
    EXPECT_EQ(base.parent_path(), c.options.dir);
    EXPECT_EQ(model_cache_file(c.node, mix, c.options), base);  // stable

    sim::NodeConfig more_seqs = c.node;
    more_seqs.engine.max_num_seqs = 64;
    EXPECT_NE(model_cache_file(more_seqs, mix, c.options), base);

    WorkloadMix other = mix;
    other.spec = "in=100,out=10";
    EXPECT_NE(model_cache_file(c.node, other, c.options), base);

    sim::NodeConfig recalibrated = c.node;  // same names, different physics
    recalibrated.gpu.calibration.mem_efficiency *= 0.9;
    EXPECT_NE(model_cache_file(recalibrated, mix, c.options), base);
}

TEST(ModelCacheTest, RefusesAnEmptySweep) {
    SmallCache c("model_cache_bad");
    c.options.cap_step_w = 0.0;
    EXPECT_STATUS(cached_power_model(c.node, default_workload_mix(), c.options),
                  StatusCode::kInvalidArgument, "cap step");
    EXPECT_TRUE(c.profiled.empty());
}

TEST(ModelCacheTest, DefaultFolderFollowsPalsCacheDirThenXdg) {
    const char* saved_home = std::getenv("HOME");
    const std::string home = saved_home != nullptr ? saved_home : "";
    const char* saved_xdg = std::getenv("XDG_CACHE_HOME");
    const std::string xdg = saved_xdg != nullptr ? saved_xdg : "";
    ::setenv("PALS_CACHE_DIR", "/srv/pals-cache-test-dir", 1);
    ::setenv("XDG_CACHE_HOME", "/srv/xdg", 1);
    EXPECT_EQ(ModelCacheOptions::default_dir(), "/srv/pals-cache-test-dir");
    ::unsetenv("PALS_CACHE_DIR");
    EXPECT_EQ(ModelCacheOptions::default_dir(), "/srv/xdg/pals");
    ::setenv("XDG_CACHE_HOME", "relative", 1);  // ignored, as the XDG rule says
    ::setenv("HOME", "/home/op", 1);
    EXPECT_EQ(ModelCacheOptions::default_dir(), "/home/op/.cache/pals");
    ::unsetenv("XDG_CACHE_HOME");
    ::unsetenv("HOME");
    EXPECT_EQ(ModelCacheOptions::default_dir(), ".pals-cache");
    ::setenv("HOME", home.c_str(), 1);
    if (!xdg.empty()) {
        ::setenv("XDG_CACHE_HOME", xdg.c_str(), 1);
    }
}

}  // namespace
}  // namespace pals::profile
