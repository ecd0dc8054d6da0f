#ifndef ANCHORAGE_CLINUX_H
#define ANCHORAGE_CLINUX_H
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>

// Linux calls that Swift's Glibc module does not export (epoll, eventfd,
// accept4, sendfile, sync_file_range), behind flat signatures: epoll_event is a packed
// struct on x86-64, which is easier to keep on the C side.
int anch_epoll_create(void);
int anch_epoll_ctl(int epfd, int op, int fd, uint32_t events);
int anch_epoll_wait(int epfd, int32_t *fds, uint32_t *events, int max, int timeout_ms);
int anch_eventfd(void);
int anch_accept4(int fd, struct sockaddr *addr, socklen_t *len);
ssize_t anch_sendfile(int out_fd, int in_fd, int64_t *offset, size_t count);
int anch_start_writeback(int fd, int64_t offset, int64_t length);
int anch_release_free_memory(void);

enum { ANCH_EPOLL_CTL_ADD = 1, ANCH_EPOLL_CTL_DEL = 2, ANCH_EPOLL_CTL_MOD = 3 };
#endif
