#include "pals/sim/dvfs_calibration.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace pals::sim {
namespace {

const std::string kShared = PALS_SHARED_DIR;

std::vector<ClockSweep> shared_sweeps() {
    std::vector<ClockSweep> out;
    for (const char* name : {"gpt3-175b+a100_sxm_bf16.csv", "bloom+a100_sxm_bf16.csv"}) {
        auto sweeps = load_clock_sweeps(kShared + "/calibration/dvfs/" + name);
        EXPECT_TRUE(sweeps.is_ok()) << sweeps.status().message();
        if (sweeps.is_ok()) {
            out.insert(out.end(), sweeps->begin(), sweeps->end());
        }
    }
    return out;
}

TEST(ClockSweepTest, LoadsOneSweepPerInstructionSummedOverStages) {
    auto sweeps = load_clock_sweeps(kShared + "/calibration/dvfs/gpt3-175b+a100_sxm_bf16.csv");
    ASSERT_TRUE(sweeps.is_ok()) << sweeps.status().message();
    ASSERT_EQ(sweeps->size(), 2U);  // backward, forward
    for (const ClockSweep& s : sweeps.value()) {
        ASSERT_EQ(s.points.size(), 38U);  // 1410 down to 855 MHz in 15 MHz steps
        EXPECT_DOUBLE_EQ(s.points.front().clock_mhz, 1410.0);
        EXPECT_DOUBLE_EQ(s.points.back().clock_mhz, 855.0);
    }
}

// The A100's voltage-frequency curve and power split, fitted on the measured sweeps
// (`pals calibrate --source sweep`): the bounds of issue 11.
TEST(ClockSweepTest, A100ReplayMatchesTheMeasuredSweeps) {
    const GpuSpec a100 = find_gpu_spec("A100-80GB").value();
    for (const ClockSweep& sweep : shared_sweeps()) {
        const SweepReport r = replay_clock_sweep(sweep, a100, 0.0);
        EXPECT_LE(r.mae_time_pct, 2.0) << r.name;
        EXPECT_LE(r.mae_energy_pct, 5.0) << r.name;
        EXPECT_NEAR(r.power_top_sim_w, r.power_top_meas_w, 0.03 * r.power_top_meas_w) << r.name;
        // The energy minimum sits where the voltage stops falling: within four clock steps.
        EXPECT_NEAR(r.min_energy_clock_sim_mhz, r.min_energy_clock_meas_mhz, 60.0) << r.name;
        // The lowest clock saves less than the minimum does (energy rises again below it).
        EXPECT_GT(r.rows.back().energy_ratio_sim, r.rows.back().energy_ratio_meas - 0.05) << r.name;
    }
}

// The published H200 decode figure (arXiv 2605.11999: up to 32 % of decode energy saved by a
// locked clock at minimal throughput loss), replayed with the H100-family parameters.
TEST(DecodeFigureTest, LockedClockDecodeSavingMatchesThePublishedFigure) {
    auto rows = replay_decode_figures(published_decode_figures(), find_gpu_spec("H100-SXM").value(),
                                      kShared + "/models");
    ASSERT_TRUE(rows.is_ok()) << rows.status().message();
    ASSERT_FALSE(rows->empty());
    for (const DecodeFigureRow& r : rows.value()) {
        EXPECT_NEAR(r.energy_saving_pct, r.published.energy_saving_pct, 5.0) << r.published.source;
        EXPECT_LE(r.latency_increase_pct, r.published.max_latency_increase_pct)
            << r.published.source;
        EXPECT_LT(r.clock_mhz, 1980.0);
    }
}

TEST(ClockSweepTest, BadCsvNamesFileLineAndColumn) {
    const std::string path = ::testing::TempDir() + "/bad_sweep.csv";
    std::ofstream(path)
        << "stage,instruction,frequency,time,energy\n0,forward,1410,0.05,24\n0,forward,1395,x,24\n";
    auto bad = load_clock_sweeps(path);
    ASSERT_FALSE(bad.is_ok());
    EXPECT_NE(bad.status().message().find("bad_sweep.csv:3"), std::string::npos)
        << bad.status().message();
    EXPECT_NE(bad.status().message().find("'time'"), std::string::npos);

    std::ofstream(path) << "stage,frequency,time,energy\n0,1410,0.05,24\n";
    auto missing = load_clock_sweeps(path);
    ASSERT_FALSE(missing.is_ok());
    EXPECT_NE(missing.status().message().find("missing column 'instruction'"), std::string::npos);

    std::ofstream(path) << "stage,instruction,frequency,time,energy\n0,forward,1410,0.05,24\n";
    auto single = load_clock_sweeps(path);
    ASSERT_FALSE(single.is_ok());
    EXPECT_NE(single.status().message().find("fewer than two clocks"), std::string::npos);
}

}  // namespace
}  // namespace pals::sim
