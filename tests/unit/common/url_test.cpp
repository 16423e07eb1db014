#include "pals/common/url.hpp"

#include <gtest/gtest.h>

#include "status_assertions.hpp"

namespace pals {
namespace {

TEST(UrlTest, SchemeHostPortAndPrefix) {
    Result<Url> url = Url::parse("http://10.0.0.2:8000/proxy/");
    ASSERT_OK(url);
    EXPECT_EQ(url->scheme, "http");
    EXPECT_EQ(url->host, "10.0.0.2");
    EXPECT_EQ(url->port, 8000);
    EXPECT_TRUE(url->port_given);
    EXPECT_EQ(url->path_prefix, "/proxy");
    EXPECT_EQ(url->origin(), "http://10.0.0.2:8000");
}

TEST(UrlTest, DefaultPortsAndIpv6) {
    Result<Url> plain = Url::parse("https://example.org");
    ASSERT_OK(plain);
    EXPECT_EQ(plain->port, 443);
    EXPECT_FALSE(plain->port_given);
    Result<Url> v6 = Url::parse("http://[::1]:9000");
    ASSERT_OK(v6);
    EXPECT_EQ(v6->host, "::1");
    EXPECT_EQ(v6->origin(), "http://[::1]:9000");
}

TEST(UrlTest, ErrorsQuoteTheText) {
    EXPECT_STATUS(Url::parse("h:8000"), StatusCode::kInvalidArgument, "'h:8000' is not a URL");
    EXPECT_STATUS(Url::parse("ftp://h:1"), StatusCode::kInvalidArgument, "only http://");
    EXPECT_STATUS(Url::parse("http://h:99999"), StatusCode::kInvalidArgument,
                  "the port must be an integer in 1-65535");
    EXPECT_STATUS(Url::parse("http://h:"), StatusCode::kInvalidArgument, "the port must be");
    EXPECT_STATUS(Url::parse("http://:8000"), StatusCode::kInvalidArgument, "has no host");
    EXPECT_STATUS(Url::parse("http://[::1:80"), StatusCode::kInvalidArgument, "unclosed '['");
    EXPECT_STATUS(Url::parse("http://::1:80"), StatusCode::kInvalidArgument, "in brackets");
}

TEST(HostPortTest, ListenAddresses) {
    Result<HostPort> any = parse_host_port("0.0.0.0:0", 0);
    ASSERT_OK(any);
    EXPECT_EQ(any->host, "0.0.0.0");
    EXPECT_EQ(any->port, 0);
    Result<HostPort> v6 = parse_host_port("[::1]:9400", 0);
    ASSERT_OK(v6);
    EXPECT_EQ(v6->host, "::1");
    EXPECT_EQ(v6->port, 9400);
    EXPECT_STATUS(parse_host_port("localhost", 0), StatusCode::kInvalidArgument,
                  "'localhost' has no port");
    EXPECT_STATUS(parse_host_port("h:0", 1), StatusCode::kInvalidArgument, "in 1-65535");
    EXPECT_STATUS(parse_host_port(":80", 0), StatusCode::kInvalidArgument, "has no host");
    EXPECT_STATUS(parse_host_port("[::1]", 0), StatusCode::kInvalidArgument, "has no port");
}

}  // namespace
}  // namespace pals
