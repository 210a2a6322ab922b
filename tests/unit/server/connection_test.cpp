// ConnectionWatch sees the peer close an accepted socket; pending bytes are not a close.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/connection.h"

namespace hr::server {

TEST(ConnectionWatch, SeesPeerClose) {
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    ASSERT_EQ(listen(ls, 4), 0);
    socklen_t len = sizeof(a);
    ASSERT_EQ(getsockname(ls, reinterpret_cast<sockaddr*>(&a), &len), 0);
    const int server_port = ntohs(a.sin_port);
    int client = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    sockaddr_in c{};
    len = sizeof(c);
    ASSERT_EQ(getsockname(client, reinterpret_cast<sockaddr*>(&c), &len), 0);
    int accepted = accept(ls, nullptr, nullptr);
    ASSERT_GE(accepted, 0);

    (void)server_port;
    ConnectionWatch w(accepted);
    EXPECT_TRUE(w.found());
    EXPECT_FALSE(w.peer_closed());
    ASSERT_EQ(send(client, "x", 1, 0), 1);  // pending bytes are not a close
    usleep(20000);
    EXPECT_FALSE(w.peer_closed());
    close(client);
    usleep(20000);
    EXPECT_TRUE(w.peer_closed());
    ConnectionWatch missing(-1);
    EXPECT_FALSE(missing.found());
    EXPECT_FALSE(missing.peer_closed());
    close(accepted);
    close(ls);
}

}  // namespace hr::server
