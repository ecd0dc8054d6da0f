import Foundation
import Glibc

/// The HTTP/1.1 server: one epoll loop per thread, each with its own
/// SO_REUSEPORT listener per address. The kernel spreads accepts by a hash;
/// a loop that accepts while another has fewer open connections hands the
/// connection over (`ConnectionPlacement`). No lock is taken on the
/// request path.
public final class HTTPServer: @unchecked Sendable {
    public let options: HTTPServerOptions
    private let handler: any HTTPHandler
    private var contexts: [LoopContext] = []
    private var threads: [Thread] = []
    public private(set) var boundAddresses: [ListenAddress] = []
    public private(set) var boundTLSAddresses: [ListenAddress] = []

    public init(options: HTTPServerOptions, handler: any HTTPHandler) {
        self.options = options
        self.handler = handler
    }

    /// Binds every address and starts the loops. Port 0 binds a free port,
    /// shared by all loops (see `boundAddresses`).
    public func start() throws {
        signal(SIGPIPE, SIG_IGN)
        for i in 0..<options.loops {
            contexts.append(LoopContext(loop: try EventLoop(index: i), options: options, handler: handler))
        }
        for ctx in contexts { ctx.siblings = contexts }
        for (addr, secure) in options.listen.map({ ($0, false) }) + options.tlsListen.map({ ($0, true) }) {
            let port = try listen(on: addr, secure: secure)
            if secure {
                boundTLSAddresses.append(ListenAddress(host: addr.host, port: port))
            } else {
                boundAddresses.append(ListenAddress(host: addr.host, port: port))
            }
        }
        for ctx in contexts {
            let loop = ctx.loop
            let t = Thread { withExtendedLifetime(ctx) { loop.run() } }
            t.name = "anchorage-loop-\(loop.index)"
            t.stackSize = 1 << 20
            threads.append(t)
            t.start()
        }
    }

    /// One SO_REUSEPORT listener per loop on `addr`; returns the bound port.
    private func listen(on addr: ListenAddress, secure: Bool) throws -> UInt16 {
        var port = addr.port
        if port != 0 {
            // SO_REUSEPORT would let a second daemon of the same user
            // share the port silently and take half the requests. A plain
            // bind first fails with EADDRINUSE if anything listens there.
            Glibc.close(try Socket.listen(host: addr.host, port: port, reusePort: false))
        }
        for (i, ctx) in contexts.enumerated() {
            let fd = try Socket.listen(host: addr.host, port: port, reusePort: true)
            if i == 0 && port == 0 { port = Socket.boundPort(fd) }
            ctx.listeners.append(fd)
            if secure { ctx.tlsListeners.insert(fd) }
            ctx.loop.register(fd, events: EV_IN, ctx)
        }
        return port
    }

    public var openConnections: Int { connectionsPerLoop.reduce(0, +) }

    /// Open connections on each loop, in loop order.
    var connectionsPerLoop: [Int] {
        contexts.map { $0.openConnections.load(ordering: .relaxed) }
    }

    /// Stops accepting, lets in-flight responses finish for up to `grace`
    /// seconds, then closes everything.
    public func shutdown(grace: Double) {
        for ctx in contexts { ctx.loop.execute { ctx.beginDrain() } }
        let until = Date().addingTimeInterval(grace)
        while openConnections > 0 && Date() < until {
            usleep(20_000)
        }
        let sem = DispatchSemaphore(value: 0)
        for ctx in contexts {
            ctx.loop.execute {
                ctx.closeAll()
                sem.signal()
            }
        }
        for _ in contexts { _ = sem.wait(timeout: .now() + 2) }
        for ctx in contexts {
            ctx.loop.stop()
            ctx.loop.waitUntilStopped(timeout: 2)
        }
        for ctx in contexts { ctx.siblings = [] }   // the loops reference each other
    }
}
