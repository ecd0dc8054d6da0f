#define _GNU_SOURCE
#include "CLinux.h"
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <stddef.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

int anch_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int anch_epoll_ctl(int epfd, int op, int fd, uint32_t events) {
    struct epoll_event ev = { .events = events, .data = { .fd = fd } };
    return epoll_ctl(epfd, op, fd, op == EPOLL_CTL_DEL ? NULL : &ev);
}

int anch_epoll_wait(int epfd, int32_t *fds, uint32_t *events, int max, int timeout_ms) {
    struct epoll_event evs[256];
    if (max > 256) max = 256;
    int n = epoll_wait(epfd, evs, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        fds[i] = evs[i].data.fd;
        events[i] = evs[i].events;
    }
    return n;
}

int anch_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int anch_accept4(int fd, struct sockaddr *addr, socklen_t *len) {
    return accept4(fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

ssize_t anch_sendfile(int out_fd, int in_fd, int64_t *offset, size_t count) {
    off_t off = (off_t)*offset;
    ssize_t n = sendfile(out_fd, in_fd, &off, count);
    *offset = (int64_t)off;
    return n;
}

int64_t anch_tcp_rtt_micros(int fd) {
    struct tcp_info info;
    socklen_t len = sizeof info;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0 || len < offsetof(struct tcp_info, tcpi_rtt) + sizeof info.tcpi_rtt) return -1;
    return (int64_t)info.tcpi_rtt;
}

#include <sched.h>
#include <sys/socket.h>

int anch_allowed_cpus(int32_t *cpus, int max) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return -1;
    int n = 0;
    for (int c = 0; c < CPU_SETSIZE && n < max; c++) if (CPU_ISSET(c, &set)) cpus[n++] = c;
    return n;
}

int anch_set_thread_cpus(const int32_t *cpus, int count) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int i = 0; i < count; i++) CPU_SET(cpus[i], &set);
    return sched_setaffinity(0, sizeof set, &set);
}

int anch_pin_current_thread(int cpu) {
    int32_t one = cpu;
    return anch_set_thread_cpus(&one, 1);
}

#include <linux/filter.h>

int anch_steer_reuseport_by_cpu(int fd, const int32_t *cpus, int count) {
    /* A = the CPU processing the packet; socket i of the group for cpus[i];
       an index past the group's end makes the kernel fall back to its hash. */
    struct sock_filter code[2 + 2 * 64];
    if (count < 1 || count > 64) return -1;
    int n = 0;
    code[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)(SKF_AD_OFF + SKF_AD_CPU));
    for (int i = 0; i < count; i++) {
        code[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)cpus[i], 0, 1);
        code[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, (uint32_t)i);
    }
    code[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, 0xffffffffu);
    struct sock_fprog prog = { .len = (unsigned short)n, .filter = code };
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog);
}

int anch_incoming_cpu(int fd) {
    int cpu = -1;
    socklen_t len = sizeof cpu;
    if (getsockopt(fd, SOL_SOCKET, SO_INCOMING_CPU, &cpu, &len) != 0) return -1;
    return cpu;
}
