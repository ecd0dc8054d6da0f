#ifndef ANCHORAGE_CLINUX_H
#define ANCHORAGE_CLINUX_H
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>

// Linux calls that Swift's Glibc module does not export (epoll, eventfd,
// accept4, sendfile, flock-free helpers), behind flat signatures: epoll_event
// is a packed struct on x86-64, which is easier to keep on the C side.
int anch_epoll_create(void);
int anch_epoll_ctl(int epfd, int op, int fd, uint32_t events);
int anch_epoll_wait(int epfd, int32_t *fds, uint32_t *events, int max, int timeout_ms);
int anch_eventfd(void);
int anch_accept4(int fd, struct sockaddr *addr, socklen_t *len);
ssize_t anch_sendfile(int out_fd, int in_fd, int64_t *offset, size_t count);
/// The connection's smoothed round-trip time in microseconds (TCP_INFO), or -1.
int64_t anch_tcp_rtt_micros(int fd);
/// The CPUs this process may run on, ascending; returns how many (or -1).
int anch_allowed_cpus(int32_t *cpus, int max);
/// Restricts the calling thread to one CPU.
int anch_pin_current_thread(int cpu);
/// Lets the calling thread run on any of `cpus`.
int anch_set_thread_cpus(const int32_t *cpus, int count);
/// Makes the kernel queue each new connection of `fd`'s SO_REUSEPORT group
/// to socket i of the group when cpus[i] processed it (SO_ATTACH_REUSEPORT_CBPF).
int anch_steer_reuseport_by_cpu(int fd, const int32_t *cpus, int count);
/// SO_INCOMING_CPU: the CPU that processed the socket's last received packet.
int anch_incoming_cpu(int fd);

enum { ANCH_EPOLL_CTL_ADD = 1, ANCH_EPOLL_CTL_DEL = 2, ANCH_EPOLL_CTL_MOD = 3 };
#endif
