import CLinux
import Foundation
import Glibc
import Synchronization

public struct HTTPServerOptions: Sendable {
    public var listen: [ListenAddress]
    /// Addresses served over TLS with `tls`.
    public var tlsListen: [ListenAddress] = []
    public var tls: TLSContext?
    public var loops: Int
    public var headerTimeoutMillis: UInt64 = 10_000
    public var idleTimeoutMillis: UInt64 = 60_000
    public var sendTimeoutMillis: UInt64 = 60_000
    public var accessLog = true
    public var sendfile = SendfileMode.auto
    /// Pin loops to CPUs and steer connections to their CPU's loop
    /// (`LoopCPUs`); the daemon's default is `auto`.
    public var cpuAffinity = CPUAffinity.off
    public var parserLimits = HTTPParserLimits()
    /// Called once per finished response (metrics), on the loop thread.
    public var observer: (@Sendable (AccessRecord) -> Void)?

    public init(listen: [ListenAddress], loops: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)) {
        self.listen = listen
        self.loops = loops
    }
}

/// How file bodies reach a plain (non-TLS) client. sendfile(2) hands the
/// page cache's 4 KiB pages to the socket: no copy in the sender, which is
/// what a NIC with scatter-gather wants. Over loopback the receiver copies
/// every byte anyway, and measured here it copies out of page-cache pages
/// far more slowly than out of a sender's own buffers: reading into a
/// 256 KiB buffer and sending from it measured 2× the single-client
/// throughput on a warm 1 GiB blob
/// (2.4-3.5 -> 5.7-6.6 GB/s, server CPU 0.35 -> 0.16 s/GiB) and +20% with
/// 100 clients (the clients' CPU fell 8.1 -> 5.3 s per 20 GB). That is not
/// so on every machine, so under `auto` complete files go to loopback
/// clients whichever way the running server measured better: a busy loop's
/// the way `LoopbackSendChooser` found cheaper for the whole machine, a
/// lone stream the way `LoneStreamSendChooser` found faster.
public enum SendfileMode: String, Sendable, CaseIterable {
    case auto, on, off

    func usesSendfile(to peer: PeerAddress) -> Bool {
        switch self {
        case .on: true
        case .off: false
        case .auto: !peer.isLoopback
        }
    }
}

/// Per-loop state shared by that loop's connections: the scratch read buffer,
/// the body copy buffer, the connection table for timeout sweeps, the handler.
final class LoopContext: EventHandler, @unchecked Sendable {
    let loop: EventLoop
    let options: HTTPServerOptions
    let handler: any HTTPHandler
    let scratch: UnsafeMutableRawBufferPointer
    /// File bodies sent without sendfile and shorter than a mapped window
    /// (`Connection.sendWindow`) go through this (`Connection.sendCopied`).
    let copyBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 * 1024, alignment: 4096)
    /// Where this loop maps the file windows it sends from (`FileWindow`).
    let windowSlot = WindowSlot()
    let dates = HTTPDateCache()
    /// Large file bodies this loop's connections are sending now that are
    /// not forced to sendfile (copied from mapped windows, or on a busy loop
    /// sent the chooser's way; `SendBufferPolicy`, `LoopbackSendChooser`).
    /// A pinned loop floats while it sends any: these go to local clients, and a client sharing the pinned loop's CPU could
    /// not get out of its way (one warm 1 GiB pull, 25 alternating rounds:
    /// median 3270 MB/s pinned against 3542 floating).
    var fileBodies = 0 {
        didSet {
            let busy = SendBufferPolicy.busyLoop
            if (oldValue >= busy) != (fileBodies >= busy) { loopbackSend.markUnsteady() }
            floatWhileSending(before: oldValue + localSendfileBodies)
        }
    }
    /// Large bodies `sendfile = on` sends to loopback clients: they float a
    /// pinned loop too (one warm 1 GiB pull, 16 alternating rounds: median
    /// 2341 MB/s while they did not, 3146 floating).
    var localSendfileBodies = 0 {
        didSet { floatWhileSending(before: fileBodies + oldValue) }
    }

    /// Unpins the loop when its first local file body starts and pins it
    /// again when the last one ends.
    private func floatWhileSending(before: Int) {
        let now = fileBodies + localSendfileBodies
        guard let cpus, (before == 0) != (now == 0) else { return }
        if now == 0 {
            _ = anch_pin_current_thread(cpus.cpus[loop.index])
        } else {
            _ = cpus.cpus.withUnsafeBufferPointer { anch_set_thread_cpus($0.baseAddress, Int32($0.count)) }
        }
    }
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
    /// The loops' CPUs when they are pinned; set before the loops start.
    var cpus: LoopCPUs?

    /// Shared by every loop: how busy loops, and lone streams, send to loopback clients.
    let loopbackSend: LoopbackSendChooser
    let loneSend: LoneStreamSendChooser

    init(loop: EventLoop, options: HTTPServerOptions, handler: any HTTPHandler,
         loopbackSend: LoopbackSendChooser, loneSend: LoneStreamSendChooser) {
        self.loop = loop
        self.options = options
        self.handler = handler
        self.loopbackSend = loopbackSend
        self.loneSend = loneSend
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

    /// The loop a new connection should live on (`ConnectionPlacement`).
    /// With pinned loops the kernel already queued it to the listener of
    /// the loop on its CPU (`anch_steer_reuseport_by_cpu`): that is this
    /// one, preferred within the slack.
    private func placement() -> LoopContext {
        guard siblings.count > 1 else { return self }
        let open = siblings.map { $0.openConnections.load(ordering: .relaxed) }
        return siblings[ConnectionPlacement.choose(preferred: cpus == nil ? nil : loop.index, accepting: loop.index, open: open)]
    }

    /// The index of the loop pinned to the CPU that received `fd`'s last
    /// packet, if loops are pinned.
    func loopForIncomingCPU(_ fd: Int32) -> Int? {
        cpus?.loop(forCPU: anch_incoming_cpu(fd))
    }

    /// Moves an idle keep-alive connection to loop `to` if placement agrees;
    /// the caller's `Connection` object must not touch the fd afterwards.
    func handOver(_ c: Connection, to: Int) -> Bool {
        guard siblings.indices.contains(to), to != loop.index else { return false }
        let open = siblings.map { $0.openConnections.load(ordering: .relaxed) }
        guard ConnectionPlacement.choose(preferred: to, accepting: loop.index, open: open) == to else { return false }
        guard connections.removeValue(forKey: c.fd) != nil else { return false }
        loop.unregister(c.fd)
        let target = siblings[to]
        openConnections.subtract(1, ordering: .relaxed)
        target.openConnections.add(1, ordering: .relaxed)
        let moved = Accepted(fd: c.fd, peer: c.peer, session: nil)
        target.loop.execute { target.adopt(moved) }
        return true
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

/// The HTTP/1.1 server: one epoll loop per thread, each with its own
/// SO_REUSEPORT listener per address. The kernel spreads accepts by a hash;
/// a loop that accepts while another has fewer open connections hands the
/// connection over (`LoopContext.placement`). No lock is taken on the
/// request path.
public final class HTTPServer: @unchecked Sendable {
    public let options: HTTPServerOptions
    private let handler: any HTTPHandler
    private var contexts: [LoopContext] = []
    private var threads: [Thread] = []
    public private(set) var boundAddresses: [ListenAddress] = []
    public private(set) var boundTLSAddresses: [ListenAddress] = []
    /// How busy loops, and lone streams, send to loopback clients (shared by every loop).
    let loopbackSend = LoopbackSendChooser()
    let loneSend = LoneStreamSendChooser()

    public init(options: HTTPServerOptions, handler: any HTTPHandler) {
        self.options = options
        self.handler = handler
    }

    /// Binds every address and starts the loops. Port 0 binds a free port,
    /// shared by all loops (see `boundAddresses`).
    public func start() throws {
        signal(SIGPIPE, SIG_IGN)
        let loopbackSend = self.loopbackSend
        for i in 0..<options.loops {
            let loop = try EventLoop(index: i)
            contexts.append(LoopContext(loop: loop, options: options, handler: handler,
                                        loopbackSend: loopbackSend, loneSend: loneSend))
        }
        if options.sendfile == .auto {
            contexts.first?.loop.onTick { now in loopbackSend.tick(nowMillis: now) }
        }
        let cpus = LoopCPUs.plan(options.cpuAffinity, loops: contexts.count)
        for ctx in contexts {
            ctx.siblings = contexts
            ctx.cpus = cpus
        }
        for (addr, secure) in options.listen.map({ ($0, false) }) + options.tlsListen.map({ ($0, true) }) {
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
            // Pinned loops: the kernel queues a connection straight to the
            // listener of the loop on its CPU, so accepting it wakes no other
            // CPU (a halted vCPU takes ~0.1 ms to wake here).
            if let cpus, let first = contexts.first?.listeners.last,
               cpus.cpus.withUnsafeBufferPointer({ anch_steer_reuseport_by_cpu(first, $0.baseAddress, Int32($0.count)) }) != 0 {
                Log.warn("could not steer accepts by CPU", ["error": String(cString: strerror(errno))])
            }
            if secure {
                boundTLSAddresses.append(ListenAddress(host: addr.host, port: port))
            } else {
                boundAddresses.append(ListenAddress(host: addr.host, port: port))
            }
        }
        for ctx in contexts {
            let loop = ctx.loop
            let cpu = ctx.cpus?.cpus[loop.index]
            let t = Thread {
                if let cpu, anch_pin_current_thread(cpu) != 0 {
                    Log.warn("could not pin event loop to its CPU", ["loop": "\(loop.index)", "cpu": "\(cpu)"])
                }
                withExtendedLifetime(ctx) { loop.run() }
            }
            t.name = "anchorage-loop-\(loop.index)"
            t.stackSize = 1 << 20
            threads.append(t)
            t.start()
        }
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
