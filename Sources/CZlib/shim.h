#ifndef ANCHORAGE_CZLIB_SHIM_H
#define ANCHORAGE_CZLIB_SHIM_H
#include <zlib.h>
// deflateInit2 is a macro; this wrapper makes it callable from Swift.
static inline int anch_deflate_init_gzip(z_streamp s, int level) {
    return deflateInit2(s, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}
// inflateInit2 likewise; 15 + 32 accepts gzip and zlib headers.
static inline int anch_inflate_init_auto(z_streamp s) {
    return inflateInit2(s, 15 + 32);
}
#endif
