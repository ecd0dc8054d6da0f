/* floor PORT FILE MODE: the least an HTTP server can do to send FILE to one
 * loopback client at a time, in one thread. bench/run's reference for
 * scenario 1 (one client, a warm 1 GiB blob), run in the same rounds as the
 * peers, so that their figures can be read against what this machine gives
 * a single sending thread at all.
 *
 * MODE map: the file's 2 MiB block that holds the offset mapped at a
 *   2 MiB-aligned address over a reserved slot, up to 1 MiB of it sent,
 *   the slot reserved again: one copy from the page cache into the socket.
 * MODE sendfile: the rest of the file by sendfile(2) from the page cache,
 *   as Anchorage (`sendfile = on`), nginx and the registry send.
 * MODE hot: the same number of bytes sent from one 1 MiB buffer that stays
 *   in the CPU caches: the file is not read at all, so this is the ceiling
 *   of the loopback TCP path for one sending thread here, not a server.
 *
 * A GET whose target contains "/blobs/" gets the body; any other request
 * gets an empty 200 (the readiness probe). One connection at a time,
 * Connection: close. Not a server for anything but this measurement. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define WINDOW (1 << 20)
#define BLOCK (2 << 20)

static int send_all(int s, const char *p, size_t n) {
    while (n > 0) {
        ssize_t k = send(s, p, n, MSG_NOSIGNAL);
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

enum mode { MAP, SENDFILE, HOT };

static void serve(int c, int fd, off_t size, enum mode mode, const char *buffer, char *slot) {
    char req[8192];
    size_t got = 0;
    while (got < sizeof req - 1) {
        ssize_t k = recv(c, req + got, sizeof req - 1 - got, 0);
        if (k <= 0) return;
        got += (size_t)k;
        req[got] = 0;
        if (strstr(req, "\r\n\r\n")) break;
    }
    int blob = strstr(req, "/blobs/") != NULL;
    char head[128];
    int n = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %lld\r\nConnection: close\r\n\r\n",
                     blob ? (long long)size : 0LL);
    if (send_all(c, head, (size_t)n) != 0 || !blob) return;
    for (off_t off = 0; off < size;) {
        size_t want = size - off < WINDOW ? (size_t)(size - off) : WINDOW;
        ssize_t k;
        if (mode == HOT) {
            k = send(c, buffer, want, MSG_NOSIGNAL);
        } else if (mode == SENDFILE) {
            off_t o = off;
            k = sendfile(c, fd, &o, (size_t)(size - off));
        } else {
            /* The 2 MiB block that holds off. */
            off_t block = off & ~(off_t)(BLOCK - 1);
            off_t end = block + BLOCK < size ? block + BLOCK : size;
            size_t mapped = (size_t)((end - block + 4095) & ~(off_t)4095);
            if ((off_t)want > end - off) want = (size_t)(end - off);
            char *p = mmap(slot, mapped, PROT_READ, MAP_SHARED | MAP_FIXED, fd, block);
            if (p == MAP_FAILED) return;
            k = send(c, p + (off - block), want, MSG_NOSIGNAL);
            mmap(slot, mapped, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
        }
        if (k <= 0) return;
        off += k;
    }
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: floor PORT FILE map|sendfile|hot\n"); return 2; }
    int fd = open(argv[2], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) { perror(argv[2]); return 1; }
    enum mode mode = strcmp(argv[3], "hot") == 0 ? HOT : strcmp(argv[3], "sendfile") == 0 ? SENDFILE : MAP;
    char *buffer = malloc(WINDOW);
    if (!buffer) return 1;
    memset(buffer, 'x', WINDOW);
    /* A reserved, 2 MiB-aligned slot for the blocks (WindowSlot). */
    char *raw = mmap(NULL, 2 * BLOCK, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED) return 1;
    char *slot = (char *)(((unsigned long)raw + BLOCK - 1) & ~(unsigned long)(BLOCK - 1));
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1])),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 16) != 0) { perror("listen"); return 1; }
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0) continue;
        serve(c, fd, st.st_size, mode, buffer, slot);
        close(c);
    }
}
