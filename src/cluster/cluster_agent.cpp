#include "pals/cluster/cluster_agent.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "pals/common/json.hpp"
#include "pals/common/log.hpp"

namespace pals::cluster {

namespace {

using nlohmann::json;

/// Budgets closer than this are the same, W.
constexpr double kSameW = 1e-3;
/// A node's budget in force may exceed an allocation by this much and still acknowledge it
/// (NVML's mW rounding of the caps summed), W.
constexpr double kAckToleranceW = 0.5;
/// A raise (or a fall that no budget needs) smaller than this is not written: demand curves
/// jitter from period to period, and every write costs an acknowledgement.
constexpr double kMinChangeW = 2.0;
constexpr double kMinChangeShare = 0.01;
/// A lost election is retried this often (the leader key's lease expiry ends it).
constexpr double kCampaignEveryPolls = 1.0;
/// How long a step waits for the node to put a lower budget in force.
constexpr Seconds kFallWait{0.3};

double unix_now_s() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

/// What a member key says.
struct Member {
    std::string node;
    LeaseId lease = 0;
    double min_w = 0.0;
    double max_w = 0.0;
    double in_force_w = 0.0;
    std::int64_t acked_rev = 0;
    std::vector<DemandPoint> curve;
};

/// What an allocation key says.
struct Alloc {
    double watts = 0.0;
    double bound_w = 0.0;
    LeaseId lease = 0;
    std::int64_t mod_rev = 0;
};

std::optional<Member> parse_member(const KeyValue& kv, const std::string& prefix) {
    Result<json> j = parse_json(kv.value, "member " + kv.key, {.max_depth = 8});
    if (!j.is_ok() || !j->is_object()) {
        return std::nullopt;
    }
    try {
        Member m;
        m.node = kv.key.substr(prefix.size());
        m.lease = kv.lease;
        m.min_w = j->value("min_w", 0.0);
        m.max_w = j->value("max_w", 0.0);
        m.in_force_w = j->value("in_force_w", m.max_w);
        m.acked_rev = j->value("acked_rev", std::int64_t{0});
        for (const json& p : j->value("curve", json::array())) {
            if (p.is_array() && p.size() == 3) {
                m.curve.push_back({p[0].get<double>(), p[1].get<double>(), p[2].get<double>()});
            }
        }
        if (!std::isfinite(m.min_w) || !std::isfinite(m.max_w)) {
            return std::nullopt;
        }
        return m;
    } catch (const json::exception&) {
        return std::nullopt;
    }
}

std::optional<Alloc> parse_alloc(const KeyValue& kv) {
    Result<json> j = parse_json(kv.value, "allocation " + kv.key, {.max_depth = 4});
    if (!j.is_ok() || !j->is_object()) {
        return std::nullopt;
    }
    try {
        Alloc a;
        a.watts = j->value("watts", 0.0);
        a.bound_w = j->value("bound_w", a.watts);
        a.lease = std::stoll(j->value("lease", std::string("0")));
        a.mod_rev = kv.mod_revision;
        if (!std::isfinite(a.watts) || a.watts <= 0.0) {
            return std::nullopt;
        }
        return a;
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

std::string alloc_json(double watts, double bound_w, LeaseId lease) {
    return json{{"watts", watts}, {"bound_w", bound_w}, {"lease", std::to_string(lease)}}.dump();
}

/// The cluster budget key's text: a positive number of watts.
std::optional<double> parse_budget(const std::string& text) {
    try {
        std::size_t used = 0;
        const double w = std::stod(text, &used);
        if (std::isfinite(w) && w > 0.0) {
            return w;
        }
    } catch (const std::exception&) {
    }
    return std::nullopt;
}

}  // namespace

ClusterKeys::ClusterKeys(const std::string& cluster)
    : root("/pals/" + cluster + "/")
    , budget(root + "budget")
    , leader(root + "leader")
    , nodes(root + "nodes/")
    , members(root + "members/")
    , alloc(root + "alloc/") {}

ClusterAgent::ClusterAgent(ClusterStore& store, Clock& clock, NodePort& port, AgentOptions options)
    : m_store(store)
    , m_clock(clock)
    , m_port(port)
    , m_options(std::move(options))
    , m_keys(m_options.cluster) {
    m_options.lease_ttl_s = std::max<std::int64_t>(1, m_options.lease_ttl_s);
    m_requested_w = m_options.floor_w;
    m_snap.cluster = m_options.cluster;
    m_snap.node = m_options.node;
    m_snap.store = m_store.describe();
    m_snap.floor_w = m_options.floor_w;
    m_snap.max_w = m_options.max_w;
    m_snap.lease_ttl_s = static_cast<double>(m_options.lease_ttl_s);
    m_snap.cluster_budget_w = std::numeric_limits<double>::infinity();
    m_snap.allocation_w = std::numeric_limits<double>::quiet_NaN();
    m_snap.node_budget_w = m_requested_w;
}

void ClusterAgent::note_error(const Status& s, const char* what) {
    ++m_snap.etcd_errors_total;
    const bool was_connected = m_snap.connected;
    m_snap.connected = false;
    m_snap.last_error = fmt::format("{}: {}", what, s.message());
    if (was_connected) {
        PALS_LOG_WARN("cluster: {}", m_snap.last_error);
    } else {
        PALS_LOG_DEBUG("cluster: {}", m_snap.last_error);
    }
}

void ClusterAgent::note_ok() {
    if (!m_snap.connected && m_snap.etcd_errors_total > 0) {
        PALS_LOG_INFO("cluster: {} answers again", m_store.describe());
    }
    m_snap.connected = true;
}

void ClusterAgent::join() {
    const Seconds sent = m_clock.now();
    Result<LeaseId> lease = m_store.grant_lease(m_options.lease_ttl_s);
    if (!lease.is_ok()) {
        note_error(lease.status(), "lease grant");
        return;
    }
    note_ok();
    // The reservation first: from now on a coordinator counts this node's floor, seen or not.
    const std::string floor = fmt::format("{}", m_options.floor_w);
    if (Result<std::int64_t> put = m_store.put(m_keys.nodes + m_options.node, floor);
        !put.is_ok()) {
        note_error(put.status(), "reservation");
        (void)m_store.revoke_lease(*lease);
        return;
    }
    if (m_snap.member || m_snap.rejoins_total > 0 || m_snap.fallbacks_total > 0) {
        ++m_snap.rejoins_total;
    }
    m_lease = *lease;
    m_renewed_at = sent;
    m_next_keepalive = sent + Seconds(static_cast<double>(m_options.lease_ttl_s) / 3.0);
    m_alloc_w = std::numeric_limits<double>::quiet_NaN();
    m_alloc_rev = 0;
    m_acked_rev = 0;
    m_published_in_force_w = -1.0;
    m_next_publish = sent;  // now
    m_snap.member = true;
    PALS_LOG_INFO("cluster {}: node {} joined (lease {:x}, ttl {} s, floor {:.0f} W)",
                  m_options.cluster, m_options.node, m_lease, m_options.lease_ttl_s,
                  m_options.floor_w);
}

void ClusterAgent::keep_alive() {
    const Seconds sent = m_clock.now();
    Result<std::int64_t> ttl = m_store.keep_alive(m_lease);
    if (ttl.is_ok()) {
        note_ok();
        m_renewed_at = sent;
        m_next_keepalive = sent + Seconds(static_cast<double>(m_options.lease_ttl_s) / 3.0);
        return;
    }
    if (ttl.status().code() == StatusCode::kNotFound) {
        // Expired (etcd was out of reach longer than the TTL): the allocation is void; the
        // node is at its floor already (fallback) and joins again.
        note_ok();
        PALS_LOG_WARN("cluster: lease {:x} expired: node budget at its floor, joining again",
                      m_lease);
        m_lease = 0;
        m_leader_rev = 0;
        m_snap.member = false;
        m_alloc_w = std::numeric_limits<double>::quiet_NaN();
        return;
    }
    note_error(ttl.status(), "lease keepalive");
}

void ClusterAgent::read_allocation() {
    Result<RangeResult> r = m_store.range(m_keys.alloc + m_options.node, false);
    if (!r.is_ok()) {
        note_error(r.status(), "reading the allocation");
        return;
    }
    note_ok();
    if (r->kvs.empty()) {
        return;
    }
    std::optional<Alloc> a = parse_alloc(r->kvs.front());
    if (!a || a->lease != m_lease || a->mod_rev <= m_alloc_rev) {
        return;  // for an earlier membership, or seen already
    }
    if (!std::isfinite(m_alloc_w) || std::abs(a->watts - m_alloc_w) > kSameW) {
        PALS_LOG_INFO(
            "cluster: allocation {:.0f} W (was {})", a->watts,
            std::isfinite(m_alloc_w) ? fmt::format("{:.0f} W", m_alloc_w) : std::string("none"));
    }
    m_alloc_w = a->watts;
    m_alloc_rev = a->mod_rev;
    ++m_snap.allocations_applied_total;
}

double ClusterAgent::target_budget_w(Seconds now) {
    const double floor_w = m_options.floor_w;
    double target = std::isfinite(m_alloc_w) && m_lease != 0 ? m_alloc_w : floor_w;
    const double ttl = static_cast<double>(m_options.lease_ttl_s);
    const double since = (now - m_renewed_at).count();
    const bool was = m_fallback;
    m_fallback = m_lease != 0 && since > ttl / 3.0;
    if (m_fallback) {
        // Decay to the floor by 2/3 of the TTL: before etcd can expire the lease.
        const double f = std::clamp((since - ttl / 3.0) / (ttl / 3.0), 0.0, 1.0);
        target = std::max(floor_w, target - (target - floor_w) * f);
        if (!was) {
            ++m_snap.fallbacks_total;
            PALS_LOG_WARN(
                "cluster: no lease renewal for {:.1f} s: node budget decays to its "
                "floor of {:.0f} W by {:.1f} s",
                since, floor_w, 2.0 * ttl / 3.0);
        }
    } else if (m_lease == 0 && m_snap.etcd_errors_total > 0) {
        m_fallback = true;  // not a member: at the floor, and reported
    }
    return std::max(target, floor_w);
}

void ClusterAgent::publish_member(double in_force_w) {
    json curve = json::array();
    for (const DemandPoint& p : m_port.demand_curve()) {
        curve.push_back({p.power_w, p.tok_s, p.qos_violation_rate});
    }
    const std::int64_t acked = std::isfinite(m_alloc_w) && in_force_w <= m_alloc_w + kAckToleranceW
                                   ? m_alloc_rev
                                   : m_acked_rev;
    const json member = {{"min_w", m_options.floor_w},
                         {"max_w", m_options.max_w},
                         {"in_force_w", std::isfinite(in_force_w) ? in_force_w : m_options.max_w},
                         {"acked_rev", acked},
                         {"curve", curve},
                         {"fallback", m_fallback},
                         {"time_unix_s", unix_now_s()}};
    Result<std::int64_t> put = m_store.put(m_keys.members + m_options.node, member.dump(), m_lease);
    if (!put.is_ok()) {
        note_error(put.status(), "publishing the demand");
        if (put.status().code() == StatusCode::kNotFound) {
            m_next_keepalive = m_clock.now();  // the lease is gone: find out at once
        }
        return;
    }
    note_ok();
    m_acked_rev = acked;
    m_published_in_force_w = in_force_w;
    m_next_publish = m_clock.now() + m_options.period;
}

void ClusterAgent::campaign() {
    Result<TxnResult> r = m_store.txn({Compare::created_at(m_keys.leader, 0)},
                                      {TxnOp::put(m_keys.leader, m_options.node, m_lease)},
                                      {TxnOp::range(m_keys.leader)});
    if (!r.is_ok()) {
        note_error(r.status(), "election");
        return;
    }
    note_ok();
    std::string leader;
    if (r->succeeded) {
        m_leader_rev = r->revision;
        m_leading_since = m_clock.now();
        leader = m_options.node;
        ++m_snap.elections_won_total;
        PALS_LOG_INFO("cluster: {} is the coordinator (revision {})", m_options.node, m_leader_rev);
    } else if (!r->ranges.empty() && !r->ranges.front().empty()) {
        const KeyValue& kv = r->ranges.front().front();
        leader = kv.value;
        if (kv.value == m_options.node && kv.lease == m_lease) {
            m_leader_rev = kv.create_revision;  // ours already (an answer lost on the way)
            m_leading_since = m_clock.now();
        }
    }
    if (leader != m_leader) {
        if (!m_leader.empty() || !leader.empty()) {
            ++m_snap.leader_changes_total;
        }
        m_leader = leader;
    }
}

void ClusterAgent::coordinate() {
    const auto started = std::chrono::steady_clock::now();
    const Compare fence = Compare::created_at(m_keys.leader, m_leader_rev);
    Result<TxnResult> read =
        m_store.txn({fence},
                    {TxnOp::range(m_keys.budget), TxnOp::range(m_keys.members, true),
                     TxnOp::range(m_keys.alloc, true), TxnOp::range(m_keys.nodes, true)},
                    {});
    if (!read.is_ok()) {
        note_error(read.status(), "allocation round");
        return;
    }
    note_ok();
    if (!read->succeeded || read->ranges.size() != 4) {
        PALS_LOG_WARN("cluster: {} is no longer the coordinator", m_options.node);
        m_leader_rev = 0;
        return;
    }
    const std::int64_t read_rev = read->revision;
    std::optional<double> budget;
    if (!read->ranges[0].empty()) {
        budget = parse_budget(read->ranges[0].front().value);
    }
    std::vector<Member> members;
    for (const KeyValue& kv : read->ranges[1]) {
        if (std::optional<Member> m = parse_member(kv, m_keys.members); m && m->lease != 0) {
            members.push_back(std::move(*m));
        }
    }
    std::map<std::string, Alloc> allocs;
    for (const KeyValue& kv : read->ranges[2]) {
        if (std::optional<Alloc> a = parse_alloc(kv)) {
            allocs[kv.key.substr(m_keys.alloc.size())] = *a;
        }
    }
    double reserved_w = 0.0;
    for (const KeyValue& kv : read->ranges[3]) {
        const std::string node = kv.key.substr(m_keys.nodes.size());
        const bool seen = std::any_of(members.begin(), members.end(),
                                      [&](const Member& m) { return m.node == node; });
        if (!seen) {
            reserved_w += parse_budget(kv.value).value_or(0.0);
        }
    }

    // What each member may hold now (counted), and what it should get (target).
    const std::size_t n = members.size();
    std::vector<double> counted(n);
    std::vector<bool> acked(n);
    std::vector<const Alloc*> current(n, nullptr);
    std::vector<NodeDemand> demands(n);
    for (std::size_t i = 0; i < n; ++i) {
        const Member& m = members[i];
        auto it = allocs.find(m.node);
        if (it != allocs.end() && it->second.lease == m.lease) {
            current[i] = &it->second;
            acked[i] = m.acked_rev >= it->second.mod_rev;
            counted[i] = acked[i] ? it->second.watts : std::max(it->second.bound_w, m.in_force_w);
        } else {
            acked[i] = true;  // nothing outstanding
            counted[i] = m.in_force_w;
        }
        demands[i] = {m.min_w, m.max_w, m.curve};
    }
    const double avail_w = budget ? *budget - reserved_w : std::numeric_limits<double>::infinity();
    std::vector<double> target(n);
    AllocationResult plan;
    if (budget) {
        plan = allocate_budget(std::max(0.0, avail_w), demands,
                               {.spare_margin = m_options.spare_margin});
        target = plan.watts;
    } else {
        for (std::size_t i = 0; i < n; ++i) {
            target[i] = std::max(members[i].max_w, members[i].min_w);
        }
    }
    double counted_sum = 0.0;
    for (double c : counted) {
        counted_sum += c;
    }
    const bool over = counted_sum > avail_w + kSameW;

    // 1. Falls (and allocations of nodes gone), written at once: always safe.
    std::vector<TxnOp> falls;
    for (const auto& entry : allocs) {
        const std::string& node = entry.first;
        const bool alive = std::any_of(members.begin(), members.end(),
                                       [&](const Member& m) { return m.node == node; });
        if (!alive) {
            falls.push_back(TxnOp::del(m_keys.alloc + node));
        }
    }
    for (std::size_t i = 0; i < n; ++i) {
        const double have = current[i] != nullptr ? current[i]->watts : counted[i];
        const double step = std::max(kMinChangeW, kMinChangeShare * target[i]);
        const bool needed = target[i] < counted[i] - kSameW &&
                            (over || have - target[i] >= step || current[i] == nullptr);
        if (needed && std::abs(have - target[i]) > kSameW) {
            falls.push_back(TxnOp::put(m_keys.alloc + members[i].node,
                                       alloc_json(target[i], counted[i], members[i].lease)));
        }
    }
    std::uint64_t writes = 0;
    if (!falls.empty()) {
        Result<TxnResult> w = m_store.txn({fence}, falls, {});
        if (!w.is_ok()) {
            note_error(w.status(), "writing allocations");
            return;
        }
        if (!w->succeeded) {
            m_leader_rev = 0;
            return;
        }
        writes += falls.size();
    }

    // 2. Raises, within what the counted sum leaves, and only if the budget and every
    // reservation are as read (a node that joined meanwhile has its floor counted first).
    // At a cold start (no allocation yet), the coordinator raises nothing for its first period:
    // nodes that start with it (their floors not yet reserved) have joined by then. A
    // coordinator that takes over from another one goes on at once.
    std::vector<TxnOp> raises;
    const bool settled = !allocs.empty() || m_clock.now() - m_leading_since >=
                                                std::max(m_options.period, m_options.poll * 2.0);
    for (std::size_t i = 0; settled && i < n; ++i) {
        if (!acked[i] || target[i] <= counted[i] + kSameW) {
            continue;
        }
        const double room = std::floor((avail_w - (counted_sum - counted[i])) * 1000.0) / 1000.0;
        const double give = std::min(target[i], room);
        const double step = std::max(kMinChangeW, kMinChangeShare * target[i]);
        if (give <= counted[i] + kSameW ||
            (current[i] != nullptr && give - current[i]->watts < step)) {
            continue;
        }
        raises.push_back(
            TxnOp::put(m_keys.alloc + members[i].node, alloc_json(give, give, members[i].lease)));
        counted_sum += give - counted[i];
        counted[i] = give;
    }
    if (!raises.empty()) {
        Result<TxnResult> w = m_store.txn({fence, Compare::unchanged_since(m_keys.budget, read_rev),
                                           Compare::unchanged_since(m_keys.nodes, read_rev)},
                                          raises, {});
        if (!w.is_ok()) {
            note_error(w.status(), "writing allocations");
            return;
        }
        if (w->succeeded) {
            writes += raises.size();
        }
    }

    ++m_snap.rounds_total;
    m_snap.allocation_writes_total += writes;
    m_snap.members = static_cast<int>(n);
    m_snap.reserved_w = reserved_w;
    m_snap.marginal_tok_per_j = plan.marginal_tok_per_j;
    m_snap.allocated_w = 0.0;
    m_snap.shares.clear();
    for (std::size_t i = 0; i < n; ++i) {
        m_snap.allocated_w += target[i];
        m_snap.shares.push_back({members[i].node, target[i], members[i].in_force_w,
                                 members[i].min_w, curve_tok_s(members[i].curve, target[i]),
                                 acked[i]});
    }
    m_snap.last_round_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
}

void ClusterAgent::publish_snapshot(double in_force_w) {
    m_snap.member = m_lease != 0;
    m_snap.coordinator = m_leader_rev != 0;
    m_snap.fallback = m_fallback;
    m_snap.leader = m_leader;
    m_snap.allocation_w = m_lease != 0 ? m_alloc_w : std::numeric_limits<double>::quiet_NaN();
    m_snap.node_budget_w = m_requested_w;
    m_snap.in_force_w = in_force_w;
    m_snap.since_contact_s = (m_clock.now() - m_renewed_at).count();
    if (!m_snap.coordinator) {
        m_snap.shares.clear();
    }
    m_port.publish(std::make_shared<const control::ClusterSnapshot>(m_snap));
}

void ClusterAgent::step() {
    Seconds now = m_clock.now();
    if (m_lease == 0) {
        join();
    } else if (now >= m_next_keepalive) {
        keep_alive();
    }
    if (m_lease != 0) {
        read_allocation();
    }
    now = m_clock.now();
    const double target = target_budget_w(now);
    if (std::abs(target - m_requested_w) > kSameW) {
        const bool falls = target < m_requested_w;
        m_port.request_budget(target);
        m_requested_w = target;
        if (falls) {
            // The daemon lowers its caps within its 0.1 s poll: acknowledge in this step, not
            // the next, since raises elsewhere wait for it.
            m_port.wait_in_force(target + kAckToleranceW, kFallWait);
        }
    }
    const double in_force_w = m_port.budget_in_force_w();
    if (m_lease != 0) {
        const bool ack_due = std::isfinite(m_alloc_w) && m_alloc_rev != m_acked_rev &&
                             in_force_w <= m_alloc_w + kAckToleranceW;
        const bool changed = std::abs(in_force_w - m_published_in_force_w) > kSameW;
        if (ack_due || changed || m_clock.now() >= m_next_publish) {
            publish_member(in_force_w);
        }
    }
    if (m_lease != 0 && m_leader_rev == 0 && m_clock.now() >= m_next_campaign) {
        campaign();
        m_next_campaign = m_clock.now() + m_options.poll * kCampaignEveryPolls;
    }
    if (m_fallback && m_leader_rev != 0) {
        // Out of reach for a third of the TTL: another node may lead by the time etcd answers.
        // Its writes are fenced anyway; stop saying it leads, and campaign again (which finds
        // its own leader key if the lease survived).
        m_leader_rev = 0;
        m_leader.clear();
    }
    if (m_lease != 0 && m_leader_rev != 0) {
        coordinate();
        if (m_leader_rev == 0) {
            m_leader.clear();
        }
    }
    Result<RangeResult> budget = m_store.range(m_keys.budget, false);
    if (budget.is_ok()) {
        const std::optional<double> w =
            budget->kvs.empty() ? std::nullopt : parse_budget(budget->kvs.front().value);
        m_snap.cluster_budget_w = w.value_or(std::numeric_limits<double>::infinity());
    }
    publish_snapshot(in_force_w);
}

void ClusterAgent::run(const std::atomic<bool>& stop) {
    while (!stop.load()) {
        step();
        const Seconds next = m_clock.now() + m_options.poll;
        // Short sleeps: a stop request is seen within 0.1 s.
        while (!stop.load() && m_clock.now() < next) {
            m_clock.sleep_until(std::min(next, m_clock.now() + Seconds(0.1)));
        }
    }
}

void ClusterAgent::leave() {
    if (m_lease == 0) {
        return;
    }
    if (Status s = m_store.revoke_lease(m_lease); !s.is_ok()) {
        PALS_LOG_WARN(
            "cluster: could not revoke lease {:x} ({}): its share is re-allocated when "
            "it expires",
            m_lease, s.message());
    } else {
        PALS_LOG_INFO("cluster: {} left (lease revoked; its floor of {:.0f} W stays reserved)",
                      m_options.node, m_options.floor_w);
    }
    m_lease = 0;
    m_leader_rev = 0;
}

Status ClusterAgent::set_cluster_budget(std::optional<double> watts) {
    if (!watts) {
        return m_store.del(m_keys.budget).status();
    }
    if (!std::isfinite(*watts) || *watts <= 0.0) {
        return Status::invalid_argument("the cluster budget must be a positive number of watts");
    }
    return m_store.put(m_keys.budget, fmt::format("{}", *watts)).status();
}

}  // namespace pals::cluster
