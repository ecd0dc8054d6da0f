import Glibc
import Synchronization

/// Per-loop state shared by that loop's connections: the scratch read
/// buffer, the body copy buffer, the connection table for timeout sweeps,
/// the handler, and the loop's listeners.
final class LoopContext: EventHandler, @unchecked Sendable {
    let loop: EventLoop
    let options: HTTPServerOptions
    let handler: any HTTPHandler
    /// Where every read lands first (`Connection.readAvailable`).
    let scratch: UnsafeMutableRawBufferPointer
    /// File and stream bodies that are not sent with sendfile are read into
    /// this and sent from it, one connection at a time.
    let copyBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 * 1024, alignment: 4096)
    let dates = HTTPDateCache()
    private(set) var connections: [Int32: Connection] = [:]
    var listeners: [Int32] = []
    var tlsListeners: Set<Int32> = []
    private(set) var draining = false
    /// A spare fd released when accept hits EMFILE, so the pending connection
    /// can be accepted and closed instead of spinning on a readable listener.
    private var spareFD: Int32 = open("/dev/null", O_RDONLY | O_CLOEXEC)
    let openConnections: Atomic<Int>
    /// Every loop of the server, this one included; set before the loops start.
    var siblings: [LoopContext] = []

    init(loop: EventLoop, options: HTTPServerOptions, handler: any HTTPHandler) {
        self.loop = loop
        self.options = options
        self.handler = handler
        scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
        openConnections = Atomic(0)
        loop.onTick { [weak self] now in
            guard let self else { return }
            for c in Array(connections.values) { c.checkDeadline(now) }
        }
    }

    deinit {
        scratch.deallocate()
        copyBuffer.deallocate()
    }

    /// A listener became readable.
    func handleEvent(_ events: UInt32) {
        for l in listeners {
            while let (fd, peer) = Socket.accept(l) ?? acceptAfterEMFILE(l) {
                var session: OpaquePointer?
                if tlsListeners.contains(l) {
                    session = options.tls?.newSession(fd: fd)
                    if session == nil {
                        Glibc.close(fd)
                        continue
                    }
                }
                let accepted = Accepted(fd: fd, peer: peer, session: session)
                let home = placement()
                home.openConnections.add(1, ordering: .relaxed)
                if home === self {
                    adopt(accepted)
                } else {
                    home.loop.execute { home.adopt(accepted) }
                }
            }
        }
    }

    private func placement() -> LoopContext {
        guard siblings.count > 1 else { return self }
        let open = siblings.map { $0.openConnections.load(ordering: .relaxed) }
        return siblings[ConnectionPlacement.choose(accepting: loop.index, open: open)]
    }

    /// Serves an accepted connection on this loop (already counted in
    /// `openConnections` by whichever loop accepted it).
    private func adopt(_ a: Accepted) {
        let c = Connection(fd: a.fd, peer: a.peer, context: self, tls: a.session)
        connections[a.fd] = c
        loop.register(a.fd, events: EV_IN, c)
        // Deferred accept: the request is usually here already.
        c.handleEvent(EV_IN)
    }

    private func acceptAfterEMFILE(_ listener: Int32) -> (Int32, PeerAddress)? {
        guard errno == EMFILE || errno == ENFILE, spareFD >= 0 else { return nil }
        Glibc.close(spareFD)
        let fd = Glibc.accept(listener, nil, nil)
        if fd >= 0 { Glibc.close(fd) }
        spareFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
        Log.warn("connection refused: out of file descriptors")
        return nil
    }

    func remove(_ c: Connection) {
        if connections.removeValue(forKey: c.fd) != nil {
            openConnections.subtract(1, ordering: .relaxed)
        }
    }

    /// Stops accepting and closes idle connections; busy ones close after
    /// their current response.
    func beginDrain() {
        draining = true
        for l in listeners {
            loop.unregister(l)
            Glibc.close(l)
        }
        listeners = []
        for c in Array(connections.values) where c.isIdle { c.close() }
    }

    func closeAll() {
        for c in Array(connections.values) { c.close() }
    }
}

/// A connection accepted on one loop, on its way to the loop that serves it.
/// The TLS session (if any) is used by that loop only.
private struct Accepted: @unchecked Sendable {
    let fd: Int32
    let peer: PeerAddress
    let session: OpaquePointer?
}
