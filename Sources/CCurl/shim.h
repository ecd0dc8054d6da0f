#ifndef ANCHORAGE_CCURL_SHIM_H
#define ANCHORAGE_CCURL_SHIM_H
#include <curl/curl.h>

// curl_easy_setopt/getinfo are variadic, which Swift cannot call; these typed
// wrappers are the only way the Swift side touches them.
static inline CURLcode anch_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode anch_setopt_str(CURL *h, CURLoption o, const char *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode anch_setopt_ptr(CURL *h, CURLoption o, void *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode anch_setopt_slist(CURL *h, CURLoption o, struct curl_slist *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode anch_setopt_write(CURL *h, size_t (*f)(char *, size_t, size_t, void *)) { return curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, f); }
static inline CURLcode anch_setopt_read(CURL *h, size_t (*f)(char *, size_t, size_t, void *)) { return curl_easy_setopt(h, CURLOPT_READFUNCTION, f); }
static inline CURLcode anch_setopt_off(CURL *h, CURLoption o, curl_off_t v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode anch_setopt_header(CURL *h, size_t (*f)(char *, size_t, size_t, void *)) { return curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, f); }
static inline CURLcode anch_setopt_xferinfo(CURL *h, int (*f)(void *, curl_off_t, curl_off_t, curl_off_t, curl_off_t)) { return curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, f); }
static inline CURLcode anch_getinfo_long(CURL *h, CURLINFO i, long *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLcode anch_getinfo_str(CURL *h, CURLINFO i, char **v) { return curl_easy_getinfo(h, i, v); }
static inline CURLcode anch_getinfo_off(CURL *h, CURLINFO i, curl_off_t *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLSHcode anch_share_setopt_long(CURLSH *s, CURLSHoption o, long v) { return curl_share_setopt(s, o, v); }

// A kept-alive HTTP/1.1 connection must be silent between responses: bytes
// that arrive after a response ended where its framing said (a lying
// Content-Length, a smuggled second response) would be read by libcurl 7.88
// as the answer to the next request sent on it. libcurl 7.88 reuses a
// connection with pending input (later versions refuse it), so each handle
// tracks the sockets it opens, and before a request goes out on a socket an
// earlier transfer opened, a non-blocking peek refuses it if anything is
// waiting there (the transfer then fails with CURLE_ABORTED_BY_CALLBACK).
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define ANCH_SOCKETS 16
typedef struct {
    curl_socket_t fd[ANCH_SOCKETS];
    unsigned generation[ANCH_SOCKETS];
    unsigned current;   // the transfer in progress
    int refused;        // this transfer's connection held unread bytes
} anch_sockets;

static inline anch_sockets *anch_sockets_new(void) {
    anch_sockets *s = calloc(1, sizeof *s);
    if (s) for (int i = 0; i < ANCH_SOCKETS; i++) s->fd[i] = CURL_SOCKET_BAD;
    return s;
}

static curl_socket_t anch_open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a) {
    (void)purpose;
    anch_sockets *s = clientp;
    curl_socket_t fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (fd == CURL_SOCKET_BAD) return fd;
    for (int i = 0; i < ANCH_SOCKETS; i++) {
        if (s->fd[i] == CURL_SOCKET_BAD) { s->fd[i] = fd; s->generation[i] = s->current; break; }
    }
    return fd;
}

static int anch_close_socket(void *clientp, curl_socket_t fd) {
    anch_sockets *s = clientp;
    for (int i = 0; i < ANCH_SOCKETS; i++) if (s->fd[i] == fd) s->fd[i] = CURL_SOCKET_BAD;
    return close(fd);
}

static int anch_port_of(curl_socket_t fd, int peer) {
    struct sockaddr_storage ss;
    socklen_t n = sizeof ss;
    if ((peer ? getpeername(fd, (struct sockaddr *)&ss, &n) : getsockname(fd, (struct sockaddr *)&ss, &n)) != 0) return -1;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

static int anch_prereq(void *clientp, char *primary_ip, char *local_ip, int primary_port, int local_port) {
    (void)primary_ip; (void)local_ip;
    anch_sockets *s = clientp;
    for (int i = 0; i < ANCH_SOCKETS; i++) {
        curl_socket_t fd = s->fd[i];
        // Only a connection an earlier transfer left open: a fresh one may
        // rightly hold unread TLS records from its handshake.
        if (fd == CURL_SOCKET_BAD || s->generation[i] == s->current) continue;
        if (anch_port_of(fd, 0) != local_port || anch_port_of(fd, 1) != primary_port) continue;
        char b;
        if (recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0) {
            s->refused = 1;
            return CURL_PREREQFUNC_ABORT;
        }
    }
    return CURL_PREREQFUNC_OK;
}

/// Installs the tracking and the check on a handle for one transfer.
static inline void anch_guard_reuse(CURL *h, anch_sockets *s) {
    s->current++;
    s->refused = 0;
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, anch_open_socket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, s);
    curl_easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, anch_close_socket);
    curl_easy_setopt(h, CURLOPT_CLOSESOCKETDATA, s);
    curl_easy_setopt(h, CURLOPT_PREREQFUNCTION, anch_prereq);
    curl_easy_setopt(h, CURLOPT_PREREQDATA, s);
}
#endif
