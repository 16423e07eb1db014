#pragma once
/// @file cluster_store.hpp
/// @brief The key-value store the nodes of a cluster coordinate through (docs/cluster.md): the
/// part of etcd v3's API PALS uses — ranges, puts, deletes, transactions that compare revisions,
/// leases — behind one interface with two implementations: EtcdClusterStore (etcd's JSON gRPC
/// gateway over HTTP, etcd_store.hpp) and InMemoryClusterStore (one process: unit tests and the
/// simulated cluster of `pals evaluate --cluster`).
///
/// Semantics follow etcd: every write bumps one store-wide revision; a key carries the revision
/// that created it (create_revision, 0 = absent in a comparison) and the one that last changed it
/// (mod_revision); a key put under a lease is deleted when the lease expires or is revoked. No
/// decision that must be unique is taken outside this store: the coordinator election and every
/// allocation write are transactions (txn) whose comparisons etcd evaluates atomically.
///
/// Thread-safety: implementations are thread-safe (the daemon's agent thread and HTTP workers
/// call the same store).

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "pals/common/clock.hpp"
#include "pals/common/status.hpp"

namespace pals::cluster {

/// A lease id (etcd's int64; 0 = no lease).
using LeaseId = std::int64_t;

/// One key as a range returns it.
struct KeyValue {
    std::string key;
    std::string value;
    std::int64_t create_revision = 0;
    std::int64_t mod_revision = 0;
    std::int64_t version = 0;
    LeaseId lease = 0;
};

/// One comparison of a transaction (etcd's Compare).
struct Compare {
    enum class Target { kCreate, kMod, kVersion, kValue, kLease };
    enum class Op { kEqual, kNotEqual, kLess, kGreater };
    std::string key;
    Target target = Target::kCreate;
    Op op = Op::kEqual;
    std::int64_t number = 0;  ///< for kCreate, kMod, kVersion, kLease
    std::string value;        ///< for kValue
    /// Compare every key starting with `key` (etcd's range_end): all must hold; an empty range
    /// holds.
    bool prefix = false;

    /// create_revision(key) == revision (0: the key does not exist).
    static Compare created_at(std::string key, std::int64_t revision) {
        return {std::move(key), Target::kCreate, Op::kEqual, revision, {}, false};
    }
    /// Nothing under `prefix` was written after `revision` (mod_revision < revision + 1).
    static Compare unchanged_since(std::string prefix, std::int64_t revision) {
        return {std::move(prefix), Target::kMod, Op::kLess, revision + 1, {}, true};
    }
    static Compare value_is(std::string key, std::string value) {
        return {std::move(key), Target::kValue, Op::kEqual, 0, std::move(value), false};
    }
};

/// One operation of a transaction branch.
struct TxnOp {
    enum class Kind { kPut, kDelete, kRange };
    Kind kind = Kind::kPut;
    std::string key;
    std::string value;    ///< kPut
    LeaseId lease = 0;    ///< kPut
    bool prefix = false;  ///< kDelete / kRange: every key starting with `key`

    static TxnOp put(std::string key, std::string value, LeaseId lease = 0) {
        return {Kind::kPut, std::move(key), std::move(value), lease, false};
    }
    static TxnOp del(std::string key, bool prefix = false) {
        return {Kind::kDelete, std::move(key), {}, 0, prefix};
    }
    static TxnOp range(std::string key, bool prefix = false) {
        return {Kind::kRange, std::move(key), {}, 0, prefix};
    }
};

/// What a transaction did.
struct TxnResult {
    bool succeeded = false;
    std::int64_t revision = 0;  ///< the store's revision after the transaction
    /// Per kRange operation of the branch taken, in order: the keys it read.
    std::vector<std::vector<KeyValue>> ranges;
};

/// A range read and the store's revision when it was read.
struct RangeResult {
    std::vector<KeyValue> kvs;
    std::int64_t revision = 0;
};

/// The store. Errors: kUnavailable when no endpoint answers (the caller retries later),
/// kNotFound for an unknown or expired lease, kPermissionDenied for refused credentials,
/// kInvalidArgument for a malformed answer.
class ClusterStore {
public:
    virtual ~ClusterStore() = default;

    /// The keys `key` (prefix false) or every key starting with `key`, in key order.
    [[nodiscard]] virtual Result<RangeResult> range(const std::string& key, bool prefix) = 0;
    /// Puts `value` at `key` (under `lease` unless 0). Returns the new revision.
    [[nodiscard]] virtual Result<std::int64_t> put(const std::string& key, const std::string& value,
                                                   LeaseId lease = 0) = 0;
    /// Deletes `key` (or the prefix). Returns the number of keys deleted.
    [[nodiscard]] virtual Result<std::int64_t> del(const std::string& key, bool prefix = false) = 0;
    /// If every comparison holds, runs `success`, else `failure`, atomically.
    [[nodiscard]] virtual Result<TxnResult> txn(const std::vector<Compare>& compares,
                                                const std::vector<TxnOp>& success,
                                                const std::vector<TxnOp>& failure) = 0;
    /// A new lease of `ttl_s` seconds (the server may round it up).
    [[nodiscard]] virtual Result<LeaseId> grant_lease(std::int64_t ttl_s) = 0;
    /// Renews the lease; returns its TTL, s. kNotFound when it expired or was revoked.
    [[nodiscard]] virtual Result<std::int64_t> keep_alive(LeaseId lease) = 0;
    /// Revokes the lease (its keys go at once). Revoking an unknown lease is ok.
    [[nodiscard]] virtual Status revoke_lease(LeaseId lease) = 0;
    /// Where it connects, for logs ("etcd http://127.0.0.1:2379,...", "in-process").
    [[nodiscard]] virtual std::string describe() const = 0;
};

/// The store in one process, with etcd's semantics (revisions, leases, transactions). Leases
/// expire by the injected clock, checked at every call. A client view (`connect()`) can be cut
/// off to simulate a node that loses etcd.
///
/// Thread-safety: thread-safe (one mutex); the clock must be safe to read from the calling
/// threads (SystemClock, or a ManualClock driven by the single thread that calls).
class InMemoryClusterStore final : public ClusterStore {
public:
    explicit InMemoryClusterStore(const Clock& clock) : m_clock(clock) {}

    Result<RangeResult> range(const std::string& key, bool prefix) override;
    Result<std::int64_t> put(const std::string& key, const std::string& value,
                             LeaseId lease = 0) override;
    Result<std::int64_t> del(const std::string& key, bool prefix = false) override;
    Result<TxnResult> txn(const std::vector<Compare>& compares, const std::vector<TxnOp>& success,
                          const std::vector<TxnOp>& failure) override;
    Result<LeaseId> grant_lease(std::int64_t ttl_s) override;
    Result<std::int64_t> keep_alive(LeaseId lease) override;
    Status revoke_lease(LeaseId lease) override;
    [[nodiscard]] std::string describe() const override { return "in-process store"; }

    /// The store's revision now.
    [[nodiscard]] std::int64_t revision() const;
    /// Writes done so far (puts and deletes, transactions counted per operation).
    [[nodiscard]] std::uint64_t writes_total() const;

private:
    struct Lease {
        std::int64_t ttl_s = 0;
        Seconds expires{0.0};
    };
    void expire_leases_locked();
    std::vector<KeyValue> range_locked(const std::string& key, bool prefix) const;
    void put_locked(const std::string& key, const std::string& value, LeaseId lease);
    std::int64_t del_locked(const std::string& key, bool prefix);
    [[nodiscard]] bool holds_locked(const Compare& c) const;

    const Clock& m_clock;
    mutable std::mutex m_mutex;
    std::map<std::string, KeyValue> m_kvs;
    std::map<LeaseId, Lease> m_leases;
    std::int64_t m_revision = 1;
    LeaseId m_next_lease = 0x1000;
    std::uint64_t m_writes = 0;
};

/// A view of another store that can be disconnected: every call fails with kUnavailable while
/// cut off (a node that lost its network to etcd). Tests and the simulated cluster only.
///
/// Thread-safety: as the wrapped store; set_connected() may be called from any thread.
class PartitionableStore final : public ClusterStore {
public:
    explicit PartitionableStore(ClusterStore& inner) : m_inner(inner) {}
    void set_connected(bool connected) {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_connected = connected;
    }
    [[nodiscard]] bool connected() const {
        std::lock_guard<std::mutex> lock(m_mutex);
        return m_connected;
    }

    Result<RangeResult> range(const std::string& key, bool prefix) override;
    Result<std::int64_t> put(const std::string& key, const std::string& value,
                             LeaseId lease = 0) override;
    Result<std::int64_t> del(const std::string& key, bool prefix = false) override;
    Result<TxnResult> txn(const std::vector<Compare>& compares, const std::vector<TxnOp>& success,
                          const std::vector<TxnOp>& failure) override;
    Result<LeaseId> grant_lease(std::int64_t ttl_s) override;
    Result<std::int64_t> keep_alive(LeaseId lease) override;
    Status revoke_lease(LeaseId lease) override;
    [[nodiscard]] std::string describe() const override { return m_inner.describe(); }

private:
    [[nodiscard]] Status check() const;
    ClusterStore& m_inner;
    mutable std::mutex m_mutex;
    bool m_connected = true;
};

/// The key just after every key starting with `prefix` (etcd's range_end for a prefix).
[[nodiscard]] std::string prefix_end(const std::string& prefix);

}  // namespace pals::cluster
