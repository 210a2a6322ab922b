// Host / Origin / Content-Type policy (see request_policy.h).
#include "server/request_policy.h"

#include <algorithm>
#include <cctype>

namespace hr::server::http {

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// "name", "name:port", "[v6]", "[v6]:port" -> the name without brackets or port; "" when malformed.
std::string host_part(std::string_view v) {
    v = trim(v);
    if (v.empty()) return "";
    if (v.front() == '[') {
        const size_t close = v.find(']');
        if (close == std::string_view::npos) return "";
        std::string_view rest = v.substr(close + 1);
        if (!rest.empty() && (rest.front() != ':' || rest.size() == 1)) return "";
        return lower(v.substr(1, close - 1));
    }
    const size_t colon = v.find(':');
    if (colon != std::string_view::npos) {
        if (v.find(':', colon + 1) != std::string_view::npos) return lower(v);  // a bare IPv6 address
        std::string_view port = v.substr(colon + 1);
        if (port.empty() || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
            return "";
        v = v.substr(0, colon);
    }
    if (!v.empty() && v.back() == '.') v.remove_suffix(1);  // "localhost." is "localhost"
    return lower(v);
}

bool is_ip_literal(const std::string& h) {
    if (h.find(':') != std::string::npos) return true;  // IPv6 (brackets already removed)
    int dots = 0;
    for (char c : h) {
        if (c == '.') ++dots;
        else if (c < '0' || c > '9') return false;
    }
    return dots == 3;
}

bool ends_with(const std::string& s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// for_origin: the host of an Origin; "*" for hosts and the wildcard-bind rule do not extend to pages.
bool name_allowed(const HostPolicy& p, const std::string& h, bool for_origin) {
    if (h.empty()) return false;
    if (p.any_host && !for_origin) return true;
    if (ends_with(h, ".localhost")) return true;  // RFC 6761: always loopback
    if (std::find(p.hosts.begin(), p.hosts.end(), h) != p.hosts.end()) return true;
    return !for_origin && p.ip_literals && is_ip_literal(h);
}

}  // namespace

std::vector<std::string> split_list(std::string_view s) {
    std::vector<std::string> out;
    while (!s.empty()) {
        const size_t comma = s.find(',');
        std::string_view item = trim(s.substr(0, comma));
        if (!item.empty()) out.emplace_back(item);
        if (comma == std::string_view::npos) break;
        s.remove_prefix(comma + 1);
    }
    return out;
}

HostPolicy make_host_policy(const std::string& bound_host, const std::vector<std::string>& extra_hosts,
                            const std::vector<std::string>& extra_origins) {
    HostPolicy p;
    p.hosts = {"localhost", "127.0.0.1", "::1"};
    const std::string b = host_part(bound_host);
    if (b == "0.0.0.0" || b == "::" || b.empty()) {
        p.ip_literals = true;
    } else {
        p.hosts.push_back(b);
    }
    for (const std::string& h : extra_hosts) {
        if (h == "*") p.any_host = true;
        else p.hosts.push_back(host_part(h).empty() ? lower(h) : host_part(h));
    }
    for (const std::string& o : extra_origins) {
        if (o == "*") p.any_origin = true;
        else {
            std::string l = lower(o);
            while (!l.empty() && l.back() == '/') l.pop_back();
            p.origins.push_back(std::move(l));
        }
    }
    return p;
}

bool host_allowed(const HostPolicy& p, std::string_view value) {
    if (trim(value).empty()) return true;
    return name_allowed(p, host_part(value), false);
}

bool origin_allowed(const HostPolicy& p, std::string_view value) {
    if (p.any_origin) return true;
    std::string o = lower(trim(value));
    while (!o.empty() && o.back() == '/') o.pop_back();
    if (std::find(p.origins.begin(), p.origins.end(), o) != p.origins.end()) return true;
    const size_t sep = o.find("://");
    if (sep == std::string::npos) return false;  // "null", or not an origin
    const std::string scheme = o.substr(0, sep);
    if (scheme != "http" && scheme != "https") return false;
    const std::string authority = o.substr(sep + 3);
    if (authority.find('/') != std::string::npos || authority.find('@') != std::string::npos) return false;
    return name_allowed(p, host_part(authority), true);
}

bool is_json_content_type(std::string_view value) {
    std::string_view v = trim(value.substr(0, value.find(';')));
    return lower(v) == "application/json";
}

}  // namespace hr::server::http
