// The HTTP/1.1 transport under the API server (Boost.Beast, see docs/server.md for why): it owns the
// listening socket and every connection, and enforces the limits a hostile client would probe before
// any handler runs — header and body read deadlines, a cap on open connections, caps on header size and
// count, the body limit for Content-Length and chunked bodies alike (refused without draining),
// in-order answers to pipelined requests, Host / Origin / Content-Type policy. Handlers see a parsed
// Request and fill a Response: a whole body, or an SSE stream written chunk by chunk from the handler's
// thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "server/request_policy.h"

namespace hr::server::http {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Request {
    std::string method;  // "GET", "POST", ...
    std::string target;  // as sent (path and query)
    std::string path;    // target without the query
    Headers headers;
    std::string body;
    // The connection's socket: handlers may poll it for a peer close (ConnectionWatch); the transport
    // neither reads nor closes it while the handler runs.
    int fd = -1;

    bool has_header(std::string_view name) const;
    std::string get_header_value(std::string_view name) const;  // "" when absent (first one wins)
};

// What a streaming provider writes through: write() sends one chunk (false: the client is gone or too
// slow), done() ends the stream.
struct DataSink {
    std::function<bool(const char* data, size_t n)> write;
    std::function<void()> done;
};

// Called repeatedly until it calls sink.done() (the stream is complete) or returns false (abort: the
// connection is closed). offset: bytes written so far.
using ChunkProvider = std::function<bool(size_t offset, DataSink& sink)>;
// Called once the response has been written or abandoned (true: every byte was sent).
using Release = std::function<void(bool ok)>;

struct Response {
    int status = 200;
    Headers headers;
    std::string body;
    std::string content_type;
    ChunkProvider chunked;  // set: the body is streamed with chunked transfer encoding
    Release release;

    void set_header(std::string name, std::string value) { headers.emplace_back(std::move(name), std::move(value)); }
    void set_content(std::string b, std::string type) {
        body = std::move(b);
        content_type = std::move(type);
    }
    void set_content(std::string b, std::string type, Release on_written) {
        set_content(std::move(b), std::move(type));
        release = std::move(on_written);
    }
    void set_chunked_content_provider(std::string type, ChunkProvider p, Release r) {
        content_type = std::move(type);
        chunked = std::move(p);
        release = std::move(r);
    }
};

using Handler = std::function<void(const Request&, Response&)>;
// Fills the response for a request the transport refused itself (status, a stable code such as
// "payload_too_large", and a message); the API server turns it into its error object and counts it.
using ErrorHandler = std::function<void(int status, const std::string& code, const std::string& message, Response&)>;

struct TransportOptions {
    std::string host = "127.0.0.1";
    int port = 8080;  // 0: any free port
    size_t max_body_bytes = 2 * 1024 * 1024;
    size_t max_header_bytes = 16 * 1024;   // request line + fields
    size_t max_header_fields = 100;
    int max_connections = 512;             // open connections; past it the oldest idle one is closed, else 503
    int workers = 64;                      // threads that run handlers (each in-flight request holds one)
    int max_waiting = 64;                  // requests waiting for a worker; past it 503
    double header_timeout_s = 10;          // the whole header (and idle keep-alive) must arrive within this
    double body_timeout_s = 30;            // the whole body must arrive within this after the header
    double write_timeout_s = 10;           // one write may block this long (a client that stops reading)
    HostPolicy policy;                     // Host / Origin checks (see request_policy.h)
};

// Connections the transport closed on its own (for /metrics).
struct TransportStats {
    int open = 0;
    uint64_t idle_timeouts = 0;    // keep-alive connections that sent nothing within the header deadline
    uint64_t header_timeouts = 0;  // a header begun but not finished within the deadline (slowloris)
    uint64_t body_timeouts = 0;
    uint64_t evicted = 0;          // waiting connections closed to admit a new one at the cap
    uint64_t refused = 0;          // refused with 503 at the cap (every connection busy)
};

class HttpTransport {
public:
    explicit HttpTransport(TransportOptions opts);
    ~HttpTransport();
    HttpTransport(const HttpTransport&) = delete;
    HttpTransport& operator=(const HttpTransport&) = delete;

    // light: the handler is quick and never blocks (health, metrics): it runs on the I/O thread, so it
    // answers even when every worker is busy.
    void route(const std::string& method, const std::string& path, Handler h, bool light = false);
    void set_error_handler(ErrorHandler h);

    // Binds (never SO_REUSEPORT: a second server on the same port fails here) and starts serving.
    // Returns the bound port.
    Result<int> start();
    // Closes the listener and every connection; waits for handlers in progress to return.
    void stop();

    TransportStats stats() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace hr::server::http
