import CLinux
import Glibc

/// One client connection: an explicit state machine driven by its loop.
///
///     reading ──head parsed──▶ handling ──response──▶ writing ──done──▶ reading (keep-alive)
///        │                                               │                 └──▶ closed
///        └── parse error / timeout ──────────────────────┴──── error ─────────▶ closed
///
/// Pipelined requests stay in `pending` (or in the kernel) and are parsed only
/// after the current response is written, so answers go out in order.
/// An idle connection holds no buffers: reads land in the loop's scratch
/// buffer and only an incomplete head is copied into `pending`.
final class Connection: EventHandler, @unchecked Sendable {
    enum State { case reading, handling, writing, closed }

    let fd: Int32
    let peer: PeerAddress
    let loop: EventLoop
    let context: LoopContext
    private(set) var state = State.reading
    private var pending: [UInt8] = []
    private var parser: HTTPRequestParser
    private var generation = 0
    private var interest: UInt32 = EV_IN
    /// Monotonic ms after which the connection is closed; 0 = none.
    var deadline: UInt64 = 0

    // The request being answered.
    private var request: HTTPRequest?
    private var startedMicros: UInt64 = 0
    private var headSentMicros: UInt64 = 0
    private var keepAlive = true
    private var out = Outgoing()

    private struct Outgoing {
        var head: [UInt8] = []
        var headSent = 0
        var body: HTTPBody = .empty
        var bodySent: Int64 = 0
        var status = 0
        var cacheStatus: String?
    }

    init(fd: Int32, peer: PeerAddress, context: LoopContext) {
        self.fd = fd
        self.peer = peer
        self.loop = context.loop
        self.context = context
        self.parser = HTTPRequestParser(limits: context.options.parserLimits)
        deadline = monotonicMillis() + context.options.headerTimeoutMillis
    }

    var isIdle: Bool { state == .reading && pending.isEmpty }

    func handleEvent(_ events: UInt32) {
        switch state {
        case .reading:
            if events & EV_IN != 0 || events & EV_ERR != 0 { readAvailable() }
        case .writing:
            if events & EV_ERR != 0 && events & EV_OUT == 0 { close(); return }
            if events & EV_OUT != 0 { continueWriting() }
        case .handling:
            if events & EV_ERR != 0 { close() }
        case .closed:
            break
        }
    }

    /// Called from the loop's tick with the current time.
    func checkDeadline(_ now: UInt64) {
        guard deadline != 0, now >= deadline, state != .closed else { return }
        if state == .reading && !pending.isEmpty {
            // Slowloris: the head did not arrive in time.
            sendErrorAndClose(.requestTimeout, "request header timeout")
        } else {
            close()
        }
    }

    // MARK: reading

    private func readAvailable() {
        let scratch = context.scratch
        while state == .reading {
            let n = recv(fd, scratch.baseAddress, scratch.count, 0)
            if n > 0 {
                if pending.isEmpty {
                    // A new request starts: it gets the header timeout.
                    deadline = monotonicMillis() + context.options.headerTimeoutMillis
                }
                pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: scratch[0..<n]))
                parseBuffered()
                if n < scratch.count { return }
            } else if n == 0 {
                close()
                return
            } else {
                if errno == EAGAIN || errno == EINTR { return }
                close()
                return
            }
        }
    }

    private func parseBuffered() {
        guard state == .reading, !pending.isEmpty else { return }
        let result = pending.withUnsafeBytes { parser.parse($0) }
        switch result {
        case .needMore:
            return
        case .error(let e):
            sendErrorAndClose(e.status, e.reason)
        case .request(let consumed):
            guard var req = parser.parsed else { return }
            parser.reset()
            pending.removeFirst(consumed)
            if pending.isEmpty { pending = [] }   // release capacity while handling
            req.client = peer
            dispatch(req)
        }
    }

    private func dispatch(_ req: HTTPRequest) {
        request = req
        startedMicros = monotonicMicros()
        keepAlive = req.keepAlive && !context.draining
        state = .handling
        deadline = 0
        headSentMicros = 0
        generation += 1
        setInterest(0)
        if req.framing != .none {
            // The mirror takes no request bodies. We will not read this one, so
            // the connection cannot be reused after the answer.
            keepAlive = false
            if req.method.isRead {
                sendErrorAndClose(.payloadTooLarge, "request body not allowed")
                return
            }
        }
        context.handler.handle(req, HTTPResponder(connection: self, generation: generation))
    }

    // MARK: writing

    func deliver(_ response: HTTPResponse, generation g: Int) {
        guard g == generation, state == .handling, let req = request else { return }
        let r = ResponseFinalizer.finalize(response, for: req)
        if r.closeConnection { keepAlive = false }
        out = Outgoing()
        out.head = ResponseFinalizer.headBytes(r, keepAlive: keepAlive, version: req.version, date: context.dates.now)
        out.status = r.status.code
        out.cacheStatus = r.cacheStatus
        if req.method != .head && !r.status.forbidsBody {
            if case .lengthOnly = r.body {
                // A handler bug: a GET answered without a body. Never send a
                // length we cannot fill on a connection we would reuse.
                Log.error("lengthOnly body for a GET", ["path": req.path])
                out.head = ResponseFinalizer.headBytes(HTTPResponse.text(.internalServerError, "internal error"), keepAlive: false, version: req.version, date: context.dates.now)
                keepAlive = false
                out.body = .empty
                out.head.append(contentsOf: Array("internal error\n".utf8))
            } else if case .bytes(let b) = r.body {
                out.head.append(contentsOf: b)   // one send for head and small bodies
                out.body = .empty
            } else {
                out.body = r.body
            }
        }
        state = .writing
        continueWriting()
    }

    private func continueWriting() {
        while state == .writing {
            if out.headSent < out.head.count {
                let more: Int32 = { if case .empty = out.body { return 0 } else { return Int32(MSG_MORE) } }()
                let n = out.head.withUnsafeBytes { p in
                    send(fd, p.baseAddress! + out.headSent, p.count - out.headSent, Int32(MSG_NOSIGNAL) | more)
                }
                if n < 0 {
                    if errno == EAGAIN { waitWritable(); return }
                    if errno == EINTR { continue }
                    close(); return
                }
                out.headSent += n
                if out.headSent == out.head.count { headSentMicros = monotonicMicros() }
                continue
            }
            switch out.body {
            case .empty, .bytes, .lengthOnly:
                finishResponse()
                return
            case .file(let file, let offset, let length):
                if out.bodySent >= length { finishResponse(); return }
                var off = offset + out.bodySent
                let n = anch_sendfile(fd, file.fd, &off, Int(min(length - out.bodySent, 1 << 30)))
                if n < 0 {
                    if errno == EAGAIN { waitWritable(); return }
                    if errno == EINTR { continue }
                    close(); return
                }
                if n == 0 { close(); return }   // file shorter than promised: never pad
                out.bodySent += Int64(n)
                deadline = 0
            case .growing(let source, let offset, let length):
                if out.bodySent >= length { finishResponse(); return }
                guard let readable = source.readable() else {
                    // The upstream transfer failed verification or broke:
                    // cut the client off before it holds a complete body.
                    Log.warn("stream aborted", ["client": peer.host, "path": request?.path ?? ""])
                    close(); return
                }
                let position = offset + out.bodySent
                let limit = min(offset + length, readable)
                if position >= limit {
                    let g = generation
                    let armed = source.notifyWhenReadable(beyond: position) { [self] in
                        loop.execute { self.resumeAfterWake(generation: g) }
                    }
                    if armed {
                        setInterest(0)
                        deadline = 0
                        return
                    }
                    continue
                }
                var off = position
                let n = anch_sendfile(fd, source.fd, &off, Int(limit - position))
                if n < 0 {
                    if errno == EAGAIN { waitWritable(); return }
                    if errno == EINTR { continue }
                    close(); return
                }
                if n == 0 { close(); return }
                out.bodySent += Int64(n)
            }
        }
    }

    private func resumeAfterWake(generation g: Int) {
        guard g == generation, state == .writing else { return }
        continueWriting()
    }

    private func waitWritable() {
        setInterest(EV_OUT)
        if deadline == 0 {
            deadline = monotonicMillis() + context.options.sendTimeoutMillis
        }
    }

    private func finishResponse() {
        logAccess()
        out = Outgoing()
        request = nil
        if !keepAlive || context.draining {
            close()
            return
        }
        state = .reading
        deadline = monotonicMillis() + (pending.isEmpty ? context.options.idleTimeoutMillis : context.options.headerTimeoutMillis)
        setInterest(EV_IN)
        parseBuffered()
    }

    private func sendErrorAndClose(_ status: HTTPStatus, _ reason: String) {
        if request == nil {
            // An error before any head was parsed: log it under a placeholder.
            request = HTTPRequest(method: .other("-"), target: "-")
            startedMicros = monotonicMicros()
        }
        keepAlive = false
        state = .handling
        generation += 1
        var r = HTTPResponse.text(status, reason)
        r.closeConnection = true
        deliver(r, generation: generation)
    }

    private func logAccess() {
        guard let req = request else { return }
        let micros = monotonicMicros() &- startedMicros
        let bytes = Int64(out.headSent) + out.bodySent
        if context.options.accessLog {
            AccessLog.write(client: peer.host, method: req.method.description, path: req.target, status: out.status,
                            bytes: bytes, micros: micros, cache: out.cacheStatus)
        }
        if let observe = context.options.observer {
            observe(AccessRecord(method: req.method.description, path: req.path, status: out.status, bytes: out.bodySent,
                                 micros: micros, headMicros: headSentMicros > startedMicros ? headSentMicros - startedMicros : 0,
                                 cache: out.cacheStatus))
        }
    }

    private func setInterest(_ events: UInt32) {
        guard events != interest, state != .closed else { return }
        interest = events
        loop.modify(fd, events: events)
    }

    func close() {
        guard state != .closed else { return }
        if state == .writing, out.status != 0, request != nil { logAccess() }
        state = .closed
        generation += 1
        loop.unregister(fd)
        Glibc.close(fd)
        context.remove(self)
        out = Outgoing()
        pending = []
    }
}
