#include "pals/cluster/cluster_agent.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <numeric>

#include "status_assertions.hpp"

namespace pals::cluster {
namespace {

constexpr double kMinW = 1600.0;  // 8 GPUs x 200 W
constexpr double kMaxW = 5600.0;  // 8 GPUs x 700 W
constexpr std::int64_t kTtlS = 3;
constexpr double kPollS = 0.25;

/// A node whose daemon applies a requested budget one agent step later (as `pals run` does
/// within its 0.1 s poll), lowering first. Its demand: k * sqrt(W - min), capped.
class FakeNode final : public NodePort {
public:
    FakeNode(double k, double cap_tok_s) : m_k(k), m_cap(cap_tok_s) {}
    void request_budget(double budget_w) override { m_pending = budget_w; }
    double budget_in_force_w() override { return m_in_force; }
    std::vector<DemandPoint> demand_curve() override {
        std::vector<DemandPoint> c;
        for (int i = 0; i <= 8; ++i) {
            const double w = kMinW + (kMaxW - kMinW) * i / 8.0;
            c.push_back({w, std::min(m_cap, m_k * std::sqrt(w - kMinW)), 0.0});
        }
        return c;
    }
    /// The daemon's half of a step: applies what was requested.
    void apply() {
        if (m_pending) {
            m_in_force = *m_pending;
            m_pending.reset();
        }
    }
    double in_force() const { return m_in_force; }
    void set_demand(double k, double cap_tok_s) {
        m_k = k;
        m_cap = cap_tok_s;
    }
    bool alive = true;

private:
    double m_k;
    double m_cap;
    double m_in_force = kMinW;  // the daemon starts at the floor
    std::optional<double> m_pending;
};

struct Node {
    std::unique_ptr<PartitionableStore> view;
    std::unique_ptr<FakeNode> port;
    std::unique_ptr<ClusterAgent> agent;
};

class ClusterAgentTest : public ::testing::Test {
protected:
    ClusterAgentTest() : store(clock) {}

    void add_node(const std::string& name, double k, double cap = 1e9) {
        Node n;
        n.view = std::make_unique<PartitionableStore>(store);
        n.port = std::make_unique<FakeNode>(k, cap);
        AgentOptions o;
        o.cluster = "test";
        o.node = name;
        o.lease_ttl_s = kTtlS;
        o.period = Seconds(0.5);
        o.poll = Seconds(kPollS);
        o.floor_w = kMinW;
        o.max_w = kMaxW;
        n.agent = std::make_unique<ClusterAgent>(*n.view, clock, *n.port, o);
        nodes.push_back(std::move(n));
    }

    /// One poll of every live node; checks the budget invariant after each agent's step.
    void step_all() {
        for (Node& n : nodes) {
            if (!n.port->alive) {
                continue;
            }
            n.port->apply();
            n.agent->step();
            check_invariant();
        }
        clock.advance(Seconds(kPollS));
    }

    void run_for(double seconds) {
        const int steps = static_cast<int>(std::ceil(seconds / kPollS));
        for (int i = 0; i < steps; ++i) {
            step_all();
        }
    }

    /// Sum of the node budgets in force of live nodes (and the floors of dead-but-unseen ones
    /// are not counted: a dead node draws nothing).
    double in_force_sum() const {
        double s = 0.0;
        for (const Node& n : nodes) {
            s += n.port->alive ? n.port->in_force() : 0.0;
        }
        return s;
    }

    void check_invariant() {
        if (budget_w > 0.0 && !in_transition) {
            ASSERT_LE(in_force_sum(), budget_w + 1.0) << "at t=" << clock.now().count();
        }
    }

    int coordinators() const {
        int c = 0;
        for (const Node& n : nodes) {
            c += n.port->alive && n.agent->coordinator() ? 1 : 0;
        }
        return c;
    }

    ManualClock clock;
    InMemoryClusterStore store;
    std::vector<Node> nodes;
    double budget_w = 0.0;
    bool in_transition = false;
};

TEST_F(ClusterAgentTest, OneCoordinatorAndAnAllocationThatFillsTheBudget) {
    add_node("a", 100);
    add_node("b", 100);
    add_node("c", 200);
    budget_w = 12000.0;
    ASSERT_OK(nodes[0].agent->set_cluster_budget(budget_w));
    run_for(5.0);
    EXPECT_EQ(coordinators(), 1);
    EXPECT_NEAR(in_force_sum(), budget_w, 30.0);
    // The busier node (k = 200) holds the most.
    EXPECT_GT(nodes[2].port->in_force(), nodes[0].port->in_force() + 500.0);
    for (const Node& n : nodes) {
        EXPECT_TRUE(n.agent->snapshot().member);
        EXPECT_FALSE(n.agent->fallback());
    }
}

TEST_F(ClusterAgentTest, BudgetDropIsInForceQuicklyAndRaisesWaitForAcks) {
    add_node("a", 100);
    add_node("b", 300);
    add_node("c", 100, 3000.0);
    budget_w = 14000.0;
    ASSERT_OK(nodes[0].agent->set_cluster_budget(budget_w));
    run_for(5.0);
    // Drop: the old budget still bounds the sum during the change, the new one after.
    const double old_budget = budget_w;
    ASSERT_OK(nodes[1].agent->set_cluster_budget(8000.0));
    budget_w = old_budget;
    double took = -1.0;
    for (int i = 0; i < 20; ++i) {
        step_all();
        if (took < 0.0 && in_force_sum() <= 8000.0 + 1.0) {
            took = (i + 1) * kPollS;
        }
    }
    budget_w = 8000.0;
    check_invariant();
    ASSERT_GT(took, 0.0);
    EXPECT_LE(took, 3 * kPollS);  // read, write falls, nodes apply: a few polls
    run_for(3.0);
    EXPECT_NEAR(in_force_sum(), 8000.0, 30.0);
}

TEST_F(ClusterAgentTest, DeadNodeShareIsReallocatedWithinTtlPlusTwoPeriods) {
    add_node("a", 100);
    add_node("b", 100);
    add_node("c", 100);
    budget_w = 9000.0;
    ASSERT_OK(nodes[0].agent->set_cluster_budget(budget_w));
    run_for(5.0);
    // Kill the coordinator itself: node death and coordinator death at once.
    std::size_t dead = 0;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        if (nodes[i].agent->coordinator()) {
            dead = i;
        }
    }
    const double before = in_force_sum() - nodes[dead].port->in_force();
    nodes[dead].port->alive = false;
    double took = -1.0;
    for (int i = 0; i < 40 && took < 0.0; ++i) {
        step_all();
        // Its floor stays reserved (it may be partitioned); the rest of its share moves.
        if (in_force_sum() >= budget_w - kMinW - 30.0) {
            took = (i + 1) * kPollS;
        }
    }
    ASSERT_GT(took, 0.0) << "live nodes hold " << in_force_sum() << " W, had " << before;
    EXPECT_LE(took, kTtlS + 2 * 0.5 + 2 * kPollS);
    EXPECT_EQ(coordinators(), 1);
}

TEST_F(ClusterAgentTest, PartitionedNodeFallsToItsFloorBeforeItsLeaseExpires) {
    add_node("a", 100);
    add_node("b", 100);
    budget_w = 6000.0;
    ASSERT_OK(nodes[0].agent->set_cluster_budget(budget_w));
    run_for(4.0);
    Node& cut = nodes[1].agent->coordinator() ? nodes[0] : nodes[1];
    Node& other = &cut == &nodes[0] ? nodes[1] : nodes[0];
    ASSERT_GT(cut.port->in_force(), kMinW + 100.0);
    cut.view->set_connected(false);
    // Here the cut node still draws: the invariant counts it all along.
    for (int i = 0; i < static_cast<int>(2.0 * kTtlS / kPollS); ++i) {
        step_all();
    }
    EXPECT_TRUE(cut.agent->fallback());
    EXPECT_NEAR(cut.port->in_force(), kMinW, 1e-6);
    // The other node got the share above the floor.
    EXPECT_NEAR(other.port->in_force(), budget_w - kMinW, 30.0);
    // Back: it joins again with a new lease and gets a share.
    cut.view->set_connected(true);
    run_for(4.0);
    EXPECT_FALSE(cut.agent->fallback());
    EXPECT_GT(cut.port->in_force(), kMinW + 100.0);
    EXPECT_EQ(cut.agent->snapshot().rejoins_total, 1U);
    EXPECT_NEAR(in_force_sum(), budget_w, 30.0);
}

TEST_F(ClusterAgentTest, NewNodeGetsAShareWithoutBreakingTheBudget) {
    add_node("a", 100);
    add_node("b", 100);
    budget_w = 9000.0;
    ASSERT_OK(nodes[0].agent->set_cluster_budget(budget_w));
    run_for(4.0);
    // A node never reserved before adds its floor when it boots (its GPUs hold at least their
    // minimum): the coordinator makes room with falls in the next round (docs/cluster.md).
    add_node("c", 100);
    in_transition = true;
    run_for(4 * kPollS);
    in_transition = false;
    check_invariant();
    run_for(4.0);
    EXPECT_GT(nodes[2].port->in_force(), kMinW + 500.0);
    EXPECT_NEAR(in_force_sum(), budget_w, 30.0);
}

TEST_F(ClusterAgentTest, LeaveReleasesTheShareAboveTheFloor) {
    add_node("a", 100);
    add_node("b", 100);
    budget_w = 6000.0;
    ASSERT_OK(nodes[0].agent->set_cluster_budget(budget_w));
    run_for(4.0);
    nodes[1].port->request_budget(kMinW);  // the daemon's exit: caps at the floor
    nodes[1].port->apply();
    nodes[1].agent->leave();
    nodes[1].port->alive = false;
    run_for(2.0);
    EXPECT_NEAR(nodes[0].port->in_force(), budget_w - kMinW, 30.0);
}

TEST_F(ClusterAgentTest, ADemandShiftMovesWattsFallsFirst) {
    add_node("a", 300);
    add_node("b", 50);
    budget_w = 7000.0;
    ASSERT_OK(nodes[0].agent->set_cluster_budget(budget_w));
    run_for(5.0);
    const double a_before = nodes[0].port->in_force();
    const double b_before = nodes[1].port->in_force();
    ASSERT_GT(a_before, b_before + 1000.0);
    // The load moves from a to b: b's raise waits for a's acknowledged fall; the sum of the
    // budgets in force stays within the budget at every step (check_invariant).
    nodes[0].port->set_demand(50, 1e9);
    nodes[1].port->set_demand(300, 1e9);
    run_for(5.0);
    EXPECT_GT(nodes[1].port->in_force(), nodes[0].port->in_force() + 1000.0);
    EXPECT_NEAR(in_force_sum(), budget_w, 30.0);
}

TEST_F(ClusterAgentTest, ADeposedCoordinatorWritesNothingAndOneLeads) {
    add_node("a", 100);
    add_node("b", 200);
    add_node("c", 100);
    budget_w = 9000.0;
    ASSERT_OK(nodes[0].agent->set_cluster_budget(budget_w));
    run_for(4.0);
    Node* leader = nullptr;
    for (Node& n : nodes) {
        if (n.agent->coordinator()) {
            leader = &n;
        }
    }
    ASSERT_NE(leader, nullptr);
    // Cut off the coordinator (it still draws: the invariant counts it) past its lease.
    leader->view->set_connected(false);
    run_for(2.0 * kTtlS);
    EXPECT_FALSE(leader->agent->coordinator());
    EXPECT_EQ(coordinators(), 1);
    EXPECT_NEAR(leader->port->in_force(), kMinW, 1e-6);
    leader->view->set_connected(true);
    run_for(4.0);
    EXPECT_EQ(coordinators(), 1);
    EXPECT_NEAR(in_force_sum(), budget_w, 30.0);
    EXPECT_GT(leader->port->in_force(), kMinW + 100.0);
}

}  // namespace
}  // namespace pals::cluster
