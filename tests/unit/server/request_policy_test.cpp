// Host / Origin / Content-Type policy: the DNS-rebinding and simple-request cases of issue 17 row 9.
#include <gtest/gtest.h>

#include "server/request_policy.h"

namespace hr::server::http {

TEST(RequestPolicy, DefaultAcceptsLoopbackNamesAndTheBoundAddress) {
    const HostPolicy p = make_host_policy("127.0.0.1", {}, {});
    for (const char* h : {"localhost", "localhost:8080", "LOCALHOST:1", "127.0.0.1:8080", "[::1]:8080", "::1",
                          "app.localhost:3000", "localhost.", ""}) {
        EXPECT_TRUE(host_allowed(p, h)) << h;
    }
    for (const char* h : {"evil.example", "evil.example:8080", "127.0.0.1.nip.io", "localhost.evil.example",
                          "10.0.0.1", "localhost:80x", "[::1", "localhost:"}) {
        EXPECT_FALSE(host_allowed(p, h)) << h;
    }
    const HostPolicy q = make_host_policy("10.1.2.3", {}, {});
    EXPECT_TRUE(host_allowed(q, "10.1.2.3:8080"));
    EXPECT_FALSE(host_allowed(q, "10.1.2.4:8080"));
}

TEST(RequestPolicy, WildcardBindAcceptsIpLiteralsButNotNames) {
    const HostPolicy p = make_host_policy("0.0.0.0", {}, {});
    EXPECT_TRUE(host_allowed(p, "10.0.0.7:8080"));
    EXPECT_TRUE(host_allowed(p, "[fd00::1]:8080"));
    EXPECT_FALSE(host_allowed(p, "rebind.evil.example"));
    EXPECT_FALSE(origin_allowed(p, "http://10.0.0.7:8080"));  // a page is not a host
}

TEST(RequestPolicy, AllowListsExtendTheDefault) {
    const HostPolicy p = make_host_policy("127.0.0.1", split_list(" api.example , svc.ns:8080,"),
                                          split_list("https://app.example/"));
    EXPECT_TRUE(host_allowed(p, "api.example"));
    EXPECT_TRUE(host_allowed(p, "svc.ns:9000"));
    EXPECT_TRUE(host_allowed(p, "localhost"));
    EXPECT_FALSE(host_allowed(p, "other.example"));
    EXPECT_TRUE(origin_allowed(p, "https://app.example"));
    EXPECT_FALSE(origin_allowed(p, "http://app.example"));
    EXPECT_TRUE(origin_allowed(p, "http://api.example:8443"));  // the host of an allowed Host
    EXPECT_TRUE(origin_allowed(p, "http://localhost:3000"));
    EXPECT_FALSE(origin_allowed(p, "null"));
    EXPECT_FALSE(origin_allowed(p, "http://evil.example"));
    EXPECT_FALSE(origin_allowed(p, "http://localhost@evil.example"));
    EXPECT_FALSE(origin_allowed(p, "file://localhost"));
    const HostPolicy any = make_host_policy("127.0.0.1", {"*"}, {});
    EXPECT_TRUE(host_allowed(any, "anything.example"));
    EXPECT_FALSE(origin_allowed(any, "http://anything.example"));  // "*" for hosts does not open origins
    EXPECT_TRUE(origin_allowed(make_host_policy("127.0.0.1", {}, {"*"}), "http://x.example"));
}

TEST(RequestPolicy, OnlyJsonBodies) {
    EXPECT_TRUE(is_json_content_type("application/json"));
    EXPECT_TRUE(is_json_content_type("Application/JSON; charset=utf-8"));
    EXPECT_FALSE(is_json_content_type(""));
    EXPECT_FALSE(is_json_content_type("text/plain"));
    EXPECT_FALSE(is_json_content_type("application/x-www-form-urlencoded"));
    EXPECT_FALSE(is_json_content_type("application/jsonp"));
}

}  // namespace hr::server::http
