#include <algorithm>

#include "pals/cluster/cluster_store.hpp"

namespace pals::cluster {

std::string prefix_end(const std::string& prefix) {
    std::string end = prefix;
    while (!end.empty()) {
        auto& last = reinterpret_cast<unsigned char&>(end.back());
        if (last < 0xff) {
            ++last;
            return end;
        }
        end.pop_back();
    }
    return std::string(1, '\0');  // every key (etcd's "\0" range_end)
}

void InMemoryClusterStore::expire_leases_locked() {
    const Seconds now = m_clock.now();
    for (auto it = m_leases.begin(); it != m_leases.end();) {
        if (it->second.expires <= now) {
            const LeaseId id = it->first;
            bool deleted = false;
            for (auto kv = m_kvs.begin(); kv != m_kvs.end();) {
                if (kv->second.lease == id) {
                    kv = m_kvs.erase(kv);
                    deleted = true;
                } else {
                    ++kv;
                }
            }
            if (deleted) {
                ++m_revision;  // one revision for the lease's deletions, as etcd does
            }
            it = m_leases.erase(it);
        } else {
            ++it;
        }
    }
}

std::vector<KeyValue> InMemoryClusterStore::range_locked(const std::string& key,
                                                         bool prefix) const {
    std::vector<KeyValue> out;
    if (!prefix) {
        if (auto it = m_kvs.find(key); it != m_kvs.end()) {
            out.push_back(it->second);
        }
        return out;
    }
    for (auto it = m_kvs.lower_bound(key); it != m_kvs.end() && it->first.starts_with(key); ++it) {
        out.push_back(it->second);
    }
    return out;
}

void InMemoryClusterStore::put_locked(const std::string& key, const std::string& value,
                                      LeaseId lease) {
    KeyValue& kv = m_kvs[key];
    if (kv.create_revision == 0) {
        kv.key = key;
        kv.create_revision = m_revision;
        kv.version = 0;
    }
    kv.value = value;
    kv.mod_revision = m_revision;
    ++kv.version;
    kv.lease = lease;
    ++m_writes;
}

std::int64_t InMemoryClusterStore::del_locked(const std::string& key, bool prefix) {
    std::int64_t n = 0;
    if (!prefix) {
        n = static_cast<std::int64_t>(m_kvs.erase(key));
    } else {
        auto it = m_kvs.lower_bound(key);
        while (it != m_kvs.end() && it->first.starts_with(key)) {
            it = m_kvs.erase(it);
            ++n;
        }
    }
    m_writes += static_cast<std::uint64_t>(n);
    return n;
}

bool InMemoryClusterStore::holds_locked(const Compare& c) const {
    if (c.prefix) {
        Compare one = c;
        one.prefix = false;
        for (auto it = m_kvs.lower_bound(c.key); it != m_kvs.end() && it->first.starts_with(c.key);
             ++it) {
            one.key = it->first;
            if (!holds_locked(one)) {
                return false;
            }
        }
        return true;
    }
    auto it = m_kvs.find(c.key);
    const KeyValue* kv = it != m_kvs.end() ? &it->second : nullptr;
    auto cmp = [&](auto a, auto b) {
        switch (c.op) {
            case Compare::Op::kEqual:
                return a == b;
            case Compare::Op::kNotEqual:
                return a != b;
            case Compare::Op::kLess:
                return a < b;
            case Compare::Op::kGreater:
                return a > b;
        }
        return false;
    };
    switch (c.target) {
        case Compare::Target::kCreate:
            return cmp(kv != nullptr ? kv->create_revision : 0, c.number);
        case Compare::Target::kMod:
            return cmp(kv != nullptr ? kv->mod_revision : 0, c.number);
        case Compare::Target::kVersion:
            return cmp(kv != nullptr ? kv->version : 0, c.number);
        case Compare::Target::kLease:
            return cmp(kv != nullptr ? kv->lease : 0, c.number);
        case Compare::Target::kValue:
            // etcd: a value comparison on a missing key fails.
            return kv != nullptr && cmp(kv->value, c.value);
    }
    return false;
}

Result<RangeResult> InMemoryClusterStore::range(const std::string& key, bool prefix) {
    std::lock_guard<std::mutex> lock(m_mutex);
    expire_leases_locked();
    return RangeResult{range_locked(key, prefix), m_revision};
}

Result<std::int64_t> InMemoryClusterStore::put(const std::string& key, const std::string& value,
                                               LeaseId lease) {
    std::lock_guard<std::mutex> lock(m_mutex);
    expire_leases_locked();
    if (lease != 0 && m_leases.count(lease) == 0U) {
        return Status::not_found("etcdserver: requested lease not found");
    }
    ++m_revision;
    put_locked(key, value, lease);
    return m_revision;
}

Result<std::int64_t> InMemoryClusterStore::del(const std::string& key, bool prefix) {
    std::lock_guard<std::mutex> lock(m_mutex);
    expire_leases_locked();
    ++m_revision;
    const std::int64_t n = del_locked(key, prefix);
    if (n == 0) {
        --m_revision;  // etcd does not bump the revision for a delete of nothing
    }
    return n;
}

Result<TxnResult> InMemoryClusterStore::txn(const std::vector<Compare>& compares,
                                            const std::vector<TxnOp>& success,
                                            const std::vector<TxnOp>& failure) {
    std::lock_guard<std::mutex> lock(m_mutex);
    expire_leases_locked();
    TxnResult result;
    result.succeeded = std::all_of(compares.begin(), compares.end(),
                                   [&](const Compare& c) { return holds_locked(c); });
    const std::vector<TxnOp>& ops = result.succeeded ? success : failure;
    for (const TxnOp& op : ops) {
        if (op.kind == TxnOp::Kind::kPut && op.lease != 0 && m_leases.count(op.lease) == 0U) {
            return Status::not_found("etcdserver: requested lease not found");
        }
    }
    const bool writes = std::any_of(ops.begin(), ops.end(),
                                    [](const TxnOp& op) { return op.kind != TxnOp::Kind::kRange; });
    if (writes) {
        ++m_revision;  // one revision for the whole transaction
    }
    for (const TxnOp& op : ops) {
        switch (op.kind) {
            case TxnOp::Kind::kPut:
                put_locked(op.key, op.value, op.lease);
                break;
            case TxnOp::Kind::kDelete:
                del_locked(op.key, op.prefix);
                break;
            case TxnOp::Kind::kRange:
                result.ranges.push_back(range_locked(op.key, op.prefix));
                break;
        }
    }
    result.revision = m_revision;
    return result;
}

Result<LeaseId> InMemoryClusterStore::grant_lease(std::int64_t ttl_s) {
    std::lock_guard<std::mutex> lock(m_mutex);
    expire_leases_locked();
    const LeaseId id = m_next_lease++;
    const std::int64_t ttl = std::max<std::int64_t>(1, ttl_s);
    m_leases[id] = Lease{ttl, m_clock.now() + Seconds(static_cast<double>(ttl))};
    return id;
}

Result<std::int64_t> InMemoryClusterStore::keep_alive(LeaseId lease) {
    std::lock_guard<std::mutex> lock(m_mutex);
    expire_leases_locked();
    auto it = m_leases.find(lease);
    if (it == m_leases.end()) {
        return Status::not_found("lease expired or revoked");
    }
    it->second.expires = m_clock.now() + Seconds(static_cast<double>(it->second.ttl_s));
    return it->second.ttl_s;
}

Status InMemoryClusterStore::revoke_lease(LeaseId lease) {
    std::lock_guard<std::mutex> lock(m_mutex);
    expire_leases_locked();
    if (m_leases.erase(lease) == 0U) {
        return Status::ok();
    }
    bool deleted = false;
    for (auto kv = m_kvs.begin(); kv != m_kvs.end();) {
        if (kv->second.lease == lease) {
            kv = m_kvs.erase(kv);
            deleted = true;
        } else {
            ++kv;
        }
    }
    if (deleted) {
        ++m_revision;
    }
    return Status::ok();
}

std::int64_t InMemoryClusterStore::revision() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_revision;
}

std::uint64_t InMemoryClusterStore::writes_total() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_writes;
}

// ---- PartitionableStore --------------------------------------------------------------------

Status PartitionableStore::check() const {
    return connected() ? Status::ok() : Status::unavailable("etcd unreachable (partitioned)");
}

Result<RangeResult> PartitionableStore::range(const std::string& key, bool prefix) {
    PALS_RETURN_IF_ERROR(check());
    return m_inner.range(key, prefix);
}

Result<std::int64_t> PartitionableStore::put(const std::string& key, const std::string& value,
                                             LeaseId lease) {
    PALS_RETURN_IF_ERROR(check());
    return m_inner.put(key, value, lease);
}

Result<std::int64_t> PartitionableStore::del(const std::string& key, bool prefix) {
    PALS_RETURN_IF_ERROR(check());
    return m_inner.del(key, prefix);
}

Result<TxnResult> PartitionableStore::txn(const std::vector<Compare>& compares,
                                          const std::vector<TxnOp>& success,
                                          const std::vector<TxnOp>& failure) {
    PALS_RETURN_IF_ERROR(check());
    return m_inner.txn(compares, success, failure);
}

Result<LeaseId> PartitionableStore::grant_lease(std::int64_t ttl_s) {
    PALS_RETURN_IF_ERROR(check());
    return m_inner.grant_lease(ttl_s);
}

Result<std::int64_t> PartitionableStore::keep_alive(LeaseId lease) {
    PALS_RETURN_IF_ERROR(check());
    return m_inner.keep_alive(lease);
}

Status PartitionableStore::revoke_lease(LeaseId lease) {
    PALS_RETURN_IF_ERROR(check());
    return m_inner.revoke_lease(lease);
}

}  // namespace pals::cluster
