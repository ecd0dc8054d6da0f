import COpenSSL
import Glibc

/// How a connection's bytes cross the wire: the plain socket, or an OpenSSL
/// session over it (`tls_listen`). The state machine above it is the same.
struct Transport {
    let fd: Int32
    /// The TLS session (OpenSSL SSL*), nil for a plain connection.
    private(set) var session: OpaquePointer?
    /// A TLS session whose handshake has not finished yet.
    private(set) var handshaking: Bool

    init(fd: Int32, session: OpaquePointer?) {
        self.fd = fd
        self.session = session
        handshaking = session != nil
    }

    var isTLS: Bool { session != nil }

    /// True once, when the handshake is found finished.
    mutating func handshakeFinished() -> Bool {
        guard handshaking, let ssl = session, anch_ssl_handshake_done(ssl) == 1 else { return false }
        handshaking = false
        return true
    }

    enum Received: Equatable {
        case bytes(Int)
        /// Nothing more now; under TLS a handshake may need to write first.
        case wouldBlock(needsWritable: Bool)
        case interrupted
        /// The peer closed or the connection failed.
        case closed
    }

    func receive(into buffer: UnsafeMutableRawBufferPointer) -> Received {
        if let ssl = session {
            let r = SSL_read(ssl, buffer.baseAddress, Int32(buffer.count))
            if r > 0 { return .bytes(Int(r)) }
            switch SSL_get_error(ssl, r) {
            case SSL_ERROR_WANT_READ: return .wouldBlock(needsWritable: false)
            case SSL_ERROR_WANT_WRITE: return .wouldBlock(needsWritable: true)
            default: return .closed
            }
        }
        let n = recv(fd, buffer.baseAddress, buffer.count, 0)
        if n > 0 { return .bytes(n) }
        if n == 0 { return .closed }
        return errno == EAGAIN ? .wouldBlock(needsWritable: false) : errno == EINTR ? .interrupted : .closed
    }

    /// Sends from `bytes`; `more` holds a head back until body bytes follow
    /// (MSG_MORE, plain connections only).
    func send(_ bytes: UnsafeRawBufferPointer, more: Bool = false) -> IOResult {
        guard bytes.count > 0 else { return .done(0) }
        if let ssl = session {
            let r = SSL_write(ssl, bytes.baseAddress, Int32(min(bytes.count, Int(Int32.max))))
            if r > 0 { return .done(Int(r)) }
            let e = SSL_get_error(ssl, r)
            return e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? .wouldBlock : .failed
        }
        return IOResult(Glibc.send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL) | (more ? Int32(MSG_MORE) : 0)))
    }

    /// Decrypted bytes OpenSSL already holds, which never raise EPOLLIN again.
    var hasBufferedInput: Bool {
        guard let ssl = session else { return false }
        return SSL_has_pending(ssl) == 1
    }

    mutating func close() {
        if let ssl = session {
            _ = SSL_shutdown(ssl)
            SSL_free(ssl)
            session = nil
        }
        Glibc.close(fd)
    }
}
