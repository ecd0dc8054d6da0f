#ifndef ANCHORAGE_COPENSSL_SHIM_H
#define ANCHORAGE_COPENSSL_SHIM_H
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

// SSL_CTX_set_min_proto_version and SSL_set_mode are macros; Swift needs functions.
static inline int anch_ssl_ctx_min_tls12(SSL_CTX *ctx) { return (int)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION); }
static inline long anch_ssl_set_modes(SSL *ssl) {
    return SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
}
static inline int anch_ssl_handshake_done(SSL *ssl) { return SSL_is_init_finished(ssl); }
static inline long anch_ssl_ctx_no_renegotiation(SSL_CTX *ctx) { return (long)SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE); }
#endif
