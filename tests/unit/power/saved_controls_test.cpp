// SavedControls: save before the first write, restore the saved value (not a default).
#include "pals/power/saved_controls.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "mocks/mock_gpu_backend.hpp"
#include "pals/common/file_util.hpp"
#include "pals/power/nvml_backend.hpp"
#include "pals/sim/gpu_spec.hpp"
#include "pals/sim/simulated_gpu_backend.hpp"
#include "power_test_helpers.hpp"

namespace pals::power {
namespace {

using ::testing::_;
using testing::FakeNvmlEnv;
using ::testing::NiceMock;
using ::testing::Return;
using ::testing::StrictMock;

class SavedControlsTest : public ::testing::Test {
protected:
    SavedControlsTest() : m_backend(sim::find_gpu_spec("H100-SXM").value(), 4) {}

    [[nodiscard]] std::filesystem::path state_file() const {
        return m_env.dir() / "saved" / "controls.json";
    }

    FakeNvmlEnv m_env;  // a private temp folder (the fake NVML parts are unused by most tests)
    sim::SimulatedGpuBackend m_backend;
};

TEST_F(SavedControlsTest, RestoresTheSavedValueNotTheDefault) {
    ASSERT_OK(m_backend.set_power_limit(1, 450.0));  // someone else's setting, before PALS
    SavedControls saved(state_file());
    ASSERT_OK(saved.save(m_backend, {1, 2}));
    EXPECT_TRUE(std::filesystem::exists(state_file()));
    ASSERT_OK(m_backend.set_power_limit(1, 250.0));
    ASSERT_OK(m_backend.set_power_limit(2, 300.0));

    ASSERT_OK(saved.restore(m_backend));
    EXPECT_DOUBLE_EQ(*m_backend.power_limit_w(1), 450.0);
    EXPECT_DOUBLE_EQ(*m_backend.power_limit_w(2), 700.0);
    EXPECT_TRUE(saved.empty());
    EXPECT_FALSE(std::filesystem::exists(state_file()));
}

TEST_F(SavedControlsTest, FirstSavedValueWinsAcrossSessions) {
    {
        SavedControls saved(state_file());
        ASSERT_OK(saved.save(m_backend, {0}));
        ASSERT_OK(m_backend.set_power_limit(0, 300.0));
        ASSERT_OK(saved.save(m_backend, {0}));  // already saved: keeps 700
        EXPECT_DOUBLE_EQ(saved.entries().at(0).power_limit_w, 700.0);
    }
    // A later process (e.g. after a crash) loads the file and saves again before its own write.
    auto later = SavedControls::load(state_file());
    ASSERT_OK(later);
    ASSERT_OK(later->save(m_backend, {0, 3}));
    ASSERT_OK(m_backend.set_power_limit(3, 222.0));
    ASSERT_EQ(later->entries().size(), 2U);
    EXPECT_DOUBLE_EQ(later->entries()[0].power_limit_w, 700.0);

    auto reread = SavedControls::load(state_file());
    ASSERT_OK(reread);
    ASSERT_OK(reread->restore(m_backend));
    EXPECT_DOUBLE_EQ(*m_backend.power_limit_w(0), 700.0);
    EXPECT_DOUBLE_EQ(*m_backend.power_limit_w(3), 700.0);
    EXPECT_FALSE(std::filesystem::exists(state_file()));
}

TEST_F(SavedControlsTest, FileRecordsUuidNameAndLimit) {
    SavedControls saved(state_file());
    ASSERT_OK(saved.save(m_backend, {2}));
    auto text = read_file(state_file());
    ASSERT_OK(text);
    EXPECT_NE(text->find("\"schema_version\": 1"), std::string::npos) << *text;
    EXPECT_NE(text->find("\"uuid\": \"SIM-GPU-00000002\""), std::string::npos) << *text;
    EXPECT_NE(text->find("\"power_limit_w\": 700.0"), std::string::npos) << *text;
    EXPECT_NE(text->find("\"backend\": \"simulated\""), std::string::npos) << *text;
}

TEST_F(SavedControlsTest, EngineCapFilesAreRecordedAndRemovedByAFullRestore) {
    const std::filesystem::path cap = m_env.dir() / "batch_cap_0";
    std::ofstream(cap) << "12345678";
    {
        SavedControls saved(state_file());
        saved.note_cap_files({cap, cap});  // listed once
        ASSERT_OK(saved.save(m_backend, {0}));
    }  // a crash: nothing restored
    auto later = SavedControls::load(state_file());
    ASSERT_OK(later);
    EXPECT_EQ(later->cap_files(), (std::vector<std::string>{cap.string()}));
    ASSERT_OK(later->restore(m_backend));  // `pals power restore`
    EXPECT_FALSE(std::filesystem::exists(cap));
    EXPECT_FALSE(std::filesystem::exists(state_file()));

    std::ofstream(state_file()) << R"({"schema_version": 1, "gpus": [], "engine_cap_files": [3]})";
    EXPECT_STATUS(SavedControls::load(state_file()), StatusCode::kInvalidArgument,
                  "engine_cap_files must be an array of paths");
}

TEST_F(SavedControlsTest, AbsentFileLoadsEmptyAndRestoresNothing) {
    auto saved = SavedControls::load(state_file());
    ASSERT_OK(saved);
    EXPECT_TRUE(saved->empty());
    EXPECT_OK(saved->restore(m_backend));
}

TEST_F(SavedControlsTest, CorruptFileIsInvalidArgument) {
    std::filesystem::create_directories(state_file().parent_path());
    std::ofstream(state_file()) << "{not json";
    EXPECT_STATUS(SavedControls::load(state_file()), StatusCode::kInvalidArgument,
                  "not a saved-controls");
    std::ofstream(state_file()) << R"({"schema_version": 7, "gpus": []})";
    EXPECT_STATUS(SavedControls::load(state_file()), StatusCode::kInvalidArgument,
                  "schema_version");
    std::ofstream(state_file()) << R"({"schema_version": 1, "gpus": [{"index": "a"}]})";
    EXPECT_STATUS(SavedControls::load(state_file()), StatusCode::kInvalidArgument, "power_limit_w");
}

/// The saved-controls file is parsed with the bounded parse: deep nesting is an error.
TEST_F(SavedControlsTest, DeeplyNestedFileIsInvalidArgument) {
    std::filesystem::create_directories(state_file().parent_path());
    std::ofstream(state_file()) << R"({"schema_version": 1, "gpus": )" << std::string(100000, '[')
                                << std::string(100000, ']') << "}";
    EXPECT_STATUS(SavedControls::load(state_file()), StatusCode::kInvalidArgument,
                  "nested deeper than");
}

TEST_F(SavedControlsTest, UnwritableFileIsPermissionDeniedAndSavesNothing) {
    SavedControls saved("/proc/pals_no_such_dir/controls.json");
    EXPECT_STATUS(saved.save(m_backend, {0}), StatusCode::kPermissionDenied, "--state-file");
    EXPECT_TRUE(saved.empty());
}

TEST_F(SavedControlsTest, DiscardNewForgetsThisSessionsEntries) {
    SavedControls first(state_file());
    ASSERT_OK(first.save(m_backend, {0}));
    auto second = SavedControls::load(state_file());
    ASSERT_OK(second);
    ASSERT_OK(second->save(m_backend, {1}));
    ASSERT_OK(second->discard_new());  // e.g. the write was refused: keep only GPU 0
    auto reread = SavedControls::load(state_file());
    ASSERT_OK(reread);
    ASSERT_EQ(reread->entries().size(), 1U);
    EXPECT_EQ(reread->entries()[0].index, 0);

    SavedControls fresh(m_env.dir() / "other.json");
    ASSERT_OK(fresh.save(m_backend, {2}));
    ASSERT_OK(fresh.discard_new());
    EXPECT_FALSE(std::filesystem::exists(m_env.dir() / "other.json"));
}

TEST_F(SavedControlsTest, SavesAndRestoresLockedClocks) {
    ASSERT_OK(m_backend.lock_sm_clocks(0, ClockRangeMhz{1000.0, 1500.0}));
    SavedControls saved(state_file());
    ASSERT_OK(saved.save(m_backend, {0, 1}, /*include_sm_clocks=*/true));
    ASSERT_OK(m_backend.lock_sm_clocks(0, ClockRangeMhz{800.0, 900.0}));
    ASSERT_OK(m_backend.lock_sm_clocks(1, ClockRangeMhz{800.0, 900.0}));

    auto reread = SavedControls::load(state_file());
    ASSERT_OK(reread);
    ASSERT_OK(reread->restore(m_backend));
    EXPECT_EQ(**m_backend.locked_sm_clocks(0), (ClockRangeMhz{1000.0, 1500.0}));
    EXPECT_FALSE(m_backend.locked_sm_clocks(1)->has_value());  // saved unlocked: reset
}

TEST_F(SavedControlsTest, RestoreFindsGpusByUuid) {
    StrictMock<MockGpuBackend> mock;
    std::filesystem::create_directories(state_file().parent_path());
    std::ofstream(state_file()) << R"({"schema_version": 1, "gpus": [
        {"index": 0, "uuid": "GPU-A", "name": "x", "power_limit_w": 450.0}]})";
    EXPECT_CALL(mock, device_count()).WillOnce(Return(Result<int>(2)));
    EXPECT_CALL(mock, device_info(0)).WillOnce(Return(Result<GpuInfo>(GpuInfo{0, "x", "GPU-B"})));
    EXPECT_CALL(mock, device_info(1)).WillOnce(Return(Result<GpuInfo>(GpuInfo{1, "x", "GPU-A"})));
    // The GPU once at index 0 is now at index 1: its saved value goes there.
    EXPECT_CALL(mock, set_power_limit(1, 450.0)).WillOnce(Return(Result<double>(450.0)));
    EXPECT_CALL(mock, power_limit_w(1))
        .WillOnce(Return(Result<double>(300.0)))   // before: PALS had lowered it
        .WillOnce(Return(Result<double>(450.0)));  // read back
    auto saved = SavedControls::load(state_file());
    ASSERT_OK(saved);
    EXPECT_OK(saved->restore(mock));
    EXPECT_FALSE(std::filesystem::exists(state_file()));
}

TEST_F(SavedControlsTest, FailedRestoreKeepsTheFileForLater) {
    NiceMock<MockGpuBackend> mock;
    ON_CALL(mock, backend_name()).WillByDefault(Return(std::string_view("mock")));
    ON_CALL(mock, device_count()).WillByDefault(Return(Result<int>(2)));
    ON_CALL(mock, device_info(0)).WillByDefault(Return(Result<GpuInfo>(GpuInfo{0, "x", "GPU-A"})));
    ON_CALL(mock, device_info(1)).WillByDefault(Return(Result<GpuInfo>(GpuInfo{1, "x", "GPU-B"})));
    ON_CALL(mock, power_limit_w(0)).WillByDefault(Return(Result<double>(650.0)));
    ON_CALL(mock, power_limit_w(1)).WillByDefault(Return(Result<double>(600.0)));
    SavedControls saved(state_file());
    ASSERT_OK(saved.save(mock, {0, 1}));

    // PALS had lowered both; GPU 0 goes back, GPU 1 is lost.
    EXPECT_CALL(mock, power_limit_w(0))
        .WillOnce(Return(Result<double>(300.0)))
        .WillRepeatedly(Return(Result<double>(650.0)));
    EXPECT_CALL(mock, power_limit_w(1)).WillRepeatedly(Return(Result<double>(300.0)));
    EXPECT_CALL(mock, set_power_limit(0, 650.0)).WillOnce(Return(Result<double>(650.0)));
    EXPECT_CALL(mock, set_power_limit(1, 600.0))
        .WillOnce(Return(Result<double>(Status::unavailable("GPU 1: GPU is lost"))));
    const Status st = saved.restore(mock);
    EXPECT_STATUS(st, StatusCode::kUnavailable, "1 of the saved GPU(s) not restored");
    EXPECT_STATUS(st, StatusCode::kUnavailable, "GPU is lost");
    auto left = SavedControls::load(state_file());
    ASSERT_OK(left);
    ASSERT_EQ(left->entries().size(), 1U);
    EXPECT_EQ(left->entries()[0].uuid, "GPU-B");
    EXPECT_DOUBLE_EQ(left->entries()[0].power_limit_w, 600.0);
}

TEST_F(SavedControlsTest, RestoreLowersBeforeItRaises) {
    // GPU 0 goes up (300 -> 700 W), GPU 1 down (700 -> 300 W): the lower is written first, so
    // the sum in force never passes 1000 W on the way.
    StrictMock<MockGpuBackend> mock;
    std::filesystem::create_directories(state_file().parent_path());
    std::ofstream(state_file()) << R"({"schema_version": 1, "gpus": [
        {"index": 0, "uuid": "GPU-A", "power_limit_w": 700.0},
        {"index": 1, "uuid": "GPU-B", "power_limit_w": 300.0}]})";
    EXPECT_CALL(mock, device_count()).WillRepeatedly(Return(Result<int>(2)));
    EXPECT_CALL(mock, device_info(0))
        .WillRepeatedly(Return(Result<GpuInfo>(GpuInfo{0, "x", "GPU-A"})));
    EXPECT_CALL(mock, device_info(1))
        .WillRepeatedly(Return(Result<GpuInfo>(GpuInfo{1, "x", "GPU-B"})));
    EXPECT_CALL(mock, power_limit_w(0))
        .WillOnce(Return(Result<double>(300.0)))
        .WillOnce(Return(Result<double>(700.0)));
    EXPECT_CALL(mock, power_limit_w(1))
        .WillOnce(Return(Result<double>(700.0)))
        .WillOnce(Return(Result<double>(300.0)));
    {
        ::testing::InSequence order;
        EXPECT_CALL(mock, set_power_limit(1, 300.0)).WillOnce(Return(Result<double>(300.0)));
        EXPECT_CALL(mock, set_power_limit(0, 700.0)).WillOnce(Return(Result<double>(700.0)));
    }
    auto saved = SavedControls::load(state_file());
    ASSERT_OK(saved);
    EXPECT_OK(saved->restore(mock));
}

TEST_F(SavedControlsTest, RestoreWritesNothingToGpusThatHoldTheirSavedValues) {
    // Writes are refused (no root), but none had taken effect: nothing to restore, file gone.
    NiceMock<MockGpuBackend> mock;
    ON_CALL(mock, backend_name()).WillByDefault(Return(std::string_view("mock")));
    ON_CALL(mock, device_count()).WillByDefault(Return(Result<int>(1)));
    ON_CALL(mock, device_info(0)).WillByDefault(Return(Result<GpuInfo>(GpuInfo{0, "x", "GPU-A"})));
    ON_CALL(mock, power_limit_w(0)).WillByDefault(Return(Result<double>(700.0)));
    SavedControls saved(state_file());
    ASSERT_OK(saved.save(mock, {0}));
    EXPECT_CALL(mock, set_power_limit(::testing::_, ::testing::_)).Times(0);
    EXPECT_OK(saved.restore(mock));
    EXPECT_FALSE(std::filesystem::exists(state_file()));
}

TEST_F(SavedControlsTest, MissingGpuIsReportedAndKept) {
    std::filesystem::create_directories(state_file().parent_path());
    std::ofstream(state_file()) << R"({"schema_version": 1, "gpus": [
        {"index": 9, "uuid": "GPU-GONE", "power_limit_w": 450.0}]})";
    auto saved = SavedControls::load(state_file());
    ASSERT_OK(saved);
    EXPECT_STATUS(saved->restore(m_backend), StatusCode::kUnavailable, "GPU-GONE");
    EXPECT_TRUE(std::filesystem::exists(state_file()));
}

TEST_F(SavedControlsTest, RestoreGpusLeavesOtherSessionsEntries) {
    SavedControls one_shot(state_file());
    ASSERT_OK(one_shot.save(m_backend, {0}));
    ASSERT_OK(m_backend.set_power_limit(0, 300.0));

    auto session = SavedControls::load(state_file());
    ASSERT_OK(session);
    ASSERT_OK(session->save(m_backend, {1}));
    ASSERT_OK(m_backend.set_power_limit(1, 250.0));
    ASSERT_OK(session->restore_gpus(m_backend, {1}));
    EXPECT_DOUBLE_EQ(*m_backend.power_limit_w(1), 700.0);
    EXPECT_DOUBLE_EQ(*m_backend.power_limit_w(0), 300.0);  // the one-shot setting stays

    auto left = SavedControls::load(state_file());
    ASSERT_OK(left);
    ASSERT_EQ(left->entries().size(), 1U);
    EXPECT_EQ(left->entries()[0].index, 0);
    ASSERT_OK(left->restore_gpus(m_backend, {0}));
    EXPECT_FALSE(std::filesystem::exists(state_file()));
}

TEST_F(SavedControlsTest, RoundTripThroughTheFakeNvmlLibrary) {
    m_env.write_config(R"({"count": 2})");
    const std::string lib = testing::fake_nvml_path();
    {
        auto backend = NvmlBackend::open({lib, nullptr});
        ASSERT_OK(backend);
        ASSERT_OK((*backend)->set_power_limit(0, 650.0));  // the "original" setting
    }
    {
        auto backend = NvmlBackend::open({lib, nullptr});
        ASSERT_OK(backend);
        SavedControls saved(state_file());
        ASSERT_OK(saved.save(**backend, {0, 1}));
        ASSERT_OK((*backend)->set_power_limit(0, 300.0));
        ASSERT_OK((*backend)->set_power_limit(1, 300.0));
        // the process "crashes" here: no restore
    }
    auto backend = NvmlBackend::open({lib, nullptr});
    ASSERT_OK(backend);
    EXPECT_DOUBLE_EQ(*(*backend)->power_limit_w(0), 300.0);
    auto saved = SavedControls::load(state_file());
    ASSERT_OK(saved);
    ASSERT_OK(saved->restore(**backend));
    EXPECT_DOUBLE_EQ(*(*backend)->power_limit_w(0), 650.0);
    EXPECT_DOUBLE_EQ(*(*backend)->power_limit_w(1), 700.0);
    EXPECT_FALSE(std::filesystem::exists(state_file()));
}

}  // namespace
}  // namespace pals::power
