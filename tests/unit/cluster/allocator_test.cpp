#include "pals/cluster/allocator.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numeric>
#include <random>

namespace pals::cluster {
namespace {

/// A concave curve: tokens/s = k * (w - lo)^0.5, capped at `cap_tok_s`.
NodeDemand concave_node(double lo, double hi, double k, double cap_tok_s) {
    NodeDemand d{lo, hi, {}};
    for (int i = 0; i <= 40; ++i) {
        const double w = lo + (hi - lo) * i / 40.0;
        d.curve.push_back({w, std::min(cap_tok_s, k * std::sqrt(w - lo)), 0.0});
    }
    return d;
}

double sum(const std::vector<double>& v) {
    return std::accumulate(v.begin(), v.end(), 0.0);
}

TEST(AllocatorTest, MinimumsFirstThenEqualMarginalValue) {
    // Two identical busy nodes and one with twice the throughput per sqrt(W).
    const std::vector<NodeDemand> nodes = {concave_node(1600, 5600, 100, 1e9),
                                           concave_node(1600, 5600, 100, 1e9),
                                           concave_node(1600, 5600, 200, 1e9)};
    const AllocationResult r = allocate_budget(9600.0, nodes);
    ASSERT_TRUE(r.feasible);
    EXPECT_LE(sum(r.watts), 9600.0 + 1e-9);
    EXPECT_NEAR(sum(r.watts), 9600.0, 1.0);
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        EXPECT_GE(r.watts[i], nodes[i].min_w);
    }
    // Equal marginal value: k / (2 sqrt(x)) equal => x3 = 4 x1 (x = w - min): 4800 = x1+x1+4x1.
    EXPECT_NEAR(r.watts[0] - 1600, 800.0, 100.0);
    EXPECT_NEAR(r.watts[1], r.watts[0], 1.0);
    EXPECT_NEAR(r.watts[2] - 1600, 3200.0, 200.0);
    EXPECT_GT(r.marginal_tok_per_j, 0.0);
}

TEST(AllocatorTest, InfeasibleGivesEveryoneTheMinimum) {
    const std::vector<NodeDemand> nodes = {concave_node(1600, 5600, 100, 1e9),
                                           concave_node(1600, 5600, 100, 1e9)};
    const AllocationResult r = allocate_budget(3000.0, nodes);
    EXPECT_FALSE(r.feasible);
    EXPECT_EQ(r.watts[0], 1600.0);
    EXPECT_EQ(r.watts[1], 1600.0);
}

TEST(AllocatorTest, SatisfiedDemandLeavesSpareByHeadroom) {
    // Node 0 is served at 2000 W; node 1 has no load at all.
    NodeDemand served = concave_node(1600, 5600, 100, 100 * std::sqrt(400.0));
    NodeDemand idle{1600, 5600, {}};
    const AllocationResult r = allocate_budget(
        8000.0, {served, idle}, {.spare_margin = std::numeric_limits<double>::infinity()});
    EXPECT_NEAR(sum(r.watts), 8000.0, 0.01);
    EXPECT_GE(r.watts[0], 2000.0 - 1e-6);
    EXPECT_EQ(r.marginal_tok_per_j, 0.0);
    // The rest by headroom (3600 and 4000 W of it): nobody above its maximum.
    EXPECT_LE(r.watts[0], 5600.0);
    EXPECT_LE(r.watts[1], 5600.0);
}

TEST(AllocatorTest, SpareBeyondTheMarginIsKeptInReserve) {
    // Node 0 is served at 2000 W, node 1 at its minimum: each may get 25 % more, no further.
    NodeDemand served = concave_node(1600, 5600, 100, 100 * std::sqrt(400.0));
    NodeDemand idle{1600, 5600, {}};
    const AllocationResult r = allocate_budget(8000.0, {served, idle}, {.spare_margin = 0.25});
    EXPECT_NEAR(r.watts[0], 2500.0, 1.0);
    EXPECT_NEAR(r.watts[1], 2000.0, 1.0);
    EXPECT_NEAR(r.spare_w, 3500.0, 1.0);
}

TEST(AllocatorTest, BudgetAboveEveryMaximumLeavesSpare) {
    const AllocationResult r = allocate_budget(
        20000.0, {concave_node(1600, 5600, 1, 1e9), concave_node(1600, 5600, 1, 1e9)});
    EXPECT_EQ(r.watts[0], 5600.0);
    EXPECT_EQ(r.watts[1], 5600.0);
    EXPECT_NEAR(r.spare_w, 8800.0, 1e-6);
}

TEST(AllocatorTest, NonConcaveCurveUsesItsHull) {
    // A step: nothing until 3000 W, then 1000 tok/s. The hull is a straight line from min.
    NodeDemand step{1000, 4000, {{1000, 0, 1}, {2999, 0, 1}, {3000, 1000, 0}, {4000, 1000, 0}}};
    NodeDemand linear{1000, 4000, {{1000, 0, 0}, {4000, 600, 0}}};
    const AllocationResult r = allocate_budget(5000.0, {step, linear});
    // Hull slope of `step`: 1000/2000 = 0.5 tok/s per W, above linear's 0.2: it gets 2000 W
    // above its minimum, the other the last 1000.
    EXPECT_NEAR(r.watts[0], 3000.0, 1e-3);
    EXPECT_NEAR(r.watts[1], 2000.0, 1e-3);
}

TEST(AllocatorTest, RandomCurvesNeverExceedTheBudget) {
    std::mt19937 rng(7);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (int trial = 0; trial < 200; ++trial) {
        std::vector<NodeDemand> nodes;
        double mins = 0.0;
        const int n = 1 + static_cast<int>(u(rng) * 20);
        for (int i = 0; i < n; ++i) {
            const double lo = 800 + 1000 * u(rng);
            nodes.push_back(concave_node(lo, lo + 4000 * u(rng), 300 * u(rng), 1e4 * u(rng)));
            mins += lo;
        }
        const double budget = mins + 60000 * u(rng);
        const AllocationResult r = allocate_budget(budget, nodes);
        ASSERT_TRUE(r.feasible);
        EXPECT_LE(sum(r.watts), budget + 1e-6);
        for (int i = 0; i < n; ++i) {
            EXPECT_GE(r.watts[i], nodes[i].min_w);
            EXPECT_LE(r.watts[i], std::max(nodes[i].min_w, nodes[i].max_w) + 1e-6);
        }
    }
}

TEST(MeasuredDemandCurveTest, PowerBoundNodeWantsMore) {
    NodeReading r;
    r.power_w = 2400;
    r.caps_w = 2400;
    r.tok_s = 10000;
    r.running = 64;
    r.waiting = 64;
    r.min_w = 1600;
    r.max_w = 5600;
    const std::vector<DemandPoint> c = measured_demand_curve(r);
    ASSERT_EQ(c.size(), 8U);
    EXPECT_EQ(c.front().power_w, 1600);
    EXPECT_EQ(c.back().power_w, 5600);
    for (std::size_t i = 1; i < c.size(); ++i) {
        EXPECT_GE(c[i].tok_s, c[i - 1].tok_s);
        EXPECT_LE(c[i].qos_violation_rate, c[i - 1].qos_violation_rate);
    }
    EXPECT_GT(curve_tok_s(c, 4000), 10000);
    EXPECT_LE(c.back().tok_s, 20000 + 1e-6);  // demand: twice what it serves
    EXPECT_GT(curve_violation_rate(c, 1600), 0.3);
}

TEST(MeasuredDemandCurveTest, UnboundNodeIsServedAtItsPower) {
    NodeReading r;
    r.power_w = 1000;
    r.caps_w = 5600;
    r.tok_s = 3000;
    r.running = 8;
    r.min_w = 800;
    r.max_w = 5600;
    const std::vector<DemandPoint> c = measured_demand_curve(r);
    EXPECT_NEAR(curve_tok_s(c, 5600), 3000, 1e-6);
    EXPECT_NEAR(curve_violation_rate(c, 5600), 0.0, 1e-9);
    EXPECT_LT(c.front().tok_s, 3000);
}

}  // namespace
}  // namespace pals::cluster
