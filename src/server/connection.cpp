// ConnectionWatch (see connection.h). Linux: poll() with POLLRDHUP.
#include "server/connection.h"

#include <poll.h>
#include <sys/socket.h>

namespace hr::server {

bool ConnectionWatch::peer_closed() const {
    if (fd_ < 0) return false;
    pollfd p{fd_, static_cast<short>(POLLIN | POLLRDHUP), 0};
    if (poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return true;
    if (p.revents & POLLIN) {
        // Readable: either pipelined bytes (alive) or an orderly close (recv returns 0).
        char c;
        ssize_t n = recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        return n == 0;
    }
    return false;
}

}  // namespace hr::server
