// The web page at / (src/server/web/, embedded at build time): its files by path, and the headers that
// keep the page from being framed, sniffed or made to load anything from elsewhere.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "server/http_transport.h"

namespace hr::server {

// The paths the page is served under: "/" (index.html) and "/static/<file>".
inline constexpr std::string_view kWebStaticPrefix = "/static/";

// Every embedded file with the path it is served at.
struct WebFile {
    std::string path;
    std::string_view content_type;
    std::string_view bytes;
};
std::vector<WebFile> web_files();

// Fills res with the file (200) and the page's security headers.
void serve_web_file(const WebFile& f, http::Response& res);

}  // namespace hr::server
