import CLinux
import COpenSSL
import Synchronization

/// The server's TLS settings (OpenSSL): TLS 1.2 and newer, no
/// renegotiation; under TLS 1.2 only forward-secret AEAD suites (Mozilla's
/// "intermediate" list: no static RSA key exchange, no CBC); TLS 1.3's
/// suites are all AEAD and forward-secret already. The certificate and key are
/// loaded into a new SSL_CTX on `reload` (SIGHUP); connections accepted after
/// that use it, established ones keep theirs.
public final class TLSContext: @unchecked Sendable {
    public let certPath: String
    public let keyPath: String
    private let current = Mutex<Int>(0)   // SSL_CTX* bit pattern
    /// Handshakes in progress on the whole server, and the most since the
    /// count was last zero.
    private let handshakes = Mutex<(now: Int, peak: Int)>((0, 0))

    /// Past this many unfinished handshakes a new TLS connection is closed
    /// at once: a handshake holds tens of KiB until it ends, so clients
    /// that start handshakes and never finish them (they end by
    /// `header_timeout`) cannot take the server's memory.
    static let maxHandshakes = 1024

    public struct LoadError: Error, CustomStringConvertible {
        public let description: String
    }

    static let tls12Ciphers = [
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-GCM-SHA384",
    ].joined(separator: ":")

    public init(certPath: String, keyPath: String) throws {
        self.certPath = certPath
        self.keyPath = keyPath
        try reload()
    }

    public func reload() throws {
        guard let ctx = SSL_CTX_new(TLS_server_method()) else { throw LoadError(description: "SSL_CTX_new failed") }
        _ = anch_ssl_ctx_min_tls12(ctx)
        _ = anch_ssl_ctx_no_renegotiation(ctx)
        guard SSL_CTX_set_cipher_list(ctx, TLSContext.tls12Ciphers) == 1 else {
            SSL_CTX_free(ctx)
            throw LoadError(description: "cannot set the TLS 1.2 cipher list: \(TLSContext.lastError())")
        }
        guard SSL_CTX_use_certificate_chain_file(ctx, certPath) == 1 else {
            SSL_CTX_free(ctx)
            throw LoadError(description: "cannot load certificate chain \(certPath): \(TLSContext.lastError())")
        }
        guard SSL_CTX_use_PrivateKey_file(ctx, keyPath, SSL_FILETYPE_PEM) == 1, SSL_CTX_check_private_key(ctx) == 1 else {
            SSL_CTX_free(ctx)
            throw LoadError(description: "cannot load private key \(keyPath) (or it does not match the certificate): \(TLSContext.lastError())")
        }
        let old = current.withLock { c -> Int in
            let o = c
            c = Int(bitPattern: UnsafeRawPointer(ctx))
            return o
        }
        // SSL objects hold their own reference to the context, so the old one
        // can be released now.
        if old != 0, let p = OpaquePointer(bitPattern: old) { SSL_CTX_free(p) }
    }

    /// A new server-side session on `fd`, counted as a handshake in progress
    /// until `handshakeEnded`; nil past `maxHandshakes`.
    func newSession(fd: Int32) -> OpaquePointer? {
        let admitted = handshakes.withLock { h -> Bool in
            guard h.now < TLSContext.maxHandshakes else { return false }
            h.now += 1
            h.peak = max(h.peak, h.now)
            return true
        }
        guard admitted else { return nil }
        let ctx = current.withLock { $0 }
        guard let c = OpaquePointer(bitPattern: ctx), let ssl = SSL_new(c) else {
            handshakeEnded()
            return nil
        }
        SSL_set_fd(ssl, fd)
        SSL_set_accept_state(ssl)
        _ = anch_ssl_set_modes(ssl)
        return ssl
    }

    /// A handshake finished or its connection closed. When the last of a
    /// burst ends, the heap pages the handshakes used go back to the system.
    func handshakeEnded() {
        let burstOver = handshakes.withLock { h -> Bool in
            h.now -= 1
            guard h.now == 0, h.peak >= 64 else { return false }
            h.peak = 0
            return true
        }
        if burstOver { _ = anch_release_free_memory() }
    }

    var handshakesInProgress: Int { handshakes.withLock { $0.now } }

    static func lastError() -> String {
        let e = ERR_get_error()
        guard e != 0 else { return "unknown error" }
        var buf = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(e, &buf, 256)
        return stringFromCBuffer(buf)
    }
}
