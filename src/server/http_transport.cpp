// HttpTransport (see http_transport.h) on Boost.Beast: one I/O thread runs every socket read, every
// whole-body write and the light routes; a bounded pool of workers runs the other handlers and writes
// streamed (SSE) bodies straight to the socket, with a deadline on each write. A connection is in one
// phase at a time (reading a request, handling it, writing the answer), so pipelined requests are read
// from the connection's buffer only after the previous answer went out: answers come in order.
#include "server/http_transport.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <array>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <strings.h>
#include <thread>

#include "core/log.h"

namespace hr::server::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

bool Request::has_header(std::string_view name) const {
    for (const auto& [k, v] : headers)
        if (k.size() == name.size() && strncasecmp(k.data(), name.data(), k.size()) == 0) return true;
    return false;
}

std::string Request::get_header_value(std::string_view name) const {
    for (const auto& [k, v] : headers)
        if (k.size() == name.size() && strncasecmp(k.data(), name.data(), k.size()) == 0) return v;
    return "";
}

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kKeepBuffer = 64 * 1024;  // read buffer a connection keeps between requests

std::string str(beast::string_view v) { return std::string(v.data(), v.size()); }
std::string_view view(beast::string_view v) { return std::string_view(v.data(), v.size()); }

std::chrono::milliseconds ms(double s) { return std::chrono::milliseconds(static_cast<int64_t>(s * 1000.0)); }

// Calls the response's release exactly once: with the outcome, or with false when it is dropped unwritten.
struct ReleaseOnce {
    Release f;
    explicit ReleaseOnce(Release r) : f(std::move(r)) {}
    ~ReleaseOnce() { (*this)(false); }
    ReleaseOnce(const ReleaseOnce&) = delete;
    ReleaseOnce& operator=(const ReleaseOnce&) = delete;
    void operator()(bool ok) {
        Release g = std::move(f);
        f = nullptr;
        if (g) g(ok);
    }
};

std::string reason(int status) {
    auto r = bhttp::obsolete_reason(static_cast<bhttp::status>(status));
    return r.empty() ? std::string("Unknown") : str(r);
}

// The status line and fields of a response (the body follows).
std::string head(const Response& res, bool keep_alive, bool http11, std::optional<size_t> content_length) {
    std::string h = (http11 ? "HTTP/1.1 " : "HTTP/1.0 ") + std::to_string(res.status) + " " + reason(res.status) + "\r\n";
    for (const auto& [k, v] : res.headers) h += k + ": " + v + "\r\n";
    if (!res.content_type.empty()) h += "Content-Type: " + res.content_type + "\r\n";
    if (content_length) {
        h += "Content-Length: " + std::to_string(*content_length) + "\r\n";
    } else if (http11) {
        h += "Transfer-Encoding: chunked\r\n";
    }
    h += keep_alive ? (http11 ? "" : "Connection: keep-alive\r\n") : "Connection: close\r\n";
    h += "\r\n";
    return h;
}

// Writes all of data to a non-blocking socket, waiting at most timeout for each stretch of progress.
bool write_all(int fd, const char* data, size_t n, std::chrono::milliseconds timeout) {
    while (n > 0) {
        const ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            data += w;
            n -= static_cast<size_t>(w);
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            pollfd p{fd, POLLOUT, 0};
            const int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
            if (r <= 0 || (p.revents & (POLLERR | POLLHUP | POLLNVAL))) return false;
            continue;
        }
        return false;
    }
    return true;
}

// A fixed set of threads that run handlers; at most max_waiting tasks wait for one.
class WorkerPool {
public:
    WorkerPool(int n, int max_waiting) : max_waiting_(static_cast<size_t>(std::max(0, max_waiting))) {
        for (int i = 0; i < n; ++i) threads_.emplace_back([this] { run(); });
    }
    ~WorkerPool() { shutdown(); }
    bool submit(std::function<void()> f) {
        std::lock_guard lock(mu_);
        if (stop_ || (idle_ == 0 && q_.size() >= max_waiting_)) return false;
        q_.push_back(std::move(f));
        cv_.notify_one();
        return true;
    }
    // Runs what is queued, then joins.
    void shutdown() {
        {
            std::lock_guard lock(mu_);
            if (stop_) return;
            stop_ = true;
        }
        cv_.notify_all();
        for (auto& t : threads_) t.join();
    }

private:
    void run() {
        while (true) {
            std::function<void()> f;
            {
                std::unique_lock lock(mu_);
                ++idle_;
                cv_.wait(lock, [this] { return stop_ || !q_.empty(); });
                --idle_;
                if (q_.empty()) return;
                f = std::move(q_.front());
                q_.pop_front();
            }
            f();
        }
    }
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> q_;
    std::vector<std::thread> threads_;
    size_t idle_ = 0;
    size_t max_waiting_;
    bool stop_ = false;
};

struct Route {
    Handler h;
    bool light = false;
    bool unchecked = false;
};

}  // namespace

struct HttpTransport::Impl {
    TransportOptions opts;
    std::map<std::string, std::map<std::string, Route>> routes;  // path -> method -> route
    ErrorHandler on_error;
    std::atomic<uint64_t> n_idle_timeouts{0}, n_header_timeouts{0}, n_body_timeouts{0}, n_evicted{0}, n_refused{0};

    // note: declared before ioc, so they outlive the handlers (holding connections) that ~io_context destroys.
    std::atomic<bool> stopping{false};
    std::atomic<int> n_open{0};
    net::io_context ioc{1};
    std::optional<tcp::acceptor> acceptor;
    std::thread io_thread;
    std::unique_ptr<WorkerPool> pool;

    struct Conn;
    std::map<uint64_t, std::weak_ptr<Conn>> conns;  // by age; I/O thread only
    uint64_t next_conn = 0;

    explicit Impl(TransportOptions o) : opts(std::move(o)) {}

    void error_response(int status, const std::string& code, const std::string& message, Response& res) {
        res = Response{};
        res.status = status;
        if (on_error) {
            on_error(status, code, message, res);
        } else {
            res.set_content(message, "text/plain");
        }
    }

    struct Conn : std::enable_shared_from_this<Conn> {
        enum class Phase { reading, handling, writing, closing };
        Impl& t;
        uint64_t id;
        beast::tcp_stream stream;
        beast::flat_buffer buf;
        std::optional<bhttp::request_parser<bhttp::string_body>> parser;
        Phase phase = Phase::reading;
        std::string out;  // the answer being written
        std::shared_ptr<ReleaseOnce> release;
        bool keep_alive = true;
        bool http11 = true;
        std::array<char, 4096> scratch{};
        size_t lingered = 0;

        Conn(Impl& impl, uint64_t i, tcp::socket s) : t(impl), id(i), stream(std::move(s)) {}
        ~Conn() { t.n_open.fetch_sub(1); }

        int fd() { return stream.socket().native_handle(); }

        void read_request() {
            phase = Phase::reading;
            // An idle connection keeps no request-sized buffer (pipelined bytes already read are kept).
            if (buf.capacity() > kKeepBuffer) buf.shrink_to_fit();
            parser.emplace();
            parser->header_limit(static_cast<std::uint32_t>(t.opts.max_header_bytes));
            parser->body_limit(static_cast<std::uint64_t>(t.opts.max_body_bytes));
            stream.expires_after(ms(t.opts.header_timeout_s));
            bhttp::async_read_header(stream, buf, *parser,
                                     [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
        }

        // A read ended with an error: answer when the client is owed one, then close.
        void on_read_error(beast::error_code ec, bool in_header) {
            if (ec == net::error::operation_aborted || t.stopping.load()) return close_now();
            if (ec == bhttp::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset) {
                return close_now();
            }
            if (ec == beast::error::timeout) {
                // tcp_stream has closed the socket already: nothing can be answered. Counted for /metrics.
                (in_header ? (buf.size() == 0 ? t.n_idle_timeouts : t.n_header_timeouts) : t.n_body_timeouts)
                    .fetch_add(1);
                return close_now();
            }
            if (ec == bhttp::error::header_limit) {
                return fail(431, "header_too_large",
                            fmt::format("the request header is larger than {} bytes", t.opts.max_header_bytes));
            }
            if (ec == bhttp::error::body_limit) {
                return fail(413, "payload_too_large",
                            fmt::format("the request body is larger than {} bytes", t.opts.max_body_bytes));
            }
            return fail(400, "bad_request", "the HTTP request could not be read: " + ec.message());
        }

        void on_header(beast::error_code ec) {
            if (ec) return on_read_error(ec, true);
            auto& msg = parser->get();
            keep_alive = msg.keep_alive();
            http11 = msg.version() >= 11;
            size_t fields = 0;
            for (auto it = msg.begin(); it != msg.end(); ++it) ++fields;
            if (fields > t.opts.max_header_fields) {
                return fail(431, "too_many_headers",
                            fmt::format("the request has {} header fields; at most {} are accepted", fields,
                                        t.opts.max_header_fields));
            }
            const std::string target = str(msg.target());
            const std::string path = target.substr(0, target.find('?'));
            auto pit = t.routes.find(path);
            const Route* route = nullptr;
            if (pit != t.routes.end()) {
                auto mit = pit->second.find(str(msg.method_string()));
                if (mit != pit->second.end()) route = &mit->second;
            }
            if (!route || !route->unchecked) {
                // Before the route: a rebinding page learns nothing, not even which paths exist.
                if (!host_allowed(t.opts.policy, view(msg[bhttp::field::host]))) {
                    return fail(403, "host_not_allowed",
                                "the Host header names a host this server does not answer for (see --allowed-hosts)");
                }
                if (msg.find(bhttp::field::origin) != msg.end() &&
                    !origin_allowed(t.opts.policy, view(msg[bhttp::field::origin]))) {
                    return fail(403, "origin_not_allowed",
                                "requests from this Origin are not accepted (see --allowed-origins)");
                }
            }
            if (pit == t.routes.end()) return fail(404, "not_found", "no such route");
            if (!route) return fail(405, "method_not_allowed", "method not allowed for this route");
            if (msg.method() == bhttp::verb::post && !is_json_content_type(view(msg[bhttp::field::content_type]))) {
                return fail(415, "unsupported_media_type",
                            "the request body must be JSON (Content-Type: application/json)");
            }
            if (parser->is_done()) return dispatch(*route);
            auto read_body = [self = shared_from_this(), route] {
                self->stream.expires_after(ms(self->t.opts.body_timeout_s));
                bhttp::async_read(self->stream, self->buf, *self->parser,
                                  [self, route](beast::error_code e, size_t) {
                                      if (e) return self->on_read_error(e, false);
                                      self->dispatch(*route);
                                  });
            };
            if (beast::iequals(msg[bhttp::field::expect], "100-continue")) {
                out = "HTTP/1.1 100 Continue\r\n\r\n";
                stream.expires_after(ms(t.opts.write_timeout_s));
                net::async_write(stream, net::buffer(out), [self = shared_from_this(), read_body](beast::error_code e, size_t) {
                    if (e) return self->close_now();
                    read_body();
                });
                return;
            }
            read_body();
        }

        Request make_request() {
            auto msg = parser->release();
            Request r;
            r.method = str(msg.method_string());
            r.target = str(msg.target());
            r.path = r.target.substr(0, r.target.find('?'));
            for (const auto& f : msg) r.headers.emplace_back(str(f.name_string()), str(f.value()));
            r.body = std::move(msg.body());
            r.fd = fd();
            return r;
        }

        void dispatch(const Route& route) {
            phase = Phase::handling;
            stream.expires_never();
            auto req = std::make_shared<Request>(make_request());
            parser.reset();
            if (route.light) {
                Response res;
                run_handler(route.h, *req, res);
                return write_response(std::move(res));
            }
            Handler h = route.h;
            auto self = shared_from_this();
            const bool queued = t.pool->submit([self, h, req] {
                auto res = std::make_shared<Response>();
                self->run_handler(h, *req, *res);
                if (res->chunked) {
                    const bool ok = self->stream_body(*res);
                    net::post(self->t.ioc, [self, ok] { self->after_stream(ok); });
                } else {
                    net::post(self->t.ioc, [self, res] { self->write_response(std::move(*res)); });
                }
            });
            if (!queued) {
                Response res;
                t.error_response(503, "server_busy", "every worker is busy; retry later", res);
                res.set_header("Retry-After", "1");
                write_response(std::move(res));
            }
        }

        void run_handler(const Handler& h, const Request& req, Response& res) {
            try {
                h(req, res);
            } catch (const std::exception&) {
                t.error_response(500, "internal_error", "internal error", res);
            }
        }

        // Worker thread: head and chunks straight to the socket (the I/O thread does not touch it now).
        bool stream_body(Response& res) {
            release = std::make_shared<ReleaseOnce>(std::move(res.release));
            const auto timeout = ms(t.opts.write_timeout_s);
            const int s = fd();
            // HTTP/1.0 has no chunked encoding: the body runs to the close.
            if (!http11) keep_alive = false;
            std::string h = head(res, keep_alive, http11, std::nullopt);
            bool ok = write_all(s, h.data(), h.size(), timeout);
            bool done = false;
            size_t offset = 0;
            DataSink sink;
            sink.write = [&](const char* d, size_t n) {
                if (!ok) return false;
                if (n == 0) return true;
                std::string c;
                if (http11) {
                    c = fmt::format("{:x}\r\n", n);
                    c.append(d, n);
                    c += "\r\n";
                } else {
                    c.assign(d, n);
                }
                ok = write_all(s, c.data(), c.size(), timeout);
                if (ok) offset += n;
                return ok;
            };
            sink.done = [&] {
                if (done) return;
                done = true;
                if (ok && http11) ok = write_all(s, "0\r\n\r\n", 5, timeout);
            };
            while (ok && !done && !t.stopping.load()) {
                bool more = false;
                try {
                    more = res.chunked(offset, sink);
                } catch (const std::exception&) {
                    more = false;
                }
                if (!more) ok = false;
            }
            const bool complete = ok && done;
            (*release)(complete);
            release.reset();
            return complete;
        }

        void after_stream(bool ok) {
            if (ok && keep_alive && !t.stopping.load()) return read_request();
            close_graceful();
        }

        // I/O thread: a whole answer.
        void write_response(Response res) {
            if (t.stopping.load()) keep_alive = false;
            phase = Phase::writing;
            release = std::make_shared<ReleaseOnce>(std::move(res.release));
            out = head(res, keep_alive, http11, res.body.size()) + res.body;
            stream.expires_after(ms(t.opts.write_timeout_s));
            net::async_write(stream, net::buffer(out), [self = shared_from_this()](beast::error_code ec, size_t) {
                (*self->release)(!ec);
                self->release.reset();
                self->out.clear();
                self->out.shrink_to_fit();
                if (ec) return self->close_now();
                if (self->keep_alive) return self->read_request();
                self->close_graceful();
            });
        }

        // The request is refused before (or while) its body was read: answer and close, without
        // reading the rest of the body.
        void fail(int status, const std::string& code, const std::string& message) {
            // The connection stays usable only when the whole request (a header without body) was read.
            if (!(parser && parser->is_header_done() && parser->is_done())) keep_alive = false;
            parser.reset();
            Response res;
            t.error_response(status, code, message, res);
            write_response(std::move(res));
        }

        // Closes after the peer has read the answer: shut our side, then read and discard (bounded in
        // bytes and time) so that unread request bytes do not turn the close into a reset that could
        // destroy the answer in flight.
        void close_graceful() {
            phase = Phase::closing;
            beast::error_code ec;
            stream.socket().shutdown(tcp::socket::shutdown_send, ec);
            if (ec) return close_now();
            lingered = 0;
            stream.expires_after(std::chrono::seconds(2));
            linger();
        }
        void linger() {
            stream.async_read_some(net::buffer(scratch), [self = shared_from_this()](beast::error_code ec, size_t n) {
                self->lingered += n;
                if (ec || self->lingered > (1u << 20)) return self->close_now();
                self->linger();
            });
        }

        void close_now() {
            phase = Phase::closing;
            beast::error_code ec;
            stream.socket().close(ec);
            t.conns.erase(id);
        }
    };

    // I/O thread: at the connection cap, close the oldest connection that is waiting for a request
    // (idle keep-alive or a client trickling its header): those cost the server nothing to drop and
    // are what a slowloris client holds. Returns false when every connection is busy.
    bool evict_one() {
        for (auto it = conns.begin(); it != conns.end();) {
            auto c = it->second.lock();
            if (!c) {
                it = conns.erase(it);
                continue;
            }
            if (c->phase == Conn::Phase::reading || c->phase == Conn::Phase::closing) {
                n_evicted.fetch_add(1);
                c->close_now();
                return true;
            }
            ++it;
        }
        return false;
    }

    void accept() {
        acceptor->async_accept([this](beast::error_code ec, tcp::socket s) {
            if (ec) {
                if (ec == net::error::operation_aborted || stopping.load()) return;
                // EMFILE and the like: wait a little rather than spin.
                log_warn("accept failed: {}", ec.message());
                auto timer = std::make_shared<net::steady_timer>(ioc, std::chrono::milliseconds(100));
                timer->async_wait([this, timer](beast::error_code) { accept(); });
                return;
            }
            if (!stopping.load()) on_accept(std::move(s));
            accept();
        });
    }

    void on_accept(tcp::socket s) {
        beast::error_code ec;
        s.set_option(tcp::no_delay(true), ec);
        if (static_cast<int>(conns.size()) >= opts.max_connections && !evict_one()) {
            n_refused.fetch_add(1);
            Response res;
            error_response(503, "too_many_connections",
                           fmt::format("the server has {} connections open; retry later", opts.max_connections), res);
            res.set_header("Retry-After", "1");
            const std::string msg = head(res, false, true, res.body.size()) + res.body;
            s.non_blocking(true, ec);
            (void)::send(s.native_handle(), msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            s.shutdown(tcp::socket::shutdown_send, ec);
            s.close(ec);
            return;
        }
        s.non_blocking(true, ec);
        n_open.fetch_add(1);
        auto c = std::make_shared<Conn>(*this, next_conn++, std::move(s));
        conns.emplace(c->id, c);
        c->read_request();
    }
};

HttpTransport::HttpTransport(TransportOptions opts) : impl_(std::make_unique<Impl>(std::move(opts))) {}

HttpTransport::~HttpTransport() { stop(); }

void HttpTransport::route(const std::string& method, const std::string& path, Handler h, bool light) {
    Route r;
    r.h = std::move(h);
    r.light = light;
    // The health routes answer any Host: load balancers and probes address a replica by its IP or pod
    // name, and the answer reveals nothing.
    r.unchecked = path == "/health" || path == "/ping";
    impl_->routes[path][method] = std::move(r);
}

void HttpTransport::set_error_handler(ErrorHandler h) { impl_->on_error = std::move(h); }

TransportStats HttpTransport::stats() const {
    const Impl& m = *impl_;
    return {m.n_open.load(), m.n_idle_timeouts.load(), m.n_header_timeouts.load(), m.n_body_timeouts.load(),
            m.n_evicted.load(), m.n_refused.load()};
}

Result<int> HttpTransport::start() {
    Impl& m = *impl_;
    beast::error_code ec;
    const auto addr = net::ip::make_address(m.opts.host, ec);
    if (ec) return errorf("--host {}: not an IP address ({})", m.opts.host, ec.message());
    tcp::endpoint ep(addr, static_cast<unsigned short>(m.opts.port));
    m.acceptor.emplace(m.ioc);
    m.acceptor->open(ep.protocol(), ec);
    if (ec) return errorf("could not open a socket for {}:{}: {}", m.opts.host, m.opts.port, ec.message());
    // SO_REUSEADDR only lets a restarted server bind past TIME_WAIT connections; unlike SO_REUSEPORT
    // it never lets two live servers share the port.
    m.acceptor->set_option(net::socket_base::reuse_address(true), ec);
    m.acceptor->bind(ep, ec);
    if (ec) {
        return errorf("could not listen on {}:{}: {}{}", m.opts.host, m.opts.port, ec.message(),
                      ec == net::error::address_in_use ? " (another process is serving on this port)" : "");
    }
    m.acceptor->listen(net::socket_base::max_listen_connections, ec);
    if (ec) return errorf("could not listen on {}:{}: {}", m.opts.host, m.opts.port, ec.message());
    const int port = m.acceptor->local_endpoint().port();
    m.pool = std::make_unique<WorkerPool>(std::max(1, m.opts.workers), m.opts.max_waiting);
    m.accept();
    m.io_thread = std::thread([&m] {
        while (true) {
            try {
                m.ioc.run();
                return;
            } catch (const std::exception& e) {
                log_error("HTTP I/O thread: {}", e.what());
            }
        }
    });
    return port;
}

void HttpTransport::stop() {
    Impl& m = *impl_;
    if (m.stopping.exchange(true)) return;
    if (!m.io_thread.joinable()) return;
    // Stop accepting, drop connections that wait for a request; those being handled finish first.
    net::post(m.ioc, [&m] {
        beast::error_code ec;
        if (m.acceptor) m.acceptor->close(ec);
        for (auto& entry : std::map<uint64_t, std::weak_ptr<Impl::Conn>>(m.conns)) {
            auto c = entry.second.lock();
            if (c && c->phase != Impl::Conn::Phase::handling) c->close_now();
        }
    });
    if (m.pool) m.pool->shutdown();
    // Give the answers the workers posted a moment to go out, then stop the loop.
    const auto end = Clock::now() + std::chrono::seconds(2);
    while (Clock::now() < end) {
        auto p = std::make_shared<std::promise<bool>>();
        auto f = p->get_future();
        net::post(m.ioc, [&m, p] {
            bool busy = false;
            for (auto& entry : m.conns)
                if (auto c = entry.second.lock(); c && c->phase == Impl::Conn::Phase::writing) busy = true;
            p->set_value(busy);
        });
        if (f.wait_for(std::chrono::milliseconds(500)) != std::future_status::ready || !f.get()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    m.ioc.stop();
    m.io_thread.join();
    m.conns.clear();
}

}  // namespace hr::server::http
