import Foundation

public struct HTTPServerOptions: Sendable {
    public var listen: [ListenAddress]
    /// Addresses served over TLS with `tls`.
    public var tlsListen: [ListenAddress] = []
    public var tls: TLSContext?
    /// Event-loop threads; one per core by default.
    public var loops: Int
    public var headerTimeoutMillis: UInt64 = 10_000
    public var idleTimeoutMillis: UInt64 = 60_000
    public var sendTimeoutMillis: UInt64 = 60_000
    public var accessLog = true
    /// File bodies go out with sendfile(2) on plain connections (as nginx's
    /// `sendfile on`); off, they are read into a buffer and sent from it.
    public var sendfile = true
    public var parserLimits = HTTPParserLimits()
    /// Called once per finished response (metrics), on the loop thread.
    public var observer: (@Sendable (AccessRecord) -> Void)?

    public init(listen: [ListenAddress], loops: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)) {
        self.listen = listen
        self.loops = loops
    }
}
