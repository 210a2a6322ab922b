// Client-disconnect detection for a request being served: finds the request's socket (matched by
// its local and remote address and port, which cpp-httplib 0.11 reports but does not expose the
// socket of) and polls it for a peer close, so a non-streaming request is cancelled too.
#pragma once

#include <string>

namespace hr::server {

class ConnectionWatch {
public:
    ConnectionWatch(const std::string& local_addr, int local_port, const std::string& remote_addr, int remote_port);
    // True once the peer closed or reset the connection. False when the socket was not found (then
    // only a failed write reveals a disconnect).
    bool peer_closed() const;
    bool found() const { return fd_ >= 0; }

private:
    int fd_ = -1;
};

}  // namespace hr::server
