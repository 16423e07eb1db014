// EtcdClusterStore against a real etcd over TLS, with a client certificate, and with etcd
// authentication on top (then a certificate without a CommonName: etcd's gateway refuses a CN
// once authentication is on), and failover past a dead endpoint (docs/cluster.md). Skipped
// unless tests/e2e/test_etcd_tls.py started that etcd and set PALS_TEST_ETCD_* (ctest
// e2e.etcd_tls); the plain-HTTP path is e2e.cluster's.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "pals/cluster/etcd_store.hpp"
#include "status_assertions.hpp"

namespace pals::cluster {
namespace {

std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v == nullptr ? std::string() : std::string(v);
}

EtcdOptions live_options() {
    EtcdOptions o;
    // A dead endpoint first: every call must fail over to the live one.
    o.endpoints = {"https://127.0.0.1:1", env("PALS_TEST_ETCD_ENDPOINT")};
    o.ca_file = env("PALS_TEST_ETCD_CA");
    o.cert_file = env("PALS_TEST_ETCD_CERT");
    o.key_file = env("PALS_TEST_ETCD_KEY");
    o.user = env("PALS_TEST_ETCD_USER");
    o.password = env("PALS_TEST_ETCD_PASSWORD");
    return o;
}

TEST(EtcdLiveTest, TlsCredentialsAndFailover) {
    if (env("PALS_TEST_ETCD_ENDPOINT").empty()) {
        GTEST_SKIP() << "no etcd (ctest e2e.etcd_tls starts one)";
    }
    auto store = EtcdClusterStore::create(live_options());
    ASSERT_OK(store);
    EtcdClusterStore& s = *store.value();
    ASSERT_OK(s.put("/pals/t/a", "1"));
    ASSERT_OK(s.put("/pals/t/b", std::string("\0\xff", 2)));
    RangeResult r = s.range("/pals/t/", true).value();
    ASSERT_EQ(r.kvs.size(), 2U);
    EXPECT_EQ(r.kvs[1].value, std::string("\0\xff", 2));
    EXPECT_GT(r.revision, 0);
    EXPECT_GE(s.failovers_total(), 1U);

    // The election transaction: once only.
    const LeaseId lease = s.grant_lease(5).value();
    TxnResult first =
        s.txn({Compare::created_at("/pals/t/leader", 0)},
              {TxnOp::put("/pals/t/leader", "me", lease)}, {TxnOp::range("/pals/t/leader")})
            .value();
    EXPECT_TRUE(first.succeeded);
    TxnResult second =
        s.txn({Compare::created_at("/pals/t/leader", 0)},
              {TxnOp::put("/pals/t/leader", "you", lease)}, {TxnOp::range("/pals/t/leader")})
            .value();
    EXPECT_FALSE(second.succeeded);
    ASSERT_EQ(second.ranges.size(), 1U);
    ASSERT_EQ(second.ranges[0].size(), 1U);
    EXPECT_EQ(second.ranges[0][0].value, "me");
    EXPECT_EQ(second.ranges[0][0].lease, lease);
    EXPECT_EQ(second.ranges[0][0].create_revision, first.revision);
    // Prefix comparison (range_end in Compare).
    EXPECT_TRUE(
        s.txn({Compare::unchanged_since("/pals/t/", first.revision)}, {}, {}).value().succeeded);
    EXPECT_FALSE(s.txn({Compare::unchanged_since("/pals/t/", first.revision - 1)}, {}, {})
                     .value()
                     .succeeded);

    EXPECT_EQ(s.keep_alive(lease).value(), 5);
    ASSERT_OK(s.revoke_lease(lease));
    EXPECT_TRUE(s.range("/pals/t/leader", false).value().kvs.empty());
    EXPECT_STATUS(s.keep_alive(lease), StatusCode::kNotFound, "expired");
    EXPECT_OK(s.revoke_lease(lease));
    EXPECT_EQ(s.del("/pals/t/", true).value(), 2);
}

TEST(EtcdLiveTest, AWrongPasswordIsRefused) {
    if (env("PALS_TEST_ETCD_USER").empty()) {
        GTEST_SKIP() << "no etcd with authentication (ctest e2e.etcd_tls starts one)";
    }
    EtcdOptions o = live_options();
    o.password = "wrong";
    auto store = EtcdClusterStore::create(o);
    ASSERT_OK(store);
    EXPECT_STATUS(store.value()->range("/pals/t/", true), StatusCode::kPermissionDenied, "etcd");
}

TEST(EtcdLiveTest, AnUntrustedServerIsRefused) {
    if (env("PALS_TEST_ETCD_ENDPOINT").empty()) {
        GTEST_SKIP() << "no etcd (ctest e2e.etcd_tls starts one)";
    }
    EtcdOptions o = live_options();
    o.endpoints = {env("PALS_TEST_ETCD_ENDPOINT")};
    o.ca_file = env("PALS_TEST_ETCD_OTHER_CA");  // a CA that did not sign the server
    auto store = EtcdClusterStore::create(o);
    ASSERT_OK(store);
    EXPECT_STATUS(store.value()->range("/pals/t/", true), StatusCode::kUnavailable, "");
}

}  // namespace
}  // namespace pals::cluster
