import Glibc

/// One client connection: an explicit state machine driven by its loop.
///
///     reading ──head parsed──▶ handling ──response──▶ writing ──done──▶ reading (keep-alive)
///        │                                               │                 └──▶ closed
///        └── parse error / timeout ──────────────────────┴──── error ─────────▶ closed
///
/// An answer given before the request's body was read (a refused upload)
/// ends in `lingering`: the write side is shut, and what the client still
/// sends is read and dropped for a few seconds, so the close does not reset
/// the connection before the client has read the answer (as nginx's
/// lingering close).
///
/// Pipelined requests stay in `pending` (or in the kernel) and are parsed only
/// after the current response is written, so answers go out in order.
/// An idle connection holds no buffers: reads land in the loop's scratch
/// buffer and only an incomplete head is copied into `pending`.
final class Connection: EventHandler, @unchecked Sendable {
    enum State { case reading, handling, writing, lingering, closed }

    let fd: Int32
    let peer: PeerAddress
    let loop: EventLoop
    let context: LoopContext
    private(set) var state = State.reading
    private var transport: Transport
    private var pending: [UInt8] = []
    private var parser: HTTPRequestParser
    private var generation = 0
    private var interest: UInt32 = EV_IN
    /// Monotonic ms after which the connection is closed; 0 = none.
    var deadline: UInt64 = 0

    // The request being answered.
    private(set) var request: HTTPRequest?
    private(set) var startedMicros: UInt64 = 0
    private(set) var headSentMicros: UInt64 = 0
    private var keepAlive = true
    /// The request had a body that was not read to its end.
    private var bodyUnread = false
    static let lingerMillis: UInt64 = 5000
    private(set) var out = Outgoing()
    private var sender = BodySender()
    /// The request body being read for the handler (`beginBody`), and who takes it.
    private var bodyDecoder: RequestBodyDecoder?
    private var bodyReceiver: (any RequestBodyReceiver)?

    /// File bodies up to this size are read into the head buffer.
    static let inlineFileLimit: Int64 = 16 * 1024

    struct Outgoing {
        var head: [UInt8] = []
        /// Where the head ends in `head` when a small body was appended to it.
        var headLength = Int.max
        var headSent = 0
        var body: HTTPBody = .empty
        var bodySent: Int64 = 0
        var status = 0
        var cacheStatus: CacheResult?
        var label = RouteLabel.other
    }

    init(fd: Int32, peer: PeerAddress, context: LoopContext, tls: OpaquePointer? = nil) {
        self.fd = fd
        self.peer = peer
        self.loop = context.loop
        self.context = context
        self.transport = Transport(fd: fd, session: tls)
        self.parser = HTTPRequestParser(limits: context.options.parserLimits)
        deadline = monotonicMillis() + context.options.headerTimeoutMillis
    }

    var isIdle: Bool { state == .reading && pending.isEmpty }

    func handleEvent(_ events: UInt32) {
        let tls = transport.isTLS
        switch state {
        case .reading:
            if events & EV_IN != 0 || events & EV_ERR != 0 || (tls && events & EV_OUT != 0) { readAvailable() }
        case .writing:
            if events & EV_ERR != 0 && events & EV_OUT == 0 { close(); return }
            if events & EV_OUT != 0 || (tls && events & EV_IN != 0) { continueWriting() }
        case .handling:
            if events & EV_ERR != 0 { close(); return }
            if bodyReceiver != nil, events & EV_IN != 0 || (tls && events & EV_OUT != 0) { readBody() }
        case .lingering:
            drain()
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
        while state == .reading {
            guard let read = receive() else { return }
            if pending.isEmpty {
                // A new request starts: it gets the header timeout.
                deadline = monotonicMillis() + context.options.headerTimeoutMillis
                parseFresh(read)
            } else {
                pending.append(contentsOf: read)
                parseBuffered()
            }
            if read.count < context.scratch.count && !transport.isTLS { return }
        }
    }

    /// One read into the loop's scratch buffer: the bytes, or nil when
    /// nothing more is there now (under TLS the handshake's interest is set)
    /// or the connection closed (and is closed here).
    private func receive() -> UnsafeRawBufferPointer? {
        let scratch = context.scratch
        while true {
            let got = transport.receive(into: scratch)
            if transport.handshakeFinished() { context.options.tls?.handshakeEnded() }
            switch got {
            case .bytes(let n):
                return UnsafeRawBufferPointer(rebasing: scratch[0..<n])
            case .wouldBlock(let needsWritable):
                if transport.isTLS { setInterest(needsWritable ? EV_IN | EV_OUT : EV_IN) }
                return nil
            case .interrupted:
                continue
            case .closed:
                close()
                return nil
            }
        }
    }

    private func parseBuffered() {
        guard state == .reading, !pending.isEmpty else { return }
        take(pending.withUnsafeBytes { parser.parse($0) }) { consumed in
            guard consumed > 0 else { return }
            pending.removeFirst(consumed)
            if pending.isEmpty { pending = [] }   // release capacity while handling
        }
    }

    /// A read that starts a request is parsed where it landed: a head that
    /// came whole (the usual case) is never copied to `pending`. What the
    /// parser did not take is kept before dispatch, which may answer at once,
    /// reuse the scratch buffer and go on to the pipelined bytes.
    private func parseFresh(_ read: UnsafeRawBufferPointer) {
        take(parser.parse(read)) { consumed in
            if consumed < read.count { pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: read[consumed...])) }
        }
    }

    /// Acts on what the parser made of some bytes: `keep(from:)` keeps the
    /// bytes it did not take (all of them while the head is incomplete),
    /// before a parsed request is dispatched.
    private func take(_ result: HTTPRequestParser.Result, keep: (_ from: Int) -> Void) {
        switch result {
        case .needMore:
            keep(0)
        case .error(let e):
            sendErrorAndClose(e.status, e.reason)
        case .request(let consumed):
            guard var req = parser.parsed else { return }
            parser.reset()
            keep(consumed)
            req.client = peer
            req.overTLS = transport.isTLS
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
        bodyUnread = req.framing != .none
        if req.framing != .none {
            // Until a handler reads the body whole, the connection cannot be
            // reused after the answer.
            keepAlive = false
            if req.method.isRead {
                sendErrorAndClose(.payloadTooLarge, "request body not allowed")
                return
            }
        }
        context.handler.handle(req, HTTPResponder(connection: self, generation: generation))
        // Answered later, from another thread: stop reading meanwhile
        // (pipelined bytes wait in the kernel). A hit answered inside
        // `handle` costs no epoll_ctl at all.
        if state == .handling && bodyReceiver == nil { setInterest(0) }
    }

    // MARK: request bodies

    /// Starts reading the request's body into `receiver` (a handler asked,
    /// through its responder): first the bytes that came with the head,
    /// then from the socket as they arrive, `header_timeout` allowed between
    /// two reads. Once the body is whole the connection may be kept alive.
    func beginBody(_ receiver: any RequestBodyReceiver, generation g: Int) {
        guard g == generation, state == .handling, bodyReceiver == nil, let req = request else {
            return receiver.finish(.abandoned)
        }
        guard req.framing != .none else {
            return receiver.finish(nil)   // no body: an empty one
        }
        bodyDecoder = RequestBodyDecoder(req.framing)
        bodyReceiver = receiver
        if pending.isEmpty, !transport.isTLS, req.version == .http11,
           req.headers["Expect"]?.lowercased() == "100-continue" {
            // The client waits for this before sending the body (curl does,
            // for a second, on large uploads). 25 bytes on an idle socket:
            // one send; if it cannot go now the client sends after its wait.
            _ = Connection.continueLine.withUnsafeBytes { transport.send($0) }
        }
        if !pending.isEmpty {
            let step = pending.withUnsafeBytes { feedBody($0) }
            switch step {
            case .done(let consumed):
                pending.removeFirst(consumed)
                return finishBody(nil)
            case .needMore:
                pending = []
            case .failed(let e):
                return finishBody(e)
            }
        }
        deadline = monotonicMillis() + context.options.headerTimeoutMillis
        setInterest(EV_IN)
        readBody()
    }

    private static let continueLine = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    private func feedBody(_ bytes: UnsafeRawBufferPointer) -> RequestBodyDecoder.Step {
        guard var decoder = bodyDecoder, let receiver = bodyReceiver else { return .failed(.abandoned) }
        let step = decoder.feed(bytes) { receiver.receive($0) }
        bodyDecoder = decoder
        return step
    }

    private func readBody() {
        while bodyReceiver != nil && state == .handling {
            guard let read = receive() else { return }
            deadline = monotonicMillis() + context.options.headerTimeoutMillis
            switch feedBody(read) {
            case .needMore:
                continue
            case .done(let consumed):
                // Pipelined requests after the body wait for their turn.
                if consumed < read.count { pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: read[consumed...])) }
                return finishBody(nil)
            case .failed(let e):
                return finishBody(e)
            }
        }
    }

    /// The body ended (or was given up): the receiver hears it once. A whole
    /// body leaves the connection reusable.
    private func finishBody(_ error: RequestBodyError?) {
        guard let receiver = bodyReceiver else { return }
        bodyReceiver = nil
        bodyDecoder = nil
        if error == nil, let req = request {
            keepAlive = req.keepAlive && !context.draining
            bodyUnread = false
        }
        if state == .handling {
            setInterest(0)   // until the answer comes
            deadline = 0
        }
        receiver.finish(error)
    }

    // MARK: writing

    func deliver(_ response: HTTPResponse, generation g: Int) {
        guard g == generation, state == .handling, let req = request else { return }
        // Answered before its body was read: the rest is never read, so the
        // connection closes after this answer (`keepAlive` stays false).
        finishBody(.abandoned)
        let r = ResponseFinalizer.finalize(response, for: req)
        if r.closeConnection { keepAlive = false }
        out = Outgoing()
        let sendsBody = req.method != .head && !r.status.forbidsBody
        var inline = 0
        switch r.body {
        case .bytes(let b) where sendsBody: inline = b.count
        case .file(_, _, let length) where sendsBody && length <= Connection.inlineFileLimit: inline = Int(length)
        default: break
        }
        out.head = ResponseFinalizer.headBytes(r, keepAlive: keepAlive, version: req.version, date: context.dates.now, reserving: inline)
        out.status = r.status.code
        out.cacheStatus = r.cacheStatus
        out.label = r.label
        if sendsBody {
            switch r.body {
            case .lengthOnly:
                // A handler bug: a GET answered without a body. Never send a
                // length we cannot fill on a connection we would reuse.
                Log.error("lengthOnly body for a GET", ["path": req.path])
                out.head = ResponseFinalizer.headBytes(HTTPResponse.text(.internalServerError, "internal error"), keepAlive: false, version: req.version, date: context.dates.now)
                keepAlive = false
                out.head.append(contentsOf: Array("internal error\n".utf8))
            case .bytes(let b):
                out.headLength = out.head.count
                out.head.append(contentsOf: b)   // one send for head and small bodies
            case .file(let f, let offset, let length) where length <= Connection.inlineFileLimit && appendFile(f, offset: offset, length: Int(length)):
                break   // a small file (a manifest): one send instead of send + sendfile
            default:
                out.body = r.body
            }
        }
        state = .writing
        continueWriting()
    }

    private func continueWriting() {
        while state == .writing {
            if out.headSent < out.head.count {
                // MSG_MORE holds a head back until body bytes follow; a
                // stream may have none yet, and its head is the client's
                // first byte.
                let more: Bool = switch out.body {
                case .empty, .stream: false
                default: true
                }
                let r = out.head.withUnsafeBytes { p in
                    transport.send(UnsafeRawBufferPointer(rebasing: p[out.headSent...]), more: more)
                }
                guard case .done(let n) = r else {
                    if proceed(after: r) { continue } else { return }
                }
                out.headSent += n
                deadline = 0
                if out.headSent == out.head.count { headSentMicros = monotonicMicros() }
                continue
            }
            let r: IOResult
            switch out.body {
            case .empty, .bytes, .lengthOnly:
                finishResponse()
                return
            case .file(let file, let offset, let length):
                if out.bodySent >= length { finishResponse(); return }
                r = sender.send(on: transport, file: file, sendfile: context.options.sendfile, copyBuffer: context.copyBuffer,
                                at: offset + out.bodySent, count: min(length - out.bodySent, 1 << 30)) { file.read(at: $0, into: $1) }
            case .stream(let stream, let offset, let length):
                if out.bodySent >= length { finishResponse(); return }
                guard let available = stream.available() else {
                    // The stream failed (a digest mismatch, a broken upstream):
                    // cut the client off before it holds a complete body.
                    Log.warn("stream aborted", ["client": peer.host, "path": request?.path ?? ""])
                    close(); return
                }
                let position = offset + out.bodySent
                let limit = min(offset + length, available)
                if position >= limit {
                    if waitForStream(stream, beyond: position) { return }
                    continue
                }
                r = sender.send(on: transport, file: stream.localFile, sendfile: context.options.sendfile, copyBuffer: context.copyBuffer,
                                at: position, count: limit - position) { stream.read(at: $0, into: $1) }
            }
            guard case .done(let n) = r else {
                if proceed(after: r) { continue } else { return }
            }
            out.bodySent += Int64(n)
            deadline = 0   // progress: send_timeout counts from the next stall
        }
    }

    /// After a send that moved nothing: true to try again at once; false
    /// when the connection now waits for the socket or was closed.
    private func proceed(after r: IOResult) -> Bool {
        switch r {
        case .interrupted: return true
        case .wouldBlock: waitWritable()
        case .failed, .done: close()
        }
        return false
    }

    /// Sleeps until `stream` has bytes past `offset`; false if it already has.
    private func waitForStream(_ stream: any BodyStream, beyond offset: Int64) -> Bool {
        let g = generation
        let armed = stream.notifyWhenAvailable(beyond: offset) { [self] in
            loop.execute { self.resumeAfterWake(generation: g) }
        }
        if armed {
            setInterest(0)
            deadline = 0
        }
        return armed
    }

    /// Appends `length` bytes of a file to the head buffer; false (and the
    /// buffer unchanged) if the file could not be read whole.
    private func appendFile(_ file: OpenFile, offset: Int64, length: Int) -> Bool {
        let start = out.head.count
        out.head.append(contentsOf: repeatElement(0, count: length))
        let r = out.head.withUnsafeMutableBytes { p in
            file.read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: p[start...]))
        }
        guard r == .done(length) else {
            out.head.removeLast(length)
            return false
        }
        out.headLength = start
        return true
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
        if bodyUnread && !transport.isTLS {
            bodyUnread = false
            return linger()
        }
        if !keepAlive || context.draining {
            close()
            return
        }
        state = .reading
        deadline = monotonicMillis() + (pending.isEmpty ? context.options.idleTimeoutMillis : context.options.headerTimeoutMillis)
        setInterest(EV_IN)
        parseBuffered()
        if state == .reading, transport.hasBufferedInput { readAvailable() }
    }

    /// Shuts the write side and drops what the client still sends, until it
    /// closes or `lingerMillis` pass.
    private func linger() {
        shutdown(fd, Int32(SHUT_WR))
        state = .lingering
        pending = []
        deadline = monotonicMillis() + Connection.lingerMillis
        setInterest(EV_IN)
        drain()
    }

    private func drain() {
        while state == .lingering {
            guard receive() != nil else { return }
        }
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

    private func setInterest(_ events: UInt32) {
        guard events != interest, state != .closed else { return }
        interest = events
        loop.modify(fd, events: events)
    }

    func close() {
        guard state != .closed else { return }
        let receiver = bodyReceiver
        bodyReceiver = nil
        bodyDecoder = nil
        defer { receiver?.finish(.truncated) }   // after the connection is closed: an answer is dropped
        if state == .writing, out.status != 0, request != nil { logAccess() }
        state = .closed
        generation += 1
        loop.unregister(fd)
        let handshaking = transport.handshaking
        transport.close()
        // After the session is freed: the last of a burst returns the heap.
        if handshaking { context.options.tls?.handshakeEnded() }
        sender.release()
        context.remove(self)
        out = Outgoing()
        pending = []
    }
}
