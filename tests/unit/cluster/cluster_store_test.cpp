#include "pals/cluster/cluster_store.hpp"

#include <gtest/gtest.h>

#include "pals/cluster/etcd_store.hpp"
#include "status_assertions.hpp"

namespace pals::cluster {
namespace {

TEST(InMemoryClusterStoreTest, RevisionsAndRanges) {
    ManualClock clock;
    InMemoryClusterStore store(clock);
    const std::int64_t r1 = store.put("/a/1", "x").value();
    const std::int64_t r2 = store.put("/a/2", "y").value();
    EXPECT_GT(r2, r1);
    ASSERT_OK(store.put("/b", "z"));
    ASSERT_OK(store.put("/a/1", "x2"));
    RangeResult r = store.range("/a/", true).value();
    ASSERT_EQ(r.kvs.size(), 2U);
    EXPECT_EQ(r.kvs[0].key, "/a/1");
    EXPECT_EQ(r.kvs[0].value, "x2");
    EXPECT_EQ(r.kvs[0].create_revision, r1);
    EXPECT_GT(r.kvs[0].mod_revision, r2);
    EXPECT_EQ(r.kvs[0].version, 2);
    EXPECT_EQ(store.del("/a/", true).value(), 2);
    EXPECT_TRUE(store.range("/a/", true).value().kvs.empty());
    EXPECT_EQ(store.range("/b", false).value().kvs.size(), 1U);
}

TEST(InMemoryClusterStoreTest, TxnCreatesOnlyOnce) {
    ManualClock clock;
    InMemoryClusterStore store(clock);
    auto elect = [&](const std::string& who) {
        return store
            .txn({Compare::created_at("/leader", 0)}, {TxnOp::put("/leader", who)},
                 {TxnOp::range("/leader")})
            .value();
    };
    const TxnResult first = elect("a");
    EXPECT_TRUE(first.succeeded);
    const TxnResult second = elect("b");
    EXPECT_FALSE(second.succeeded);
    ASSERT_EQ(second.ranges.size(), 1U);
    ASSERT_EQ(second.ranges[0].size(), 1U);
    EXPECT_EQ(second.ranges[0][0].value, "a");
    EXPECT_EQ(second.ranges[0][0].create_revision, first.revision);
    // A write fenced on the leader key's create revision.
    EXPECT_TRUE(
        store.txn({Compare::created_at("/leader", first.revision)}, {TxnOp::put("/x", "1")}, {})
            .value()
            .succeeded);
    EXPECT_FALSE(
        store.txn({Compare::created_at("/leader", first.revision + 1)}, {TxnOp::put("/x", "2")}, {})
            .value()
            .succeeded);
}

TEST(InMemoryClusterStoreTest, PrefixCompareSeesAnyWriteSince) {
    ManualClock clock;
    InMemoryClusterStore store(clock);
    ASSERT_OK(store.put("/n/a", "1"));
    const std::int64_t read = store.revision();
    EXPECT_TRUE(store.txn({Compare::unchanged_since("/n/", read)}, {}, {}).value().succeeded);
    ASSERT_OK(store.put("/n/b", "1"));
    EXPECT_FALSE(store.txn({Compare::unchanged_since("/n/", read)}, {}, {}).value().succeeded);
    // An empty range holds.
    EXPECT_TRUE(store.txn({Compare::unchanged_since("/none/", 0)}, {}, {}).value().succeeded);
}

TEST(InMemoryClusterStoreTest, LeaseExpiryDeletesItsKeys) {
    ManualClock clock;
    InMemoryClusterStore store(clock);
    const LeaseId lease = store.grant_lease(3).value();
    ASSERT_OK(store.put("/m/a", "x", lease));
    ASSERT_OK(store.put("/keep", "y"));
    clock.advance(Seconds(2.0));
    EXPECT_EQ(store.keep_alive(lease).value(), 3);
    clock.advance(Seconds(2.9));
    EXPECT_EQ(store.range("/m/a", false).value().kvs.size(), 1U);
    clock.advance(Seconds(0.2));
    EXPECT_TRUE(store.range("/m/a", false).value().kvs.empty());
    EXPECT_EQ(store.range("/keep", false).value().kvs.size(), 1U);
    EXPECT_STATUS(store.keep_alive(lease), StatusCode::kNotFound, "expired");
    EXPECT_STATUS(store.put("/m/b", "x", lease), StatusCode::kNotFound, "lease");
}

TEST(InMemoryClusterStoreTest, RevokeDeletesAtOnce) {
    ManualClock clock;
    InMemoryClusterStore store(clock);
    const LeaseId lease = store.grant_lease(30).value();
    ASSERT_OK(store.put("/m/a", "x", lease));
    ASSERT_OK(store.revoke_lease(lease));
    EXPECT_TRUE(store.range("/m/a", false).value().kvs.empty());
    EXPECT_OK(store.revoke_lease(lease));  // unknown: ok
}

TEST(PartitionableStoreTest, CutOffFailsEveryCall) {
    ManualClock clock;
    InMemoryClusterStore store(clock);
    PartitionableStore view(store);
    ASSERT_OK(view.put("/a", "1"));
    view.set_connected(false);
    EXPECT_STATUS(view.range("/a", false), StatusCode::kUnavailable, "unreachable");
    EXPECT_STATUS(view.grant_lease(5), StatusCode::kUnavailable, "unreachable");
    view.set_connected(true);
    EXPECT_OK(view.range("/a", false));
}

TEST(EtcdWireTest, Base64RoundTrip) {
    for (const std::string& s : std::vector<std::string>{
             "", "f", "fo", "foo", "foob", "fooba", "foobar", std::string("\0\xff\x10/pals/", 9)}) {
        EXPECT_EQ(base64_decode(base64_encode(s)).value(), s);
    }
    EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
    EXPECT_EQ(base64_encode("fo"), "Zm8=");
    EXPECT_STATUS(base64_decode("Zm9v!"), StatusCode::kInvalidArgument, "base64");
}

TEST(EtcdWireTest, PrefixEnd) {
    EXPECT_EQ(prefix_end("/pals/a/"), "/pals/a0");
    EXPECT_EQ(prefix_end(std::string("a\xff", 2)), "b");
}

TEST(EtcdClusterStoreTest, CreateChecksEndpoints) {
    EXPECT_STATUS(EtcdClusterStore::create({}), StatusCode::kInvalidArgument, "no etcd endpoint");
    EtcdOptions bad;
    bad.endpoints = {"http://127.0.0.1:2379/v3"};
    EXPECT_STATUS(EtcdClusterStore::create(bad), StatusCode::kInvalidArgument, "without a path");
    EtcdOptions tls;
    tls.endpoints = {"https://127.0.0.1:2379"};
    tls.ca_file = "/nonexistent/ca.pem";
    EXPECT_STATUS(EtcdClusterStore::create(tls), StatusCode::kNotFound, "ca.pem");
}

TEST(EtcdClusterStoreTest, NoEndpointAnsweringIsUnavailable) {
    EtcdOptions o;
    // Port 1 on loopback: refused at once, on both endpoints.
    o.endpoints = {"http://127.0.0.1:1", "http://127.0.0.1:1"};
    auto store = EtcdClusterStore::create(o).value();
    EXPECT_STATUS(store->range("/x", false), StatusCode::kUnavailable, "127.0.0.1:1");
}

}  // namespace
}  // namespace pals::cluster
