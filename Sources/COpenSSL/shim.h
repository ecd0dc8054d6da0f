#ifndef ANCHORAGE_COPENSSL_SHIM_H
#define ANCHORAGE_COPENSSL_SHIM_H
#include <openssl/evp.h>
#include <openssl/err.h>
#endif
