import CLinux
import COpenSSL
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

    /// File bodies up to this size are read into the head buffer.
    static let inlineFileLimit: Int64 = 16 * 1024

    private struct Outgoing {
        var head: [UInt8] = []
        /// Where the head ends in `head` when a small body was appended to it.
        var headLength = Int.max
        var headSent = 0
        var body: HTTPBody = .empty
        var bodySent: Int64 = 0
        var status = 0
        var cacheStatus: CacheResult?
    }

    /// The TLS session on a `tls_listen` connection (OpenSSL SSL*), else nil.
    private var tls: OpaquePointer?
    /// Under TLS a file body cannot go out with sendfile: chunks are read
    /// into this buffer and encrypted from it; `staged` bytes wait to be written.
    private var staging: UnsafeMutableRawBufferPointer?
    private var staged = 0, stagedSent = 0
    /// Plain connections: file bodies by sendfile(2), or copied (see `SendfileMode`).
    private let usesSendfile: Bool
    /// A loopback client under `sendfile = auto`: complete files go the way
    /// measured better, on a busy loop `LoopbackSendChooser`'s (cheaper), for
    /// a body that began alone `LoneStreamSendChooser`'s (faster); the rest
    /// is copied.
    private let loopbackAuto: Bool
    /// What `beginFileBody` counted on the loop (`fileBodies` or
    /// `localSendfileBodies`) while this body is being sent.
    private var countedBody = CountedBody.none
    private enum CountedBody { case none, copied, localSendfile }
    /// A large body's place in `LoneStreamSendChooser` while it is sent, and
    /// whether it is a lone stream's candidate (a cached file to a loopback
    /// client under `sendfile = auto`), measured if it goes out whole.
    private var lone: LoneStreamSendChooser.Ticket?
    private var loneCandidate = false
    /// The send buffer was capped (`SendBufferPolicy`); it stays so.
    private var sendBufferCapped = false
    /// Responses finished, and consecutive checks that found the client's
    /// packets arriving on another loop's CPU (`followClient`).
    private var served = 0, elsewhere = 0

    init(fd: Int32, peer: PeerAddress, context: LoopContext, tls: OpaquePointer? = nil) {
        self.tls = tls
        self.fd = fd
        self.peer = peer
        self.loop = context.loop
        self.context = context
        self.parser = HTTPRequestParser(limits: context.options.parserLimits)
        usesSendfile = context.options.sendfile.usesSendfile(to: peer)
        loopbackAuto = context.options.sendfile == .auto && !usesSendfile
        deadline = monotonicMillis() + context.options.headerTimeoutMillis
    }

    var isIdle: Bool { state == .reading && pending.isEmpty }

    func handleEvent(_ events: UInt32) {
        switch state {
        case .reading:
            if events & EV_IN != 0 || events & EV_ERR != 0 || (tls != nil && events & EV_OUT != 0) { readAvailable() }
        case .writing:
            if events & EV_ERR != 0 && events & EV_OUT == 0 { close(); return }
            if events & EV_OUT != 0 || (tls != nil && events & EV_IN != 0) { continueWriting() }
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
            let n: Int
            if let ssl = tls {
                let r = SSL_read(ssl, scratch.baseAddress, Int32(scratch.count))
                if r <= 0 {
                    switch SSL_get_error(ssl, r) {
                    case SSL_ERROR_WANT_READ: setInterest(EV_IN)
                    case SSL_ERROR_WANT_WRITE: setInterest(EV_IN | EV_OUT)   // handshake output blocked
                    default: close()
                    }
                    return
                }
                n = Int(r)
            } else {
                n = recv(fd, scratch.baseAddress, scratch.count, 0)
            }
            if n > 0 {
                let read = UnsafeRawBufferPointer(rebasing: scratch[0..<n])
                if pending.isEmpty {
                    // A new request starts: it gets the header timeout.
                    deadline = monotonicMillis() + context.options.headerTimeoutMillis
                    parseFresh(read)
                } else {
                    pending.append(contentsOf: read)
                    parseBuffered()
                }
                if n < scratch.count && tls == nil { return }
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
        // Answered later, from another thread: stop reading meanwhile
        // (pipelined bytes wait in the kernel). A hit answered inside
        // `handle` costs no epoll_ctl at all.
        if state == .handling { setInterest(0) }
    }

    // MARK: writing

    func deliver(_ response: HTTPResponse, generation g: Int) {
        guard g == generation, state == .handling, let req = request else { return }
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
        if sendsBody {
            if case .lengthOnly = r.body {
                // A handler bug: a GET answered without a body. Never send a
                // length we cannot fill on a connection we would reuse.
                Log.error("lengthOnly body for a GET", ["path": req.path])
                out.head = ResponseFinalizer.headBytes(HTTPResponse.text(.internalServerError, "internal error"), keepAlive: false, version: req.version, date: context.dates.now)
                keepAlive = false
                out.body = .empty
                out.head.append(contentsOf: Array("internal error\n".utf8))
            } else if case .bytes(let b) = r.body {
                out.headLength = out.head.count
                out.head.append(contentsOf: b)   // one send for head and small bodies
                out.body = .empty
            } else if case .file(let f, let offset, let length) = r.body, length <= Connection.inlineFileLimit,
                      appendFile(f.fd, offset: offset, length: Int(length)) {
                out.body = .empty   // a small file (a manifest): one send instead of send + sendfile
            } else {
                out.body = r.body
                switch r.body {
                case .file(_, _, let length): beginFileBody(length, cached: true)
                case .growing(_, _, let length): beginFileBody(length, cached: false)
                default: break
                }
            }
        }
        state = .writing
        continueWriting()
    }

    /// A large file body to a loopback client (copied through mapped windows,
    /// or by sendfile when a busy loop's `LoopbackSendChooser` says so) is
    /// counted on the loop, and capped when the loop is busy (`SendBufferPolicy`).
    /// One that `sendfile = on` sends to a loopback client is counted apart:
    /// neither capped nor the chooser's, it floats a pinned loop all the same.
    /// Every large body is known to `LoneStreamSendChooser`, which measures
    /// only the ones that went out alone.
    private func beginFileBody(_ length: Int64, cached: Bool) {
        guard length >= Int64(Connection.sendWindow) else { return }
        lone = context.loneSend.begin(nowMicros: monotonicMicros())
        loneCandidate = cached && loopbackAuto && tls == nil
        guard tls == nil else { return }
        if usesSendfile {
            guard peer.isLoopback else { return }
            countedBody = .localSendfile
            context.localSendfileBodies += 1
            return
        }
        countedBody = .copied
        context.fileBodies += 1
        // The cap is for copies (see `SendBufferPolicy`); sendfile's pages
        // are not in a cache the client could find them in anyway (row 5,
        // sendfile chosen: server 2.53-2.74 against 3.36-3.65 CPU-s per
        // 20 GB capped, the same throughput).
        if !sendBufferCapped, !(loopbackAuto && context.loopbackSend.mode == .sendfile) {
            sendBufferCapped = SendBufferPolicy.capIfBusy(fd: fd, fileBodiesOnLoop: context.fileBodies)
        }
    }

    private func endFileBody() {
        if let ticket = lone {
            let whole: Int64? = switch out.body {
            case .file(_, _, let length) where loneCandidate && out.bodySent >= length: length
            default: nil
            }
            context.loneSend.end(ticket, measured: whole, nowMicros: monotonicMicros())
            lone = nil
        }
        switch countedBody {
        case .none: return
        case .copied: context.fileBodies -= 1
        case .localSendfile: context.localSendfileBodies -= 1
        }
        countedBody = .none
    }

    private func continueWriting() {
        while state == .writing {
            if out.headSent < out.head.count {
                // MSG_MORE holds a head back until body bytes follow; a
                // growing body may have none yet, and its head is the
                // client's first byte.
                let more: Int32 = {
                    switch out.body {
                    case .empty, .growing: return 0
                    default: return Int32(MSG_MORE)
                    }
                }()
                let n = out.head.withUnsafeBytes { p in
                    sendBytes(UnsafeRawBufferPointer(rebasing: p[out.headSent...]), flags: more)
                }
                if n < 0 {
                    if n == -1 { waitWritable(); return }
                    if n == -3 { continue }
                    close(); return
                }
                out.headSent += n
                deadline = 0
                if out.headSent == out.head.count { headSentMicros = monotonicMicros() }
                continue
            }
            switch out.body {
            case .empty, .bytes, .lengthOnly:
                finishResponse()
                return
            case .file(let file, let offset, let length):
                if out.bodySent >= length { finishResponse(); return }
                let n = sendFromFile(file.fd, at: offset + out.bodySent, count: min(length - out.bodySent, 1 << 30), complete: true)
                if n < 0 {
                    if n == -1 { waitWritable(); return }
                    if n == -3 { continue }
                    close(); return
                }
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
                // Once verified the file is complete and immutable: sent
                // like a cached one (mapped windows or the chooser's way)
                // instead of read and sent.
                let n = sendFromFile(source.fd, at: position, count: limit - position, complete: readable >= source.length)
                if n < 0 {
                    if n == -1 { waitWritable(); return }
                    if n == -3 { continue }
                    close(); return
                }
                out.bodySent += Int64(n)
                deadline = 0   // progress: send_timeout counts from the next stall
            }
        }
    }

    // MARK: I/O primitives (plain socket or TLS)

    /// Sends from `bytes`; returns the count sent, or -1 would block,
    /// -2 failed, -3 interrupted.
    private func sendBytes(_ bytes: UnsafeRawBufferPointer, flags: Int32) -> Int {
        guard bytes.count > 0 else { return 0 }
        if let ssl = tls {
            let r = SSL_write(ssl, bytes.baseAddress, Int32(min(bytes.count, Int(Int32.max))))
            if r > 0 { return Int(r) }
            let e = SSL_get_error(ssl, r)
            return e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? -1 : -2
        }
        let n = send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL) | flags)
        if n >= 0 { return n }
        return errno == EAGAIN ? -1 : errno == EINTR ? -3 : -2
    }

    /// Sends up to `count` bytes of a file from `offset`: in the clear by
    /// sendfile(2) or copied (`sendCopied`; `complete` is false for a file
    /// still being written) — a file shorter than promised is a failure,
    /// never padded; under TLS through a 64 KiB
    /// staging buffer (a staged chunk is retried as it is until OpenSSL took
    /// it, as SSL_write requires).
    private func sendFromFile(_ file: Int32, at offset: Int64, count: Int64, complete: Bool) -> Int {
        guard tls != nil else {
            if usesSendfile { return sendfile(file, at: offset, count: count) }
            guard loopbackAuto, complete else {
                return sendCopied(file, at: offset, count: count, complete: complete)
            }
            guard context.fileBodies >= SendBufferPolicy.busyLoop else {
                // A body that began alone goes the lone streams' way; one
                // that began beside others, with no trial of its own for
                // that load, is copied as before the trials.
                guard lone.map({ $0.aloneAtStart && $0.way == .sendfile }) ?? false else {
                    return sendCopied(file, at: offset, count: count, complete: true)
                }
                let n = sendfile(file, at: offset, count: count)
                if n > 0 { context.loneSend.noteSendfile(n) }
                return n
            }
            let chooser = context.loopbackSend
            let n = chooser.mode == .sendfile ? sendfile(file, at: offset, count: count)
                : sendCopied(file, at: offset, count: count, complete: true)
            if n > 0 { chooser.note(sent: n) }
            return n
        }
        if staging == nil { staging = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16) }
        guard let buf = staging else { return -2 }
        if stagedSent >= staged {
            let want = Int(min(count, Int64(buf.count)))
            let r = pread(file, buf.baseAddress, want, off_t(offset))
            if r <= 0 { return r == 0 ? -2 : (errno == EINTR ? -3 : -2) }
            staged = r
            stagedSent = 0
        }
        let n = sendBytes(UnsafeRawBufferPointer(rebasing: buf[stagedSent..<staged]), flags: 0)
        if n > 0 { stagedSent += n }
        return n
    }

    /// sendfile(2) of up to `count` bytes from `offset`.
    private func sendfile(_ file: Int32, at offset: Int64, count: Int64) -> Int {
        var off = offset
        let n = anch_sendfile(fd, file, &off, Int(count))
        if n >= 0 { return n == 0 ? -2 : n }
        return errno == EAGAIN ? -1 : errno == EINTR ? -3 : -2
    }

    /// Up to this much of a file is sent from one mapped block. The sizes
    /// below were measured with windows mapped at any offset, before blocks
    /// were mapped whole (that gain is at `Ingest.writeStep`). Warm loopback
    /// sends, alternating dev rounds on the 2-core VM: 100 clients x 20
    /// layers 2519-3473 MB/s through the 256 KiB copy buffer vs 3016-3760
    /// with 1 MiB windows (clients' CPU 6.5-8.3 -> 5.0-6.2 CPU-s per 20 GB);
    /// one client, 1 GiB: 2758-3387 -> 3267-4449 MB/s. Other sizes, with the
    /// windows faulted in by the copy (`FileWindow`), row 5 of bench/run:
    /// 256 and 512 KiB 2744-3201 and 3597-3814 MB/s (more mmap and munmap
    /// per byte), 2 and 4 MiB 3074-3872 and 3144-3694 (less server CPU but
    /// more in the clients), 1 MiB 3434-4031.
    static let sendWindow = 1 << 20

    /// One send straight from a mapped block of a complete file, up to 1 MiB
    /// and the block's end (see `FileWindow`); for less than a window (a file's tail), a file still
    /// being written (a cold blob's readers stay close behind its ingest,
    /// which publishes 256 KiB at a time; mapping those did not measurably
    /// help or hurt: cold 1 GiB, 8 alternating rounds, 710 vs 762 and 802
    /// vs 836 MB/s, within the spread, so the cold path keeps the reads it
    /// was tuned with) or where mapping fails, one read into the loop's copy
    /// buffer and one send from it. Bytes the socket did not take are mapped
    /// or read again next time (the file is immutable up to what was
    /// published). A file shorter than promised ends in a failed send or
    /// read: never padded.
    private func sendCopied(_ file: Int32, at offset: Int64, count: Int64, complete: Bool) -> Int {
        if complete, count >= Int64(Connection.sendWindow), let window = FileWindow(fd: file, offset: offset, count: Connection.sendWindow, slot: context.windowSlot) {
            return sendBytes(window.bytes, flags: 0)
        }
        let buf = context.copyBuffer
        let r = pread(file, buf.baseAddress, Int(min(count, Int64(buf.count))), off_t(offset))
        if r <= 0 { return r == 0 ? -2 : (errno == EINTR ? -3 : -2) }
        return sendBytes(UnsafeRawBufferPointer(rebasing: buf[0..<r]), flags: 0)
    }

    /// Appends `length` bytes of a file to the head buffer; false (and the
    /// buffer unchanged) if the file could not be read whole.
    private func appendFile(_ file: Int32, offset: Int64, length: Int) -> Bool {
        let start = out.head.count
        out.head.append(contentsOf: repeatElement(0, count: length))
        let n = out.head.withUnsafeMutableBytes { p in pread(file, p.baseAddress.map { $0 + start }, length, off_t(offset)) }
        guard n == length else {
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
        endFileBody()
        logAccess()
        out = Outgoing()
        request = nil
        if !keepAlive || context.draining {
            close()
            return
        }
        state = .reading
        if pending.isEmpty, followClient() { return }
        deadline = monotonicMillis() + (pending.isEmpty ? context.options.idleTimeoutMillis : context.options.headerTimeoutMillis)
        setInterest(EV_IN)
        parseBuffered()
        // Decrypted bytes OpenSSL already holds never raise EPOLLIN again.
        if state == .reading, let ssl = tls, SSL_has_pending(ssl) == 1 { readAvailable() }
    }

    /// With pinned loops (`LoopCPUs`), a keep-alive connection whose packets
    /// now arrive on another loop's CPU (the client thread moved, or was
    /// placed before the scheduler spread the clients) moves to that loop
    /// between requests: checked every 8th response, moved after two checks
    /// in a row agree, and only where `ConnectionPlacement` would put it.
    /// Returns true when this object is done (the other loop adopts the fd).
    private func followClient() -> Bool {
        served &+= 1
        guard tls == nil, served % 8 == 0, context.cpus != nil else { return false }
        guard let target = context.loopForIncomingCPU(fd), target != loop.index else {
            elsewhere = 0
            return false
        }
        elsewhere += 1
        guard elsewhere >= 2, context.handOver(self, to: target) else { return false }
        // Inert from here: the fd stays open and belongs to `target`.
        state = .closed
        generation += 1
        return true
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
        let bodyBytes = out.bodySent + Int64(max(0, out.headSent - out.headLength))
        if context.options.accessLog {
            AccessLog.write(client: peer.host, method: req.method.description, path: req.target, status: out.status,
                            bytes: bytes, micros: micros, cache: out.cacheStatus?.rawValue)
        }
        if let observe = context.options.observer {
            var record = AccessRecord(method: req.method.description, path: req.path, status: out.status, bytes: bodyBytes,
                                 micros: micros, headMicros: headSentMicros > startedMicros ? headSentMicros - startedMicros : 0,
                                 cache: out.cacheStatus)
            record.loop = loop.index
            observe(record)
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
        endFileBody()
        state = .closed
        generation += 1
        loop.unregister(fd)
        if let ssl = tls {
            _ = SSL_shutdown(ssl)
            SSL_free(ssl)
            tls = nil
        }
        staging?.deallocate()
        staging = nil
        Glibc.close(fd)
        context.remove(self)
        out = Outgoing()
        pending = []
    }
}
