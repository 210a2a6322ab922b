// Which Host and Origin headers and which request Content-Types the server accepts. A keyless server on
// loopback is reachable from any web page the user opens: a page may POST to it without a preflight
// when the Content-Type is a "simple" one (text/plain), and DNS rebinding lets a page on evil.example
// read answers from 127.0.0.1 under its own name. Checking Host (the name the client used) and Origin
// (the page that sent it), and requiring application/json bodies, closes both.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace hr::server::http {

struct HostPolicy {
    std::vector<std::string> hosts;    // lower-case host names or addresses, without port or brackets
    std::vector<std::string> origins;  // exact origins ("https://app.example:8443"), lower-case
    bool any_host = false;             // "*" given
    bool any_origin = false;           // "*" given
    bool ip_literals = false;          // bound to a wildcard address: any IP-literal Host is accepted too
};

// The default: localhost names (localhost, *.localhost, 127.0.0.1, ::1) and the bound address, plus
// extra_hosts (--allowed-hosts) and extra_origins (--allowed-origins; an origin is also accepted when
// its host is an allowed host). "*" in either list accepts everything for that header.
HostPolicy make_host_policy(const std::string& bound_host, const std::vector<std::string>& extra_hosts,
                            const std::vector<std::string>& extra_origins);

// value: the Host header ("name", "name:port", "[v6]:port"). An empty value is accepted (HTTP/1.0
// clients and health checkers send none; browsers always send one).
bool host_allowed(const HostPolicy& p, std::string_view value);
// value: the Origin header; absent headers are not checked (only browsers send one). "null" is refused.
bool origin_allowed(const HostPolicy& p, std::string_view value);
// application/json, with optional parameters (charset=utf-8); case-insensitive.
bool is_json_content_type(std::string_view value);

// Splits a comma-separated flag value into its trimmed, non-empty items.
std::vector<std::string> split_list(std::string_view s);

}  // namespace hr::server::http
