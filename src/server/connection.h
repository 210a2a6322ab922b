// Client-disconnect detection for a request being served: polls the request's socket (the transport
// hands it over, and reads nothing from it while the handler runs) for a peer close, so a non-streaming
// request is cancelled too.
#pragma once

namespace hr::server {

class ConnectionWatch {
public:
    explicit ConnectionWatch(int fd) : fd_(fd) {}
    // True once the peer closed or reset the connection. False when there is no socket (fd < 0: then only
    // a failed write reveals a disconnect).
    bool peer_closed() const;
    bool found() const { return fd_ >= 0; }

private:
    int fd_ = -1;
};

}  // namespace hr::server
